//! The configuration parser: every key, defaults, and refusals that name the key.

use super::*;
use crate::route::MAX_ROUTES;

#[test]
fn empty_and_empty_object_give_defaults() {
    assert_eq!(Config::from_json(b"").unwrap(), Config::default());
    assert_eq!(Config::from_json(b" {} ").unwrap(), Config::default());
    let d = Config::default();
    assert_eq!(
        d.inbound(),
        vec![InboundFormat::W3c, InboundFormat::B3, InboundFormat::Jaeger]
    );
    assert!(d.outbound().is_empty());
    assert_eq!(d.threshold(), Threshold::ALWAYS);
}

#[test]
fn every_key_parses() {
    let json = br#"{
        "service_name": "edge", "deployment_environment": "prod",
        "collector_cluster": "c", "collector_authority": "a", "collector_path": "/p",
        "collector_timeout_ms": 500, "flush_interval_ms": 200, "max_batch_spans": 10,
        "max_buffered_spans": 100, "max_inflight_dispatches": 2, "sample_ratio": 0.25,
        "record_unsampled": false, "force_sample_header": "x-debug",
        "trust_incoming_context": false, "inbound_formats": ["jaeger", "w3c"],
        "outbound_formats": ["w3c", "b3", "b3single", "jaeger"],
        "trace_id_response_header": "", "traceresponse_header": true, "span_kind": "client",
        "record_request_headers": ["x-user"], "record_response_headers": ["server"],
        "baggage_to_attributes": ["tenant"], "resource_attributes": {"k8s.pod.name": "p"},
        "grpc_message_counting": false, "max_attribute_length": 64,
        "http_routes": ["/api/orders/{id}", "/static/{*path}"],
        "envoy_attributes": ["envoy.upstream.cluster", "envoy.response_flags"]
    }"#;
    let c = Config::from_json(json).unwrap();
    assert_eq!(c.span_kind, SpanKindConfig::Client);
    assert_eq!(c.inbound(), vec![InboundFormat::W3c, InboundFormat::Jaeger]);
    assert_eq!(
        c.outbound(),
        vec![
            OutboundFormat::B3,
            OutboundFormat::B3Single,
            OutboundFormat::Jaeger
        ]
    );
    assert_eq!(c.threshold().to_th().as_deref(), Some("c"));
    assert_eq!(
        c.routes().unwrap().find("/api/orders/7?a=b"),
        Some("/api/orders/{id}")
    );
    assert_eq!(
        c.resource_attributes,
        vec![("k8s.pod.name".to_string(), "p".to_string())]
    );
    let want = c.envoy_attributes;
    assert!(want.contains(EnvoyAttributes::UPSTREAM_CLUSTER));
    assert!(want.contains(EnvoyAttributes::RESPONSE_FLAGS));
    assert!(!want.contains(EnvoyAttributes::CLIENT_ADDRESS));
    assert!(!want.contains(EnvoyAttributes::ROUTE_NAME));
    let default = Config::default().envoy_attributes;
    for (one, read) in [
        (EnvoyAttributes::CLIENT_ADDRESS, true),
        (EnvoyAttributes::PROTOCOL, false),
        (EnvoyAttributes::ROUTE_NAME, false),
        (EnvoyAttributes::UPSTREAM_CLUSTER, true),
        (EnvoyAttributes::UPSTREAM_ADDRESS, true),
        (EnvoyAttributes::RESPONSE_FLAGS, true),
    ] {
        assert_eq!(default.contains(one), read, "{one:?} in the default set");
        assert!(EnvoyAttributes::ALL.contains(one));
    }
    // Every documented name parses, in bit order.
    let names = json_list(&EnvoyAttributes::NAMES);
    let every =
        Config::from_json(format!(r#"{{"envoy_attributes": {names}}}"#).as_bytes()).unwrap();
    assert_eq!(every.envoy_attributes, EnvoyAttributes::ALL);
    let none = Config::from_json(br#"{"envoy_attributes": []}"#).unwrap();
    assert_eq!(none.envoy_attributes, EnvoyAttributes::NONE);
}

#[rustfmt::skip]
const BAD: &[(&str, &str, &str)] = &[
    (r#"{"sample_rate": 1}"#,               "sample_rate",            "unknown key"),
    (r#"{"sample_ratio": "1"}"#,            "sample_ratio",           "invalid type"),
    (r#"{"sample_ratio": 1.5}"#,            "sample_ratio",           "between 0 and 1"),
    (r#"{"max_batch_spans": -1}"#,          "max_batch_spans",        "invalid value"),
    (r#"{"max_batch_spans": 1.5}"#,         "max_batch_spans",        "non-negative integer"),
    (r#"{"sample_ratio": 1, "sample_ratio": 0}"#, "sample_ratio",     "duplicate key"),
    (r#"{"max_batch_spans": 0}"#,           "max_batch_spans",        "between 1"),
    (r#"{"max_batch_spans": 10, "max_buffered_spans": 5}"#, "max_batch_spans", "max_buffered_spans"),
    (r#"{"flush_interval_ms": 0}"#,         "flush_interval_ms",      "between 1"),
    (r#"{"collector_timeout_ms": 0}"#,      "collector_timeout_ms",   "between 1"),
    (r#"{"max_inflight_dispatches": 0}"#,   "max_inflight_dispatches","between 1"),
    (r#"{"span_kind": "proxy"}"#,           "span_kind",              "unknown variant"),
    (r#"{"inbound_formats": ["zipkin"]}"#,  "inbound_formats",        "unknown variant"),
    (r#"{"inbound_formats": []}"#,          "inbound_formats",        "at least one"),
    (r#"{"outbound_formats": "b3"}"#,       "outbound_formats",       "invalid type"),
    (r#"{"collector_path": "v1/traces"}"#,  "collector_path",         "start with '/'"),
    (r#"{"service_name": ""}"#,             "service_name",           "must not be empty"),
    (r#"{"collector_cluster": ""}"#,        "collector_cluster",      "must not be empty"),
    (r#"{"force_sample_header": "X Debug"}"#, "force_sample_header",  "header name"),
    (r#"{"record_request_headers": ["A"]}"#, "record_request_headers", "header name"),
    (r#"{"baggage_to_attributes": ["a b"]}"#, "baggage_to_attributes", "baggage key"),
    (r#"{"resource_attributes": {"k": 1}}"#, "resource_attributes",   "invalid type"),
    (r#"{"max_attribute_length": 0}"#,      "max_attribute_length",   "between 16"),
    (r#"{"record_unsampled": "yes"}"#,      "record_unsampled",       "invalid type"),
    (r#"{"http_routes": "/a"}"#,            "http_routes",            "invalid type"),
    (r#"{"http_routes": ["/a", 1]}"#,       "http_routes",            "invalid type"),
    (r#"{"http_routes": ["/a", "b/{id}"]}"#, "http_routes[1]",        "\"b/{id}\": must start with '/'"),
    (r#"{"http_routes": ["/a/{id}.json"]}"#, "http_routes[0]",        "not allowed in a literal"),
    (r#"{"http_routes": ["/{*p}/x"]}"#,     "http_routes[0]",         "last segment"),
    (r#"{"envoy_attributes": ["upstream"]}"#, "envoy_attributes",     "unknown variant \"upstream\""),
    (r#"{"envoy_attributes": "all"}"#,      "envoy_attributes",       "invalid type"),
    (r#"[1]"#,                              "",                       "JSON object"),
    (r#"{"service_name": "#,               "",                       "not valid JSON"),
];

#[test]
fn errors_name_the_key_and_the_reason() {
    for &(json, key, reason) in BAD {
        let e = Config::from_json(json.as_bytes()).expect_err(json);
        assert_eq!(e.key, key, "{json}: {e}");
        assert!(e.reason.contains(reason), "{json}: {e}");
        assert!(e.to_string().contains(key), "{e}");
    }
    let many: Vec<String> = (0..=MAX_ROUTES).map(|i| format!("\"/r{i}\"")).collect();
    let json = format!(r#"{{"http_routes": [{}]}}"#, many.join(","));
    let e = Config::from_json(json.as_bytes()).unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.reason.as_str()),
        ("http_routes", "at most 256 templates")
    );
}

/// `["a","b"]` for a list of plain names.
fn json_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("[{}]", quoted.join(","))
}
