//! A direct protobuf writer for the filter's spans: the same bytes prost would produce for
//! `ExportTraceServiceRequest`, written straight from [`Span`] without first building the
//! prost message tree (which costs one `String` per attribute key and a copy of every
//! value). Lengths are computed first, so nothing is encoded twice. The prost types stay the
//! reference: the tests decode this output with them.

use crate::span::{Attribute, Link, Span, SpanKind, StatusCode, Value};

const LEN: u8 = 2;
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const FIXED32: u8 = 5;

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u8, wire: u8) {
    out.push((field << 3) | wire);
}

/// Size of a length-delimited field whose payload is `len` bytes (tags here are < 16).
fn ld_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn put_ld(out: &mut Vec<u8>, field: u8, payload: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn put_ld_header(out: &mut Vec<u8>, field: u8, len: usize) {
    put_key(out, field, LEN);
    put_varint(out, len as u64);
}

/// A string field, left out when empty (proto3 default).
fn str_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        ld_len(s.len())
    }
}

fn put_str(out: &mut Vec<u8>, field: u8, s: &str) {
    if !s.is_empty() {
        put_ld(out, field, s.as_bytes());
    }
}

fn any_value_len(v: &Value) -> usize {
    match v {
        Value::Str(s) => ld_len(s.len()),
        Value::Bool(_) => 2,
        Value::Int(i) => 1 + varint_len(*i as u64),
    }
}

fn key_value_len(a: &Attribute) -> usize {
    str_len(&a.key) + ld_len(any_value_len(&a.value))
}

