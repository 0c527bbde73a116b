//! Per-exporter batching: batch size and timeout (paused time), failures and timeouts counted,
//! exports never concurrent, one stalled backend never stalls another, bounded queues under
//! overload, and the receiver's own load shedding.
mod pipeline_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use collector_shim::batcher;
use collector_shim::config::BatchConfig;
use collector_shim::metrics::Metrics;
use collector_shim::receiver::{Ingest, Refusal};
use pipeline_support::*;
use prost::Message;

fn batch_cfg(queue: usize, batch: usize, timeout_ms: u64) -> BatchConfig {
    BatchConfig {
        max_queue_size: queue,
        max_export_batch_size: Some(batch),
        batch_timeout: Duration::from_millis(timeout_ms),
        export_timeout: Duration::from_secs(30),
        storage: None,
    }
}

fn spans(n: u32) -> Vec<collector_shim::model::SpanRecord> {
    (0..n)
        .map(|i| record(span(&trace_id(i, 1), i as u64, 1)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn full_batches_go_at_once_and_the_rest_after_the_timeout() {
    let exp = RecordingExporter::new("rec");
    let m = Metrics::new();
    let (h, task) = batcher::spawn("rec", exp.clone(), &batch_cfg(100, 10, 5000), m.clone());
    for s in spans(25) {
        h.offer(s);
    }
    // Let the task run without moving the clock: two full batches, the partial one waits.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(exp.batch_sizes(), vec![10, 10]);
    tokio::time::sleep(Duration::from_millis(4900)).await;
    assert_eq!(exp.batch_sizes(), vec![10, 10]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(exp.batch_sizes(), vec![10, 10, 5]);
    drop(h);
    task.join.await.unwrap();
    assert!(exp.shut_down.load(Ordering::SeqCst));
    assert!(m
        .encode()
        .contains("shim_spans_exported_total{exporter=\"rec\"} 25"));
}

#[tokio::test(start_paused = true)]
async fn failures_and_timeouts_are_counted_and_exports_never_overlap() {
    let exp = RecordingExporter::new("rec");
    exp.fail.store(true, Ordering::SeqCst);
    let m = Metrics::new();
    let mut cfg = batch_cfg(100, 5, 10);
    cfg.export_timeout = Duration::from_millis(100);
    let (h, task) = batcher::spawn("rec", exp.clone(), &cfg, m.clone());
    for s in spans(10) {
        h.offer(s);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    exp.fail.store(false, Ordering::SeqCst);
    exp.stall.store(true, Ordering::SeqCst);
    for s in spans(5) {
        h.offer(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    exp.stall.store(false, Ordering::SeqCst);
    for s in spans(5) {
        h.offer(s);
    }
    drop(h);
    task.join.await.unwrap();
    let text = m.encode();
    assert!(
        text.contains("shim_export_errors_total{exporter=\"rec\",kind=\"retryable\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("shim_export_errors_total{exporter=\"rec\",kind=\"timeout\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("shim_spans_dropped_total{reason=\"export_failed\",exporter=\"rec\"} 15"),
        "{text}"
    );
    assert!(
        text.contains("shim_spans_exported_total{exporter=\"rec\"} 5"),
        "{text}"
    );
    assert_eq!(exp.max_concurrent.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stalled_backend_never_stalls_the_others_and_its_queue_stays_bounded() {
    let stuck = RecordingExporter::new("stuck");
    stuck.stall.store(true, Ordering::SeqCst);
    let healthy = RecordingExporter::new("healthy");
    let mut cfg = fast_config();
    cfg.batch = batch_cfg(50, 10, 20);
    let shim = Shim::start(cfg, vec![stuck.clone(), healthy.clone()]).await;
    let client = reqwest::Client::new();
    for r in 0..20u32 {
        let batch: Vec<_> = (0..25u32)
            .map(|i| span(&trace_id(r * 100 + i, 1), i as u64, 1))
            .collect();
        let resp = client
            .post(shim.url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(request("svc", batch).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert!(
        eventually(30, || healthy.span_count() == 500).await,
        "healthy got {}",
        healthy.span_count()
    );
    // The stalled exporter holds one batch in its export call and at most 50 in its queue;
    // everything else was dropped and counted.
    let queued = shim.metric("shim_queue_length{exporter=\"stuck\"}");
    assert!(queued <= 50.0, "{queued}");
    let dropped = shim.metric("shim_spans_dropped_total{reason=\"queue_full\",exporter=\"stuck\"}");
    assert!(dropped >= 500.0 - 60.0, "dropped {dropped}");
    assert_eq!(
        shim.metric("shim_spans_dropped_total{reason=\"queue_full\",exporter=\"healthy\"}"),
        0.0
    );
    // Release it so shutdown can flush what it holds.
    stuck.stall.store(false, Ordering::SeqCst);
    stuck.release.notify_waiters();
    let summary = shim.stop().await;
    assert!(summary.flushed);
    assert_eq!(stuck.span_count() as f64 + dropped, 500.0);
}

#[test]
fn ingest_sheds_load_beyond_its_span_budget() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (ingest, mut rx) = Ingest::new(10, Metrics::new());
        assert_eq!(ingest.try_submit(spans(6)), Ok(()));
        assert_eq!(ingest.try_submit(spans(6)), Err(Refusal::Full));
        assert_eq!(ingest.try_submit(spans(11)), Err(Refusal::TooMany));
        assert_eq!(ingest.pending(), 6);
        // The sampler taking the batch frees its budget.
        drop(rx.recv().await);
        assert_eq!(ingest.try_submit(spans(10)), Ok(()));
        ingest.close();
        assert_eq!(ingest.try_submit(spans(1)), Err(Refusal::Closed));
    });
}

#[tokio::test]
async fn a_request_larger_than_the_span_budget_is_refused() {
    let exp = RecordingExporter::new("rec");
    let mut cfg = fast_config();
    cfg.receiver.max_pending_spans = 8;
    let shim = Shim::start(cfg, vec![exp.clone() as Arc<RecordingExporter>]).await;
    let client = reqwest::Client::new();
    let too_big: Vec<_> = (0..9u32)
        .map(|i| span(&trace_id(i, 1), i as u64, 1))
        .collect();
    let resp = client
        .post(shim.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request("svc", too_big).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        shim.metric("shim_requests_refused_total{reason=\"too_many_spans\"}"),
        1.0
    );
    shim.stop().await;
}
