//! Steady traffic with known trace ids: keep-alive HTTP/1.1 lanes, each paced to its share of
//! the rate, each request carrying a sampled `traceparent` with a fresh trace id (the filter
//! continues it, so the span that reaches the backend carries that id). A trace id counts as
//! sent once Envoy answered its request 200: then the filter recorded the span.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What the lanes did.
#[derive(Default)]
pub struct Sent {
    /// Trace ids of the requests answered 200.
    pub ids: Mutex<HashSet<[u8; 16]>>,
    /// Requests answered with another status.
    pub bad_status: AtomicU64,
    /// Requests that got no answer (connection errors, timeouts).
    pub errors: AtomicU64,
}

impl Sent {
    /// Requests answered 200 so far.
    pub fn ok(&self) -> usize {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// splitmix64: distinct trace ids without a random-number dependency.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn trace_id(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&(self.next() | 1).to_be_bytes());
        id
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn connect(addr: SocketAddr) -> Option<SendRequest<Empty<Bytes>>> {
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

/// One lane: a request every `every` until `stop`, on a keep-alive connection (a new one
/// after Envoy closes it, e.g. while a reloaded listener drains).
async fn lane(
    addr: SocketAddr,
    every: Duration,
    seed: u64,
    stop: Arc<AtomicBool>,
    sent: Arc<Sent>,
) {
    let mut ids = Ids(seed);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = connect(addr).await;
        }
        let Some(s) = sender.as_mut() else {
            sent.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let id = ids.trace_id();
        let traceparent = format!("00-{}-{}-01", hex(&id), hex(&ids.next().to_be_bytes()));
        let req = hyper::Request::get("/api/orders/1")
            .header("host", "soak")
            .header("traceparent", traceparent)
            .body(Empty::new());
        let Ok(req) = req else { continue };
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            if s.ready().await.is_err() {
                return None;
            }
            let resp = s.send_request(req).await.ok()?;
            let status = resp.status().as_u16();
            resp.into_body().collect().await.ok()?;
            Some(status)
        })
        .await
        .ok()
        .flatten();
        match answer {
            Some(200) => {
                sent.ids
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id);
            }
            Some(_) => {
                sent.bad_status.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                sent.errors.fetch_add(1, Ordering::Relaxed);
                sender = None;
            }
        }
    }
}

/// Starts `lanes` lanes sharing `rate` requests/s; they run until `stop` is set.
pub fn start(
    addr: SocketAddr,
    rate: f64,
    lanes: usize,
    stop: Arc<AtomicBool>,
    sent: Arc<Sent>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let lanes = lanes.max(1);
    let every = Duration::from_secs_f64(lanes as f64 / rate.max(1.0));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    (0..lanes)
        .map(|i| {
            tokio::spawn(lane(
                addr,
                every,
                seed ^ ((i as u64 + 1) << 56),
                Arc::clone(&stop),
                Arc::clone(&sent),
            ))
        })
        .collect()
}
