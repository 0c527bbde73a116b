//! The OTLP/HTTP receiver over real sockets: protobuf, JSON, gzip, partial success and every
//! refusal (malformed 400, oversized 413, gzip bomb 413, unsupported 415), plus the admin routes.
mod pipeline_support;

use std::io::Write;

use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use pipeline_support::*;
use prost::Message;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(shim: &Shim, ct: &str, enc: Option<&str>, body: Vec<u8>) -> reqwest::Response {
    let mut req = client()
        .post(shim.url("/v1/traces"))
        .header("content-type", ct)
        .body(body);
    if let Some(e) = enc {
        req = req.header("content-encoding", e);
    }
    req.send().await.expect("request")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn three_spans() -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let t = trace_id(1, 0x00ab_cdef_0123_4567);
    (0..3).map(|n| span(&t, n, 5)).collect()
}

#[tokio::test]
async fn protobuf_json_and_gzip_bodies_reach_the_exporter() {
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(fast_config(), vec![exp.clone()]).await;

    let pb = request("svc-a", three_spans()).encode_to_vec();
    let r = post(&shim, "application/x-protobuf", None, pb.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let resp = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(resp.partial_success, None);

    let r = post(&shim, "application/x-protobuf", Some("gzip"), gzip(&pb)).await;
    assert_eq!(r.status(), 200);

    // OTLP JSON as the spec writes it: hex ids, integer enums, lowerCamelCase, int64 as strings.
    let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc-json"}}]},
      "scopeSpans":[{"scope":{"name":"curl"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
      "parentSpanId":"eee19b7ec3c1b173","name":"GET /json","kind":2,"startTimeUnixNano":"1544712660000000000",
      "endTimeUnixNano":"1544712661000000000","attributes":[{"key":"http.response.status_code","value":{"intValue":"200"}}],
      "status":{"code":1}}]}]}]}"#;
    let r = post(&shim, "application/json", None, json.as_bytes().to_vec()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), "{}");
    let r = post(
        &shim,
        "application/json",
        Some("gzip"),
        gzip(json.as_bytes()),
    )
    .await;
    assert_eq!(r.status(), 200);

    assert!(
        eventually(30, || exp.span_count() == 8).await,
        "got {}",
        exp.span_count()
    );
    let spans = exp.spans();
    let j = spans.iter().find(|s| s.name == "GET /json").unwrap();
    assert_eq!(
        j.trace_id,
        vec![
            0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
            0xc6, 0x0c
        ]
    );
    assert_eq!(
        j.parent_span_id,
        vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73]
    );
    assert_eq!(j.kind, 2);
    assert_eq!(j.status.as_ref().unwrap().code, 1);
    assert_eq!(
        shim.metric("shim_spans_received_total{transport=\"http_protobuf\"}"),
        6.0
    );
    assert_eq!(
        shim.metric("shim_spans_received_total{transport=\"http_json\"}"),
        2.0
    );
    shim.stop().await;
}

#[tokio::test]
async fn invalid_spans_get_a_partial_success_in_the_request_encoding() {
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(fast_config(), vec![exp.clone()]).await;
    let mut spans = three_spans();
    spans[1].trace_id = vec![0; 16]; // all-zero: invalid per OTLP
    spans[2].span_id = vec![1, 2, 3]; // wrong length
    let r = post(
        &shim,
        "application/x-protobuf",
        None,
        request("svc", spans).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let resp = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_spans, 2);
    assert!(
        ps.error_message.contains("trace_id"),
        "{}",
        ps.error_message
    );

    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"","spanId":"eee19b7ec3c1b174","name":"x"}]}]}]}"#;
    let r = post(&shim, "application/json", None, json.as_bytes().to_vec()).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");

    assert!(eventually(30, || exp.span_count() == 1).await);
    assert_eq!(
        shim.metric("shim_spans_refused_total{reason=\"invalid_span\"}"),
        3.0
    );
    shim.stop().await;
}

