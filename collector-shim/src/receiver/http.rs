//! OTLP/HTTP receiver (`POST /v1/traces`) and the admin endpoints (`/healthz`, `/readyz`,
//! `/metrics`), as axum routers.
//!
//! Answers follow the OTLP/HTTP spec: 200 with an `ExportTraceServiceResponse` (carrying a
//! partial success when spans were rejected) in the request's encoding; errors carry a
//! `google.rpc.Status` in that encoding (plain text when the encoding is unknown): 400
//! malformed, 408 body not delivered within `receiver.body_read_timeout` (the connection is then
//! closed), 413 too large (before or after gzip), 415 unsupported type or encoding, 503 with
//! `Retry-After` when the pipeline sheds load or shuts down.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use super::decode::{self, DecodeError, Encoding, ResourceDefaults};
use super::{Ingest, Refusal};
use crate::metrics::{Metrics, TransportLabel};
use crate::red::Format;
use crate::rpc::RpcStatus;

/// What the handlers share.
#[derive(Clone)]
pub struct ReceiverState {
    /// Where accepted spans go.
    pub ingest: Ingest,
    /// Counters.
    pub metrics: Metrics,
    /// `/readyz` answers 200 only while this is true.
    pub ready: Arc<AtomicBool>,
    /// Body limit in bytes, before and after decompression.
    pub max_body_bytes: usize,
    /// Longest a request may take to deliver its body once its head is in.
    pub body_read_timeout: std::time::Duration,
    /// Resource attributes added where missing.
    pub defaults: Arc<ResourceDefaults>,
}

/// `google.rpc.Code` values used here.
const INVALID_ARGUMENT: i32 = 3;
const DEADLINE_EXCEEDED: i32 = 4;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAVAILABLE: i32 = 14;

/// The OTLP route.
pub fn otlp_router(state: ReceiverState) -> Router {
    Router::new()
        .route("/v1/traces", post(export_traces))
        // The body limit is enforced by the handler (so it can answer 413 in OTLP form).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// `/healthz`, `/readyz`, `/metrics`.
pub fn admin_router(metrics: Metrics, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Acquire) {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let metrics = metrics.clone();
                async move {
                    // Content negotiation as Prometheus does it: exemplars need OpenMetrics.
                    let format = Format::from_accept(
                        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
                    );
                    (
                        [(header::CONTENT_TYPE, format.content_type())],
                        metrics.encode_as(format),
                    )
                }
            }),
        )
}

