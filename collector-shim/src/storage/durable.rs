//! One exporter's durable pipeline: a writer task that appends what the sampler kept to the
//! disk queue, and an export worker that reads it back in batches and acknowledges what the
//! backend took.
//!
//! The writer (`super::writer`) takes every message waiting (up to `GROUP`) and writes them
//! with one sync (group commit): under load a sync's cost is shared by many requests, and
//! each request's [`Receipt`] is released only after it. The writer's backlog is bounded
//! ([`BACKLOG`] messages); beyond it the spans are refused (counted as `queue_full`) and their
//! request answered 503, rather than held in memory.
//!
//! Unlike the memory queue, a batch the backend did not take (retryable errors, timeouts) stays
//! on disk and is tried again after a backoff (0.5 s doubling to 5 s), however long the outage:
//! the disk budget, not a retry deadline, bounds what is kept. Only a non-retryable answer
//! drops a batch (counted as `export_failed`). At shutdown the worker sends what it can and
//! stops at the first failure; the rest waits on disk for the next start.
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::queue::{lock, DiskQueue, Item, Options, Position};
use super::record;
use super::writer::{WriteMsg, Writer};
use super::{Receipt, StorageTelemetry};
use crate::batcher::{BatcherTask, ExportStep};
use crate::config::{BatchConfig, StorageConfig};
use crate::event::FaultEvent;
use crate::exporter::Exporter;
use crate::metrics::Metrics;
use crate::model::SpanRecord;
use crate::receiver::decode::{self, ResourceDefaults};
use crate::red::RedMetrics;

/// Messages the writer may have waiting; beyond it spans are refused (503 to the client).
pub const BACKLOG: usize = 256;
/// First and largest wait before a batch the backend did not take is tried again.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(5));

/// The sampler's side of one exporter's durable queue.
#[derive(Clone)]
pub struct DurableHandle {
    /// To the writer task (bounded).
    tx: mpsc::Sender<WriteMsg>,
    /// Spans refused at a full writer backlog, in `shim_spans_dropped_total{reason="queue_full"}`.
    backlog_full: Arc<FaultEvent>,
    /// `shim_spans_dropped_total{reason="exporter_stopped"}`.
    dropped_stopped: Counter,
    /// Spans handed to the writer and not yet written (lost if the process stops now).
    pending: Arc<AtomicUsize>,
}

impl DurableHandle {
    /// Hands one request's kept spans to the writer; `receipt` is held until they are on disk.
    pub fn offer(&self, spans: Vec<SpanRecord>, receipt: Option<&Receipt>) {
        let n = spans.len();
        if n == 0 {
            return;
        }
        let msg = WriteMsg {
            spans,
            receipt: receipt.cloned(),
        };
        match self.tx.try_send(msg) {
            Ok(()) => {
                self.pending.fetch_add(n, Ordering::AcqRel);
            }
            Err(mpsc::error::TrySendError::Full(m)) => {
                // Counted before the request is answered 503.
                self.backlog_full.report(n as u64);
                m.receipt.inspect(Receipt::fail);
            }
            Err(mpsc::error::TrySendError::Closed(m)) => {
                self.dropped_stopped.inc_by(n as u64);
                m.receipt.inspect(Receipt::fail);
            }
        }
    }
}

