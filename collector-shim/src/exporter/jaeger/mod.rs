//! Jaeger exporter: Thrift binary `Batch` bodies POSTed to the collector's `/api/traces`
//! (`Content-Type: application/x-thrift`), one request per process (resource).
//!
//! For Jaeger >= 1.35 and Jaeger v2, the `otlp` exporter pointed at port 4318 is the
//! alternative; this one serves collectors that only speak the classic protocol.
pub mod model;
pub mod thrift;

use bytes::Bytes;

use crate::exporter::config::{JaegerConfig, RetryConfig};
use crate::exporter::group::by_resource;
use crate::exporter::http::HttpSender;
use crate::exporter::retry::retry;
use crate::exporter::{ExportError, Exporter, ExporterTelemetry};
use crate::metrics::LogThrottle;
use crate::model::SpanRecord;

/// Sends batches to a Jaeger collector over Thrift/HTTP.
pub struct JaegerExporter {
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

impl JaegerExporter {
    /// An exporter for `cfg` (validated).
    pub fn new(
        name: &str,
        cfg: &JaegerConfig,
        telemetry: ExporterTelemetry,
    ) -> Result<Self, String> {
        Ok(JaegerExporter {
            name: name.to_string(),
            sender: HttpSender::new(
                &cfg.endpoint,
                "application/x-thrift",
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

/// Encodes a batch as one Thrift `Batch` body per resource; returns the bodies and the number of
/// spans left out for invalid ids.
pub fn encode(batch: &[SpanRecord]) -> (Vec<Vec<u8>>, usize) {
    let mut skipped = 0;
    let mut bodies = Vec::new();
    for group in by_resource(batch) {
        let spans: Vec<model::Span> = group
            .spans()
            .filter_map(|r| {
                let s = model::span(r);
                skipped += usize::from(s.is_none());
                s
            })
            .collect();
        if spans.is_empty() {
            continue;
        }
        let b = model::Batch {
            process: model::process(&group.resource),
            spans,
        };
        bodies.push(thrift::encode(&b));
    }
    (bodies, skipped)
}

#[async_trait::async_trait]
impl Exporter for JaegerExporter {
    fn name(&self) -> &str {
        &self.name
    }

    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        let (bodies, skipped) = encode(batch);
        if skipped > 0 {
            self.telemetry.dropped_spans.inc_by(skipped as u64);
            tracing::warn!(exporter = %self.name, skipped, "spans with invalid trace or span ids left out");
        }
        // One request per process; a failure stops the batch so the batcher's outcome is honest
        // (bodies already accepted are not sent again by this call).
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
