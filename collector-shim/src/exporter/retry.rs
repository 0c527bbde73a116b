//! The one retry policy of the HTTP exporters: exponential backoff with full jitter, bounded
//! by a maximum elapsed time, honoring the backend's `Retry-After`.
//!
//! Classification happens in `exporter::http` (status codes and connection errors into
//! [`ExportError`]); this module only decides whether and when to try again.
use std::future::Future;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::time::Instant;

use prometheus_client::metrics::counter::Counter;

use crate::event::FaultEvent;
use crate::exporter::config::RetryConfig;
use crate::exporter::{ExportError, ExporterTelemetry};

/// What a retry loop reports: each failed attempt (counted in `failed_attempts` and logged at a
/// bounded rate, with what happens next) and each retry.
#[derive(Debug)]
pub struct AttemptEvents {
    /// A failed attempt.
    failed: FaultEvent,
    /// Attempts after the first one.
    retries: Counter,
}

impl AttemptEvents {
    /// The events of `exporter`, counted on its telemetry.
    pub fn new(exporter: &str, telemetry: &ExporterTelemetry) -> Self {
        AttemptEvents {
            failed: FaultEvent::new(
                "export attempt failed",
                exporter,
                telemetry.failed_attempts.clone(),
            ),
            retries: telemetry.retries.clone(),
        }
    }
}

/// Runs `attempt` until it succeeds (returning its value), fails for good, or the policy's time budget is spent.
///
/// Waits before attempt n+1 a uniformly random time in `[0, b]` where `b` starts at
/// `initial_interval` and is multiplied by `multiplier` up to `max_interval` ("full jitter",
/// which spreads the retries of many shims hitting one recovering backend). A throttling answer
/// with `Retry-After` waits that long instead (or the jittered backoff, when longer). When the next wait would end past
/// `max_elapsed_time` the last error is returned at once rather than sleeping in vain.
pub async fn retry<T, F, Fut>(
    policy: &RetryConfig,
    events: &AttemptEvents,
    mut attempt: F,
) -> Result<T, ExportError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ExportError>>,
{
    let started = Instant::now();
    let mut ceiling = policy.initial_interval;
    loop {
        let err = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let wait = match &err {
            ExportError::NonRetryable(_) => {
                events
                    .failed
                    .report_with(1, format_args!("{err}; not retried"));
                return Err(err);
            }
            // At least what the backend asked for, and never a tight loop on `Retry-After: 0`.
            ExportError::Throttled {
                retry_after: Some(after),
                ..
            } => (*after).max(full_jitter(ceiling)),
            ExportError::Throttled {
                retry_after: None, ..
            }
            | ExportError::Retryable(_) => full_jitter(ceiling),
        };
        if !policy.enabled || started.elapsed() + wait > policy.max_elapsed_time {
            let why = match policy.enabled {
                true => "retry time budget spent",
                false => "retry disabled",
            };
            events.failed.report_with(1, format_args!("{err}; {why}"));
            return Err(err);
        }
        events.failed.report_with(
            1,
            format_args!("{err}; retrying in {} ms", wait.as_millis()),
        );
        tokio::time::sleep(wait).await;
        events.retries.inc();
        ceiling = next_ceiling(ceiling, policy);
    }
}

fn full_jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

fn next_ceiling(current: Duration, policy: &RetryConfig) -> Duration {
    current.mul_f64(policy.multiplier).min(policy.max_interval)
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
/// A date in the past means "now"; anything unparsable is ignored (`None`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Tue, 24 Nov 2026 06:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 06:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 05:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn ceiling_grows_to_the_cap() {
        let p = RetryConfig::default();
        let mut c = p.initial_interval;
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(c.as_millis());
            c = next_ceiling(c, &p);
        }
        assert_eq!(seen, [500, 1000, 2000, 4000, 5000, 5000]);
    }
}
