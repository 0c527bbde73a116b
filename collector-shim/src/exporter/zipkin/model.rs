//! OTLP span -> Zipkin v2 JSON span (`zipkin2-api.yaml`, with the OpenTelemetry "Zipkin
//! exporter" mapping rules). Pure: no I/O. The JSON is written directly into the request
//! buffer (see `json.rs`): this runs for every exported span.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use super::json;
use crate::exporter::attrs::{find, find_int, valid_id, value_to_json, UNKNOWN_SERVICE};
use crate::model::SpanRecord;

/// A node of the service graph (`Endpoint` in the API).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint<'a> {
    /// Service name, absent if unknown.
    pub service_name: Option<&'a str>,
    /// IPv4 address (also for IPv4-mapped IPv6, as the API asks).
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// Port.
    pub port: Option<u16>,
}

impl Endpoint<'_> {
    fn is_empty(&self) -> bool {
        self.service_name.is_none()
            && self.ipv4.is_none()
            && self.ipv6.is_none()
            && self.port.is_none()
    }

    fn set_ip(&mut self, text: &str) -> bool {
        // Brackets appear around IPv6 literals in `host:port` forms.
        match text
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
        {
            Ok(IpAddr::V4(v4)) => self.ipv4 = Some(v4),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => self.ipv4 = Some(v4),
                None => self.ipv6 = Some(v6),
            },
            Err(_) => return false,
        }
        true
    }

    fn write(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        out.push(b'{');
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        if let Some(s) = self.service_name {
            sep(out);
            json::key(out, "serviceName");
            json::string(out, s);
        }
        if let Some(ip) = self.ipv4 {
            sep(out);
            let _ = write!(out, "\"ipv4\":\"{ip}\"");
        }
        if let Some(ip) = self.ipv6 {
            sep(out);
            let _ = write!(out, "\"ipv6\":\"{ip}\"");
        }
        if let Some(p) = self.port {
            sep(out);
            let _ = write!(out, "\"port\":{p}");
        }
        out.push(b'}');
    }
}

/// Why a span could not be mapped (Zipkin would refuse the whole request for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmappable {
    /// Trace id not 16 bytes or all zero.
    TraceId,
    /// Span id not 8 bytes or all zero.
    SpanId,
}

/// A tag value before writing: borrowed from the span where possible.
enum TagValue<'a> {
    /// An attribute value, stringified when written.
    Attr(&'a Value),
    /// Text.
    Text(&'a str),
    /// A count.
    Count(u32),
}

/// Maps one span and returns it as a JSON value (for inspection and tests; the exporter uses
/// [`write_span`]).
pub fn to_zipkin(rec: &SpanRecord) -> Result<serde_json::Value, Unmappable> {
    let mut out = Vec::new();
    write_span(rec, &mut out)?;
    // write_span produces valid JSON by construction.
    Ok(serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null))
}

