//! The one exporter of the backends that take span batches as HTTP POST bodies (Zipkin, Jaeger
//! Thrift, OTLP over HTTP): the shared transport ([`HttpSender`]), retry policy and log
//! throttle, with each backend contributing only its [`Encoder`] (bodies, content type, and
//! what it reads in an accepted answer) and its config entry ([`HttpTarget`]). OTLP over gRPC is
//! the one exporter with a transport of its own (`otlp::grpc`).
use bytes::Bytes;

use crate::event::FaultEvent;
use crate::exporter::config::{HttpTarget, RetryConfig};
use crate::exporter::http::HttpSender;
use crate::exporter::retry::{retry, AttemptEvents};
use crate::exporter::{ExportError, Exporter, ExporterTelemetry};
use crate::model::SpanRecord;

/// A backend's wire format: the part of an HTTP exporter that is the backend's own.
pub trait Encoder: Send + Sync + 'static {
    /// The `Content-Type` of its bodies.
    fn content_type(&self) -> &'static str;
    /// The `Content-Encoding` of its bodies, if they are compressed.
    fn content_encoding(&self) -> Option<&'static str> {
        None
    }
    /// The bodies of one batch (sent in order, each its own request) and the number of spans
    /// left out because the backend would refuse them (invalid ids).
    fn encode(&self, batch: &[SpanRecord]) -> (Vec<Vec<u8>>, usize);
    /// Reads the body of an accepted request (OTLP reports partially accepted batches there);
    /// called once per body the backend accepted.
    fn accepted(&self, _answer: &[u8]) {}
}

/// POSTs each batch in the backend's encoding `E`.
pub struct PostExporter<E> {
    /// Name for logs and metric labels.
    name: String,
    /// POSTs to the configured endpoint.
    sender: HttpSender,
    /// Backoff policy.
    retry: RetryConfig,
    /// Failed attempts and retries.
    attempts: AttemptEvents,
    /// Spans left out for ids the backend would refuse.
    left_out: FaultEvent,
    /// The backend's wire format.
    encoder: E,
}

impl<E: Encoder> PostExporter<E> {
    /// An exporter for a validated entry.
    pub fn with_encoder(
        name: &str,
        cfg: &impl HttpTarget,
        encoder: E,
        telemetry: &ExporterTelemetry,
    ) -> Result<Self, String> {
        Ok(PostExporter {
            name: name.to_string(),
            sender: HttpSender::new(
                cfg.endpoint(),
                encoder.content_type(),
                cfg.headers(),
                cfg.timeout(),
                cfg.tls(),
            )?,
            retry: cfg.retry().clone(),
            attempts: AttemptEvents::new(name, telemetry),
            left_out: FaultEvent::new(
                "spans with invalid trace or span ids left out",
                name,
                telemetry.dropped_spans.clone(),
            ),
            encoder,
        })
    }
}

#[async_trait::async_trait]
impl<E: Encoder> Exporter for PostExporter<E> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (bodies, skipped) = self.encoder.encode(batch);
        if skipped > 0 {
            self.left_out.report(skipped as u64);
        }
        let encoding = self.encoder.content_encoding();
        // A failure stops the batch so the batcher's outcome is honest (bodies already accepted
        // are not sent again by this call).
        for body in bodies {
            let body = Bytes::from(body);
            let answer = retry(&self.retry, &self.attempts, || {
                let body = body.clone();
                async move { self.sender.post(body, encoding).await }
            })
            .await?;
            self.encoder.accepted(&answer);
        }
        Ok(())
    }
}
