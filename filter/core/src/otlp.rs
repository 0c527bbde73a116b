//! OTLP encoding: finished spans -> one `ExportTraceServiceRequest` (protobuf) with one
//! `ResourceSpans` and one `ScopeSpans`, the body of `POST /v1/traces`.

use crate::config::Config;
use crate::semconv::SCHEMA_URL;
use crate::span::{Attribute, Link, Span, SpanKind, StatusCode, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message;

/// Instrumentation scope name of the filter's spans.
pub const SCOPE_NAME: &str = "aetherflow.trace_filter";
/// Instrumentation scope version: the crate version.
pub const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");
pub use crate::contract::{FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE};

fn kv(key: String, value: any_value::Value) -> KeyValue {
    KeyValue {
        key,
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn attr(a: Attribute) -> KeyValue {
    let v = match a.value {
        Value::Str(s) => any_value::Value::StringValue(s),
        Value::Int(i) => any_value::Value::IntValue(i),
        Value::Bool(b) => any_value::Value::BoolValue(b),
    };
    kv(a.key.into_owned(), v)
}

/// The resource of the filter's spans: `service.name`, `deployment.environment.name` (when
/// configured) and `resource_attributes` (which may not override those two).
pub fn resource(cfg: &Config) -> Resource {
    let mut attrs = vec![kv(
        "service.name".into(),
        any_value::Value::StringValue(cfg.service_name.clone()),
    )];
    if !cfg.deployment_environment.is_empty() {
        attrs.push(kv(
            "deployment.environment.name".into(),
            any_value::Value::StringValue(cfg.deployment_environment.clone()),
        ));
    }
    for (k, v) in &cfg.resource_attributes {
        let configured = k == "service.name"
            || (k == "deployment.environment.name" && !cfg.deployment_environment.is_empty());
        if !configured {
            attrs.push(kv(k.clone(), any_value::Value::StringValue(v.clone())));
        }
    }
    Resource {
        attributes: attrs,
        ..Default::default()
    }
}

fn link(l: Link) -> pb::span::Link {
    pb::span::Link {
        trace_id: l.trace_id.0.to_vec(),
        span_id: l.span_id.0.to_vec(),
        flags: l.otlp_flags(),
        trace_state: l.trace_state,
        ..Default::default()
    }
}

/// One span in OTLP form. `flags`: W3C trace flags in bits 0-7, bit 8 set, bit 9 when the
/// parent is remote.
pub fn span(s: Span) -> pb::Span {
    let flags = s.otlp_flags();
    pb::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        trace_state: s.trace_state,
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags,
        name: s.name,
        kind: match s.kind {
            SpanKind::Server => pb::span::SpanKind::Server as i32,
            SpanKind::Client => pb::span::SpanKind::Client as i32,
        },
        start_time_unix_nano: s.start_unix_nano,
        end_time_unix_nano: s.end_unix_nano.max(s.start_unix_nano),
        attributes: s.attributes.into_iter().map(attr).collect(),
        links: s.links.into_iter().map(link).collect(),
        status: match s.status {
            StatusCode::Unset => None,
            code => Some(pb::Status {
                message: s.status_message,
                code: if code == StatusCode::Ok {
                    pb::status::StatusCode::Ok as i32
                } else {
                    pb::status::StatusCode::Error as i32
                },
            }),
        },
        ..Default::default()
    }
}

/// The export request for `spans`, all under `resource`.
pub fn export_request(
    resource: &Resource,
    spans: impl IntoIterator<Item = Span>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![pb::ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![pb::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.into(),
                    version: SCOPE_VERSION.into(),
                    ..Default::default()
                }),
                spans: spans.into_iter().map(span).collect(),
                schema_url: SCHEMA_URL.into(),
            }],
            schema_url: SCHEMA_URL.into(),
        }],
    }
}

pub use crate::wire::EncodedSpan;

/// Encodes export requests for one resource: the resource and scope are encoded once, the
/// spans are written directly (see [`crate::wire`]).
#[derive(Clone, Debug)]
pub struct Encoder {
    resource: Vec<u8>,
    scope: Vec<u8>,
}

impl Encoder {
    /// An encoder for spans of `resource`, under the filter's scope.
    pub fn new(resource: &Resource) -> Encoder {
        let scope = InstrumentationScope {
            name: SCOPE_NAME.into(),
            version: SCOPE_VERSION.into(),
            ..Default::default()
        };
        Encoder {
            resource: resource.encode_to_vec(),
            scope: scope.encode_to_vec(),
        }
    }

    /// The protobuf body (`ExportTraceServiceRequest`) for `spans`.
    pub fn encode(&self, spans: &[Span]) -> Vec<u8> {
        crate::wire::export_request(&self.resource, &self.scope, SCHEMA_URL, spans)
    }

    /// The protobuf body for spans encoded when they ended.
    pub fn encode_encoded(&self, spans: &[EncodedSpan]) -> Vec<u8> {
        crate::wire::export_request_encoded(&self.resource, &self.scope, SCHEMA_URL, spans)
    }
}

