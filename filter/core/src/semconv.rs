//! Span name, attributes and status per OpenTelemetry semantic conventions v1.45.0
//! (HTTP spans: stable; RPC spans for gRPC), plus the filter's own `envoy.*` and
//! `aetherflow.*` attributes.

use crate::grpc;
use crate::span::{Attributes, SpanKind, StatusCode};

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
pub fn describe(ex: Exchange, kind: SpanKind, max_len: usize) -> Described {
    let mut a = Attributes::new(max_len);
    let method_known = KNOWN_METHODS.contains(&ex.method.as_str());
    if method_known {
        a.str("http.request.method", &ex.method);
    } else {
        a.str("http.request.method", "_OTHER");
        a.str("http.request.method_original", &ex.method);
    }
    let (path, query) = match ex.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (ex.path.as_str(), None),
    };
    let path = path.split('#').next().unwrap_or(path);
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
    if let Some(c) = ex.client_address {
        a.string("client.address", c);
    }
    if let Some(v) = ex.protocol.as_deref().and_then(protocol_version) {
        a.str("network.protocol.version", v);
    }
    if let Some(ua) = ex.user_agent {
        a.string("user_agent.original", ua);
    }
    for (k, v) in ex.request_headers {
        a.string(format!("http.request.header.{k}"), v);
    }
    for (k, v) in ex.response_headers {
        a.string(format!("http.response.header.{k}"), v);
    }
    for (k, v) in ex.baggage {
        a.string(format!("baggage.{k}"), v);
    }
    let e = ex.envoy;
    for (key, v) in [
        ("envoy.route_name", e.route_name),
        ("envoy.upstream.cluster", e.upstream_cluster),
        ("envoy.upstream.address", e.upstream_address),
        ("envoy.response_flags", e.response_flags),
        ("envoy.request_id", e.request_id),
    ] {
        if let Some(v) = v.filter(|v| !v.is_empty() && v != "-") {
            a.string(key, v);
        }
    }

    let local_reply = e.from_upstream == Some(false);
    let mut status = StatusCode::Unset;
    let mut status_message = String::new();
    let mut error_type: Option<String> = None;
    let grpc_method = if ex.grpc {
        grpc::method_from_path(path)
    } else {
        None
    };

    let name = if let Some(m) = grpc_method {
        a.str("rpc.system.name", "grpc");
        a.str("rpc.method", m);
        if let Some(n) = ex.request_messages {
            a.int("aetherflow.grpc.request_messages", n as i64);
        }
        if let Some(n) = ex.response_messages {
            a.int("aetherflow.grpc.response_messages", n as i64);
        }
        match ex.grpc_status {
            Some(code) => {
                let name = grpc::status_name(code);
                a.str("rpc.response.status_code", name);
                if grpc::is_error(code, kind) {
                    status = StatusCode::Error;
                    error_type = Some(name.to_owned());
                    if let Some(msg) = &ex.grpc_message {
                        status_message = crate::span::truncate_utf8(msg, max_len).to_owned();
                    }
                }
            }
            None => {
                a.bool("aetherflow.grpc.status_missing", true);
                status = StatusCode::Error;
                error_type = Some(
                    match ex.status {
                        None => "reset",
                        Some(_) if local_reply => "local_reply",
                        Some(_) => "grpc_status_missing",
                    }
                    .to_owned(),
                );
            }
        }
        m.to_owned()
    } else {
        match ex.status {
            None => {
                status = StatusCode::Error;
                error_type = Some("reset".to_owned());
            }
            Some(s) if local_reply && s >= 400 => {
                status = StatusCode::Error;
                error_type = Some("local_reply".to_owned());
            }
            Some(s) if s >= 500 || (kind == SpanKind::Client && s >= 400) || s < 100 => {
                status = StatusCode::Error;
                error_type = Some(s.to_string());
            }
            Some(_) => {}
        }
        let m = if method_known {
            ex.method.as_str()
        } else {
            "HTTP"
        };
        match &ex.route {
            Some(r) => {
                let mut n = String::with_capacity(m.len() + 1 + r.len());
                n.push_str(m);
                n.push(' ');
                n.push_str(r);
                n
            }
            None => m.to_owned(),
        }
    };
    if let Some(t) = error_type {
        a.str("error.type", &t);
    }
    Described {
        name,
        attributes: a,
        status,
        status_message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Value;

    fn http(method: &str, path: &str, status: Option<u16>) -> Exchange {
        Exchange {
            method: method.into(),
            path: path.into(),
            scheme: "http".into(),
            authority: "api.example.com:8080".into(),
            protocol: Some("HTTP/1.1".into()),
            user_agent: Some("curl/8".into()),
            client_address: Some("10.0.0.1".into()),
            status,
            envoy: EnvoyFacts {
                from_upstream: Some(true),
                ..EnvoyFacts::default()
            },
            ..Exchange::default()
        }
    }

    fn s(d: &Described, k: &str) -> Option<String> {
        match d.attributes.get(k) {
            Some(Value::Str(v)) => Some(v.clone()),
            Some(Value::Int(i)) => Some(i.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            None => None,
        }
    }

    #[test]
    fn http_attributes() {
        let d = describe(
            http("GET", "/users/42?x=1", Some(200)),
            SpanKind::Server,
            256,
        );
        assert_eq!(d.name, "GET", "never the raw path");
        assert_eq!(s(&d, "http.request.method").as_deref(), Some("GET"));
        assert_eq!(s(&d, "url.path").as_deref(), Some("/users/42"));
        assert_eq!(s(&d, "url.query").as_deref(), Some("x=1"));
        assert_eq!(s(&d, "url.scheme").as_deref(), Some("http"));
        assert_eq!(s(&d, "http.response.status_code").as_deref(), Some("200"));
        assert_eq!(s(&d, "server.address").as_deref(), Some("api.example.com"));
        assert_eq!(s(&d, "server.port").as_deref(), Some("8080"));
        assert_eq!(s(&d, "client.address").as_deref(), Some("10.0.0.1"));
        assert_eq!(s(&d, "network.protocol.version").as_deref(), Some("1.1"));
        assert_eq!(s(&d, "user_agent.original").as_deref(), Some("curl/8"));
        assert_eq!(
            s(&d, "url.full"),
            None,
            "server spans carry url.path, not url.full"
        );
        assert_eq!(d.status, StatusCode::Unset);
        assert_eq!(s(&d, "error.type"), None);
    }

    #[test]
    fn name_with_route_and_unknown_method() {
        let mut ex = http("GET", "/users/42", Some(200));
        ex.route = Some("/users/{id}".into());
        assert_eq!(
            describe(ex.clone(), SpanKind::Server, 256).name,
            "GET /users/{id}"
        );
        let d = describe(http("FOO", "/", Some(200)), SpanKind::Server, 256);
        assert_eq!(d.name, "HTTP");
        assert_eq!(s(&d, "http.request.method").as_deref(), Some("_OTHER"));
        assert_eq!(
            s(&d, "http.request.method_original").as_deref(),
            Some("FOO")
        );
    }

    #[rustfmt::skip]
    const STATUS: &[(Option<u16>, Option<bool>, SpanKind, Option<&str>, &str)] = &[
        (Some(200), Some(true),  SpanKind::Server, None,                "2xx is fine"),
        (Some(404), Some(true),  SpanKind::Server, None,                "server: 4xx is the client's fault"),
        (Some(404), Some(true),  SpanKind::Client, Some("404"),         "client: 4xx is an error"),
        (Some(503), Some(true),  SpanKind::Server, Some("503"),         "server: 5xx"),
        (Some(503), Some(false), SpanKind::Server, Some("local_reply"), "local reply without upstream response"),
        (Some(200), Some(false), SpanKind::Server, None,                "local 200 (direct response) is fine"),
        (None,      None,        SpanKind::Server, Some("reset"),       "no response at all"),
    ];

    #[test]
    fn http_status_rules() {
        for &(status, from_upstream, kind, want, why) in STATUS {
            let mut ex = http("GET", "/", status);
            ex.envoy.from_upstream = from_upstream;
            let d = describe(ex.clone(), kind, 256);
            assert_eq!(s(&d, "error.type").as_deref(), want, "{why}");
            let err = if want.is_some() {
                StatusCode::Error
            } else {
                StatusCode::Unset
            };
            assert_eq!(d.status, err, "{why}");
        }
    }

    fn grpc_ex(status: Option<u32>) -> Exchange {
        let mut ex = http("POST", "/helloworld.Greeter/SayHello", Some(200));
        ex.grpc = true;
        ex.grpc_status = status;
        ex.grpc_message = Some("boom".into());
        ex.request_messages = Some(1);
        ex.response_messages = Some(3);
        ex
    }

    #[test]
    fn grpc_spans() {
        let d = describe(grpc_ex(Some(0)), SpanKind::Server, 256);
        assert_eq!(d.name, "helloworld.Greeter/SayHello");
        assert_eq!(s(&d, "rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(
            s(&d, "rpc.method").as_deref(),
            Some("helloworld.Greeter/SayHello")
        );
        assert_eq!(s(&d, "rpc.response.status_code").as_deref(), Some("OK"));
        assert_eq!(
            s(&d, "aetherflow.grpc.request_messages").as_deref(),
            Some("1")
        );
        assert_eq!(
            s(&d, "aetherflow.grpc.response_messages").as_deref(),
            Some("3")
        );
        assert_eq!(d.status, StatusCode::Unset);

        let d = describe(grpc_ex(Some(5)), SpanKind::Server, 256);
        assert_eq!(
            s(&d, "rpc.response.status_code").as_deref(),
            Some("NOT_FOUND")
        );
        assert_eq!(
            d.status,
            StatusCode::Unset,
            "NOT_FOUND is not a server error"
        );
        let d = describe(grpc_ex(Some(5)), SpanKind::Client, 256);
        assert_eq!(
            d.status,
            StatusCode::Error,
            "any non-OK code fails a client span"
        );
        assert_eq!(s(&d, "error.type").as_deref(), Some("NOT_FOUND"));
        assert_eq!(d.status_message, "boom");
        let d = describe(grpc_ex(Some(14)), SpanKind::Server, 256);
        assert_eq!(
            (d.status, s(&d, "error.type").as_deref()),
            (StatusCode::Error, Some("UNAVAILABLE"))
        );

        let d = describe(grpc_ex(None), SpanKind::Server, 256);
        assert_eq!(d.status, StatusCode::Error, "missing status is not OK");
        assert_eq!(
            s(&d, "aetherflow.grpc.status_missing").as_deref(),
            Some("true")
        );
        assert_eq!(s(&d, "rpc.response.status_code"), None);
    }

    #[test]
    fn recorded_headers_baggage_envoy_and_caps() {
        let mut ex = http("GET", "/", Some(200));
        ex.request_headers = vec![("x-user".into(), "u".repeat(100))];
        ex.response_headers = vec![("server".into(), "envoy".into())];
        ex.baggage = vec![("tenant".into(), "acme".into())];
        ex.envoy.route_name = Some("r1".into());
        ex.envoy.response_flags = Some("-".into());
        ex.envoy.request_id = Some("abc".into());
        let d = describe(ex.clone(), SpanKind::Client, 16);
        assert_eq!(
            s(&d, "http.request.header.x-user").unwrap().len(),
            16,
            "capped"
        );
        assert_eq!(
            s(&d, "http.response.header.server").as_deref(),
            Some("envoy")
        );
        assert_eq!(s(&d, "baggage.tenant").as_deref(), Some("acme"));
        assert_eq!(s(&d, "envoy.route_name").as_deref(), Some("r1"));
        assert_eq!(s(&d, "envoy.response_flags"), None, "'-' means none");
        assert_eq!(s(&d, "envoy.request_id").as_deref(), Some("abc"));
        assert_eq!(
            s(&d, "url.full").as_deref(),
            Some("http://api.examp"),
            "capped at 16 bytes too"
        );
    }

    #[test]
    fn authority_forms() {
        assert_eq!(split_authority("a.b"), ("a.b", None));
        assert_eq!(split_authority("a.b:443"), ("a.b", Some(443)));
        assert_eq!(split_authority("[::1]:80"), ("::1", Some(80)));
        assert_eq!(split_authority("[::1]"), ("::1", None));
        assert_eq!(split_authority("a:b"), ("a:b", None));
        assert_eq!(split_authority("::1"), ("::1", None));
    }
}
