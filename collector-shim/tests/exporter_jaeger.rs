//! Jaeger exporter: mapping, the hand-written Thrift encoder checked by the Python `thrift`
//! library (`tests/decoders/jaeger_thrift.py`), and the transport against a loopback server.
mod exporter_support;

use std::time::Duration;

use collector_shim::exporter::jaeger::{encode, model, JaegerExporter};
use collector_shim::exporter::{
    ExportError, Exporter, ExporterConfig, ExporterTelemetry, RetryConfig,
};
use exporter_support::backend::{decode, Backend, Reply};
use exporter_support::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::{Link, SpanKind};
use serde_json::json;

fn exporter(url: String, t: ExporterTelemetry) -> JaegerExporter {
    let ExporterConfig::Jaeger(mut cfg) = ExporterConfig::jaeger(url) else {
        unreachable!()
    };
    cfg.retry = RetryConfig {
        initial_interval: Duration::from_millis(20),
        max_interval: Duration::from_millis(200),
        max_elapsed_time: Duration::from_secs(20),
        ..RetryConfig::default()
    };
    JaegerExporter::new("jaeger", &cfg, t).unwrap()
}

#[test]
fn span_mapping() {
    let batch = sample_batch();
    let s = model::span(&batch[0]).unwrap();
    assert_eq!(s.trace_id_high, 0x4bf92f3577b34da6u64 as i64);
    assert_eq!(s.trace_id_low, 0xa3ce929d0e0e4736u64 as i64);
    assert_eq!(s.span_id, 0x1111);
    assert_eq!(s.parent_span_id, 0x00f067aa0ba902b7);
    assert_eq!(s.references.len(), 1);
    assert_eq!(s.references[0].ref_type, model::CHILD_OF);
    assert_eq!(s.flags, 1);
    assert_eq!(s.start_time, (T0 / 1000) as i64);
    assert_eq!(s.duration, 12_400);
    let tag = |k: &str| s.tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
    assert_eq!(
        tag("span.kind"),
        Some(model::TagValue::Str("server".into()))
    );
    assert_eq!(
        tag("http.response.status_code"),
        Some(model::TagValue::Long(503))
    );
    assert_eq!(tag("error"), Some(model::TagValue::Bool(true)));
    assert_eq!(
        tag("otel.status_description"),
        Some(model::TagValue::Str("upstream unavailable".into()))
    );
    assert_eq!(s.logs.len(), 1);
    // The record-only span is the only unsampled one.
    assert_eq!(model::span(&batch[2]).unwrap().flags, 0);
    assert_eq!(model::span(&batch[1]).unwrap().flags, 1);
}

