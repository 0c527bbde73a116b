//! OTLP spans -> Jaeger Thrift `Batch` (`jaeger.thrift` from jaeger-idl, with the OpenTelemetry
//! "Jaeger" translation rules). Pure: builds the structs; `thrift` does the bytes.
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use super::thrift::{TType, ThriftStruct, Writer};
use crate::exporter::attrs::{is_record_only, service_name, valid_id, value_to_string};
use crate::model::SpanRecord;

/// `jaeger.thrift` Batch: the spans of one process.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Field 1.
    pub process: Process,
    /// Field 2.
    pub spans: Vec<Span>,
}

/// `jaeger.thrift` Process: service name and resource attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    /// Field 1: `service.name`.
    pub service_name: String,
    /// Field 2: the other resource attributes.
    pub tags: Vec<Tag>,
}

/// `jaeger.thrift` Span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Field 1: low 64 bits of the trace id.
    pub trace_id_low: i64,
    /// Field 2: high 64 bits of the trace id.
    pub trace_id_high: i64,
    /// Field 3.
    pub span_id: i64,
    /// Field 4: 0 for a root span.
    pub parent_span_id: i64,
    /// Field 5: the span name.
    pub operation_name: String,
    /// Field 6: CHILD_OF the parent, FOLLOWS_FROM each link.
    pub references: Vec<SpanRef>,
    /// Field 7: 1 = sampled.
    pub flags: i32,
    /// Field 8: epoch microseconds.
    pub start_time: i64,
    /// Field 9: microseconds.
    pub duration: i64,
    /// Field 10.
    pub tags: Vec<Tag>,
    /// Field 11: span events.
    pub logs: Vec<Log>,
}

/// `jaeger.thrift` SpanRef.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRef {
    /// Field 1: CHILD_OF = 0, FOLLOWS_FROM = 1.
    pub ref_type: i32,
    /// Field 2.
    pub trace_id_low: i64,
    /// Field 3.
    pub trace_id_high: i64,
    /// Field 4.
    pub span_id: i64,
}

/// `SpanRefType.CHILD_OF`.
pub const CHILD_OF: i32 = 0;
/// `SpanRefType.FOLLOWS_FROM`.
pub const FOLLOWS_FROM: i32 = 1;

/// `jaeger.thrift` Log: an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// Field 1: epoch microseconds.
    pub timestamp: i64,
    /// Field 2: `event` = name, then the event's attributes.
    pub fields: Vec<Tag>,
}

/// `jaeger.thrift` Tag: a key and one typed value.
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    /// Field 1.
    pub key: String,
    /// Fields 2 (vType) and 3..7.
    pub value: TagValue,
}

/// The typed value of a tag (`TagType`: STRING 0, DOUBLE 1, BOOL 2, LONG 3, BINARY 4).
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    /// vStr.
    Str(String),
    /// vDouble.
    Double(f64),
    /// vBool.
    Bool(bool),
    /// vLong.
    Long(i64),
    /// vBinary.
    Binary(Vec<u8>),
}

impl Tag {
    fn new(key: &str, value: TagValue) -> Tag {
        Tag {
            key: key.to_string(),
            value,
        }
    }

    fn str(key: &str, v: impl Into<String>) -> Tag {
        Tag::new(key, TagValue::Str(v.into()))
    }
}

/// OTLP attribute -> tag: scalars keep their type, arrays and maps become JSON strings.
pub fn tag_from(kv: &KeyValue) -> Option<Tag> {
    let v = kv.value.as_ref()?.value.as_ref()?;
    let value = match v {
        Value::StringValue(s) => TagValue::Str(s.clone()),
        Value::BoolValue(b) => TagValue::Bool(*b),
        Value::IntValue(i) => TagValue::Long(*i),
        Value::DoubleValue(d) => TagValue::Double(*d),
        Value::BytesValue(b) => TagValue::Binary(b.clone()),
        other => TagValue::Str(value_to_string(other)),
    };
    Some(Tag {
        key: kv.key.clone(),
        value,
    })
}

/// The process of a resource.
pub fn process(resource: &Resource) -> Process {
    Process {
        service_name: service_name(resource),
        tags: resource
            .attributes
            .iter()
            .filter(|kv| kv.key != "service.name")
            .filter_map(tag_from)
            .collect(),
    }
}

fn id64(bytes: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    if bytes.len() == 8 {
        b.copy_from_slice(bytes);
    }
    i64::from_be_bytes(b)
}

fn trace_halves(bytes: &[u8]) -> (i64, i64) {
    if bytes.len() == 16 {
        (id64(&bytes[8..]), id64(&bytes[..8]))
    } else {
        (0, 0)
    }
}

