//! The load generator: a hyper client driving Envoy over loopback.
//!
//! Written in Rust rather than taken from `wrk`/`h2load` because the harness needs three things
//! those tools do not give together: an exact request count (CPU per request is CPU over a fixed
//! count, and spans expected = requests served), a fixed-rate mode whose latency is measured from
//! the intended send time when a connection falls behind (no coordinated omission), and gRPC
//! over h2c with the `grpc-status` trailer checked. It also needs no system package.
//!
//! A *lane* is one request in flight at a time: an HTTP/1.1 keep-alive connection, or one stream
//! slot on a shared h2 connection for gRPC.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use tokio::net::TcpStream;

/// What kind of traffic the load generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// `GET /api/items` over HTTP/1.1 keep-alive connections.
    Http1,
    /// Unary gRPC `POST /bench.Echo/Ping` over h2c (prior knowledge), several streams per connection.
    Grpc,
}

/// h2 streams per connection for gRPC lanes.
const GRPC_STREAMS_PER_CONNECTION: usize = 8;

/// The outcome of one load phase.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Requests answered as expected (HTTP 200; for gRPC also `grpc-status: 0`).
    pub ok: u64,
    /// Requests that failed (transport error, other status); each is one error in the table.
    pub failed: u64,
    /// Wall time of the whole phase.
    pub elapsed: Duration,
    /// Per-request latency in nanoseconds (fixed-rate phases only).
    pub latencies_ns: Vec<u64>,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

async fn connect_tcp(addr: SocketAddr) -> Result<TokioIo<TcpStream>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(TokioIo::new(stream))
}

async fn connect_h1(addr: SocketAddr) -> Result<Sender, String> {
    let (sender, conn) = http1::handshake(connect_tcp(addr).await?)
        .await
        .map_err(|e| format!("http1 handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(Sender::H1(sender))
}

async fn connect_h2(addr: SocketAddr) -> Result<http2::SendRequest<Full<Bytes>>, String> {
    let (sender, conn) = http2::handshake(TokioExecutor::new(), connect_tcp(addr).await?)
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Opens `lanes` lanes: one connection each for HTTP/1.1; for gRPC, h2 connections shared by
/// up to [`GRPC_STREAMS_PER_CONNECTION`] lanes each.
async fn open_lanes(
    addr: SocketAddr,
    workload: Workload,
    lanes: usize,
) -> Result<Vec<Sender>, String> {
    let mut senders = Vec::with_capacity(lanes);
    match workload {
        Workload::Http1 => {
            for _ in 0..lanes {
                senders.push(connect_h1(addr).await?);
            }
        }
        Workload::Grpc => {
            let mut current = None;
            for i in 0..lanes {
                if i % GRPC_STREAMS_PER_CONNECTION == 0 {
                    current = Some(connect_h2(addr).await?);
                }
                if let Some(sender) = &current {
                    senders.push(Sender::H2(sender.clone()));
                }
            }
        }
    }
    Ok(senders)
}

fn grpc_request() -> Request<Full<Bytes>> {
    // One message: field 1 = "ping".
    const PING: &[u8] = &[0, 0, 0, 0, 6, 0x0a, 4, b'p', b'i', b'n', b'g'];
    let mut req = Request::new(Full::new(Bytes::from_static(PING)));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = hyper::Uri::from_static("http://bench.local/bench.Echo/Ping");
    let headers = req.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        "application/grpc".parse().expect("static header"),
    );
    headers.insert("te", "trailers".parse().expect("static header"));
    req
}

fn http1_request() -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = hyper::Uri::from_static("/api/items");
    req.headers_mut()
        .insert(HOST, "bench.local".parse().expect("static header"));
    req.headers_mut().insert(
        "user-agent",
        "aetherflow-bench".parse().expect("static header"),
    );
    req
}

/// Sends one request and reads the whole response; Ok only for the expected answer.
async fn one_request(sender: &mut Sender) -> Result<(), String> {
    let response = match sender {
        Sender::H1(s) => {
            s.ready().await.map_err(|e| format!("connection: {e}"))?;
            s.send_request(http1_request()).await
        }
        Sender::H2(s) => {
            s.ready().await.map_err(|e| format!("connection: {e}"))?;
            s.send_request(grpc_request()).await
        }
    }
    .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("response body: {e}"))?;
    if status != StatusCode::OK {
        return Err(format!("status {status}"));
    }
    if let Sender::H2(_) = sender {
        let grpc_status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.as_bytes().to_vec());
        if grpc_status.as_deref() != Some(b"0") {
            return Err(format!("grpc-status {grpc_status:?}"));
        }
    }
    Ok(())
}

/// After this many failures a phase gives up (Envoy or the upstream is clearly broken).
fn failure_budget(total: u64) -> u64 {
    10 + total / 100
}

