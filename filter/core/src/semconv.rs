//! Span name, attributes and status per OpenTelemetry semantic conventions v1.45.0
//! (HTTP spans: stable; RPC spans for gRPC), plus the filter's own `envoy.*` and
//! `aetherflow.*` attributes.

use crate::grpc;
use crate::span::{Attributes, SpanKind, StatusCode};
use std::borrow::Cow;

/// The semantic conventions version followed.
pub const SEMCONV_VERSION: &str = "1.45.0";
/// Schema URL of that version (OTLP `schema_url`).
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.45.0";

/// Methods the HTTP conventions know; others are recorded as `_OTHER`.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Envoy facts read from stream properties at the end of the stream, when the host has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvoyFacts {
    /// `route_name`.
    pub route_name: Option<String>,
    /// `upstream.cluster` (xds.cluster_name).
    pub upstream_cluster: Option<String>,
    /// `upstream.address`.
    pub upstream_address: Option<String>,
    /// Response flags, short form (e.g. `UF,URX`).
    pub response_flags: Option<String>,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// Whether the response came from upstream (`response.code_details == via_upstream`);
    /// `None` when unknown.
    pub from_upstream: Option<bool>,
}

/// Everything the adapter observed about one HTTP exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exchange {
    /// `:method`.
    pub method: String,
    /// `:path` as received (path and query).
    pub path: String,
    /// `:scheme`.
    pub scheme: String,
    /// `:authority` (or `host`).
    pub authority: String,
    /// HTTP protocol as Envoy names it (`HTTP/1.1`, `HTTP/2`, `HTTP/3`).
    pub protocol: Option<String>,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// Address of the downstream peer (no port).
    pub client_address: Option<String>,
    /// The matched route template, when known (`http.route`).
    pub route: Option<String>,
    /// The request is gRPC (`content-type: application/grpc*`).
    pub grpc: bool,
    /// Response `:status`; `None` when no response was sent (reset).
    pub status: Option<u16>,
    /// `grpc-status` from trailers, or headers of a trailers-only response.
    pub grpc_status: Option<u32>,
    /// `grpc-message`, decoded.
    pub grpc_message: Option<String>,
    /// gRPC messages sent by the client (when counted).
    pub request_messages: Option<u64>,
    /// gRPC messages sent by the server (when counted).
    pub response_messages: Option<u64>,
    /// Allow-listed request headers, `(lowercase name, value)`.
    pub request_headers: Vec<(String, String)>,
    /// Allow-listed response headers.
    pub response_headers: Vec<(String, String)>,
    /// Baggage members to record, `(key, decoded value)`.
    pub baggage: Vec<(String, String)>,
    /// Envoy properties.
    pub envoy: EnvoyFacts,
}

/// The span name, attributes and status derived from an exchange.
#[derive(Debug)]
pub struct Described {
    /// Span name.
    pub name: String,
    /// Attributes.
    pub attributes: Attributes,
    /// Status code.
    pub status: StatusCode,
    /// Status message (gRPC message on errors).
    pub status_message: String,
}

/// Splits `host[:port]` / `[v6]:port`.
pub fn split_authority(a: &str) -> (&str, Option<u16>) {
    if let Some(rest) = a.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
        return (a, None);
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (a, None),
        },
        _ => (a, None),
    }
}

/// `1.1`, `2`, `3` from Envoy's protocol names.
fn protocol_version(p: &str) -> Option<&str> {
    match p {
        "HTTP/1.0" => Some("1.0"),
        "HTTP/1.1" => Some("1.1"),
        "HTTP/2" => Some("2"),
        "HTTP/3" => Some("3"),
        _ => None,
    }
}

/// Builds name, attributes and status for `ex` as a span of `kind`. Takes the exchange by
/// value: its strings move into the attributes instead of being copied (this runs once per
/// request inside the proxy).
pub fn describe(mut ex: Exchange, kind: SpanKind, max_len: usize) -> Described {
    let mut a = Attributes::new(max_len);
    let method_known = KNOWN_METHODS.contains(&ex.method.as_str());
    request_attributes(&ex, kind, method_known, &mut a);
    let local_reply = ex.envoy.from_upstream == Some(false);
    moved_attributes(&mut ex, &mut a);
    let grpc_method = if ex.grpc {
        grpc::method_from_path(split_path(&ex.path).0)
    } else {
        None
    };
    let outcome = match grpc_method {
        Some(m) => grpc_outcome(&ex, m, kind, local_reply, &mut a),
        None => http_outcome(&ex, kind, method_known, local_reply),
    };
    if let Some(t) = &outcome.error_type {
        a.str("error.type", t);
    }
    Described {
        name: outcome.name,
        attributes: a,
        status: outcome.status,
        status_message: outcome
            .status_message
            .map(|m| crate::span::truncate_utf8(m, max_len).to_owned())
            .unwrap_or_default(),
    }
}

/// `path?query#fragment` to the path (no fragment) and the query.
fn split_path(target: &str) -> (&str, Option<&str>) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    (path.split('#').next().unwrap_or(path), query)
}

