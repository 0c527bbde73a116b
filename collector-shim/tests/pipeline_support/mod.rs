//! Fixtures for the pipeline tests: span and request builders, a recording exporter that can
//! fail or stall on demand, and an in-process shim on 127.0.0.1:0.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector_shim::app::build_exporters;
use collector_shim::config::Config;
use collector_shim::exporter::{ExportError, Exporter};
use collector_shim::metrics::Metrics;
use collector_shim::model::SpanRecord;
use collector_shim::{run_with, Listeners, Summary};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

pub mod otlp_backend;
pub mod shim_process;
pub mod traffic;

#[allow(unused_imports)]
pub use traffic::*;

/// 2026-11-24T06:00:00Z in nanoseconds.
pub const T0: u64 = 1_795_500_000_000_000_000;

pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A trace id whose low 56 bits (the sampling randomness) are `r`, with `tag` in the high bytes
/// so many traces can share a randomness.
pub fn trace_id(tag: u32, r: u64) -> Vec<u8> {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&tag.to_be_bytes());
    id[8..].copy_from_slice(&(r & 0x00ff_ffff_ffff_ffff).to_be_bytes());
    id[4] = 1; // never all zero
    id.to_vec()
}

/// A plain server span of `dur_ms` in trace `tid`.
pub fn span(tid: &[u8], n: u64, dur_ms: u64) -> Span {
    Span {
        trace_id: tid.to_vec(),
        span_id: (n + 1).to_be_bytes().to_vec(),
        name: format!("GET /item/{n}"),
        kind: 2,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + dur_ms * 1_000_000,
        ..Default::default()
    }
}

pub fn with_error(mut s: Span) -> Span {
    s.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "boom".into(),
    });
    s
}

pub fn with_attr(mut s: Span, key: &str, v: Value) -> Span {
    s.attributes.push(kv(key, v));
    s
}

/// Marks a span as the filter's record-only kind (recorded, not sampled).
pub fn record_only(mut s: Span) -> Span {
    s.flags = 0x100;
    s.attributes.push(kv(
        "aetherflow.sampling.record_only",
        Value::BoolValue(true),
    ));
    s
}

pub fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![kv("service.name", Value::StringValue(service.into()))],
        ..Default::default()
    }
}

/// One request with all `spans` under one resource and scope.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(service)),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "pipeline-test".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn record(s: Span) -> SpanRecord {
    SpanRecord {
        resource: Arc::new(resource("svc")),
        scope: Arc::new(InstrumentationScope::default()),
        span: s,
    }
}

/// An exporter that records every batch; it can be told to fail, or to stall until released.
#[derive(Default)]
pub struct RecordingExporter {
    /// Name reported to the pipeline.
    pub name: String,
    /// Batches received, in order.
    pub batches: Mutex<Vec<Vec<SpanRecord>>>,
    /// When set, `export` fails with a retryable error.
    pub fail: AtomicBool,
    /// When set, `export` waits for `release` before returning.
    pub stall: AtomicBool,
    /// Wakes stalled exports.
    pub release: Notify,
    /// Export calls so far (including failed ones).
    pub calls: AtomicUsize,
    /// Export calls in progress at once (must never exceed 1).
    pub concurrent: AtomicUsize,
    /// Highest `concurrent` seen.
    pub max_concurrent: AtomicUsize,
    /// Whether `shutdown` was called.
    pub shut_down: AtomicBool,
}

impl RecordingExporter {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(RecordingExporter {
            name: name.into(),
            ..Default::default()
        })
    }

    /// Every span exported so far.
    pub fn spans(&self) -> Vec<Span> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|r| r.span.clone())
            .collect()
    }

    pub fn span_count(&self) -> usize {
        self.batches.lock().unwrap().iter().map(Vec::len).sum()
    }

    pub fn batch_sizes(&self) -> Vec<usize> {
        self.batches.lock().unwrap().iter().map(Vec::len).collect()
    }
}

