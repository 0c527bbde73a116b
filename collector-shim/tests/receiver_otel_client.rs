//! A standard OTLP client against the shim: the OpenTelemetry Rust SDK's own OTLP/HTTP
//! exporter (`opentelemetry-otlp`), in protobuf and in JSON. Its spans carry no
//! `aetherflow.*` attribute, so every one of them must come out of the pipeline.
mod pipeline_support;

use opentelemetry::trace::{Span as _, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use pipeline_support::*;

/// Emits a parent with two children through the SDK (simple processor: one export per span)
/// and returns the SDK's trace id.
fn emit_with_sdk(endpoint: String, protocol: Protocol) -> [u8; 16] {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(endpoint)
        .build()
        .expect("OTLP exporter");
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("sdk-client").build())
        .build();
    let tracer = provider.tracer("shim-test");
    let trace_id = tracer.in_span("parent", |cx| {
        let mut child = tracer.start("child-ok");
        child.set_attribute(KeyValue::new("http.route", "/ok"));
        child.end();
        let mut failed = tracer.start("child-error");
        failed.set_status(Status::error("boom"));
        failed.end();
        cx.span().span_context().trace_id().to_bytes()
    });
    provider.shutdown().expect("sdk shutdown (flushes)");
    trace_id
}

async fn run_client(protocol: Protocol) {
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(fast_config(), vec![exp.clone()]).await;
    let endpoint = shim.url("/v1/traces");
    let trace_id = tokio::task::spawn_blocking(move || emit_with_sdk(endpoint, protocol))
        .await
        .unwrap();
    assert!(
        eventually(30, || exp.span_count() == 3).await,
        "got {}",
        exp.span_count()
    );
    let spans = exp.spans();
    assert!(spans.iter().all(|s| s.trace_id == trace_id));
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["child-error", "child-ok", "parent"]);
    let err = spans.iter().find(|s| s.name == "child-error").unwrap();
    assert_eq!(err.status.as_ref().unwrap().code, 2);
    let rec = exp.batches.lock().unwrap()[0][0].clone();
    assert!(rec
        .resource
        .attributes
        .iter()
        .any(|kv| kv.key == "service.name"));
    assert_eq!(
        shim.metric("shim_requests_refused_total{reason=\"malformed\"}"),
        0.0
    );
    shim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_exporter_over_http_protobuf() {
    run_client(Protocol::HttpBinary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_exporter_over_http_json() {
    run_client(Protocol::HttpJson).await;
}
