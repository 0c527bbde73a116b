//! OTLP/HTTP protobuf load for the shim soak: multi-span traces shaped like the filter's spans
//! (the OTel HTTP semantic-convention attributes plus the Envoy extras), sent at a fixed span
//! rate over several keep-alive connections.
//!
//! Each trace has a SERVER root and CLIENT children; a small share of traces carries an error
//! span (status ERROR, HTTP 503) and another share is slow (the root lasts 800 ms), so the tail
//! policies have something to keep. Some traces leave their last span for the next request, as
//! spans of one trace from several proxies arrive apart, so the tail buffer joins them.
//!
//! Bodies are built while sending (every trace id is new); the generator is a xorshift, so a run
//! is reproducible and needs no RNG crate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde::Serialize;
use tokio::net::TcpStream;

/// Spans per trace, drawn uniformly (mean 5).
const TRACE_SIZES: [usize; 8] = [1, 2, 3, 4, 5, 6, 8, 11];
/// One trace in this many has an error span.
pub const ERROR_ONE_IN: u64 = 50;
/// One trace in this many is slow.
pub const SLOW_ONE_IN: u64 = 40;
/// How long a slow trace's root lasts (above the soak's 500 ms latency policy).
pub const SLOW_ROOT: Duration = Duration::from_millis(800);
/// One multi-span trace in this many sends its last span with the next request.
const SPLIT_ONE_IN: u64 = 4;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

/// What one generator has produced.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Mix {
    /// Spans generated.
    pub spans: u64,
    /// Traces started.
    pub traces: u64,
    /// Traces with an error span.
    pub error_traces: u64,
    /// Traces whose root lasts `SLOW_ROOT`.
    pub slow_traces: u64,
}

/// Builds request bodies of exactly `batch` spans.
pub struct SpanFactory {
    /// xorshift64 state.
    state: u64,
    /// Spans left over for the next body (trace tails, split traces).
    carry: Vec<Span>,
    /// The resource every request carries (`service.name` of the proxy).
    resource: Resource,
    /// Counts so far.
    pub mix: Mix,
}

impl SpanFactory {
    /// A generator; different seeds give disjoint trace ids in practice.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            carry: Vec::new(),
            resource: Resource {
                attributes: vec![
                    text("service.name", "edge-proxy"),
                    text("deployment.environment.name", "bench"),
                ],
                ..Default::default()
            },
            mix: Mix::default(),
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// One trace's spans, root first; `now_ns` is its end.
    fn trace(&mut self, now_ns: u64) -> Vec<Span> {
        let n = TRACE_SIZES[(self.next() % TRACE_SIZES.len() as u64) as usize];
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&self.next().to_be_bytes());
        trace_id[8..].copy_from_slice(&self.next().to_be_bytes());
        let error = self.next().is_multiple_of(ERROR_ONE_IN);
        let slow = !error && self.next().is_multiple_of(SLOW_ONE_IN);
        self.mix.traces += 1;
        self.mix.error_traces += u64::from(error);
        self.mix.slow_traces += u64::from(slow);
        let root_ns = if slow {
            SLOW_ROOT.as_nanos() as u64
        } else {
            2_000_000 + self.next() % 58_000_000
        };
        let start = now_ns - root_ns;
        let root_id = self.next() | 1;
        let item = self.next() % 10_000;
        let mut spans = Vec::with_capacity(n);
        for i in 0..n {
            let is_root = i == 0;
            // The error sits on the last child (an upstream that failed) or on a lone root.
            let failed = error && i == n - 1;
            let (span_id, parent, kind, s, e) = if is_root {
                (root_id, 0, SpanKind::Server, start, now_ns)
            } else {
                let s = start + root_ns / 10 * (i as u64 % 8);
                (
                    self.next() | 1,
                    root_id,
                    SpanKind::Client,
                    s,
                    s + root_ns / 12,
                )
            };
            let status = if failed { 503 } else { 200 };
            let route = if is_root {
                "/api/items/{id}"
            } else {
                "/stock/{id}"
            };
            let mut attributes = vec![
                text("http.request.method", "GET"),
                text(
                    "url.path",
                    format!("{}/{item}", route.trim_end_matches("/{id}")),
                ),
                text("url.scheme", "http"),
                text("http.route", route),
                kv("http.response.status_code", Value::IntValue(status)),
                text("server.address", "shop.example.com"),
                kv("server.port", Value::IntValue(8080)),
                text("client.address", format!("10.1.{}.{}", item % 250, i + 1)),
                text("network.protocol.version", "1.1"),
                text(
                    "user_agent.original",
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 bench/1.0",
                ),
                text("envoy.route_name", "items_route"),
                text("envoy.upstream.cluster", "items"),
                text("envoy.upstream.address", "10.1.9.9:8080"),
                text(
                    "envoy.request_id",
                    format!(
                        "5d4b7b0e-2f3c-4c2a-9d6e-{:012x}",
                        span_id & 0xffff_ffff_ffff
                    ),
                ),
            ];
            if failed {
                attributes.push(text("error.type", "503"));
            }
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_be_bytes().to_vec(),
                trace_state: "ot=th:0".into(),
                parent_span_id: if parent == 0 {
                    Vec::new()
                } else {
                    parent.to_be_bytes().to_vec()
                },
                flags: 0x101,
                name: format!("GET {route}"),
                kind: kind as i32,
                start_time_unix_nano: s,
                end_time_unix_nano: e,
                attributes,
                status: failed.then(|| Status {
                    code: StatusCode::Error as i32,
                    message: String::new(),
                }),
                ..Default::default()
            });
        }
        self.mix.spans += n as u64;
        spans
    }

    /// The next request body (OTLP protobuf) of exactly `batch` spans.
    pub fn body(&mut self, batch: usize) -> Vec<u8> {
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut spans = std::mem::take(&mut self.carry);
        let mut later = Vec::new();
        while spans.len() < batch {
            let mut t = self.trace(now_ns);
            if t.len() > 1 && self.next().is_multiple_of(SPLIT_ONE_IN) {
                later.extend(t.pop());
            }
            spans.append(&mut t);
        }
        if spans.len() > batch {
            later.extend(spans.drain(batch..));
        }
        self.carry = later;
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "aetherflow.trace_filter".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }
}

