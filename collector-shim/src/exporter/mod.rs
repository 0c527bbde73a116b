//! Exporters: one small trait, one folder per backend (model mapping apart from transport).
//!
//! Layout: `config` (the `exporters:` list, `headers`, `retry`, the entry every POST backend
//! shares, defaults and `OTEL_EXPORTER_*` handling), `attrs` and `group` (attribute helpers and
//! resource/scope regrouping shared by the mappings), `http` + `tls` + `retry` (the shared
//! transport with its rustls configuration, its status classification and the backoff policy),
//! `post` (the one exporter of every backend that POSTs bodies over them), and one folder per
//! backend holding only what is its own: `config.rs` (its entry), `model.rs` (pure mapping to
//! the wire format) and `mod.rs` (its encoder). `zipkin` (v2 JSON), `jaeger` (Thrift binary,
//! with its small `thrift` encoder) and `otlp` over HTTP (protobuf or OTLP/JSON, with partial
//! success read from the answer) are `post::PostExporter`s; OTLP over gRPC (`otlp::grpc`, tonic's
//! transport beside the shared retry), `console` (trace trees) and `file` (JSON lines) are the
//! exporters with a transport of their own.
//!
//! Wire formats are tested against independent decoders in `tests/decoders/` (Python).
use std::sync::Arc;
use std::time::Duration;

use crate::model::SpanRecord;

pub mod attrs;
pub mod config;
pub mod console;
pub mod file;
pub mod group;
pub mod http;
pub mod jaeger;
pub mod otlp;
pub mod post;
pub mod retry;
pub mod tls;
pub mod zipkin;

pub use config::{
    Compression, ConsoleConfig, ExporterConfig, FileConfig, JaegerConfig, OtlpConfig, OtlpProtocol,
    RetryConfig, TlsConfig, ZipkinConfig,
};

/// Why an export attempt failed, classified once so retries are decided in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportError {
    /// Connection errors, 5xx (but 501), timeouts: worth another try after a backoff.
    Retryable(String),
    /// 429/503 with an optional `Retry-After`: try again no sooner than that.
    Throttled {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 4xx other than 429 and anything that will fail the same way again: drop and count.
    NonRetryable(String),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Retryable(m) => write!(f, "retryable: {m}"),
            ExportError::Throttled {
                retry_after,
                message,
            } => {
                write!(f, "throttled (retry after {retry_after:?}): {message}")
            }
            ExportError::NonRetryable(m) => write!(f, "non-retryable: {m}"),
        }
    }
}

impl std::error::Error for ExportError {}

impl ExportError {
    /// The `kind` label of `shim_export_errors_total` for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            ExportError::Retryable(_) => "retryable",
            ExportError::Throttled { .. } => "throttled",
            ExportError::NonRetryable(_) => "non_retryable",
        }
    }
}

/// A backend the batcher hands batches to.
///
/// Contract (as in the OpenTelemetry SDK): `export` is never called concurrently for one
/// exporter, it must finish within its own timeout, and retries are the exporter's business
/// (the shared policy lives in `exporter::retry`). `Ok` means the backend accepted the batch.
#[async_trait::async_trait]
pub trait Exporter: Send + Sync {
    /// Short name used in logs and metric labels (`zipkin`, `jaeger`, `otlp`, `console`, `file`).
    fn name(&self) -> &str;
    /// Send one batch, retrying as the policy allows.
    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError>;
    /// Flush anything buffered and release resources; called once at shutdown.
    async fn shutdown(&self) -> Result<(), ExportError> {
        Ok(())
    }
}

/// Counters an exporter updates itself, because only it sees the individual attempts.
/// The batcher counts batches, spans exported and failed, and export latency.
/// `crate::metrics` registers these under the exporter's name label.
#[derive(Clone, Default, Debug)]
pub struct ExporterTelemetry {
    /// Attempts after the first one (each retry of a batch counts once).
    pub retries: prometheus_client::metrics::counter::Counter,
    /// Attempts that failed, whatever happened next.
    pub failed_attempts: prometheus_client::metrics::counter::Counter,
    /// Spans the backend accepted the request for but rejected (OTLP partial success); not retried.
    pub rejected_spans: prometheus_client::metrics::counter::Counter,
    /// Spans an exporter dropped itself: the file exporter at its size cap, spans with invalid
    /// ids left out of a Zipkin or Jaeger request.
    pub dropped_spans: prometheus_client::metrics::counter::Counter,
}

/// Builds the exporter a config entry describes. The config must have passed
/// [`ExporterConfig::validate`]; errors here are the same kind (key and reason).
pub fn build(
    cfg: &ExporterConfig,
    telemetry: ExporterTelemetry,
) -> Result<Arc<dyn Exporter>, String> {
    cfg.validate()?;
    let cfg = &cfg.resolved();
    let name = cfg.name();
    match cfg {
        ExporterConfig::Console(_) => Ok(Arc::new(console::ConsoleExporter::stdout(name))),
        ExporterConfig::Zipkin(c) => Ok(Arc::new(zipkin::ZipkinExporter::new(name, c, telemetry)?)),
        ExporterConfig::Jaeger(c) => Ok(Arc::new(jaeger::JaegerExporter::new(name, c, telemetry)?)),
        ExporterConfig::Otlp(c) => Ok(Arc::new(otlp::OtlpExporter::new(name, c, telemetry)?)),
        ExporterConfig::File(c) => Ok(Arc::new(file::FileExporter::new(name, c, telemetry)?)),
    }
}
