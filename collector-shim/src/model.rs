//! The unit that flows through the pipeline: one span with the resource and scope it came with.
//!
//! Spans are kept in their OTLP form (no copy into a private model); the resource and scope are
//! shared behind `Arc` because one OTLP request carries many spans of the same resource.
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

/// One span on its way through the shim.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    /// The resource (service.name, ...) of the `ResourceSpans` the span arrived in.
    pub resource: Arc<Resource>,
    /// The instrumentation scope of the `ScopeSpans` the span arrived in.
    pub scope: Arc<InstrumentationScope>,
    /// The span itself, as received.
    pub span: Span,
}
