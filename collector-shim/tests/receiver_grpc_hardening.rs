//! The OTLP/gRPC listener under connections that are held without being used, as
//! `receiver_hardening.rs` does for OTLP/HTTP: idle TCP connections, clients that stop in the
//! middle of the HTTP/2 preface, and HTTP/2 connections that never make a call neither stop new
//! exports nor grow memory without bound; beyond `receiver.max_connections` connections are
//! closed at once and counted; `receiver.header_read_timeout` closes the held ones; a call whose
//! request message stalls ends in `DEADLINE_EXCEEDED` after `receiver.body_read_timeout`.
mod hardening_support;
mod pipeline_support;

use std::time::Duration;

use hardening_support::{assert_limit_reached, hold, open_files_limit, rss_kib};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use pipeline_support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The HTTP/2 client preface and an empty SETTINGS frame: a connection ready for calls.
const PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

async fn export(shim: &Shim, tag: u32) -> Result<(), tonic::Status> {
    let url = format!("http://{}", shim.grpc.expect("grpc listener"));
    let mut client = TraceServiceClient::connect(url)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let t = trace_id(tag, 1);
    client
        .export(request("grpc-hardening", vec![span(&t, 1, 1)]))
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_grpc_connections_neither_block_exports_nor_grow_memory() {
    let held = 3000.min(open_files_limit().saturating_sub(300) / 2);
    assert!(
        held >= 500,
        "too few file descriptors for this test: {held}"
    );
    let max_connections = held / 2 + 100;
    let mut cfg = fast_config();
    cfg.receiver.grpc_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.receiver.max_connections = max_connections;
    cfg.receiver.header_read_timeout = Duration::from_secs(10);
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    let grpc = shim.grpc.expect("grpc listener");
    export(&shim, 1).await.expect("first export");
    let before = rss_kib();

    // A third idle TCP, a third half a preface, a third a ready HTTP/2 connection with no call.
    let mut conns = hold(grpc, held, |i| match i % 3 {
        1 => &PREFACE_AND_SETTINGS[..10],
        2 => PREFACE_AND_SETTINGS,
        _ => b"",
    })
    .await;
    assert!(conns.len() >= held * 9 / 10, "connected {}", conns.len());
    assert_limit_reached(&shim, max_connections, before, 96 * 1024).await;

    // The idle timeout closes every held connection (the HTTP/1 listener holds none) ...
    assert!(
        eventually(40, || shim.metric("shim_connections_open") < 1.0).await,
        "still open: {}",
        shim.metric("shim_connections_open")
    );
    // ... the server side really closed them (EOF or GOAWAY then EOF) ...
    for s in conns.iter_mut().take(30) {
        let mut buf = [0u8; 256];
        let mut closed = false;
        for _ in 0..8 {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                Ok(Ok(_)) => continue,
                Err(_) => break,
            }
        }
        assert!(closed, "a held connection was not closed by the server");
    }
    // ... and new exports are served while the attackers still hold their client sockets.
    export(&shim, 2)
        .await
        .expect("export after the held connections");
    assert!(eventually(10, || exp.span_count() >= 2).await);
    drop(conns);
    shim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exports_are_served_beside_many_idle_connections_under_the_limit() {
    let held = 1000.min(open_files_limit().saturating_sub(300) / 2);
    let mut cfg = fast_config();
    cfg.receiver.grpc_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.receiver.max_connections = held + 100;
    cfg.receiver.header_read_timeout = Duration::from_secs(60);
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    let grpc = shim.grpc.expect("grpc listener");
    let conns = hold(grpc, held, |_| PREFACE_AND_SETTINGS).await;
    assert!(
        eventually(20, || shim.metric("shim_connections_open") as usize
            >= conns.len())
        .await,
        "open {}",
        shim.metric("shim_connections_open")
    );
    for tag in 0..20 {
        export(&shim, tag).await.expect("export");
    }
    assert!(eventually(10, || exp.span_count() >= 20).await);
    drop(conns);
    shim.stop().await;
}

/// A request body that sends its first bytes and then stalls forever.
struct Stalled(Option<bytes::Bytes>);

impl hyper::body::Body for Stalled {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(b) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_grpc_message_ends_in_deadline_exceeded_and_is_counted() {
    use http_body_util::BodyExt;
    let mut cfg = fast_config();
    cfg.receiver.grpc_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.receiver.header_read_timeout = Duration::from_secs(120);
    cfg.receiver.body_read_timeout = Duration::from_secs(1);
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    let grpc = shim.grpc.expect("grpc listener");

    // A real HTTP/2 call whose message announces 1000 bytes and sends 10.
    let tcp = TcpStream::connect(grpc).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let mut first = vec![0u8, 0, 0, 0x03, 0xe8];
    first.extend([0u8; 10]);
    let req = hyper::Request::post(format!(
        "http://{grpc}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(Stalled(Some(first.into())))
    .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .expect("an answer within 30 s")
        .expect("response");
    // gRPC puts the status in the headers of a trailers-only answer, else in the trailers.
    let status = match resp.headers().get("grpc-status") {
        Some(v) => v.to_str().unwrap_or("").to_string(),
        None => {
            let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
                .await
                .expect("body within 30 s")
                .expect("body");
            body.trailers()
                .and_then(|t| t.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        }
    };
    assert_eq!(status, "4", "DEADLINE_EXCEEDED");
    assert_eq!(
        shim.metric("shim_requests_refused_total{reason=\"body_read_timeout\"}"),
        1.0
    );
    // Other clients were served throughout.
    export(&shim, 3).await.expect("export");
    assert!(eventually(10, || exp.span_count() == 1).await);
    driver.abort();
    shim.stop().await;
}
