//! The checks of a whole config that serde cannot make, each error naming the key.
use super::error::{check, ConfigError};
use super::{Config, PolicyConfig};

/// Smallest `batch.storage.max_bytes`: a few segments of the smallest size.
pub const MIN_STORAGE_BYTES: u64 = 64 * 1024;

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
    if let Err(why) = log_filter(&cfg.log.level) {
        return Err(ConfigError::new("log.level", why));
    }
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

/// The log filter `text` describes (`info`, `collector_shim=debug,warn`), or why it is not one.
///
/// Only levels and `target=level` directives are accepted, in ASCII: tracing-subscriber's
/// directive parser panics on a multi-byte character (it slices the text at byte offsets), and a
/// field filter (`[span{field=value}]`) compiles its value as a regular expression, which a
/// hostile pattern makes take tens of seconds; both were found by the `shim_config_toml` fuzz
/// target. The shim's own logs need neither.
pub fn log_filter(text: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_:=,.- ".contains(c);
    if let Some(c) = text.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "`{c}` is not allowed: write a level (`info`) or `target=level` directives separated \
             by commas (`info,collector_shim=debug`); span and field filters are not supported"
        ));
    }
    text.parse::<tracing_subscriber::EnvFilter>()
        .map_err(|e| format!("is not a log filter (e.g. `info`, `collector_shim=debug`): {e}"))
}
