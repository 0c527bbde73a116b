//! Exporter configuration: one entry of the shim's `exporters:` list.
//!
//! The doc comments here are the reference for users; every field says its unit and default.
//! Durations use the one syntax of the whole config (`crate::config::duration`): a string with a
//! unit (`"250us"`, `"500ms"`, `"10s"`, `"2m"`) or a plain number of milliseconds.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use crate::exporter::console::config::ConsoleConfig;
pub use crate::exporter::file::config::{FileConfig, DEFAULT_FILE_MAX_BYTES};
pub use crate::exporter::jaeger::config::JaegerConfig;
pub use crate::exporter::otlp::config::{
    Compression, OtlpConfig, OtlpProtocol, DEFAULT_OTLP_ENDPOINT, DEFAULT_OTLP_GRPC_ENDPOINT,
    OTLP_PATH,
};
pub use crate::exporter::tls::TlsConfig;
pub use crate::exporter::zipkin::config::ZipkinConfig;
pub(crate) use post::impl_http_target;
pub use post::{HttpTarget, PostBackend, PostConfig};

mod check;
mod env;
mod post;
pub use env::{otlp_var, parse_otel_headers};

/// Default request timeout per attempt (`OTEL_EXPORTER_*_TIMEOUT` default: 10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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
        ExporterConfig::Zipkin(ZipkinConfig::with_endpoint(endpoint))
    }

    /// Jaeger Thrift/HTTP exporter with defaults and the given URL (seed key `Endpoint`
    /// with `Exporter: jaeger`).
    pub fn jaeger(endpoint: impl Into<String>) -> Self {
        ExporterConfig::Jaeger(JaegerConfig::with_endpoint(endpoint))
    }

    /// OTLP/HTTP exporter with defaults and a full traces URL, used as is
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    pub fn otlp(traces_endpoint: impl Into<String>) -> Self {
        ExporterConfig::Otlp(OtlpConfig::with_endpoint(traces_endpoint))
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
        ExporterConfig::File(FileConfig::with_path(path))
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
