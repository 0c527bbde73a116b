//! Runtime faults, reported in one call: [`FaultEvent`] counts every occurrence on its metric
//! and logs a warning at a bounded rate, so a fault can neither be counted without a line in the
//! log nor logged without a count, and a fault that repeats thousands of times a second (a full
//! queue, a backend down) writes one line per interval saying how many occurrences it stands for.
//!
//! Every runtime fault of the shim goes through one: the exporters (failed attempts, partial
//! success, spans left out or dropped), the batcher (full queue, failed exports), the durable
//! queue (full, I/O errors, failed exports) and the RED metrics (series overflow).
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

/// Interval between two lines of one event, unless the event says otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// One named runtime fault of one component.
#[derive(Debug)]
pub struct FaultEvent {
    /// What happened, the message of the log line (`export queue full, dropping spans`).
    what: &'static str,
    /// The exporter it concerns (empty for none).
    exporter: String,
    /// Where its occurrences are counted; `None` where the count lives in a series of its own
    /// (the RED overflow series).
    counter: Option<Counter>,
    /// Bounds the lines.
    throttle: LogThrottle,
}

impl FaultEvent {
    /// An event counted on `counter`, logged at most once per 10 s.
    pub fn new(what: &'static str, exporter: &str, counter: Counter) -> Self {
        FaultEvent {
            what,
            exporter: exporter.to_string(),
            counter: Some(counter),
            throttle: LogThrottle::new(DEFAULT_INTERVAL),
        }
    }

    /// An event whose occurrences another series already counts (each call passes the counter
    /// to [`report_on`](Self::report_on), or the count is the data itself).
    pub fn logged(what: &'static str, exporter: &str) -> Self {
        FaultEvent {
            what,
            exporter: exporter.to_string(),
            counter: None,
            throttle: LogThrottle::new(DEFAULT_INTERVAL),
        }
    }

    /// The same event with `every` between two lines.
    pub fn every(mut self, every: Duration) -> Self {
        self.throttle.every = every;
        self
    }

    /// `n` (spans, attempts, ...) happened: counted, and logged when a line is due.
    pub fn report(&self, n: u64) {
        self.report_with(n, "");
    }

    /// As [`report`](Self::report), with what this occurrence adds (an error, a size).
    pub fn report_with(&self, n: u64, detail: impl Display) {
        if let Some(c) = &self.counter {
            c.inc_by(n);
        }
        self.log(n, detail);
    }

    /// `n` counted on `counter` (a series chosen per occurrence, such as the kind of an export
    /// error) rather than the event's own, and logged when a line is due.
    pub fn report_on(&self, counter: &Counter, n: u64, detail: impl Display) {
        counter.inc_by(n);
        self.log(n, detail);
    }

    fn log(&self, n: u64, detail: impl Display) {
        let Some(occurrences) = self.throttle.hit() else {
            return;
        };
        let detail = detail.to_string();
        let sep = if detail.is_empty() { "" } else { ": " };
        tracing::warn!(exporter = %self.exporter, count = n, occurrences,
            "{}{sep}{detail}", self.what);
    }
}

/// A log line at a bounded rate: the first occurrence logs, then at most one line per `every`,
/// reporting how many occurrences were folded into it.
#[derive(Debug)]
struct LogThrottle {
    /// Minimum time between two lines.
    every: Duration,
    /// When the last line was written (None: never).
    last: Mutex<Option<Instant>>,
    /// Occurrences since the last line.
    folded: AtomicU64,
}

impl LogThrottle {
    fn new(every: Duration) -> Self {
        LogThrottle {
            every,
            last: Mutex::new(None),
            folded: AtomicU64::new(0),
        }
    }

    /// Records one occurrence; `Some(n)` when a line is due now, standing for `n` occurrences
    /// (this one included).
    fn hit(&self) -> Option<u64> {
        let n = self.folded.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(t) if now.duration_since(t) < self.every => None,
            _ => {
                *last = Some(now);
                self.folded.fetch_sub(n, Ordering::Relaxed);
                Some(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_logs_then_they_fold() {
        let t = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(t.hit(), Some(1));
        assert_eq!(t.hit(), None);
        assert_eq!(t.hit(), None);
        let t = LogThrottle::new(Duration::ZERO);
        assert_eq!(t.hit(), Some(1));
        assert_eq!(t.hit(), Some(1));
    }

    #[test]
    fn every_occurrence_is_counted_whether_or_not_it_logs() {
        let c = Counter::default();
        let e = FaultEvent::new("queue full", "zipkin", c.clone()).every(Duration::from_secs(3600));
        e.report(3);
        e.report_with(2, "second");
        let other = Counter::default();
        e.report_on(&other, 4, "elsewhere");
        assert_eq!(c.get(), 5);
        assert_eq!(other.get(), 4);
    }
}
