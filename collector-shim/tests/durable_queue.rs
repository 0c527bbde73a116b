//! The durable queue (`batch.storage`) in the whole pipeline, with the real OTLP exporter
//! against a real OTLP backend on loopback: an outage far longer than the memory queue and the
//! exporter's retries hold loses nothing; a full disk budget drops by its rule, counted, and
//! every span is accounted for.
mod pipeline_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aetherflow_harness::prometheus::Samples;
use collector_shim::config::Config;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use pipeline_support::*;

fn config(backend: SocketAddr, dir: &Path, storage: &str) -> Config {
    let yaml = format!(
        "receiver: {{ http_listen: '127.0.0.1:0' }}\n\
         batch: {{ max_queue_size: 100, max_export_batch_size: 50, batch_timeout: 20ms, \
         storage: {{ directory: '{}', {storage} }} }}\n\
         exporters:\n  - type: otlp\n    endpoint: 'http://{backend}/v1/traces'\n    timeout: 2s\n    \
         retry: {{ initial_interval: 20ms, max_interval: 50ms, max_elapsed_time: 100ms }}\n\
         shutdown_timeout: 5s\n",
        dir.display()
    );
    load_config(&yaml)
}

/// Distinct span ids the backend received (each test span's id is its number + 1).
fn unique(received: &otlp_backend::Received) -> HashSet<u64> {
    received
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| u64::from_be_bytes(s.span_id.clone().try_into().unwrap()) - 1)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_memory_holds_loses_nothing() {
    let (backend, received) = otlp_backend::start().await;
    received.refuse_next.store(usize::MAX, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    // The memory queue holds 100 spans and the exporter gives up after 100 ms: without the
    // durable queue, almost all of the 2000 spans below would be dropped.
    let shim = Shim::start_configured(config(backend, dir.path(), "max_bytes: 67108864")).await;
    let client = reqwest::Client::new();
    for tag in 0..40 {
        assert_eq!(post_numbered(&client, shim.addr, tag).await, 200);
    }
    // The outage lasts several of the exporter's retry deadlines.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = shim.metrics.encode();
    assert_eq!(
        metric_value(&text, "shim_spans_exported_total{exporter=\"otlp\"}"),
        0.0
    );
    assert!(
        metric_value(&text, "shim_storage_records{exporter=\"otlp\"}") >= 39.0,
        "{text}"
    );
    assert!(
        metric_value(&text, "shim_storage_bytes{exporter=\"otlp\"}") > 0.0,
        "{text}"
    );
    assert!(
        metric_value(
            &text,
            "shim_export_errors_total{exporter=\"otlp\",kind=\"throttled\"}"
        ) > 0.0,
        "{text}"
    );
    received.refuse_next.store(0, Ordering::SeqCst);
    assert!(
        eventually(30, || unique(&received).len() == 2000).await,
        "backend got {} distinct spans",
        unique(&received).len()
    );
    let text = shim.metrics.encode();
    let dropped = Samples::parse(&text).total("shim_spans_dropped_total");
    assert_eq!(dropped, 0.0, "{text}");
    let summary = shim.stop().await;
    assert!(summary.flushed);
    // Everything exported: the queue's segments are gone.
    let left = std::fs::read_dir(dir.path().join("otlp"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert!(left <= 1, "{left} segments left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_budget_drops_by_its_rule_and_counts_every_span() {
    for rule in ["drop_newest", "drop_oldest"] {
        let (backend, received) = otlp_backend::start().await;
        received.refuse_next.store(usize::MAX, Ordering::SeqCst);
        let dir = tempfile::tempdir().unwrap();
        let shim = Shim::start_configured(config(
            backend,
            dir.path(),
            &format!("max_bytes: 65536, when_full: {rule}"),
        ))
        .await;
        let client = reqwest::Client::new();
        for tag in 0..60 {
            // Beyond the budget spans are dropped and counted, not refused.
            assert_eq!(post_numbered(&client, shim.addr, tag).await, 200, "{rule}");
            let bytes = metric_value(
                &shim.metrics.encode(),
                "shim_storage_bytes{exporter=\"otlp\"}",
            );
            assert!(bytes <= 65536.0, "{rule}: {bytes} bytes on disk");
        }
        let dropped_series = "shim_spans_dropped_total{reason=\"storage_full\",exporter=\"otlp\"}";
        let dropped = metric_value(&shim.metrics.encode(), dropped_series);
        assert!(dropped >= 1000.0, "{rule}: dropped {dropped}");
        // An export attempt that began before the last drop ends (failing) before the backend
        // returns; later attempts first check that their records are still stored.
        tokio::time::sleep(Duration::from_millis(500)).await;
        received.refuse_next.store(0, Ordering::SeqCst);
        let expected = 3000 - dropped as usize;
        assert!(
            eventually(30, || unique(&received).len() >= expected).await,
            "{rule}: backend got {} distinct spans, expected {expected}",
            unique(&received).len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got = unique(&received);
        // Every span was delivered or counted as dropped, never both.
        assert_eq!(got.len(), expected, "{rule}");
        let newest = 59 * 1000;
        match rule {
            "drop_newest" => assert!(got.contains(&0) && !got.contains(&newest), "{rule}"),
            _ => assert!(!got.contains(&0) && got.contains(&newest), "{rule}"),
        }
        assert!(shim.stop().await.flushed, "{rule}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_is_answered_503_and_sampled_out_spans_are_not_stored() {
    let (backend, received) = otlp_backend::start().await;
    received.refuse_next.store(usize::MAX, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(backend, dir.path(), "max_bytes: 1048576");
    cfg.receiver.grpc_listen = Some(([127, 0, 0, 1], 0).into());
    let shim = Shim::start_configured(cfg).await;
    let (addr, grpc, metrics) = (
        shim.addr,
        shim.grpc.expect("gRPC receiver"),
        shim.metrics.clone(),
    );
    let client = reqwest::Client::new();
    // The exporter's directory vanishes before its first segment is created: the write fails,
    // so neither transport may answer success.
    assert!(eventually(10, || dir.path().join("otlp/cursor").exists()).await);
    std::fs::remove_dir_all(dir.path().join("otlp")).unwrap();
    assert_eq!(post_numbered(&client, addr, 1).await, 503);
    let mut grpc_client = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let spans = (0..5)
        .map(|i| span(&trace_id(2000 + i, 1), u64::from(i), 1))
        .collect();
    let err = grpc_client.export(request("svc", spans)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    let text = metrics.encode();
    assert_eq!(
        metric_value(&text, "shim_requests_refused_total{reason=\"not_durable\"}"),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "shim_spans_dropped_total{reason=\"storage_error\",exporter=\"otlp\"}"
        ),
        55.0,
        "{text}"
    );
    // Back: the next request is stored.
    std::fs::create_dir_all(dir.path().join("otlp")).unwrap();
    assert_eq!(post_numbered(&client, addr, 3).await, 200);
    assert_eq!(
        metric_value(&metrics.encode(), "shim_storage_records{exporter=\"otlp\"}"),
        1.0
    );
    let _ = shim.shutdown().await;

    // Spans the sampler drops are answered at once and never written.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(backend, dir.path(), "max_bytes: 1048576");
    cfg.sampling.probability = 0.0;
    let shim = Shim::start_configured(cfg).await;
    assert_eq!(post_numbered(&client, shim.addr, 4).await, 200);
    let text = shim.metrics.encode();
    assert_eq!(
        metric_value(&text, "shim_storage_records{exporter=\"otlp\"}"),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "shim_storage_bytes{exporter=\"otlp\"}"),
        0.0,
        "{text}"
    );
    let _ = shim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_read_back_from_disk_never_exceed_the_batch_size() {
    let exp = RecordingExporter::new("rec");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = fast_config();
    cfg.batch.max_queue_size = 100;
    cfg.batch.max_export_batch_size = Some(50);
    cfg.batch.storage = Some(collector_shim::config::StorageConfig {
        directory: dir.path().to_path_buf(),
        ..Default::default()
    });
    let shim = Shim::start(cfg, vec![exp.clone()]).await;
    let client = reqwest::Client::new();
    // Requests of 30 spans (one record each) and one of 120 (three records of 50, 50, 20).
    for tag in 0..10u32 {
        let spans = numbered_spans(tag * 1000, 30, u64::from);
        assert_eq!(post_spans(&client, shim.addr, spans).await, 200);
    }
    let spans = numbered_spans(99_000, 120, u64::from);
    assert_eq!(post_spans(&client, shim.addr, spans).await, 200);
    assert!(
        eventually(30, || exp.span_count() == 420).await,
        "{:?}",
        exp.batch_sizes()
    );
    assert!(
        exp.batch_sizes().iter().all(|&n| n <= 50),
        "{:?}",
        exp.batch_sizes()
    );
    assert_eq!(exp.max_concurrent.load(Ordering::SeqCst), 1);
    shim.stop().await;
    assert!(exp.shut_down.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_backend_down_does_not_hold_back_another_and_tail_decisions_are_stored() {
    let (down, down_rx) = otlp_backend::start().await;
    let (up, up_rx) = otlp_backend::start().await;
    down_rx.refuse_next.store(usize::MAX, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "receiver: {{ http_listen: '127.0.0.1:0' }}\n\
         sampling: {{ tail: {{ decision_wait: 200ms, policies: [ {{ type: latency, threshold: 1ms }} ] }} }}\n\
         batch: {{ max_export_batch_size: 50, batch_timeout: 20ms, storage: {{ directory: '{}' }} }}\n\
         exporters:\n\
         \x20 - {{ type: otlp, name: down, endpoint: 'http://{down}/v1/traces', retry: {{ max_elapsed_time: 100ms }} }}\n\
         \x20 - {{ type: otlp, name: up, endpoint: 'http://{up}/v1/traces' }}\n",
        dir.path().display()
    );
    let cfg = load_config(&yaml);
    let shim = Shim::start_configured(cfg).await;
    let client = reqwest::Client::new();
    for tag in 0..10 {
        assert_eq!(post_numbered(&client, shim.addr, tag).await, 200);
    }
    // Held for the tail decision, then written to both queues; the healthy backend gets all.
    assert!(
        eventually(30, || unique(&up_rx).len() == 500).await,
        "{}",
        unique(&up_rx).len()
    );
    assert_eq!(down_rx.count(), 0);
    let text = shim.metrics.encode();
    assert_eq!(
        metric_value(&text, "shim_queue_length{exporter=\"down\"}"),
        500.0,
        "{text}"
    );
    down_rx.refuse_next.store(0, Ordering::SeqCst);
    assert!(eventually(30, || unique(&down_rx).len() == 500).await);
    assert!(shim.stop().await.flushed);
}

/// Not a check: the figures behind "Cost" in docs/shim.md. Eight clients send 4000 requests of
/// 50 spans to a backend that takes everything; prints requests/s and the p50/p99 answer time
/// for the memory queue and the durable queue with each sync policy.
/// `cargo test -p collector-shim --release --test durable_queue -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn cost_of_the_durable_queue() {
    for storage in [None, Some("sync: always"), Some("sync: interval")] {
        let (backend, received) = otlp_backend::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(backend, dir.path(), storage.unwrap_or("sync: always"));
        if storage.is_none() {
            cfg.batch.storage = None;
            cfg.batch.max_queue_size = 1_000_000;
        }
        let shim = Shim::start_configured(cfg).await;
        let started = std::time::Instant::now();
        let mut clients = Vec::new();
        for c in 0..8u32 {
            let addr = shim.addr;
            clients.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut times = Vec::new();
                for tag in (c * 500)..(c * 500 + 500) {
                    let t = std::time::Instant::now();
                    assert_eq!(post_numbered(&client, addr, tag).await, 200);
                    times.push(t.elapsed());
                }
                times
            }));
        }
        let mut times = Vec::new();
        for c in clients {
            times.extend(c.await.unwrap());
        }
        let answered = started.elapsed();
        assert!(eventually(120, || received.count() >= 200_000).await);
        let delivered = started.elapsed();
        times.sort();
        println!(
            "{:<16} {:>7.0} requests/s answered, all delivered after {:>6.2} s, answer p50 {:>7.2} ms p99 {:>7.2} ms",
            storage.unwrap_or("memory queue"),
            4000.0 / answered.as_secs_f64(),
            delivered.as_secs_f64(),
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() * 99 / 100].as_secs_f64() * 1e3,
        );
        let _ = shim.shutdown().await;
    }
}