#[test]
fn thrift_bytes_decode_with_the_python_thrift_library() {
    let mut batch = sample_batch();
    batch[0]
        .span
        .attributes
        .push(kv("ratio", Value::DoubleValue(0.25)));
    batch[0]
        .span
        .attributes
        .push(kv("blob", Value::BytesValue(vec![0xff, 0x00, 0xfe])));
    batch[0].span.trace_state = "ot=th:8".into();
    batch[1].span.links.push(Link {
        trace_id: 9u128.to_be_bytes().to_vec(),
        span_id: 3u64.to_be_bytes().to_vec(),
        ..Default::default()
    });
    let (bodies, skipped) = encode(&batch);
    assert_eq!(skipped, 0);
    // Two processes (envoy-proxy, users): one Batch each, in first-seen order.
    assert_eq!(bodies.len(), 2);
    let proxy = decode("jaeger_thrift.py", &bodies[0], &[]);
    assert_eq!(proxy["process"]["serviceName"], "envoy-proxy");
    assert_eq!(
        proxy["process"]["tags"],
        json!({"deployment.environment.name": "test"})
    );
    let spans = proxy["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let server = &spans[0];
    assert_eq!(server["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(server["spanId"], "0000000000001111");
    assert_eq!(server["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(server["operationName"], "GET /api/users/{id}");
    assert_eq!(server["startTime"], json!(T0 / 1000));
    assert_eq!(server["duration"], 12_400);
    assert_eq!(
        server["references"],
        json!([{"refType": "CHILD_OF", "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7"}])
    );
    assert_eq!(server["tags"]["http.response.status_code"], 503);
    assert_eq!(server["tagTypes"]["http.response.status_code"], "LONG");
    assert_eq!(server["tags"]["ratio"], 0.25);
    assert_eq!(server["tagTypes"]["ratio"], "DOUBLE");
    assert_eq!(server["tags"]["blob"], "/wD+");
    assert_eq!(server["tagTypes"]["blob"], "BINARY");
    assert_eq!(server["tags"]["error"], true);
    assert_eq!(server["tags"]["w3c.tracestate"], "ot=th:8");
    assert_eq!(server["tags"]["otel.scope.name"], "aetherflow.trace_filter");
    assert_eq!(
        server["logs"],
        json!([{"timestamp": T0 / 1000 + 5000, "fields": {"event": "retry", "attempt": 2}}])
    );
    assert_eq!(spans[1]["flags"], 0);
    assert_eq!(spans[1]["tags"]["aetherflow.sampling.record_only"], true);
    assert!(
        spans[1]["tags"].get("span.kind").is_none(),
        "internal spans carry no span.kind"
    );

    let users = decode("jaeger_thrift.py", &bodies[1], &[]);
    assert_eq!(users["process"]["serviceName"], "users");
    let c = &users["spans"][0];
    assert_eq!(c["tags"]["span.kind"], "client");
    assert_eq!(c["tags"]["server.port"], 50051);
    assert_eq!(
        c["references"][1],
        json!({"refType": "FOLLOWS_FROM", "traceId": "00000000000000000000000000000009", "spanId": "0000000000000003"})
    );
}

#[test]
fn spans_of_equal_resources_share_one_batch() {
    // Two requests of the same proxy: different Arcs, equal resources -> one process.
    let a = record(
        "envoy-proxy",
        span(TRACE, 1, 0, "a", SpanKind::Server, 0, 5),
    );
    let b = record(
        "envoy-proxy",
        span(TRACE, 2, 1, "b", SpanKind::Client, 1, 2),
    );
    let (bodies, _) = encode(&[a, b]);
    assert_eq!(bodies.len(), 1);
    let out = decode("jaeger_thrift.py", &bodies[0], &[]);
    assert_eq!(out["spans"].as_array().unwrap().len(), 2);
}

#[test]
fn truncated_bodies_are_refused_by_the_decoder() {
    // The decoder is a real check: a cut body fails.
    let (bodies, _) = encode(&sample_batch());
    let cut = &bodies[0][..bodies[0].len() - 3];
    let script = aetherflow_harness::python::decoder("jaeger_thrift.py");
    let out =
        aetherflow_harness::python::run([script], cut, aetherflow_harness::python::DECODER_TIMEOUT)
            .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Jaeger Thrift Batch"));
}

#[tokio::test]
async fn posts_one_thrift_batch_per_process() {
    let backend = Backend::start(Reply::status(202)).await;
    let exp = exporter(backend.url("/api/traces"), ExporterTelemetry::default());
    exp.export(&sample_batch()).await.unwrap();
    let got = backend.received();
    assert_eq!(got.len(), 2);
    for r in &got {
        assert_eq!(r.path, "/api/traces");
        assert_eq!(r.headers["content-type"], "application/x-thrift");
    }
    let services: Vec<String> = got
        .iter()
        .map(|r| {
            decode("jaeger_thrift.py", &r.body, &[])["process"]["serviceName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(services, ["envoy-proxy", "users"]);
}

#[tokio::test]
async fn backend_errors_503_then_recovers_and_400_is_final() {
    let backend = Backend::start(Reply::status(202)).await;
    backend.script([Reply::status(503), Reply::status(502)]);
    let t = ExporterTelemetry::default();
    let exp = exporter(backend.url("/api/traces"), t.clone());
    exp.export(&sample_batch()).await.unwrap();
    assert_eq!(t.retries.get(), 2);
    assert_eq!(backend.received().len(), 4, "2 failures + 2 processes");

    backend.script([Reply::status(400).body("Unable to process request body: unknown field")]);
    let err = exp.export(&sample_batch()).await.unwrap_err();
    assert!(
        matches!(&err, ExportError::NonRetryable(m) if m.contains("unknown field")),
        "{err:?}"
    );
}
