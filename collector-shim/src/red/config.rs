//! The `red_metrics` section: what the RED stage counts by, its histogram buckets and its bounds.
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::config::duration;
use crate::config::error::check;
use crate::config::ConfigError;

/// Most buckets a histogram may have (each series carries one count and one exemplar per bucket).
pub const MAX_BUCKETS: usize = 64;
/// Most extra dimensions (each multiplies the possible series).
pub const MAX_DIMENSIONS: usize = 16;

/// RED metrics (rate, errors, duration) counted from every span received, before sampling.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedConfig {
    /// Count every span into `shim_red_*` series. Default true.
    pub enabled: bool,
    /// Upper bounds of the duration histogram's buckets, increasing. Default: the OpenTelemetry
    /// HTTP semantic conventions' advice for `http.server.request.duration` (5ms .. 10s).
    #[serde(deserialize_with = "durations")]
    pub duration_buckets: Vec<Duration>,
    /// Span or resource attributes added as labels (dots become underscores); the allow-list:
    /// no other attribute ever becomes a label. Default: none.
    pub dimensions: Vec<String>,
    /// Most series at once; spans of a new series beyond it count into the overflow series
    /// (`otel_metric_overflow="true"`). Default 1000.
    pub max_series: usize,
    /// A series that counted no span for this long is removed. Default 5m.
    #[serde(with = "duration")]
    pub series_idle_timeout: Duration,
    /// Attach exemplars (trace_id, span_id) of exported spans to the histogram buckets and the
    /// error counter. Default true.
    pub exemplars: bool,
}

/// The semantic conventions' advice for HTTP request durations, in seconds.
const DEFAULT_BUCKETS_S: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

impl Default for RedConfig {
    fn default() -> Self {
        RedConfig {
            enabled: true,
            duration_buckets: DEFAULT_BUCKETS_S
                .iter()
                .map(|s| Duration::from_secs_f64(*s))
                .collect(),
            dimensions: Vec::new(),
            max_series: 1000,
            series_idle_timeout: Duration::from_secs(300),
            exemplars: true,
        }
    }
}

fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    #[derive(Deserialize)]
    struct One(#[serde(with = "duration")] Duration);
    Ok(Vec::<One>::deserialize(d)?
        .into_iter()
        .map(|o| o.0)
        .collect())
}

/// The label an attribute key becomes: Prometheus label names are `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Labels every series has; an extra dimension may not take one of these names.
pub const FIXED_LABELS: [&str; 5] = [
    "service_name",
    "span_name",
    "span_kind",
    "status_code",
    "otel_metric_overflow",
];

/// Every value checked, the key named.
pub fn validate(r: &RedConfig) -> Result<(), ConfigError> {
    let b = &r.duration_buckets;
    check(
        !b.is_empty() && b.len() <= MAX_BUCKETS,
        "red_metrics.duration_buckets",
        "must list 1 to 64 bucket bounds",
    )?;
    check(
        b.windows(2).all(|w| w[0] < w[1]) && !b[0].is_zero(),
        "red_metrics.duration_buckets",
        "bounds must be greater than 0 and strictly increasing",
    )?;
    check(
        r.max_series > 0,
        "red_metrics.max_series",
        "must be at least 1",
    )?;
    check(
        !r.series_idle_timeout.is_zero(),
        "red_metrics.series_idle_timeout",
        "must be greater than 0",
    )?;
    check(
        r.dimensions.len() <= MAX_DIMENSIONS,
        "red_metrics.dimensions",
        "at most 16 dimensions",
    )?;
    let mut seen = Vec::new();
    for (i, d) in r.dimensions.iter().enumerate() {
        let key = format!("red_metrics.dimensions[{i}]");
        check(!d.trim().is_empty(), &key, "must not be empty")?;
        let label = label_name(d);
        check(
            !FIXED_LABELS.contains(&label.as_str()) && !label.starts_with("__"),
            &key,
            "its label name is taken by a fixed label or reserved",
        )?;
        check(
            !seen.contains(&label),
            &key,
            "two dimensions give the same label name",
        )?;
        seen.push(label);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_labels_are_prometheus_names() {
        assert!(validate(&RedConfig::default()).is_ok());
        assert_eq!(label_name("http.request.method"), "http_request_method");
        assert_eq!(label_name("k8s.pod-name"), "k8s_pod_name");
        assert_eq!(label_name("1x"), "_1x");
    }

    #[test]
    fn errors_name_the_key() {
        let bad = |f: fn(&mut RedConfig)| {
            let mut c = RedConfig::default();
            f(&mut c);
            validate(&c).unwrap_err().to_string()
        };
        assert!(bad(|c| c.duration_buckets.clear()).contains("red_metrics.duration_buckets"));
        assert!(bad(|c| c.duration_buckets.reverse()).contains("strictly increasing"));
        assert!(bad(|c| c.max_series = 0).contains("red_metrics.max_series"));
        assert!(bad(|c| c.series_idle_timeout = Duration::ZERO)
            .contains("red_metrics.series_idle_timeout"));
        assert!(bad(|c| c.dimensions = vec!["service.name".into()])
            .contains("red_metrics.dimensions[0]"));
        assert!(bad(|c| c.dimensions = vec!["a.b".into(), "a_b".into()])
            .contains("red_metrics.dimensions[1]"));
    }
}
