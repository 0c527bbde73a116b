//! An upstream test server (hyper 1.x, HTTP/1.1 and h2c on one port) that records every request it
//! receives (all header lines, in order, as raw bytes) and answers programmable responses.
//!
//! By default the response follows directives in request headers (so one Envoy serves many cases):
//!
//! | request header              | effect                                                          |
//! |-----------------------------|-----------------------------------------------------------------|
//! | `x-upstream-status: N`      | HTTP status N (default 200)                                     |
//! | `x-upstream-delay-ms: N`    | wait N ms before answering                                      |
//! | `x-upstream-body-bytes: N`  | body of N bytes (HTTP)                                          |
//! | `x-upstream-grpc-status: N` | gRPC: status code in trailers (default 0)                       |
//! | `x-upstream-grpc-message: s`| gRPC: `grpc-message`                                            |
//! | `x-upstream-grpc-mode: m`   | gRPC: `trailers` (default), `trailers-only`, `missing` (no status) |
//! | `x-upstream-grpc-frames: N` | gRPC: N response messages (default 1)                           |
//! | `x-upstream-trailer-bytes: N`| an extra response trailer `x-big` of N bytes                   |
//! | `x-upstream-header-lines: N`| N extra response header lines `x-fill-<i>` (HTTP)               |
//! | `x-upstream-reset: 1`       | no response: the connection (HTTP/1.1) or stream (h2) is reset  |
//!
//! A request is gRPC when its content-type starts with `application/grpc`. A custom handler can
//! replace the directives ([`UpstreamServer::start_with`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::serve::accept_loop;

/// A request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Every header line in order, raw bytes (repeats are separate entries).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole request body.
    pub body: Bytes,
    /// When the request head arrived.
    pub received_at: Instant,
}

impl RecordedRequest {
    /// First value of `name` as text (lossy).
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// Whether the content-type says gRPC.
    pub fn is_grpc(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.starts_with("application/grpc"))
    }
}

/// The response to give.
#[derive(Clone, Debug, Default)]
pub struct ResponsePlan {
    /// HTTP status.
    pub status: u16,
    /// Response header lines.
    pub headers: Vec<(String, String)>,
    /// Body chunks, each sent as its own DATA frame / chunk.
    pub chunks: Vec<Bytes>,
    /// Trailers (`None`: none sent). For a trailers-only gRPC response put the status in `headers`
    /// and leave `chunks` empty and `trailers` `None`.
    pub trailers: Option<Vec<(String, String)>>,
    /// Wait before sending the response head.
    pub delay: Duration,
    /// Send no response at all: reset the connection (HTTP/1.1) or the stream (h2) after `delay`.
    pub reset: bool,
}

/// Chooses a response for a request.
pub type Handler = Arc<dyn Fn(&RecordedRequest) -> ResponsePlan + Send + Sync>;

fn directive(req: &RecordedRequest, name: &str) -> Option<u64> {
    req.header(name).and_then(|v| v.trim().parse().ok())
}

impl ResponsePlan {
    /// The default handler: the `x-upstream-*` directives in the module docs.
    pub fn from_directives(req: &RecordedRequest) -> ResponsePlan {
        let delay = Duration::from_millis(directive(req, "x-upstream-delay-ms").unwrap_or(0));
        if directive(req, "x-upstream-reset") == Some(1) {
            return ResponsePlan {
                reset: true,
                delay,
                ..Default::default()
            };
        }
        let big_trailer = directive(req, "x-upstream-trailer-bytes")
            .map(|n| ("x-big".to_string(), "t".repeat(n as usize)));
        if req.is_grpc() {
            let code = directive(req, "x-upstream-grpc-status").unwrap_or(0) as u32;
            let message = req.header("x-upstream-grpc-message");
            let n = directive(req, "x-upstream-grpc-frames").unwrap_or(1) as usize;
            let mode = req
                .header("x-upstream-grpc-mode")
                .unwrap_or_else(|| "trailers".into());
            let mut plan = match mode.as_str() {
                "trailers-only" => ResponsePlan::grpc_trailers_only(code, message.as_deref()),
                "missing" => ResponsePlan::grpc_missing_status(n),
                _ => ResponsePlan::grpc(code, message.as_deref(), n),
            };
            if let Some(t) = big_trailer {
                plan.trailers.get_or_insert_with(Vec::new).push(t);
            }
            plan.delay = delay;
            return plan;
        }
        let status = directive(req, "x-upstream-status").unwrap_or(200) as u16;
        let size = directive(req, "x-upstream-body-bytes").unwrap_or(2) as usize;
        let mut headers = vec![("content-type".to_string(), "text/plain".to_string())];
        let fill = directive(req, "x-upstream-header-lines")
            .unwrap_or(0)
            .min(500);
        headers.extend((0..fill).map(|i| (format!("x-fill-{i}"), format!("value {i}"))));
        ResponsePlan {
            status,
            headers,
            chunks: vec![Bytes::from("o".repeat(size))],
            trailers: big_trailer.map(|t| vec![t]),
            delay,
            reset: false,
        }
    }

