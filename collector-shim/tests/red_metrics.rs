//! RED metrics in a running shim: /metrics content negotiation, exemplars only from exports the
//! backend accepted, bounded cardinality (overflow series, idle expiry, a bounded exposition).
mod pipeline_support;
mod red_support;

use std::time::Duration;

use collector_shim::config::Config;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use pipeline_support::*;
use red_support::{hex, scrape, send, PROMETHEUS_OM_ACCEPT};

fn routed(i: u64, route: &str, error: bool) -> opentelemetry_proto::tonic::trace::v1::Span {
    let s = with_attr(
        span(&trace_id(i as u32, i), i, 20),
        "http.route",
        Value::StringValue(route.into()),
    );
    if error {
        with_error(s)
    } else {
        s
    }
}

fn exemplar_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains(" # {trace_id="))
        .collect()
}

#[tokio::test]
async fn openmetrics_with_exemplars_on_request_classic_text_otherwise() {
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(fast_config(), vec![exp.clone()]).await;
    let http = reqwest::Client::new();
    let spans = (0..10).map(|i| routed(i, "/a", i == 3)).collect();
    send(&http, shim.addr, &request("shop", spans)).await;
    assert!(eventually(10, || exp.span_count() == 10).await);

    // Prometheus with exemplar storage on asks for OpenMetrics: exemplars and `# EOF`.
    let (ct, om) = scrape(&http, shim.addr, Some(PROMETHEUS_OM_ACCEPT)).await;
    assert!(
        ct.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ct}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let labels =
        "service_name=\"shop\",span_name=\"/a\",span_kind=\"SPAN_KIND_SERVER\",status_code=\"\"";
    assert!(
        om.contains(&format!("shim_red_requests_total{{{labels}}} 10\n")),
        "{om}"
    );
    let errors = format!("shim_red_errors_total{{{labels}}} 1 # {{trace_id=\"{}\",span_id=\"0000000000000004\"}} 1.0 ", hex(&trace_id(3, 3)));
    assert!(om.contains(&errors), "{errors}\nnot in\n{om}");
    let bucket = om
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "shim_red_duration_seconds_bucket{{{labels},le=\"0.025\"}} 10 # {{trace_id="
            ))
        })
        .unwrap_or_else(|| panic!("an exemplar on the 25 ms bucket:\n{om}"));
    assert!(bucket.contains("} 0.02 "), "{bucket}");
    assert!(om.contains("# UNIT shim_red_duration_seconds seconds"));

    // Anything else gets the classic text format: no exemplars, no EOF, counters named `_total`.
    for accept in [None, Some("text/plain;version=0.0.4;q=1,*/*;q=0.1")] {
        let (ct, text) = scrape(&http, shim.addr, accept).await;
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
        assert!(exemplar_lines(&text).is_empty() && !text.contains("# EOF"));
        assert!(!text.contains("# UNIT"));
        assert!(text.contains("# TYPE shim_red_requests_total counter\n"));
        assert!(text.contains("# TYPE shim_spans_received_total counter\n"));
        assert!(text.contains(&format!("shim_red_requests_total{{{labels}}} 10\n")));
    }
    shim.stop().await;
}

#[tokio::test]
async fn failed_exports_and_unsampled_traces_give_counts_but_no_exemplars() {
    let exp = RecordingExporter::new("rec");
    exp.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut cfg = fast_config();
    cfg.batch.export_timeout = Duration::from_secs(2);
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    let http = reqwest::Client::new();
    // Failing backend: counted, never an exemplar.
    let spans = (0..5).map(|i| routed(i, "/down", true)).collect();
    send(&http, shim.addr, &request("shop", spans)).await;
    // Record-only spans with no tail policy: counted, never exported, never an exemplar.
    let spans = (10..15)
        .map(|i| record_only(routed(i, "/quiet", true)))
        .collect();
    send(&http, shim.addr, &request("shop", spans)).await;
    assert!(
        eventually(10, || shim.metric(
            "shim_spans_dropped_total{reason=\"export_failed\",exporter=\"rec\"}"
        ) == 5.0)
        .await
    );
    let (_, om) = scrape(&http, shim.addr, Some(PROMETHEUS_OM_ACCEPT)).await;
    for route in ["/down", "/quiet"] {
        let l = format!("shim_red_errors_total{{service_name=\"shop\",span_name=\"{route}\",span_kind=\"SPAN_KIND_SERVER\",status_code=\"\"}} 5\n");
        assert!(om.contains(&l), "{l}\nnot in\n{om}");
    }
    assert!(exemplar_lines(&om).is_empty(), "{om}");
    shim.stop().await;
}