struct Shared {
    claimed: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            claimed: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: std::sync::Mutex::new(None),
        })
    }

    fn record(&self, outcome: &Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.clone());
                }
            }
        }
    }

    fn result(&self, elapsed: Duration, latencies_ns: Vec<u64>) -> LoadResult {
        LoadResult {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            elapsed,
            latencies_ns,
            first_error: self.first_error.lock().ok().and_then(|f| f.clone()),
        }
    }
}

/// Closed loop: `lanes` lanes send back to back until `total` requests have been sent.
/// This saturates Envoy's worker and gives the maximum throughput.
pub async fn closed_loop(
    addr: SocketAddr,
    workload: Workload,
    lanes: usize,
    total: u64,
) -> LoadResult {
    match Lanes::open(addr, workload, lanes).await {
        Ok(mut lanes) => lanes.closed_loop(total).await,
        Err(e) => {
            let shared = Shared::new();
            shared.record(&Err(e));
            shared.result(Duration::ZERO, Vec::new())
        }
    }
}

/// Lanes kept open from one closed-loop phase to the next, so that phases of a few hundred
/// requests (the paired measurement's turns) do not pay a connection set-up each.
pub struct Lanes {
    addr: SocketAddr,
    senders: Vec<Sender>,
}

impl Lanes {
    /// Opens `lanes` lanes to `addr`.
    pub async fn open(addr: SocketAddr, workload: Workload, lanes: usize) -> Result<Lanes, String> {
        Ok(Lanes {
            addr,
            senders: open_lanes(addr, workload, lanes).await?,
        })
    }

    /// Sends `total` requests back to back on the open lanes. A lane whose HTTP/1.1
    /// connection broke is reconnected; one that cannot be is closed for good.
    pub async fn closed_loop(&mut self, total: u64) -> LoadResult {
        let shared = Shared::new();
        let start = Instant::now();
        let budget = failure_budget(total);
        let addr = self.addr;
        let mut tasks = Vec::with_capacity(self.senders.len());
        for mut sender in self.senders.drain(..) {
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                while shared.claimed.fetch_add(1, Ordering::Relaxed) < total {
                    let outcome = one_request(&mut sender).await;
                    let failed = outcome.is_err();
                    shared.record(&outcome);
                    if failed {
                        if shared.failed.load(Ordering::Relaxed) > budget {
                            break;
                        }
                        if let Sender::H1(_) = sender {
                            // A failed HTTP/1.1 exchange may leave the connection unusable.
                            match connect_h1(addr).await {
                                Ok(fresh) => sender = fresh,
                                Err(e) => {
                                    shared.record(&Err(e));
                                    return None;
                                }
                            }
                        }
                    }
                }
                Some(sender)
            }));
        }
        for task in tasks {
            if let Ok(Some(sender)) = task.await {
                self.senders.push(sender);
            }
        }
        if self.senders.is_empty() && shared.ok.load(Ordering::Relaxed) < total {
            shared.record(&Err("every lane is closed".to_owned()));
        }
        shared.result(start.elapsed(), Vec::new())
    }
}

/// Fixed rate: `total` requests at `rate` per second in all, spread evenly over `lanes` lanes.
///
/// Latency runs from the moment a request was due when its lane was still busy with the previous
/// one (the queueing a real client would see), otherwise from the moment it was actually sent (so
/// the timer's millisecond granularity is not counted as latency).
pub async fn fixed_rate(
    addr: SocketAddr,
    workload: Workload,
    lanes: usize,
    rate: f64,
    total: u64,
) -> LoadResult {
    let shared = Shared::new();
    let senders = match open_lanes(addr, workload, lanes).await {
        Ok(s) => s,
        Err(e) => {
            shared.record(&Err(e));
            return shared.result(Duration::ZERO, Vec::new());
        }
    };
    let lanes = senders.len().max(1) as u64;
    let interval = Duration::from_secs_f64(lanes as f64 / rate.max(1.0));
    let budget = failure_budget(total);
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(senders.len());
    for (index, mut sender) in senders.into_iter().enumerate() {
        let shared = shared.clone();
        let per_lane = total / lanes + u64::from((index as u64) < total % lanes);
        // Stagger the lanes so their requests interleave instead of arriving in bursts.
        let offset = interval.mul_f64(index as f64 / lanes as f64);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_lane as usize);
            let mut previous_end = start;
            for k in 0..per_lane {
                let due = start + offset + interval.mul_f64(k as f64);
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let begin = if previous_end > due { due } else { sent };
                let outcome = one_request(&mut sender).await;
                previous_end = Instant::now();
                if outcome.is_ok() {
                    latencies.push((previous_end - begin).as_nanos() as u64);
                }
                let failed = outcome.is_err();
                shared.record(&outcome);
                if failed && shared.failed.load(Ordering::Relaxed) > budget {
                    break;
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(total as usize);
    for task in tasks {
        if let Ok(lane) = task.await {
            latencies.extend(lane);
        }
    }
    shared.result(start.elapsed(), latencies)
}
