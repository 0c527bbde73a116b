//! A fake collector shim: a real HTTP server (HTTP/1.1 and h2c) on 127.0.0.1 that decodes OTLP/HTTP
//! protobuf `ExportTraceServiceRequest` bodies with the upstream `opentelemetry-proto` types
//! (independent of the filter's encoder) and stores the spans. It can be switched to misbehave:
//! [`ShimMode::Slow`], [`ShimMode::Status`] or [`ShimMode::Closed`] (connections refused).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::serve::accept_loop;

/// How the fake shim answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShimMode {
    /// Decode, store, answer 200 with an empty `ExportTraceServiceResponse`.
    Ok,
    /// Wait this long before answering 200 (spans are stored when the answer is sent).
    Slow(Duration),
    /// Answer this status without storing anything.
    Status(u16),
    /// Close the listening socket and every open connection: connections are refused.
    Closed,
}

/// A span with the resource and scope it arrived under.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The span.
    pub span: Span,
    /// Resource attributes of its `ResourceSpans`.
    pub resource: Vec<KeyValue>,
    /// Scope name.
    pub scope_name: String,
    /// Scope version.
    pub scope_version: String,
}

impl ReceivedSpan {
    /// Trace id as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// Span id as 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// Parent span id as hex ("" for a root span).
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// Attribute `key` of the span.
    pub fn attr(&self, key: &str) -> Option<&any_value::Value> {
        find_attr(&self.span.attributes, key)
    }

    /// String attribute `key`.
    pub fn attr_str(&self, key: &str) -> Option<String> {
        match self.attr(key)? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Integer attribute `key`.
    pub fn attr_int(&self, key: &str) -> Option<i64> {
        match self.attr(key)? {
            any_value::Value::IntValue(i) => Some(*i),
            _ => None,
        }
    }

    /// Boolean attribute `key`.
    pub fn attr_bool(&self, key: &str) -> Option<bool> {
        match self.attr(key)? {
            any_value::Value::BoolValue(b) => Some(*b),
            _ => None,
        }
    }

    /// String resource attribute `key`.
    pub fn resource_str(&self, key: &str) -> Option<String> {
        match find_attr(&self.resource, key)? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// W3C trace flags (bits 0-7 of the span's `flags`).
    pub fn trace_flags(&self) -> u8 {
        (self.span.flags & 0xff) as u8
    }
}

/// The first attribute named `key`.
pub fn find_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
struct State {
    mode: Option<ShimMode>,
    spans: Vec<ReceivedSpan>,
    // Every POST that arrived, whatever the mode (counts requests the filter made).
    requests: u64,
    // Bodies that were not a valid ExportTraceServiceRequest: the filter must never send one.
    decode_errors: Vec<String>,
    // Shape of every decoded export, to check the OTLP contract (one resource, one scope, batch sizes).
    exports: Vec<ExportShape>,
}

/// The shape of one decoded export request.
#[derive(Clone, Debug)]
pub struct ExportShape {
    /// `content-type` of the POST.
    pub content_type: String,
    /// Number of `ResourceSpans`.
    pub resource_spans: usize,
    /// Number of `ScopeSpans` in each `ResourceSpans`.
    pub scope_spans: Vec<usize>,
    /// Total spans in the request.
    pub spans: usize,
}

/// The fake shim; stops when dropped.
pub struct FakeShim {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl FakeShim {
    /// Starts on 127.0.0.1 with a kernel-chosen port, in [`ShimMode::Ok`].
    pub async fn start() -> FakeShim {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind shim on 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            mode: Some(ShimMode::Ok),
            ..Default::default()
        }));
        let task = tokio::spawn(serve(listener, state.clone()));
        FakeShim {
            addr,
            state,
            task: Mutex::new(Some(task)),
        }
    }

