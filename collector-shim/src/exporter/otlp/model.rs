//! SpanRecords -> `ExportTraceServiceRequest`: the batcher's flat list regrouped into
//! `ResourceSpans` / `ScopeSpans` (one per distinct resource and scope). Pure.
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::{encode_length_delimiter, length_delimiter_len, Message};

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

/// Encodes the same bytes as `request(batch).encode_to_vec()` without copying the spans into
/// a request first (the exporter's hot path): each nested message is written as its field key,
/// its length and its body, with spans, resources and scopes encoded by reference.
pub fn encode(batch: &[SpanRecord]) -> Vec<u8> {
    let groups = by_resource(batch);
    // Lengths first: protobuf prefixes every nested message with its size.
    let scope_len = |scope: &InstrumentationScope, spans: &[&SpanRecord]| {
        nested_len(scope.encoded_len())
            + spans
                .iter()
                .map(|r| nested_len(r.span.encoded_len()))
                .sum::<usize>()
    };
    let sizes: Vec<(usize, Vec<usize>)> = groups
        .iter()
        .map(|g| {
            let scopes: Vec<usize> = g
                .scopes
                .iter()
                .map(|(s, spans)| scope_len(s, spans))
                .collect();
            let total = nested_len(g.resource.encoded_len())
                + scopes.iter().map(|l| nested_len(*l)).sum::<usize>();
            (total, scopes)
        })
        .collect();
    let mut out = Vec::with_capacity(sizes.iter().map(|(l, _)| nested_len(*l)).sum());
    for (g, (rs_len, scope_lens)) in groups.iter().zip(&sizes) {
        field(&mut out, FIELD_1, *rs_len); // ExportTraceServiceRequest.resource_spans
        field(&mut out, FIELD_1, g.resource.encoded_len()); // ResourceSpans.resource
        body(&mut out, &*g.resource);
        for ((scope, spans), len) in g.scopes.iter().zip(scope_lens) {
            field(&mut out, FIELD_2, *len); // ResourceSpans.scope_spans
            field(&mut out, FIELD_1, scope.encoded_len()); // ScopeSpans.scope
            body(&mut out, &**scope);
            for r in spans {
                field(&mut out, FIELD_2, r.span.encoded_len()); // ScopeSpans.spans
                body(&mut out, &r.span);
            }
        }
    }
    out
}

/// Key byte of field 1 with wire type 2 (length-delimited): `(1 << 3) | 2`.
const FIELD_1: u8 = 0x0a;
/// Key byte of field 2 with wire type 2: `(2 << 3) | 2`.
const FIELD_2: u8 = 0x12;

/// Size of a length-delimited field (one key byte, as for every field used here) with a body
/// of `len` bytes.
fn nested_len(len: usize) -> usize {
    1 + length_delimiter_len(len) + len
}

fn field(out: &mut Vec<u8>, key: u8, len: usize) {
    out.push(key);
    // A Vec grows as needed, so encoding into it cannot run out of room.
    let _ = encode_length_delimiter(len, out);
}

fn body<M: Message>(out: &mut Vec<u8>, m: &M) {
    let _ = m.encode(out);
}
