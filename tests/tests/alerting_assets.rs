//! The alerting and dashboard assets: `deploy/prometheus/` (alert rules, their promtool unit tests,
//! the compose stack's Prometheus config) checked by a real `promtool` (Debian's `prometheus`,
//! installed by scripts/install-tools.sh), and `deploy/grafana/` (the RED dashboard and its
//! provisioning) checked against the metrics the shim really exports.
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use aetherflow_tests::paths::workspace_root;
use collector_shim::metrics::Metrics;
use collector_shim::model::SpanRecord;
use collector_shim::red::{Format, RedConfig, RedMetrics};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span, Status};
use serde_json::Value;

/// `promtool`, or `None` outside CI when it is missing (under `CI=true` that fails: the tool
/// script installs it there).
fn promtool() -> Option<&'static str> {
    if Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("promtool");
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "promtool is not installed (Debian package `prometheus`, scripts/install-tools.sh)"
    );
    eprintln!("SKIPPED: promtool is not installed (run scripts/install-tools.sh)");
    None
}

fn run_promtool(args: &[&str]) {
    let Some(bin) = promtool() else { return };
    let out = Command::new(bin)
        .args(args)
        .current_dir(workspace_root().join("deploy/prometheus"))
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check_rules() {
    run_promtool(&["check", "rules", "alerts.yml"]);
}

#[test]
fn alert_rules_fire_as_their_unit_tests_expect() {
    run_promtool(&["test", "rules", "alerts.test.yml"]);
}

#[test]
fn compose_prometheus_config_passes_promtool_check_config() {
    run_promtool(&["check", "config", "prometheus.yml"]);
}

/// The sample names a running shim exposes, with a RED series that has exemplars.
fn exported() -> (BTreeSet<String>, String) {
    let metrics = Metrics::new();
    metrics.exporter_telemetry("otlp");
    let red = RedMetrics::new(&RedConfig::default(), tokio::time::Instant::now());
    let span = SpanRecord {
        resource: Arc::default(),
        scope: Arc::default(),
        span: Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /x".into(),
            kind: 2,
            end_time_unix_nano: 3_000_000,
            status: Some(Status {
                code: StatusCode::Error as i32,
                message: String::new(),
            }),
            ..Default::default()
        },
    };
    red.record(std::slice::from_ref(&span), tokio::time::Instant::now());
    red.confirm(std::slice::from_ref(&span));
    metrics.attach_red(red);
    let text = metrics.encode_as(Format::OpenMetrics);
    let names = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    (names, text)
}

/// Every `shim_*` metric name in `text`.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("shim_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // `collector-shim`, `shim_x` inside a longer word: only names that start a token.
        let before = rest[..i].chars().last();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

#[tokio::test]
async fn rules_and_dashboard_query_only_metrics_the_shim_exports() {
    let (names, _) = exported();
    let root = workspace_root();
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/prometheus/alerts.test.yml",
        "deploy/grafana/aetherflow-red.json",
    ] {
        let mut text = std::fs::read_to_string(root.join(file)).expect(file);
        if file.ends_with(".json") {
            // The dashboard's queries: panel targets and template variables (not its prose).
            let d: Value = serde_json::from_str(&text).expect("dashboard JSON");
            let panels = d["panels"].as_array().cloned().unwrap_or_default();
            let vars = d["templating"]["list"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut queries: Vec<String> = panels
                .iter()
                .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
                .filter_map(|t| t["expr"].as_str().map(str::to_string))
                .collect();
            queries.extend(
                vars.iter()
                    .filter_map(|v| v["definition"].as_str().map(str::to_string)),
            );
            text = queries.join("\n");
        }
        let used = referenced(&text);
        assert!(used.len() >= 4, "{file}: {used:?}");
        let unknown: Vec<_> = used.difference(&names).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the shim does not export: {unknown:?}"
        );
    }
}

#[tokio::test]
async fn dashboard_shows_red_per_route_with_exemplar_links_to_jaeger() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("deploy/grafana/aetherflow-red.json")).unwrap();
    let d: Value = serde_json::from_str(&text).expect("dashboard JSON");
    assert_eq!(d["uid"], "aetherflow-red");
    let targets: Vec<&Value> = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .collect();
    let exprs: Vec<&str> = targets.iter().filter_map(|t| t["expr"].as_str()).collect();
    // Rate, errors and duration, each per route.
    for metric in [
        "shim_red_requests_total",
        "shim_red_errors_total",
        "shim_red_duration_seconds_bucket",
    ] {
        assert!(
            exprs
                .iter()
                .any(|e| e.contains(metric) && e.contains("span_name")),
            "{metric} per route"
        );
    }
    // Exemplars shown on the error counter and on the duration buckets, the two places the shim
    // puts them.
    for metric in ["shim_red_errors_total", "shim_red_duration_seconds_bucket"] {
        assert!(
            targets
                .iter()
                .any(|t| t["exemplar"] == true
                    && t["expr"].as_str().is_some_and(|e| e.contains(metric))),
            "exemplars on {metric}"
        );
    }
    for t in &targets {
        assert_eq!(t["datasource"]["uid"], "prometheus", "{t}");
    }
    // The exemplar label Grafana links from is the one the shim writes, and it leads to Jaeger.
    let (_, exposition) = exported();
    let ds: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            root.join("deploy/grafana/provisioning/datasources/aetherflow.yml"),
        )
        .unwrap(),
    )
    .unwrap();
    let sources = ds["datasources"].as_sequence().expect("datasources");
    let prom = sources
        .iter()
        .find(|s| s["uid"] == "prometheus")
        .expect("prometheus data source");
    let link = &prom["jsonData"]["exemplarTraceIdDestinations"][0];
    let label = link["name"].as_str().expect("exemplar label");
    assert!(
        exposition.contains(&format!(" # {{{label}=\"")),
        "the shim's exemplars carry `{label}`:\n{exposition}"
    );
    let target = link["datasourceUid"].as_str().expect("trace data source");
    assert!(
        sources
            .iter()
            .any(|s| s["uid"] == target && s["type"] == "jaeger"),
        "exemplars link to a Jaeger data source"
    );
    let provider: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            root.join("deploy/grafana/provisioning/dashboards/aetherflow.yml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        provider["providers"][0]["options"]["path"],
        "/var/lib/grafana/dashboards"
    );
}
