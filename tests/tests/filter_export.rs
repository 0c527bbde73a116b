//! The hand-off to the shim under failure: unreachable, slow and erroring shims change nothing for
//! traffic and are counted; a full buffer drops and counts.

use std::time::{Duration, Instant};

use aetherflow_tests::http_client::{self, ClientRequest};
use aetherflow_tests::shim::ShimMode;
use aetherflow_tests::stack::{StackBuilder, REQUEST_TIMEOUT};
use serde_json::json;

/// Sends `n` requests; all must succeed quickly whatever the shim does.
async fn traffic_unharmed(addr: std::net::SocketAddr, n: usize, what: &str) {
    for i in 0..n {
        let started = Instant::now();
        let resp = http_client::send(addr, &ClientRequest::get("/t"), REQUEST_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{what}: request {i}: {e}"));
        assert_eq!(resp.status, 200, "{what}: request {i}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: request {i} took {:?}",
            started.elapsed()
        );
    }
}

aetherflow_tests::each_form! {
async fn shim_unreachable_slow_or_failing_never_harms_traffic(form) {
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert("collector_timeout_ms".into(), json!(300));
        })
        .start()
        .await;
    let ingress = stack.envoy.ingress();
    let metric = |name: &'static str| {
        stack
            .envoy
            .filter_metric_settled(name, Duration::from_millis(500))
    };
    let wait = Duration::from_secs(15);

    // Unreachable: connection refused.
    stack.shim.set_mode(ShimMode::Closed).await;
    traffic_unharmed(ingress, 10, "shim closed").await;
    let failures = stack
        .envoy
        .wait_filter_metric("aetherflow_export_failures", wait, |v| v >= 1)
        .await;
    assert!(
        failures.is_ok(),
        "closed shim: aetherflow_export_failures {failures:?}"
    );
    let dropped = stack
        .envoy
        .wait_filter_metric("aetherflow_spans_dropped_export_failed", wait, |v| v >= 1)
        .await;
    assert!(
        dropped.is_ok(),
        "closed shim: aetherflow_spans_dropped_export_failed {dropped:?}"
    );

    // Many dropped spans, few log lines: runtime faults are logged at a bounded rate.
    traffic_unharmed(ingress, 100, "shim closed, burst").await;
    let dropped = stack
        .envoy
        .wait_filter_metric("aetherflow_spans_dropped_export_failed", wait, |v| v >= 110)
        .await;
    assert!(
        dropped.is_ok(),
        "closed shim, burst: every span counted as dropped: {dropped:?}"
    );
    let log = stack.envoy.log();
    // Warnings and errors from the filter (its start-up info lines do not count).
    let filter_lines = log
        .lines()
        .filter(|l| {
            l.contains(form.log_marker()) && (l.contains("][warning][") || l.contains("][error]["))
        })
        .count();
    assert!(
        filter_lines <= 5,
        "{filter_lines} filter log lines for 110 dropped spans: not rate-bounded"
    );

    // 500.
    stack.shim.set_mode(ShimMode::Status(500)).await;
    let before = metric("aetherflow_export_failures").await;
    let dropped_before = metric("aetherflow_spans_dropped_export_failed").await;
    let posts_before = stack.shim.request_count();
    traffic_unharmed(ingress, 10, "shim 500").await;
    let failures = stack
        .envoy
        .wait_filter_metric("aetherflow_export_failures", wait, |v| v > before)
        .await;
    assert!(
        failures.is_ok(),
        "500 shim: aetherflow_export_failures {failures:?}"
    );
    let dropped = stack
        .envoy
        .wait_filter_metric("aetherflow_spans_dropped_export_failed", wait, |v| {
            v > dropped_before
        })
        .await;
    assert!(
        dropped.is_ok(),
        "500: spans of failed batches are counted as dropped"
    );
    assert!(
        stack.shim.request_count() > posts_before,
        "the filter did reach the shim"
    );

    // Slow: answers long after the filter's collector timeout (and after the 5 s request bound).
    stack
        .shim
        .set_mode(ShimMode::Slow(Duration::from_secs(8)))
        .await;
    let before = metric("aetherflow_export_failures").await;
    traffic_unharmed(ingress, 10, "slow shim").await;
    let failures = stack
        .envoy
        .wait_filter_metric("aetherflow_export_failures", wait, |v| v > before)
        .await;
    assert!(
        failures.is_ok(),
        "slow shim: timeouts count as failures {failures:?}"
    );

    // Recovery: spans flow again once the shim is healthy.
    stack.shim.set_mode(ShimMode::Ok).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // let slow in-flight calls finish
    let ex = stack.ingress(ClientRequest::get("/after")).await;
    stack.span_of(&ex).await;
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
async fn full_buffer_drops_and_counts(form) {
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert("max_buffered_spans".into(), json!(8));
            c.insert("max_batch_spans".into(), json!(4));
            c.insert("max_inflight_dispatches".into(), json!(1));
            c.insert("collector_timeout_ms".into(), json!(20_000));
        })
        .start()
        .await;
    // The one allowed dispatch hangs: the buffer fills behind it.
    stack
        .shim
        .set_mode(ShimMode::Slow(Duration::from_secs(20)))
        .await;
    traffic_unharmed(stack.envoy.ingress(), 40, "buffer full").await;
    let dropped = stack
        .envoy
        .wait_filter_metric(
            "aetherflow_spans_dropped_buffer_full",
            Duration::from_secs(10),
            |v| v >= 1,
        )
        .await;
    assert!(
        dropped.is_ok(),
        "aetherflow_spans_dropped_buffer_full {dropped:?}"
    );
    let buffered = stack
        .envoy
        .filter_metric_settled("aetherflow_buffered_spans", Duration::from_millis(500))
        .await;
    assert!(
        buffered <= 8,
        "aetherflow_buffered_spans {buffered} above max_buffered_spans"
    );
    let started = stack
        .envoy
        .wait_filter_metric("aetherflow_spans_started", Duration::from_secs(10), |v| {
            v >= 40
        })
        .await
        .unwrap_or_else(|v| v);
    assert!(started >= 40, "spans_started {started}");
    // The filter dispatches from its root context (on a tick), so the first, hanging export may
    // start after the burst; then no second one may start while it is in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.shim.request_count() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    traffic_unharmed(stack.envoy.ingress(), 10, "buffer full, export in flight").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        stack.shim.request_count(),
        1,
        "max_inflight_dispatches 1: one hanging export, no second one"
    );
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
async fn batches_respect_max_batch_spans_and_the_otlp_shape(form) {
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert("max_batch_spans".into(), json!(4));
            // Long enough that only full batches trigger a flush during the test.
            c.insert("flush_interval_ms".into(), json!(60_000));
        })
        .start()
        .await;
    traffic_unharmed(stack.envoy.ingress(), 12, "batching").await;
    let spans = stack
        .shim
        .wait_spans(12, Duration::from_secs(15), |_| true)
        .await;
    assert!(
        spans.is_ok(),
        "12 spans in 3 full batches expected, got {:?}",
        spans.map(|s| s.len())
    );
    let exports = stack.shim.exports();
    assert_eq!(exports.len(), 3, "{exports:?}");
    for e in &exports {
        assert_eq!(e.content_type, "application/x-protobuf");
        assert_eq!(e.resource_spans, 1, "one ResourceSpans per flush: {e:?}");
        assert_eq!(e.scope_spans, vec![1], "one ScopeSpans: {e:?}");
        assert_eq!(e.spans, 4, "batch of max_batch_spans: {e:?}");
    }
    let exported = stack
        .envoy
        .wait_filter_metric("aetherflow_spans_exported", Duration::from_secs(5), |v| {
            v == 12
        })
        .await;
    assert_eq!(exported, Ok(12), "spans_exported counts acknowledged spans");
    assert_eq!(
        stack
            .envoy
            .filter_metric_settled("aetherflow_export_requests", Duration::from_millis(500))
            .await,
        3
    );
    assert_eq!(
        stack
            .envoy
            .filter_metric_settled("aetherflow_export_failures", Duration::from_millis(500))
            .await,
        0
    );
    assert_eq!(
        stack
            .envoy
            .filter_metric_settled("aetherflow_buffered_spans", Duration::from_millis(500))
            .await,
        0
    );
}
}

aetherflow_tests::each_form! {
async fn unknown_collector_cluster_is_counted_not_fatal(form) {
    // A typo in collector_cluster cannot be seen at configure time; at run time every export
    // fails, is counted, and traffic is untouched.
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert("collector_cluster".into(), json!("no_such_cluster"));
        })
        .start()
        .await;
    traffic_unharmed(stack.envoy.ingress(), 10, "unknown cluster").await;
    let failures = stack
        .envoy
        .wait_filter_metric("aetherflow_export_failures", Duration::from_secs(15), |v| {
            v >= 1
        })
        .await;
    assert!(failures.is_ok(), "aetherflow_export_failures {failures:?}");
    let dropped = stack
        .envoy
        .wait_filter_metric(
            "aetherflow_spans_dropped_export_failed",
            Duration::from_secs(15),
            |v| v >= 10,
        )
        .await;
    assert!(
        dropped.is_ok(),
        "aetherflow_spans_dropped_export_failed {dropped:?}"
    );
    assert_eq!(stack.shim.request_count(), 0);
    stack.envoy.assert_no_filter_failures().await;
}
}
