//! Sampling: what the shim keeps of the spans it received.
//!
//! Pipeline per trace (see `docs/shim.md`):
//! 1. With tail sampling on, spans wait in the [`tail::TailBuffer`] until the trace's decision
//!    window ends (or the buffer is full, or shutdown); then the policies run in order and the
//!    first that keeps the trace keeps all its spans, record-only ones included.
//! 2. Otherwise (or with tail sampling off), record-only spans (attribute
//!    `aetherflow.sampling.record_only = true`) are dropped, and every other span goes through
//!    the consistent probability stage ([`consistent::ConsistentSampler`]), whose probability is
//!    static or [`dynamic`]. Span flags are never read: SDK spans often leave them unset.
//!
//! Layout: `consistent` (threshold stage), `policy` (tail policies), `tail` (the buffer),
//! `dynamic` (probability controller).
use tokio::time::Instant;

use crate::config::SamplingConfig;
use prometheus_client::metrics::counter::Counter;

use crate::metrics::{Metrics, SampleLabel};
use crate::model::SpanRecord;

mod arena;
pub mod consistent;
pub mod dynamic;
pub mod policy;
pub mod tail;

use consistent::ConsistentSampler;
use dynamic::DynamicProbability;
use policy::{is_error, is_record_only, NamedPolicy};
use tail::{Due, TailBuffer};

/// Tail sampling state: the buffer and the policies.
struct Tail {
    /// Spans waiting for their trace's decision.
    buffer: TailBuffer,
    /// Policies in order.
    policies: Vec<NamedPolicy>,
}

/// The sampling stage; owned by one task, so no locking.
pub struct Sampler {
    /// Consistent probability stage (rebuilt when the dynamic probability changes).
    probability: ConsistentSampler,
    /// Dynamic probability, when configured.
    dynamic: Option<DynamicProbability>,
    /// Tail sampling, when configured.
    tail: Option<Tail>,
    /// Where decisions are counted.
    metrics: Metrics,
    /// Counters of the per-span fallback decisions.
    tally: Tally,
    /// Scratch for traces taken from the buffer.
    due: Vec<Due>,
}

fn trace_key(s: &SpanRecord) -> [u8; 16] {
    let mut id = [0u8; 16];
    if s.span.trace_id.len() == 16 {
        id.copy_from_slice(&s.span.trace_id);
    }
    id
}

/// The per-span decision counters, resolved once (the fallback path runs for every span).
#[derive(Clone)]
struct Tally {
    /// `policy="probability",decision="in"`.
    kept: Counter,
    /// `policy="probability",decision="out"`.
    sampled_out: Counter,
    /// `policy="record_only",decision="out"`.
    record_only: Counter,
}

impl Tally {
    fn new(m: &Metrics) -> Self {
        let c = |policy: &str, decision: &str| {
            m.spans_sampled
                .get_or_create(&SampleLabel {
                    policy: policy.into(),
                    decision: decision.into(),
                })
                .clone()
        };
        Tally {
            kept: c("probability", "in"),
            sampled_out: c("probability", "out"),
            record_only: c("record_only", "out"),
        }
    }
}

/// No tail policy kept the span: drop record-only spans, sample the rest consistently.
fn fallback(p: &ConsistentSampler, tally: &Tally, mut s: SpanRecord, out: &mut Vec<SpanRecord>) {
    if is_record_only(&s) {
        tally.record_only.inc();
    } else if p.sample(&mut s.span) {
        tally.kept.inc();
        out.push(s);
    } else {
        tally.sampled_out.inc();
    }
}

