//! Zipkin v2 exporter: a JSON list of spans POSTed to `/api/v2/spans` (Zipkin answers 202).
//!
//! The mapping lives in [`model`]; this file is the transport.
pub mod model;

use bytes::Bytes;

use crate::exporter::config::{RetryConfig, ZipkinConfig};
use crate::exporter::http::HttpSender;
use crate::exporter::retry::{retry, LogLimiter};
use crate::exporter::{ExportError, Exporter, ExporterTelemetry};
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
    log: LogLimiter,
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
            sender: HttpSender::new(&cfg.endpoint, "application/json", &cfg.headers, cfg.timeout)?,
            retry: cfg.retry.clone(),
            telemetry,
            log: LogLimiter::default(),
        })
    }
}

/// Encodes a batch as the JSON body; spans Zipkin would refuse (invalid ids) are left out and
/// their number returned, so one bad span cannot fail the whole request.
pub fn encode(batch: &[SpanRecord]) -> (Vec<u8>, usize) {
    let mut skipped = 0;
    let spans: Vec<model::ZipkinSpan> = batch
        .iter()
        .filter_map(|r| model::to_zipkin(r).map_err(|_| skipped += 1).ok())
        .collect();
    // Serializing plain structs of strings and integers into a Vec cannot fail.
    let body = serde_json::to_vec(&spans).unwrap_or_else(|_| b"[]".to_vec());
    (if spans.is_empty() { Vec::new() } else { body }, skipped)
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
