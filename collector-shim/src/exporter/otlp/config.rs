//! The `type: otlp` entry: the HTTP settings every exporter has, plus the protocol, the
//! compression and `insecure` (the `OTEL_EXPORTER_OTLP_*` variables map onto these keys).
use std::time::Duration;

use serde::Deserialize;

use crate::exporter::config::{Headers, RetryConfig, TlsConfig, DEFAULT_TIMEOUT};

/// Default OTLP/HTTP traces URL (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` default).
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://127.0.0.1:4318/v1/traces";
/// Default OTLP/gRPC endpoint (scheme, host and port only: gRPC names the method in the path).
pub const DEFAULT_OTLP_GRPC_ENDPOINT: &str = "http://127.0.0.1:4317";
/// Path of the OTLP/HTTP traces signal.
pub const OTLP_PATH: &str = "/v1/traces";

/// OTLP over HTTP (protobuf or JSON bodies) or gRPC.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Name in logs and metric labels; default `otlp`.
    #[serde(default)]
    pub name: Option<String>,
    /// `http/protobuf` (default), `http/json` or `grpc`. Env: `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// http/protobuf and http/json: the traces URL, default `http://127.0.0.1:4318/v1/traces` (a URL with no
    /// path gets `/v1/traces`). grpc: `scheme://host:port` with no path, default
    /// `http://127.0.0.1:4317`. Empty (the default) means the protocol's default.
    #[serde(default)]
    pub endpoint: String,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`); default none.
    #[serde(default)]
    pub headers: Headers,
    /// Body compression: `none` (default, as `OTEL_EXPORTER_OTLP_COMPRESSION`) or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Time allowed for one HTTP attempt; default `10s`.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub timeout: Duration,
    /// Retry policy for failed attempts.
    #[serde(default)]
    pub retry: RetryConfig,
    /// TLS settings for an `https://` endpoint (CA file, client certificate, server name).
    #[serde(default)]
    pub tls: TlsConfig,
    /// OTLP/gRPC with an endpoint written without a scheme (`collector:4317`): `true` connects
    /// in plain text, `false` (the default) with TLS. Ignored when the endpoint has a scheme.
    /// Env: `OTEL_EXPORTER_OTLP_[TRACES_]INSECURE`.
    #[serde(default)]
    pub insecure: bool,
}

impl OtlpConfig {
    /// An `http/protobuf` entry with every default and a full traces URL, used as is.
    pub fn with_endpoint(traces_endpoint: impl Into<String>) -> Self {
        OtlpConfig {
            name: None,
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: traces_endpoint.into(),
            headers: Headers::default(),
            compression: Compression::None,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryConfig::default(),
            tls: TlsConfig::default(),
            insecure: false,
        }
    }
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

crate::exporter::config::impl_http_target!(OtlpConfig);

/// Transport of the OTLP exporter (the values of `OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf bodies POSTed over HTTP/1.1.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/JSON bodies POSTed over HTTP/1.1 (hex ids, enums as integers, 64-bit integers as
    /// strings, lowerCamelCase keys).
    #[serde(rename = "http/json")]
    HttpJson,
    /// The `TraceService/Export` gRPC method over HTTP/2.
    #[serde(rename = "grpc")]
    Grpc,
}

impl OtlpProtocol {
    /// Parses the spec's names.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Ok(OtlpProtocol::HttpJson),
            "grpc" => Ok(OtlpProtocol::Grpc),
            other => Err(format!(
                "`{other}` is not supported (use `http/protobuf`, `http/json` or `grpc`)"
            )),
        }
    }
}

/// Body compression of the OTLP exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain bodies.
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}