/// Appends one span as a Zipkin v2 JSON object; nothing is written when it cannot be mapped.
///
/// `shared`: Zipkin's flag means "contributing to a span started by another tracer", i.e. a
/// server span that reuses its client's span id (B3 shared-span style). OpenTelemetry always
/// gives a server span its own id, so a server span continuing a remote parent is *not* shared;
/// the flag is set only in the one case it describes: a SERVER span whose id equals its parent id
/// (such a span then carries no parentId, since a span cannot be its own parent).
///
/// Tags: resource attributes other than `service.name`, then span attributes, then
/// `otel.scope.name`/`otel.scope.version`, `otel.status_code`, `error` (the status message; Zipkin
/// marks failed spans by this tag's presence) and dropped counts; on a key clash the later wins.
/// Tags are written sorted by key.
pub fn write_span(rec: &SpanRecord, out: &mut Vec<u8>) -> Result<(), Unmappable> {
    let s = &rec.span;
    if !valid_id(&s.trace_id, 16) {
        return Err(Unmappable::TraceId);
    }
    if !valid_id(&s.span_id, 8) {
        return Err(Unmappable::SpanId);
    }
    let kind = SpanKind::try_from(s.kind).unwrap_or(SpanKind::Unspecified);
    let has_parent = valid_id(&s.parent_span_id, 8);
    let shared = kind == SpanKind::Server && has_parent && s.parent_span_id == s.span_id;
    let start_us = s.start_time_unix_nano / 1000;
    let end_us = s.end_time_unix_nano / 1000;

    out.extend_from_slice(b"{\"traceId\":");
    json::hex_string(out, &s.trace_id);
    out.extend_from_slice(b",\"id\":");
    json::hex_string(out, &s.span_id);
    if has_parent && !shared {
        out.extend_from_slice(b",\"parentId\":");
        json::hex_string(out, &s.parent_span_id);
    }
    let kind_name: Option<&[u8]> = match kind {
        SpanKind::Server => Some(b"SERVER"),
        SpanKind::Client => Some(b"CLIENT"),
        SpanKind::Producer => Some(b"PRODUCER"),
        SpanKind::Consumer => Some(b"CONSUMER"),
        SpanKind::Internal | SpanKind::Unspecified => None,
    };
    if let Some(k) = kind_name {
        out.extend_from_slice(b",\"kind\":\"");
        out.extend_from_slice(k);
        out.push(b'"');
    }
    if !s.name.is_empty() {
        out.extend_from_slice(b",\"name\":");
        json::string(out, &s.name);
    }
    // A zero start time means "unknown": the API says to leave timestamp (and so duration) absent.
    if start_us > 0 {
        out.extend_from_slice(b",\"timestamp\":");
        json::uint(out, start_us);
        // "Durations of less than one are rounded up."
        out.extend_from_slice(b",\"duration\":");
        json::uint(out, end_us.saturating_sub(start_us).max(1));
    }
    if shared {
        out.extend_from_slice(b",\"shared\":true");
    }
    out.extend_from_slice(b",\"localEndpoint\":");
    let service = match find(&rec.resource.attributes, "service.name") {
        Some(Value::StringValue(name)) if !name.is_empty() => name.as_str(),
        _ => UNKNOWN_SERVICE,
    };
    Endpoint {
        service_name: Some(service),
        ..Default::default()
    }
    .write(out);
    let remote = remote_endpoint(kind, &s.attributes);
    if !remote.is_empty() {
        out.extend_from_slice(b",\"remoteEndpoint\":");
        remote.write(out);
    }
    if !s.events.is_empty() {
        out.extend_from_slice(b",\"annotations\":[");
        for (n, e) in s.events.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"timestamp\":");
            json::uint(out, e.time_unix_nano / 1000);
            out.extend_from_slice(b",\"value\":");
            json::string(out, &event_value(&e.name, &e.attributes));
            out.push(b'}');
        }
        out.push(b']');
    }
    write_tags(rec, out);
    out.push(b'}');
    Ok(())
}

fn attr(kv: &KeyValue) -> Option<&Value> {
    kv.value.as_ref().and_then(|v| v.value.as_ref())
}

