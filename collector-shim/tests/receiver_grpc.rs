//! The OTLP/gRPC receiver over a real HTTP/2 connection, driven by the standard generated
//! OTLP client (`TraceServiceClient`): plain and gzip-compressed requests, partial success for
//! invalid spans, oversized messages refused.
mod pipeline_support;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use pipeline_support::*;
use tonic::codec::CompressionEncoding;

#[tokio::test]
async fn grpc_export_plain_gzip_partial_success_and_limits() {
    let exp = RecordingExporter::new("rec");
    let mut cfg = fast_config();
    cfg.receiver.grpc_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.receiver.max_body_bytes = 64 * 1024;
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    let url = format!("http://{}", shim.grpc.expect("grpc listener"));
    let mut client = TraceServiceClient::connect(url.clone()).await.unwrap();

    let t = trace_id(1, 0x1234);
    let resp = client
        .export(request(
            "grpc-svc",
            (0..3).map(|n| span(&t, n, 2)).collect(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);

    let mut gz = TraceServiceClient::connect(url.clone())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let mut spans: Vec<_> = (3..6).map(|n| span(&t, n, 2)).collect();
    spans[0].span_id = vec![0; 8]; // invalid: all zero
    let resp = gz
        .export(request("grpc-svc", spans))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success.map(|p| p.rejected_spans), Some(1));

    // A message above receiver.max_body_bytes is refused by the server.
    let mut big = span(&t, 9, 1);
    big.name = "x".repeat(100 * 1024);
    let err = client
        .export(request("grpc-svc", vec![big]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");

    assert!(
        eventually(30, || exp.span_count() == 5).await,
        "got {}",
        exp.span_count()
    );
    assert_eq!(
        shim.metric("shim_spans_received_total{transport=\"grpc\"}"),
        5.0
    );
    let summary = shim.stop().await;
    assert!(summary.flushed);
}
