//! Minimal JSON writing into a byte buffer for the Zipkin encoder: the hot path of the shim
//! (every span of every batch), so values are written straight from the OTLP structs without
//! building intermediate maps or strings.
use std::io::Write;

use opentelemetry_proto::tonic::common::v1::any_value::Value;

use crate::exporter::attrs::value_to_string;

/// A JSON string literal with escaping (serde_json's escaper, which cannot fail on a Vec).
pub fn string(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `"key":` (keys are compile-time ASCII names without characters to escape).
pub fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

/// An unsigned integer.
pub fn uint(out: &mut Vec<u8>, v: u64) {
    let _ = write!(out, "{v}");
}

/// Bytes as a quoted lower-case hex string.
pub fn hex_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 0x0f) as usize]);
    }
    out.push(b'"');
}

/// An attribute value as a JSON string (Zipkin tags are strings): scalars as their text,
/// arrays and maps as JSON, bytes as base64 (the OTel rules for non-OTLP exporters).
pub fn value_as_string(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::StringValue(s) => string(out, s),
        Value::BoolValue(b) => out.extend_from_slice(if *b { b"\"true\"" } else { b"\"false\"" }),
        Value::IntValue(i) => {
            let _ = write!(out, "\"{i}\"");
        }
        other => string(out, &value_to_string(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_quotes() {
        let mut out = Vec::new();
        string(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\n\u0001é""#);
        let mut out = Vec::new();
        value_as_string(&mut out, &Value::IntValue(-3));
        value_as_string(&mut out, &Value::DoubleValue(0.5));
        hex_string(&mut out, &[0xab, 1]);
        assert_eq!(String::from_utf8(out).unwrap(), r#""-3""0.5""ab01""#);
    }
}
