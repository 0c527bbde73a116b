//! Zipkin v2 exporter: a JSON list of spans POSTed to `/api/v2/spans` (Zipkin answers 202).
//!
//! The mapping lives in [`model`], the JSON writing in `json`; this file is the encoder the
//! shared POST exporter (`exporter::post`) sends with.
pub mod config;
mod json;
pub mod model;

use crate::exporter::post::{Encoder, PostExporter};
use crate::exporter::ExporterTelemetry;
use crate::model::SpanRecord;

/// Sends batches to a Zipkin collector.
pub type ZipkinExporter = PostExporter<ZipkinJson>;

/// Zipkin v2 JSON, one body per batch.
pub struct ZipkinJson;

impl PostExporter<ZipkinJson> {
    /// An exporter for a validated entry.
    pub fn new(
        name: &str,
        cfg: &config::ZipkinConfig,
        telemetry: ExporterTelemetry,
    ) -> Result<Self, String> {
        PostExporter::with_encoder(name, cfg, ZipkinJson, &telemetry)
    }
}

impl Encoder for ZipkinJson {
    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn encode(&self, batch: &[SpanRecord]) -> (Vec<Vec<u8>>, usize) {
        let (body, skipped) = encode(batch);
        let bodies = match body.is_empty() {
            true => Vec::new(),
            false => vec![body],
        };
        (bodies, skipped)
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
