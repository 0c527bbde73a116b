//! The durable queue (`batch.storage`): each exporter's queue kept on disk instead of in
//! memory, so a backend outage longer than memory holds, or a restart of the shim (SIGTERM or
//! SIGKILL) in the middle of one, loses nothing within the disk budget. Off by default.
//!
//! # Where the write happens, and what a 2xx means
//! After sampling (spans the sampler drops are never stored) and per exporter (each has its
//! own directory, segments and cursor, so one backend's outage never holds back another). The
//! receiver hands each request's spans to the sampler with a [`Receipt`]; the spans the sampler
//! keeps at once travel to every exporter's writer with a clone of it; the receiver answers only
//! when every clone is gone: written to every exporter's queue, and synced to disk when
//! `sync = always`. A write that fails (I/O error, writer backlog full) answers 503, so OTLP
//! clients retry. Spans held by tail sampling are in memory until their trace is decided; they
//! are written when decided (see `docs/shim.md`, "Durable queue").
//!
//! Delivery is at least once: the cursor of exported records is saved after each export, so a
//! crash between the backend's answer and that save sends the batch again after restart.
//!
//! # Layout
//! - [`record`]: the segment and record framing (pure; fuzzed).
//! - [`queue`]: one exporter's directory: segments, cursor, budget, recovery; [`files`] its
//!   file-level helpers (names, bounded reads, the cursor file).
//! - [`writer`]: the writer task (group commit).
//! - [`durable`]: the sampler's handle, the export worker, and [`durable::spawn`] that opens
//!   (recovering) an exporter's queue and starts both tasks.
//! - [`receipt`]: the receiver's wait for the durable write of a request.
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::event::FaultEvent;
use crate::metrics::{ExporterLabel, Metrics};

pub mod durable;
pub mod files;
pub mod queue;
pub mod receipt;
pub mod record;
pub mod writer;

pub use receipt::{Receipt, ReceiptWait};

/// Label set of corrupt data found on disk.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CorruptLabel {
    /// The exporter whose queue it is.
    pub exporter: String,
    /// `checksum` (damaged record), `truncated` (record cut short), `header` (not a segment
    /// file), `payload` (valid frame, undecodable content), `cursor` (cursor file).
    pub reason: String,
}

/// Reasons of [`CorruptLabel`], exported at 0 from start-up.
pub const CORRUPT_REASONS: &[&str] = &["checksum", "truncated", "header", "payload", "cursor"];

/// Reasons of `shim_spans_dropped_total` the durable queue adds: `storage_full` (budget
/// reached; which spans go is `when_full`'s rule) and `storage_error` (a write failed).
pub const STORAGE_DROP_REASONS: &[&str] = &["storage_full", "storage_error"];

/// The durable queue's metric families (registered by [`Metrics::new`]).
#[derive(Clone, Default)]
pub struct StorageMetrics {
    /// Bytes of segment files per exporter.
    pub bytes: Family<ExporterLabel, Gauge>,
    /// Records on disk not yet exported, per exporter.
    pub records: Family<ExporterLabel, Gauge>,
    /// Corrupt or truncated data skipped, by exporter and reason.
    pub corrupt: Family<CorruptLabel, Counter>,
    /// Spans found on disk at start-up, not yet exported (sent again: at-least-once).
    pub recovered_spans: Family<ExporterLabel, Counter>,
    /// Failed disk operations (write, sync, read, delete).
    pub io_errors: Family<ExporterLabel, Counter>,
}

impl StorageMetrics {
    /// Registers the families under `registry` (prefix `shim_storage_`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("storage");
        r.register(
            "bytes",
            "Bytes of durable queue segment files",
            self.bytes.clone(),
        );
        r.register(
            "records",
            "Records in the durable queue not yet exported",
            self.records.clone(),
        );
        r.register(
            "corrupt_records",
            "Corrupt or truncated durable queue data skipped, by reason",
            self.corrupt.clone(),
        );
        r.register(
            "recovered_spans",
            "Spans found in the durable queue at start-up",
            self.recovered_spans.clone(),
        );
        r.register(
            "io_errors",
            "Failed durable queue disk operations",
            self.io_errors.clone(),
        );
    }
}

/// One exporter's handles on the durable queue's metrics, resolved once.
#[derive(Clone)]
pub struct StorageTelemetry {
    /// Exporter name (label of lazily created series).
    pub exporter: String,
    /// `shim_storage_bytes`.
    pub bytes: Gauge,
    /// `shim_storage_records`.
    pub records: Gauge,
    /// `shim_queue_length`: spans on disk not yet exported.
    pub queue_spans: Gauge,
    /// `shim_storage_recovered_spans_total`.
    pub recovered: Counter,
    /// `shim_storage_io_errors_total`: counted on every failed disk operation.
    pub io_errors: Counter,
    /// A failed disk operation while running (counted in `io_errors`, logged at a bounded rate).
    pub io_error: Arc<FaultEvent>,
    /// `shim_spans_dropped_total{reason="storage_full"}`.
    pub dropped_full: Counter,
    /// `shim_spans_dropped_total{reason="storage_error"}`.
    pub dropped_error: Counter,
    /// The corrupt-data family.
    corrupt: Family<CorruptLabel, Counter>,
}

impl StorageTelemetry {
    /// Resolves every series of `exporter`, creating them at 0.
    pub fn new(metrics: &Metrics, exporter: &str) -> Self {
        let l = ExporterLabel {
            exporter: exporter.to_string(),
        };
        let s = &metrics.storage;
        let t = StorageTelemetry {
            exporter: exporter.to_string(),
            bytes: s.bytes.get_or_create(&l).clone(),
            records: s.records.get_or_create(&l).clone(),
            queue_spans: metrics.queue_length.get_or_create(&l).clone(),
            recovered: s.recovered_spans.get_or_create(&l).clone(),
            io_errors: s.io_errors.get_or_create(&l).clone(),
            io_error: Arc::new(FaultEvent::new(
                "durable queue disk operation failed",
                exporter,
                s.io_errors.get_or_create(&l).clone(),
            )),
            dropped_full: metrics.drop_counter("storage_full", exporter),
            dropped_error: metrics.drop_counter("storage_error", exporter),
            corrupt: s.corrupt.clone(),
        };
        for reason in CORRUPT_REASONS {
            t.corrupt(reason, 0);
        }
        t
    }

    /// Counts `n` corrupt records (or regions) skipped for `reason`.
    pub fn corrupt(&self, reason: &str, n: u64) {
        self.corrupt
            .get_or_create(&CorruptLabel {
                exporter: self.exporter.clone(),
                reason: reason.to_string(),
            })
            .inc_by(n);
    }
}
