//! Consistent probability sampling on received spans, using the shared math of
//! `aetherflow_core::sampling` so the shim agrees with the filter and with OTel SDKs: the same
//! trace randomness (`rv` or the trace id's low 56 bits) compared with a threshold.
//!
//! When the shim keeps a span at a probability below 1 it records the threshold actually
//! applied in the span's tracestate (`ot=th:...`, the larger of the incoming one and its own),
//! so backends can compute adjusted counts.
use aetherflow_core::ids::TraceId;
use aetherflow_core::sampling::{OtTraceState, Threshold};
use opentelemetry_proto::tonic::trace::v1::Span;

/// The value of the `ot` member of a W3C tracestate, if any.
pub fn ot_member(trace_state: &str) -> Option<&str> {
    trace_state
        .split(',')
        .map(str::trim)
        .find_map(|m| m.strip_prefix("ot="))
}

/// `trace_state` with its `ot` member replaced by `ot=<value>` and moved to the front, as W3C
/// asks of a participant that updates its member.
pub fn with_ot_member(trace_state: &str, value: &str) -> String {
    let mut out = String::with_capacity(trace_state.len() + value.len() + 4);
    out.push_str("ot=");
    out.push_str(value);
    for m in trace_state.split(',').map(str::trim) {
        if m.is_empty() || m.starts_with("ot=") {
            continue;
        }
        out.push(',');
        out.push_str(m);
    }
    out
}

fn trace_id(span: &Span) -> TraceId {
    let mut id = [0u8; 16];
    if span.trace_id.len() == 16 {
        id.copy_from_slice(&span.trace_id);
    }
    TraceId(id)
}

/// The probability stage: keep a span iff its trace randomness reaches the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsistentSampler {
    /// Rejection threshold (`Threshold::ALWAYS` keeps all, `NEVER` none).
    threshold: Threshold,
}

impl ConsistentSampler {
    /// A sampler for probability `p` (clamped to [0, 1]).
    pub fn new(p: f64) -> Self {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            1.0
        };
        ConsistentSampler {
            threshold: Threshold::from_probability(p).unwrap_or(Threshold::NEVER),
        }
    }

    /// The threshold applied.
    pub fn threshold(&self) -> Threshold {
        self.threshold
    }

    /// Decide for one span; when kept at a threshold above the one it carries, record the new
    /// threshold in its tracestate. An unparsable `ot` member counts as absent (and is kept).
    pub fn sample(&self, span: &mut Span) -> bool {
        if self.threshold == Threshold::ALWAYS {
            return true;
        }
        if self.threshold == Threshold::NEVER {
            return false;
        }
        let ot = ot_member(&span.trace_state).and_then(|v| OtTraceState::parse(v).ok());
        let randomness = match &ot {
            Some(st) => st.randomness_for(&trace_id(span)),
            None => aetherflow_core::sampling::Randomness::from_trace_id(&trace_id(span)),
        };
        if !self.threshold.should_sample(randomness) {
            return false;
        }
        let mut st = ot.unwrap_or_default();
        let incoming = st.threshold.unwrap_or(Threshold::ALWAYS);
        if self.threshold.value() > incoming.value() {
            st.threshold = Some(self.threshold);
            span.trace_state = with_ot_member(&span.trace_state, &st.to_value());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(low56: u64, ts: &str) -> Span {
        Span {
            trace_id: TraceId::from_u64(low56).0.to_vec(),
            span_id: vec![1; 8],
            trace_state: ts.into(),
            ..Default::default()
        }
    }

    #[test]
    fn tracestate_members() {
        assert_eq!(ot_member("a=1, ot=th:8 ,b=2"), Some("th:8"));
        assert_eq!(ot_member("a=1"), None);
        assert_eq!(with_ot_member("a=1,ot=th:8,b=2", "th:c"), "ot=th:c,a=1,b=2");
        assert_eq!(with_ot_member("", "th:c"), "ot=th:c");
    }

    #[test]
    fn keeps_iff_randomness_reaches_threshold() {
        let half = ConsistentSampler::new(0.5);
        // T = 2^55: randomness 2^55 is kept, one below is not.
        let mut kept = span(1 << 55, "");
        assert!(half.sample(&mut kept));
        assert_eq!(kept.trace_state, "ot=th:8");
        assert!(!half.sample(&mut span((1 << 55) - 1, "")));
    }

    #[test]
    fn explicit_rv_wins_over_trace_id() {
        let half = ConsistentSampler::new(0.5);
        let mut s = span(0, "ot=rv:ffffffffffffff");
        assert!(half.sample(&mut s));
        assert_eq!(s.trace_state, "ot=th:8;rv:ffffffffffffff");
    }

    #[test]
    fn a_stricter_incoming_threshold_is_kept() {
        // Filter sampled at 25 % (th:c); shim at 50 %: the span passes, th stays c.
        let mut s = span(0xf0_0000_0000_0000, "ot=th:c,x=y");
        assert!(ConsistentSampler::new(0.5).sample(&mut s));
        assert_eq!(s.trace_state, "ot=th:c,x=y");
    }

    #[test]
    fn always_and_never() {
        let mut s = span(0, "");
        assert!(ConsistentSampler::new(1.0).sample(&mut s));
        assert_eq!(s.trace_state, "");
        assert!(!ConsistentSampler::new(0.0).sample(&mut span(u64::MAX >> 8, "")));
    }
}
