//! Reading the config: file (YAML or TOML) -> `OTEL_*` env -> flags, then the seed's keys are
//! folded in, the embedded default exporter added, and every value checked.
use std::path::Path;

use super::flags::apply_flags;
use super::seed::fold_seed_keys;
use super::{env, Config, Env};
use crate::exporter::ExporterConfig;

pub use super::error::{check, ConfigError};
pub use super::flags::Overrides;
pub use super::validate::{validate, MIN_STORAGE_BYTES};

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
