//! Shutdown: readiness drops, pending tail decisions are taken at once, every queue is
//! flushed, nothing accepted is lost while the backend is up; a stuck backend is cut off at
//! `shutdown_timeout` with the loss counted. The binary itself is covered in `shim_binary.rs`.
mod pipeline_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use collector_shim::config::{PolicyConfig, TailConfig};
use pipeline_support::*;

async fn send(shim: &Shim, n: u32, tag: u32) {
    let spans = numbered_spans(tag * 10_000, n, u64::from);
    assert_eq!(
        post_spans(&reqwest::Client::new(), shim.addr, spans).await,
        200
    );
}

#[tokio::test]
async fn pending_decisions_and_queues_are_flushed_at_shutdown() {
    let exp = RecordingExporter::new("rec");
    let mut cfg = fast_config();
    // Nothing would leave on its own for a minute: only shutdown can flush it.
    cfg.batch.batch_timeout = Duration::from_secs(60);
    cfg.batch.max_export_batch_size = Some(100);
    cfg.sampling.tail = Some(TailConfig {
        decision_wait: Duration::from_secs(60),
        policies: vec![PolicyConfig::Error { name: None }],
        ..Default::default()
    });
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    for tag in 0..5 {
        send(&shim, 50, tag).await;
    }
    assert!(eventually(30, || shim.metric("shim_tail_spans_held") == 250.0).await);
    assert_eq!(exp.span_count(), 0);
    let summary = shim.stop().await;
    assert!(summary.flushed);
    assert_eq!(summary.lost_at_shutdown, 0);
    assert_eq!(exp.span_count(), 250);
    assert!(exp.batch_sizes().iter().all(|n| *n <= 100));
    assert!(exp.shut_down.load(Ordering::SeqCst));
}

#[tokio::test]
async fn readiness_goes_false_and_a_stuck_backend_is_cut_off_and_counted() {
    let exp = RecordingExporter::new("stuck");
    exp.stall.store(true, Ordering::SeqCst);
    let mut cfg = fast_config();
    cfg.shutdown_timeout = Duration::from_secs(3);
    cfg.batch.max_export_batch_size = Some(10);
    cfg.receiver.admin_listen = Some(([127, 0, 0, 1], 0).into());
    let mut shim = Shim::start(cfg, vec![exp.clone()]).await;
    let ready_url = format!("http://{}/readyz", shim.admin.unwrap());
    let client = reqwest::Client::new();
    assert_eq!(client.get(&ready_url).send().await.unwrap().status(), 200);
    send(&shim, 30, 1).await;
    assert!(eventually(30, || exp.calls.load(Ordering::SeqCst) >= 1).await);
    let metrics = shim.metrics.clone();
    let addr = shim.addr;
    // While the queue drains (it cannot: the backend is stuck), readiness is false.
    shim.trigger_stop();
    let mut saw_unready = false;
    for _ in 0..100 {
        match client.get(&ready_url).send().await {
            Ok(r) if r.status() == 503 => {
                saw_unready = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(saw_unready, "/readyz never answered 503 during shutdown");
    let summary = shim.stop().await;
    assert!(!summary.flushed);
    assert_eq!(summary.lost_at_shutdown, 30);
    assert!(metrics
        .encode()
        .contains("shim_spans_dropped_total{reason=\"shutdown_timeout\",exporter=\"stuck\"} 30"));
    // The receiver is gone.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
