//! Receivers: OTLP/HTTP (`http`) and OTLP/gRPC (`grpc`) with the body rules in `decode`, and the `Ingest` handle they
//! hand spans to.
//!
//! `Ingest` bounds what waits between the receivers and the sampler task in spans (a
//! semaphore of `receiver.max_pending_spans` permits travelling with each batch): when it is
//! exhausted the receiver answers 503 with `Retry-After`, so OTLP clients retry, and the
//! refusal is counted. Memory stays bounded however fast clients send.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::model::SpanRecord;
use crate::storage::{Receipt, ReceiptWait};

pub mod deadline;
pub mod decode;
pub mod grpc;
pub mod http;
pub mod serve;

/// What travels from the receivers to the sampler task.
pub enum IngestMsg {
    /// Spans from one request, with the permits that reserve their place and, with the
    /// durable queue, the receipt the receiver waits on before answering.
    Spans(Vec<SpanRecord>, OwnedSemaphorePermit, Option<Receipt>),
    /// Receivers have stopped: take every pending decision and close the exporters' queues.
    Drain,
}

/// Why spans were not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The pending-span budget is used up (503, retry later).
    Full,
    /// More spans in one request than the whole budget (413).
    TooMany,
    /// Shutting down (503).
    Closed,
}

/// The receivers' side of the pipeline.
#[derive(Clone)]
pub struct Ingest {
    /// To the sampler task (bounded by `permits`, not by the channel).
    tx: mpsc::UnboundedSender<IngestMsg>,
    /// Span budget between receivers and sampler.
    permits: Arc<Semaphore>,
    /// Budget size.
    max_pending: usize,
    /// Set when the receivers stop taking spans.
    closed: Arc<AtomicBool>,
    /// For the pending-spans gauge.
    metrics: Metrics,
    /// With the durable queue: each request gets a receipt to wait on.
    durable: bool,
}

impl Ingest {
    /// A handle and the sampler task's receiving end.
    pub fn new(
        max_pending: usize,
        metrics: Metrics,
    ) -> (Ingest, mpsc::UnboundedReceiver<IngestMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ingest = Ingest {
            tx,
            permits: Arc::new(Semaphore::new(max_pending)),
            max_pending,
            closed: Arc::new(AtomicBool::new(false)),
            metrics,
            durable: false,
        };
        (ingest, rx)
    }

    /// Requests get a receipt to wait on (the durable queue is on).
    pub fn with_receipts(mut self) -> Self {
        self.durable = true;
        self
    }

    /// Hands spans to the sampler without waiting.
    pub fn try_submit(&self, spans: Vec<SpanRecord>) -> Result<(), Refusal> {
        self.submit(spans).map(drop)
    }

    /// Hands spans to the sampler without waiting; with the durable queue, returns the wait
    /// that resolves once what the sampler kept of them is on disk.
    pub fn submit(&self, spans: Vec<SpanRecord>) -> Result<Option<ReceiptWait>, Refusal> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Refusal::Closed);
        }
        if spans.len() > self.max_pending {
            return Err(Refusal::TooMany);
        }
        let n = u32::try_from(spans.len()).map_err(|_| Refusal::TooMany)?;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| Refusal::Full)?;
        let (receipt, wait) = match self.durable {
            true => {
                let (r, w) = Receipt::new();
                (Some(r), Some(w))
            }
            false => (None, None),
        };
        self.tx
            .send(IngestMsg::Spans(spans, permit, receipt))
            .map_err(|_| Refusal::Closed)?;
        self.update_gauge();
        Ok(wait)
    }

    /// Spans waiting for the sampler.
    pub fn pending(&self) -> usize {
        self.max_pending - self.permits.available_permits()
    }

    /// Updates the pending-spans gauge.
    pub fn update_gauge(&self) {
        self.metrics.ingest_queue_spans.set(self.pending() as i64);
    }

    /// Refuses further spans and tells the sampler to drain (after everything already sent).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.tx.send(IngestMsg::Drain);
    }
}
