//! The series table: counts, histogram buckets and exemplars per series, bounded in series
//! count, with an overflow series and idle expiry.
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use tokio::time::Instant;

use super::series::{parse_key, write_key};
use crate::model::SpanRecord;

/// A trace a person can open: a span of a trace the backend accepted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    /// The span's trace.
    pub trace_id: [u8; 16],
    /// The span.
    pub span_id: [u8; 8],
    /// The observed value (duration in seconds, or 1 for the error counter).
    pub value: f64,
    /// When the export of its span was confirmed.
    pub at: SystemTime,
}

/// One series: what a dashboard line shows.
#[derive(Debug)]
pub struct Series {
    /// Label values: the fixed dimensions then the configured ones (all empty for overflow).
    pub labels: Box<[String]>,
    /// Spans counted.
    pub requests: u64,
    /// Spans with status ERROR.
    pub errors: u64,
    /// Spans per bucket (not cumulative); the last one is `+Inf`.
    pub buckets: Box<[u64]>,
    /// Sum of durations, seconds.
    pub sum: f64,
    /// One exemplar per bucket, allocated with the first one (most series never get any).
    pub bucket_exemplars: Option<Box<[Option<Exemplar>]>>,
    /// The latest exported error span.
    pub error_exemplar: Option<Exemplar>,
    /// When a span last counted here (expiry).
    last_seen: Instant,
}

impl Series {
    fn new(labels: Box<[String]>, buckets: usize, now: Instant) -> Series {
        Series {
            labels,
            requests: 0,
            errors: 0,
            buckets: vec![0; buckets + 1].into_boxed_slice(),
            sum: 0.0,
            bucket_exemplars: None,
            error_exemplar: None,
            last_seen: now,
        }
    }

    fn count(&mut self, bucket: usize, d: f64, error: bool, now: Instant) {
        self.requests += 1;
        self.errors += u64::from(error);
        self.buckets[bucket] += 1;
        self.sum += d;
        self.last_seen = now;
    }
}

/// Duration of a span in seconds (0 when the end precedes the start).
pub fn duration_s(rec: &SpanRecord) -> f64 {
    let s = &rec.span;
    s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as f64 / 1e9
}

fn is_error(rec: &SpanRecord) -> bool {
    rec.span
        .status
        .as_ref()
        .is_some_and(|st| st.code == StatusCode::Error as i32)
}

/// The table, owned behind one lock by [`super::RedMetrics`].
#[derive(Debug)]
pub struct Table {
    /// Bucket upper bounds, seconds, increasing.
    pub bounds: Vec<f64>,
    /// Extra dimensions (attribute keys).
    pub dimensions: Vec<String>,
    /// Series by key ([`write_key`]).
    pub series: HashMap<Box<str>, Series>,
    /// Where spans of new series go once `max_series` exist.
    pub overflow: Option<Series>,
    /// Spans counted into the overflow series.
    pub overflow_spans: u64,
    /// Series removed after `idle` without a span.
    pub expired: u64,
    /// Most series.
    max_series: usize,
    /// Idle time after which a series is removed.
    idle: Duration,
    /// When the next expiry sweep is due.
    next_sweep: Instant,
    /// Key scratch, reused so a lookup allocates nothing.
    key: String,
}

impl Table {
    /// An empty table.
    pub fn new(
        bounds: Vec<f64>,
        dimensions: Vec<String>,
        max_series: usize,
        idle: Duration,
        now: Instant,
    ) -> Table {
        Table {
            bounds,
            dimensions,
            series: HashMap::new(),
            overflow: None,
            overflow_spans: 0,
            expired: 0,
            max_series,
            idle,
            next_sweep: now + Self::sweep_every(idle),
            key: String::with_capacity(128),
        }
    }

    /// Sweeps often enough that a series lives at most `idle` and a quarter.
    fn sweep_every(idle: Duration) -> Duration {
        (idle / 4).max(Duration::from_millis(100))
    }

    fn bucket(&self, v: f64) -> usize {
        self.bounds.partition_point(|b| *b < v)
    }

    /// Counts one span. Returns true when it went to the overflow series.
    pub fn record(&mut self, rec: &SpanRecord, now: Instant) -> bool {
        write_key(&mut self.key, rec, &self.dimensions);
        let d = duration_s(rec);
        let b = self.bucket(d);
        let error = is_error(rec);
        if let Some(s) = self.series.get_mut(self.key.as_str()) {
            s.count(b, d, error, now);
            return false;
        }
        let nbuckets = self.bounds.len();
        if self.series.len() < self.max_series {
            let labels = parse_key(&self.key).unwrap_or_default();
            let mut s = Series::new(labels.into_boxed_slice(), nbuckets, now);
            s.count(b, d, error, now);
            self.series.insert(Box::from(self.key.as_str()), s);
            return false;
        }
        self.overflow_spans += 1;
        let labels = vec![String::new(); 4 + self.dimensions.len()];
        self.overflow
            .get_or_insert_with(|| Series::new(labels.into_boxed_slice(), nbuckets, now))
            .count(b, d, error, now);
        true
    }

