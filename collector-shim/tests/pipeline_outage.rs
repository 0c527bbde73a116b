//! The whole pipeline with the real OTLP exporter against a real OTLP backend on loopback:
//! a backend outage then recovery loses nothing within queue capacity; a backend that stays
//! down keeps memory bounded (queue never above its size) and every span is accounted for.
mod pipeline_support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use collector_shim::config::Config;
use pipeline_support::*;

fn config(backend: SocketAddr, queue: usize, max_elapsed: &str) -> Config {
    let yaml = format!(
        "receiver: {{ http_listen: '127.0.0.1:0' }}\n\
         batch: {{ max_queue_size: {queue}, max_export_batch_size: 50, batch_timeout: 20ms }}\n\
         exporters:\n  - type: otlp\n    endpoint: 'http://{backend}/v1/traces'\n    timeout: 2s\n    \
         retry: {{ initial_interval: 20ms, max_interval: 100ms, max_elapsed_time: {max_elapsed} }}\n\
         shutdown_timeout: 10s\n"
    );
    load_config(&yaml)
}

async fn post(client: &reqwest::Client, addr: SocketAddr, tag: u32, n: u32) {
    let status = post_spans(client, addr, numbered_spans(tag * 1000, n, u64::from)).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_then_recovery_loses_nothing_within_queue_capacity() {
    let (backend, received) = otlp_backend::start().await;
    received.refuse_next.store(4, Ordering::SeqCst);
    let cfg = config(backend, 2048, "20s");
    let shim = Shim::start_configured(cfg).await;
    let addr = shim.addr;
    let client = reqwest::Client::new();
    for tag in 0..6 {
        post(&client, addr, tag, 50).await;
    }
    assert!(
        eventually(60, || received.count() == 300).await,
        "backend got {}",
        received.count()
    );
    assert_eq!(received.refused.load(Ordering::SeqCst), 4);
    // The backend counts a request before its answer reaches the exporter, and the batcher
    // counts the spans after that: read the metrics once the last export has been counted
    // (bounded: 50 reads 20 ms apart).
    let mut text = scrape(&client, addr).await;
    for _ in 0..50 {
        if metric_value(&text, "shim_spans_exported_total{exporter=\"otlp\"}") >= 300.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        text = scrape(&client, addr).await;
    }
    assert!(
        metric_value(&text, "shim_export_retries_total{exporter=\"otlp\"}") >= 4.0,
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "shim_spans_exported_total{exporter=\"otlp\"}"),
        300.0,
        "{text}"
    );
    // The series exists from the start (at 0) so alerts can be written on it; nothing dropped.
    assert!(
        text.contains("shim_spans_dropped_total{reason=\"export_failed\",exporter=\"otlp\"} 0"),
        "{text}"
    );
    let summary = shim.stop().await;
    assert!(summary.flushed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_stays_down_keeps_memory_bounded_and_every_span_counted() {
    let (backend, received) = otlp_backend::start().await;
    received.refuse_next.store(usize::MAX, Ordering::SeqCst);
    let cfg = config(backend, 100, "100ms");
    // The binary's wiring, keeping a handle on the metrics to read them after shutdown.
    let shim = Shim::start_configured(cfg).await;
    let (addr, m) = (shim.addr, shim.metrics.clone());
    let client = reqwest::Client::new();
    let mut max_queue = 0.0f64;
    for tag in 0..40 {
        post(&client, addr, tag, 50).await;
        let q = metric_value(
            &scrape(&client, addr).await,
            "shim_queue_length{exporter=\"otlp\"}",
        );
        max_queue = max_queue.max(q);
    }
    assert!(max_queue <= 100.0, "queue reached {max_queue}");
    let summary = shim.stop().await;
    assert!(summary.flushed);
    // After shutdown every one of the 2000 spans is accounted for: the backend is down, so each
    // was dropped because the queue was full or after the exporter gave up on its batch.
    assert_eq!(received.count(), 0);
    let text = m.encode();
    let full = metric_value(
        &text,
        "shim_spans_dropped_total{reason=\"queue_full\",exporter=\"otlp\"}",
    );
    let failed = metric_value(
        &text,
        "shim_spans_dropped_total{reason=\"export_failed\",exporter=\"otlp\"}",
    );
    assert!(full > 0.0 && failed > 0.0, "{text}");
    assert_eq!(full + failed, 2000.0, "{text}");
    assert!(
        metric_value(
            &text,
            "shim_export_errors_total{exporter=\"otlp\",kind=\"throttled\"}"
        ) > 0.0,
        "{text}"
    );
}
