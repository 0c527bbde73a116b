//! The seed's flat keys (`ServiceName`, `Endpoint`, `Exporter`, `SampleRate`, `Environment`,
//! `BatchTimeout`, `MaxQueueSize`), folded into the config tree. Each value is checked here, so
//! an error names the key the user wrote rather than the tree key it maps to.
use super::error::{check, ConfigError};
use super::Config;
use crate::exporter::ExporterConfig;

/// The seed's flat keys, mapped onto the tree (they lose to the tree's own keys? no: the file
/// uses one style or the other; when both are present the seed key, being explicit, wins).
pub(crate) fn fold_seed_keys(cfg: &mut Config) -> Result<(), ConfigError> {
    if let Some(v) = cfg.seed_service_name.take() {
        cfg.service_name = v;
    }
    // Each seed value is checked here, so an error names the key the user wrote.
    if let Some(v) = cfg.seed_sample_rate.take() {
        check((0.0..=1.0).contains(&v), "SampleRate", "must be in [0, 1]")?;
        cfg.sampling.probability = v;
    }
    if let Some(v) = cfg.seed_environment.take() {
        cfg.resource_attributes
            .insert("deployment.environment.name".into(), v);
    }
    if let Some(v) = cfg.seed_batch_timeout.take() {
        check(!v.is_zero(), "BatchTimeout", "must be greater than 0")?;
        cfg.batch.batch_timeout = v;
    }
    if let Some(v) = cfg.seed_max_queue_size.take() {
        check(v > 0, "MaxQueueSize", "must be at least 1")?;
        cfg.batch.max_queue_size = v;
    }
    let kind = cfg.seed_exporter.take();
    let endpoint = cfg.seed_endpoint.take();
    if kind.is_some() || endpoint.is_some() {
        // The seed had one exporter (default jaeger, its `Endpoint` the collector URL).
        let kind = kind.unwrap_or_else(|| "jaeger".into()).to_ascii_lowercase();
        let e = match (kind.as_str(), endpoint) {
            ("zipkin", Some(ep)) => ExporterConfig::zipkin(ep),
            ("jaeger", Some(ep)) => ExporterConfig::jaeger(ep),
            ("otlp", Some(ep)) => ExporterConfig::otlp(ep),
            ("file", Some(ep)) => ExporterConfig::file(ep),
            (_, _) => {
                ExporterConfig::with_defaults(&kind).map_err(|r| ConfigError::new("Exporter", r))?
            }
        };
        check_entry(&e, "Endpoint")?;
        cfg.exporters.push(e);
    }
    Ok(())
}

/// Validates an exporter entry made from one value the user wrote (a seed key, an env var),
/// naming that key in the error rather than the entry's internal field.
pub(crate) fn check_entry(e: &ExporterConfig, key: &str) -> Result<(), ConfigError> {
    e.validate().map_err(|msg| {
        let why = msg
            .strip_prefix("endpoint: ")
            .or_else(|| msg.strip_prefix("path: "))
            .unwrap_or(&msg);
        ConfigError::new(key, why)
    })
}
