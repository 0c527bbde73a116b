//! The OTLP/HTTP listener under connections that are held without being used: thousands of
//! idle ones and slowloris ones (a request head that never ends) neither stop new exports nor
//! grow memory without bound; beyond `receiver.max_connections` connections are closed at once
//! and counted; `receiver.header_read_timeout` closes the held ones.
mod hardening_support;
mod pipeline_support;

use std::time::Duration;

use hardening_support::{assert_limit_reached, hold, open_files_limit, rss_kib};
use pipeline_support::*;

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
    assert_eq!(shim.export_one("hardening", 1).await, 200);
    let before = rss_kib();

    // Half idle (connected, nothing sent), half slowloris (a request head that never ends).
    let conns = hold(shim.addr, held, |i| match i % 2 {
        1 => b"POST /v1/traces HTTP/1.1\r\nhost: shim\r\ncontent-type: application/x-protobuf\r\n",
        _ => b"",
    })
    .await;
    assert!(conns.len() >= held * 9 / 10, "connected {}", conns.len());
    // The shim accepted up to its limit and closed the rest at once (counted); memory is
    // bounded by the connection limit: a few KiB each (hyper's buffers, a task, two sockets).
    assert_limit_reached(&shim, max_connections, before, 64 * 1024).await;

    // The header read timeout closes every held connection (idle and slow alike) ...
    assert!(
        eventually(30, || shim.metric("shim_connections_open") < 1.0).await,
        "still open: {}",
        shim.metric("shim_connections_open")
    );
    // ... and new exports are served while the attackers still hold their client sockets.
    assert_eq!(shim.export_one("hardening", 2).await, 200);
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
    let conns = hold(shim.addr, held, |_| b"").await;
    assert!(
        eventually(20, || shim.metric("shim_connections_open") as usize
            >= conns.len())
        .await,
        "open {}",
        shim.metric("shim_connections_open")
    );
    for tag in 0..20 {
        assert_eq!(shim.export_one("hardening", tag).await, 200);
    }
    assert!(eventually(10, || exp.span_count() >= 20).await);
    drop(conns);
    shim.stop().await;
}