/// The protobuf body for `spans` (builds an [`Encoder`]; keep one to encode many batches).
pub fn encode(resource: &Resource, spans: impl IntoIterator<Item = Span>) -> Vec<u8> {
    let spans: Vec<Span> = spans.into_iter().collect();
    Encoder::new(resource).encode(&spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SpanId, TraceId};
    use std::borrow::Cow;

    fn sample(parent: bool) -> Span {
        Span {
            trace_id: TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            span_id: SpanId::from_u64(7),
            parent_span_id: parent.then(|| SpanId::from_u64(3)),
            parent_is_remote: parent,
            flags: 0x03,
            trace_state: "ot=th:0".into(),
            name: "GET".into(),
            kind: SpanKind::Server,
            start_unix_nano: 10,
            end_unix_nano: 25,
            attributes: vec![
                Attribute {
                    key: Cow::Borrowed("http.request.method"),
                    value: Value::Str("GET".into()),
                },
                Attribute {
                    key: Cow::Borrowed("http.response.status_code"),
                    value: Value::Int(503),
                },
                Attribute {
                    key: Cow::Borrowed("aetherflow.sampling.record_only"),
                    value: Value::Bool(true),
                },
            ],
            status: StatusCode::Error,
            status_message: String::new(),
            links: vec![Link {
                trace_id: TraceId::from_u64(1),
                span_id: SpanId::from_u64(2),
                trace_state: String::new(),
                flags: 1,
                is_remote: true,
            }],
        }
    }

    #[test]
    fn request_shape_and_round_trip() {
        let cfg = Config {
            deployment_environment: "prod".into(),
            resource_attributes: [
                ("k8s.pod.name".to_string(), "p".to_string()),
                ("service.name".into(), "x".into()),
            ]
            .into_iter()
            .collect(),
            ..Config::default()
        };
        let body = encode(&resource(&cfg), vec![sample(true), sample(false)]);
        let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        let keys: Vec<(&str, String)> = rs
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|a| match &a.value.as_ref().unwrap().value {
                Some(any_value::Value::StringValue(s)) => (a.key.as_str(), s.clone()),
                _ => (a.key.as_str(), String::new()),
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("service.name", "envoy-proxy".to_string()),
                ("deployment.environment.name", "prod".to_string()),
                ("k8s.pod.name", "p".to_string())
            ]
        );
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, SCOPE_NAME);
        assert_eq!(
            ss.scope.as_ref().unwrap().version,
            env!("CARGO_PKG_VERSION")
        );
        let s = &ss.spans[0];
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(s.span_id, 7u64.to_be_bytes().to_vec());
        assert_eq!(s.parent_span_id, 3u64.to_be_bytes().to_vec());
        assert_eq!(s.flags, 0x303, "trace flags + has-is-remote + is-remote");
        assert_eq!(ss.spans[1].flags, 0x103, "root span: is-remote clear");
        assert!(ss.spans[1].parent_span_id.is_empty());
        assert_eq!(s.trace_state, "ot=th:0");
        assert_eq!(s.kind, pb::span::SpanKind::Server as i32);
        assert_eq!((s.start_time_unix_nano, s.end_time_unix_nano), (10, 25));
        assert_eq!(
            s.status.as_ref().unwrap().code,
            pb::status::StatusCode::Error as i32
        );
        assert_eq!(s.attributes.len(), 3);
        assert_eq!(s.links[0].flags, 0x301);
    }

    #[test]
    fn direct_writer_matches_prost() {
        let cfg = Config::default();
        let res = resource(&cfg);
        let mut ok = sample(true);
        ok.status = StatusCode::Unset;
        ok.links.clear();
        ok.trace_state.clear();
        ok.attributes.push(Attribute {
            key: Cow::Borrowed("big"),
            value: Value::Int(-5),
        });
        ok.attributes.push(Attribute {
            key: Cow::Borrowed("long"),
            value: Value::Str("x".repeat(300)),
        });
        let mut msg = sample(false);
        msg.status_message = "boom".into();
        let spans = vec![sample(true), ok, msg];
        let wire = Encoder::new(&res).encode(&spans);
        let encoded: Vec<_> = spans.iter().map(EncodedSpan::of).collect();
        assert_eq!(
            Encoder::new(&res).encode_encoded(&encoded),
            wire,
            "spans encoded when they end give the same request"
        );
        let decoded = ExportTraceServiceRequest::decode(wire.as_slice()).unwrap();
        assert_eq!(decoded, export_request(&res, spans.clone()));
        assert_eq!(
            wire,
            export_request(&res, spans).encode_to_vec(),
            "byte for byte"
        );
        let empty = Encoder::new(&res).encode(&[]);
        assert_eq!(Encoder::new(&res).encode_encoded(&[]), empty);
        assert_eq!(
            ExportTraceServiceRequest::decode(empty.as_slice()).unwrap(),
            export_request(&res, vec![])
        );
    }
}
