//! Small helpers over OTLP attributes and ids shared by the model mappings.
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

/// Attribute the filter sets on spans it recorded without sampling them (the contract, in core).
pub use aetherflow_core::contract::RECORD_ONLY_ATTRIBUTE as RECORD_ONLY_ATTR;
/// `service.name` when the resource has none (the OTel SDK default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The value of the first attribute named `key`.
pub fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// A string attribute (non-strings are stringified).
pub fn find_string(attrs: &[KeyValue], key: &str) -> Option<String> {
    find(attrs, key).map(value_to_string)
}

/// An integer attribute, also accepting a decimal string (some SDKs send ports as strings).
pub fn find_int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match find(attrs, key)? {
        Value::IntValue(i) => Some(*i),
        Value::StringValue(s) => s.parse().ok(),
        _ => None,
    }
}

/// `service.name` of a resource, or `unknown_service`.
pub fn service_name(resource: &Resource) -> String {
    match find(&resource.attributes, "service.name") {
        Some(Value::StringValue(s)) if !s.is_empty() => s.clone(),
        _ => UNKNOWN_SERVICE.to_string(),
    }
}

/// Whether the filter recorded the span without sampling it.
pub fn is_record_only(span: &Span) -> bool {
    matches!(
        find(&span.attributes, RECORD_ONLY_ATTR),
        Some(Value::BoolValue(true))
    )
}

/// Stringifies an attribute value the way the OTel spec asks for non-OTLP exporters:
/// scalars as text, arrays and maps as JSON, bytes as base64.
pub fn value_to_string(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => format_double(*d),
        Value::BytesValue(b) => base64(b),
        Value::ArrayValue(_) | Value::KvlistValue(_) => value_to_json(v).to_string(),
        // A string-table index only meaningful inside OTLP profiles; never sent on spans.
        Value::StringValueStrindex(i) => format!("strindex:{i}"),
    }
}

fn format_double(d: f64) -> String {
    if d.is_finite() {
        d.to_string()
    } else if d.is_nan() {
        "NaN".into()
    } else if d > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

/// A JSON rendering of a value (arrays as lists, maps as objects).
pub fn value_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or_else(|| J::String(format_double(*d))),
        Value::BytesValue(b) => J::String(base64(b)),
        Value::StringValueStrindex(i) => J::String(format!("strindex:{i}")),
        Value::ArrayValue(a) => J::Array(a.values.iter().map(any_to_json).collect()),
        Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().map(any_to_json).unwrap_or(J::Null);
                    (kv.key.clone(), v)
                })
                .collect(),
        ),
    }
}

fn any_to_json(v: &AnyValue) -> serde_json::Value {
    v.value
        .as_ref()
        .map(value_to_json)
        .unwrap_or(serde_json::Value::Null)
}

/// Lower-case hex of bytes (trace and span ids).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    s
}

/// Whether an id is present: the right length and not all zero (OTLP's "invalid id").
pub fn valid_id(bytes: &[u8], len: usize) -> bool {
    bytes.len() == len && bytes.iter().any(|b| *b != 0)
}

/// Standard base64 with padding (RFC 4648), for bytes attributes.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "input {input:?}");
        }
    }

    #[test]
    fn arrays_become_json_lists() {
        use opentelemetry_proto::tonic::common::v1::ArrayValue;
        let v = Value::ArrayValue(ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(Value::StringValue("a".into())),
                },
                AnyValue {
                    value: Some(Value::IntValue(2)),
                },
            ],
        });
        assert_eq!(value_to_string(&v), r#"["a",2]"#);
        assert_eq!(value_to_string(&Value::DoubleValue(1.5)), "1.5");
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
