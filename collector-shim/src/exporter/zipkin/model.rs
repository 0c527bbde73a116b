//! OTLP span -> Zipkin v2 JSON span (`zipkin2-api.yaml`, with the OpenTelemetry "Zipkin
//! exporter" mapping rules). Pure: no I/O.
use std::collections::BTreeMap;
use std::net::IpAddr;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde::Serialize;

use crate::exporter::attrs::{
    find_int, find_string, hex, service_name, valid_id, value_to_json, value_to_string,
};
use crate::model::SpanRecord;

/// One Zipkin v2 span, serialized as the API's JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    /// 32 lower-case hex characters (128-bit trace id).
    pub trace_id: String,
    /// 16 hex characters.
    pub id: String,
    /// Absent for a root span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// `CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER`; absent for internal spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// The span name, absent when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Start, epoch microseconds.
    pub timestamp: u64,
    /// Microseconds, at least 1.
    pub duration: u64,
    /// Only for a server span that reuses its client's span id (see [`to_zipkin`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    /// The service that recorded the span.
    pub local_endpoint: Endpoint,
    /// The other side of an RPC, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<Endpoint>,
    /// Span events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// Attributes and status, all values as strings.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A node of the service graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Service name, absent if unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Textual IPv4 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// Textual IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// Port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Endpoint {
    fn is_empty(&self) -> bool {
        *self == Endpoint::default()
    }

    fn set_ip(&mut self, text: &str) -> bool {
        // Brackets appear around IPv6 literals in `host:port` forms.
        match text
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
        {
            Ok(IpAddr::V4(v4)) => self.ipv4 = Some(v4.to_string()),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                // The spec: prefer the ipv4 field for mapped addresses.
                Some(v4) => self.ipv4 = Some(v4.to_string()),
                None => self.ipv6 = Some(v6.to_string()),
            },
            Err(_) => return false,
        }
        true
    }
}

/// A timestamped event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Annotation {
    /// Epoch microseconds.
    pub timestamp: u64,
    /// The event name, with its attributes as JSON when it has any.
    pub value: String,
}

/// Why a span could not be mapped (Zipkin would refuse the whole request for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmappable {
    /// Trace id not 16 bytes or all zero.
    TraceId,
    /// Span id not 8 bytes or all zero.
    SpanId,
}

/// Maps one span.
///
/// `shared`: Zipkin's flag means "contributing to a span started by another tracer", i.e. a
/// server span that reuses its client's span id (B3 shared-span style). OpenTelemetry always gives
/// a server span its own id, so a server span continuing a remote parent is *not* shared; the flag
/// is set only in the one case it describes: a SERVER span whose id equals its parent id (such a
/// span then carries no parentId, since a span cannot be its own parent).
pub fn to_zipkin(rec: &SpanRecord) -> Result<ZipkinSpan, Unmappable> {
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

    let mut tags = BTreeMap::new();
    // Resource attributes first so that span attributes win on a clash.
    for kv in &rec.resource.attributes {
        if kv.key != "service.name" {
            if let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                tags.insert(kv.key.clone(), value_to_string(v));
            }
        }
    }
    for kv in &s.attributes {
        if let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            tags.insert(kv.key.clone(), value_to_string(v));
        }
    }
    if !rec.scope.name.is_empty() {
        tags.insert("otel.scope.name".into(), rec.scope.name.clone());
    }
    if !rec.scope.version.is_empty() {
        tags.insert("otel.scope.version".into(), rec.scope.version.clone());
    }
    if let Some(status) = &s.status {
        match StatusCode::try_from(status.code).unwrap_or(StatusCode::Unset) {
            StatusCode::Ok => {
                tags.insert("otel.status_code".into(), "OK".into());
            }
            StatusCode::Error => {
                tags.insert("otel.status_code".into(), "ERROR".into());
                // Zipkin marks a span failed by the presence of `error`; its value is the message.
                let msg = if status.message.is_empty() {
                    "true".to_string()
                } else {
                    status.message.clone()
                };
                tags.insert("error".into(), msg);
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
            tags.insert(key.into(), n.to_string());
        }
    }

    let annotations = s
        .events
        .iter()
        .map(|e| Annotation {
            timestamp: e.time_unix_nano / 1000,
            value: event_value(&e.name, &e.attributes),
        })
        .collect();

    let remote = remote_endpoint(kind, &s.attributes);
    Ok(ZipkinSpan {
        trace_id: hex(&s.trace_id),
        id: hex(&s.span_id),
        parent_id: (has_parent && !shared).then(|| hex(&s.parent_span_id)),
        kind: match kind {
            SpanKind::Server => Some("SERVER"),
            SpanKind::Client => Some("CLIENT"),
            SpanKind::Producer => Some("PRODUCER"),
            SpanKind::Consumer => Some("CONSUMER"),
            SpanKind::Internal | SpanKind::Unspecified => None,
        },
        name: (!s.name.is_empty()).then(|| s.name.clone()),
        timestamp: start_us,
        // "Durations of less than one are rounded up."
        duration: end_us.saturating_sub(start_us).max(1),
        shared: shared.then_some(true),
        local_endpoint: Endpoint {
            service_name: Some(service_name(&rec.resource)),
            ..Default::default()
        },
        remote_endpoint: (!remote.is_empty()).then_some(remote),
        annotations,
        tags,
    })
}

/// Event name alone, or `"name": {attributes}` as the OTel Zipkin mapping writes it.
fn event_value(name: &str, attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> String {
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
fn remote_endpoint(
    kind: SpanKind,
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> Endpoint {
    let mut ep = Endpoint::default();
    let port = |key: &str| {
        find_int(attrs, key)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
    };
    match kind {
        SpanKind::Server => {
            let ip = find_string(attrs, "client.address")
                .or_else(|| find_string(attrs, "network.peer.address"));
            if let Some(ip) = ip {
                ep.set_ip(&ip);
            }
            ep.port = port("client.port").or_else(|| port("network.peer.port"));
            if ep.ipv4.is_none() && ep.ipv6.is_none() {
                ep.port = None;
            }
        }
        SpanKind::Client | SpanKind::Producer | SpanKind::Consumer => {
            ep.service_name = find_string(attrs, "peer.service");
            let mut have_ip =
                find_string(attrs, "network.peer.address").is_some_and(|a| ep.set_ip(&a));
            if have_ip {
                ep.port = port("network.peer.port");
            }
            if !have_ip {
                if let Some((host, p)) = find_string(attrs, "envoy.upstream.address")
                    .as_deref()
                    .and_then(split_host_port)
                {
                    have_ip = ep.set_ip(host);
                    if have_ip {
                        ep.port = p;
                    }
                }
            }
            let server = find_string(attrs, "server.address");
            if !have_ip {
                if let Some(addr) = &server {
                    have_ip = ep.set_ip(addr);
                    if have_ip {
                        ep.port = port("server.port");
                    }
                }
            }
            // A host name (not an IP) names the remote service when nothing better does.
            if ep.service_name.is_none() {
                ep.service_name = server.filter(|s| s.parse::<IpAddr>().is_err() && !s.is_empty());
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
        assert_eq!(ep.ipv4.as_deref(), Some("10.1.2.3"));
        assert!(ep.ipv6.is_none());
        assert!(!Endpoint::default().set_ip("shop.example"));
    }
}
