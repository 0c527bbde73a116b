//! The local trace sink: the "backend" every tracing configuration exports to, counting the spans
//! it receives so the harness can compare them with the spans it expects.
//!
//! One server answers both wire formats the configurations produce:
//! - `POST /v1/traces`: OTLP/HTTP protobuf (from the shim's OTLP exporter or Envoy's native
//!   OpenTelemetry tracer), decoded with the opentelemetry-proto types;
//! - `POST /api/v2/spans`: Zipkin v2 JSON (from the shim's Zipkin exporter or Envoy's native
//!   Zipkin tracer), parsed as a JSON array.
//!
//! Bodies are really decoded (a count read off the bytes would not notice a malformed export).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the sink has received so far.
#[derive(Default, Debug)]
pub struct SinkCounters {
    /// Spans in decoded OTLP requests.
    pub otlp_spans: AtomicU64,
    /// Spans in decoded Zipkin v2 JSON arrays.
    pub zipkin_spans: AtomicU64,
    /// Export requests accepted (either format).
    pub requests: AtomicU64,
    /// Requests refused: unknown path, or a body that did not decode.
    pub rejected: AtomicU64,
}

impl SinkCounters {
    /// Spans received in either format.
    pub fn spans(&self) -> u64 {
        self.otlp_spans.load(Ordering::Relaxed) + self.zipkin_spans.load(Ordering::Relaxed)
    }
}

/// A running sink; dropping it stops accepting new connections.
pub struct Sink {
    /// Where exporters send.
    pub addr: SocketAddr,
    /// Shared with the connection tasks.
    pub counters: Arc<SinkCounters>,
    accept: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Sink {
    /// Binds 127.0.0.1 on a port the OS picks; serves HTTP/1.1 and h2c.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(SinkCounters::default());
        let shared = counters.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counters = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let counters = counters.clone();
                        async move { receive(req, &counters).await }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            counters,
            accept,
        })
    }
}

async fn receive(
    req: Request<Incoming>,
    counters: &SinkCounters,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let is_post = req.method() == Method::POST;
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "unreadable body")),
    };
    let counted = match (is_post, path.as_str()) {
        (true, "/v1/traces") => count_otlp(&body).map(|n| (n, &counters.otlp_spans)),
        (true, "/api/v2/spans") => count_zipkin(&body).map(|n| (n, &counters.zipkin_spans)),
        _ => Err("unknown path"),
    };
    match counted {
        Ok((spans, counter)) => {
            counter.fetch_add(spans, Ordering::Relaxed);
            counters.requests.fetch_add(1, Ordering::Relaxed);
            // Each API's own success code: Zipkin answers 202 (Envoy's Zipkin tracer counts any
            // other status as a dropped report); OTLP answers 200 with an empty
            // ExportTraceServiceResponse, which is a zero-length protobuf body.
            let status = if path == "/api/v2/spans" {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok(reply(status, ""))
        }
        Err(reason) => {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            Ok(reply(StatusCode::BAD_REQUEST, reason))
        }
    }
}

fn reply(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// Spans in an OTLP protobuf `ExportTraceServiceRequest`.
pub fn count_otlp(body: &[u8]) -> Result<u64, &'static str> {
    let request =
        ExportTraceServiceRequest::decode(body).map_err(|_| "body is not an OTLP request")?;
    Ok(request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum())
}

/// Spans in a Zipkin v2 JSON array; each must be an object with `traceId` and `id`.
pub fn count_zipkin(body: &[u8]) -> Result<u64, &'static str> {
    let spans: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(body).map_err(|_| "body is not a JSON array of objects")?;
    if spans
        .iter()
        .any(|s| !s.contains_key("traceId") || !s.contains_key("id"))
    {
        return Err("a Zipkin span lacks traceId or id");
    }
    Ok(spans.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn otlp_spans_are_counted_across_resources_and_scopes() {
        let scope = |n| ScopeSpans {
            spans: vec![Span::default(); n],
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![scope(2), scope(3)],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![scope(1)],
                    ..Default::default()
                },
            ],
        };
        assert_eq!(count_otlp(&request.encode_to_vec()), Ok(6));
        assert!(count_otlp(b"\xff\xff\xff").is_err());
    }

    #[test]
    fn zipkin_spans_need_ids() {
        assert_eq!(
            count_zipkin(br#"[{"traceId":"a","id":"b"},{"traceId":"c","id":"d"}]"#),
            Ok(2)
        );
        assert!(count_zipkin(br#"[{"id":"b"}]"#).is_err());
        assert!(count_zipkin(b"{}").is_err());
    }
}
