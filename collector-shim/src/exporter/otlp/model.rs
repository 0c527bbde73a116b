//! SpanRecords -> `ExportTraceServiceRequest`: the batcher's flat list regrouped into
//! `ResourceSpans` / `ScopeSpans` (one per distinct resource and scope). Pure.
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

use crate::exporter::group::by_resource;
use crate::model::SpanRecord;

/// Rebuilds the OTLP request for a batch. Schema URLs are not kept by `SpanRecord`, so they
/// are left empty (they are optional in OTLP).
pub fn request(batch: &[SpanRecord]) -> ExportTraceServiceRequest {
    let resource_spans = by_resource(batch)
        .into_iter()
        .map(|g| ResourceSpans {
            resource: Some((*g.resource).clone()),
            scope_spans: g
                .scopes
                .into_iter()
                .map(|(scope, spans)| ScopeSpans {
                    scope: Some((*scope).clone()),
                    spans: spans.into_iter().map(|r| r.span.clone()).collect(),
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}
