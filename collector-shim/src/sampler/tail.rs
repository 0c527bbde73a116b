//! The tail buffer: spans held per trace until the trace's decision window ends, bounded in
//! traces and in spans (the oldest trace is decided early when a bound is hit, and counted),
//! plus a bounded memory of past decisions for spans that arrive late.
use std::collections::{HashMap, VecDeque};

use tokio::time::Instant;

use crate::config::TailConfig;
use crate::model::SpanRecord;

/// Spans of one trace waiting for the decision.
#[derive(Debug)]
struct Held {
    /// The spans so far.
    spans: Vec<SpanRecord>,
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
        Some(Due {
            trace_id: id,
            spans: held.spans,
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
