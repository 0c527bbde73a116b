//! The head-sampling decision for one request: which trace, which parent, sampled or not,
//! what travels upstream in `traceparent`/`tracestate`.
//!
//! - A trusted valid parent with a decision (W3C flag, B3/Jaeger sampled) is followed; its
//!   `ot` member is propagated as received.
//! - A parent that deferred (B3 without a sampling state) and new traces are decided by
//!   consistent probability sampling; when that keeps the trace, `ot=th:<T>` is written
//!   (leftmost, as the member we updated).
//! - The force header samples the request; a decision not made by probability carries no
//!   `th` (its adjusted count is unknown), and neither does an unsampled context.
//! - `trust_incoming_context = false`: a new trace; the incoming context becomes a link.

use crate::config::Config;
use crate::ids::{IdGenerator, SpanId, TraceId};
use crate::propagation::traceparent::{FLAG_RANDOM, FLAG_SAMPLED, KNOWN_FLAGS};
use crate::propagation::tracestate::TraceState;
use crate::propagation::{Extracted, InboundFormat, OutboundFormat};
use crate::sampling::{OtTraceState, Randomness, Threshold};
use crate::semconv::{describe, Exchange};
use crate::span::{Link, Span, SpanKind};

/// The sampling policy, prepared once from the configuration.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Threshold for new traces.
    pub threshold: Threshold,
    /// Continue incoming traces.
    pub trust_incoming: bool,
    /// Record a span for unsampled requests.
    pub record_unsampled: bool,
    /// Formats read.
    pub inbound: Vec<InboundFormat>,
    /// Legacy formats written.
    pub outbound: Vec<OutboundFormat>,
    /// The tracestate of a new trace kept by the threshold (`ot=th:<T>`), built once.
    pub new_trace_state: String,
}

impl Policy {
    /// The policy of a configuration.
    pub fn from_config(cfg: &Config) -> Policy {
        Policy {
            threshold: cfg.threshold(),
            trust_incoming: cfg.trust_incoming_context,
            record_unsampled: cfg.record_unsampled,
            inbound: cfg.inbound(),
            outbound: cfg.outbound(),
            new_trace_state: cfg
                .threshold()
                .to_th()
                .map(|th| format!("ot=th:{th}"))
                .unwrap_or_default(),
        }
    }
}

/// What to do with one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The trace the proxy span belongs to.
    pub trace_id: TraceId,
    /// The proxy span's id (parent of the upstream request).
    pub span_id: SpanId,
    /// The caller's span, when continuing a trace.
    pub parent_id: Option<SpanId>,
    /// W3C trace flags for the span and the upstream request.
    pub flags: u8,
    /// Sampled (flag 0x01).
    pub sampled: bool,
    /// Produce a span (sampled, or record-only when `record_unsampled`).
    pub record: bool,
    /// The tracestate for the upstream request and the span (`""` = none).
    pub tracestate: String,
    /// The untrusted incoming context, as a link.
    pub link: Option<Link>,
}

impl Decision {
    /// The finished span for this decision: name, attributes and status from `ex`,
    /// timestamps from the host clock. Unsampled spans get `aetherflow.sampling.record_only`.
    pub fn to_span(
        &self,
        ex: Exchange,
        kind: SpanKind,
        max_attribute_length: usize,
        start_unix_nano: u64,
        end_unix_nano: u64,
    ) -> Span {
        let mut d = describe(ex, kind, max_attribute_length);
        if !self.sampled {
            d.attributes
                .bool(crate::contract::RECORD_ONLY_ATTRIBUTE, true);
        }
        Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_id,
            parent_is_remote: self.parent_id.is_some(),
            flags: self.flags,
            trace_state: self.tracestate.clone(),
            name: d.name,
            kind,
            start_unix_nano,
            end_unix_nano: end_unix_nano.max(start_unix_nano),
            attributes: d.attributes.list,
            status: d.status,
            status_message: d.status_message,
            links: self.link.iter().cloned().collect(),
        }
    }
}

