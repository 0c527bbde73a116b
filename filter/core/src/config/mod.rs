//! The filter's JSON configuration (Envoy plugin `configuration`).
//!
//! Every key is optional and has the default documented on its field (and in
//! `docs/filter.md`). An unknown key, a wrong type or a bad value is an error that names
//! the key and the reason; the filter then refuses the configuration.

use crate::json::{self, Json};
use crate::propagation::{InboundFormat, OutboundFormat};
use crate::route::RouteTable;
use crate::sampling::Threshold;
use std::fmt;

mod read;
#[cfg(test)]
mod tests;
mod validate;

use read::{boolean, err, invalid_type, size, string, strings, uint, unknown_variant};

/// Span kind of the proxy span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKindConfig {
    /// Ingress: the proxy serves the request (errors: 5xx).
    Server,
    /// Egress: the proxy calls a service (errors: 4xx and 5xx).
    Client,
}

/// Inbound format names in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundName {
    /// `traceparent` / `tracestate`.
    W3c,
    /// `b3` / `x-b3-*`.
    B3,
    /// `uber-trace-id`.
    Jaeger,
}

/// Outbound format names in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundName {
    /// `traceparent` / `tracestate` (always written anyway).
    W3c,
    /// `x-b3-*`.
    B3,
    /// `b3`.
    B3single,
    /// `uber-trace-id`.
    Jaeger,
}

/// Span attributes read from Envoy properties when a span ends: in the Wasm form one host call
/// each (about 12.5 k Envoy instructions, as much as a tenth of the OpenTelemetry tracer's whole
/// cost per request, measured), so each can be left out, and the default set is chosen by cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvoyAttributes(u8);

impl EnvoyAttributes {
    /// The names accepted in `envoy_attributes`, the attribute each produces.
    pub const NAMES: [&'static str; 6] = [
        "client.address",
        "network.protocol.version",
        "envoy.route_name",
        "envoy.upstream.cluster",
        "envoy.upstream.address",
        "envoy.response_flags",
    ];

    /// `client.address` (`source.address`).
    pub const CLIENT_ADDRESS: EnvoyAttributes = EnvoyAttributes(1 << 0);
    /// `network.protocol.version` (`request.protocol`).
    pub const PROTOCOL: EnvoyAttributes = EnvoyAttributes(1 << 1);
    /// `envoy.route_name` (`xds.route_name`).
    pub const ROUTE_NAME: EnvoyAttributes = EnvoyAttributes(1 << 2);
    /// `envoy.upstream.cluster` (`xds.cluster_name`).
    pub const UPSTREAM_CLUSTER: EnvoyAttributes = EnvoyAttributes(1 << 3);
    /// `envoy.upstream.address` (`upstream.address`).
    pub const UPSTREAM_ADDRESS: EnvoyAttributes = EnvoyAttributes(1 << 4);
    /// `envoy.response_flags` (`response.flags`).
    pub const RESPONSE_FLAGS: EnvoyAttributes = EnvoyAttributes(1 << 5);

    /// Every attribute.
    pub const ALL: EnvoyAttributes = EnvoyAttributes(0b11_1111);

    /// The default: what a trace of a failure needs (where the request went, what Envoy saw go
    /// wrong, who asked). `network.protocol.version` and `envoy.route_name` cost a property
    /// read on every request for little diagnostic value, so they are opt-in.
    pub const DEFAULT: EnvoyAttributes = EnvoyAttributes(
        Self::CLIENT_ADDRESS.0
            | Self::UPSTREAM_CLUSTER.0
            | Self::UPSTREAM_ADDRESS.0
            | Self::RESPONSE_FLAGS.0,
    );

    /// None: no property is read (the span keeps what headers and callbacks give).
    pub const NONE: EnvoyAttributes = EnvoyAttributes(0);

