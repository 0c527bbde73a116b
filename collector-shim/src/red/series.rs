//! Which series a span counts in: its dimensions, read from the span and its resource.
//!
//! The dimensions are `service.name`, the operation (`rpc.service`/`rpc.method`, else
//! `http.request.method` + `http.route`, else the span name: a route, never a raw path, when the
//! span has one), the span kind, the status code (the gRPC code name, else the HTTP status class)
//! and the configured extra attributes. They are written into one key string so a lookup costs
//! no allocation: each field is followed by `\0<its byte length>;`, which keeps the key
//! unambiguous whatever bytes the values hold (read from the right, every field's extent is known).
use std::fmt::Write;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;

use crate::model::SpanRecord;

/// Longest label value kept, in bytes (longer ones are cut at a character boundary): a span
/// name is client-supplied, and the series table must stay bounded in bytes too.
pub const MAX_VALUE_BYTES: usize = 256;

/// The attributes the fixed dimensions read, found in one pass over the span's attributes.
#[derive(Default)]
struct Found<'a> {
    route: Option<&'a str>,
    method: Option<&'a str>,
    rpc_service: Option<&'a str>,
    rpc_method: Option<&'a str>,
    rpc_status: Option<&'a Value>,
    grpc_status: Option<&'a Value>,
    http_status: Option<&'a Value>,
}

fn value(kv: &KeyValue) -> Option<&Value> {
    kv.value.as_ref()?.value.as_ref()
}

fn text(kv: &KeyValue) -> Option<&str> {
    match value(kv)? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs.iter().find(|kv| kv.key == key).and_then(value)
}

/// The OTLP name of a span kind (as the OpenTelemetry span metrics label it).
pub fn kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::IntValue(i) => Some(*i),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Appends `s` cut to `MAX_VALUE_BYTES` at a character boundary.
fn push_bounded(out: &mut String, s: &str) {
    if s.len() <= MAX_VALUE_BYTES {
        out.push_str(s);
    } else {
        let mut end = MAX_VALUE_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&s[..end]);
    }
}

/// Ends the field that started at byte `start` of `out`. (Digits by hand: this runs for every
/// field of every span, and `write!` costs several times more.)
fn end_field(out: &mut String, start: usize) {
    let mut len = out.len() - start;
    out.push('\0');
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (len % 10) as u8;
        len /= 10;
        if len == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        out.push(char::from(*d));
    }
    out.push(';');
}

/// An attribute value as label text.
fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::StringValue(s) => push_bounded(out, s),
        Value::IntValue(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::DoubleValue(d) => {
            let _ = write!(out, "{d}");
        }
        // Arrays, maps and bytes make poor labels: the dimension is left empty.
        _ => {}
    }
}

/// Writes the series key of `rec` into `out` (cleared first): the fixed dimensions, then one
/// field per entry of `dimensions` (the span's attribute, else the resource's, else empty).
pub fn write_key(out: &mut String, rec: &SpanRecord, dimensions: &[String]) {
    out.clear();
    let span = &rec.span;
    let mut f = Found::default();
    for kv in &span.attributes {
        match kv.key.as_str() {
            "http.route" => f.route = text(kv),
            "http.request.method" => f.method = text(kv),
            "rpc.service" => f.rpc_service = text(kv),
            "rpc.method" => f.rpc_method = text(kv),
            "rpc.response.status_code" => f.rpc_status = value(kv),
            "rpc.grpc.status_code" => f.grpc_status = value(kv),
            "http.response.status_code" => f.http_status = value(kv),
            _ => {}
        }
    }

    // service.name
    let start = out.len();
    if let Some(Value::StringValue(s)) = find(&rec.resource.attributes, "service.name") {
        push_bounded(out, s);
    }
    end_field(out, start);

    // The operation.
    let start = out.len();
    match (f.rpc_method, f.route) {
        (Some(m), _) => {
            if let Some(s) = f.rpc_service {
                push_bounded(out, s);
                out.push('/');
            }
            push_bounded(out, m);
        }
        (None, Some(r)) => {
            if let Some(m) = f.method {
                push_bounded(out, m);
                out.push(' ');
            }
            push_bounded(out, r);
        }
        (None, None) => push_bounded(out, &span.name),
    }
    end_field(out, start);

    let start = out.len();
    out.push_str(kind_name(span.kind));
    end_field(out, start);

    // The status code: the gRPC code's name when the span has one, else the HTTP class.
    let start = out.len();
    if let Some(v) = f.rpc_status {
        match v {
            Value::StringValue(s) => push_bounded(out, s),
            other => {
                if let Some(code) = as_int(other).and_then(|c| u32::try_from(c).ok()) {
                    out.push_str(aetherflow_core::grpc::status_name(code));
                }
            }
        }
    } else if let Some(code) = f.grpc_status.and_then(as_int) {
        if let Ok(code) = u32::try_from(code) {
            out.push_str(aetherflow_core::grpc::status_name(code));
        }
    } else if let Some(code) = f.http_status.and_then(as_int) {
        match code {
            100..=599 => {
                out.push(char::from(b'0' + (code / 100) as u8));
                out.push_str("xx");
            }
            _ => out.push_str("other"),
        }
    }
    end_field(out, start);

    for key in dimensions {
        let start = out.len();
        if let Some(v) = find(&span.attributes, key).or_else(|| find(&rec.resource.attributes, key))
        {
            write_value(out, v);
        }
        end_field(out, start);
    }
}

