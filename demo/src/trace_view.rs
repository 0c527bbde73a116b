//! A neutral view of exported spans, read from the shim's `file` exporter (OTLP JSON, one span
//! per line) or from OTLP protobuf, and rendered as trace trees with timings, status and the
//! parent links between the proxy's span and the services' spans.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::Value;

/// One span, reduced to what the trees and the checks need.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanView {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// `service.name` of the span's resource.
    pub service: String,
    /// Span name.
    pub name: String,
    /// `SERVER`, `CLIENT`, `INTERNAL`, `PRODUCER`, `CONSUMER` or `UNSPECIFIED`.
    pub kind: String,
    /// Start, in nanoseconds since the epoch.
    pub start_ns: u64,
    /// End, in nanoseconds since the epoch.
    pub end_ns: u64,
    /// `UNSET`, `OK` or `ERROR`.
    pub status: String,
    /// Status description (empty when none).
    pub status_message: String,
    /// Attributes as text (arrays and maps as JSON).
    pub attributes: BTreeMap<String, String>,
}

impl SpanView {
    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e6
    }

    /// An attribute as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

fn kind_name(kind: i64) -> &'static str {
    match kind {
        1 => "INTERNAL",
        2 => "SERVER",
        3 => "CLIENT",
        4 => "PRODUCER",
        5 => "CONSUMER",
        _ => "UNSPECIFIED",
    }
}

fn status_name(code: i64) -> &'static str {
    match code {
        1 => "OK",
        2 => "ERROR",
        _ => "UNSET",
    }
}

/// Reads a field under its OTLP JSON name (lowerCamelCase) or its proto name (snake_case).
fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

fn as_u64(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn as_i64(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// Text of an OTLP JSON `AnyValue`.
fn any_value_text(v: &Value) -> String {
    if let Some(s) = field(v, "stringValue", "string_value").and_then(Value::as_str) {
        return s.to_owned();
    }
    if let Some(b) = field(v, "boolValue", "bool_value").and_then(Value::as_bool) {
        return b.to_string();
    }
    if let Some(i) = field(v, "intValue", "int_value") {
        return as_i64(Some(i)).to_string();
    }
    if let Some(d) = field(v, "doubleValue", "double_value").and_then(Value::as_f64) {
        return d.to_string();
    }
    v.to_string()
}

fn attributes(list: Option<&Value>) -> BTreeMap<String, String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            let key = kv.get("key")?.as_str()?.to_owned();
            let value = kv.get("value").map(any_value_text).unwrap_or_default();
            Some((key, value))
        })
        .collect()
}

/// One span in OTLP JSON (ids as hex, enums as integers). `service` is used when the line does
/// not name its resource's `service.name` itself.
pub fn span_from_otlp_json(span: &Value, service: &str) -> Option<SpanView> {
    let text = |camel, snake| {
        field(span, camel, snake)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let trace_id = text("traceId", "trace_id");
    let span_id = text("spanId", "span_id");
    if trace_id.len() != 32 || span_id.len() != 16 {
        return None;
    }
    let status = field(span, "status", "status");
    Some(SpanView {
        trace_id,
        span_id,
        parent_span_id: text("parentSpanId", "parent_span_id"),
        service: service.to_owned(),
        name: span
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        kind: kind_name(as_i64(span.get("kind"))).to_owned(),
        start_ns: as_u64(field(span, "startTimeUnixNano", "start_time_unix_nano")),
        end_ns: as_u64(field(span, "endTimeUnixNano", "end_time_unix_nano")),
        status: status_name(as_i64(status.and_then(|s| s.get("code")))).to_owned(),
        status_message: status
            .and_then(|s| s.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        attributes: attributes(span.get("attributes")),
    })
}

/// Every span in one JSON document: either a whole OTLP `ExportTraceServiceRequest`/`TracesData`
/// (`resourceSpans`), or a single span object, optionally with its resource beside it
/// (`{"resource": {...}, "span": {...}}`) or a `service.name`/`serviceName` field.
pub fn spans_from_json(doc: &Value) -> Vec<SpanView> {
    let mut out = Vec::new();
    if let Some(resource_spans) =
        field(doc, "resourceSpans", "resource_spans").and_then(Value::as_array)
    {
        for rs in resource_spans {
            let service = resource_service(rs.get("resource"));
            for ss in field(rs, "scopeSpans", "scope_spans")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for span in ss
                    .get("spans")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.extend(span_from_otlp_json(span, &service));
                }
            }
        }
        return out;
    }
    let (span, service) = match doc.get("span") {
        Some(span) => (span, resource_service(doc.get("resource"))),
        None => (doc, String::new()),
    };
    let service = if service.is_empty() {
        ["service.name", "serviceName", "service_name", "service"]
            .iter()
            .find_map(|k| doc.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(|| resource_service(span.get("resource")))
    } else {
        service
    };
    out.extend(span_from_otlp_json(span, &service));
    out
}

fn resource_service(resource: Option<&Value>) -> String {
    resource
        .map(|r| attributes(r.get("attributes")))
        .and_then(|a| a.get("service.name").cloned())
        .unwrap_or_default()
}

/// Every span of an OTLP protobuf request (what an OTLP/HTTP receiver gets).
pub fn spans_from_proto(
    request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> Vec<SpanView> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .map(|kv| text(&kv.value))
            .unwrap_or_default();
        for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            let status = span.status.clone().unwrap_or_default();
            out.push(SpanView {
                trace_id: crate::trace_context::hex(&span.trace_id),
                span_id: crate::trace_context::hex(&span.span_id),
                parent_span_id: crate::trace_context::hex(&span.parent_span_id),
                service: service.clone(),
                name: span.name.clone(),
                kind: kind_name(i64::from(span.kind)).to_owned(),
                start_ns: span.start_time_unix_nano,
                end_ns: span.end_time_unix_nano,
                status: status_name(i64::from(status.code)).to_owned(),
                status_message: status.message,
                attributes: span
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), text(&kv.value)))
                    .collect(),
            });
        }
    }
    out
}

