//! The per-VM span buffer and its flush policy, apart from the host so it is tested here:
//! bounded (a span beyond `max_buffered` is dropped, and the caller counts it), full batches
//! leave at once, a partial batch at most every `flush_interval`.

use crate::span::Span;
use std::collections::VecDeque;

/// Longest period between two flush checks: a full batch waits at most this long.
pub const MAX_TICK_MS: u64 = 100;

/// The period of the adapter's flush check for a `flush_interval_ms`.
pub fn tick_ms(flush_interval_ms: u64) -> u64 {
    flush_interval_ms.clamp(1, MAX_TICK_MS)
}

/// What happened to a pushed span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Buffered; `full_batch` when the buffer now holds at least one full batch.
    Buffered {
        /// A full batch is waiting: flush soon.
        full_batch: bool,
    },
    /// The buffer was full: the span was dropped.
    Dropped,
}

/// Finished spans waiting for export: the span model (Wasm), or spans already encoded
/// ([`crate::wire::EncodedSpan`], the native module).
#[derive(Debug)]
pub struct SpanBuffer<T = Span> {
    spans: VecDeque<T>,
    max_buffered: usize,
    max_batch: usize,
    flush_interval_ns: u64,
    last_flush_ns: u64,
}

impl<T> SpanBuffer<T> {
    /// An empty buffer; `now_ns` starts the first flush interval.
    pub fn new(
        max_buffered: usize,
        max_batch: usize,
        flush_interval_ms: u64,
        now_ns: u64,
    ) -> SpanBuffer<T> {
        SpanBuffer {
            spans: VecDeque::new(),
            max_buffered: max_buffered.max(1),
            max_batch: max_batch.max(1),
            flush_interval_ns: flush_interval_ms.saturating_mul(1_000_000),
            last_flush_ns: now_ns,
        }
    }

    /// Adds a finished span, unless the buffer is full.
    pub fn push(&mut self, span: T) -> Pushed {
        if self.spans.len() >= self.max_buffered {
            return Pushed::Dropped;
        }
        self.spans.push_back(span);
        Pushed::Buffered {
            full_batch: self.spans.len() >= self.max_batch,
        }
    }

    /// Spans waiting.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The next batch to send at `now_ns`: a full batch whenever there is one; otherwise
    /// what is left once the flush interval has passed since the last partial flush (or
    /// when `force` is set, at shutdown). Call repeatedly while the caller can send.
    pub fn next_batch(&mut self, now_ns: u64, force: bool) -> Option<Vec<T>> {
        let n = self.spans.len();
        if n >= self.max_batch {
            return Some(self.spans.drain(..self.max_batch).collect());
        }
        let due = force || now_ns.saturating_sub(self.last_flush_ns) >= self.flush_interval_ns;
        if !due {
            return None;
        }
        // The interval restarts at every due check, with or without spans to send.
        self.last_flush_ns = now_ns;
        (n > 0).then(|| self.spans.drain(..).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SpanId, TraceId};
    use crate::span::{SpanKind, StatusCode};

    const MS: u64 = 1_000_000;

    fn span(i: u64) -> Span {
        Span {
            trace_id: TraceId::from_u64(1),
            span_id: SpanId::from_u64(i + 1),
            parent_span_id: None,
            parent_is_remote: false,
            flags: 1,
            trace_state: String::new(),
            name: "GET".into(),
            kind: SpanKind::Server,
            start_unix_nano: 0,
            end_unix_nano: 0,
            attributes: Vec::new(),
            status: StatusCode::Unset,
            status_message: String::new(),
            links: Vec::new(),
        }
    }

    #[test]
    fn bounded_and_drops_beyond_the_limit() {
        let mut b = SpanBuffer::new(3, 2, 1000, 0);
        assert_eq!(b.push(span(0)), Pushed::Buffered { full_batch: false });
        assert_eq!(b.push(span(1)), Pushed::Buffered { full_batch: true });
        assert_eq!(b.push(span(2)), Pushed::Buffered { full_batch: true });
        assert_eq!(b.push(span(3)), Pushed::Dropped);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn full_batches_leave_at_once_partial_ones_on_the_interval() {
        let mut b = SpanBuffer::new(100, 4, 1000, 0);
        for i in 0..10 {
            b.push(span(i));
        }
        let first = b.next_batch(1, false).unwrap();
        assert_eq!(first.len(), 4);
        assert_eq!(first[0].span_id, SpanId::from_u64(1), "oldest first");
        assert_eq!(b.next_batch(2, false).unwrap().len(), 4);
        assert_eq!(b.next_batch(3, false), None, "2 left: not due yet");
        assert_eq!(
            b.next_batch(1000 * MS, false).unwrap().len(),
            2,
            "due after the interval"
        );
        assert!(b.is_empty());
        b.push(span(11));
        assert_eq!(
            b.next_batch(1500 * MS, false),
            None,
            "interval restarted at the last flush"
        );
        assert_eq!(b.next_batch(2000 * MS, false).unwrap().len(), 1);
    }

    #[test]
    fn force_flushes_what_is_left() {
        let mut b = SpanBuffer::new(100, 4, 60_000, 0);
        b.push(span(0));
        assert_eq!(b.next_batch(1, false), None);
        assert_eq!(b.next_batch(1, true).unwrap().len(), 1);
        assert_eq!(b.next_batch(2, true), None, "nothing left");
    }
}
