//! A real OTLP/HTTP backend on 127.0.0.1:0 that decodes each request body as an
//! `ExportTraceServiceRequest` (independently of the shim's exporter) and records the spans.
//! It can be told to answer 503 for a while (an outage).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// What the backend saw.
#[derive(Default)]
pub struct Received {
    /// Decoded spans, in arrival order.
    pub spans: Mutex<Vec<Span>>,
    /// Requests answered 503 so far.
    pub refused: AtomicUsize,
    /// Requests still to refuse with 503.
    pub refuse_next: AtomicUsize,
}

/// Starts the backend; returns its address and its record.
pub async fn start() -> (SocketAddr, Arc<Received>) {
    let rec = Arc::new(Received::default());
    let app = Router::new()
        .route("/v1/traces", post(handle))
        .with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, rec)
}

async fn handle(State(rec): State<Arc<Received>>, body: Bytes) -> (StatusCode, Vec<u8>) {
    if rec
        .refuse_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        rec.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, Vec::new());
    }
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut spans = rec.spans.lock().unwrap();
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            spans.extend(ss.spans);
        }
    }
    (
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

impl Received {
    pub fn count(&self) -> usize {
        self.spans.lock().unwrap().len()
    }
}
