//! A collector that is down for a moment (a restart) loses no span: the filter keeps a failed
//! export and sends it again after a backoff (`aetherflow_core::retry`, docs/filter.md#export).

use std::time::Duration;

use aetherflow_tests::http_client::ClientRequest;
use aetherflow_tests::shim::ShimMode;
use aetherflow_tests::stack::{StackBuilder, SPAN_WAIT};

/// Requests while the collector is down.
const REQUESTS: usize = 5;

aetherflow_tests::each_form! {
async fn an_export_refused_while_the_collector_restarts_is_sent_again(form) {
    let stack = StackBuilder::new().form(form).start().await;
    stack.shim.set_mode(ShimMode::Closed).await;
    let mut trace_ids = Vec::new();
    for _ in 0..REQUESTS {
        let ex = stack.ingress(ClientRequest::get("/api/orders/1")).await;
        assert_eq!(ex.response.status, 200);
        trace_ids.push(ex.upstream_traceparent().trace_id);
    }
    // At least one attempt failed: the spans were exported while nothing listened.
    let failed = stack
        .envoy
        .wait_filter_metric("aetherflow_export_failures", SPAN_WAIT, |v| v >= 1)
        .await;
    assert!(failed.is_ok(), "no export attempt failed: {failed:?}");
    // The collector is back (within the retries' ~6 s).
    stack.shim.set_mode(ShimMode::Ok).await;
    let got = stack
        .shim
        .wait_spans(REQUESTS, SPAN_WAIT, |s| trace_ids.contains(&s.trace_id()))
        .await;
    assert!(
        got.is_ok(),
        "spans exported while the collector was down were lost: {} of {REQUESTS} arrived; envoy log:\n{}",
        got.as_ref().map_or_else(Vec::len, Vec::len),
        stack.envoy.log_tail(20)
    );
    assert_eq!(
        stack.envoy.filter_metric_settled("aetherflow_spans_dropped_export_failed", Duration::from_millis(300)).await,
        0,
        "nothing counted as dropped"
    );
}
}