/// An error answer, in the request's encoding when known.
fn refuse(
    st: &ReceiverState,
    status: StatusCode,
    reason: &str,
    spans: u64,
    encoding: Option<Encoding>,
    message: String,
) -> Response {
    st.metrics.refused(reason, spans);
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => UNAVAILABLE,
        StatusCode::PAYLOAD_TOO_LARGE => RESOURCE_EXHAUSTED,
        StatusCode::REQUEST_TIMEOUT => DEADLINE_EXCEEDED,
        _ => INVALID_ARGUMENT,
    };
    let mut resp = match encoding {
        Some(Encoding::Protobuf) => (
            status,
            [(header::CONTENT_TYPE, Encoding::Protobuf.content_type())],
            RpcStatus {
                code,
                message,
                details: Vec::new(),
            }
            .encode_to_vec(),
        )
            .into_response(),
        Some(Encoding::Json) => (
            status,
            [(header::CONTENT_TYPE, Encoding::Json.content_type())],
            serde_json::json!({ "code": code, "message": message }).to_string(),
        )
            .into_response(),
        None => (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message + "\n",
        )
            .into_response(),
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // OTLP clients back off at least this long before retrying.
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn success(encoding: Encoding, rejected: u64, reason: Option<String>) -> Response {
    let body = match encoding {
        Encoding::Protobuf => ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message: reason.unwrap_or_default(),
            }),
        }
        .encode_to_vec(),
        // OTLP JSON: int64 as a decimal string, lowerCamelCase names, empty object on success.
        Encoding::Json => if rejected > 0 {
            serde_json::json!({ "partialSuccess": {
                "rejectedSpans": rejected.to_string(),
                "errorMessage": reason.unwrap_or_default(),
            }})
        } else {
            serde_json::json!({})
        }
        .to_string()
        .into_bytes(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

async fn export_traces(
    State(st): State<ReceiverState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        return refuse(
            &st,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            0,
            None,
            format!(
                "content-type `{content_type}` is not application/x-protobuf or application/json"
            ),
        );
    };
    let limit = st.max_body_bytes;
    let too_large = |st: &ReceiverState| {
        refuse(
            st,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            0,
            Some(encoding),
            format!("request body larger than {limit} bytes (receiver.max_body_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(&st);
    }
    let read = tokio::time::timeout(st.body_read_timeout, Limited::new(body, limit).collect());
    let Ok(read) = read.await else {
        // A stalled or trickled body: answer and close, so the connection's slot comes back.
        let mut resp = refuse(
            &st,
            StatusCode::REQUEST_TIMEOUT,
            "body_read_timeout",
            0,
            Some(encoding),
            format!(
                "request body not received within {:?} (receiver.body_read_timeout)",
                st.body_read_timeout
            ),
        );
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    };
    let raw = match read {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(&st),
        Err(e) => {
            return refuse(
                &st,
                StatusCode::BAD_REQUEST,
                "body_read_error",
                0,
                Some(encoding),
                format!("could not read the request body: {e}"),
            )
        }
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let decoded = match content_encoding.as_str() {
        // No copy for plain bodies: the decoder reads the received buffer.
        "identity" | "" => Ok(std::borrow::Cow::Borrowed(&raw[..])),
        "gzip" => decode::gunzip(&raw, limit).map(std::borrow::Cow::Owned),
        other => {
            return refuse(
                &st,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                0,
                Some(encoding),
                format!("content-encoding `{other}` is not supported (use gzip or none)"),
            )
        }
    };
    let request = decoded.and_then(|bytes| decode::parse(&bytes, encoding));
    let request = match request {
        Ok(r) => r,
        Err(DecodeError::TooLarge) => return too_large(&st),
        Err(DecodeError::Malformed(reason)) => {
            return refuse(
                &st,
                StatusCode::BAD_REQUEST,
                "malformed",
                0,
                Some(encoding),
                reason,
            )
        }
    };
    let accepted = decode::into_records(request, &st.defaults);
    if accepted.rejected > 0 {
        st.metrics
            .spans_refused
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: "invalid_span".into(),
            })
            .inc_by(accepted.rejected);
    }
    let n = accepted.spans.len() as u64;
    if n > 0 {
        match st.ingest.submit(accepted.spans) {
            Ok(None) => {}
            Ok(Some(wait)) => {
                // The durable queue: 200 only once what sampling kept is on disk.
                if !wait.durable(crate::storage::receipt::WAIT).await {
                    return refuse(
                        &st,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not_durable",
                        n,
                        Some(encoding),
                        "spans could not be stored durably, retry later".into(),
                    );
                }
            }
            Err(Refusal::Full) => {
                return refuse(
                    &st,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "queue_full",
                    n,
                    Some(encoding),
                    "pipeline queue full, retry later".into(),
                )
            }
            Err(Refusal::TooMany) => {
                return refuse(
                    &st,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_many_spans",
                    n,
                    Some(encoding),
                    "more spans in one request than receiver.max_pending_spans".into(),
                )
            }
            Err(Refusal::Closed) => {
                return refuse(
                    &st,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    n,
                    Some(encoding),
                    "shutting down".into(),
                )
            }
        }
        st.metrics
            .spans_received
            .get_or_create(&TransportLabel {
                transport: encoding.transport().into(),
            })
            .inc_by(n);
    }
    success(encoding, accepted.rejected, accepted.reason)
}
