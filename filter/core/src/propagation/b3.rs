//! B3 propagation (openzipkin/b3-propagation), inbound and outbound.
//!
//! - Multi-header: `x-b3-traceid` (16 or 32 hex), `x-b3-spanid` (16 hex), `x-b3-sampled`
//!   (`1`/`0`, legacy `true`/`false`), `x-b3-flags: 1` (debug, implies sampled).
//! - Single header `b3`: `{traceid}-{spanid}[-{sampled}[-{parentspanid}]]`, sampled being
//!   `1`, `0` or `d` (debug). A `b3` holding only a sampling state carries no context.
//! - 64-bit trace ids are left-padded with zeros to 128 bits.

use super::{Extractor, Injector, RemoteContext};
use crate::hex;
use crate::ids::{SpanId, TraceId};

/// Multi-header names.
pub const X_B3_TRACEID: &str = "x-b3-traceid";
/// Span id header.
pub const X_B3_SPANID: &str = "x-b3-spanid";
/// Parent span id header (never needed inbound; removed outbound).
pub const X_B3_PARENTSPANID: &str = "x-b3-parentspanid";
/// Sampling state header.
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
/// Debug flag header.
pub const X_B3_FLAGS: &str = "x-b3-flags";
/// Single header name.
pub const B3: &str = "b3";

fn trace_id(s: &str) -> Option<TraceId> {
    if s.len() != 16 && s.len() != 32 {
        return None;
    }
    let v = hex::parse_u128_any_case(s.as_bytes())?;
    let id = TraceId(v.to_be_bytes());
    id.is_valid().then_some(id)
}

fn span_id(s: &str) -> Option<SpanId> {
    if s.len() != 16 {
        return None;
    }
    let v = hex::parse_u128_any_case(s.as_bytes())? as u64;
    let id = SpanId::from_u64(v);
    id.is_valid().then_some(id)
}

/// Reads the multi-header form; `None` when absent or invalid.
pub fn extract_multi(h: &(impl Extractor + ?Sized)) -> Option<RemoteContext> {
    let tid = trace_id(h.get(X_B3_TRACEID)?.trim())?;
    let sid = span_id(h.get(X_B3_SPANID)?.trim())?;
    let debug = h.get(X_B3_FLAGS).map(str::trim) == Some("1");
    let sampled = match h.get(X_B3_SAMPLED).map(str::trim) {
        _ if debug => Some(true),
        Some("1") | Some("true") => Some(true),
        Some("0") | Some("false") => Some(false),
        None => None,
        Some(_) => return None,
    };
    Some(RemoteContext::new(tid, sid, sampled))
}