/// Maps one span; `None` when its ids are invalid (Jaeger would store an unusable span).
pub fn span(rec: &SpanRecord) -> Option<Span> {
    let s = &rec.span;
    if !valid_id(&s.trace_id, 16) || !valid_id(&s.span_id, 8) {
        return None;
    }
    let (low, high) = trace_halves(&s.trace_id);
    let has_parent = valid_id(&s.parent_span_id, 8);
    let mut references = Vec::new();
    if has_parent {
        references.push(SpanRef {
            ref_type: CHILD_OF,
            trace_id_low: low,
            trace_id_high: high,
            span_id: id64(&s.parent_span_id),
        });
    }
    for link in &s.links {
        if valid_id(&link.trace_id, 16) && valid_id(&link.span_id, 8) {
            let (l, h) = trace_halves(&link.trace_id);
            references.push(SpanRef {
                ref_type: FOLLOWS_FROM,
                trace_id_low: l,
                trace_id_high: h,
                span_id: id64(&link.span_id),
            });
        }
    }

    let mut tags: Vec<Tag> = s.attributes.iter().filter_map(tag_from).collect();
    let kind = match SpanKind::try_from(s.kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Server => Some("server"),
        SpanKind::Client => Some("client"),
        SpanKind::Producer => Some("producer"),
        SpanKind::Consumer => Some("consumer"),
        SpanKind::Internal | SpanKind::Unspecified => None,
    };
    if let Some(k) = kind {
        tags.push(Tag::str("span.kind", k));
    }
    if let Some(status) = &s.status {
        match StatusCode::try_from(status.code).unwrap_or(StatusCode::Unset) {
            StatusCode::Ok => tags.push(Tag::str("otel.status_code", "OK")),
            StatusCode::Error => {
                tags.push(Tag::str("otel.status_code", "ERROR"));
                tags.push(Tag::new("error", TagValue::Bool(true)));
                if !status.message.is_empty() {
                    tags.push(Tag::str("otel.status_description", status.message.clone()));
                }
            }
            StatusCode::Unset => {}
        }
    }
    if !rec.scope.name.is_empty() {
        tags.push(Tag::str("otel.scope.name", rec.scope.name.clone()));
    }
    if !rec.scope.version.is_empty() {
        tags.push(Tag::str("otel.scope.version", rec.scope.version.clone()));
    }
    if !s.trace_state.is_empty() {
        tags.push(Tag::str("w3c.tracestate", s.trace_state.clone()));
    }
    for (key, n) in [
        ("otel.dropped_attributes_count", s.dropped_attributes_count),
        ("otel.dropped_events_count", s.dropped_events_count),
        ("otel.dropped_links_count", s.dropped_links_count),
    ] {
        if n > 0 {
            tags.push(Tag::new(key, TagValue::Long(i64::from(n))));
        }
    }

    let logs = s
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![Tag::str("event", e.name.clone())];
            fields.extend(e.attributes.iter().filter_map(tag_from));
            Log {
                timestamp: micros(e.time_unix_nano),
                fields,
            }
        })
        .collect();

    let start = micros(s.start_time_unix_nano);
    Some(Span {
        trace_id_low: low,
        trace_id_high: high,
        span_id: id64(&s.span_id),
        parent_span_id: if has_parent {
            id64(&s.parent_span_id)
        } else {
            0
        },
        operation_name: s.name.clone(),
        references,
        // Record-only spans are the only unsampled ones (see DESIGN.md): SDKs leave flags unset.
        flags: if is_record_only(s) { 0 } else { 1 },
        start_time: start,
        duration: micros(s.end_time_unix_nano).saturating_sub(start).max(0),
        tags,
        logs,
    })
}

fn micros(nanos: u64) -> i64 {
    i64::try_from(nanos / 1000).unwrap_or(i64::MAX)
}

impl ThriftStruct for Tag {
    fn write(&self, w: &mut Writer) {
        w.field(TType::String, 1).bytes(self.key.as_bytes());
        let ty = match &self.value {
            TagValue::Str(_) => 0,
            TagValue::Double(_) => 1,
            TagValue::Bool(_) => 2,
            TagValue::Long(_) => 3,
            TagValue::Binary(_) => 4,
        };
        w.field(TType::I32, 2).i32(ty);
        match &self.value {
            TagValue::Str(s) => w.field(TType::String, 3).bytes(s.as_bytes()),
            TagValue::Double(d) => w.field(TType::Double, 4).double(*d),
            TagValue::Bool(b) => w.field(TType::Bool, 5).bool(*b),
            TagValue::Long(l) => w.field(TType::I64, 6).i64(*l),
            TagValue::Binary(b) => w.field(TType::String, 7).bytes(b),
        }
        w.stop();
    }
}

impl ThriftStruct for Log {
    fn write(&self, w: &mut Writer) {
        w.field(TType::I64, 1).i64(self.timestamp);
        w.struct_list(2, &self.fields);
        w.stop();
    }
}

impl ThriftStruct for SpanRef {
    fn write(&self, w: &mut Writer) {
        w.field(TType::I32, 1).i32(self.ref_type);
        w.field(TType::I64, 2).i64(self.trace_id_low);
        w.field(TType::I64, 3).i64(self.trace_id_high);
        w.field(TType::I64, 4).i64(self.span_id);
        w.stop();
    }
}

impl ThriftStruct for Span {
    fn write(&self, w: &mut Writer) {
        w.field(TType::I64, 1).i64(self.trace_id_low);
        w.field(TType::I64, 2).i64(self.trace_id_high);
        w.field(TType::I64, 3).i64(self.span_id);
        w.field(TType::I64, 4).i64(self.parent_span_id);
        w.field(TType::String, 5)
            .bytes(self.operation_name.as_bytes());
        if !self.references.is_empty() {
            w.struct_list(6, &self.references);
        }
        w.field(TType::I32, 7).i32(self.flags);
        w.field(TType::I64, 8).i64(self.start_time);
        w.field(TType::I64, 9).i64(self.duration);
        if !self.tags.is_empty() {
            w.struct_list(10, &self.tags);
        }
        if !self.logs.is_empty() {
            w.struct_list(11, &self.logs);
        }
        w.stop();
    }
}

impl ThriftStruct for Process {
    fn write(&self, w: &mut Writer) {
        w.field(TType::String, 1)
            .bytes(self.service_name.as_bytes());
        if !self.tags.is_empty() {
            w.struct_list(2, &self.tags);
        }
        w.stop();
    }
}

impl ThriftStruct for Batch {
    fn write(&self, w: &mut Writer) {
        w.struct_field(1, &self.process);
        w.struct_list(2, &self.spans);
        w.stop();
    }
}
