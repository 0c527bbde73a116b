//! The OTLP/HTTP listener under connections that are held without being used: thousands of
//! idle ones and slowloris ones (a request head that never ends) neither stop new exports nor
//! grow memory without bound; beyond `receiver.max_connections` connections are closed at once
//! and counted; `receiver.header_read_timeout` closes the held ones.
mod pipeline_support;

use std::time::Duration;

use pipeline_support::*;
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The soft limit on open files of this process (the test's clients and the shim's server
/// sockets share it).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1024)
}

/// Resident memory of this process in KiB (0 where /proc is missing).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn export(shim: &Shim, tag: u32) -> reqwest::StatusCode {
    let t = trace_id(tag, 1);
    let body = request("hardening", vec![span(&t, 1, 1)]).encode_to_vec();
    reqwest::Client::new()
        .post(shim.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("export request")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_neither_block_exports_nor_grow_memory() {
    // Each held connection costs two descriptors here (client and server side).
    let held = 3000.min(open_files_limit().saturating_sub(300) / 2);
    assert!(
        held >= 500,
        "too few file descriptors for this test: {held}"
    );
    let max_connections = held / 2 + 100;
    let mut cfg = fast_config();
    cfg.receiver.max_connections = max_connections;
    // Long enough that every connection below is still held when the export is made; the
    // release is then waited for with a bounded loop, not asserted on time.
    cfg.receiver.header_read_timeout = Duration::from_secs(10);
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    assert_eq!(export(&shim, 1).await, 200);
    let before = rss_kib();

    // Half idle (connected, nothing sent), half slowloris (a request head that never ends).
    let mut conns = Vec::with_capacity(held);
    for i in 0..held {
        let Ok(mut s) = TcpStream::connect(shim.addr).await else {
            break;
        };
        if i % 2 == 1 {
            let _ = s
                .write_all(b"POST /v1/traces HTTP/1.1\r\nhost: shim\r\ncontent-type: application/x-protobuf\r\n")
                .await;
        }
        conns.push(s);
    }
    assert!(conns.len() >= held * 9 / 10, "connected {}", conns.len());
    // The shim accepted up to its limit and closed the rest at once (counted).
    assert!(
        eventually(20, || shim.metric("shim_connections_open") as usize
            >= max_connections - 1
            && shim.metric("shim_connections_refused_total") > 0.0)
        .await,
        "open {} refused {}",
        shim.metric("shim_connections_open"),
        shim.metric("shim_connections_refused_total")
    );
    assert!(shim.metric("shim_connections_open") as usize <= max_connections);
    let grown_kib = rss_kib().saturating_sub(before);
    // Bounded by the connection limit: a few KiB each (hyper's buffers, a task, two sockets).
    assert!(
        grown_kib < 64 * 1024,
        "{held} held connections grew memory by {grown_kib} KiB"
    );

    // The header read timeout closes every held connection (idle and slow alike) ...
    assert!(
        eventually(30, || shim.metric("shim_connections_open") < 1.0).await,
        "still open: {}",
        shim.metric("shim_connections_open")
    );
    // ... and new exports are served while the attackers still hold their client sockets.
    assert_eq!(export(&shim, 2).await, 200);
    assert!(eventually(10, || exp.span_count() >= 2).await);
    drop(conns);
    shim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_served_beside_thousands_of_idle_connections_under_the_limit() {
    let held = 2000.min(open_files_limit().saturating_sub(300) / 2);
    let mut cfg = fast_config();
    cfg.receiver.max_connections = held + 100;
    cfg.receiver.header_read_timeout = Duration::from_secs(60);
    let exp = RecordingExporter::new("rec");
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    let mut conns = Vec::with_capacity(held);
    for _ in 0..held {
        if let Ok(s) = TcpStream::connect(shim.addr).await {
            conns.push(s);
        }
    }
    assert!(
        eventually(20, || shim.metric("shim_connections_open") as usize
            >= conns.len())
        .await,
        "open {}",
        shim.metric("shim_connections_open")
    );
    for tag in 0..20 {
        assert_eq!(export(&shim, tag).await, 200);
    }
    assert!(eventually(10, || exp.span_count() >= 20).await);
    drop(conns);
    shim.stop().await;
}
