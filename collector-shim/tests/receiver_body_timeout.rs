//! `receiver.body_read_timeout` on real sockets: clients that send a request head and then stall
//! or trickle the body get 408 and a closed connection once the timeout passes (counted as
//! `body_read_timeout`), their connection slots come back, and exports from other clients are
//! served all along.
mod pipeline_support;

use std::time::Duration;

use pipeline_support::*;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request head announcing `len` body bytes, then `sent` of them.
fn head(len: usize, sent: usize) -> Vec<u8> {
    let mut b = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: shim\r\ncontent-type: application/x-protobuf\r\ncontent-length: {len}\r\n\r\n"
    )
    .into_bytes();
    b.extend(std::iter::repeat_n(0x0a, sent));
    b
}

/// Reads until the server closes the connection (bounded), returning what it answered.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still held 30 s after its body stalled"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_trickled_bodies_get_408_and_release_their_connection() {
    const STALLED: usize = 8;
    let mut cfg = fast_config();
    // Two slots beyond the stalled clients, for the exports made meanwhile.
    cfg.receiver.max_connections = STALLED + 2;
    // The head arrives at once; only the body timeout can close these connections.
    cfg.receiver.header_read_timeout = Duration::from_secs(120);
    cfg.receiver.body_read_timeout = Duration::from_secs(1);
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(cfg, vec![exp.clone()]).await;

    // Half stall after a few body bytes, half trickle one byte every 100 ms.
    let mut stalled = Vec::new();
    for _ in 0..STALLED / 2 {
        let mut s = TcpStream::connect(shim.addr).await.expect("connect");
        s.write_all(&head(10_000, 10)).await.expect("write head");
        stalled.push(s);
    }
    let mut tricklers = Vec::new();
    for _ in 0..STALLED / 2 {
        let mut s = TcpStream::connect(shim.addr).await.expect("connect");
        s.write_all(&head(10_000, 0)).await.expect("write head");
        let (mut rd, mut wr) = s.into_split();
        tricklers.push(tokio::spawn(async move {
            let writer = async move {
                // At most 300 bytes (30 s): far short of the announced length.
                for _ in 0..300 {
                    if wr.write_all(&[0x0a]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            let reader = async move {
                let mut out = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut out)).await;
                String::from_utf8_lossy(&out).into_owned()
            };
            let (answer, ()) = tokio::join!(reader, writer);
            answer
        }));
    }
    assert!(
        eventually(20, || shim.metric("shim_connections_open") as usize
            >= STALLED)
        .await,
        "open {}",
        shim.metric("shim_connections_open")
    );
    // Held bodies take no slot from other clients' exports.
    for tag in 0..5 {
        assert_eq!(shim.export_one("body-timeout", tag).await, 200);
    }

    for mut s in stalled {
        let answer = read_to_close(&mut s).await;
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "stalled body got: {answer:?}"
        );
        assert!(answer.contains("receiver.body_read_timeout"), "{answer:?}");
    }
    for t in tricklers {
        let answer = t.await.expect("trickler");
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "trickled body got: {answer:?}"
        );
    }
    assert_eq!(
        shim.metric("shim_requests_refused_total{reason=\"body_read_timeout\"}") as usize,
        STALLED
    );
    // Every held connection was released: all slots serve new clients at once.
    assert!(
        eventually(10, || (shim.metric("shim_connections_open") as usize) <= 2).await,
        "open {}",
        shim.metric("shim_connections_open")
    );
    let exports: Vec<_> = (0..STALLED as u32)
        .map(|i| {
            let url = shim.url("/v1/traces");
            tokio::spawn(async move {
                let t = trace_id(100 + i, 1);
                let body = request("body-timeout", vec![span(&t, 1, 1)]).encode_to_vec();
                reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for e in exports {
        assert_eq!(e.await.expect("task").expect("export"), 200);
    }
    assert!(eventually(10, || exp.span_count() >= 5 + STALLED).await);
    assert_eq!(
        shim.metric("shim_connections_refused_total"),
        0.0,
        "no client was turned away"
    );
    shim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_body_within_the_timeout_is_served() {
    let mut cfg = fast_config();
    cfg.receiver.body_read_timeout = Duration::from_secs(5);
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    // The body arrives in two parts, well inside the timeout.
    let t = trace_id(7, 1);
    let body = request("body-timeout", vec![span(&t, 1, 1)]).encode_to_vec();
    let mut s = TcpStream::connect(shim.addr).await.expect("connect");
    let mut first = head(body.len(), 0);
    first.extend_from_slice(&body[..body.len() / 2]);
    s.write_all(&first).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(&body[body.len() / 2..]).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
        .await
        .expect("answer")
        .expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(eventually(10, || exp.span_count() == 1).await);
    assert_eq!(
        shim.metric("shim_requests_refused_total{reason=\"body_read_timeout\"}"),
        0.0
    );
    shim.stop().await;
}