/// What the request and the response status say: method, URL, route, status code, server.
fn request_attributes(ex: &Exchange, kind: SpanKind, method_known: bool, a: &mut Attributes) {
    if method_known {
        a.str("http.request.method", &ex.method);
    } else {
        a.str("http.request.method", "_OTHER");
        a.str("http.request.method_original", &ex.method);
    }
    let (path, query) = split_path(&ex.path);
    a.str("url.path", path);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        a.str("url.query", q);
    }
    if !ex.scheme.is_empty() {
        a.str("url.scheme", &ex.scheme);
    }
    if kind == SpanKind::Client && !ex.scheme.is_empty() && !ex.authority.is_empty() {
        let mut full =
            String::with_capacity(ex.scheme.len() + 3 + ex.authority.len() + ex.path.len());
        full.push_str(&ex.scheme);
        full.push_str("://");
        full.push_str(&ex.authority);
        full.push_str(&ex.path);
        a.string("url.full", full);
    }
    if let Some(r) = &ex.route {
        a.str("http.route", r);
    }
    if let Some(s) = ex.status {
        a.int("http.response.status_code", i64::from(s));
    }
    if !ex.authority.is_empty() {
        let (host, port) = split_authority(&ex.authority);
        a.str("server.address", host);
        if let Some(p) = port {
            a.int("server.port", i64::from(p));
        }
    }
    if let Some(v) = ex.protocol.as_deref().and_then(protocol_version) {
        a.str("network.protocol.version", v);
    }
}

/// The values the span keeps as they are (client, user agent, recorded headers, baggage,
/// Envoy facts): moved out of the exchange, not copied.
fn moved_attributes(ex: &mut Exchange, a: &mut Attributes) {
    if let Some(c) = ex.client_address.take() {
        a.string("client.address", c);
    }
    if let Some(ua) = ex.user_agent.take() {
        a.string("user_agent.original", ua);
    }
    for (k, v) in std::mem::take(&mut ex.request_headers) {
        a.string(format!("http.request.header.{k}"), v);
    }
    for (k, v) in std::mem::take(&mut ex.response_headers) {
        a.string(format!("http.response.header.{k}"), v);
    }
    for (k, v) in std::mem::take(&mut ex.baggage) {
        a.string(format!("baggage.{k}"), v);
    }
    let e = &mut ex.envoy;
    for (key, v) in [
        ("envoy.route_name", e.route_name.take()),
        ("envoy.upstream.cluster", e.upstream_cluster.take()),
        ("envoy.upstream.address", e.upstream_address.take()),
        ("envoy.response_flags", e.response_flags.take()),
        ("envoy.request_id", e.request_id.take()),
    ] {
        if let Some(v) = v.filter(|v| !v.is_empty() && v != "-") {
            a.string(key, v);
        }
    }
}

/// Span name, status and `error.type` of an exchange.
struct Outcome<'a> {
    name: String,
    status: StatusCode,
    /// The gRPC message of a failed call (capped by the caller).
    status_message: Option<&'a str>,
    error_type: Option<Cow<'a, str>>,
}

impl Outcome<'_> {
    fn ok(name: String) -> Self {
        Outcome {
            name,
            status: StatusCode::Unset,
            status_message: None,
            error_type: None,
        }
    }
}

/// A gRPC call: named by its method, status from `grpc-status` (its absence is an error).
fn grpc_outcome<'a>(
    ex: &'a Exchange,
    method: &str,
    kind: SpanKind,
    local_reply: bool,
    a: &mut Attributes,
) -> Outcome<'a> {
    a.str("rpc.system.name", "grpc");
    a.str("rpc.method", method);
    if let Some(n) = ex.request_messages {
        a.int("aetherflow.grpc.request_messages", n as i64);
    }
    if let Some(n) = ex.response_messages {
        a.int("aetherflow.grpc.response_messages", n as i64);
    }
    let mut out = Outcome::ok(method.to_owned());
    match ex.grpc_status {
        Some(code) => {
            let name = grpc::status_name(code);
            a.str("rpc.response.status_code", name);
            if grpc::is_error(code, kind) {
                out.status = StatusCode::Error;
                out.error_type = Some(Cow::Borrowed(name));
                out.status_message = ex.grpc_message.as_deref();
            }
        }
        None => {
            a.bool("aetherflow.grpc.status_missing", true);
            out.status = StatusCode::Error;
            out.error_type = Some(Cow::Borrowed(match ex.status {
                None => "reset",
                Some(_) if local_reply => "local_reply",
                Some(_) => "grpc_status_missing",
            }));
        }
    }
    out
}

/// An HTTP exchange: named `METHOD route` (or the method alone), status from the code.
fn http_outcome(
    ex: &Exchange,
    kind: SpanKind,
    method_known: bool,
    local_reply: bool,
) -> Outcome<'static> {
    let m = if method_known {
        ex.method.as_str()
    } else {
        "HTTP"
    };
    let name = match &ex.route {
        Some(r) => {
            let mut n = String::with_capacity(m.len() + 1 + r.len());
            n.push_str(m);
            n.push(' ');
            n.push_str(r);
            n
        }
        None => m.to_owned(),
    };
    let mut out = Outcome::ok(name);
    match ex.status {
        None => out.error_type = Some(Cow::Borrowed("reset")),
        Some(s) if local_reply && s >= 400 => out.error_type = Some(Cow::Borrowed("local_reply")),
        Some(s) if s >= 500 || (kind == SpanKind::Client && s >= 400) || s < 100 => {
            // The conventions' error.type for an HTTP failure is the status code itself.
            out.error_type = Some(Cow::Owned(s.to_string()));
        }
        Some(_) => {}
    }
    if out.error_type.is_some() {
        out.status = StatusCode::Error;
    }
    out
}

#[cfg(test)]
mod tests;