/// The field values of a key written by [`write_key`], in order; `None` for a malformed key.
pub fn parse_key(key: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut rest = key;
    while !rest.is_empty() {
        let body = rest.strip_suffix(';')?;
        let nul = body.rfind('\0')?;
        let len: usize = body[nul + 1..].parse().ok()?;
        let start = nul.checked_sub(len)?;
        fields.push(body.get(start..nul)?.to_string());
        rest = &body[..start];
    }
    fields.reverse();
    Some(fields)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::Span;

    use super::*;

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn rec(name: &str, kind: i32, attrs: Vec<KeyValue>) -> SpanRecord {
        SpanRecord {
            resource: Arc::new(Resource {
                attributes: vec![
                    kv("service.name", Value::StringValue("shop".into())),
                    kv("k8s.namespace.name", Value::StringValue("prod".into())),
                ],
                ..Default::default()
            }),
            scope: Arc::default(),
            span: Span {
                name: name.into(),
                kind,
                attributes: attrs,
                ..Default::default()
            },
        }
    }

    fn fields(r: &SpanRecord, dims: &[&str]) -> Vec<String> {
        let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        let mut k = String::new();
        write_key(&mut k, r, &dims);
        parse_key(&k).expect("a key parses back")
    }

    #[rustfmt::skip]
    #[test]
    fn dimensions_from_the_span_and_resource() {
        let s = |v: &str| Value::StringValue(v.into());
        let cases: Vec<(SpanRecord, [&str; 4])> = vec![
            // HTTP: the route, not the path, with the method; the status class.
            (rec("GET /items/42", 2, vec![kv("http.request.method", s("GET")), kv("http.route", s("/items/{id}")),
                kv("http.response.status_code", Value::IntValue(503))]),
             ["shop", "GET /items/{id}", "SPAN_KIND_SERVER", "5xx"]),
            // No route: the span name; a status code as a string still gives its class.
            (rec("GET", 3, vec![kv("http.response.status_code", s("404"))]),
             ["shop", "GET", "SPAN_KIND_CLIENT", "4xx"]),
            // gRPC as the filter writes it: rpc.method and the code's name.
            (rec("demo.v1.Greeter/Fail", 2, vec![kv("rpc.method", s("demo.v1.Greeter/Fail")),
                kv("rpc.response.status_code", s("UNAVAILABLE")), kv("http.response.status_code", Value::IntValue(200))]),
             ["shop", "demo.v1.Greeter/Fail", "SPAN_KIND_SERVER", "UNAVAILABLE"]),
            // Older conventions: rpc.service + rpc.method and an integer rpc.grpc.status_code.
            (rec("x", 3, vec![kv("rpc.service", s("Greeter")), kv("rpc.method", s("Hello")),
                kv("rpc.grpc.status_code", Value::IntValue(5))]),
             ["shop", "Greeter/Hello", "SPAN_KIND_CLIENT", "NOT_FOUND"]),
            // Nothing to read: empty status, unspecified kind.
            (rec("work", 0, vec![]), ["shop", "work", "SPAN_KIND_UNSPECIFIED", ""]),
        ];
        for (r, want) in cases {
            assert_eq!(fields(&r, &[]), want, "{:?}", r.span.name);
        }
    }

    #[test]
    fn extra_dimensions_read_span_then_resource() {
        let r = rec(
            "op",
            2,
            vec![kv("http.request.method", Value::StringValue("PUT".into()))],
        );
        let f = fields(&r, &["http.request.method", "k8s.namespace.name", "absent"]);
        assert_eq!(&f[4..], ["PUT", "prod", ""]);
    }

    #[test]
    fn keys_are_unambiguous_and_values_bounded() {
        // Separator-looking bytes inside values do not merge two series.
        let a = rec("a\0" /* name */, 2, vec![]);
        let b = rec("a", 2, vec![]);
        let (mut ka, mut kb) = (String::new(), String::new());
        write_key(&mut ka, &a, &[]);
        write_key(&mut kb, &b, &[]);
        assert_ne!(ka, kb);
        assert_eq!(parse_key(&ka).unwrap()[1], "a\0");
        let long = rec(&"é".repeat(400), 2, vec![]);
        assert!(fields(&long, &[])[1].len() <= MAX_VALUE_BYTES);
        assert_eq!(parse_key("garbage"), None);
    }
}