fn update_ot(ts: &mut TraceState, f: impl FnOnce(&mut OtTraceState)) {
    let mut ot = ts
        .get("ot")
        .and_then(|v| OtTraceState::parse(v).ok())
        .unwrap_or_default();
    let before = ot.clone();
    f(&mut ot);
    if ot == before && ts.get("ot").is_some() {
        return;
    }
    if ot.is_empty() {
        ts.remove("ot");
    } else {
        ts.set_front("ot", &ot.to_value());
    }
}

/// Decides for one request. `force` is the force-sample header's verdict.
pub fn decide(
    policy: &Policy,
    extracted: Extracted,
    force: bool,
    ids: &mut IdGenerator,
) -> Decision {
    let span_id = ids.span_id();
    // A caller's decision without ids (B3 `b3: 0`) counts only from a trusted caller.
    let hint = extracted.sampling_hint.filter(|_| policy.trust_incoming);
    let (ctx, link) = if policy.trust_incoming {
        (extracted.context, None)
    } else {
        let link = extracted.context.map(|c| Link {
            trace_id: c.trace_id,
            span_id: c.span_id,
            trace_state: c.tracestate.map(|t| t.header_value()).unwrap_or_default(),
            flags: c.flags & KNOWN_FLAGS,
            is_remote: true,
        });
        (None, link)
    };

    let (trace_id, parent_id, mut flags, mut ts) = match ctx {
        Some(c) => {
            let mut ts = c.tracestate.unwrap_or_default();
            let (sampled, by_probability) = match c.sampled {
                Some(s) => (s, false),
                None => {
                    let ot = ts
                        .get("ot")
                        .and_then(|v| OtTraceState::parse(v).ok())
                        .unwrap_or_default();
                    (
                        policy
                            .threshold
                            .should_sample(ot.randomness_for(&c.trace_id)),
                        true,
                    )
                }
            };
            if by_probability && sampled {
                update_ot(&mut ts, |ot| ot.threshold = Some(policy.threshold));
            }
            let flags = (c.flags & FLAG_RANDOM) | if sampled { FLAG_SAMPLED } else { 0 };
            (c.trace_id, Some(c.span_id), flags, ts)
        }
        None => {
            // The common case on an edge proxy: no string work beyond one clone.
            let trace_id = ids.trace_id();
            let kept = match hint {
                Some(caller) => caller,
                None => policy
                    .threshold
                    .should_sample(Randomness::from_trace_id(&trace_id)),
            };
            let sampled = kept || force;
            // Only a probabilistic decision carries a threshold.
            let kept = kept && hint.is_none();
            return Decision {
                trace_id,
                span_id,
                parent_id: None,
                flags: FLAG_RANDOM | if sampled { FLAG_SAMPLED } else { 0 },
                sampled,
                record: sampled || policy.record_unsampled,
                tracestate: if kept {
                    policy.new_trace_state.clone()
                } else {
                    String::new()
                },
                link,
            };
        }
    };

    let forced = force && flags & FLAG_SAMPLED == 0;
    if forced {
        flags |= FLAG_SAMPLED;
    }
    let sampled = flags & FLAG_SAMPLED != 0;
    // A threshold describes a probabilistic decision that kept the trace; forced or
    // unsampled contexts must not carry one.
    if (!sampled || forced) && ts.get("ot").is_some() {
        update_ot(&mut ts, |ot| ot.threshold = None);
    }
    Decision {
        trace_id,
        span_id,
        parent_id,
        flags,
        sampled,
        record: sampled || policy.record_unsampled,
        tracestate: if ts.is_empty() {
            String::new()
        } else {
            ts.header_value()
        },
        link,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::{extract, RemoteContext};
    use std::collections::HashMap;

    const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn policy(ratio: f64) -> Policy {
        let cfg = Config {
            sample_ratio: ratio,
            ..Config::default()
        };
        Policy::from_config(&cfg)
    }

    fn hdrs(pairs: &[(&str, &str)]) -> Extracted {
        let h: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        extract(
            &h,
            &[InboundFormat::W3c, InboundFormat::B3, InboundFormat::Jaeger],
        )
    }

    #[test]
    fn new_trace_always_sampled_writes_th_0_and_random_flag() {
        let mut g = IdGenerator::from_u64(1);
        let d = decide(&policy(1.0), Extracted::default(), false, &mut g);
        assert!(d.sampled && d.record);
        assert_eq!(d.flags, 0x03);
        assert_eq!(d.tracestate, "ot=th:0");
        assert_eq!(d.parent_id, None);
        assert!(d.trace_id.is_valid() && d.span_id.is_valid());
    }

    #[test]
    fn new_trace_decision_is_consistent_with_the_threshold() {
        let p = policy(0.25);
        let mut g = IdGenerator::from_u64(9);
        let mut kept = 0;
        for _ in 0..2000 {
            let d = decide(&p, Extracted::default(), false, &mut g);
            let want = p
                .threshold
                .should_sample(Randomness::from_trace_id(&d.trace_id));
            assert_eq!(d.sampled, want);
            if d.sampled {
                kept += 1;
                assert_eq!(d.tracestate, "ot=th:c");
            } else {
                assert_eq!(d.tracestate, "", "no th on unsampled traces");
                assert_eq!(d.flags, 0x02);
                assert!(d.record, "record_unsampled defaults to true");
            }
        }
        assert!((400..600).contains(&kept), "{kept}");
    }

    #[test]
    fn sampled_parent_is_followed_and_its_tracestate_kept() {
        let e = hdrs(&[
            ("traceparent", &format!("00-{TID}-00f067aa0ba902b7-01")),
            ("tracestate", "a=1,ot=th:8"),
        ]);
        let d = decide(&policy(0.0), e, false, &mut IdGenerator::from_u64(1));
        assert!(
            d.sampled,
            "parent-based: ratio 0 does not override the parent"
        );
        assert_eq!(d.trace_id.to_hex(), TID);
        assert_eq!(d.parent_id.unwrap().to_hex(), "00f067aa0ba902b7");
        assert_eq!(
            d.flags, 0x01,
            "random flag not invented for a parent without it"
        );
        assert_eq!(d.tracestate, "a=1,ot=th:8", "unchanged");
    }

    #[test]
    fn unsampled_parent_random_flag_copied_th_erased() {
        let e = hdrs(&[
            ("traceparent", &format!("00-{TID}-00f067aa0ba902b7-02")),
            ("tracestate", "ot=th:8;rv:00000000000001,b=2"),
        ]);
        let d = decide(&policy(1.0), e, false, &mut IdGenerator::from_u64(1));
        assert!(!d.sampled && d.record);
        assert_eq!(d.flags, 0x02);
        assert_eq!(d.tracestate, "ot=rv:00000000000001,b=2");
    }

    #[test]
    fn force_header_samples_without_th() {
        let e = hdrs(&[
            ("traceparent", &format!("00-{TID}-00f067aa0ba902b7-00")),
            ("tracestate", "ot=th:8"),
        ]);
        let d = decide(&policy(0.0), e, true, &mut IdGenerator::from_u64(1));
        assert!(d.sampled);
        assert_eq!(d.flags, 0x01);
        assert_eq!(d.tracestate, "");
        let d = decide(
            &policy(0.0),
            Extracted::default(),
            true,
            &mut IdGenerator::from_u64(1),
        );
        assert!(d.sampled);
        assert_eq!(d.flags, 0x03);
        assert_eq!(d.tracestate, "", "forced new trace: no threshold");
    }

    #[test]
    fn deferred_b3_parent_is_decided_by_probability() {
        let e = hdrs(&[("b3", &format!("{TID}-00f067aa0ba902b7"))]);
        let d = decide(&policy(1.0), e, false, &mut IdGenerator::from_u64(1));
        assert!(d.sampled);
        assert_eq!(d.trace_id.to_hex(), TID);
        assert_eq!(d.tracestate, "ot=th:0");
        assert_eq!(d.flags, 0x01);
    }

    #[test]
    fn untrusted_context_becomes_a_link() {
        let mut p = policy(1.0);
        p.trust_incoming = false;
        let e = hdrs(&[
            ("traceparent", &format!("00-{TID}-00f067aa0ba902b7-01")),
            ("tracestate", "a=1"),
        ]);
        let d = decide(&p, e, false, &mut IdGenerator::from_u64(1));
        assert_ne!(d.trace_id.to_hex(), TID);
        assert_eq!(d.parent_id, None);
        let l = d.link.unwrap();
        assert_eq!(l.trace_id.to_hex(), TID);
        assert_eq!(l.span_id.to_hex(), "00f067aa0ba902b7");
        assert_eq!(l.trace_state, "a=1");
        assert!(l.is_remote);
        assert_eq!(
            d.tracestate, "ot=th:0",
            "the incoming tracestate is not propagated"
        );
    }

    #[test]
    fn spans_carry_the_decision() {
        let mut g = IdGenerator::from_u64(1);
        let ex = Exchange {
            method: "GET".into(),
            path: "/".into(),
            status: Some(200),
            ..Exchange::default()
        };
        let d = decide(&policy(0.0), Extracted::default(), false, &mut g);
        let s = d.to_span(ex.clone(), SpanKind::Server, 256, 100, 50);
        assert_eq!(s.flags, 0x02);
        assert_eq!(
            (s.start_unix_nano, s.end_unix_nano),
            (100, 100),
            "end never before start"
        );
        assert!(s
            .attributes
            .iter()
            .any(|a| a.key == "aetherflow.sampling.record_only"
                && a.value == crate::span::Value::Bool(true)));
        let d = decide(&policy(1.0), Extracted::default(), false, &mut g);
        let s = d.to_span(ex.clone(), SpanKind::Server, 256, 1, 2);
        assert!(!s
            .attributes
            .iter()
            .any(|a| a.key == "aetherflow.sampling.record_only"));
        assert_eq!(s.trace_state, "ot=th:0");
        assert_eq!(s.name, "GET");
    }

    #[test]
    fn b3_decision_without_ids_is_honored_for_the_new_trace() {
        let mut g = IdGenerator::from_u64(1);
        let d = decide(&policy(1.0), hdrs(&[("b3", "0")]), false, &mut g);
        assert!(!d.sampled && d.parent_id.is_none());
        assert_eq!((d.flags, d.tracestate.as_str()), (0x02, ""));
        let d = decide(&policy(0.0), hdrs(&[("x-b3-sampled", "1")]), false, &mut g);
        assert!(d.sampled);
        assert_eq!(d.tracestate, "", "a caller's decision has no threshold");
        let d = decide(&policy(1.0), hdrs(&[("b3", "0")]), true, &mut g);
        assert!(d.sampled, "the force header still wins");
        let mut untrusting = policy(1.0);
        untrusting.trust_incoming = false;
        let d = decide(&untrusting, hdrs(&[("b3", "0")]), false, &mut g);
        assert!(d.sampled, "an untrusted caller cannot veto sampling");
    }

    #[test]
    fn record_unsampled_off() {
        let mut p = policy(0.0);
        p.record_unsampled = false;
        let d = decide(
            &p,
            Extracted::default(),
            false,
            &mut IdGenerator::from_u64(1),
        );
        assert!(!d.sampled && !d.record);
        let _ = RemoteContext::new(TraceId::from_u64(1), SpanId::from_u64(1), None);
    }
}
