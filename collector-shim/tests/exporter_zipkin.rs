//! Zipkin exporter: the mapping (pure) and the transport against a real loopback server whose
//! bodies are checked by `tests/decoders/zipkin_json.py` (jsonschema, written from the v2 API).
mod exporter_support;

use std::time::{Duration, Instant};

use collector_shim::exporter::zipkin::model::to_zipkin;
use collector_shim::exporter::zipkin::{encode, ZipkinExporter};
use collector_shim::exporter::{
    ExportError, Exporter, ExporterConfig, ExporterTelemetry, RetryConfig,
};
use exporter_support::backend::{decode, Backend, Reply};
use exporter_support::*;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::json;

fn fast_retry() -> RetryConfig {
    RetryConfig {
        enabled: true,
        initial_interval: Duration::from_millis(20),
        max_interval: Duration::from_millis(200),
        max_elapsed_time: Duration::from_secs(20),
        multiplier: 2.0,
    }
}

fn exporter(url: String, timeout: Duration, t: ExporterTelemetry) -> ZipkinExporter {
    let ExporterConfig::Zipkin(mut cfg) = ExporterConfig::zipkin(url) else {
        unreachable!()
    };
    cfg.retry = fast_retry();
    cfg.timeout = timeout;
    ZipkinExporter::new("zipkin", &cfg, t).unwrap()
}

