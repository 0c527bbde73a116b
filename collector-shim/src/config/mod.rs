//! Configuration: one tree read from a YAML or TOML file, then standard `OTEL_*` environment
//! variables, then command-line flags (each later source overrides the earlier ones).
//!
//! The doc comment on each field is its reference (unit, default, env var); `docs/shim.md`
//! repeats them. Unknown keys are refused (`deny_unknown_fields`) so a typo never passes silently.
//!
//! Layout: `duration` (the one duration syntax), `env` (OTEL_* mapping behind the `Env` trait),
//! `expand` (`${env:NAME}` references in values), `load` (file formats and the order of the
//! sources), `flags` (command-line values), `seed` (the seed's flat keys), `validate` (checks
//! across the tree), `error` (the key-naming error they all return). `env`, `flags` and `seed`
//! depend on `error` and `validate`, never on `load`, so the modules form no cycle.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::exporter::ExporterConfig;
use crate::red::RedConfig;

pub mod duration;
pub mod env;
pub mod error;
pub mod expand;
pub mod flags;
pub mod load;
mod seed;
pub mod validate;

pub use env::{Env, MapEnv, ProcessEnv};
pub use error::ConfigError;
pub use flags::Overrides;
pub use load::load;

/// The whole shim configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `service.name` given to incoming resources that have none. Env: `OTEL_SERVICE_NAME`.
    /// Default: "" (leave resources as received).
    pub service_name: String,
    /// Resource attributes added to incoming resources that lack the key.
    /// Env: `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`). Default: none.
    pub resource_attributes: BTreeMap<String, String>,
    /// Receivers (OTLP/HTTP listener, limits).
    pub receiver: ReceiverConfig,
    /// Sampling pipeline (consistent probability, tail policies, dynamic probability).
    pub sampling: SamplingConfig,
    /// Batching per exporter (queue size, batch size, timeouts).
    pub batch: BatchConfig,
    /// Exporters, each `{type: zipkin|jaeger|otlp|console|file, ...}`; several run at once,
    /// each with its own queue. Default: one `console` exporter when none is configured.
    pub exporters: Vec<ExporterConfig>,
    /// Time allowed at shutdown to take pending decisions and flush every queue. Default 10s.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// Logging.
    pub log: LogConfig,
    /// RED metrics from every span received, with exemplars of exported traces.
    pub red_metrics: RedConfig,

    // The seed's keys, accepted in the file for compatibility and folded into the tree above
    // by `load` (they never reach the pipeline as such).
    /// Seed key: same as `service_name`.
    #[serde(rename = "ServiceName")]
    pub seed_service_name: Option<String>,
    /// Seed key: endpoint of the exporter named by `Exporter`.
    #[serde(rename = "Endpoint")]
    pub seed_endpoint: Option<String>,
    /// Seed key: exporter type (`zipkin`, `jaeger`, `otlp`, `console`, `file`).
    #[serde(rename = "Exporter")]
    pub seed_exporter: Option<String>,
    /// Seed key: same as `sampling.probability`.
    #[serde(rename = "SampleRate")]
    pub seed_sample_rate: Option<f64>,
    /// Seed key: resource attribute `deployment.environment.name`.
    #[serde(rename = "Environment")]
    pub seed_environment: Option<String>,
    /// Seed key: same as `batch.batch_timeout`.
    #[serde(rename = "BatchTimeout", default, with = "duration::option")]
    pub seed_batch_timeout: Option<Duration>,
    /// Seed key: same as `batch.max_queue_size`.
    #[serde(rename = "MaxQueueSize")]
    pub seed_max_queue_size: Option<usize>,
    /// `OTEL_TRACES_EXPORTER=none`: run with no exporter at all (the console default is not
    /// added). Not a file key.
    #[serde(skip)]
    pub no_exporter: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service_name: String::new(),
            resource_attributes: BTreeMap::new(),
            receiver: ReceiverConfig::default(),
            sampling: SamplingConfig::default(),
            batch: BatchConfig::default(),
            exporters: Vec::new(),
            shutdown_timeout: Duration::from_secs(10),
            log: LogConfig::default(),
            red_metrics: RedConfig::default(),
            seed_service_name: None,
            seed_endpoint: None,
            seed_exporter: None,
            seed_sample_rate: None,
            seed_environment: None,
            seed_batch_timeout: None,
            seed_max_queue_size: None,
            no_exporter: false,
        }
    }
}

