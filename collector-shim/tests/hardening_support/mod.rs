//! What the listener-hardening tests (`receiver_hardening.rs`, `receiver_grpc_hardening.rs`)
//! share: the process's file-descriptor budget and memory, and holding many connections open.
use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::pipeline_support::{eventually, Shim};

/// The soft limit on open files of this process (the test's clients and the shim's server
/// sockets share it).
pub fn open_files_limit() -> usize {
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
pub fn rss_kib() -> u64 {
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

/// Opens `n` connections to `addr`, writing `first_bytes(i)` on the i-th (nothing when empty),
/// and keeps them; stops early only when connecting fails.
pub async fn hold(
    addr: SocketAddr,
    n: usize,
    first_bytes: impl Fn(usize) -> &'static [u8],
) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            break;
        };
        let bytes = first_bytes(i);
        if !bytes.is_empty() {
            let _ = s.write_all(bytes).await;
        }
        conns.push(s);
    }
    conns
}

/// Asserts the shim filled its `max_connections` and closed (and counted) the connections
/// beyond, and that holding them grew this process's memory by less than `budget_kib` since
/// `rss_before`.
pub async fn assert_limit_reached(
    shim: &Shim,
    max_connections: usize,
    rss_before: u64,
    budget_kib: u64,
) {
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
    let grown_kib = rss_kib().saturating_sub(rss_before);
    assert!(
        grown_kib < budget_kib,
        "held connections grew memory by {grown_kib} KiB"
    );
}
