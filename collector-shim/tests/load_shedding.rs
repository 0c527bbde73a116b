//! Load shedding over real sockets, against the real `collector-shim` binary: when the
//! receiver's span budget (`receiver.max_pending_spans`) is used up, `POST /v1/traces` gets 503
//! with `Retry-After` and a `google.rpc.Status` reason, the refusal is counted on `/metrics`,
//! the same request is accepted once the pressure is gone, and every accepted span reaches the
//! backend, none lost, even though that backend stalled the whole time.
//!
//! What fills the budget: it bounds the spans between the receivers and the sampler task (the
//! permits travel with each batch and are returned when the sampler has taken it). A stalled
//! backend does not fill it: the sampler never waits for an exporter; kept spans wait in the
//! exporter's own bounded queue (`batch.max_queue_size`, drop-and-count beyond it). So the
//! budget here is one request's worth of spans and several connections send at once: a request
//! that arrives while the sampler is still taking the previous one is shed. The backend stalls
//! meanwhile to show that what the shim accepted is held, not lost, until it recovers.
//!
//! The OTLP/gRPC receiver sheds the same way with `UNAVAILABLE` (which OTLP gRPC clients retry).
mod pipeline_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use pipeline_support::shim_process::{self, ShimProcess};
use pipeline_support::*;
use prost::Message;
use tokio::sync::watch;

/// Spans per request, and the whole span budget: two requests never fit at once.
const BUDGET: u32 = 1000;
/// Connections sending at once.
const SENDERS: u32 = 6;
/// Most spans accepted before giving up on seeing a 503 (far below the exporter queue, so
/// the "none lost" check never depends on the queue's drop path).
const MAX_ACCEPTED: usize = 150_000;

/// (trace id, span id): what identifies a span end to end.
type SpanKey = (Vec<u8>, Vec<u8>);

/// A real OTLP/HTTP backend on 127.0.0.1:0 that holds every request until released, then
/// decodes it (independently of the shim) and records the span ids.
struct StallingBackend {
    addr: SocketAddr,
    release: watch::Sender<bool>,
    /// (trace id, span id) of every span received.
    spans: Arc<Mutex<Vec<SpanKey>>>,
    /// Requests that arrived (stalled or not).
    arrived: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct BackendState {
    released: watch::Receiver<bool>,
    spans: Arc<Mutex<Vec<SpanKey>>>,
    arrived: Arc<AtomicUsize>,
}

async fn stalled_export(State(st): State<BackendState>, body: Bytes) -> (StatusCode, Vec<u8>) {
    st.arrived.fetch_add(1, Ordering::SeqCst);
    let mut released = st.released.clone();
    let _ = released.wait_for(|r| *r).await;
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut spans = st.spans.lock().unwrap();
    for s in req
        .resource_spans
        .into_iter()
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
    {
        spans.push((s.trace_id, s.span_id));
    }
    (
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

impl StallingBackend {
    async fn start() -> Self {
        let (release, released) = watch::channel(false);
        let state = BackendState {
            released,
            spans: Arc::default(),
            arrived: Arc::default(),
        };
        let (spans, arrived) = (state.spans.clone(), state.arrived.clone());
        let app = Router::new()
            .route("/v1/traces", post(stalled_export))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StallingBackend {
            addr,
            release,
            spans,
            arrived,
        }
    }

    fn count(&self) -> usize {
        self.spans.lock().unwrap().len()
    }
}

/// The shim's answer body on refusal, decoded here independently: `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The real binary on `config` written to a temporary file (which must outlive it).
fn start_shim(config: &str) -> (ShimProcess, tempfile::NamedTempFile) {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), config).unwrap();
    (shim_process::start(file.path()), file)
}

/// One request of `BUDGET` spans with trace and span ids unique to `n`.
fn numbered_request(n: u32) -> ExportTraceServiceRequest {
    let spans = (0..BUDGET)
        .map(|i| {
            let mut s = span(&trace_id(n, u64::from(i % 50)), u64::from(i), 3);
            s.span_id = ((u64::from(n) << 32) | (u64::from(i) + 1))
                .to_be_bytes()
                .to_vec();
            s
        })
        .collect();
    request("shed-test", spans)
}

fn span_keys(req: &ExportTraceServiceRequest) -> Vec<SpanKey> {
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| (s.trace_id.clone(), s.span_id.clone()))
        .collect()
}

