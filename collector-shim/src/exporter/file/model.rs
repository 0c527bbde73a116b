//! One span -> one JSON line: the span in OTLP/JSON form (hex ids, lowerCamelCase, 64-bit
//! integers as strings, enums as integers) with its `resource` and `scope` inlined, so each
//! line stands alone for `jq`, `grep` or a log shipper.
use serde_json::{Map, Value};

use crate::model::SpanRecord;

/// The JSON object for one span (without the trailing newline).
pub fn line(rec: &SpanRecord) -> Vec<u8> {
    // The opentelemetry-proto serde impls follow the OTLP/JSON rules; they cannot fail on
    // in-memory prost structs, but a failure must not take the exporter down: emit what we can.
    let mut obj = match serde_json::to_value(&rec.span) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Ok(resource) = serde_json::to_value(&*rec.resource) {
        obj.insert("resource".into(), resource);
    }
    if let Ok(scope) = serde_json::to_value(&*rec.scope) {
        obj.insert("scope".into(), scope);
    }
    serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
}