/// Receivers and their limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiverConfig {
    /// OTLP/HTTP listen address (also serves `/healthz`, `/readyz`, `/metrics` unless
    /// `admin_listen` is set). Default `127.0.0.1:4318`. Flag: `--listen`.
    pub http_listen: SocketAddr,
    /// Separate listener for `/healthz`, `/readyz`, `/metrics`. Default: none (same as OTLP).
    pub admin_listen: Option<SocketAddr>,
    /// OTLP/gRPC listen address (usually `127.0.0.1:4317`). Default: none (gRPC off).
    /// Flag: `--grpc-listen`.
    pub grpc_listen: Option<SocketAddr>,
    /// Largest request body accepted, in bytes, before and after gzip. Default 4194304 (4 MiB).
    pub max_body_bytes: usize,
    /// Spans accepted but not yet taken by the sampler; above it requests get 503. Default 65536.
    pub max_pending_spans: usize,
    /// OTLP/HTTP (and admin) connections served at once; beyond it new connections are closed
    /// at once and counted. Default 1024.
    pub max_connections: usize,
    /// Longest a connection may take to deliver a request head, counted from when the server
    /// waits for one: closes slow-header (slowloris) and idle keep-alive connections. Default 10s.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// Longest a request may take to deliver its body once its head is in (OTLP/HTTP and
    /// OTLP/gRPC): a client that stalls or trickles the body gets 408 (gRPC: `DEADLINE_EXCEEDED`)
    /// and the connection is closed. Default 30s.
    #[serde(with = "duration")]
    pub body_read_timeout: Duration,
    /// OTLP/gRPC calls in flight on one connection (HTTP/2 max concurrent streams). Default 32.
    pub grpc_max_concurrent_streams: u32,
    /// How often the OTLP/gRPC listener PINGs a connection to check its peer. Default 30s.
    #[serde(with = "duration")]
    pub grpc_keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed. Default 10s.
    #[serde(with = "duration")]
    pub grpc_keepalive_timeout: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 4318)),
            admin_listen: None,
            grpc_listen: None,
            max_body_bytes: 4 * 1024 * 1024,
            max_pending_spans: 65536,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            grpc_max_concurrent_streams: 32,
            grpc_keepalive_interval: Duration::from_secs(30),
            grpc_keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// The sampling pipeline.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Consistent probability applied to spans no tail policy kept (0..=1). Default 1.0.
    /// Env: `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` (`always_on`, `always_off`,
    /// `traceidratio`, `parentbased_*`).
    pub probability: f64,
    /// Dynamic probability (replaces `probability` while enabled).
    pub dynamic: Option<DynamicConfig>,
    /// Tail sampling: hold each trace for a decision window, keep it if a policy matches.
    pub tail: Option<TailConfig>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            probability: 1.0,
            dynamic: None,
            tail: None,
        }
    }
}

/// Dynamic probability: hold a target rate of kept traces, raised with the error share.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamicConfig {
    /// Traces per second to keep. Default 100.
    pub target_traces_per_second: f64,
    /// Lowest probability it may choose. Default 0.001.
    pub min_probability: f64,
    /// Highest probability it may choose. Default 1.0.
    pub max_probability: f64,
    /// How strongly the error share raises the probability: `p * (1 + boost * error_share)`.
    /// Default 10.
    pub error_boost: f64,
    /// How often the probability is recomputed. Default 1s.
    #[serde(with = "duration")]
    pub adjust_interval: Duration,
}

impl Default for DynamicConfig {
    fn default() -> Self {
        DynamicConfig {
            target_traces_per_second: 100.0,
            min_probability: 0.001,
            max_probability: 1.0,
            error_boost: 10.0,
            adjust_interval: Duration::from_secs(1),
        }
    }
}

/// Tail sampling settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailConfig {
    /// How long after its first span a trace waits for its decision. Default 5s.
    #[serde(with = "duration")]
    pub decision_wait: Duration,
    /// Most traces held at once; beyond it the oldest is decided early (counted). Default 10000.
    pub num_traces: usize,
    /// Most spans held at once; beyond it the oldest trace is decided early. Default 100000.
    pub max_spans: usize,
    /// Policies, evaluated in order; the first that keeps a trace decides.
    pub policies: Vec<PolicyConfig>,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            decision_wait: Duration::from_secs(5),
            num_traces: 10_000,
            max_spans: 100_000,
            policies: Vec::new(),
        }
    }
}