fn dir_name(exporter: &str) -> String {
    exporter
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Opens (recovering) the exporter's queue under `storage.directory` and starts its writer and
/// export worker. The error names the key.
pub async fn spawn(
    name: &str,
    exporter: Arc<dyn Exporter>,
    cfg: &BatchConfig,
    storage: &StorageConfig,
    metrics: Metrics,
    exemplars: Option<RedMetrics>,
) -> Result<(DurableHandle, BatcherTask), String> {
    let dir = queue_dir(storage, name);
    let tel = StorageTelemetry::new(&metrics, name);
    let opts = Options::from_config(storage);
    let (open_dir, open_tel) = (dir.clone(), tel.clone());
    let queue = tokio::task::spawn_blocking(move || DiskQueue::open(&open_dir, opts, open_tel))
        .await
        .map_err(|e| {
            format!(
                "batch.storage.directory: recovery of {} failed: {e}",
                dir.display()
            )
        })?
        .map_err(|e| {
            format!(
                "batch.storage.directory: cannot open {}: {e}",
                dir.display()
            )
        })?;
    let stored = queue.spans();
    if stored > 0 {
        tracing::info!(exporter = name, spans = stored, dir = %dir.display(), "durable queue recovered, sending again");
    }
    let queue = Arc::new(Mutex::new(queue));
    let (tx, rx) = mpsc::channel(BACKLOG);
    let pending = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(Notify::new());
    for reason in crate::metrics::EXPORTER_DROP_REASONS {
        metrics.dropped(reason, name, 0);
    }
    let handle = DurableHandle {
        tx,
        backlog_full: Arc::new(FaultEvent::new(
            "durable queue writer backlog full, refusing spans",
            name,
            metrics.drop_counter("queue_full", name),
        )),
        dropped_stopped: metrics.drop_counter("exporter_stopped", name),
        pending: pending.clone(),
    };
    let writer = Writer {
        queue: queue.clone(),
        batch_size: cfg.batch_size(),
        tel: tel.clone(),
        notify: notify.clone(),
        pending: pending.clone(),
        dropped_oldest: FaultEvent::new(
            "durable queue full, dropped the oldest stored spans",
            name,
            tel.dropped_full.clone(),
        ),
        not_stored: FaultEvent::logged("durable queue: spans not stored", name),
    };
    let writer = tokio::spawn(writer.run(rx));
    let worker = Worker {
        step: ExportStep::new(name, exporter, cfg, metrics.clone(), exemplars),
        cfg: cfg.clone(),
        metrics,
        tel,
        queue,
        notify,
    };
    let join = tokio::spawn(worker.run(writer));
    Ok((handle, BatcherTask::new(name, join, pending)))
}

/// Decodes one stored record (`None` when its content is not a request).
fn decode_item(item: &Item) -> Option<Vec<SpanRecord>> {
    let (_, body) = record::split_payload(&item.payload)?;
    let req = ExportTraceServiceRequest::decode(body).ok()?;
    Some(decode::into_records(req, &ResourceDefaults::default()).spans)
}

/// The export worker's state.
struct Worker {
    /// Sends a batch to the backend.
    step: ExportStep,
    /// Batch size and timeouts.
    cfg: BatchConfig,
    /// Pipeline counters.
    metrics: Metrics,
    /// Durable queue counters.
    tel: StorageTelemetry,
    /// The disk queue.
    queue: Arc<Mutex<DiskQueue>>,
    /// Woken by the writer.
    notify: Arc<Notify>,
}

/// The batch being built or retried: spans, and the records they came from.
#[derive(Default)]
struct Batch {
    /// Spans to export.
    spans: Vec<SpanRecord>,
    /// Each record's segment and span count, for the acknowledgement.
    records: Vec<(u64, u32)>,
    /// Where the first record starts.
    start: Option<Position>,
    /// Cursor after the last record.
    end: Option<Position>,
    /// The next record did not fit: send without waiting for `batch_timeout`.
    full: bool,
}

impl Worker {
    async fn run(self, mut writer: JoinHandle<()>) {
        let batch_size = self.cfg.batch_size().max(1);
        let mut batch = Batch::default();
        let mut deadline: Option<Instant> = None;
        let mut writer_done = false;
        let mut backoff = BACKOFF.0;
        loop {
            if !batch.full
                && batch.spans.len() < batch_size
                && !self.fill(&mut batch, batch_size).await
            {
                if writer_done && batch.records.is_empty() {
                    break; // shutting down on an unreadable queue: what is left stays on disk
                }
                // A read error: try again after a pause.
                tokio::time::sleep(backoff).await;
                continue;
            }
            if !batch.records.is_empty() && deadline.is_none() {
                deadline = Some(Instant::now() + self.cfg.batch_timeout);
            }
            let due = deadline.is_some_and(|d| Instant::now() >= d);
            let full = batch.full || batch.spans.len() >= batch_size;
            if !batch.records.is_empty() && (full || writer_done || due) {
                if self.export(&mut batch).await {
                    deadline = None;
                    backoff = BACKOFF.0;
                    continue;
                }
                if writer_done {
                    break; // shutting down and the backend fails: the rest waits on disk
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    // Shutdown cuts the wait short: one more try, then the rest stays on disk.
                    _ = &mut writer => writer_done = true,
                }
                backoff = (backoff * 2).min(BACKOFF.1);
                if !self.still_stored(&batch).await {
                    batch = Batch::default();
                    deadline = None;
                }
                continue;
            }
            if batch.records.is_empty() && writer_done {
                break;
            }
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.notify.notified() => {}
                () = timer => {}
                _ = &mut writer, if !writer_done => writer_done = true,
            }
        }
        self.step.shutdown().await;
    }

    /// Reads records until the batch holds `batch_size` spans or nothing more is stored.
    /// False on a read error.
    async fn fill(&self, batch: &mut Batch, batch_size: usize) -> bool {
        let want = batch_size - batch.spans.len();
        let had = !batch.records.is_empty();
        let q = self.queue.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut q = lock(&q);
            let mut items = Vec::new();
            let mut n = 0usize;
            let mut full = false;
            while n < want {
                match q.read_next()? {
                    // A record that does not fit is handed back, to start the next batch (a
                    // batch exceeds `batch_size` only when a single record does).
                    Some(item) if (had || n > 0) && n + item.spans as usize > want => {
                        q.unread(&item);
                        full = true;
                        break;
                    }
                    Some(item) => {
                        n += item.spans as usize;
                        items.push(item);
                    }
                    None => break,
                }
            }
            Ok::<_, std::io::Error>((items, full))
        })
        .await;
        let items = match read {
            Ok(Ok((items, full))) => {
                batch.full |= full;
                items
            }
            Ok(Err(e)) => {
                self.tel
                    .io_error
                    .report_with(1, format_args!("reading the next records: {e}"));
                return false;
            }
            Err(_) => return false,
        };
        for item in items {
            match decode_item(&item) {
                Some(spans) => batch.spans.extend(spans),
                None => self.tel.corrupt("payload", 1),
            }
            batch.records.push((item.end.seg, item.spans));
            batch.start.get_or_insert(item.start);
            batch.end = Some(item.end);
        }
        true
    }

    /// Exports the batch. True when it is done with (exported, or dropped as non-retryable);
    /// false when it stays for another try.
    async fn export(&self, batch: &mut Batch) -> bool {
        let n = batch.spans.len() as u64;
        // A batch of only undecodable records has nothing to send: it is acknowledged.
        let Err(failure) = self.step.run(&batch.spans).await else {
            self.ack(batch).await;
            return true;
        };
        let give_up = failure.kind == "non_retryable";
        let then = match give_up {
            true => "batch dropped",
            false => "kept on disk for another try",
        };
        self.step.failed(&failure, n, then);
        if give_up {
            self.metrics.dropped("export_failed", &self.step.name, n);
            self.ack(batch).await;
        }
        give_up
    }

    /// False when `drop_oldest` deleted the batch's records while it waited for a retry.
    async fn still_stored(&self, batch: &Batch) -> bool {
        let Some(start) = batch.start else {
            return true;
        };
        let q = self.queue.clone();
        tokio::task::spawn_blocking(move || lock(&q).still_stored(start))
            .await
            .unwrap_or(true)
    }

    async fn ack(&self, batch: &mut Batch) {
        let records = std::mem::take(&mut batch.records);
        batch.spans.clear();
        batch.start = None;
        batch.full = false;
        let Some(end) = batch.end.take() else { return };
        let q = self.queue.clone();
        let r = tokio::task::spawn_blocking(move || lock(&q).ack(end, &records)).await;
        if !matches!(r, Ok(Ok(()))) {
            // The cursor on disk stays behind: those records are sent again after a restart.
            self.tel.io_error.report_with(
                1,
                "moving the cursor past exported records (they are sent again after a restart)",
            );
        }
    }
}

/// The directory an exporter's queue lives in.
pub fn queue_dir(storage: &StorageConfig, exporter: &str) -> std::path::PathBuf {
    Path::new(&storage.directory).join(dir_name(exporter))
}
