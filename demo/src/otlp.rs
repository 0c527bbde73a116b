//! The demo services' own spans and their export as OTLP/HTTP protobuf, like any OpenTelemetry
//! SDK would send them to the shim (`POST /v1/traces`, `application/x-protobuf`).
//!
//! Export happens off the request path: `SpanExporter::record` only `try_send`s into a bounded
//! channel (a full channel drops and counts), and one task batches and posts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::trace_context::{new_span_id, TraceParent, FLAG_SAMPLED};

/// Attribute marking a span recorded under an unsampled parent (see ../shared/DESIGN.md): the
/// shim drops it unless a tail policy keeps the trace, e.g. because the proxy span failed.
pub use aetherflow_core::contract::RECORD_ONLY_ATTRIBUTE;

/// Where the trace is when a service starts a span: the incoming context, if any.
#[derive(Debug, Clone)]
pub struct SpanContext {
    /// Trace id shared by every span of the trace.
    pub trace_id: [u8; 16],
    /// This span's id.
    pub span_id: [u8; 8],
    /// Trace flags (W3C), inherited from the parent.
    pub flags: u8,
    /// `tracestate` carried along unchanged (holds the `ot=th:` sampling threshold).
    pub trace_state: String,
}

/// A span being timed by a demo service.
#[derive(Debug)]
pub struct DemoSpan {
    /// Ids and flags.
    pub context: SpanContext,
    /// Parent span id: the proxy span for a SERVER span, the SERVER span for an INTERNAL child.
    pub parent_span_id: Option<[u8; 8]>,
    /// Whether the parent lives in another process (the proxy).
    pub parent_is_remote: bool,
    /// Span name per the semantic conventions.
    pub name: String,
    /// OTLP span kind.
    pub kind: span::SpanKind,
    /// Start time.
    pub start: SystemTime,
    /// Attributes, in the order they were set.
    pub attributes: Vec<KeyValue>,
    /// `Some(message)` when the span failed (status ERROR); `None` leaves the status unset.
    pub error: Option<String>,
}

impl DemoSpan {
    /// A SERVER span continuing `parent` (or starting a new sampled trace when there is none).
    pub fn server(
        name: impl Into<String>,
        parent: Option<&TraceParent>,
        trace_state: &str,
    ) -> Self {
        let (trace_id, parent_span_id, flags) = match parent {
            Some(p) => (p.trace_id, Some(p.parent_id), p.flags),
            None => (
                crate::trace_context::new_trace_id(),
                None,
                FLAG_SAMPLED | crate::trace_context::FLAG_RANDOM,
            ),
        };
        Self {
            context: SpanContext {
                trace_id,
                span_id: new_span_id(),
                flags,
                trace_state: if parent.is_some() {
                    trace_state.to_owned()
                } else {
                    String::new()
                },
            },
            parent_span_id,
            parent_is_remote: parent.is_some(),
            name: name.into(),
            kind: span::SpanKind::Server,
            start: SystemTime::now(),
            attributes: Vec::new(),
            error: None,
        }
    }

    /// An INTERNAL child of this span, started now.
    pub fn child(&self, name: impl Into<String>) -> Self {
        Self {
            context: SpanContext {
                span_id: new_span_id(),
                ..self.context.clone()
            },
            parent_span_id: Some(self.context.span_id),
            parent_is_remote: false,
            name: name.into(),
            kind: span::SpanKind::Internal,
            start: SystemTime::now(),
            attributes: Vec::new(),
            error: None,
        }
    }

    /// Sets a string attribute.
    pub fn set_str(&mut self, key: &str, value: impl Into<String>) {
        self.attributes
            .push(kv(key, any_value::Value::StringValue(value.into())));
    }

    /// Sets an integer attribute.
    pub fn set_int(&mut self, key: &str, value: i64) {
        self.attributes
            .push(kv(key, any_value::Value::IntValue(value)));
    }

    /// Marks the span failed, with a human-readable reason.
    pub fn set_error(&mut self, message: impl Into<String>) {
        self.error = Some(message.into());
    }