#[tokio::test]
async fn malformed_oversized_bombs_and_unknown_types_are_refused_with_a_reason() {
    let exp = RecordingExporter::new("rec");
    let mut cfg = fast_config();
    cfg.receiver.max_body_bytes = 64 * 1024;
    let shim = Shim::start(cfg, vec![exp.clone()]).await;

    // Malformed protobuf: 400 with a google.rpc.Status naming the problem.
    let r = post(
        &shim,
        "application/x-protobuf",
        None,
        vec![0x0a, 0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(r.status(), 400);
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let st = RpcStatus::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(st.code, 3);
    assert!(
        st.message.contains("invalid OTLP protobuf"),
        "{}",
        st.message
    );

    // Malformed JSON: 400, JSON Status.
    let r = post(
        &shim,
        "application/json",
        None,
        b"{\"resourceSpans\": [".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(v["message"].as_str().unwrap().contains("invalid OTLP JSON"));

    // Bad hex id in JSON: 400.
    let bad = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"eee19b7ec3c1b174"}]}]}]}"#;
    let r = post(&shim, "application/json", None, bad.as_bytes().to_vec()).await;
    assert_eq!(r.status(), 400);

    // Not gzip although it says so: 400.
    let r = post(
        &shim,
        "application/x-protobuf",
        Some("gzip"),
        b"plain".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 400);

    // Oversized body: 413 (declared length), and chunked without a length: 413 as well.
    let r = post(&shim, "application/x-protobuf", None, vec![0u8; 65 * 1024]).await;
    assert_eq!(r.status(), 413);
    assert_eq!(chunked_status(&shim, 20, 8 * 1024).await, 413);

    // Gzip bomb: 20 KiB on the wire, 20 MiB inflated: 413 without inflating it all.
    let bomb = gzip(&vec![0u8; 20 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    let r = post(&shim, "application/x-protobuf", Some("gzip"), bomb).await;
    assert_eq!(r.status(), 413);

    // Unknown content type / encoding: 415.
    let r = post(&shim, "text/plain", None, b"hello".to_vec()).await;
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("content-type"));
    let r = post(&shim, "application/x-protobuf", Some("br"), vec![1]).await;
    assert_eq!(r.status(), 415);

    assert_eq!(
        shim.metric("shim_requests_refused_total{reason=\"malformed\"}"),
        4.0
    );
    assert_eq!(
        shim.metric("shim_requests_refused_total{reason=\"body_too_large\"}"),
        3.0
    );
    assert_eq!(
        shim.metric("shim_requests_refused_total{reason=\"unsupported_media_type\"}"),
        1.0
    );
    assert_eq!(
        shim.metric("shim_requests_refused_total{reason=\"unsupported_encoding\"}"),
        1.0
    );
    assert_eq!(exp.span_count(), 0);
    shim.stop().await;
}

/// Posts `n` chunks of `size` zero bytes with chunked transfer encoding (no content-length)
/// over a raw socket and returns the response status.
async fn chunked_status(shim: &Shim, n: usize, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(shim.addr).await.unwrap();
    let head = "POST /v1/traces HTTP/1.1\r\nhost: shim\r\ncontent-type: application/x-protobuf\r\ntransfer-encoding: chunked\r\n\r\n";
    sock.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![0u8; size];
    for _ in 0..n {
        // The server may answer 413 and close before the whole body is sent.
        if sock
            .write_all(format!("{size:x}\r\n").as_bytes())
            .await
            .is_err()
            || sock.write_all(&chunk).await.is_err()
            || sock.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 1024];
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), sock.read(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let line = String::from_utf8_lossy(&buf[..got]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let shim = Shim::start(fast_config(), vec![RecordingExporter::new("rec")]).await;
    let c = client();
    let r = c.get(shim.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(shim.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(shim.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for name in [
        "shim_sampling_probability",
        "shim_tail_early_evictions_total",
        "shim_ingest_queue_spans",
        "# TYPE shim_export_duration_seconds histogram",
    ] {
        assert!(text.contains(name), "{name} missing in\n{text}");
    }
    shim.stop().await;
}
