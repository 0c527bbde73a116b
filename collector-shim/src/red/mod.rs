//! RED metrics (rate, errors, duration) from every span received, linked to kept traces by
//! exemplars.
//!
//! The stage sits between the receivers and the sampler: the sampler task hands it each batch
//! before sampling ([`RedMetrics::record`]), so record-only spans count like sampled ones and the
//! figures are exact whatever the sampling ratio. Tail sampling decides long after a span is
//! counted, and an export can still fail after that; so an exemplar is never taken when a span is
//! counted. It is attached only when the first exporter's backend has accepted the batch holding
//! the span ([`RedMetrics::confirm`], called by that exporter's batcher): an exemplar always names
//! a trace the backend has. Batches a backend accepted only in part (OTLP partial success) give
//! none, since which spans it rejected is not known.
//!
//! Layout: `config` (the `red_metrics` section), `series` (a span's dimensions and series key),
//! `table` (counts, buckets, exemplars, overflow, expiry), `encode` (OpenMetrics and classic text).
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::event::FaultEvent;
use crate::model::SpanRecord;

pub mod config;
pub mod encode;
pub mod series;
pub mod table;

pub use config::RedConfig;
pub use encode::Format;
use table::Table;

/// The RED stage, cheap to clone (one table behind one lock, taken once per batch).
#[derive(Clone, Debug)]
pub struct RedMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The series; locked by the sampler task per batch, a batcher per exported batch, and
    /// each scrape.
    table: Mutex<Table>,
    /// Label names of a series' values (the fixed dimensions, then the configured ones).
    names: Vec<String>,
    /// Whether exemplars are attached at all.
    exemplars: bool,
    /// Spans counted into the overflow series (logged; the series is their count).
    overflow: FaultEvent,
}

impl RedMetrics {
    /// A stage for `cfg`, starting at `now`.
    pub fn new(cfg: &RedConfig, now: Instant) -> RedMetrics {
        let mut names: Vec<String> = config::FIXED_LABELS[..4]
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.extend(cfg.dimensions.iter().map(|d| config::label_name(d)));
        let bounds = cfg
            .duration_buckets
            .iter()
            .map(Duration::as_secs_f64)
            .collect();
        RedMetrics {
            inner: Arc::new(Inner {
                table: Mutex::new(Table::new(
                    bounds,
                    cfg.dimensions.clone(),
                    cfg.max_series,
                    cfg.series_idle_timeout,
                    now,
                )),
                names,
                exemplars: cfg.exemplars,
                overflow: FaultEvent::logged(
                    "red_metrics.max_series reached: spans of new series count into the overflow series",
                    "",
                ),
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves counts that are still counts: keep serving them.
        self.inner.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts every span of a received batch (before sampling).
    pub fn record(&self, spans: &[SpanRecord], now: Instant) {
        let mut overflowed = 0u64;
        {
            let mut t = self.table();
            t.expire(now);
            for s in spans {
                overflowed += u64::from(t.record(s, now));
            }
        }
        if overflowed > 0 {
            // Counted by the overflow series itself (`otel_metric_overflow="true"`).
            self.inner.overflow.report(overflowed);
        }
    }

    /// Attaches exemplars from spans the backend accepted (the first exporter's batcher calls
    /// this after a fully successful export).
    pub fn confirm(&self, spans: &[SpanRecord]) {
        if !self.inner.exemplars || spans.is_empty() {
            return;
        }
        let at = SystemTime::now();
        let mut t = self.table();
        for s in spans {
            t.confirm(s, at);
        }
    }

    /// Appends the RED families in format `f`.
    pub fn write(&self, out: &mut String, f: Format) {
        let mut t = self.table();
        t.expire(Instant::now());
        encode::write(out, &t, &self.inner.names, f);
    }

    /// Series held now (tests and the demo).
    pub fn series_count(&self) -> usize {
        self.table().series.len()
    }
}
