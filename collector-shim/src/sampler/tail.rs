//! The tail buffer: spans held per trace until the trace's decision window ends, bounded in
//! traces and in spans (the oldest trace is decided early when a bound is hit, and counted),
//! plus a bounded memory of past decisions for spans that arrive late.
//!
//! Held spans are kept in their protobuf encoding, not as decoded `Span`s: the window is what
//! the shim's memory grows with under tail sampling (at 50 k spans/s a 2 s window holds 100 000
//! spans), and a decoded span with the filter's 14 attributes takes ~1.9 KB of heap in ~35
//! allocations (~2.7 KB of RSS with malloc's overhead) against ~0.7 KB encoded. The encodings
//! are appended to the chunks of an [`Arena`] rather than allocated one by one (no allocation
//! per held span: see `arena.rs` for why). The price is an encode when a span is held and a
//! decode when its trace is decided (`tests/tail_memory.rs` bounds the per-span heap and
//! allocations; `aetherflow-bench shim-soak` measures RSS and CPU per span).
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::time::Instant;

use super::arena::{Arena, Slot};
use crate::config::TailConfig;
use crate::model::SpanRecord;

/// One held span: its resource and scope (shared) and where its encoding is.
#[derive(Debug)]
struct Packed {
    /// The resource the span arrived with.
    resource: Arc<Resource>,
    /// The scope the span arrived with.
    scope: Arc<InstrumentationScope>,
    /// `Span` in protobuf, in the arena.
    span: Slot,
}

impl Packed {
    fn pack(r: SpanRecord, arena: &mut Arena) -> Packed {
        let len = r.span.encoded_len();
        Packed {
            span: arena.put(len, |buf| r.span.encode_raw(buf)),
            resource: r.resource,
            scope: r.scope,
        }
    }

    /// The record back, its bytes released; `None` only if the bytes did not decode, which
    /// cannot happen for bytes prost encoded itself (the caller logs it rather than panic).
    fn unpack(self, arena: &mut Arena) -> Option<SpanRecord> {
        let span = Span::decode(arena.get(self.span));
        arena.release(self.span);
        Some(SpanRecord {
            resource: self.resource,
            scope: self.scope,
            span: span.ok()?,
        })
    }
}

/// Spans of one trace waiting for the decision.
#[derive(Debug)]
struct Held {
    /// The spans so far.
    spans: Vec<Packed>,
}

/// A trace taken out of the buffer for its decision.
#[derive(Debug)]
pub struct Due {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// Its spans.
    pub spans: Vec<SpanRecord>,
    /// Decided before its window ended (buffer full).
    pub early: bool,
}

/// Held traces in arrival order, and the decisions already taken.
#[derive(Debug)]
pub struct TailBuffer {
    /// Settings (window, bounds).
    cfg: TailConfig,
    /// Held traces by id.
    traces: HashMap<[u8; 16], Held>,
    /// Ids with their deadline, oldest first (deadlines grow with arrival).
    order: VecDeque<([u8; 16], Instant)>,
    /// Spans held in total.
    spans_held: usize,
    /// Recent decisions (true = kept by a policy) for late spans.
    decided: HashMap<[u8; 16], bool>,
    /// Order of `decided`, to forget the oldest.
    decided_order: VecDeque<[u8; 16]>,
    /// The held spans' bytes.
    arena: Arena,
}

impl TailBuffer {
    /// An empty buffer.
    pub fn new(cfg: TailConfig) -> Self {
        TailBuffer {
            cfg,
            traces: HashMap::new(),
            order: VecDeque::new(),
            spans_held: 0,
            decided: HashMap::new(),
            decided_order: VecDeque::new(),
            arena: Arena::default(),
        }
    }

    /// Traces held.
    pub fn traces_held(&self) -> usize {
        self.traces.len()
    }

    /// Spans held.
    pub fn spans_held(&self) -> usize {
        self.spans_held
    }

    /// The decision already taken for this trace, if remembered.
    pub fn decision(&self, id: &[u8; 16]) -> Option<bool> {
        self.decided.get(id).copied()
    }

    /// Remembers a decision (bounded by `num_traces`).
    pub fn remember(&mut self, id: [u8; 16], kept: bool) {
        if self.decided.insert(id, kept).is_none() {
            self.decided_order.push_back(id);
            while self.decided_order.len() > self.cfg.num_traces {
                if let Some(old) = self.decided_order.pop_front() {
                    self.decided.remove(&old);
                }
            }
        }
    }

    /// Holds a span; pushes onto `evicted` the traces decided early to stay within bounds.
    pub fn hold(&mut self, id: [u8; 16], span: SpanRecord, now: Instant, evicted: &mut Vec<Due>) {
        let span = Packed::pack(span, &mut self.arena);
        match self.traces.get_mut(&id) {
            Some(h) => h.spans.push(span),
            None => {
                self.traces.insert(id, Held { spans: vec![span] });
                self.order.push_back((id, now + self.cfg.decision_wait));
            }
        }
        self.spans_held += 1;
        while self.traces.len() > self.cfg.num_traces || self.spans_held > self.cfg.max_spans {
            match self.pop_front(true) {
                Some(d) => evicted.push(d),
                None => break,
            }
        }
    }

    fn pop_front(&mut self, early: bool) -> Option<Due> {
        let (id, _) = self.order.pop_front()?;
        let held = self.traces.remove(&id)?;
        self.spans_held -= held.spans.len();
        let n = held.spans.len();
        let arena = &mut self.arena;
        let spans: Vec<SpanRecord> = held
            .spans
            .into_iter()
            .filter_map(|p| p.unpack(arena))
            .collect();
        if spans.len() < n {
            tracing::error!(
                lost = n - spans.len(),
                "held spans did not decode back (a bug: they were encoded by the shim)"
            );
        }
        Some(Due {
            trace_id: id,
            spans,
            early,
        })
    }

    /// When the oldest held trace is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(_, d)| *d)
    }

    /// Takes every trace whose window has ended.
    pub fn take_due(&mut self, now: Instant, out: &mut Vec<Due>) {
        while self.order.front().is_some_and(|(_, d)| *d <= now) {
            match self.pop_front(false) {
                Some(d) => out.push(d),
                None => break,
            }
        }
    }

    /// Takes every held trace (shutdown: decisions are taken at once).
    pub fn take_all(&mut self, out: &mut Vec<Due>) {
        while let Some(d) = self.pop_front(false) {
            out.push(d);
        }
    }
}
