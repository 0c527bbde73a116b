//! Zipkin v2 exporter: a JSON list of spans POSTed to `/api/v2/spans` (Zipkin answers 202).
//!
//! The mapping lives in [`model`]; this file is the transport.
mod json;
pub mod model;

use bytes::Bytes;

use crate::exporter::config::{RetryConfig, ZipkinConfig};
use crate::exporter::http::HttpSender;
use crate::exporter::retry::retry;
use crate::exporter::{ExportError, Exporter, ExporterTelemetry};
use crate::metrics::LogThrottle;
use crate::model::SpanRecord;

/// Sends batches to a Zipkin collector.
pub struct ZipkinExporter {
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
}

impl ZipkinExporter {
    /// An exporter for `cfg` (validated).
    pub fn new(
        name: &str,
        cfg: &ZipkinConfig,
        telemetry: ExporterTelemetry,
    ) -> Result<Self, String> {
        Ok(ZipkinExporter {
            name: name.to_string(),
            sender: HttpSender::new(
                &cfg.endpoint,
                "application/json",
                &cfg.headers,
                cfg.timeout,
                &cfg.tls,
            )?,
            retry: cfg.retry.clone(),
            telemetry,
            log: LogThrottle::default(),
        })
    }
}

/// Encodes a batch as the JSON body; spans Zipkin would refuse (invalid ids) are left out and
/// their number returned, so one bad span cannot fail the whole request. The body is empty when
/// no span is left.
pub fn encode(batch: &[SpanRecord]) -> (Vec<u8>, usize) {
    let mut skipped = 0;
    // ~1 KB per typical Envoy span: one allocation for most batches.
    let mut body = Vec::with_capacity(batch.len() * 1024 + 2);
    body.push(b'[');
    for rec in batch {
        let mark = body.len();
        if body.len() > 1 {
            body.push(b',');
        }
        if model::write_span(rec, &mut body).is_err() {
            body.truncate(mark);
            skipped += 1;
        }
    }
    if body.len() == 1 {
        return (Vec::new(), skipped);
    }
    body.push(b']');
    (body, skipped)
}

#[async_trait::async_trait]
impl Exporter for ZipkinExporter {
    fn name(&self) -> &str {
        &self.name
    }

    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        let (body, skipped) = encode(batch);
        if skipped > 0 {
            self.telemetry.dropped_spans.inc_by(skipped as u64);
            tracing::warn!(exporter = %self.name, skipped, "spans with invalid trace or span ids left out");
        }
        if body.is_empty() {
            return Ok(());
        }
        let body = Bytes::from(body);
        retry(&self.retry, &self.telemetry, &self.log, &self.name, || {
            let body = body.clone();
            async move { self.sender.post(body, None).await.map(drop) }
        })
        .await
    }
}