#[test]
fn server_span_mapping() {
    let batch = sample_batch();
    let z = serde_json::to_value(to_zipkin(&batch[0]).unwrap()).unwrap();
    assert_eq!(z["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(z["id"], "0000000000001111");
    assert_eq!(z["parentId"], "00f067aa0ba902b7");
    assert_eq!(z["kind"], "SERVER");
    assert_eq!(z["name"], "GET /api/users/{id}");
    assert_eq!(z["timestamp"], json!(T0 / 1000));
    assert_eq!(z["duration"], 12_400);
    // A server span continuing a remote parent has its own id in OTel: not "shared".
    assert!(z.get("shared").is_none());
    assert_eq!(z["localEndpoint"], json!({"serviceName": "envoy-proxy"}));
    // For a SERVER span the remote endpoint is the client.
    assert_eq!(z["remoteEndpoint"], json!({"ipv4": "10.1.2.3"}));
    let tags = &z["tags"];
    assert_eq!(tags["http.response.status_code"], "503");
    assert_eq!(tags["error"], "upstream unavailable");
    assert_eq!(tags["otel.status_code"], "ERROR");
    assert_eq!(tags["otel.scope.name"], "aetherflow.trace_filter");
    assert_eq!(tags["deployment.environment.name"], "test");
    assert!(tags.get("service.name").is_none());
    assert_eq!(
        z["annotations"],
        json!([{"timestamp": T0 / 1000 + 5000, "value": "\"retry\": {\"attempt\":2}"}])
    );
}

#[test]
fn client_and_internal_span_mapping() {
    let batch = sample_batch();
    let c = serde_json::to_value(to_zipkin(&batch[1]).unwrap()).unwrap();
    assert_eq!(c["kind"], "CLIENT");
    assert_eq!(
        c["remoteEndpoint"],
        json!({"ipv4": "10.0.0.9", "port": 50051})
    );
    assert_eq!(c["tags"]["rpc.response.status_code"], "NOT_FOUND");
    assert!(c["tags"].get("error").is_none());
    // INTERNAL: no kind; a zero duration is rounded up to 1 µs.
    let i = serde_json::to_value(to_zipkin(&batch[2]).unwrap()).unwrap();
    assert!(i.get("kind").is_none());
    assert_eq!(i["duration"], 1);
    assert!(i.get("remoteEndpoint").is_none());
    assert_eq!(i["tags"]["aetherflow.sampling.record_only"], "true");
}

#[test]
fn envoy_upstream_address_and_host_names() {
    let mut sp = span(TRACE, 5, 0, "GET", SpanKind::Client, 0, 10);
    sp.attributes = vec![
        kv("envoy.upstream.address", s("[2001:db8::7]:8443")),
        kv("server.address", s("api.internal")),
        kv("server.port", i(443)),
    ];
    let z = serde_json::to_value(to_zipkin(&record("edge", sp)).unwrap()).unwrap();
    assert_eq!(
        z["remoteEndpoint"],
        json!({"serviceName": "api.internal", "ipv6": "2001:db8::7", "port": 8443})
    );
    assert!(z.get("parentId").is_none());
}

#[test]
fn shared_only_for_a_server_span_reusing_its_parent_id() {
    let sp = span(TRACE, 0x77, 0x77, "GET", SpanKind::Server, 0, 10);
    let z = serde_json::to_value(to_zipkin(&record("svc", sp)).unwrap()).unwrap();
    assert_eq!(z["shared"], true);
    assert!(z.get("parentId").is_none());
}

#[test]
fn invalid_ids_are_left_out_not_sent() {
    let mut batch = sample_batch();
    batch[1].span.trace_id = vec![0; 16];
    batch[2].span.span_id = vec![1, 2, 3];
    let (body, skipped) = encode(&batch);
    assert_eq!(skipped, 2);
    let out = decode("zipkin_json.py", &body, &[]);
    assert_eq!(out["spans"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn posts_valid_v2_json() {
    let backend = Backend::start(Reply::status(202)).await;
    let t = ExporterTelemetry::default();
    let exp = exporter(
        backend.url("/api/v2/spans"),
        Duration::from_secs(10),
        t.clone(),
    );
    exp.export(&sample_batch()).await.unwrap();
    let got = backend.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/api/v2/spans");
    assert_eq!(got[0].headers["content-type"], "application/json");
    let out = decode("zipkin_json.py", &got[0].body, &[]);
    let spans = out["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["GET /api/users/{id}", "users.Users/Get", "render"]);
    assert_eq!(spans[1]["localEndpoint"]["serviceName"], "users");
    assert_eq!(t.retries.get(), 0);
}

#[tokio::test]
async fn outage_then_recovery_loses_nothing() {
    let addr = Backend::unused_addr().await;
    let t = ExporterTelemetry::default();
    let exp = exporter(
        format!("http://{addr}/api/v2/spans"),
        Duration::from_secs(10),
        t.clone(),
    );
    let batch = sample_batch();
    let task = tokio::spawn(async move { exp.export(&batch).await });
    // Connection refused for a while, then the backend comes up on the same port.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let backend = Backend::start_on(addr, Reply::status(202)).await;
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(t.retries.get() >= 1, "expected retries");
    assert_eq!(t.failed_attempts.get(), t.retries.get());
    let got = backend.received();
    assert_eq!(got.len(), 1, "exactly one accepted request");
    let out = decode("zipkin_json.py", &got[0].body, &[]);
    assert_eq!(out["spans"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let backend = Backend::start(Reply::status(202)).await;
    backend.script([Reply::status(429)
        .header("retry-after", "1")
        .body("slow down")]);
    let t = ExporterTelemetry::default();
    let exp = exporter(
        backend.url("/api/v2/spans"),
        Duration::from_secs(10),
        t.clone(),
    );
    let start = Instant::now();
    exp.export(&sample_batch()).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(backend.received().len(), 2);
    assert_eq!(t.retries.get(), 1);
}

#[tokio::test]
async fn bad_request_is_not_retried_and_quotes_the_backend() {
    let backend = Backend::start(Reply::status(202)).await;
    backend.script([Reply::status(400).body("Expected a JSON_V2 encoded list")]);
    let t = ExporterTelemetry::default();
    let exp = exporter(
        backend.url("/api/v2/spans"),
        Duration::from_secs(10),
        t.clone(),
    );
    let err = exp.export(&sample_batch()).await.unwrap_err();
    match &err {
        ExportError::NonRetryable(m) => assert!(
            m.contains("400") && m.contains("Expected a JSON_V2 encoded list"),
            "{m}"
        ),
        other => panic!("want NonRetryable, got {other:?}"),
    }
    assert_eq!(backend.received().len(), 1);
    assert_eq!(t.retries.get(), 0);
    assert_eq!(t.failed_attempts.get(), 1);
}

#[tokio::test]
async fn slow_backend_times_out_then_succeeds() {
    let backend = Backend::start(Reply::status(202)).await;
    // The first answer comes far too late; a generous per-attempt timeout still keeps the
    // prompt second attempt well inside it on a busy machine.
    backend.script([Reply::status(202).delay(Duration::from_secs(20))]);
    let t = ExporterTelemetry::default();
    let exp = exporter(
        backend.url("/api/v2/spans"),
        Duration::from_millis(1500),
        t.clone(),
    );
    let start = Instant::now();
    exp.export(&sample_batch()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1500));
    assert_eq!(t.retries.get(), 1, "the timed-out attempt is retried");
    assert_eq!(backend.received().len(), 2);
}

#[test]
fn tag_clashes_resolve_to_the_more_specific_value() {
    let mut sp = span(TRACE, 5, 0, "GET", SpanKind::Server, 0, 10);
    // Span attribute beats resource attribute; the status beats a span attribute `error`.
    sp.attributes = vec![
        kv("deployment.environment.name", s("canary")),
        kv("error", s("from-attribute")),
        kv("quote\"key", s("line\nbreak")),
    ];
    sp.status = error_status("");
    let (body, _) = encode(&[record("svc", sp)]);
    let out = decode("zipkin_json.py", &body, &[]);
    let tags = &out["spans"][0]["tags"];
    assert_eq!(tags["deployment.environment.name"], "canary");
    assert_eq!(tags["error"], "true");
    assert_eq!(tags["quote\"key"], "line\nbreak");
    let text = String::from_utf8(body).unwrap();
    assert_eq!(text.matches("\"error\":").count(), 1, "{text}");
}

#[test]
fn unknown_start_leaves_timestamp_and_duration_out() {
    let mut sp = span(TRACE, 5, 0, "GET", SpanKind::Server, 0, 10);
    sp.start_time_unix_nano = 0;
    let (body, _) = encode(&[record("svc", sp)]);
    let out = decode("zipkin_json.py", &body, &[]);
    let z = &out["spans"][0];
    assert!(
        z.get("timestamp").is_none() && z.get("duration").is_none(),
        "{z}"
    );
    // End before start (clock step): still a valid 1 µs span.
    let mut sp = span(TRACE, 6, 0, "GET", SpanKind::Server, 50, 0);
    sp.end_time_unix_nano = sp.start_time_unix_nano - 5_000;
    let (body, _) = encode(&[record("svc", sp)]);
    assert_eq!(
        decode("zipkin_json.py", &body, &[])["spans"][0]["duration"],
        1
    );
}
