//! Reading the config: file (YAML or TOML) -> `OTEL_*` env -> flags, then the seed's keys are
//! folded in, the embedded default exporter added, and every value checked.
use std::net::SocketAddr;
use std::path::Path;

use super::seed::fold_seed_keys;
use super::{env, Config, Env, PolicyConfig};
use crate::exporter::ExporterConfig;

/// An exporter of `kind` with every default, or why `kind` is not an exporter.
pub fn default_exporter(kind: &str) -> Result<ExporterConfig, String> {
    if kind == "file" {
        return Err("the file exporter needs a path; configure it in the file".into());
    }
    serde_json::from_value(serde_json::json!({ "type": kind }))
        .map_err(|_| format!("`{kind}` is not an exporter (zipkin, jaeger, otlp, console, file)"))
}

/// A config problem: which key, and why. Start-up stops on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The key (dotted path in the file, env var name, or `--flag`).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid config: `{}`: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Values given on the command line; they win over the file and the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`: OTLP/HTTP address.
    pub http_listen: Option<SocketAddr>,
    /// `--admin-listen`: address of /healthz, /readyz, /metrics.
    pub admin_listen: Option<SocketAddr>,
    /// `--grpc-listen`: OTLP/gRPC address.
    pub grpc_listen: Option<SocketAddr>,
    /// `--sample-ratio`: consistent sampling probability.
    pub probability: Option<f64>,
    /// `--exporter`: exporter types to add (with their defaults) when not configured.
    pub exporters: Vec<String>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--log-format`.
    pub log_format: Option<String>,
}

/// Parses a config text; `toml` selects TOML, otherwise YAML (which also reads JSON).
/// `${env:NAME}` references are expanded from the process environment.
pub fn parse_str(text: &str, toml: bool) -> Result<Config, ConfigError> {
    parse_str_env(text, toml, &super::ProcessEnv)
}

/// [`parse_str`] with `${env:NAME}` references expanded from `env` (string values only; see
/// `config::expand`). Syntax errors carry the line and column; other errors name the key.
pub fn parse_str_env(text: &str, toml: bool, env: &dyn Env) -> Result<Config, ConfigError> {
    if toml {
        let mut tree = toml::Value::Table(text.parse::<toml::Table>().map_err(|e| {
            let at = e
                .span()
                .map(|s| line_col(text, s.start))
                .map(|(l, c)| format!(" at line {l} column {c}"))
                .unwrap_or_default();
            ConfigError::new("<file>", format!("not valid TOML{at}: {}", e.message()))
        })?);
        super::expand::toml(&mut tree, env)?;
        serde_path_to_error::deserialize(tree)
            .map_err(|e| path_error(e.path().to_string(), e.inner().message()))
    } else {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let mut tree: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| ConfigError::new("<file>", format!("not valid YAML: {e}")))?;
        super::expand::yaml(&mut tree, env)?;
        serde_path_to_error::deserialize(tree)
            .map_err(|e| path_error(e.path().to_string(), &e.inner().to_string()))
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn path_error(path: String, msg: &str) -> ConfigError {
    // serde names an unknown key in its message; the path then points at its parent.
    let key = if path == "." || path.is_empty() {
        "<root>".to_string()
    } else {
        path
    };
    ConfigError::new(key, msg.to_string())
}

/// Reads `path` (if any), applies env and flags, and validates.
pub fn load(
    path: Option<&Path>,
    env_src: &dyn Env,
    flags: &Overrides,
) -> Result<Config, ConfigError> {
    let mut cfg = match path {
        None => Config::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                ConfigError::new("--config", format!("cannot read {}: {e}", p.display()))
            })?;
            let is_toml = p.extension().and_then(|e| e.to_str()) == Some("toml");
            parse_str_env(&text, is_toml, env_src)?
        }
    };
    fold_seed_keys(&mut cfg)?;
    env::apply(&mut cfg, env_src)?;
    apply_flags(&mut cfg, flags)?;
    finish(cfg)
}

/// Applies flags, adds the default exporter and validates (also used by embedders and tests).
pub fn finish(mut cfg: Config) -> Result<Config, ConfigError> {
    fold_seed_keys(&mut cfg)?;
    if cfg.exporters.is_empty() && !cfg.no_exporter {
        cfg.exporters.push(ExporterConfig::console());
    }
    // What runs is what `--check-config` and the logs show: default endpoints and paths filled in.
    for e in &mut cfg.exporters {
        *e = e.resolved();
    }
    validate(&cfg)?;
    Ok(cfg)
}

fn apply_flags(cfg: &mut Config, f: &Overrides) -> Result<(), ConfigError> {
    if let Some(a) = f.http_listen {
        cfg.receiver.http_listen = a;
    }
    if let Some(a) = f.admin_listen {
        cfg.receiver.admin_listen = Some(a);
    }
    if let Some(a) = f.grpc_listen {
        cfg.receiver.grpc_listen = Some(a);
    }
    if let Some(p) = f.probability {
        check(
            (0.0..=1.0).contains(&p),
            "--sample-ratio",
            "must be in [0, 1]",
        )?;
        cfg.sampling.probability = p;
    }
    for kind in &f.exporters {
        if !cfg.exporters.iter().any(|e| e.kind() == kind) {
            cfg.exporters
                .push(default_exporter(kind).map_err(|r| ConfigError::new("--exporter", r))?);
        }
    }
    if let Some(l) = &f.log_level {
        cfg.log.level = l.clone();
    }
    if let Some(l) = &f.log_format {
        cfg.log.format = l.clone();
    }
    Ok(())
}

/// Smallest `batch.storage.max_bytes`: a few segments of the smallest size.
pub const MIN_STORAGE_BYTES: u64 = 64 * 1024;

pub(crate) fn check(ok: bool, key: &str, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(key, reason))
    }
}

fn validate_policy(p: &PolicyConfig, key: &str, nested: bool) -> Result<(), ConfigError> {
    match p {
        PolicyConfig::Error { .. } => Ok(()),
        PolicyConfig::Latency { threshold, .. } => check(
            !threshold.is_zero(),
            &format!("{key}.threshold"),
            "must be greater than 0",
        ),
        PolicyConfig::Attribute { key: k, values, .. } => {
            check(!k.is_empty(), &format!("{key}.key"), "must not be empty")?;
            check(
                !values.is_empty(),
                &format!("{key}.values"),
                "needs at least one value",
            )
        }
        PolicyConfig::RateLimit {
            spans_per_second, ..
        } => check(
            spans_per_second.is_finite() && *spans_per_second > 0.0,
            &format!("{key}.spans_per_second"),
            "must be a number greater than 0",
        ),
        PolicyConfig::Composite {
            max_spans_per_second,
            policies,
            ..
        } => {
            check(!nested, key, "a composite cannot contain a composite")?;
            check(
                max_spans_per_second.is_finite() && *max_spans_per_second > 0.0,
                &format!("{key}.max_spans_per_second"),
                "must be a number greater than 0",
            )?;
            check(
                !policies.is_empty(),
                &format!("{key}.policies"),
                "needs at least one policy",
            )?;
            let mut sum = 0.0;
            for (i, sp) in policies.iter().enumerate() {
                let k = format!("{key}.policies[{i}]");
                check(
                    sp.share > 0.0 && sp.share <= 1.0,
                    &format!("{k}.share"),
                    "must be in (0, 1]",
                )?;
                sum += sp.share;
                validate_policy(&sp.policy, &format!("{k}.policy"), true)?;
            }
            check(
                sum <= 1.0 + 1e-9,
                &format!("{key}.policies"),
                "shares add up to more than 1",
            )
        }
    }
}

/// Every value checked, with the key named.
pub fn validate(cfg: &Config) -> Result<(), ConfigError> {
    let s = &cfg.sampling;
    check(
        (0.0..=1.0).contains(&s.probability),
        "sampling.probability",
        "must be in [0, 1]",
    )?;
    if let Some(d) = &s.dynamic {
        check(
            d.target_traces_per_second.is_finite() && d.target_traces_per_second > 0.0,
            "sampling.dynamic.target_traces_per_second",
            "must be greater than 0",
        )?;
        check(
            d.min_probability > 0.0 && d.min_probability <= 1.0,
            "sampling.dynamic.min_probability",
            "must be in (0, 1]",
        )?;
        check(
            d.max_probability >= d.min_probability && d.max_probability <= 1.0,
            "sampling.dynamic.max_probability",
            "must be in [min_probability, 1]",
        )?;
        check(
            d.error_boost.is_finite() && d.error_boost >= 0.0,
            "sampling.dynamic.error_boost",
            "must be 0 or more",
        )?;
        check(
            !d.adjust_interval.is_zero(),
            "sampling.dynamic.adjust_interval",
            "must be greater than 0",
        )?;
    }
    if let Some(t) = &s.tail {
        check(
            !t.decision_wait.is_zero(),
            "sampling.tail.decision_wait",
            "must be greater than 0",
        )?;
        check(
            t.num_traces > 0,
            "sampling.tail.num_traces",
            "must be at least 1",
        )?;
        check(
            t.max_spans > 0,
            "sampling.tail.max_spans",
            "must be at least 1",
        )?;
        for (i, p) in t.policies.iter().enumerate() {
            validate_policy(p, &format!("sampling.tail.policies[{i}]"), false)?;
        }
    }
    crate::red::config::validate(&cfg.red_metrics)?;
    let b = &cfg.batch;
    check(
        b.max_queue_size > 0,
        "batch.max_queue_size",
        "must be at least 1",
    )?;
    if let Some(n) = b.max_export_batch_size {
        check(n > 0, "batch.max_export_batch_size", "must be at least 1")?;
        check(
            n <= b.max_queue_size,
            "batch.max_export_batch_size",
            "must not exceed batch.max_queue_size",
        )?;
    }
    check(
        !b.batch_timeout.is_zero(),
        "batch.batch_timeout",
        "must be greater than 0",
    )?;
    check(
        !b.export_timeout.is_zero(),
        "batch.export_timeout",
        "must be greater than 0",
    )?;
    if let Some(st) = &b.storage {
        check(
            !st.directory.as_os_str().is_empty(),
            "batch.storage.directory",
            "must not be empty",
        )?;
        check(
            st.max_bytes >= MIN_STORAGE_BYTES,
            "batch.storage.max_bytes",
            "must be at least 65536 (64 KiB)",
        )?;
        check(
            !st.sync_interval.is_zero(),
            "batch.storage.sync_interval",
            "must be greater than 0",
        )?;
    }
    check(
        !cfg.shutdown_timeout.is_zero(),
        "shutdown_timeout",
        "must be greater than 0",
    )?;
    check(
        cfg.receiver.max_body_bytes > 0,
        "receiver.max_body_bytes",
        "must be at least 1",
    )?;
    check(
        cfg.receiver.max_pending_spans > 0,
        "receiver.max_pending_spans",
        "must be at least 1",
    )?;
    check(
        cfg.receiver.max_connections > 0,
        "receiver.max_connections",
        "must be at least 1",
    )?;
    check(
        !cfg.receiver.header_read_timeout.is_zero(),
        "receiver.header_read_timeout",
        "must be greater than 0",
    )?;
    check(
        !cfg.receiver.body_read_timeout.is_zero(),
        "receiver.body_read_timeout",
        "must be greater than 0",
    )?;
    check(
        cfg.receiver.grpc_max_concurrent_streams > 0,
        "receiver.grpc_max_concurrent_streams",
        "must be at least 1",
    )?;
    check(
        !cfg.receiver.grpc_keepalive_interval.is_zero(),
        "receiver.grpc_keepalive_interval",
        "must be greater than 0",
    )?;
    check(
        !cfg.receiver.grpc_keepalive_timeout.is_zero(),
        "receiver.grpc_keepalive_timeout",
        "must be greater than 0",
    )?;
    check(
        matches!(cfg.log.format.as_str(), "text" | "json"),
        "log.format",
        "must be `text` or `json`",
    )?;
    check(
        cfg.log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_ok(),
        "log.level",
        "is not a log filter (e.g. `info`, `collector_shim=debug`)",
    )?;
    for (i, e) in cfg.exporters.iter().enumerate() {
        e.validate().map_err(|msg| match msg.split_once(": ") {
            Some((k, why)) if !k.contains(' ') => {
                ConfigError::new(format!("exporters[{i}].{k}"), why)
            }
            _ => ConfigError::new(format!("exporters[{i}]"), msg),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;
    use std::time::Duration;

    fn load_text(text: &str, toml: bool) -> Result<Config, ConfigError> {
        let mut cfg = parse_str_env(text, toml, &MapEnv::default())?;
        fold_seed_keys(&mut cfg)?;
        env::apply(&mut cfg, &MapEnv::default())?;
        finish(cfg)
    }

    #[test]
    fn yaml_tree_with_tail_policies() {
        let cfg = load_text(
            r#"
service_name: edge
receiver: { http_listen: "127.0.0.1:14318", max_body_bytes: 1000 }
sampling:
  probability: 0.5
  tail:
    decision_wait: 2s
    policies:
      - { type: error }
      - { type: latency, threshold: 500ms }
      - { type: attribute, key: status_code, values: ["500-599"] }
      - type: composite
        max_spans_per_second: 100
        policies:
          - { share: 0.5, policy: { type: attribute, key: route, values: ["/checkout"] } }
          - { share: 0.5, policy: { type: rate_limit, spans_per_second: 50 } }
batch: { max_queue_size: 100, max_export_batch_size: 10, batch_timeout: 1s }
exporters: [ { type: console } ]
"#,
            false,
        )
        .unwrap();
        assert_eq!(cfg.service_name, "edge");
        assert_eq!(cfg.sampling.probability, 0.5);
        let tail = cfg.sampling.tail.unwrap();
        assert_eq!(tail.decision_wait, Duration::from_secs(2));
        assert_eq!(tail.policies.len(), 4);
        assert_eq!(cfg.batch.batch_timeout, Duration::from_secs(1));
    }

    #[test]
    fn toml_and_seed_keys() {
        let cfg = load_text(
            r#"
ServiceName = "legacy"
Endpoint = "http://127.0.0.1:14268/api/traces"
Exporter = "jaeger"
SampleRate = 0.1
Environment = "staging"
BatchTimeout = "2s"
MaxQueueSize = 4096
"#,
            true,
        )
        .unwrap();
        assert_eq!(cfg.service_name, "legacy");
        assert_eq!(cfg.sampling.probability, 0.1);
        assert_eq!(
            cfg.resource_attributes["deployment.environment.name"],
            "staging"
        );
        assert_eq!(cfg.batch.batch_timeout, Duration::from_secs(2));
        assert_eq!(cfg.batch.max_queue_size, 4096);
        assert_eq!(
            cfg.exporters,
            vec![ExporterConfig::jaeger("http://127.0.0.1:14268/api/traces")]
        );
    }

    #[test]
    fn default_exporter_is_console() {
        let cfg = load_text("", false).unwrap();
        assert_eq!(cfg.exporters, vec![ExporterConfig::console()]);
    }

    #[rustfmt::skip]
    const BAD: &[(&str, &str, &str)] = &[
        // (yaml, key named, why)
        ("sampling: { probabilty: 0.5 }",                      "sampling",                       "typo: unknown key"),
        ("sampling: { probability: 1.5 }",                     "sampling.probability",           "out of range"),
        ("batch: { max_queue_size: -1 }",                      "batch.max_queue_size",           "negative"),
        ("batch: { batch_timeout: soon }",                     "batch.batch_timeout",            "not a duration"),
        ("batch: { max_queue_size: 10, max_export_batch_size: 20 }", "batch.max_export_batch_size", "batch above queue"),
        ("receiver: { http_listen: 'nowhere' }",               "receiver.http_listen",           "not an address"),
        ("log: { format: xml }",                               "log.format",                     "unknown format"),
        ("sampling: { tail: { policies: [ { type: rate_limit, spans_per_second: 0 } ] } }",
                                                               "sampling.tail.policies[0].spans_per_second", "zero rate"),
        ("sampling: { tail: { policies: [ { type: sometimes } ] } }", "sampling.tail.policies[0]", "unknown policy"),
        ("exporters: [ { type: carrier_pigeon } ]",            "exporters[0]",                   "unknown exporter"),
        ("exporters: [ { type: zipkin, endpoint: 'ftp://x' } ]", "exporters[0].endpoint",   "bad endpoint"),
        ("shutdown_timeout: 0s",                               "shutdown_timeout",               "zero"),
        ("batch: { storage: { max_bytes: 1000 } }",            "batch.storage.max_bytes",        "budget too small"),
        ("batch: { storage: { directory: '' } }",              "batch.storage.directory",        "empty directory"),
        ("batch: { storage: { when_full: drop_random } }",     "batch.storage.when_full",        "unknown rule"),
        ("batch: { storage: { sync: sometimes } }",            "batch.storage.sync",             "unknown sync"),
        ("batch: { storage: { sync: interval, sync_interval: 0s } }", "batch.storage.sync_interval", "zero interval"),
        ("batch: { storage: { size: 10 } }",                   "batch.storage",                  "typo: unknown key"),
    ];

    #[test]
    fn bad_configs_name_the_key() {
        for (yaml, key, why) in BAD {
            let err = load_text(yaml, false).expect_err(why);
            assert!(
                err.key.starts_with(key),
                "{why}: expected key {key}, got {err}"
            );
        }
    }
}
