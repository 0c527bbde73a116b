//! Batching per exporter, after the OTel BatchSpanProcessor: a bounded queue the sampler
//! `try_send`s into (a full queue drops, counts and logs at a bounded rate, so a slow backend
//! never stalls the sampler or the other exporters), and one task per exporter that sends a
//! batch when `max_export_batch_size` spans are waiting or `batch_timeout` has passed since
//! the batch's first span. Exports of one exporter never overlap (the `Exporter` contract).
//!
//! Shutdown: dropping the last `BatcherHandle` closes the queue; the task then exports what
//! is left, calls `Exporter::shutdown` and ends.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::config::BatchConfig;
use crate::event::FaultEvent;
use crate::exporter::Exporter;
use crate::metrics::{ExporterLabel, Metrics};
use crate::model::SpanRecord;
use crate::red::RedMetrics;

/// The sending side of one exporter's queue.
#[derive(Clone)]
pub struct BatcherHandle {
    /// Exporter name (metric label).
    name: Arc<str>,
    /// The bounded queue.
    tx: mpsc::Sender<SpanRecord>,
    /// Queue capacity, to derive its length.
    capacity: usize,
    /// `shim_queue_length{exporter}`, resolved once (the offer path is per span).
    queue_gauge: Gauge,
    /// Spans dropped at a full queue, in `shim_spans_dropped_total{reason="queue_full",exporter}`.
    queue_full: Arc<FaultEvent>,
    /// `shim_spans_dropped_total{reason="exporter_stopped",exporter}`.
    dropped_stopped: Counter,
    /// Spans queued or in the batch being built/exported (shared with the task).
    pending: Arc<AtomicUsize>,
}

/// The task side of one exporter, kept by the pipeline to wait for its flush at shutdown.
pub struct BatcherTask {
    /// Exporter name.
    pub name: String,
    /// The task; ends after the queue is closed and flushed.
    pub join: JoinHandle<()>,
    /// Spans accepted and not yet exported or dropped.
    pending: Arc<AtomicUsize>,
}

impl BatcherTask {
    /// A task another queue kind (`storage::durable`) runs, with its not-yet-safe span count.
    pub fn new(name: &str, join: JoinHandle<()>, pending: Arc<AtomicUsize>) -> Self {
        BatcherTask {
            name: name.to_string(),
            join,
            pending,
        }
    }

    /// Spans accepted and not yet handed to the backend (or dropped).
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

impl BatcherHandle {
    /// Queues a span; when the queue is full the span is dropped and counted.
    pub fn offer(&self, span: SpanRecord) {
        match self.tx.try_send(span) {
            Ok(()) => {
                self.pending.fetch_add(1, Ordering::AcqRel);
            }
            Err(mpsc::error::TrySendError::Full(_)) => self.queue_full.report(1),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.dropped_stopped.inc();
            }
        }
        self.queue_gauge.set(self.queued() as i64);
    }

    /// Spans waiting in the queue.
    pub fn queued(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    /// Exporter name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One exporter's queue as the sampler sees it: in memory (this module) or on disk
/// (`storage::durable`, with `batch.storage`).
#[derive(Clone)]
pub enum QueueHandle {
    /// The bounded memory queue.
    Memory(BatcherHandle),
    /// The durable queue.
    Durable(crate::storage::durable::DurableHandle),
}

impl QueueHandle {
    /// Queues the spans one request (or one tail decision) kept. A durable queue holds a copy of
    /// `receipt` until they are on disk; the memory queue needs none.
    pub fn offer_all(&self, spans: Vec<SpanRecord>, receipt: Option<&crate::storage::Receipt>) {
        match self {
            QueueHandle::Memory(h) => spans.into_iter().for_each(|s| h.offer(s)),
            QueueHandle::Durable(h) => h.offer(spans, receipt),
        }
    }
}

/// Starts the batching task of `exporter` (named `name` in metrics).
pub fn spawn(
    name: &str,
    exporter: Arc<dyn Exporter>,
    cfg: &BatchConfig,
    metrics: Metrics,
) -> (BatcherHandle, BatcherTask) {
    spawn_confirming(name, exporter, cfg, metrics, None)
}

/// Like [`spawn`]; after each batch its backend accepted in full, the batch's spans are handed
/// to `exemplars` (the RED stage takes its exemplars only from spans a backend has).
pub fn spawn_confirming(
    name: &str,
    exporter: Arc<dyn Exporter>,
    cfg: &BatchConfig,
    metrics: Metrics,
    exemplars: Option<RedMetrics>,
) -> (BatcherHandle, BatcherTask) {
    let (tx, rx) = mpsc::channel(cfg.max_queue_size);
    // Series exist from the start (at 0), so dashboards and alerts see every exporter.
    let label = ExporterLabel {
        exporter: name.to_string(),
    };
    let queue_gauge = metrics.queue_length.get_or_create(&label).clone();
    let _ = metrics.spans_exported.get_or_create(&label);
    let _ = metrics.export_duration.get_or_create(&label);
    let pending = Arc::new(AtomicUsize::new(0));
    let handle = BatcherHandle {
        pending: pending.clone(),
        name: Arc::from(name),
        tx,
        capacity: cfg.max_queue_size,
        queue_gauge,
        queue_full: Arc::new(FaultEvent::new(
            "export queue full, dropping spans",
            name,
            metrics.drop_counter("queue_full", name),
        )),
        dropped_stopped: metrics.drop_counter("exporter_stopped", name),
    };
    let worker = Worker {
        step: ExportStep::new(name, exporter, cfg, metrics.clone(), exemplars),
        cfg: cfg.clone(),
        metrics,
        pending: pending.clone(),
    };
    let join = tokio::spawn(worker.run(rx, handle.capacity));
    (
        handle,
        BatcherTask {
            name: name.to_string(),
            join,
            pending,
        },
    )
}

/// The task side.
struct Worker {
    /// Sends a batch to the backend.
    step: ExportStep,
    /// Batch size and timeouts.
    cfg: BatchConfig,
    /// Counters.
    metrics: Metrics,
    /// Spans accepted and not yet exported or dropped.
    pending: Arc<AtomicUsize>,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<SpanRecord>, capacity: usize) {
        let label = ExporterLabel {
            exporter: self.step.name.clone(),
        };
        let mut batch: Vec<SpanRecord> = Vec::with_capacity(self.cfg.batch_size());
        let mut deadline: Option<Instant> = None;
        loop {
            let wake_at = deadline;
            let timer = async move {
                match wake_at {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                got = rx.recv() => match got {
                    Some(span) => {
                        if batch.is_empty() {
                            deadline = Some(Instant::now() + self.cfg.batch_timeout);
                        }
                        batch.push(span);
                        if batch.len() >= self.cfg.batch_size() {
                            self.export(&mut batch, &rx, capacity).await;
                            deadline = None;
                        }
                    }
                    None => break,
                },
                () = timer => {
                    self.export(&mut batch, &rx, capacity).await;
                    deadline = None;
                }
            }
        }
        // Queue closed (shutdown): everything received goes out before the exporter stops.
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(self.cfg.batch_size()));
            self.export(&mut batch, &rx, capacity).await;
            batch = rest;
        }
        self.step.shutdown().await;
        self.metrics.queue_length.get_or_create(&label).set(0);
    }

