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