/// Reads the single-header form; `None` when absent, invalid, or sampling-only.
pub fn extract_single(h: &(impl Extractor + ?Sized)) -> Option<RemoteContext> {
    let v = h.get(B3)?.trim();
    let mut parts = v.split('-');
    let tid = trace_id(parts.next()?)?;
    let sid = span_id(parts.next()?)?;
    let sampled = match parts.next() {
        None => None,
        Some("1") | Some("d") => Some(true),
        Some("0") => Some(false),
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(RemoteContext::new(tid, sid, sampled))
}

/// A sampling state sent without ids (`b3: 0`, `b3: 1`, `b3: d`, or `x-b3-sampled` /
/// `x-b3-flags` without `x-b3-traceid`): the caller's decision for a trace we start.
pub fn sampling_only(h: &(impl Extractor + ?Sized)) -> Option<bool> {
    if let Some(v) = h.get(B3) {
        return match v.trim() {
            "0" => Some(false),
            "1" | "d" => Some(true),
            _ => None,
        };
    }
    if h.get(X_B3_TRACEID).is_some() {
        return None;
    }
    if h.get(X_B3_FLAGS).map(str::trim) == Some("1") {
        return Some(true);
    }
    match h.get(X_B3_SAMPLED).map(str::trim) {
        Some("1") | Some("true") => Some(true),
        Some("0") | Some("false") => Some(false),
        _ => None,
    }
}

/// Reads `b3` first (it is the newer form), then the multi-header form.
pub fn extract(h: &(impl Extractor + ?Sized)) -> Option<RemoteContext> {
    extract_single(h).or_else(|| extract_multi(h))
}

/// Writes the multi-header form for a request whose parent is `span`.
pub fn inject_multi(inj: &mut dyn Injector, trace: &TraceId, span: &SpanId, sampled: bool) {
    let mut t = [0u8; 32];
    trace.write_hex(&mut t);
    let mut s = [0u8; 16];
    span.write_hex(&mut s);
    inj.set(X_B3_TRACEID, core::str::from_utf8(&t).unwrap_or_default());
    inj.set(X_B3_SPANID, core::str::from_utf8(&s).unwrap_or_default());
    inj.set(X_B3_SAMPLED, if sampled { "1" } else { "0" });
    inj.remove(X_B3_PARENTSPANID);
    inj.remove(X_B3_FLAGS);
}

/// Writes the single-header form `{trace}-{span}-{1|0}`.
pub fn inject_single(inj: &mut dyn Injector, trace: &TraceId, span: &SpanId, sampled: bool) {
    let mut buf = [0u8; 32 + 1 + 16 + 2];
    let mut t = [0u8; 32];
    trace.write_hex(&mut t);
    buf[..32].copy_from_slice(&t);
    buf[32] = b'-';
    let mut s = [0u8; 16];
    span.write_hex(&mut s);
    buf[33..49].copy_from_slice(&s);
    buf[49] = b'-';
    buf[50] = if sampled { b'1' } else { b'0' };
    inj.set(B3, core::str::from_utf8(&buf).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn hm(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const T128: &str = "463ac35c9f6413ad48485a3953bb6124";
    const T64: &str = "48485a3953bb6124";
    const S: &str = "a2fb4a1d1a96d312";

    #[rustfmt::skip]
    #[test]
    fn single_header() {
        let cases: &[(&str, Option<(&str, Option<bool>)>, &str)] = &[
            ("463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1-0020000000000001", Some((T128, Some(true))), "full form"),
            ("463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312",                   Some((T128, None)),       "sampling deferred"),
            ("48485a3953bb6124-a2fb4a1d1a96d312-0",                                 Some(("000000000000000048485a3953bb6124", Some(false))), "64-bit id left-padded"),
            ("463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-d",                 Some((T128, Some(true))), "debug means sampled"),
            ("463AC35C9F6413AD48485A3953BB6124-A2FB4A1D1A96D312-1",                 Some((T128, Some(true))), "uppercase tolerated in B3"),
            ("1",                                                                   None,                     "sampling-only: no context"),
            ("463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-x",                 None,                     "bad sampling state"),
            ("463ac35c9f6413ad48485a3953bb612-a2fb4a1d1a96d312-1",                  None,                     "31-char trace id"),
            ("00000000000000000000000000000000-a2fb4a1d1a96d312-1",                 None,                     "zero trace id"),
            ("463ac35c9f6413ad48485a3953bb6124-0000000000000000-1",                 None,                     "zero span id"),
            ("463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1-zz",              None,                     "bad parent id"),
            ("463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1-0020000000000001-x", None,                  "too many fields"),
        ];
        for &(v, want, why) in cases {
            let got = extract_single(&hm(&[("b3", v)]));
            match want {
                None => assert!(got.is_none(), "{why}"),
                Some((tid, sampled)) => {
                    let got = got.unwrap_or_else(|| panic!("{why}"));
                    assert_eq!(got.trace_id.to_hex(), tid, "{why}");
                    assert_eq!(got.span_id.to_hex(), S, "{why}");
                    assert_eq!(got.sampled, sampled, "{why}");
                }
            }
        }
    }

    #[rustfmt::skip]
    #[test]
    fn multi_header() {
        let cases: &[(&[(&str, &str)], Option<Option<bool>>, &str)] = &[
            (&[("x-b3-traceid", T128), ("x-b3-spanid", S), ("x-b3-sampled", "1")], Some(Some(true)),  "sampled"),
            (&[("x-b3-traceid", T64),  ("x-b3-spanid", S), ("x-b3-sampled", "0")], Some(Some(false)), "64-bit, not sampled"),
            (&[("x-b3-traceid", T128), ("x-b3-spanid", S)],                         Some(None),        "deferred"),
            (&[("x-b3-traceid", T128), ("x-b3-spanid", S), ("x-b3-flags", "1")],   Some(Some(true)),  "debug"),
            (&[("x-b3-traceid", T128), ("x-b3-spanid", S), ("x-b3-sampled", "true")], Some(Some(true)), "legacy true"),
            (&[("x-b3-traceid", T128), ("x-b3-spanid", S), ("x-b3-sampled", "yes")], None,            "bad sampled value"),
            (&[("x-b3-traceid", T128)],                                             None,              "span id missing"),
            (&[("x-b3-traceid", "xyz"), ("x-b3-spanid", S)],                        None,              "bad trace id"),
        ];
        for &(h, want, why) in cases {
            let got = extract_multi(&hm(h));
            assert_eq!(got.map(|c| c.sampled), want, "{why}");
        }
    }

    #[rustfmt::skip]
    #[test]
    fn sampling_state_without_ids() {
        let cases: &[(&[(&str, &str)], Option<bool>, &str)] = &[
            (&[("b3", "0")],                         Some(false), "single deny"),
            (&[("b3", "1")],                         Some(true),  "single accept"),
            (&[("b3", "d")],                         Some(true),  "single debug"),
            (&[("x-b3-sampled", "0")],               Some(false), "multi deny"),
            (&[("x-b3-sampled", "true")],            Some(true),  "multi legacy accept"),
            (&[("x-b3-flags", "1")],                 Some(true),  "multi debug"),
            (&[("x-b3-traceid", T128), ("x-b3-sampled", "0")], None, "ids present: not sampling-only"),
            (&[("b3", "x")],                         None,        "garbage"),
            (&[],                                    None,        "absent"),
        ];
        for &(h, want, why) in cases {
            assert_eq!(sampling_only(&hm(h)), want, "{why}");
        }
    }

    #[test]
    fn single_wins_over_multi() {
        let h = hm(&[
            ("b3", &format!("{T128}-{S}-0")),
            ("x-b3-traceid", "11111111111111111111111111111111"),
            ("x-b3-spanid", S),
        ]);
        assert_eq!(extract(&h).unwrap().trace_id.to_hex(), T128);
    }

    #[test]
    fn injection() {
        let t = TraceId::from_hex(T128).unwrap();
        let s = SpanId::from_hex(S).unwrap();
        let mut h = hm(&[
            ("x-b3-parentspanid", "1111111111111111"),
            ("x-b3-flags", "1"),
        ]);
        inject_multi(&mut h, &t, &s, true);
        inject_single(&mut h, &t, &s, false);
        assert_eq!(h["x-b3-traceid"], T128);
        assert_eq!(h["x-b3-spanid"], S);
        assert_eq!(h["x-b3-sampled"], "1");
        assert!(!h.contains_key("x-b3-parentspanid") && !h.contains_key("x-b3-flags"));
        assert_eq!(h["b3"], format!("{T128}-{S}-0"));
        let back = extract_single(&h).unwrap();
        assert_eq!(
            (back.trace_id, back.span_id, back.sampled),
            (t, s, Some(false))
        );
    }
}
