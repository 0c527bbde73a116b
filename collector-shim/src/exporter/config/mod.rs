//! Exporter configuration: one entry of the shim's `exporters:` list.
//!
//! The doc comments here are the reference for users; every field says its unit and default.
//! Durations are strings with a unit (`"500ms"`, `"10s"`, `"2m"`) or integers in milliseconds.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod env;
pub use env::parse_otel_headers;

/// Default Zipkin v2 collector URL (Zipkin's own default port).
pub const DEFAULT_ZIPKIN_ENDPOINT: &str = "http://127.0.0.1:9411/api/v2/spans";
/// Default Jaeger collector Thrift-over-HTTP URL (the seed's `http://localhost:14268/api/traces`,
/// with `127.0.0.1` because `localhost` may resolve to `::1`).
pub const DEFAULT_JAEGER_ENDPOINT: &str = "http://127.0.0.1:14268/api/traces";
/// Default OTLP/HTTP traces URL (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` default).
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://127.0.0.1:4318/v1/traces";
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
    /// Full URL of the span endpoint; default `http://127.0.0.1:9411/api/v2/spans`.
    #[serde(default = "default_zipkin_endpoint")]
    pub endpoint: String,
    /// Time allowed for one HTTP attempt; default `10s`.
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Extra request headers (e.g. authorization); default none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Retry policy for failed attempts.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// Jaeger collector over Thrift/HTTP.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JaegerConfig {
    /// Name in logs and metric labels; default `jaeger`.
    #[serde(default)]
    pub name: Option<String>,
    /// Full URL of the Thrift endpoint; default `http://127.0.0.1:14268/api/traces`.
    #[serde(default = "default_jaeger_endpoint")]
    pub endpoint: String,
    /// Time allowed for one HTTP attempt; default `10s`.
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Extra request headers; default none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Retry policy for failed attempts.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// OTLP/HTTP with protobuf bodies.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Name in logs and metric labels; default `otlp`.
    #[serde(default)]
    pub name: Option<String>,
    /// Full traces URL, used as is; default `http://127.0.0.1:4318/v1/traces`.
    #[serde(default = "default_otlp_endpoint")]
    pub endpoint: String,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`); default none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body compression: `none` (default, as `OTEL_EXPORTER_OTLP_COMPRESSION`) or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Time allowed for one HTTP attempt; default `10s`.
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Retry policy for failed attempts.
    #[serde(default)]
    pub retry: RetryConfig,
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
    #[serde(deserialize_with = "de_duration")]
    pub initial_interval: Duration,
    /// Largest backoff between two attempts; default `5s`.
    #[serde(deserialize_with = "de_duration")]
    pub max_interval: Duration,
    /// Give up once this much time has passed since the first attempt; default `20s`. A wait
    /// (backoff or `Retry-After`) that would end past it gives up at once. Keep
    /// `max_elapsed_time + timeout` within the batcher's `export_timeout` (default 30 s, as
    /// `OTEL_BSP_EXPORT_TIMEOUT`) so the exporter reports the backend's error rather than being cut off.
    #[serde(deserialize_with = "de_duration")]
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
fn default_otlp_endpoint() -> String {
    DEFAULT_OTLP_ENDPOINT.to_string()
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

/// Parses `"250ms"`, `"10s"`, `"2m"`, `"1h"` (integer or decimal amount) into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit (use ms, s, m or h)"))?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{text}`: {e}"))
}

/// Serde adapter for durations: a string with a unit or an integer number of milliseconds.
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

impl ExporterConfig {
    /// Zipkin exporter with defaults and the given URL (`OTEL_EXPORTER_ZIPKIN_ENDPOINT`).
    pub fn zipkin(endpoint: impl Into<String>) -> Self {
        ExporterConfig::Zipkin(ZipkinConfig {
            name: None,
            endpoint: endpoint.into(),
            timeout: DEFAULT_TIMEOUT,
            headers: BTreeMap::new(),
            retry: RetryConfig::default(),
        })
    }

    /// Jaeger Thrift/HTTP exporter with defaults and the given URL (seed key `Endpoint`
    /// with `Exporter: jaeger`).
    pub fn jaeger(endpoint: impl Into<String>) -> Self {
        ExporterConfig::Jaeger(JaegerConfig {
            name: None,
            endpoint: endpoint.into(),
            timeout: DEFAULT_TIMEOUT,
            headers: BTreeMap::new(),
            retry: RetryConfig::default(),
        })
    }

    /// OTLP exporter with defaults and a full traces URL, used as is
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    pub fn otlp(traces_endpoint: impl Into<String>) -> Self {
        ExporterConfig::Otlp(OtlpConfig {
            name: None,
            endpoint: traces_endpoint.into(),
            headers: BTreeMap::new(),
            compression: Compression::None,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryConfig::default(),
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

    /// Checks values serde cannot; the error names the key (relative to this exporter entry,
    /// e.g. `endpoint`, `retry.max_interval`) and the reason.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(name) = self.name_field() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "name: `{name}` must be non-empty and use only ASCII letters, digits, `_` and `-`"
                ));
            }
        }
        match self {
            ExporterConfig::Zipkin(c) => {
                validate_http("endpoint", &c.endpoint, c.timeout, &c.headers, &c.retry)
            }
            ExporterConfig::Jaeger(c) => {
                validate_http("endpoint", &c.endpoint, c.timeout, &c.headers, &c.retry)
            }
            ExporterConfig::Otlp(c) => {
                validate_http("endpoint", &c.endpoint, c.timeout, &c.headers, &c.retry)
            }
            ExporterConfig::Console(_) => Ok(()),
            ExporterConfig::File(c) => {
                if c.path.as_os_str().is_empty() {
                    return Err("path: must not be empty".into());
                }
                if c.max_bytes < 1024 {
                    return Err(format!(
                        "max_bytes: {} is too small (at least 1024 bytes)",
                        c.max_bytes
                    ));
                }
                if c.max_files > 100 {
                    return Err(format!("max_files: {} is more than 100", c.max_files));
                }
                Ok(())
            }
        }
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

fn validate_http(
    key: &str,
    endpoint: &str,
    timeout: Duration,
    headers: &BTreeMap<String, String>,
    retry: &RetryConfig,
) -> Result<(), String> {
    let uri: hyper::Uri = endpoint
        .parse()
        .map_err(|e| format!("{key}: `{endpoint}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{key}: `{endpoint}`: https is not supported (the shim has no TLS stack); \
                 use http, or a local TLS-originating proxy"
            ))
        }
        _ => return Err(format!("{key}: `{endpoint}` must start with http://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{key}: `{endpoint}` has no host"));
    }
    if timeout.is_zero() {
        return Err("timeout: must be greater than 0".into());
    }
    for (name, value) in headers {
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("headers.{name}: not a valid HTTP header name"));
        }
        if hyper::header::HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "headers.{name}: value is not a valid HTTP header value"
            ));
        }
    }
    if retry.initial_interval.is_zero() {
        return Err("retry.initial_interval: must be greater than 0".into());
    }
    if retry.max_interval < retry.initial_interval {
        return Err("retry.max_interval: must be at least retry.initial_interval".into());
    }
    if !(retry.multiplier.is_finite() && retry.multiplier >= 1.0) {
        return Err(format!(
            "retry.multiplier: {} must be >= 1",
            retry.multiplier
        ));
    }
    Ok(())
}
