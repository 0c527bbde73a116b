//! The one exporter of the backends that take span batches as HTTP POST bodies (Zipkin, Jaeger
//! Thrift): the shared transport ([`HttpSender`]), retry policy and log throttle, with each
//! backend contributing only its encoder and content type ([`Encoding`]) and its config
//! ([`Target`]). The OTLP exporter uses the same transport and retry beside its gRPC path.
use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;

use crate::exporter::config::{Headers, RetryConfig};
use crate::exporter::http::HttpSender;
use crate::exporter::retry::retry;
use crate::exporter::tls::TlsConfig;
use crate::exporter::{ExportError, Exporter, ExporterTelemetry};
use crate::metrics::LogThrottle;
use crate::model::SpanRecord;

/// A backend's wire format.
pub trait Encoding: Send + Sync + 'static {
    /// The `Content-Type` of its bodies.
    const CONTENT_TYPE: &'static str;
    /// The bodies of one batch (sent in order, each its own request) and the number of spans
    /// left out because the backend would refuse them (invalid ids).
    fn encode(batch: &[SpanRecord]) -> (Vec<Vec<u8>>, usize);
}

/// The transport settings of an exporter entry.
pub trait Target {
    /// URL the bodies are POSTed to (resolved and validated).
    fn endpoint(&self) -> &str;
    /// Extra request headers.
    fn headers(&self) -> &Headers;
    /// Time allowed for one attempt.
    fn timeout(&self) -> Duration;
    /// TLS settings for an `https://` endpoint.
    fn tls(&self) -> &TlsConfig;
    /// Backoff policy.
    fn retry(&self) -> &RetryConfig;
}

/// POSTs each batch in the backend's encoding `E`.
pub struct PostExporter<E> {
    /// Name for logs and metric labels.
    name: String,
    /// POSTs to the configured endpoint.
    sender: HttpSender,
    /// Backoff policy.
    retry: RetryConfig,
    /// Retry and drop counters.
    telemetry: ExporterTelemetry,
    /// Bounds the log lines of a failing backend.
    log: LogThrottle,
    /// The encoding, a type only.
    encoding: PhantomData<fn() -> E>,
}

impl<E: Encoding> PostExporter<E> {
    /// An exporter for a validated entry.
    pub fn new(
        name: &str,
        cfg: &impl Target,
        telemetry: ExporterTelemetry,
    ) -> Result<Self, String> {
        Ok(PostExporter {
            name: name.to_string(),
            sender: HttpSender::new(
                cfg.endpoint(),
                E::CONTENT_TYPE,
                cfg.headers(),
                cfg.timeout(),
                cfg.tls(),
            )?,
            retry: cfg.retry().clone(),
            telemetry,
            log: LogThrottle::default(),
            encoding: PhantomData,
        })
    }
}

#[async_trait::async_trait]
impl<E: Encoding> Exporter for PostExporter<E> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        let (bodies, skipped) = E::encode(batch);
        if skipped > 0 {
            self.telemetry.dropped_spans.inc_by(skipped as u64);
            tracing::warn!(exporter = %self.name, skipped, "spans with invalid trace or span ids left out");
        }
        // A failure stops the batch so the batcher's outcome is honest (bodies already accepted
        // are not sent again by this call).
        for body in bodies {
            let body = Bytes::from(body);
            retry(&self.retry, &self.telemetry, &self.log, &self.name, || {
                let body = body.clone();
                async move { self.sender.post(body, None).await.map(drop) }
            })
            .await?;
        }
        Ok(())
    }
}

/// `Target` for config structs with the usual field names.
macro_rules! impl_target {
    ($($t:ty),*) => {$(
        impl Target for $t {
            fn endpoint(&self) -> &str {
                &self.endpoint
            }
            fn headers(&self) -> &Headers {
                &self.headers
            }
            fn timeout(&self) -> Duration {
                self.timeout
            }
            fn tls(&self) -> &TlsConfig {
                &self.tls
            }
            fn retry(&self) -> &RetryConfig {
                &self.retry
            }
        }
    )*};
}

impl_target!(
    crate::exporter::config::ZipkinConfig,
    crate::exporter::config::JaegerConfig
);