    /// The attribute named `name` (one of [`EnvoyAttributes::NAMES`], in bit order).
    fn named(name: &str) -> Option<EnvoyAttributes> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| EnvoyAttributes(1 << i))
    }

    /// Whether every attribute of `other` is read (a bit test: this runs per span).
    pub fn contains(self, other: EnvoyAttributes) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The filter configuration. Field comments give the default and the unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Resource `service.name`. Default `"envoy-proxy"`.
    pub service_name: String,
    /// Resource `deployment.environment.name`; `""` (default) leaves it out.
    pub deployment_environment: String,
    /// Envoy cluster of the collector shim. Default `"trace_shim"`.
    pub collector_cluster: String,
    /// `:authority` of export requests. Default `"trace_shim"`.
    pub collector_authority: String,
    /// `:path` of export requests. Default `"/v1/traces"`.
    pub collector_path: String,
    /// Timeout of one export request, milliseconds. Default 1000.
    pub collector_timeout_ms: u64,
    /// Flush period of the span buffer, milliseconds. Default 1000.
    pub flush_interval_ms: u64,
    /// Spans per export request; reaching it triggers a flush. Default 256.
    pub max_batch_spans: usize,
    /// Spans buffered per VM at most; more are dropped and counted. Default 4096.
    pub max_buffered_spans: usize,
    /// Export requests in flight at most; a flush beyond it waits. Default 4.
    pub max_inflight_dispatches: usize,
    /// Head-sampling probability for new traces, 0..=1. Default 1.0.
    pub sample_ratio: f64,
    /// Unsampled requests still produce a record-only span. Default true.
    pub record_unsampled: bool,
    /// A request with this header set to `1` or `true` is sampled; `""` disables.
    /// Default `"x-force-trace"`.
    pub force_sample_header: String,
    /// Continue incoming traces (true, default) or start a new trace linking to them.
    pub trust_incoming_context: bool,
    /// Formats read, W3C first. Default `["w3c","b3","jaeger"]`.
    pub inbound_formats: Vec<InboundName>,
    /// Formats written upstream besides W3C. Default `["w3c"]`.
    pub outbound_formats: Vec<OutboundName>,
    /// Response header carrying the trace id; `""` disables. Default `"x-trace-id"`.
    pub trace_id_response_header: String,
    /// Also send the W3C draft `traceresponse` header. Default false.
    pub traceresponse_header: bool,
    /// `"server"` (default) or `"client"`.
    pub span_kind: SpanKindConfig,
    /// Request headers recorded as `http.request.header.<name>`. Default `[]`.
    pub record_request_headers: Vec<String>,
    /// Response headers recorded as `http.response.header.<name>`. Default `[]`.
    pub record_response_headers: Vec<String>,
    /// Baggage keys copied to `baggage.<key>` attributes. Default `[]`.
    pub baggage_to_attributes: Vec<String>,
    /// Extra resource attributes, in document order. Default `{}`.
    pub resource_attributes: Vec<(String, String)>,
    /// Count gRPC messages from body frame prefixes. Default true.
    pub grpc_message_counting: bool,
    /// Longest attribute value in bytes (cut on a UTF-8 boundary). Default 256.
    pub max_attribute_length: usize,
    /// Path templates for `http.route`, first match wins. Default `[]`.
    pub http_routes: Vec<String>,
    /// Attributes read from Envoy properties (see [`EnvoyAttributes::NAMES`]). Default:
    /// [`EnvoyAttributes::DEFAULT`].
    pub envoy_attributes: EnvoyAttributes,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            service_name: "envoy-proxy".into(),
            deployment_environment: String::new(),
            collector_cluster: "trace_shim".into(),
            collector_authority: "trace_shim".into(),
            collector_path: "/v1/traces".into(),
            collector_timeout_ms: 1000,
            flush_interval_ms: 1000,
            max_batch_spans: 256,
            max_buffered_spans: 4096,
            max_inflight_dispatches: 4,
            sample_ratio: 1.0,
            record_unsampled: true,
            force_sample_header: "x-force-trace".into(),
            trust_incoming_context: true,
            inbound_formats: vec![InboundName::W3c, InboundName::B3, InboundName::Jaeger],
            outbound_formats: vec![OutboundName::W3c],
            trace_id_response_header: "x-trace-id".into(),
            traceresponse_header: false,
            span_kind: SpanKindConfig::Server,
            record_request_headers: Vec::new(),
            record_response_headers: Vec::new(),
            baggage_to_attributes: Vec::new(),
            resource_attributes: Vec::new(),
            grpc_message_counting: true,
            max_attribute_length: 256,
            http_routes: Vec::new(),
            envoy_attributes: EnvoyAttributes::DEFAULT,
        }
    }
}