    /// A gRPC response: `messages` messages, then trailers with `grpc-status: code`.
    pub fn grpc(code: u32, message: Option<&str>, messages: usize) -> ResponsePlan {
        let mut trailers = vec![("grpc-status".to_string(), code.to_string())];
        if let Some(m) = message {
            trailers.push(("grpc-message".into(), m.into()));
        }
        ResponsePlan {
            status: 200,
            headers: vec![("content-type".into(), "application/grpc".into())],
            chunks: (0..messages)
                .map(|i| crate::grpc::frame(format!("reply-{i}").as_bytes()))
                .collect(),
            trailers: Some(trailers),
            delay: Duration::ZERO,
            reset: false,
        }
    }

    /// A trailers-only gRPC response: one HEADERS frame with END_STREAM carrying `grpc-status`.
    pub fn grpc_trailers_only(code: u32, message: Option<&str>) -> ResponsePlan {
        let mut headers = vec![
            ("content-type".to_string(), "application/grpc".to_string()),
            ("grpc-status".into(), code.to_string()),
        ];
        if let Some(m) = message {
            headers.push(("grpc-message".into(), m.into()));
        }
        ResponsePlan {
            status: 200,
            headers,
            chunks: Vec::new(),
            trailers: None,
            delay: Duration::ZERO,
            reset: false,
        }
    }

    /// A gRPC response whose stream ends without any `grpc-status`.
    pub fn grpc_missing_status(messages: usize) -> ResponsePlan {
        ResponsePlan {
            trailers: None,
            ..ResponsePlan::grpc(0, None, messages)
        }
    }
}

/// A response body that yields prepared frames; empty means end-of-stream at once, which makes hyper
/// send a HEADERS frame with END_STREAM (the trailers-only shape).
struct PlannedBody {
    frames: VecDeque<Frame<Bytes>>,
}

impl Body for PlannedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.frames.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }
}

/// The running upstream; stops when dropped.
pub struct UpstreamServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    task: JoinHandle<()>,
}

impl UpstreamServer {
    /// Starts on 127.0.0.1 (kernel-chosen port) answering by [`ResponsePlan::from_directives`].
    pub async fn start() -> UpstreamServer {
        Self::start_with(Arc::new(ResponsePlan::from_directives)).await
    }

    /// Starts with a custom handler.
    pub async fn start_with(handler: Handler) -> UpstreamServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let requests: Arc<Mutex<Vec<RecordedRequest>>> = Arc::default();
        let recorded = requests.clone();
        let task = tokio::spawn(accept_loop(listener, true, move || {
            let (handler, recorded) = (handler.clone(), recorded.clone());
            hyper::service::service_fn(move |req| serve(req, handler.clone(), recorded.clone()))
        }));
        UpstreamServer {
            addr,
            requests,
            task,
        }
    }

    /// Where it listens (point a cluster here).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits (bounded) for a request matching `pred`.
    pub async fn wait_request(
        &self,
        timeout: Duration,
        pred: impl Fn(&RecordedRequest) -> bool,
    ) -> Option<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.requests().into_iter().find(|r| pred(r)) {
                return Some(r);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The request carrying `x-test-id: id` (the tests tag each request this way).
    pub async fn request_tagged(&self, id: &str) -> Option<RecordedRequest> {
        self.wait_request(Duration::from_secs(10), |r| {
            r.header("x-test-id").as_deref() == Some(id)
        })
        .await
    }
}

impl Drop for UpstreamServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    req: hyper::Request<Incoming>,
    handler: Handler,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
) -> Result<hyper::Response<PlannedBody>, Box<dyn std::error::Error + Send + Sync>> {
    let received_at = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let rec = RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect(),
        body,
        received_at,
    };
    let plan = handler(&rec);
    if let Ok(mut r) = recorded.lock() {
        r.push(rec);
    }
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    if plan.reset {
        // A service error makes hyper drop the HTTP/1.1 connection / reset the h2 stream.
        return Err("reset requested by x-upstream-reset".into());
    }
    let mut frames: VecDeque<Frame<Bytes>> = plan.chunks.into_iter().map(Frame::data).collect();
    if let Some(trailers) = plan.trailers {
        let mut map = hyper::HeaderMap::new();
        for (n, v) in trailers {
            if let (Ok(n), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(n.as_bytes()),
                hyper::header::HeaderValue::from_str(&v),
            ) {
                map.append(n, v);
            }
        }
        frames.push_back(Frame::trailers(map));
    }
    let mut resp = hyper::Response::new(PlannedBody { frames });
    *resp.status_mut() = hyper::StatusCode::from_u16(plan.status).unwrap_or(hyper::StatusCode::OK);
    for (n, v) in plan.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(n.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    Ok(resp)
}
