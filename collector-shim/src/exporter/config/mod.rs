//! Exporter configuration: one entry of the shim's `exporters:` list.
//!
//! The doc comments here are the reference for users; every field says its unit and default.
//! Durations use the one syntax of the whole config (`crate::config::duration`): a string with a
//! unit (`"250us"`, `"500ms"`, `"10s"`, `"2m"`) or a plain number of milliseconds.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use crate::exporter::tls::TlsConfig;

mod check;
mod env;
pub use env::{otlp_var, parse_otel_headers};

/// Default Zipkin v2 collector URL (Zipkin's own default port).
pub const DEFAULT_ZIPKIN_ENDPOINT: &str = "http://127.0.0.1:9411/api/v2/spans";
/// Default Jaeger collector Thrift-over-HTTP URL (the seed's `http://localhost:14268/api/traces`,
/// with `127.0.0.1` because `localhost` may resolve to `::1`).
pub const DEFAULT_JAEGER_ENDPOINT: &str = "http://127.0.0.1:14268/api/traces";
/// Default OTLP/HTTP traces URL (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` default).
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://127.0.0.1:4318/v1/traces";
/// Default OTLP/gRPC endpoint (scheme, host and port only: gRPC names the method in the path).
pub const DEFAULT_OTLP_GRPC_ENDPOINT: &str = "http://127.0.0.1:4317";
/// Path a Zipkin v2 collector takes spans on.
pub const ZIPKIN_PATH: &str = "/api/v2/spans";
/// Path a Jaeger collector takes Thrift batches on.
pub const JAEGER_PATH: &str = "/api/traces";
/// Path of the OTLP/HTTP traces signal.
pub const OTLP_PATH: &str = "/v1/traces";
/// Default request timeout per attempt (`OTEL_EXPORTER_*_TIMEOUT` default: 10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default size at which the file exporter rotates (64 MiB).
pub const DEFAULT_FILE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// One exporter. In YAML: `- type: zipkin` followed by the fields of that kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ExporterConfig {
    /// Zipkin v2 JSON, `POST {endpoint}` (a Zipkin server or anything speaking its API).
    Zipkin(ZipkinConfig),
    /// Jaeger Thrift binary over HTTP (`jaeger-collector` port 14268). For Jaeger >= 1.35 or
    /// Jaeger v2 the `otlp` exporter pointed at port 4318 works as well.
    Jaeger(JaegerConfig),
    /// OTLP/HTTP protobuf (Tempo, an OpenTelemetry Collector tier, Jaeger v2, ...).
    Otlp(OtlpConfig),
    /// Readable trace trees on stdout: the embedded default when no backend is configured.
    Console(ConsoleConfig),
    /// JSON lines (one OTLP-JSON span per line) in a size-bounded file.
    File(FileConfig),
}

/// Settings shared by the HTTP exporters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZipkinConfig {
    /// Name in logs and metric labels; default `zipkin`. Needed only to tell two Zipkin exporters apart.
    #[serde(default)]
    pub name: Option<String>,
    /// URL of the span endpoint; default `http://127.0.0.1:9411/api/v2/spans`. A URL with no
    /// path (`http://zipkin:9411`) gets `/api/v2/spans`.
    #[serde(default = "default_zipkin_endpoint")]
    pub endpoint: String,
    /// Time allowed for one HTTP attempt; default `10s`.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub timeout: Duration,
    /// Extra request headers (e.g. authorization); default none.
    #[serde(default)]
    pub headers: Headers,
    /// Retry policy for failed attempts.
    #[serde(default)]
    pub retry: RetryConfig,
    /// TLS settings for an `https://` endpoint (CA file, client certificate, server name).
    #[serde(default)]
    pub tls: TlsConfig,
}

/// Jaeger collector over Thrift/HTTP.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JaegerConfig {
    /// Name in logs and metric labels; default `jaeger`.
    #[serde(default)]
    pub name: Option<String>,
    /// URL of the Thrift endpoint; default `http://127.0.0.1:14268/api/traces`. A URL with no
    /// path gets `/api/traces`.
    #[serde(default = "default_jaeger_endpoint")]
    pub endpoint: String,
    /// Time allowed for one HTTP attempt; default `10s`.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub timeout: Duration,
    /// Extra request headers; default none.
    #[serde(default)]
    pub headers: Headers,
    /// Retry policy for failed attempts.
    #[serde(default)]
    pub retry: RetryConfig,
    /// TLS settings for an `https://` endpoint (CA file, client certificate, server name).
    #[serde(default)]
    pub tls: TlsConfig,
}

/// OTLP over HTTP (protobuf bodies) or gRPC.
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

/// Extra request headers of an exporter. They often carry credentials, so `Debug` (and with it
/// every log line and `--check-config` dump that prints a config) shows the names only.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, String>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

impl std::ops::Deref for Headers {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Headers {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Body compression of the OTLP exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain protobuf.
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// Console exporter: no settings besides an optional name.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Name in logs and metric labels; default `console`.
    #[serde(default)]
    pub name: Option<String>,
}

/// File exporter: JSON lines with size-based rotation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Name in logs and metric labels; default `file`.
    #[serde(default)]
    pub name: Option<String>,
    /// File to append to (created if missing). Required.
    pub path: PathBuf,
    /// Size in bytes at which the file is rotated; default 64 MiB (67108864).
    #[serde(default = "default_file_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept (`path.1` .. `path.N`, oldest removed); default 1.
    /// With 0 the file is a hard cap: once full, further spans are dropped and counted.
    #[serde(default = "default_max_files")]
    pub max_files: u32,
}