/// One tail policy.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// Keep a trace with any span whose status is ERROR.
    Error {
        /// Metric label; default the type.
        #[serde(default)]
        name: Option<String>,
    },
    /// Keep a trace whose duration (last end - first start) reaches `threshold`.
    Latency {
        /// Metric label; default the type.
        #[serde(default)]
        name: Option<String>,
        /// e.g. `500ms`.
        #[serde(with = "duration")]
        threshold: Duration,
    },
    /// Keep a trace with a span (or its resource) whose attribute `key` equals one of
    /// `values` (strings compared as text, ints by their decimal form, bools as true/false).
    /// Convenience keys: `route` = `http.route`, `status_code` = `http.response.status_code`,
    /// `service` = `service.name` (resource).
    Attribute {
        /// Metric label; default the type.
        #[serde(default)]
        name: Option<String>,
        /// Attribute key (or `route`, `status_code`, `service`).
        key: String,
        /// Accepted values; an int range `500-599` is allowed for integer attributes.
        values: Vec<String>,
    },
    /// Keep traces while the budget of `spans_per_second` lasts.
    RateLimit {
        /// Metric label; default the type.
        #[serde(default)]
        name: Option<String>,
        /// Span budget per second.
        spans_per_second: f64,
    },
    /// Sub-policies sharing `max_spans_per_second`: each keeps traces up to its `share` of it.
    Composite {
        /// Metric label; default the type.
        #[serde(default)]
        name: Option<String>,
        /// Total span budget per second.
        max_spans_per_second: f64,
        /// Sub-policies with their share (0..=1; shares sum to at most 1).
        policies: Vec<SharedPolicy>,
    },
}

/// A sub-policy of a composite with its share of the budget.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SharedPolicy {
    /// Fraction of the composite's budget this policy may use.
    pub share: f64,
    /// The policy.
    pub policy: PolicyConfig,
}

/// Batching per exporter (the OTel BatchSpanProcessor's knobs and defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Spans queued per exporter; beyond it spans are dropped and counted. Default 2048.
    /// Env: `OTEL_BSP_MAX_QUEUE_SIZE`.
    pub max_queue_size: usize,
    /// Longest a span waits for its batch to fill. Default 5s. Env: `OTEL_BSP_SCHEDULE_DELAY` (ms).
    #[serde(with = "duration")]
    pub batch_timeout: Duration,
    /// Most spans per export call. Default 512, or `max_queue_size` when that is smaller.
    /// Env: `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`. Read it with [`BatchConfig::batch_size`].
    pub max_export_batch_size: Option<usize>,
    /// Longest one export call (with its retries) may take. Default 30s.
    /// Env: `OTEL_BSP_EXPORT_TIMEOUT` (ms).
    #[serde(with = "duration")]
    pub export_timeout: Duration,
    /// Durable queue: each exporter's queue on disk (`crate::storage`). Default: none (the
    /// memory queue of `max_queue_size` spans).
    pub storage: Option<StorageConfig>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_queue_size: 2048,
            batch_timeout: Duration::from_secs(5),
            max_export_batch_size: None,
            export_timeout: Duration::from_secs(30),
            storage: None,
        }
    }
}

/// `batch.storage`: the durable queue, one directory per exporter under `directory`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory of the queues (created if missing; one subdirectory per exporter name).
    /// Default `/var/lib/aetherflow/shim-queue`.
    pub directory: std::path::PathBuf,
    /// Disk budget of each exporter's queue, in bytes. Default 268435456 (256 MiB).
    pub max_bytes: u64,
    /// What is dropped (and counted) when the budget is reached: `drop_newest` (the spans being
    /// written) or `drop_oldest` (the oldest stored spans). Default `drop_newest`.
    pub when_full: WhenFull,
    /// When written data is forced to disk: `always` (before the receiver answers) or
    /// `interval` (every `sync_interval`; a crash of the process loses nothing, a power loss
    /// up to one interval). Default `always`.
    pub sync: SyncMode,
    /// Time between syncs with `sync: interval`. Default 1s.
    #[serde(with = "duration")]
    pub sync_interval: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            directory: "/var/lib/aetherflow/shim-queue".into(),
            max_bytes: 256 * 1024 * 1024,
            when_full: WhenFull::DropNewest,
            sync: SyncMode::Always,
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// Which spans a full durable queue drops.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The spans being written (what is stored stays, as the memory queue does).
    DropNewest,
    /// The oldest stored spans, a segment at a time.
    DropOldest,
}

/// When the durable queue forces written data to disk.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// After every write, before the receiver answers.
    Always,
    /// Every `sync_interval`.
    Interval,
}

impl BatchConfig {
    /// Default of `max_export_batch_size` (the OTel BatchSpanProcessor's).
    pub const DEFAULT_BATCH_SIZE: usize = 512;

    /// Spans per export call: the configured size, else 512 bounded by the queue size (so a
    /// small `max_queue_size` alone never fails on a key the user did not write).
    pub fn batch_size(&self) -> usize {
        self.max_export_batch_size
            .unwrap_or(Self::DEFAULT_BATCH_SIZE.min(self.max_queue_size.max(1)))
    }
}

/// Logging.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `collector_shim=debug`. Default `info`.
    /// `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`. Default `text`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}
