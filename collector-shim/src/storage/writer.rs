//! The writer task of one exporter's durable queue: appends what the sampler kept, with one
//! sync for every group of messages waiting (group commit: under load the cost of a sync is
//! shared by many requests), and releases each request's [`Receipt`] only after it, failed
//! when the write or the sync failed.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};

use super::queue::{lock, DiskQueue};
use super::record;
use super::{Receipt, StorageTelemetry};
use crate::event::FaultEvent;
use crate::exporter::otlp;
use crate::model::SpanRecord;

/// Most messages written with one sync.
pub const GROUP: usize = 64;
/// One request's kept spans for this exporter.
pub struct WriteMsg {
    /// The spans.
    pub spans: Vec<SpanRecord>,
    /// Released once they are on disk (failed when they could not be written).
    pub receipt: Option<Receipt>,
}

/// What writing one message came to.
#[derive(Default)]
struct Written {
    /// Spans dropped because the budget was reached (`drop_newest`).
    dropped_newest: u64,
    /// Whether a write (or the sync after it) failed.
    failed: bool,
}

/// The writer task's state.
pub struct Writer {
    /// The disk queue.
    pub queue: Arc<Mutex<DiskQueue>>,
    /// Spans per record (one record is never split across two export calls).
    pub batch_size: usize,
    /// Metrics.
    pub tel: StorageTelemetry,
    /// Wakes the export worker.
    pub notify: Arc<Notify>,
    /// Spans handed over and not yet written.
    pub pending: Arc<AtomicUsize>,
    /// Stored spans deleted to make room (`drop_oldest`).
    pub dropped_oldest: FaultEvent,
    /// Spans not written: the budget is reached (`drop_newest`) or the write failed.
    pub not_stored: FaultEvent,
}

impl Writer {
    /// Runs until the channel closes (every sender dropped), then syncs what is left.
    pub async fn run(self, mut rx: mpsc::Receiver<WriteMsg>) {
        loop {
            let due = lock(&self.queue).sync_due_in();
            let first = match due {
                Some(d) => match tokio::time::timeout(d, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        self.sync(false).await;
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(first) = first else { break };
            let mut msgs = vec![first];
            while msgs.len() < GROUP {
                match rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
            self.write(msgs).await;
            self.notify.notify_one();
        }
        self.sync(true).await;
    }

    async fn sync(&self, force: bool) {
        let q = self.queue.clone();
        let r = tokio::task::spawn_blocking(move || lock(&q).sync(force)).await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.tel.io_error.report_with(1, format_args!("sync: {e}")),
            Err(e) => self
                .tel
                .io_error
                .report_with(1, format_args!("sync task: {e}")),
        }
    }

    async fn write(&self, mut msgs: Vec<WriteMsg>) {
        let q = self.queue.clone();
        let batch_size = self.batch_size.max(1);
        // The spans move to the blocking thread; the receipts stay here, so a panic there
        // (a lost result) still fails every request instead of letting its receipt succeed.
        let counts: Vec<usize> = msgs.iter().map(|m| m.spans.len()).collect();
        let spans: Vec<Vec<SpanRecord>> = msgs
            .iter_mut()
            .map(|m| std::mem::take(&mut m.spans))
            .collect();
        let result = tokio::task::spawn_blocking(move || write_group(&q, &spans, batch_size)).await;
        let (outcomes, dropped_oldest, error) = match result {
            Ok(r) => r,
            Err(e) => (Vec::new(), 0, Some(e.to_string())),
        };
        if dropped_oldest > 0 {
            self.dropped_oldest.report(dropped_oldest);
        }
        for (i, m) in msgs.into_iter().enumerate() {
            let n = counts.get(i).copied().unwrap_or(0);
            let out = outcomes.get(i);
            let failed = out.is_none_or(|o| o.failed);
            let newest = out.map_or(0, |o| o.dropped_newest);
            if failed {
                // Counted before the request is answered, so whoever sees the answer sees
                // the count.
                let why = error.as_deref().unwrap_or("the write task stopped");
                self.not_stored.report_on(
                    &self.tel.dropped_error,
                    n as u64,
                    format_args!("write failed: {why}"),
                );
                m.receipt.inspect(Receipt::fail);
            } else if newest > 0 {
                self.not_stored.report_on(
                    &self.tel.dropped_full,
                    newest,
                    "the disk budget is reached (drop_newest)",
                );
            }
            self.pending.fetch_sub(n, Ordering::AcqRel);
        }
        if error.is_some() {
            self.tel.io_errors.inc();
        }
    }
}

/// Encodes and appends every message, then syncs (per policy). Returns each message's outcome,
/// the spans deleted by `drop_oldest`, and the first I/O error.
fn write_group(
    q: &Mutex<DiskQueue>,
    msgs: &[Vec<SpanRecord>],
    batch_size: usize,
) -> (Vec<Written>, u64, Option<String>) {
    // Encoded before taking the lock: the export worker reads meanwhile.
    let encoded: Vec<Vec<(Vec<u8>, u32)>> = msgs
        .iter()
        .map(|spans| {
            spans
                .chunks(batch_size)
                .map(|c| {
                    let n = u32::try_from(c.len()).unwrap_or(u32::MAX);
                    (record::payload(n, &otlp::model::encode(c)), n)
                })
                .collect()
        })
        .collect();
    let mut q = lock(q);
    let mut out = Vec::with_capacity(msgs.len());
    let mut dropped_oldest = 0;
    let mut error = None;
    for records in &encoded {
        let mut w = Written::default();
        for (payload, n) in records {
            match q.append(payload, *n) {
                Ok(a) => {
                    dropped_oldest += a.dropped_oldest;
                    if !a.written {
                        w.dropped_newest += u64::from(*n);
                    }
                }
                Err(e) => {
                    w.failed = true;
                    error.get_or_insert(e.to_string());
                }
            }
        }
        out.push(w);
    }
    if let Err(e) = q.sync(false) {
        // Nothing of this group is known to be on disk.
        out.iter_mut().for_each(|w| w.failed = true);
        error.get_or_insert(e.to_string());
    }
    (out, dropped_oldest, error)
}
