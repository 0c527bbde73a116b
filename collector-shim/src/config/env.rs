//! Standard `OTEL_*` environment variables, read through the small `Env` trait so tests pass
//! a map instead of touching the process environment.
use std::collections::HashMap;

use super::seed::check_entry;
use super::{duration, Config, ConfigError};
use crate::exporter::config::{otlp_var, OtlpProtocol};
use crate::exporter::ExporterConfig;

/// Where environment variables come from.
pub trait Env {
    /// The variable's value, `None` when unset.
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

/// A fixed map (tests, embedding).
#[derive(Clone, Debug, Default)]
pub struct MapEnv(pub HashMap<String, String>);

impl MapEnv {
    /// Build from pairs.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        MapEnv(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// Non-empty value of `key` (the OTel spec treats an empty variable as unset).
fn var(env: &dyn Env, key: &str) -> Option<String> {
    env.get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn parse_usize(env: &dyn Env, key: &str) -> Result<Option<usize>, ConfigError> {
    var(env, key)
        .map(|v| {
            v.parse::<usize>()
                .map_err(|_| ConfigError::new(key, format!("`{v}` is not a non-negative integer")))
        })
        .transpose()
}

fn positive(env: &dyn Env, key: &str) -> Result<Option<usize>, ConfigError> {
    match parse_usize(env, key)? {
        Some(0) => Err(ConfigError::new(key, "must be at least 1")),
        other => Ok(other),
    }
}

fn parse_ms(env: &dyn Env, key: &str) -> Result<Option<std::time::Duration>, ConfigError> {
    var(env, key)
        .map(|v| duration::parse(&v).map_err(|e| ConfigError::new(key, e)))
        .transpose()
}

/// Percent-decoding for `OTEL_RESOURCE_ATTRIBUTES` values (W3C Baggage octet rules).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Replaces the first exporter of the same kind as `new`, or adds `new` when there is none
/// (an env endpoint retargets the configured exporter rather than adding a second one).
fn set_exporter(exporters: &mut Vec<ExporterConfig>, new: ExporterConfig) {
    match exporters.iter_mut().find(|e| e.kind() == new.kind()) {
        Some(e) => match (e, new) {
            (ExporterConfig::Zipkin(c), ExporterConfig::Zipkin(n)) => c.endpoint = n.endpoint,
            (ExporterConfig::Otlp(c), ExporterConfig::Otlp(n)) => c.endpoint = n.endpoint,
            (e, n) => *e = n,
        },
        None => exporters.push(new),
    }
}

/// Applies the `OTEL_*` variables on top of `cfg`.
pub fn apply(cfg: &mut Config, env: &dyn Env) -> Result<(), ConfigError> {
    if let Some(v) = var(env, "OTEL_SERVICE_NAME") {
        cfg.service_name = v;
    }
    if let Some(v) = var(env, "OTEL_RESOURCE_ATTRIBUTES") {
        for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, val) = pair.split_once('=').ok_or_else(|| {
                ConfigError::new(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    format!("`{pair}` is not key=value"),
                )
            })?;
            let val = percent_decode(val.trim()).ok_or_else(|| {
                ConfigError::new(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    format!("bad percent-encoding in `{pair}`"),
                )
            })?;
            cfg.resource_attributes.insert(k.trim().to_string(), val);
        }
    }
    if let Some(sampler) = var(env, "OTEL_TRACES_SAMPLER") {
        let arg = var(env, "OTEL_TRACES_SAMPLER_ARG");
        let ratio = || -> Result<f64, ConfigError> {
            match &arg {
                // The spec's default argument for the ratio samplers is 1.0.
                None => Ok(1.0),
                Some(a) => a
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| {
                        ConfigError::new(
                            "OTEL_TRACES_SAMPLER_ARG",
                            format!("`{a}` is not a probability in [0, 1]"),
                        )
                    }),
            }
        };
        cfg.sampling.probability = match sampler.as_str() {
            "always_on" | "parentbased_always_on" => 1.0,
            "always_off" | "parentbased_always_off" => 0.0,
            "traceidratio" | "parentbased_traceidratio" => ratio()?,
            other => {
                return Err(ConfigError::new(
                    "OTEL_TRACES_SAMPLER",
                    format!("`{other}` is not supported (always_on, always_off, traceidratio, parentbased_*)"),
                ))
            }
        };
    }
    if let Some(list) = var(env, "OTEL_TRACES_EXPORTER") {
        for kind in list.split(',').map(str::trim) {
            match kind {
                // The spec: no automatically configured exporter (not even the console one).
                "none" => {
                    cfg.exporters.clear();
                    cfg.no_exporter = true;
                }
                "zipkin" | "otlp" | "console" | "jaeger" => {
                    if !cfg.exporters.iter().any(|e| e.kind() == kind) {
                        cfg.exporters.push(
                            ExporterConfig::with_defaults(kind)
                                .map_err(|r| ConfigError::new("OTEL_TRACES_EXPORTER", r))?,
                        );
                    }
                }
                other => {
                    return Err(ConfigError::new(
                        "OTEL_TRACES_EXPORTER",
                        format!(
                            "`{other}` is not an exporter (zipkin, jaeger, otlp, console, none)"
                        ),
                    ))
                }
            }
        }
    }
    if let Some(v) = var(env, "OTEL_EXPORTER_ZIPKIN_ENDPOINT") {
        let e = ExporterConfig::zipkin(v);
        check_entry(&e, "OTEL_EXPORTER_ZIPKIN_ENDPOINT")?;
        set_exporter(&mut cfg.exporters, e);
    }
    let get = |k: &str| env.get(k);
    let endpoint = match (
        var(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        var(env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(v), _) => Some(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v, false)),
        (None, Some(v)) => Some(("OTEL_EXPORTER_OTLP_ENDPOINT", v, true)),
        (None, None) => None,
    };
    if let Some((name, v, base)) = endpoint {
        // The protocol is the variable's, else the configured exporter's.
        let grpc = match otlp_var(&get, "PROTOCOL") {
            Some((name, p)) => {
                OtlpProtocol::parse(&p).map_err(|e| ConfigError::new(name, e))?
                    == OtlpProtocol::Grpc
            }
            None => cfg
                .exporters
                .iter()
                .any(|e| matches!(e, ExporterConfig::Otlp(c) if c.protocol == OtlpProtocol::Grpc)),
        };
        // The spec: over HTTP the signal path is appended to the generic endpoint; the
        // signal's own endpoint and any gRPC endpoint are taken as they are (a gRPC one may
        // omit the scheme: `OTEL_EXPORTER_OTLP_[TRACES_]INSECURE` chooses it).
        let mut e = match base && !grpc {
            true => ExporterConfig::otlp_from_base(&v),
            false => ExporterConfig::otlp(v),
        };
        if let ExporterConfig::Otlp(c) = &mut e {
            if grpc {
                c.protocol = OtlpProtocol::Grpc;
            }
        }
        check_entry(&e, name)?;
        set_exporter(&mut cfg.exporters, e);
    }
    for e in &mut cfg.exporters {
        e.apply_otel_env(&get)
            .map_err(|msg| match msg.split_once(": ") {
                Some((k, why)) => ConfigError::new(k, why),
                None => ConfigError::new("OTEL_EXPORTER_*", msg),
            })?;
    }
    if let Some(n) = positive(env, "OTEL_BSP_MAX_QUEUE_SIZE")? {
        cfg.batch.max_queue_size = n;
    }
    if let Some(n) = positive(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
        if n > cfg.batch.max_queue_size {
            return Err(ConfigError::new(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                format!(
                    "{n} exceeds the queue size {} (OTEL_BSP_MAX_QUEUE_SIZE or batch.max_queue_size)",
                    cfg.batch.max_queue_size
                ),
            ));
        }
        cfg.batch.max_export_batch_size = Some(n);
    }
    for (key, slot) in [
        ("OTEL_BSP_SCHEDULE_DELAY", &mut cfg.batch.batch_timeout),
        ("OTEL_BSP_EXPORT_TIMEOUT", &mut cfg.batch.export_timeout),
    ] {
        if let Some(d) = parse_ms(env, key)? {
            if d.is_zero() {
                return Err(ConfigError::new(key, "must be greater than 0"));
            }
            *slot = d;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn otel_variables_map_onto_the_tree() {
        let env = MapEnv::from_pairs(&[
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=prod, team=a%20b",
            ),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            (
                "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
                "http://127.0.0.1:9411/api/v2/spans",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "3000"),
        ]);
        let mut cfg = Config::default();
        apply(&mut cfg, &env).unwrap();
        assert_eq!(cfg.service_name, "checkout");
        assert_eq!(cfg.resource_attributes["team"], "a b");
        assert_eq!(
            cfg.resource_attributes["deployment.environment.name"],
            "prod"
        );
        assert_eq!(cfg.sampling.probability, 0.25);
        assert_eq!(cfg.exporters.len(), 2);
        assert_eq!(
            cfg.exporters[0],
            ExporterConfig::zipkin("http://127.0.0.1:9411/api/v2/spans")
        );
        assert_eq!(
            cfg.exporters[1],
            ExporterConfig::otlp("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(cfg.batch.max_queue_size, 100);
        assert_eq!(cfg.batch.max_export_batch_size, Some(10));
        assert_eq!(cfg.batch.batch_timeout, Duration::from_millis(250));
        assert_eq!(cfg.batch.export_timeout, Duration::from_secs(3));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (k, v) in [
            ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
            ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ] {
            let err = apply(&mut Config::default(), &MapEnv::from_pairs(&[(k, v)])).unwrap_err();
            assert_eq!(err.key, k, "{err}");
        }
        let err = apply(
            &mut Config::default(),
            &MapEnv::from_pairs(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.key, "OTEL_TRACES_SAMPLER_ARG");
    }
}