/// Every span in a JSON-lines text; lines that are not JSON are skipped.
pub fn spans_from_json_lines(text: &str) -> Vec<SpanView> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .flat_map(|doc| spans_from_json(&doc))
        .collect()
}

/// Groups spans by trace id (deduplicating repeated span ids).
pub fn by_trace(spans: &[SpanView]) -> BTreeMap<String, Vec<SpanView>> {
    let mut traces: BTreeMap<String, Vec<SpanView>> = BTreeMap::new();
    for span in spans {
        let trace = traces.entry(span.trace_id.clone()).or_default();
        if !trace.iter().any(|s| s.span_id == span.span_id) {
            trace.push(span.clone());
        }
    }
    traces
}

/// Renders one trace as a tree: children under their parent in start order, each line with
/// service, kind, name, offset from the trace start, duration, status, and how it links to its
/// parent (the proxy span, a span in the same service, or a remote caller not in the trace).
pub fn render_tree(spans: &[SpanView]) -> String {
    let ids: HashMap<&str, &SpanView> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut children: HashMap<&str, Vec<&SpanView>> = HashMap::new();
    let mut roots = Vec::new();
    for s in spans {
        if ids.contains_key(s.parent_span_id.as_str()) && s.parent_span_id != s.span_id {
            children
                .entry(s.parent_span_id.as_str())
                .or_default()
                .push(s);
        } else {
            roots.push(s);
        }
    }
    let by_start = |a: &&SpanView, b: &&SpanView| a.start_ns.cmp(&b.start_ns);
    roots.sort_by(by_start);
    children.values_mut().for_each(|c| c.sort_by(by_start));
    let t0 = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);

    // First pass: one row per span in tree order (bounded, in case of a cycle in bad data).
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut stack: Vec<(&SpanView, String, bool)> = roots
        .iter()
        .rev()
        .enumerate()
        .map(|(i, s)| (*s, String::new(), i == 0))
        .collect();
    while let Some((span, prefix, last)) = stack.pop() {
        if rows.len() >= 1000 {
            rows.push([
                "...".into(),
                String::new(),
                String::new(),
                "(more spans)".into(),
            ]);
            break;
        }
        let branch = if last { "└─ " } else { "├─ " };
        let link = match (
            span.parent_span_id.as_str(),
            ids.get(span.parent_span_id.as_str()),
        ) {
            ("", _) => "root".to_owned(),
            (p, Some(parent)) if parent.service != span.service => {
                format!("child of {} span {}", parent.service, short(p))
            }
            (p, Some(_)) => format!("child of {}", short(p)),
            (p, None) => format!("parent {} is the remote caller", short(p)),
        };
        let mut detail = Vec::new();
        if let Some(v) = span.attr("http.response.status_code") {
            detail.push(format!("http {v}"));
        }
        if let Some(v) = span.attr("rpc.response.status_code") {
            detail.push(format!("grpc {v}"));
        }
        if span.attr(crate::otlp::RECORD_ONLY_ATTRIBUTE) == Some("true") {
            detail.push("record-only, kept by a tail policy".to_owned());
        }
        let mut status = span.status.clone();
        if !span.status_message.is_empty() {
            status.push_str(&format!(" \"{}\"", span.status_message));
        }
        if !detail.is_empty() {
            status.push_str(&format!("  [{}]", detail.join(", ")));
        }
        rows.push([
            format!("{prefix}{branch}{} {}", span.service, span.kind),
            span.name.clone(),
            format!(
                "+{:>7.2} ms {:>8.2} ms",
                span.start_ns.saturating_sub(t0) as f64 / 1e6,
                span.duration_ms()
            ),
            format!("{status}  span {} ({link})", short(&span.span_id)),
        ]);
        let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
        if let Some(kids) = children.get(span.span_id.as_str()) {
            for (i, kid) in kids.iter().enumerate().rev() {
                stack.push((kid, child_prefix.clone(), i == kids.len() - 1));
            }
        }
    }
    // Second pass: align the columns (widths in characters: the tree glyphs are one each).
    let width = |col: usize| {
        rows.iter()
            .map(|r| r[col].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0), width(1));
    let mut out = String::new();
    for [tree, name, timing, rest] in &rows {
        let pad0 = w0 - tree.chars().count();
        let pad1 = w1 - name.chars().count();
        let _ = writeln!(
            out,
            "  {tree}{:pad0$}  {name}{:pad1$}  {timing}  {rest}",
            "", ""
        );
    }
    out
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        trace: &str,
        span: &str,
        parent: &str,
        service: &str,
        name: &str,
        start: u64,
    ) -> String {
        serde_json::json!({
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "span": {
                "traceId": trace, "spanId": span, "parentSpanId": parent, "name": name, "kind": 2,
                "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + 2_000_000).to_string(),
                "status": {"code": 2, "message": "boom"},
                "attributes": [{"key": "http.response.status_code", "value": {"intValue": "500"}}]
            }
        })
        .to_string()
    }

    #[test]
    fn renders_parent_links_across_services() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        let text = [
            line(
                t,
                "1111111111111111",
                "00f067aa0ba902b7",
                "envoy-ingress",
                "GET /api/fail",
                1_000_000_000,
            ),
            line(
                t,
                "2222222222222222",
                "1111111111111111",
                "demo-http",
                "GET /api/fail",
                1_001_000_000,
            ),
            "not json".to_owned(),
        ]
        .join("\n");
        let spans = spans_from_json_lines(&text);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].attr("http.response.status_code"), Some("500"));
        let tree = render_tree(&spans);
        let lines: Vec<&str> = tree.lines().collect();
        assert_eq!(lines.len(), 2, "{tree}");
        assert!(
            lines[0].contains("envoy-ingress") && lines[0].contains("remote caller"),
            "{tree}"
        );
        assert!(
            lines[1].contains("   └─ demo-http")
                && lines[1].contains("child of envoy-ingress span 11111111"),
            "{tree}"
        );
        assert!(
            lines[1].contains("ERROR \"boom\"  [http 500]") && lines[1].contains("+   1.00 ms"),
            "{tree}"
        );
    }

    #[test]
    fn shim_file_exporter_lines_with_inlined_resource() {
        // The shim's `file` exporter: one OTLP/JSON span per line, `resource` and `scope` inlined.
        let line = serde_json::json!({
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "1111111111111111", "parentSpanId": "",
            "name": "GET", "kind": 2, "startTimeUnixNano": "1000", "endTimeUnixNano": "3000",
            "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}}],
            "status": {},
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "envoy-ingress"}}]},
            "scope": {"name": "aetherflow.trace_filter", "version": "0.1.0"}
        });
        let spans = spans_from_json_lines(&line.to_string());
        assert_eq!(spans.len(), 1);
        assert_eq!(
            (spans[0].service.as_str(), spans[0].status.as_str()),
            ("envoy-ingress", "UNSET")
        );
        assert_eq!(spans[0].end_ns - spans[0].start_ns, 2000);
        assert_eq!(spans[0].attr("http.response.status_code"), Some("200"));
    }

    #[test]
    fn whole_requests_are_read_too() {
        let doc = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeSpans": [{"spans": [{"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "1111111111111111", "kind": 1}]}]}]});
        let spans = spans_from_json(&doc);
        assert_eq!(spans[0].service, "svc");
        assert_eq!(spans[0].kind, "INTERNAL");
    }
}
