//! Jaeger exporter: Thrift binary `Batch` bodies POSTed to the collector's `/api/traces`
//! (`Content-Type: application/x-thrift`), one request per process (resource).
//!
//! For Jaeger >= 1.35 and Jaeger v2, the `otlp` exporter pointed at port 4318 is the
//! alternative; this one serves collectors that only speak the classic protocol.
pub mod config;
pub mod model;
pub mod thrift;

use crate::exporter::group::by_resource;
use crate::exporter::post::{Encoder, PostExporter};
use crate::exporter::ExporterTelemetry;
use crate::model::SpanRecord;

/// Sends batches to a Jaeger collector over Thrift/HTTP.
pub type JaegerExporter = PostExporter<JaegerThrift>;

/// Thrift binary `Batch`es, one body per process (resource).
pub struct JaegerThrift;

impl PostExporter<JaegerThrift> {
    /// An exporter for a validated entry.
    pub fn new(
        name: &str,
        cfg: &config::JaegerConfig,
        telemetry: ExporterTelemetry,
    ) -> Result<Self, String> {
        PostExporter::with_encoder(name, cfg, JaegerThrift, &telemetry)
    }
}

impl Encoder for JaegerThrift {
    fn content_type(&self) -> &'static str {
        "application/x-thrift"
    }

    fn encode(&self, batch: &[SpanRecord]) -> (Vec<Vec<u8>>, usize) {
        encode(batch)
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