/// What the senders saw.
#[derive(Default)]
struct Seen {
    /// Span keys of requests answered 200.
    accepted: Mutex<Vec<SpanKey>>,
    /// Refused requests (to send again), with the answer's `Retry-After` and decoded reason.
    refused: Mutex<Vec<(ExportTraceServiceRequest, Option<String>, RpcStatus)>>,
    /// Set at the first refusal: every sender stops after its request in flight.
    stop: AtomicBool,
    /// Other answers (must stay empty).
    unexpected: Mutex<Vec<String>>,
}

async fn send(
    client: &reqwest::Client,
    addr: SocketAddr,
    req: &ExportTraceServiceRequest,
) -> reqwest::Response {
    client
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .expect("the shim answers")
}

async fn sender(addr: SocketAddr, next: Arc<AtomicU32>, seen: Arc<Seen>, deadline: Instant) {
    let client = reqwest::Client::new();
    while !seen.stop.load(Ordering::SeqCst)
        && Instant::now() < deadline
        && seen.accepted.lock().unwrap().len() < MAX_ACCEPTED
    {
        let req = numbered_request(next.fetch_add(1, Ordering::SeqCst));
        let resp = send(&client, addr, &req).await;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.bytes().await.unwrap_or_default();
        match status.as_u16() {
            200 => seen.accepted.lock().unwrap().extend(span_keys(&req)),
            503 => {
                let reason = RpcStatus::decode(body).unwrap_or_default();
                seen.refused
                    .lock()
                    .unwrap()
                    .push((req, retry_after, reason));
                seen.stop.store(true, Ordering::SeqCst);
            }
            other => seen
                .unexpected
                .lock()
                .unwrap()
                .push(format!("{other}: {}", String::from_utf8_lossy(&body))),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_budget_answers_503_with_retry_after_and_nothing_accepted_is_lost() {
    let backend = StallingBackend::start().await;
    let (shim, _config) = start_shim(&format!(
        "receiver: {{ http_listen: '127.0.0.1:0', max_pending_spans: {BUDGET} }}\n\
         sampling:\n  tail:\n    decision_wait: 100ms\n    num_traces: 400000\n    max_spans: 400000\n    policies: [ {{ type: error }} ]\n\
         batch: {{ max_queue_size: 200000, max_export_batch_size: 512, batch_timeout: 100ms, export_timeout: 600s }}\n\
         exporters: [ {{ type: otlp, endpoint: 'http://{}/v1/traces', timeout: 600s, retry: {{ max_elapsed_time: 600s }} }} ]\n\
         shutdown_timeout: 30s\n",
        backend.addr
    ));
    let addr = shim.addr;

    // Several connections at once until one request is shed (bounded in time and spans).
    let seen = Arc::new(Seen::default());
    let next = Arc::new(AtomicU32::new(1));
    let deadline = Instant::now() + Duration::from_secs(90);
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| tokio::spawn(sender(addr, next.clone(), seen.clone(), deadline)))
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    assert!(
        seen.unexpected.lock().unwrap().is_empty(),
        "{:?}",
        seen.unexpected.lock().unwrap()
    );
    let refused = std::mem::take(&mut *seen.refused.lock().unwrap());
    let accepted_before = seen.accepted.lock().unwrap().len();
    let sent = next.load(Ordering::SeqCst) - 1;
    assert!(
        !refused.is_empty(),
        "no request was shed after {sent} requests ({accepted_before} spans accepted); shim log:\n{}",
        shim.log()
    );
    eprintln!(
        "{} of {sent} requests shed, {accepted_before} spans accepted before",
        refused.len()
    );
    for (_, retry_after, reason) in &refused {
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(reason.code, 14, "google.rpc.Code UNAVAILABLE");
        assert!(reason.message.contains("queue full"), "{}", reason.message);
    }

    // Counted on /metrics, per request and per span.
    let client = reqwest::Client::new();
    let text = scrape(&client, addr).await;
    let n = refused.len() as f64;
    assert_eq!(
        metric_value(&text, "shim_requests_refused_total{reason=\"queue_full\"}"),
        n,
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "shim_spans_refused_total{reason=\"queue_full\"}"),
        n * f64::from(BUDGET),
        "{text}"
    );
    // The backend holds the first export; nothing has been confirmed exported yet.
    assert_eq!(
        metric_value(&text, "shim_spans_exported_total{exporter=\"otlp\"}"),
        0.0
    );
    assert_eq!(backend.count(), 0);

    // With the pressure gone, the same requests are accepted, sent as an OTLP client would:
    // one at a time, waiting Retry-After whenever the sampler has not yet taken the previous
    // one (a request is the whole budget here). Bounded.
    for (req, _, _) in &refused {
        let mut answer = None;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let resp = send(&client, addr, req).await;
            answer = Some(resp.status());
            if resp.status() == 200 {
                break;
            }
            assert_eq!(resp.status(), 503, "{:?}", resp.text().await);
        }
        assert_eq!(answer.map(|s| s.as_u16()), Some(200), "never accepted");
        seen.accepted.lock().unwrap().extend(span_keys(req));
    }
    let accepted: Vec<_> = std::mem::take(&mut *seen.accepted.lock().unwrap());
    assert_eq!(
        metric_value(
            &scrape(&client, addr).await,
            "shim_spans_received_total{transport=\"http_protobuf\"}"
        ),
        accepted.len() as f64
    );

    // The backend recovers: every accepted span arrives, exactly once.
    assert!(
        backend.arrived.load(Ordering::SeqCst) >= 1,
        "an export was in flight"
    );
    backend.release.send(true).unwrap();
    let until = Instant::now() + Duration::from_secs(120);
    while backend.count() < accepted.len() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = backend.spans.lock().unwrap().clone();
    let got_set: HashSet<_> = got.iter().cloned().collect();
    assert_eq!(got.len(), got_set.len(), "a span arrived twice");
    let want: HashSet<_> = accepted.into_iter().collect();
    assert_eq!(got_set.len(), want.len(), "spans received vs accepted");
    assert!(
        got_set == want,
        "the backend got other spans than those accepted"
    );
    let text = scrape(&client, addr).await;
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("shim_spans_dropped_total") && !l.ends_with(" 0")),
        "{text}"
    );
    drop(shim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sheds_with_unavailable_and_accepts_the_same_request_afterwards() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

    let backend = StallingBackend::start().await;
    backend.release.send(true).unwrap();
    let (shim, _config) = start_shim(&format!(
        "receiver: {{ http_listen: '127.0.0.1:0', grpc_listen: '127.0.0.1:0', max_pending_spans: {BUDGET} }}\n\
         sampling:\n  tail:\n    decision_wait: 100ms\n    num_traces: 400000\n    max_spans: 400000\n    policies: [ {{ type: error }} ]\n\
         batch: {{ max_queue_size: 200000, batch_timeout: 100ms }}\n\
         exporters: [ {{ type: otlp, endpoint: 'http://{}/v1/traces' }} ]\n",
        backend.addr
    ));
    let grpc = format!(
        "http://{}",
        shim.grpc.expect("grpc_listen in the ready line")
    );
    let next = Arc::new(AtomicU32::new(1));
    let refused: Arc<Mutex<Vec<(ExportTraceServiceRequest, tonic::Status)>>> = Arc::default();
    let accepted = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(90);
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (grpc, next, refused, accepted) = (
                grpc.clone(),
                next.clone(),
                refused.clone(),
                accepted.clone(),
            );
            tokio::spawn(async move {
                let mut client = TraceServiceClient::connect(grpc).await.unwrap();
                while refused.lock().unwrap().is_empty()
                    && Instant::now() < deadline
                    && accepted.load(Ordering::SeqCst) < MAX_ACCEPTED
                {
                    let req = numbered_request(next.fetch_add(1, Ordering::SeqCst));
                    match client.export(req.clone()).await {
                        Ok(_) => {
                            accepted.fetch_add(BUDGET as usize, Ordering::SeqCst);
                        }
                        Err(status) => refused.lock().unwrap().push((req, status)),
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    let refused = std::mem::take(&mut *refused.lock().unwrap());
    assert!(
        !refused.is_empty(),
        "no gRPC request was shed; shim log:\n{}",
        shim.log()
    );
    for (_, status) in &refused {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
        assert!(status.message().contains("queue full"), "{status}");
    }
    let client = reqwest::Client::new();
    assert_eq!(
        metric_value(
            &scrape(&client, shim.addr).await,
            "shim_requests_refused_total{reason=\"queue_full\"}"
        ),
        refused.len() as f64
    );
    // Once the pressure is gone the same requests go through, and everything accepted arrives.
    let mut client = TraceServiceClient::connect(grpc).await.unwrap();
    for (req, _) in &refused {
        let mut outcome = Err(tonic::Status::unknown("not sent"));
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            outcome = client.export(req.clone()).await;
            match &outcome {
                Ok(_) => break,
                Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status}"),
            }
        }
        outcome.expect("never accepted");
    }
    let total = accepted.load(Ordering::SeqCst) + refused.len() * BUDGET as usize;
    let until = Instant::now() + Duration::from_secs(120);
    while backend.count() < total && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(backend.count(), total);
}
