//! Test fixtures shared by the exporter tests: span builders and a recording HTTP backend.
#![allow(dead_code)]

use std::sync::Arc;

use collector_shim::model::SpanRecord;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

pub mod backend;
pub mod pki;

/// A fixed trace id used across tests.
pub const TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;
/// 2026-11-24T06:00:00Z in nanoseconds.
pub const T0: u64 = 1_795_500_000_000_000_000;

pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

pub fn i(v: i64) -> Value {
    Value::IntValue(v)
}

pub fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource {
        attributes: vec![
            kv("service.name", s(service)),
            kv("deployment.environment.name", s("test")),
        ],
        ..Default::default()
    })
}

pub fn scope() -> Arc<InstrumentationScope> {
    Arc::new(InstrumentationScope {
        name: "aetherflow.trace_filter".into(),
        version: "0.1.0".into(),
        ..Default::default()
    })
}

/// A span of `TRACE` (or `trace`) starting `start_us` after T0 and lasting `dur_us`.
pub fn span(
    trace: u128,
    id: u64,
    parent: u64,
    name: &str,
    kind: SpanKind,
    start_us: u64,
    dur_us: u64,
) -> Span {
    Span {
        trace_id: trace.to_be_bytes().to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            Vec::new()
        } else {
            parent.to_be_bytes().to_vec()
        },
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: T0 + start_us * 1000,
        end_time_unix_nano: T0 + (start_us + dur_us) * 1000,
        flags: 0x301,
        ..Default::default()
    }
}

pub fn record(service: &str, span: Span) -> SpanRecord {
    SpanRecord {
        resource: resource(service),
        scope: scope(),
        span,
    }
}

pub fn error_status(msg: &str) -> Option<Status> {
    Some(Status {
        message: msg.into(),
        code: StatusCode::Error as i32,
    })
}

pub fn event(name: &str, at_us: u64, attrs: Vec<KeyValue>) -> Event {
    Event {
        time_unix_nano: T0 + at_us * 1000,
        name: name.into(),
        attributes: attrs,
        ..Default::default()
    }
}

/// A small realistic batch: an Envoy server span, its upstream client span (HTTP 503, error),
/// a gRPC child, and an internal span.
pub fn sample_batch() -> Vec<SpanRecord> {
    let mut server = span(
        TRACE,
        0x1111,
        0x00f067aa0ba902b7,
        "GET /api/users/{id}",
        SpanKind::Server,
        0,
        12_400,
    );
    server.attributes = vec![
        kv("http.request.method", s("GET")),
        kv("http.route", s("/api/users/{id}")),
        kv("url.path", s("/api/users/42")),
        kv("http.response.status_code", i(503)),
        kv("server.address", s("shop.example")),
        kv("client.address", s("10.1.2.3")),
        kv("error.type", s("503")),
        kv("envoy.upstream.address", s("10.0.0.7:8080")),
    ];
    server.status = error_status("upstream unavailable");
    server.events = vec![event("retry", 5_000, vec![kv("attempt", i(2))])];
    let mut grpc = span(
        TRACE,
        0x2222,
        0x1111,
        "users.Users/Get",
        SpanKind::Client,
        300,
        3_100,
    );
    grpc.attributes = vec![
        kv("rpc.system.name", s("grpc")),
        kv("rpc.method", s("users.Users/Get")),
        kv("rpc.response.status_code", s("NOT_FOUND")),
        kv("server.address", s("10.0.0.9")),
        kv("server.port", i(50051)),
    ];
    let mut internal = span(
        TRACE,
        0x3333,
        0x1111,
        "render",
        SpanKind::Internal,
        3_500,
        0,
    );
    internal.attributes = vec![kv(
        "aetherflow.sampling.record_only",
        Value::BoolValue(true),
    )];
    vec![
        record("envoy-proxy", server),
        record("users", grpc),
        record("envoy-proxy", internal),
    ]
}
