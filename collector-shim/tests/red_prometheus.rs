//! RED metrics through a real Prometheus (exemplar storage on): a known mix of requests at 1 % head
//! sampling with tail policies; Prometheus's HTTP API must show exact counts, and every exemplar
//! must name a trace the OTLP backend (a real HTTP server decoding the protobuf) received.
mod pipeline_support;
mod red_support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use collector_shim::config::{PolicyConfig, TailConfig};
use collector_shim::exporter::ExporterConfig;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use pipeline_support::*;
use red_support::prometheus::{self, Prometheus};
use red_support::*;

/// Spans sent, one per trace (every request the proxies saw).
const N: u64 = 2000;

/// What the test sends for request `i`: (route, method, error, slow, head-sampled).
fn shape(i: u64) -> (&'static str, &'static str, bool, bool, bool) {
    let (route, method) = if i % 5 < 3 {
        ("/items/{id}", "GET")
    } else {
        ("/cart", "POST")
    };
    // Residues chosen so both routes get errors and slow requests.
    let error = matches!(i % 50, 7 | 24);
    let slow = matches!(i % 40, 3 | 21);
    (route, method, error, slow, i.is_multiple_of(100))
}

fn request_span(i: u64) -> opentelemetry_proto::tonic::trace::v1::Span {
    let (route, method, error, slow, sampled) = shape(i);
    let dur = if slow { 700 } else { 1 + i % 30 };
    let mut s = span(
        &trace_id(i as u32, i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        i,
        dur,
    );
    s.name = format!("{method} {route}");
    s = with_attr(s, "http.request.method", Value::StringValue(method.into()));
    s = with_attr(s, "http.route", Value::StringValue(route.into()));
    let code = if error { 503 } else { 200 };
    s = with_attr(s, "http.response.status_code", Value::IntValue(code));
    if error {
        s = with_error(s);
    }
    if sampled {
        s
    } else {
        record_only(s)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_exact_red_counts_and_exemplars_of_exported_traces_only() {
    let Some(bin) = prometheus::binary() else {
        return;
    };
    let (backend_addr, backend) = pipeline_support::otlp_backend::start().await;
    let mut cfg = fast_config();
    // The filter sampled 1 %; the shim keeps what it sampled, and of the rest what a tail policy wants.
    cfg.sampling.probability = 1.0;
    cfg.sampling.tail = Some(TailConfig {
        decision_wait: Duration::from_millis(500),
        policies: vec![
            PolicyConfig::Error { name: None },
            PolicyConfig::Latency {
                name: None,
                threshold: Duration::from_millis(500),
            },
        ],
        ..TailConfig::default()
    });
    cfg.exporters = vec![ExporterConfig::otlp(format!(
        "http://{backend_addr}/v1/traces"
    ))];
    let shim = RealShim::start(cfg).await;
    let prom = Prometheus::start(&bin, shim.addr).await;

    let http = reqwest::Client::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(100) {
        let spans = chunk.iter().map(|i| request_span(*i)).collect();
        send(&http, shim.addr, &request("shop", spans)).await;
    }
    let kept = (0..N)
        .filter(|i| {
            let (_, _, e, slow, s) = shape(*i);
            e || slow || s
        })
        .count();
    assert!(
        eventually(30, || backend.count() == kept).await,
        "the backend got {} of the {kept} kept spans",
        backend.count()
    );
    let exported: HashSet<String> = backend
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| hex(&s.trace_id))
        .collect();

    // Expected figures, per route.
    let mut want: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new(); // requests, errors, slow
    for i in 0..N {
        let (route, method, error, slow, _) = shape(i);
        let e = want.entry(format!("{method} {route}")).or_default();
        e.0 += 1;
        e.1 += u64::from(error);
        e.2 += u64::from(slow);
    }

    // Wait (bounded) for a scrape that has every span and the exemplars of the last exports.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let total = prom.scalar("sum(shim_red_requests_total)").await;
        let ex = prom.exemplars("shim_red_errors_total").await.len();
        if total == N as f64 && ex >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus has {total} requests and {ex} error exemplars; target: {}\n{:?}\n{}",
            prom.target_health().await,
            prom.exemplars("shim_red_errors_total").await,
            shim.metrics
                .encode()
                .lines()
                .filter(|l| l.starts_with("shim_red_errors"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for (name, (requests, errors, slow)) in &want {
        let sel = format!(
            "{{span_name=\"{name}\",service_name=\"shop\",span_kind=\"SPAN_KIND_SERVER\"}}"
        );
        let got = |q: String| {
            let prom = &prom;
            async move { prom.scalar(&q).await }
        };
        assert_eq!(
            got(format!("sum(shim_red_requests_total{sel})")).await,
            *requests as f64,
            "{name}"
        );
        assert_eq!(
            got(format!("sum(shim_red_errors_total{sel})")).await,
            *errors as f64,
            "{name}"
        );
        let sel5 = format!("{{span_name=\"{name}\",status_code=\"5xx\"}}");
        assert_eq!(
            got(format!("sum(shim_red_requests_total{sel5})")).await,
            *errors as f64
        );
        let fast = format!("{{span_name=\"{name}\",le=\"0.5\"}}");
        assert_eq!(
            got(format!("sum(shim_red_duration_seconds_bucket{fast})")).await,
            (*requests - *slow) as f64,
            "{name}: requests within 500 ms"
        );
        let count = format!("sum(shim_red_duration_seconds_count{sel})");
        assert_eq!(got(count).await, *requests as f64);
    }
    // Counted before sampling: far more than was exported.
    assert!(kept * 5 < N as usize, "kept {kept}");

    // Every exemplar names a trace the backend has, and sits in the bucket of its value.
    let on_buckets = prom.exemplars("shim_red_duration_seconds_bucket").await;
    let on_errors = prom.exemplars("shim_red_errors_total").await;
    assert!(!on_buckets.is_empty() && !on_errors.is_empty());
    for (series, labels, value) in on_buckets.iter().chain(&on_errors) {
        let tid = labels["trace_id"].as_str().unwrap_or_default();
        assert!(
            exported.contains(tid),
            "exemplar {labels} of {series} names a trace the backend never got"
        );
        assert_eq!(
            labels["span_id"].as_str().map(str::len),
            Some(16),
            "{labels}"
        );
        if let Some(le) = series["le"].as_str().and_then(|l| l.parse::<f64>().ok()) {
            assert!(*value <= le, "exemplar value {value} above its bucket {le}");
        }
    }
    // The slow requests' bucket (0.5 s .. 0.75 s) and both routes' errors have one.
    assert!(
        on_buckets.iter().any(|(s, _, _)| s["le"] == "0.75"),
        "{on_buckets:?}"
    );
    let error_routes: HashSet<&str> = on_errors
        .iter()
        .filter_map(|(s, _, _)| s["span_name"].as_str())
        .collect();
    assert_eq!(error_routes.len(), 2, "{on_errors:?}");

    drop(prom);
    shim.stop().await;
}