/// A configuration error: the key at fault (`""` for the document itself) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending key.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "invalid configuration: {}", self.reason)
        } else {
            write!(
                f,
                "invalid configuration key `{}`: {}",
                self.key, self.reason
            )
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses and validates the plugin configuration. Empty input (no configuration) gives
    /// the defaults.
    pub fn from_json(input: &[u8]) -> Result<Config, ConfigError> {
        if input.iter().all(u8::is_ascii_whitespace) {
            return Ok(Config::default());
        }
        let doc = json::parse(input).map_err(|e| {
            err(
                "",
                format!("not valid JSON at byte {}: {}", e.offset, e.reason),
            )
        })?;
        let Json::Object(members) = doc else {
            return Err(err("", "the configuration must be a JSON object"));
        };
        let mut cfg = Config::default();
        for (i, (k, v)) in members.iter().enumerate() {
            if members[..i].iter().any(|(seen, _)| seen == k) {
                return Err(err(k, "duplicate key"));
            }
            cfg.set(k, v)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Sets one key from its JSON value (type checks; value checks are in `validate`).
    fn set(&mut self, k: &str, v: &Json) -> Result<(), ConfigError> {
        match k {
            "service_name" => self.service_name = string(k, v)?,
            "deployment_environment" => self.deployment_environment = string(k, v)?,
            "collector_cluster" => self.collector_cluster = string(k, v)?,
            "collector_authority" => self.collector_authority = string(k, v)?,
            "collector_path" => self.collector_path = string(k, v)?,
            "collector_timeout_ms" => self.collector_timeout_ms = uint(k, v)?,
            "flush_interval_ms" => self.flush_interval_ms = uint(k, v)?,
            "max_batch_spans" => self.max_batch_spans = size(k, v)?,
            "max_buffered_spans" => self.max_buffered_spans = size(k, v)?,
            "max_inflight_dispatches" => self.max_inflight_dispatches = size(k, v)?,
            "sample_ratio" => {
                self.sample_ratio = v.as_f64().ok_or_else(|| invalid_type(k, v, "a number"))?
            }
            "record_unsampled" => self.record_unsampled = boolean(k, v)?,
            "force_sample_header" => self.force_sample_header = string(k, v)?,
            "trust_incoming_context" => self.trust_incoming_context = boolean(k, v)?,
            "inbound_formats" => {
                self.inbound_formats = strings(k, v)?
                    .iter()
                    .map(|s| match s.as_str() {
                        "w3c" => Ok(InboundName::W3c),
                        "b3" => Ok(InboundName::B3),
                        "jaeger" => Ok(InboundName::Jaeger),
                        _ => Err(unknown_variant(k, s, "`w3c`, `b3`, `jaeger`")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "outbound_formats" => {
                self.outbound_formats = strings(k, v)?
                    .iter()
                    .map(|s| match s.as_str() {
                        "w3c" => Ok(OutboundName::W3c),
                        "b3" => Ok(OutboundName::B3),
                        "b3single" => Ok(OutboundName::B3single),
                        "jaeger" => Ok(OutboundName::Jaeger),
                        _ => Err(unknown_variant(k, s, "`w3c`, `b3`, `b3single`, `jaeger`")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "trace_id_response_header" => self.trace_id_response_header = string(k, v)?,
            "traceresponse_header" => self.traceresponse_header = boolean(k, v)?,
            "span_kind" => {
                self.span_kind = match string(k, v)?.as_str() {
                    "server" => SpanKindConfig::Server,
                    "client" => SpanKindConfig::Client,
                    other => return Err(unknown_variant(k, other, "`server`, `client`")),
                }
            }
            "record_request_headers" => self.record_request_headers = strings(k, v)?,
            "record_response_headers" => self.record_response_headers = strings(k, v)?,
            "baggage_to_attributes" => self.baggage_to_attributes = strings(k, v)?,
            "resource_attributes" => {
                let Json::Object(m) = v else {
                    return Err(invalid_type(k, v, "an object of strings"));
                };
                let mut out: Vec<(String, String)> = Vec::with_capacity(m.len());
                for (ak, av) in m {
                    let Json::String(s) = av else {
                        return Err(invalid_type(k, av, "a string value"));
                    };
                    if out.iter().any(|(seen, _)| seen == ak) {
                        return Err(err(k, format!("duplicate attribute {ak:?}")));
                    }
                    out.push((ak.clone(), s.clone()));
                }
                self.resource_attributes = out;
            }
            "grpc_message_counting" => self.grpc_message_counting = boolean(k, v)?,
            "max_attribute_length" => self.max_attribute_length = size(k, v)?,
            "http_routes" => self.http_routes = strings(k, v)?,
            "envoy_attributes" => {
                let mut set = EnvoyAttributes::NONE;
                for name in strings(k, v)? {
                    let Some(attribute) = EnvoyAttributes::named(&name) else {
                        return Err(unknown_variant(
                            k,
                            &name,
                            "`client.address`, `network.protocol.version`, `envoy.route_name`, \
                             `envoy.upstream.cluster`, `envoy.upstream.address`, \
                             `envoy.response_flags`",
                        ));
                    };
                    set.0 |= attribute.0;
                }
                self.envoy_attributes = set;
            }
            _ => return Err(err(k, "unknown key")),
        }
        Ok(())
    }
    /// `http_routes` compiled for matching; an invalid template is named `http_routes[i]`.
    pub fn routes(&self) -> Result<RouteTable, ConfigError> {
        RouteTable::compile(&self.http_routes).map_err(|e| {
            err(
                &format!("http_routes[{}]", e.index),
                format!(
                    "{:?}: {}",
                    self.http_routes.get(e.index).map_or("", |t| t.as_str()),
                    e.reason
                ),
            )
        })
    }

    /// The head-sampling threshold for new traces.
    pub fn threshold(&self) -> Threshold {
        Threshold::from_probability(self.sample_ratio).unwrap_or(Threshold::ALWAYS)
    }

    /// Inbound formats, W3C first when enabled, then the configured order, no duplicates.
    pub fn inbound(&self) -> Vec<InboundFormat> {
        let mut out = Vec::new();
        if self.inbound_formats.contains(&InboundName::W3c) {
            out.push(InboundFormat::W3c);
        }
        for f in &self.inbound_formats {
            let f = match f {
                InboundName::W3c => continue,
                InboundName::B3 => InboundFormat::B3,
                InboundName::Jaeger => InboundFormat::Jaeger,
            };
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// Outbound legacy formats (W3C is always written), no duplicates.
    pub fn outbound(&self) -> Vec<OutboundFormat> {
        let mut out = Vec::new();
        for f in &self.outbound_formats {
            let f = match f {
                OutboundName::W3c => continue,
                OutboundName::B3 => OutboundFormat::B3,
                OutboundName::B3single => OutboundFormat::B3Single,
                OutboundName::Jaeger => OutboundFormat::Jaeger,
            };
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }
}