    async fn export(
        &self,
        batch: &mut Vec<SpanRecord>,
        rx: &mpsc::Receiver<SpanRecord>,
        capacity: usize,
    ) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        if let Err(failure) = self.step.run(batch).await {
            self.step.failed(&failure, n, "batch dropped");
            self.metrics.dropped("export_failed", &self.step.name, n);
        }
        let label = ExporterLabel {
            exporter: self.step.name.clone(),
        };
        self.pending.fetch_sub(batch.len(), Ordering::AcqRel);
        batch.clear();
        self.metrics
            .queue_length
            .get_or_create(&label)
            .set((capacity - rx.capacity()) as i64);
    }
}

/// The export step both queue kinds share (the memory queue here, `storage::durable`): one call
/// of the exporter within the batcher's `export_timeout`, timed (`shim_export_duration_seconds`)
/// and counted (spans exported; a failure in `shim_export_errors_total` by kind, logged at a
/// bounded rate), with the exemplars of a batch the backend accepted whole confirmed.
pub(crate) struct ExportStep {
    /// Exporter name (metric label).
    pub(crate) name: String,
    /// The backend.
    exporter: Arc<dyn Exporter>,
    /// Time allowed for one export call, retries included.
    timeout: Duration,
    /// Counters.
    metrics: Metrics,
    /// Where spans the backend accepted are confirmed as exemplar candidates (the first
    /// exporter only).
    exemplars: Option<RedMetrics>,
    /// A failed export.
    failed: FaultEvent,
}

/// A failed export: the `kind` label of `shim_export_errors_total` and what went wrong.
pub(crate) struct ExportFailure {
    /// `retryable`, `throttled`, `non_retryable` or `timeout`.
    pub(crate) kind: &'static str,
    /// The exporter's error.
    message: String,
}

impl ExportStep {
    pub(crate) fn new(
        name: &str,
        exporter: Arc<dyn Exporter>,
        cfg: &BatchConfig,
        metrics: Metrics,
        exemplars: Option<RedMetrics>,
    ) -> Self {
        ExportStep {
            name: name.to_string(),
            exporter,
            timeout: cfg.export_timeout,
            metrics,
            exemplars,
            failed: FaultEvent::logged("export failed", name),
        }
    }

    /// Exports `spans` (nothing to do when there are none).
    pub(crate) async fn run(&self, spans: &[SpanRecord]) -> Result<(), ExportFailure> {
        if spans.is_empty() {
            return Ok(());
        }
        let label = ExporterLabel {
            exporter: self.name.clone(),
        };
        let rejected = self
            .metrics
            .export_rejected_spans
            .get_or_create(&label)
            .clone();
        let rejected_before = rejected.get();
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, self.exporter.export(spans)).await;
        self.metrics
            .export_duration
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(Ok(())) => {
                let n = spans.len() as u64;
                self.metrics.spans_exported.get_or_create(&label).inc_by(n);
                // Exports of one exporter never overlap, so a change of its rejected-spans
                // counter belongs to this batch: then which spans the backend has is unknown.
                if let Some(red) = &self.exemplars {
                    if rejected.get() == rejected_before {
                        red.confirm(spans);
                    }
                }
                Ok(())
            }
            Ok(Err(e)) => Err(ExportFailure {
                kind: e.kind(),
                message: e.to_string(),
            }),
            Err(_) => Err(ExportFailure {
                kind: "timeout",
                message: format!("export took longer than {:?}", self.timeout),
            }),
        }
    }

    /// Counts and logs `failure` of a batch of `spans`, saying what becomes of the batch.
    pub(crate) fn failed(&self, failure: &ExportFailure, spans: u64, then: &str) {
        let errors = self.metrics.export_errors_of(&self.name, failure.kind);
        self.failed.report_on(
            &errors,
            1,
            format_args!("{spans} spans, {}; {then}", failure.message),
        );
    }

    /// Lets the exporter flush and release what it holds.
    pub(crate) async fn shutdown(&self) {
        if let Err(e) = self.exporter.shutdown().await {
            tracing::warn!(exporter = %self.name, error = %e, "exporter shutdown failed");
        }
    }
}