fn put_key_value(out: &mut Vec<u8>, field: u8, a: &Attribute) {
    put_ld_header(out, field, key_value_len(a));
    put_str(out, 1, &a.key);
    put_ld_header(out, 2, any_value_len(&a.value));
    match &a.value {
        Value::Str(s) => put_ld(out, 1, s.as_bytes()),
        Value::Bool(b) => {
            put_key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        Value::Int(i) => {
            put_key(out, 3, VARINT);
            put_varint(out, *i as u64);
        }
    }
}

fn link_len(l: &Link) -> usize {
    ld_len(16) + ld_len(8) + str_len(&l.trace_state) + 5
}

fn put_link(out: &mut Vec<u8>, l: &Link) {
    put_ld_header(out, 13, link_len(l));
    put_ld(out, 1, &l.trace_id.0);
    put_ld(out, 2, &l.span_id.0);
    put_str(out, 3, &l.trace_state);
    put_key(out, 6, FIXED32);
    out.extend_from_slice(&l.otlp_flags().to_le_bytes());
}

fn status_code(s: StatusCode) -> u64 {
    match s {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    }
}

fn status_len(s: &Span) -> usize {
    str_len(&s.status_message) + 2
}

fn span_len(s: &Span) -> usize {
    let mut n = ld_len(16) + ld_len(8) + str_len(&s.trace_state) + str_len(&s.name);
    if s.parent_span_id.is_some() {
        n += ld_len(8);
    }
    n += 2 + 9 + 9; // kind, start, end
    n += s
        .attributes
        .iter()
        .map(|a| ld_len(key_value_len(a)))
        .sum::<usize>();
    n += s.links.iter().map(|l| ld_len(link_len(l))).sum::<usize>();
    if s.status != StatusCode::Unset {
        n += ld_len(status_len(s));
    }
    n + 2 + 4 // flags: field 16 takes a two-byte key
}

/// Writes one span whose encoded length (`span_len`) the caller already computed.
fn put_span(out: &mut Vec<u8>, s: &Span, len: usize) {
    put_ld_header(out, 2, len);
    put_ld(out, 1, &s.trace_id.0);
    put_ld(out, 2, &s.span_id.0);
    put_str(out, 3, &s.trace_state);
    if let Some(p) = &s.parent_span_id {
        put_ld(out, 4, &p.0);
    }
    put_str(out, 5, &s.name);
    put_key(out, 6, VARINT);
    out.push(match s.kind {
        SpanKind::Server => 2,
        SpanKind::Client => 3,
    });
    put_key(out, 7, FIXED64);
    out.extend_from_slice(&s.start_unix_nano.to_le_bytes());
    put_key(out, 8, FIXED64);
    out.extend_from_slice(&s.end_unix_nano.max(s.start_unix_nano).to_le_bytes());
    for a in &s.attributes {
        put_key_value(out, 9, a);
    }
    for l in &s.links {
        put_link(out, l);
    }
    if s.status != StatusCode::Unset {
        put_ld_header(out, 15, status_len(s));
        put_str(out, 2, &s.status_message);
        put_key(out, 3, VARINT);
        put_varint(out, status_code(s.status));
    }
    // Field 16, fixed32: key (16 << 3 | 5) = 133 as a two-byte varint.
    put_varint(out, (16 << 3) | u64::from(FIXED32));
    out.extend_from_slice(&s.otlp_flags().to_le_bytes());
}

/// One span already written as a `ScopeSpans.spans` field (key, length, `Span` message):
/// what the native module keeps between a span's end and its export, so that the span's
/// allocations are freed on the thread that made them and one buffer crosses to the
/// exporting thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedSpan(Vec<u8>);

impl EncodedSpan {
    /// Encodes `s`.
    pub fn of(s: &Span) -> EncodedSpan {
        let len = span_len(s);
        let mut out = Vec::with_capacity(ld_len(len));
        put_span(&mut out, s, len);
        EncodedSpan(out)
    }
}

/// Writes an `ExportTraceServiceRequest` with one `ResourceSpans` (the already encoded
/// `resource` message), one `ScopeSpans` (the already encoded `scope` message) and `spans`.
pub fn export_request(resource: &[u8], scope: &[u8], schema_url: &str, spans: &[Span]) -> Vec<u8> {
    // Each span's length once: it is needed for the enclosing lengths and its own header.
    let lens: Vec<usize> = spans.iter().map(span_len).collect();
    let spans_len: usize = lens.iter().map(|n| ld_len(*n)).sum();
    let mut out = envelope(resource, scope, schema_url, spans_len);
    for (s, len) in spans.iter().zip(lens) {
        put_span(&mut out, s, len);
    }
    close(&mut out, schema_url);
    out
}

/// [`export_request`] for spans already encoded.
pub fn export_request_encoded(
    resource: &[u8],
    scope: &[u8],
    schema_url: &str,
    spans: &[EncodedSpan],
) -> Vec<u8> {
    let spans_len: usize = spans.iter().map(|s| s.0.len()).sum();
    let mut out = envelope(resource, scope, schema_url, spans_len);
    for s in spans {
        out.extend_from_slice(&s.0);
    }
    close(&mut out, schema_url);
    out
}

/// The request's bytes up to its first span, sized for `spans_len` bytes of span fields.
fn envelope(resource: &[u8], scope: &[u8], schema_url: &str, spans_len: usize) -> Vec<u8> {
    let scope_spans_len = ld_len(scope.len()) + spans_len + str_len(schema_url);
    let resource_spans_len = ld_len(resource.len()) + ld_len(scope_spans_len) + str_len(schema_url);
    let mut out = Vec::with_capacity(ld_len(resource_spans_len));
    put_ld_header(&mut out, 1, resource_spans_len);
    put_ld(&mut out, 1, resource);
    put_ld_header(&mut out, 2, scope_spans_len);
    put_ld(&mut out, 1, scope);
    out
}

/// After the last span: `ScopeSpans.schema_url` closes the scope spans, then
/// `ResourceSpans.schema_url`.
fn close(out: &mut Vec<u8>, schema_url: &str) {
    put_str(out, 3, schema_url);
    put_str(out, 3, schema_url);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for (v, n) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            assert_eq!(varint_len(v), n, "{v}");
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), n, "{v}");
        }
    }
}