fn write_tags(rec: &SpanRecord, out: &mut Vec<u8>) {
    let s = &rec.span;
    let mut tags: Vec<(&str, TagValue<'_>)> =
        Vec::with_capacity(rec.resource.attributes.len() + s.attributes.len() + 6);
    for kv in &rec.resource.attributes {
        if let (true, Some(v)) = (kv.key != "service.name", attr(kv)) {
            tags.push((&kv.key, TagValue::Attr(v)));
        }
    }
    for kv in &s.attributes {
        if let Some(v) = attr(kv) {
            tags.push((&kv.key, TagValue::Attr(v)));
        }
    }
    if !rec.scope.name.is_empty() {
        tags.push(("otel.scope.name", TagValue::Text(&rec.scope.name)));
    }
    if !rec.scope.version.is_empty() {
        tags.push(("otel.scope.version", TagValue::Text(&rec.scope.version)));
    }
    if let Some(status) = &s.status {
        match StatusCode::try_from(status.code).unwrap_or(StatusCode::Unset) {
            StatusCode::Ok => tags.push(("otel.status_code", TagValue::Text("OK"))),
            StatusCode::Error => {
                tags.push(("otel.status_code", TagValue::Text("ERROR")));
                let msg = if status.message.is_empty() {
                    "true"
                } else {
                    status.message.as_str()
                };
                tags.push(("error", TagValue::Text(msg)));
            }
            StatusCode::Unset => {}
        }
    }
    for (key, n) in [
        ("otel.dropped_attributes_count", s.dropped_attributes_count),
        ("otel.dropped_events_count", s.dropped_events_count),
        ("otel.dropped_links_count", s.dropped_links_count),
    ] {
        if n > 0 {
            tags.push((key, TagValue::Count(n)));
        }
    }
    if tags.is_empty() {
        return;
    }
    // Stable sort: among equal keys the later-pushed (higher-priority) entry comes last.
    tags.sort_by(|a, b| a.0.cmp(b.0));
    out.extend_from_slice(b",\"tags\":{");
    let mut first = true;
    for (i, (k, v)) in tags.iter().enumerate() {
        if tags.get(i + 1).is_some_and(|next| next.0 == *k) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        json::string(out, k);
        out.push(b':');
        match v {
            TagValue::Attr(v) => json::value_as_string(out, v),
            TagValue::Text(t) => json::string(out, t),
            TagValue::Count(n) => {
                out.push(b'"');
                json::uint(out, u64::from(*n));
                out.push(b'"');
            }
        }
    }
    out.push(b'}');
}

/// Event name alone, or `"name": {attributes}` as the OTel Zipkin mapping writes it.
fn event_value(name: &str, attrs: &[KeyValue]) -> String {
    if attrs.is_empty() {
        return name.to_string();
    }
    let obj: serde_json::Map<String, serde_json::Value> = attrs
        .iter()
        .filter_map(|kv| {
            Some((
                kv.key.clone(),
                value_to_json(kv.value.as_ref()?.value.as_ref()?),
            ))
        })
        .collect();
    format!(
        "{}: {}",
        serde_json::Value::String(name.to_string()),
        serde_json::Value::Object(obj)
    )
}

/// The other side of the connection: for SERVER spans the client (`client.address`,
/// `network.peer.*`), for CLIENT/PRODUCER/CONSUMER spans the server or broker (`peer.service`,
/// `network.peer.*`, Envoy's `envoy.upstream.address`, `server.address`/`server.port`).
fn remote_endpoint(kind: SpanKind, attrs: &[KeyValue]) -> Endpoint<'_> {
    let mut ep = Endpoint::default();
    let text = |key: &str| match find(attrs, key) {
        Some(Value::StringValue(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    };
    let port = |key: &str| {
        find_int(attrs, key)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
    };
    match kind {
        SpanKind::Server => {
            if let Some(ip) = text("client.address").or_else(|| text("network.peer.address")) {
                if ep.set_ip(ip) {
                    ep.port = port("client.port").or_else(|| port("network.peer.port"));
                }
            }
        }
        SpanKind::Client | SpanKind::Producer | SpanKind::Consumer => {
            ep.service_name = text("peer.service");
            let mut have_ip = text("network.peer.address").is_some_and(|a| ep.set_ip(a));
            if have_ip {
                ep.port = port("network.peer.port");
            } else if let Some((host, p)) = text("envoy.upstream.address").and_then(split_host_port)
            {
                have_ip = ep.set_ip(host);
                if have_ip {
                    ep.port = p;
                }
            }
            let server = text("server.address");
            if !have_ip {
                if let Some(addr) = server {
                    if ep.set_ip(addr) {
                        ep.port = port("server.port");
                    }
                }
            }
            // A host name (not an IP) names the remote service when nothing better does.
            if ep.service_name.is_none() {
                ep.service_name = server.filter(|s| s.parse::<IpAddr>().is_err());
                if ep.service_name.is_some() && ep.port.is_none() {
                    ep.port = port("server.port");
                }
            }
        }
        SpanKind::Internal | SpanKind::Unspecified => {}
    }
    ep
}

/// `10.0.0.7:8080` / `[::1]:8080` / `10.0.0.7` -> host and optional port.
fn split_host_port(addr: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        return Some((host, tail.strip_prefix(':').and_then(|p| p.parse().ok())));
    }
    match addr.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Some((addr, None)),
        Some((host, port)) => Some((host, port.parse().ok())),
        None => Some((addr, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("10.0.0.7:8080"),
            Some(("10.0.0.7", Some(8080)))
        );
        assert_eq!(split_host_port("[::1]:9"), Some(("::1", Some(9))));
        assert_eq!(split_host_port("fe80::1"), Some(("fe80::1", None)));
        assert_eq!(split_host_port("10.0.0.7"), Some(("10.0.0.7", None)));
    }

    #[test]
    fn mapped_ipv6_goes_to_ipv4() {
        let mut ep = Endpoint::default();
        assert!(ep.set_ip("::ffff:10.1.2.3"));
        assert_eq!(ep.ipv4, Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert!(ep.ipv6.is_none());
        assert!(!Endpoint::default().set_ip("shop.example"));
    }
}