impl Sampler {
    /// A sampler for `cfg`, starting at `now`.
    pub fn new(cfg: &SamplingConfig, metrics: Metrics, now: Instant) -> Self {
        let dynamic = cfg.dynamic.clone().map(|d| DynamicProbability::new(d, now));
        let p = dynamic
            .as_ref()
            .map_or(cfg.probability, |d| d.probability());
        metrics.sampling_probability.set(p);
        Sampler {
            probability: ConsistentSampler::new(p),
            dynamic,
            tail: cfg.tail.clone().map(|t| Tail {
                policies: t
                    .policies
                    .iter()
                    .map(|p| NamedPolicy::from_config(p, now))
                    .collect(),
                buffer: TailBuffer::new(t),
            }),
            tally: Tally::new(&metrics),
            metrics,
            due: Vec::new(),
        }
    }

    /// Takes received spans; kept spans are appended to `out` (now or on a later call).
    pub fn offer(&mut self, spans: Vec<SpanRecord>, now: Instant, out: &mut Vec<SpanRecord>) {
        if let Some(d) = &mut self.dynamic {
            for s in &spans {
                d.observe(trace_key(s), is_error(s));
            }
        }
        match &mut self.tail {
            None => {
                for s in spans {
                    fallback(&self.probability, &self.tally, s, out);
                }
            }
            Some(tail) => {
                let mut due = std::mem::take(&mut self.due);
                for s in spans {
                    let id = trace_key(&s);
                    match tail.buffer.decision(&id) {
                        // A late span follows its trace's decision.
                        Some(true) => {
                            self.metrics.sampled("late_kept_trace", true, 1);
                            out.push(s);
                        }
                        Some(false) => fallback(&self.probability, &self.tally, s, out),
                        None => tail.buffer.hold(id, s, now, &mut due),
                    }
                }
                self.decide(&mut due, now, out);
                self.due = due;
            }
        }
        self.update_gauges();
    }

    /// Takes the decisions that are due and recomputes the dynamic probability.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<SpanRecord>) {
        if let Some(d) = &mut self.dynamic {
            if d.adjust(now) {
                let p = d.probability();
                self.probability = ConsistentSampler::new(p);
                self.metrics.sampling_probability.set(p);
            }
        }
        if let Some(tail) = &mut self.tail {
            let mut due = std::mem::take(&mut self.due);
            tail.buffer.take_due(now, &mut due);
            self.decide(&mut due, now, out);
            self.due = due;
        }
        self.update_gauges();
    }

    /// Decides every held trace at once (shutdown).
    pub fn flush(&mut self, now: Instant, out: &mut Vec<SpanRecord>) {
        if let Some(tail) = &mut self.tail {
            let mut due = std::mem::take(&mut self.due);
            tail.buffer.take_all(&mut due);
            self.decide(&mut due, now, out);
            self.due = due;
        }
        self.update_gauges();
    }

    /// When `tick` has work next (a trace's window ends or the probability is due).
    pub fn next_wakeup(&self) -> Option<Instant> {
        let a = self.tail.as_ref().and_then(|t| t.buffer.next_deadline());
        let b = self.dynamic.as_ref().map(|d| d.next_adjust());
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The probability in force.
    pub fn probability(&self) -> f64 {
        self.probability.threshold().probability()
    }

    fn decide(&mut self, due: &mut Vec<Due>, now: Instant, out: &mut Vec<SpanRecord>) {
        for d in due.drain(..) {
            if d.early {
                self.metrics.tail_early_evictions.inc();
            }
            let Some(tail) = &mut self.tail else { return };
            let kept_by = tail
                .policies
                .iter_mut()
                .find_map(|p| p.evaluate(&d.spans, now));
            tail.buffer.remember(d.trace_id, kept_by.is_some());
            match kept_by {
                Some(name) => {
                    self.metrics.sampled(&name, true, d.spans.len() as u64);
                    out.extend(d.spans);
                }
                None => {
                    for s in d.spans {
                        fallback(&self.probability, &self.tally, s, out);
                    }
                }
            }
        }
    }

    fn update_gauges(&self) {
        if let Some(t) = &self.tail {
            self.metrics
                .tail_traces_held
                .set(t.buffer.traces_held() as i64);
            self.metrics
                .tail_spans_held
                .set(t.buffer.spans_held() as i64);
        }
    }
}