/// Exponential backoff with full jitter; the same policy for every HTTP exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retry at all; default `true`. With `false` a failed attempt fails the batch.
    pub enabled: bool,
    /// Upper bound of the first backoff; default `500ms`.
    #[serde(deserialize_with = "crate::config::duration::deserialize")]
    pub initial_interval: Duration,
    /// Largest backoff between two attempts; default `5s`.
    #[serde(deserialize_with = "crate::config::duration::deserialize")]
    pub max_interval: Duration,
    /// Give up once this much time has passed since the first attempt; default `20s`. A wait
    /// (backoff or `Retry-After`) that would end past it gives up at once. Keep
    /// `max_elapsed_time + timeout` within the batcher's `export_timeout` (default 30 s, as
    /// `OTEL_BSP_EXPORT_TIMEOUT`) so the exporter reports the backend's error rather than being cut off.
    #[serde(deserialize_with = "crate::config::duration::deserialize")]
    pub max_elapsed_time: Duration,
    /// Growth factor of the backoff; default 2.
    pub multiplier: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_millis(500),
            max_interval: Duration::from_secs(5),
            max_elapsed_time: Duration::from_secs(20),
            multiplier: 2.0,
        }
    }
}

fn default_zipkin_endpoint() -> String {
    DEFAULT_ZIPKIN_ENDPOINT.to_string()
}
fn default_jaeger_endpoint() -> String {
    DEFAULT_JAEGER_ENDPOINT.to_string()
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_file_max_bytes() -> u64 {
    DEFAULT_FILE_MAX_BYTES
}
fn default_max_files() -> u32 {
    1
}

/// The config's one duration syntax (`250us`, `500ms`, `5s`, `2m`, `1h`, or a plain number of
/// milliseconds), from `crate::config::duration`.
pub use crate::config::duration::parse as parse_duration;

impl ExporterConfig {
    /// An exporter of `kind` with every default, or why `kind` is not an exporter (`--exporter`,
    /// `OTEL_TRACES_EXPORTER`, the seed's `Exporter`).
    pub fn with_defaults(kind: &str) -> Result<ExporterConfig, String> {
        if kind == "file" {
            return Err("the file exporter needs a path; configure it in the file".into());
        }
        serde_json::from_value(serde_json::json!({ "type": kind })).map_err(|_| {
            format!("`{kind}` is not an exporter (zipkin, jaeger, otlp, console, file)")
        })
    }

    /// Zipkin exporter with defaults and the given URL (`OTEL_EXPORTER_ZIPKIN_ENDPOINT`).
    pub fn zipkin(endpoint: impl Into<String>) -> Self {
        ExporterConfig::Zipkin(ZipkinConfig {
            name: None,
            endpoint: endpoint.into(),
            timeout: DEFAULT_TIMEOUT,
            headers: Headers::default(),
            retry: RetryConfig::default(),
            tls: TlsConfig::default(),
        })
    }

    /// Jaeger Thrift/HTTP exporter with defaults and the given URL (seed key `Endpoint`
    /// with `Exporter: jaeger`).
    pub fn jaeger(endpoint: impl Into<String>) -> Self {
        ExporterConfig::Jaeger(JaegerConfig {
            name: None,
            endpoint: endpoint.into(),
            timeout: DEFAULT_TIMEOUT,
            headers: Headers::default(),
            retry: RetryConfig::default(),
            tls: TlsConfig::default(),
        })
    }

    /// OTLP/HTTP exporter with defaults and a full traces URL, used as is
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    pub fn otlp(traces_endpoint: impl Into<String>) -> Self {
        ExporterConfig::Otlp(OtlpConfig {
            name: None,
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: traces_endpoint.into(),
            headers: Headers::default(),
            compression: Compression::None,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryConfig::default(),
            tls: TlsConfig::default(),
            insecure: false,
        })
    }

    /// OTLP exporter from a base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`): the spec appends
    /// `v1/traces` to it, adding a `/` when the base lacks one.
    pub fn otlp_from_base(base: &str) -> Self {
        let sep = if base.ends_with('/') { "" } else { "/" };
        Self::otlp(format!("{base}{sep}v1/traces"))
    }

    /// The console exporter (the embedded default).
    pub fn console() -> Self {
        ExporterConfig::Console(ConsoleConfig::default())
    }

    /// A file exporter with default rotation.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        ExporterConfig::File(FileConfig {
            name: None,
            path: path.into(),
            max_bytes: DEFAULT_FILE_MAX_BYTES,
            max_files: default_max_files(),
        })
    }

    /// The kind of exporter (`zipkin`, `jaeger`, `otlp`, `console`, `file`).
    pub fn kind(&self) -> &'static str {
        match self {
            ExporterConfig::Zipkin(_) => "zipkin",
            ExporterConfig::Jaeger(_) => "jaeger",
            ExporterConfig::Otlp(_) => "otlp",
            ExporterConfig::Console(_) => "console",
            ExporterConfig::File(_) => "file",
        }
    }

    /// Name used in logs and metric labels: the configured `name`, else the kind.
    pub fn name(&self) -> &str {
        let custom = match self {
            ExporterConfig::Zipkin(c) => c.name.as_deref(),
            ExporterConfig::Jaeger(c) => c.name.as_deref(),
            ExporterConfig::Otlp(c) => c.name.as_deref(),
            ExporterConfig::Console(c) => c.name.as_deref(),
            ExporterConfig::File(c) => c.name.as_deref(),
        };
        custom.unwrap_or(self.kind())
    }

    fn name_field(&self) -> Option<&str> {
        match self {
            ExporterConfig::Zipkin(c) => c.name.as_deref(),
            ExporterConfig::Jaeger(c) => c.name.as_deref(),
            ExporterConfig::Otlp(c) => c.name.as_deref(),
            ExporterConfig::Console(c) => c.name.as_deref(),
            ExporterConfig::File(c) => c.name.as_deref(),
        }
    }
}
