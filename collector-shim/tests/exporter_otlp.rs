//! OTLP exporter: regrouping into ResourceSpans/ScopeSpans, gzip, partial success, retries;
//! bodies decoded by the Python opentelemetry-proto package (`tests/decoders/otlp_proto.py`).
mod exporter_support;

use std::time::Duration;

use collector_shim::exporter::otlp::{encode, model, OtlpExporter};
use collector_shim::exporter::{
    Compression, ExportError, Exporter, ExporterConfig, ExporterTelemetry, RetryConfig,
};
use exporter_support::backend::{decode, Backend, Reply};
use exporter_support::*;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use std::sync::Arc;

fn exporter(url: String, compression: Compression, t: ExporterTelemetry) -> OtlpExporter {
    let ExporterConfig::Otlp(mut cfg) = ExporterConfig::otlp(url) else {
        unreachable!()
    };
    cfg.compression = compression;
    cfg.headers
        .insert("x-scope-orgid".into(), "tenant-1".into());
    cfg.retry = RetryConfig {
        initial_interval: Duration::from_millis(20),
        max_interval: Duration::from_millis(200),
        max_elapsed_time: Duration::from_secs(20),
        ..RetryConfig::default()
    };
    OtlpExporter::new("otlp", &cfg, t).unwrap()
}

/// Spans of two proxies' requests interleaved, one with a second scope.
fn mixed_batch() -> Vec<collector_shim::model::SpanRecord> {
    let mut batch = sample_batch();
    let other_scope = Arc::new(InstrumentationScope {
        name: "custom".into(),
        ..Default::default()
    });
    let mut extra = record(
        "envoy-proxy",
        span(TRACE, 0x4444, 0x1111, "late", SpanKind::Internal, 9_000, 10),
    );
    extra.scope = other_scope;
    batch.push(extra);
    batch
}

#[test]
fn regroups_by_resource_then_scope() {
    let req = model::request(&mixed_batch());
    assert_eq!(req.resource_spans.len(), 2);
    let proxy = &req.resource_spans[0];
    assert_eq!(proxy.scope_spans.len(), 2);
    assert_eq!(
        proxy.scope_spans[0].scope.as_ref().unwrap().name,
        "aetherflow.trace_filter"
    );
    assert_eq!(proxy.scope_spans[0].spans.len(), 2);
    assert_eq!(proxy.scope_spans[1].spans[0].name, "late");
    assert_eq!(
        req.resource_spans[1].scope_spans[0].spans[0].name,
        "users.Users/Get"
    );
}

#[test]
fn body_decodes_with_python_opentelemetry_proto() {
    for compression in [Compression::None, Compression::Gzip] {
        let body = encode(&mixed_batch(), compression);
        assert_eq!(
            body.starts_with(&[0x1f, 0x8b]),
            compression == Compression::Gzip
        );
        let out = decode("otlp_proto.py", &body, &[]);
        let rs = out["resourceSpans"].as_array().unwrap();
        assert_eq!(rs.len(), 2);
        let attrs = &rs[0]["resource"]["attributes"];
        assert_eq!(attrs[0]["key"], "service.name");
        assert_eq!(attrs[0]["value"]["stringValue"], "envoy-proxy");
        let span = &rs[0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["spanId"], "0000000000001111");
        assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(span["kind"], "SPAN_KIND_SERVER");
        assert_eq!(span["status"]["code"], "STATUS_CODE_ERROR");
        assert_eq!(span["flags"], 0x301);
        assert_eq!(span["startTimeUnixNano"], T0.to_string());
    }
}

#[tokio::test]
async fn posts_gzip_protobuf_with_headers() {
    let backend = Backend::start(Reply::status(200)).await;
    let exp = exporter(
        backend.url("/v1/traces"),
        Compression::Gzip,
        ExporterTelemetry::default(),
    );
    exp.export(&mixed_batch()).await.unwrap();
    let got = backend.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path, "/v1/traces");
    assert_eq!(r.headers["content-type"], "application/x-protobuf");
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert_eq!(r.headers["x-scope-orgid"], "tenant-1");
    let out = decode("otlp_proto.py", &r.body, &["--gzip"]);
    let n: usize = out["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .map(|ss| ss["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 4);
}

#[tokio::test]
async fn partial_success_is_counted_not_retried() {
    let backend = Backend::start(Reply::status(200)).await;
    let resp = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 2,
            error_message: "span name too long".into(),
        }),
    };
    backend.script([Reply::status(200)
        .header("content-type", "application/x-protobuf")
        .body(resp.encode_to_vec())]);
    let t = ExporterTelemetry::default();
    let exp = exporter(backend.url("/v1/traces"), Compression::None, t.clone());
    exp.export(&sample_batch()).await.unwrap();
    assert_eq!(t.rejected_spans.get(), 2);
    assert_eq!(t.retries.get(), 0);
    assert_eq!(backend.received().len(), 1);
}

#[tokio::test]
async fn outage_429_and_400() {
    // Connection refused first, then the collector answers 429 with an HTTP-date Retry-After
    // of "now" (in the past by the time it is read), then accepts.
    let addr = Backend::unused_addr().await;
    let t = ExporterTelemetry::default();
    let exp = Arc::new(exporter(
        format!("http://{addr}/v1/traces"),
        Compression::None,
        t.clone(),
    ));
    let e = exp.clone();
    let task = tokio::spawn(async move { e.export(&sample_batch()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backend = Backend::start_on(addr, Reply::status(200)).await;
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    backend.script([Reply::status(429).header("retry-after", now)]);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(t.retries.get() >= 2, "refused + 429: {}", t.retries.get());
    let got = backend.received();
    assert_eq!(got.len(), 2, "the 429 and the accepted retry");
    assert_eq!(got[0].body, got[1].body, "the same batch is resent");

    backend.script([Reply::status(400).body("invalid trace id")]);
    let err = exp.export(&sample_batch()).await.unwrap_err();
    assert!(
        matches!(&err, ExportError::NonRetryable(m) if m.contains("invalid trace id")),
        "{err:?}"
    );
}

#[tokio::test]
async fn gives_up_after_max_elapsed_time() {
    let backend = Backend::start(Reply::status(503)).await;
    let ExporterConfig::Otlp(mut cfg) = ExporterConfig::otlp(backend.url("/v1/traces")) else {
        unreachable!()
    };
    cfg.retry = RetryConfig {
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(50),
        max_elapsed_time: Duration::from_secs(2),
        ..RetryConfig::default()
    };
    let t = ExporterTelemetry::default();
    let exp = OtlpExporter::new("otlp", &cfg, t.clone()).unwrap();
    let start = std::time::Instant::now();
    let err = exp.export(&sample_batch()).await.unwrap_err();
    assert!(matches!(err, ExportError::Throttled { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(t.failed_attempts.get() >= 2);
    assert_eq!(backend.received().len() as u64, t.failed_attempts.get());
}

#[test]
fn direct_encoding_matches_prost_on_the_rebuilt_request() {
    let mut batch = mixed_batch();
    // A resource equal in content but behind another Arc merges into the first group.
    batch.push(record(
        "users",
        span(TRACE, 0x5555, 0x2222, "db", SpanKind::Client, 400, 900),
    ));
    let reference = model::request(&batch).encode_to_vec();
    assert_eq!(model::encode(&batch), reference);
    assert_eq!(model::encode(&[]), Vec::<u8>::new());
}