#[async_trait::async_trait]
impl Exporter for RecordingExporter {
    fn name(&self) -> &str {
        &self.name
    }

    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent.fetch_max(now, Ordering::SeqCst);
        // Decrements even when the pipeline cancels the call (export timeout).
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _leave = Leave(&self.concurrent);
        if self.stall.load(Ordering::SeqCst) {
            self.release.notified().await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(ExportError::Retryable("backend down (test)".into()));
        }
        self.batches.lock().unwrap().push(batch.to_vec());
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ExportError> {
        self.shut_down.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// A shim running in this process.
pub struct Shim {
    /// OTLP/HTTP (and admin) address.
    pub addr: SocketAddr,
    /// Separate admin address, when the config asked for one.
    pub admin: Option<SocketAddr>,
    /// OTLP/gRPC address, when the config asked for one.
    pub grpc: Option<SocketAddr>,
    /// Its metrics registry.
    pub metrics: Metrics,
    /// Resolves the shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The `run_with` task.
    task: Option<JoinHandle<Result<Summary, String>>>,
}

impl Shim {
    /// Starts `run_with(cfg)` on 127.0.0.1:0 with `exporters`.
    pub async fn start(cfg: Config, exporters: Vec<Arc<RecordingExporter>>) -> Shim {
        let exps: Vec<(String, Arc<dyn Exporter>)> = exporters
            .into_iter()
            .map(|e| (e.name.clone(), e as Arc<dyn Exporter>))
            .collect();
        Self::start_with(cfg, exps, Metrics::new()).await
    }

    /// POSTs one OTLP/HTTP protobuf request with one span (trace `tag`) of `service`; the status.
    pub async fn export_one(&self, service: &str, tag: u32) -> reqwest::StatusCode {
        use prost::Message;
        let t = trace_id(tag, 1);
        let body = request(service, vec![span(&t, 1, 1)]).encode_to_vec();
        reqwest::Client::new()
            .post(self.url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .expect("export request")
            .status()
    }

    /// Starts `run_with(cfg)` on 127.0.0.1:0 with the exporters `cfg` configures (the binary's
    /// wiring, keeping a handle on the metrics).
    pub async fn start_configured(cfg: Config) -> Shim {
        let metrics = Metrics::new();
        let exporters = build_exporters(&cfg, &metrics).expect("exporters build");
        Self::start_with(cfg, exporters, metrics).await
    }

    async fn start_with(
        mut cfg: Config,
        exps: Vec<(String, Arc<dyn Exporter>)>,
        metrics: Metrics,
    ) -> Shim {
        cfg.receiver.http_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        if cfg.receiver.admin_listen.is_some() {
            cfg.receiver.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        if cfg.receiver.grpc_listen.is_some() {
            cfg.receiver.grpc_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        let listeners = Listeners::bind(&cfg).await.expect("bind 127.0.0.1:0");
        let grpc = listeners.grpc.as_ref().and_then(|l| l.local_addr().ok());
        let addr = listeners.http_addr();
        let admin = listeners.admin.as_ref().and_then(|l| l.local_addr().ok());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run_with(
            cfg,
            listeners,
            exps,
            metrics.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Shim {
            addr,
            admin,
            grpc,
            metrics,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Resolves the shutdown future without waiting.
    pub fn trigger_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Triggers shutdown and waits (bounded, 60 s) for `run_with` to return.
    pub async fn stop(self) -> Summary {
        self.shutdown().await.expect("run result")
    }

    /// Triggers shutdown and waits (bounded, 60 s) for `run_with`: what it returned.
    pub async fn shutdown(mut self) -> Result<Summary, String> {
        self.trigger_stop();
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("shutdown within 60 s")
            .expect("run task")
    }

    /// The value of one exposition line on /metrics (0 when absent).
    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics.encode(), series)
    }
}

/// Finds `series value` in a Prometheus text exposition (0 when absent).
#[allow(unused_imports)]
pub use aetherflow_harness::prometheus::value as metric_value;

/// Polls `cond` every 20 ms for up to `secs` seconds.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 50 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// A config that exports quickly (tests should not wait 5 s for a batch).
pub fn fast_config() -> Config {
    let mut cfg = Config::default();
    cfg.batch.batch_timeout = Duration::from_millis(50);
    cfg
}
