//! The flapping backend: an OTLP/HTTP receiver (the shim's `otlp` exporter sends to it) that
//! records how many times it received each trace id, and that the soak stops and starts again
//! on the same port (stopped: the port refuses connections and open connections are cut).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Trace id -> times received (each request of the soak is one trace of one span).
pub type Received = HashMap<[u8; 16], u32>;

/// What the backend received over all its runs.
#[derive(Default)]
pub struct Record {
    /// Spans by trace id.
    pub traces: Mutex<Received>,
    /// Spans with a trace id that is not 16 bytes (should stay 0).
    pub malformed: Mutex<u64>,
}

impl Record {
    /// A copy of the spans received so far.
    pub fn snapshot(&self) -> Received {
        self.traces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn add(&self, req: &ExportTraceServiceRequest) {
        let mut traces = self.traces.lock().unwrap_or_else(PoisonError::into_inner);
        for span in req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            match <[u8; 16]>::try_from(span.trace_id.as_slice()) {
                Ok(id) => *traces.entry(id).or_default() += 1,
                Err(_) => {
                    *self
                        .malformed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) += 1
                }
            }
        }
    }
}

/// The backend; `stop` and `start` flap it on one address.
pub struct Backend {
    /// Where the shim exports (`/v1/traces`).
    pub addr: SocketAddr,
    /// Everything received.
    pub record: Arc<Record>,
    /// The accept loop and its connections while running.
    running: Option<JoinSet<()>>,
}

impl Backend {
    /// Binds a free loopback port and starts serving.
    pub async fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("backend bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let mut b = Backend {
            addr,
            record: Arc::new(Record::default()),
            running: None,
        };
        b.serve(listener);
        Ok(b)
    }

    /// Whether it is serving.
    pub fn is_up(&self) -> bool {
        self.running.is_some()
    }

    /// Stops accepting and cuts every open connection (an export in progress fails).
    pub async fn stop(&mut self) {
        if let Some(mut set) = self.running.take() {
            set.shutdown().await;
        }
    }

    /// Serves again on the same address (bounded retries while the old socket is released).
    pub async fn restart(&mut self) -> Result<(), String> {
        if self.is_up() {
            return Ok(());
        }
        let mut last = String::new();
        for _ in 0..100 {
            match TcpListener::bind(self.addr).await {
                Ok(l) => {
                    self.serve(l);
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err(format!("backend rebind {}: {last}", self.addr))
    }

    fn serve(&mut self, listener: TcpListener) {
        let record = Arc::clone(&self.record);
        let mut set = JoinSet::new();
        set.spawn(async move {
            // Connections live in their own set, cut when this task is aborted (dropped).
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors or similar: wait instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let record = Arc::clone(&record);
                conns.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let record = Arc::clone(&record);
                        async move { receive(req, &record).await }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        self.running = Some(set);
    }
}

async fn receive(
    req: Request<Incoming>,
    record: &Record,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let ok = req.method() == Method::POST && req.uri().path() == "/v1/traces";
    let body = match req.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST)),
    };
    if !ok {
        return Ok(reply(StatusCode::NOT_FOUND));
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(r) => {
            record.add(&r);
            Ok(reply(StatusCode::OK))
        }
        Err(_) => Ok(reply(StatusCode::BAD_REQUEST)),
    }
}

fn reply(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}
