//! Context propagation: reading and writing trace headers through tiny [`Extractor`] and
//! [`Injector`] traits, so the rules are tested here with a `HashMap` and the filter
//! implements the traits over Envoy's header maps.

pub mod b3;
pub mod baggage;
pub mod jaeger;
pub mod traceparent;
pub mod tracestate;

use crate::ids::{SpanId, TraceId};
use std::collections::HashMap;
use traceparent::{TraceParent, FLAG_SAMPLED};
use tracestate::TraceState;

/// A header format the filter reads a parent context from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundFormat {
    /// W3C `traceparent` + `tracestate`.
    W3c,
    /// B3 single (`b3`) or multi (`x-b3-*`).
    B3,
    /// Jaeger `uber-trace-id`.
    Jaeger,
}

/// A header format the filter writes for the upstream request (W3C is always written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundFormat {
    /// W3C `traceparent` + `tracestate`.
    W3c,
    /// B3 multi-header `x-b3-*`.
    B3,
    /// B3 single header `b3`.
    B3Single,
    /// Jaeger `uber-trace-id`.
    Jaeger,
}

/// A parent context received from the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteContext {
    /// The trace id (valid).
    pub trace_id: TraceId,
    /// The caller's span id (valid).
    pub span_id: SpanId,
    /// The caller's sampling decision; `None` when the format let it defer (B3).
    pub sampled: Option<bool>,
    /// W3C trace flags as received (B3/Jaeger: just the sampled bit).
    pub flags: u8,
    /// The valid `tracestate` (W3C only).
    pub tracestate: Option<TraceState>,
    /// Where the context came from.
    pub format: InboundFormat,
}

impl RemoteContext {
    /// A context from a non-W3C format (no random flag: its randomness is not promised).
    pub fn new(trace_id: TraceId, span_id: SpanId, sampled: Option<bool>) -> RemoteContext {
        RemoteContext {
            trace_id,
            span_id,
            sampled,
            flags: if sampled == Some(true) {
                FLAG_SAMPLED
            } else {
                0
            },
            tracestate: None,
            format: InboundFormat::B3,
        }
    }
}

/// The outcome of reading the incoming headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The parent context, if any format had a valid one.
    pub context: Option<RemoteContext>,
    /// A `traceparent` was present but invalid (or repeated).
    pub invalid_traceparent: bool,
    /// A `tracestate` was present with a valid `traceparent` but was itself invalid (dropped)
    /// or repeated a key (the later members discarded).
    pub invalid_tracestate: bool,
    /// No context, but the caller sent a sampling decision alone (B3 `b3: 0`,
    /// `x-b3-sampled: 0`, ...): honored for the trace we start.
    pub sampling_hint: Option<bool>,
}

/// Reads the parent context: W3C first when enabled (an invalid `traceparent` means its
/// `tracestate` is ignored), then the other enabled formats in the configured order.
pub fn extract(h: &(impl Extractor + ?Sized), formats: &[InboundFormat]) -> Extracted {
    let mut out = Extracted::default();
    if formats.contains(&InboundFormat::W3c) {
        match TraceParent::extract(h) {
            Ok(Some(tp)) => {
                let tracestate = match TraceState::extract(h) {
                    Ok(ts) => {
                        // Repeated keys were discarded: a repaired list, counted like a dropped one.
                        out.invalid_tracestate = ts.as_ref().is_some_and(|t| t.duplicates() > 0);
                        ts
                    }
                    Err(_) => {
                        out.invalid_tracestate = true;
                        None
                    }
                };
                out.context = Some(RemoteContext {
                    trace_id: tp.trace_id,
                    span_id: tp.parent_id,
                    sampled: Some(tp.sampled()),
                    flags: tp.flags,
                    tracestate,
                    format: InboundFormat::W3c,
                });
                return out;
            }
            Ok(None) => {}
            Err(_) => out.invalid_traceparent = true,
        }
    }
    for f in formats {
        let ctx = match f {
            InboundFormat::W3c => None,
            InboundFormat::B3 => b3::extract(h),
            InboundFormat::Jaeger => jaeger::extract(h).map(|c| RemoteContext {
                format: InboundFormat::Jaeger,
                ..c
            }),
        };
        if ctx.is_some() {
            out.context = ctx;
            return out;
        }
    }
    if formats.contains(&InboundFormat::B3) {
        out.sampling_hint = b3::sampling_only(h);
    }
    out
}