/// Outcome counters shared by the sending connections.
#[derive(Debug, Default)]
pub struct SendCounters {
    /// Requests sent (answered or not).
    pub requests: AtomicU64,
    /// Spans in requests answered 200.
    pub spans_accepted: AtomicU64,
    /// Requests answered 503 (load shed; `Retry-After`).
    pub refused_503: AtomicU64,
    /// Requests answered 429.
    pub refused_429: AtomicU64,
    /// Other statuses and transport errors.
    pub errors: AtomicU64,
    /// Ticks at which the connection was still busy with an earlier request.
    pub late_ticks: AtomicU64,
}

/// Sends `batch`-span requests at `spans_per_second / connections` spans/s on each of
/// `connections` keep-alive connections until `until`; returns what the generators produced.
pub async fn drive(
    addr: SocketAddr,
    spans_per_second: f64,
    batch: usize,
    connections: usize,
    until: Instant,
    counters: Arc<SendCounters>,
) -> Mix {
    let per_connection = spans_per_second / connections as f64;
    let period = Duration::from_secs_f64(batch as f64 / per_connection);
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let counters = counters.clone();
            tokio::spawn(async move {
                // Connections start spread over one period, not in lockstep.
                tokio::time::sleep(period.mul_f64(c as f64 / connections as f64)).await;
                lane(addr, period, batch, c as u64 + 1, until, &counters).await
            })
        })
        .collect();
    let mut mix = Mix::default();
    for t in tasks {
        if let Ok(m) = t.await {
            mix.spans += m.spans;
            mix.traces += m.traces;
            mix.error_traces += m.error_traces;
            mix.slow_traces += m.slow_traces;
        }
    }
    mix
}

async fn connect(addr: SocketAddr) -> Option<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// One connection: a request per tick of a fixed interval. A tick missed while a request was
/// still out is sent at once afterwards (`Burst`), so a slow answer does not lower the rate.
async fn lane(
    addr: SocketAddr,
    period: Duration,
    batch: usize,
    seed: u64,
    until: Instant,
    counters: &SendCounters,
) -> Mix {
    let mut factory = SpanFactory::new(seed);
    let mut sender = None;
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        let tick = ticks.tick().await;
        let now = tokio::time::Instant::now();
        if now.into_std() >= until {
            break;
        }
        if now.duration_since(tick) > period {
            counters.late_ticks.fetch_add(1, Ordering::Relaxed);
        }
        let body = Bytes::from(factory.body(batch));
        if sender.is_none() {
            sender = connect(addr).await;
        }
        let Some(s) = sender.as_mut() else {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/traces")
            .header(HOST, "collector-shim")
            .header(CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body));
        let Ok(request) = request else {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let answer = match s.send_request(request).await {
            Ok(r) => {
                let status = r.status().as_u16();
                let _ = r.into_body().collect().await;
                Some(status)
            }
            Err(_) => None,
        };
        let counter = match answer {
            Some(200) => {
                counters
                    .spans_accepted
                    .fetch_add(batch as u64, Ordering::Relaxed);
                continue;
            }
            Some(503) => &counters.refused_503,
            Some(429) => &counters.refused_429,
            Some(_) => &counters.errors,
            None => {
                sender = None;
                &counters.errors
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    factory.mix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &[u8]) -> Vec<Span> {
        let r = ExportTraceServiceRequest::decode(body).expect("decodes");
        r.resource_spans
            .into_iter()
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans)
            .collect()
    }

    #[test]
    fn bodies_hold_exactly_the_batch_and_traces_have_one_root_each() {
        let mut f = SpanFactory::new(7);
        let mut all = Vec::new();
        for _ in 0..40 {
            let spans = decode(&f.body(256));
            assert_eq!(spans.len(), 256);
            all.extend(spans);
        }
        // Every span handed out, plus those still carried, is every span generated.
        assert_eq!(all.len() as u64 + f.carry.len() as u64, f.mix.spans);
        let roots = all.iter().filter(|s| s.parent_span_id.is_empty()).count() as u64;
        let carried_roots = f
            .carry
            .iter()
            .filter(|s| s.parent_span_id.is_empty())
            .count() as u64;
        assert_eq!(roots + carried_roots, f.mix.traces);
        assert!(all.iter().all(|s| s.attributes.len() >= 14));
    }

    #[test]
    fn the_mix_has_errors_and_slow_traces_in_roughly_the_set_shares() {
        let mut f = SpanFactory::new(11);
        for _ in 0..200 {
            f.body(512);
        }
        let m = f.mix;
        let share = |n: u64| n as f64 / m.traces as f64;
        assert!((share(m.error_traces) - 1.0 / ERROR_ONE_IN as f64).abs() < 0.01);
        assert!(share(m.slow_traces) > 0.5 / SLOW_ONE_IN as f64);
        let mean = m.spans as f64 / m.traces as f64;
        assert!((4.0..6.0).contains(&mean), "{mean}");
    }
}