    /// Ends the span now and converts it to its OTLP form.
    pub fn finish(mut self) -> Span {
        let sampled = self.context.flags & FLAG_SAMPLED != 0;
        if !sampled {
            self.attributes
                .push(kv(RECORD_ONLY_ATTRIBUTE, any_value::Value::BoolValue(true)));
        }
        let flags =
            aetherflow_core::contract::otlp_flags(self.context.flags, self.parent_is_remote);
        let status = match self.error {
            Some(message) => Status {
                message,
                code: status::StatusCode::Error as i32,
            },
            None => Status::default(),
        };
        Span {
            trace_id: self.context.trace_id.to_vec(),
            span_id: self.context.span_id.to_vec(),
            trace_state: self.context.trace_state,
            parent_span_id: self.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            flags,
            name: self.name,
            kind: self.kind as i32,
            start_time_unix_nano: unix_nanos(self.start),
            end_time_unix_nano: unix_nanos(SystemTime::now()),
            attributes: self.attributes,
            status: Some(status),
            ..Default::default()
        }
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The OTLP/HTTP traces endpoint from the standard variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/// (used as is), else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else the local default.
pub fn endpoint_from_env() -> String {
    if let Ok(url) = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        if !url.is_empty() {
            return url;
        }
    }
    if let Ok(base) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        if !base.is_empty() {
            return format!("{}/v1/traces", base.trim_end_matches('/'));
        }
    }
    "http://127.0.0.1:4318/v1/traces".to_owned()
}

/// Counters the exporter keeps (read by the services' logs and by tests).
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Spans acknowledged with a 2xx.
    pub exported: AtomicU64,
    /// Spans lost: channel full, connection refused, or a non-2xx answer.
    pub dropped: AtomicU64,
}

enum Command {
    Span(Box<Span>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the background exporter task; cheap to clone.
#[derive(Clone)]
pub struct SpanExporter {
    tx: mpsc::Sender<Command>,
    stats: Arc<ExportStats>,
}

/// Spans per export request; the task also flushes every `FLUSH_EVERY`.
const MAX_BATCH: usize = 128;
const FLUSH_EVERY: Duration = Duration::from_millis(200);
const QUEUE: usize = 2048;

impl SpanExporter {
    /// Starts the export task on the current tokio runtime. `service_name` is the resource's
    /// `service.name` unless `OTEL_SERVICE_NAME` overrides it.
    pub fn start(endpoint: String, service_name: &str) -> Self {
        let service_name = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| service_name.to_owned());
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(ExportStats::default());
        tokio::spawn(export_loop(rx, endpoint, service_name, stats.clone()));
        Self { tx, stats }
    }

    /// Queues a finished span; never blocks. A full queue drops the span and counts it.
    pub fn record(&self, span: Span) {
        if self.tx.try_send(Command::Span(Box::new(span))).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends everything queued so far and waits for the answer (bounded by the HTTP timeout).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Export counters.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }
}

async fn export_loop(
    mut rx: mpsc::Receiver<Command>,
    endpoint: String,
    service_name: String,
    stats: Arc<ExportStats>,
) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resource = Resource {
        attributes: vec![kv(
            "service.name",
            any_value::Value::StringValue(service_name),
        )],
        ..Default::default()
    };
    let mut batch: Vec<Span> = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let mut failures_logged = 0u64;
    loop {
        let mut reply = None;
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Command::Span(span)) => {
                    batch.push(*span);
                    if batch.len() < MAX_BATCH { continue; }
                }
                Some(Command::Flush(done)) => reply = Some(done),
                None => {
                    post(&client, &endpoint, &resource, std::mem::take(&mut batch), &stats, &mut failures_logged).await;
                    return;
                }
            },
            _ = tick.tick() => {}
        }
        if !batch.is_empty() {
            let spans = std::mem::take(&mut batch);
            post(
                &client,
                &endpoint,
                &resource,
                spans,
                &stats,
                &mut failures_logged,
            )
            .await;
        }
        if let Some(done) = reply {
            let _ = done.send(());
        }
    }
}

async fn post(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    endpoint: &str,
    resource: &Resource,
    spans: Vec<Span>,
    stats: &ExportStats,
    failures_logged: &mut u64,
) {
    if spans.is_empty() {
        return;
    }
    let count = spans.len() as u64;
    let body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "aetherflow.demo".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let request = hyper::Request::post(endpoint)
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::from(body)));
    let outcome = match request {
        Ok(request) => {
            match tokio::time::timeout(Duration::from_secs(5), client.request(request)).await {
                Ok(Ok(response)) => {
                    let status = response.status();
                    let _ = response.into_body().collect().await;
                    if status.is_success() {
                        Ok(())
                    } else {
                        Err(format!("HTTP {status}"))
                    }
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_owned()),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(()) => {
            stats.exported.fetch_add(count, Ordering::Relaxed);
        }
        Err(reason) => {
            stats.dropped.fetch_add(count, Ordering::Relaxed);
            // Bounded logging: the first failures, then one line per hundred.
            *failures_logged += 1;
            if *failures_logged <= 3 || failures_logged.is_multiple_of(100) {
                eprintln!("span export to {endpoint} failed ({reason}); {count} spans dropped (failure #{failures_logged})");
            }
        }
    }
}