/// Writes the context of the upstream request, whose parent is the proxy's span `span_id`:
/// W3C always (`tracestate` removed when empty, so a stale one never leaks), plus each
/// configured legacy format.
pub fn inject(
    inj: &mut dyn Injector,
    formats: &[OutboundFormat],
    trace_id: &TraceId,
    span_id: &SpanId,
    flags: u8,
    tracestate: &str,
) {
    let tp = TraceParent {
        trace_id: *trace_id,
        parent_id: *span_id,
        flags,
    };
    let mut buf = [0u8; traceparent::LEN];
    tp.write(&mut buf);
    inj.set(
        traceparent::TRACEPARENT,
        core::str::from_utf8(&buf).unwrap_or_default(),
    );
    if tracestate.is_empty() {
        inj.remove(tracestate::TRACESTATE);
    } else {
        inj.set(tracestate::TRACESTATE, tracestate);
    }
    let sampled = flags & FLAG_SAMPLED != 0;
    for f in formats {
        match f {
            OutboundFormat::W3c => {}
            OutboundFormat::B3 => b3::inject_multi(inj, trace_id, span_id, sampled),
            OutboundFormat::B3Single => b3::inject_single(inj, trace_id, span_id, sampled),
            OutboundFormat::Jaeger => jaeger::inject(inj, trace_id, span_id, sampled),
        }
    }
}

/// Inbound legacy headers that name the caller's span, by the outbound format that would
/// overwrite them. `uberctx-*` (Jaeger baggage) is not among them: it stays.
const LEGACY: [(&str, OutboundFormat); 7] = [
    (b3::B3, OutboundFormat::B3Single),
    (b3::X_B3_TRACEID, OutboundFormat::B3),
    (b3::X_B3_SPANID, OutboundFormat::B3),
    (b3::X_B3_PARENTSPANID, OutboundFormat::B3),
    (b3::X_B3_SAMPLED, OutboundFormat::B3),
    (b3::X_B3_FLAGS, OutboundFormat::B3),
    (jaeger::UBER_TRACE_ID, OutboundFormat::Jaeger),
];

/// Removes inbound B3/Jaeger headers of formats we do not write: forwarded unchanged they
/// would make the upstream a child of the caller's span (or of another trace), contradicting
/// the `traceparent` we send, whose parent is the proxy span. Formats we write were
/// overwritten by [`inject`] (which also removes `x-b3-parentspanid` and `x-b3-flags`).
/// Only headers present in `h` cost a removal.
pub fn remove_stale_legacy(
    h: &(impl Extractor + ?Sized),
    inj: &mut dyn Injector,
    formats: &[OutboundFormat],
) {
    for (name, by) in LEGACY {
        if !formats.contains(&by) && h.get(name).is_some() {
            inj.remove(name);
        }
    }
}

/// Read access to request headers. Names are lowercase (HTTP/2 and Envoy lowercase them).
pub trait Extractor {
    /// Every value of header `name`, one per header line, in the order received.
    /// Repeated lines matter: two `traceparent` lines make the context invalid, and
    /// `tracestate` lines are combined in order.
    fn get_all(&self, name: &str) -> Vec<&str>;

    /// The first value of header `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).first().copied()
    }
}

/// Write access to outbound request headers.
pub trait Injector {
    /// Sets header `name` to `value`, replacing every existing line of it.
    fn set(&mut self, name: &str, value: &str);
    /// Removes every line of header `name` (a stale incoming header must not leak upstream).
    fn remove(&mut self, name: &str);
}

/// Headers as `(name, value)` lines, the shape Envoy returns them in.
impl Extractor for [(String, String)] {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Extractor for Vec<(String, String)> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.as_slice().get_all(name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        Extractor::get(self.as_slice(), name)
    }
}

/// A multi-valued map, for tests and for callers without a header list.
impl Extractor for HashMap<String, Vec<String>> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// A single-valued map, for tests.
impl Extractor for HashMap<String, String> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.get(name).map(|v| vec![v.as_str()]).unwrap_or_default()
    }
}

impl Injector for HashMap<String, String> {
    fn set(&mut self, name: &str, value: &str) {
        self.insert(name.to_owned(), value.to_owned());
    }