#[tokio::test]
async fn a_flood_of_routes_ends_in_the_overflow_series_with_the_exposition_bounded() {
    let exp = RecordingExporter::new("rec");
    let mut cfg: Config = fast_config();
    cfg.red_metrics.max_series = 50;
    cfg.sampling.probability = 0.0;
    let shim = Shim::start(cfg, vec![exp]).await;
    let http = reqwest::Client::new();
    let mut sizes = Vec::new();
    for round in 0..4u64 {
        for chunk in 0..10u64 {
            let spans = (0..500)
                .map(|i| {
                    let n = round * 5000 + chunk * 500 + i;
                    routed(n, &format!("/r/{n}"), false)
                })
                .collect();
            send(&http, shim.addr, &request("shop", spans)).await;
        }
        let want = (round + 1) * 5000;
        assert!(
            eventually(20, || shim.metric("shim_red_overflow_spans_total")
                == (want - 50) as f64)
            .await,
            "overflow after round {round}: {}",
            shim.metric("shim_red_overflow_spans_total")
        );
        let (_, om) = scrape(&http, shim.addr, Some(PROMETHEUS_OM_ACCEPT)).await;
        sizes.push(om.len());
        assert_eq!(metric_value(&om, "shim_red_series"), 50.0);
        let overflow = "shim_red_requests_total{service_name=\"\",span_name=\"\",span_kind=\"\",status_code=\"\",otel_metric_overflow=\"true\"}";
        assert_eq!(metric_value(&om, overflow), (want - 50) as f64, "{om}");
    }
    // The exposition (a proxy for the table's memory) does not grow with the flood.
    assert!(sizes.windows(2).all(|w| w[1] <= w[0] + 64), "{sizes:?}");
    assert!(sizes[0] < 200_000, "{sizes:?}");
    shim.stop().await;
}

#[tokio::test]
async fn idle_series_expire_and_make_room() {
    let exp = RecordingExporter::new("rec");
    let mut cfg: Config = fast_config();
    cfg.red_metrics.max_series = 3;
    cfg.red_metrics.series_idle_timeout = Duration::from_millis(300);
    let shim = Shim::start(cfg, vec![exp]).await;
    let http = reqwest::Client::new();
    let spans = (0..3)
        .map(|i| routed(i, &format!("/old/{i}"), false))
        .collect();
    send(&http, shim.addr, &request("shop", spans)).await;
    assert!(eventually(10, || shim.metric("shim_red_series") == 3.0).await);
    tokio::time::sleep(Duration::from_millis(700)).await;
    send(
        &http,
        shim.addr,
        &request("shop", vec![routed(9, "/new", false)]),
    )
    .await;
    assert!(eventually(10, || shim.metric("shim_red_series") == 1.0).await);
    assert_eq!(shim.metric("shim_red_series_expired_total"), 3.0);
    assert_eq!(shim.metric("shim_red_overflow_spans_total"), 0.0);
    shim.stop().await;
}

#[tokio::test]
async fn disabled_red_metrics_leave_no_series() {
    let exp = RecordingExporter::new("rec");
    let mut cfg: Config = fast_config();
    cfg.red_metrics.enabled = false;
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    let http = reqwest::Client::new();
    send(
        &http,
        shim.addr,
        &request("shop", vec![routed(1, "/a", true)]),
    )
    .await;
    assert!(eventually(10, || exp.span_count() == 1).await);
    let (_, om) = scrape(&http, shim.addr, Some(PROMETHEUS_OM_ACCEPT)).await;
    assert!(!om.contains("shim_red_"), "{om}");
    assert!(om.ends_with("# EOF\n"));
    shim.stop().await;
}
