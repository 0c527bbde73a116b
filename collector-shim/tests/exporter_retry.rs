//! The shared retry policy, on tokio's paused clock (no real sleeping).
use std::cell::Cell;
use std::time::Duration;

use collector_shim::exporter::retry::{retry, AttemptEvents};
use collector_shim::exporter::{ExportError, ExporterTelemetry, RetryConfig};
use tokio::time::Instant;

fn policy() -> RetryConfig {
    RetryConfig {
        enabled: true,
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(1),
        max_elapsed_time: Duration::from_secs(10),
        multiplier: 2.0,
    }
}

async fn run(
    policy: &RetryConfig,
    t: &ExporterTelemetry,
    script: &[Result<(), ExportError>],
) -> (Result<(), ExportError>, usize, Duration) {
    let calls = Cell::new(0usize);
    let start = Instant::now();
    let events = AttemptEvents::new("test", t);
    let res = retry(policy, &events, || {
        let n = calls.get();
        calls.set(n + 1);
        let out = script
            .get(n)
            .cloned()
            .unwrap_or_else(|| script.last().cloned().unwrap());
        async move { out }
    })
    .await;
    (res, calls.get(), start.elapsed())
}

fn retryable() -> Result<(), ExportError> {
    Err(ExportError::Retryable("connection refused".into()))
}

#[tokio::test(start_paused = true)]
async fn retries_retryable_errors_until_success() {
    let t = ExporterTelemetry::default();
    let (res, calls, elapsed) = run(
        &policy(),
        &t,
        &[retryable(), retryable(), retryable(), Ok(())],
    )
    .await;
    assert_eq!(res, Ok(()));
    assert_eq!(calls, 4);
    assert_eq!(t.retries.get(), 3);
    assert_eq!(t.failed_attempts.get(), 3);
    // Full jitter: each wait is at most its ceiling (100 + 200 + 400 ms).
    assert!(elapsed <= Duration::from_millis(700), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn honors_retry_after_exactly() {
    let t = ExporterTelemetry::default();
    let throttled = Err(ExportError::Throttled {
        retry_after: Some(Duration::from_secs(7)),
        message: "HTTP 429".into(),
    });
    let (res, calls, elapsed) = run(&policy(), &t, &[throttled, Ok(())]).await;
    assert_eq!(res, Ok(()));
    assert_eq!(calls, 2);
    assert!(
        elapsed >= Duration::from_secs(7) && elapsed < Duration::from_millis(7010),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_past_the_budget_gives_up_at_once() {
    let t = ExporterTelemetry::default();
    let throttled = Err(ExportError::Throttled {
        retry_after: Some(Duration::from_secs(60)),
        message: "HTTP 503".into(),
    });
    let (res, calls, elapsed) = run(&policy(), &t, &[throttled.clone(), Ok(())]).await;
    assert_eq!(res, throttled);
    assert_eq!(calls, 1);
    assert_eq!(elapsed, Duration::ZERO);
    assert_eq!(t.retries.get(), 0);
    assert_eq!(t.failed_attempts.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn non_retryable_is_not_retried() {
    let t = ExporterTelemetry::default();
    let bad = Err(ExportError::NonRetryable(
        "HTTP 400 Bad Request: invalid span".into(),
    ));
    let (res, calls, _) = run(&policy(), &t, &[bad.clone(), Ok(())]).await;
    assert_eq!(res, bad);
    assert_eq!(calls, 1);
    assert_eq!(t.retries.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn persistent_outage_stops_within_max_elapsed_time() {
    let t = ExporterTelemetry::default();
    let (res, calls, elapsed) = run(&policy(), &t, &[retryable()]).await;
    assert!(matches!(res, Err(ExportError::Retryable(_))));
    assert!(elapsed <= Duration::from_secs(10), "{elapsed:?}");
    // With waits of at most 1 s after the ramp-up, at least a few attempts happen and the
    // count stays bounded (random waits near 0 could make it large, but not unbounded: the
    // ramp is capped by the clock, and 10 s / E[wait]=0.5 s gives about 20).
    assert!((3..500).contains(&calls), "{calls} attempts");
    assert_eq!(t.retries.get() as usize, calls - 1);
}

#[tokio::test(start_paused = true)]
async fn disabled_policy_makes_one_attempt() {
    let t = ExporterTelemetry::default();
    let p = RetryConfig {
        enabled: false,
        ..policy()
    };
    let (res, calls, _) = run(&p, &t, &[retryable(), Ok(())]).await;
    assert!(res.is_err());
    assert_eq!(calls, 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_zero_still_backs_off() {
    let t = ExporterTelemetry::default();
    let zero = Err(ExportError::Throttled {
        retry_after: Some(Duration::ZERO),
        message: "HTTP 429".into(),
    });
    let (res, calls, elapsed) = run(&policy(), &t, &[zero]).await;
    assert!(res.is_err());
    // Without a backoff floor this would spin thousands of times within the budget.
    assert!(calls < 500, "{calls} attempts");
    assert!(elapsed <= Duration::from_secs(10));
}