    /// Attaches exemplars from a span whose trace the backend accepted, to the series it was
    /// counted in (a span whose series has expired or overflowed gives none).
    pub fn confirm(&mut self, rec: &SpanRecord, at: SystemTime) {
        let (Ok(trace_id), Ok(span_id)) = (
            <[u8; 16]>::try_from(rec.span.trace_id.as_slice()),
            <[u8; 8]>::try_from(rec.span.span_id.as_slice()),
        ) else {
            return;
        };
        write_key(&mut self.key, rec, &self.dimensions);
        let d = duration_s(rec);
        let b = self.bucket(d);
        let nbuckets = self.bounds.len() + 1;
        let Some(series) = self.series.get_mut(self.key.as_str()) else {
            return;
        };
        let ex = Exemplar {
            trace_id,
            span_id,
            value: d,
            at,
        };
        series
            .bucket_exemplars
            .get_or_insert_with(|| vec![None; nbuckets].into_boxed_slice())[b] = Some(ex);
        if is_error(rec) {
            series.error_exemplar = Some(Exemplar { value: 1.0, ..ex });
        }
    }

    /// Removes the series idle for longer than `idle`, at most once per sweep interval.
    pub fn expire(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + Self::sweep_every(self.idle);
        let idle = self.idle;
        let before = self.series.len();
        self.series
            .retain(|_, s| now.saturating_duration_since(s.last_seen) < idle);
        self.expired += (before - self.series.len()) as u64;
        // Spare capacity left by a flood is given back, so memory follows the live series.
        if self.series.capacity() > 2 * self.series.len().max(16) {
            self.series.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry_proto::tonic::trace::v1::{Span, Status};

    use super::*;

    fn rec(name: &str, ms: u64, error: bool) -> SpanRecord {
        SpanRecord {
            resource: Arc::default(),
            scope: Arc::default(),
            span: Span {
                trace_id: vec![7; 16],
                span_id: vec![1; 8],
                name: name.into(),
                start_time_unix_nano: 1_000,
                end_time_unix_nano: 1_000 + ms * 1_000_000,
                status: error.then(|| Status {
                    code: StatusCode::Error as i32,
                    message: String::new(),
                }),
                ..Default::default()
            },
        }
    }

    fn table(max: usize, now: Instant) -> Table {
        Table::new(
            vec![0.01, 0.1, 1.0],
            vec![],
            max,
            Duration::from_secs(60),
            now,
        )
    }

    #[test]
    fn counts_buckets_errors_and_sum() {
        let now = Instant::now();
        let mut t = table(10, now);
        for (ms, err) in [(5, false), (50, true), (50, false), (5000, true)] {
            t.record(&rec("op", ms, err), now);
        }
        let s = t.series.values().next().unwrap();
        assert_eq!((s.requests, s.errors), (4, 2));
        assert_eq!(&*s.buckets, &[1, 2, 0, 1]);
        assert!((s.sum - 5.105).abs() < 1e-9);
        // A bound is inclusive (le): 100 ms counts in the 0.1 bucket.
        t.record(&rec("op", 100, false), now);
        assert_eq!(t.series.values().next().unwrap().buckets[1], 3);
    }

    #[test]
    fn beyond_max_series_spans_count_into_overflow() {
        let now = Instant::now();
        let mut t = table(2, now);
        for i in 0..5 {
            t.record(&rec(&format!("route-{i}"), 1, false), now);
        }
        assert_eq!(t.series.len(), 2);
        assert_eq!(t.overflow_spans, 3);
        assert_eq!(t.overflow.as_ref().unwrap().requests, 3);
        // Known series still count in their own.
        assert!(!t.record(&rec("route-0", 1, false), now));
    }

    #[test]
    fn exemplars_only_for_confirmed_spans_of_live_series() {
        let now = Instant::now();
        let mut t = table(1, now);
        t.record(&rec("op", 50, true), now);
        t.record(&rec("other", 50, true), now); // overflow
        assert!(t.series.values().next().unwrap().bucket_exemplars.is_none());
        let at = SystemTime::now();
        t.confirm(&rec("op", 50, true), at);
        t.confirm(&rec("other", 50, true), at);
        let s = t.series.values().next().unwrap();
        let ex = s.bucket_exemplars.as_ref().unwrap();
        assert_eq!(ex[1].unwrap().trace_id, [7; 16]);
        assert!(ex[0].is_none() && ex[2].is_none());
        assert_eq!(s.error_exemplar.unwrap().value, 1.0);
        assert!(t.overflow.as_ref().unwrap().bucket_exemplars.is_none());
    }

    #[test]
    fn idle_series_expire() {
        let now = Instant::now();
        let mut t = table(10, now);
        t.record(&rec("old", 1, false), now);
        let later = now + Duration::from_secs(50);
        t.record(&rec("new", 1, false), later);
        t.expire(now + Duration::from_secs(70));
        assert_eq!(t.series.len(), 1);
        assert_eq!(t.expired, 1);
    }
}