    fn remove(&mut self, name: &str) {
        HashMap::remove(self, name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
    const ALL: &[InboundFormat] = &[InboundFormat::W3c, InboundFormat::B3, InboundFormat::Jaeger];

    fn hm(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut h: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            h.entry(k.to_string()).or_default().push(v.to_string());
        }
        h
    }

    #[test]
    fn w3c_wins_and_carries_tracestate() {
        let h = hm(&[
            ("traceparent", TP),
            ("tracestate", "a=1"),
            ("tracestate", "ot=th:8"),
            ("b3", "1"),
        ]);
        let e = extract(&h, ALL);
        let c = e.context.unwrap();
        assert_eq!(c.format, InboundFormat::W3c);
        assert_eq!(c.flags, 0x03, "random flag kept");
        assert_eq!(c.tracestate.unwrap().header_value(), "a=1,ot=th:8");
    }

    #[test]
    fn invalid_tracestate_is_dropped_and_counted() {
        let e = extract(&hm(&[("traceparent", TP), ("tracestate", "A=1")]), ALL);
        assert!(e.invalid_tracestate);
        assert_eq!(e.context.unwrap().tracestate, None);
    }

    #[test]
    fn invalid_traceparent_falls_back_and_ignores_tracestate() {
        let bad = TP.replace("-03", "-0x");
        let h = hm(&[
            ("traceparent", &bad),
            ("tracestate", "a=1"),
            ("uber-trace-id", "abc:def:0:1"),
        ]);
        let e = extract(&h, ALL);
        assert!(e.invalid_traceparent && !e.invalid_tracestate);
        let c = e.context.unwrap();
        assert_eq!(c.format, InboundFormat::Jaeger);
        assert_eq!(c.tracestate, None);
        assert_eq!(c.sampled, Some(true));
        let only_w3c = extract(&h, &[InboundFormat::W3c]);
        assert!(only_w3c.context.is_none(), "disabled formats are not read");
    }

    #[test]
    fn repeated_tracestate_keys_are_discarded_and_counted() {
        let e = extract(
            &hm(&[("traceparent", TP), ("tracestate", "a=1,b=2,a=3")]),
            ALL,
        );
        assert!(e.invalid_tracestate);
        assert_eq!(
            e.context.unwrap().tracestate.unwrap().header_value(),
            "a=1,b=2"
        );
        let e = extract(&hm(&[("traceparent", TP), ("tracestate", "a=1,b=2")]), ALL);
        assert!(!e.invalid_tracestate);
    }

    #[test]
    fn duplicate_traceparent_lines_are_invalid() {
        let e = extract(&hm(&[("traceparent", TP), ("traceparent", TP)]), ALL);
        assert!(e.invalid_traceparent && e.context.is_none());
    }

    fn legacy_inbound() -> HashMap<String, String> {
        [
            ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
            ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
            ("x-b3-parentspanid", "0000000000000001"),
            ("x-b3-sampled", "1"),
            ("x-b3-flags", "1"),
            (
                "uber-trace-id",
                "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
            ),
            ("uberctx-tenant", "acme"),
            ("baggage", "k=v"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[rustfmt::skip]
    const STALE: &[(&[OutboundFormat], &[&str], &str)] = &[
        (&[],
         &["baggage", "traceparent", "uberctx-tenant"],
         "w3c only: every legacy context header goes, Jaeger baggage stays"),
        (&[OutboundFormat::B3],
         &["baggage", "traceparent", "uberctx-tenant", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid"],
         "b3 multi written: x-b3-* overwritten (parent and flags removed), b3 single is stale"),
        (&[OutboundFormat::B3Single],
         &["b3", "baggage", "traceparent", "uberctx-tenant"],
         "b3 single written"),
        (&[OutboundFormat::Jaeger],
         &["baggage", "traceparent", "uber-trace-id", "uberctx-tenant"],
         "jaeger written"),
    ];

    #[test]
    fn stale_legacy_headers_are_removed_unless_written() {
        let t = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        let s = SpanId::from_hex("2222222222222222").unwrap();
        for &(formats, left, why) in STALE {
            let inbound = legacy_inbound();
            let mut out = inbound.clone();
            inject(&mut out, formats, &t, &s, 0x01, "");
            remove_stale_legacy(&inbound, &mut out, formats);
            let mut keys: Vec<&str> = out.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, left, "{why}");
            // What remains names the proxy span, never the caller's.
            for (k, v) in &out {
                if k != "baggage" && k != "uberctx-tenant" && k != "x-b3-sampled" {
                    assert!(
                        v.contains("2222222222222222") || v.contains("0af7651916cd43dd"),
                        "{why}: {k}: {v}"
                    );
                }
            }
        }
    }

    #[test]
    fn inject_w3c_and_legacy() {
        let t = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let s = SpanId::from_hex("1111111111111111").unwrap();
        let mut out: HashMap<String, String> =
            HashMap::from([("tracestate".to_string(), "stale=1".to_string())]);
        inject(&mut out, &[OutboundFormat::W3c], &t, &s, 0x03, "");
        assert_eq!(
            out["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-03"
        );
        assert!(!out.contains_key("tracestate"));
        let all = [
            OutboundFormat::B3,
            OutboundFormat::B3Single,
            OutboundFormat::Jaeger,
        ];
        inject(&mut out, &all, &t, &s, 0x02, "ot=th:0");
        assert_eq!(out["tracestate"], "ot=th:0");
        assert_eq!(out["x-b3-sampled"], "0");
        assert_eq!(
            out["b3"],
            "4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-0"
        );
        assert_eq!(
            out["uber-trace-id"],
            "4bf92f3577b34da6a3ce929d0e0e4736:1111111111111111:0:0"
        );
    }
}