    /// Where it listens (point the `trace_shim` cluster here).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches behaviour. `Closed` drops the listener and all connections; leaving `Closed` binds
    /// the same port again.
    pub async fn set_mode(&self, mode: ShimMode) {
        let was_closed = {
            let mut st = self.state.lock().expect("shim state");
            let was = st.mode == Some(ShimMode::Closed);
            st.mode = Some(mode);
            was
        };
        if mode == ShimMode::Closed {
            let task = self.task.lock().expect("task").take();
            if let Some(task) = task {
                // Aborting the accept loop drops the listener and its JoinSet of connections.
                task.abort();
                let _ = task.await;
            }
        } else if was_closed {
            let deadline = Instant::now() + Duration::from_secs(10);
            let listener = loop {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => break l,
                    Err(e) if Instant::now() > deadline => {
                        panic!("rebinding shim {}: {e}", self.addr)
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            *self.task.lock().expect("task") =
                Some(tokio::spawn(serve(listener, self.state.clone())));
        }
    }

    /// Every span stored so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.state
            .lock()
            .map(|s| s.spans.clone())
            .unwrap_or_default()
    }

    /// POST requests received (any mode except `Closed`).
    pub fn request_count(&self) -> u64 {
        self.state.lock().map(|s| s.requests).unwrap_or(0)
    }

    /// The shape of every decoded export request, in arrival order.
    pub fn exports(&self) -> Vec<ExportShape> {
        self.state
            .lock()
            .map(|s| s.exports.clone())
            .unwrap_or_default()
    }

    /// Bodies that failed to decode (should stay empty).
    pub fn decode_errors(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.decode_errors.clone())
            .unwrap_or_default()
    }

    /// Waits (bounded) until the spans matching `pred` number at least `count`; returns them all
    /// (matching ones), or Err with what matched so far.
    pub async fn wait_spans(
        &self,
        count: usize,
        timeout: Duration,
        pred: impl Fn(&ReceivedSpan) -> bool,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<ReceivedSpan> = self.spans().into_iter().filter(|s| pred(s)).collect();
            if found.len() >= count {
                return Ok(found);
            }
            if Instant::now() > deadline {
                return Err(found);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The one span of trace `trace_id` (hex), waiting up to `timeout`.
    pub async fn span_of_trace(&self, trace_id: &str, timeout: Duration) -> Option<ReceivedSpan> {
        let id = trace_id.to_ascii_lowercase();
        self.wait_spans(1, timeout, |s| s.trace_id() == id)
            .await
            .ok()?
            .into_iter()
            .next()
    }

    /// The span whose string attribute `key` equals `value`.
    pub async fn span_with_attr(
        &self,
        key: &str,
        value: &str,
        timeout: Duration,
    ) -> Option<ReceivedSpan> {
        self.wait_spans(1, timeout, |s| s.attr_str(key).as_deref() == Some(value))
            .await
            .ok()?
            .into_iter()
            .next()
    }
}

impl Drop for FakeShim {
    fn drop(&mut self) {
        if let Ok(mut t) = self.task.lock() {
            if let Some(task) = t.take() {
                task.abort();
            }
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>) {
    accept_loop(listener, false, move || {
        let state = state.clone();
        hyper::service::service_fn(move |req| handle(req, state.clone()))
    })
    .await
}

async fn handle(
    req: hyper::Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get("content-type")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let body = req.into_body().collect().await?.to_bytes();
    let mode = {
        let mut st = state.lock().expect("shim state");
        st.requests += 1;
        st.mode.unwrap_or(ShimMode::Ok)
    };
    let reply = |status: u16, body: Bytes| {
        let mut r = hyper::Response::new(Full::new(body));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/x-protobuf"),
        );
        r
    };
    match mode {
        ShimMode::Status(code) => return Ok(reply(code, Bytes::new())),
        ShimMode::Slow(d) => tokio::time::sleep(d).await,
        ShimMode::Ok | ShimMode::Closed => {}
    }
    if method != hyper::Method::POST || path != "/v1/traces" {
        return Ok(reply(404, Bytes::from_static(b"only POST /v1/traces")));
    }
    match ExportTraceServiceRequest::decode(body.as_ref()) {
        Ok(export) => {
            let mut st = state.lock().expect("shim state");
            st.exports.push(ExportShape {
                content_type,
                resource_spans: export.resource_spans.len(),
                scope_spans: export
                    .resource_spans
                    .iter()
                    .map(|r| r.scope_spans.len())
                    .collect(),
                spans: export
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum(),
            });
            for rs in export.resource_spans {
                let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
                for ss in rs.scope_spans {
                    let (scope_name, scope_version) =
                        ss.scope.map(|s| (s.name, s.version)).unwrap_or_default();
                    for span in ss.spans {
                        st.spans.push(ReceivedSpan {
                            span,
                            resource: resource.clone(),
                            scope_name: scope_name.clone(),
                            scope_version: scope_version.clone(),
                        });
                    }
                }
            }
            Ok(reply(200, Bytes::new()))
        }
        Err(e) => {
            let msg = format!("not an ExportTraceServiceRequest: {e}");
            state
                .lock()
                .expect("shim state")
                .decode_errors
                .push(msg.clone());
            Ok(reply(400, Bytes::from(msg)))
        }
    }
}
