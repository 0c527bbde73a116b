//! Jaeger `uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}` (inbound and
//! outbound). Ids are hex of 1..=32 / 1..=16 digits (leading zeros may be omitted; shorter
//! trace ids are left-padded to 128 bits), the parent is deprecated and ignored, flags are a
//! hex number whose bit 0 is "sampled" and bit 1 "debug". Clients may URL-encode `:` as `%3A`.

use super::{Extractor, Injector, RemoteContext};
use crate::hex;
use crate::ids::{SpanId, TraceId};

/// Header name.
pub const UBER_TRACE_ID: &str = "uber-trace-id";

/// Reads `uber-trace-id`; `None` when absent or invalid.
pub fn extract(h: &(impl Extractor + ?Sized)) -> Option<RemoteContext> {
    let raw = h.get(UBER_TRACE_ID)?.trim();
    let decoded;
    let v = if raw.contains('%') {
        decoded = raw.replace("%3A", ":").replace("%3a", ":");
        decoded.as_str()
    } else {
        raw
    };
    let mut parts = v.split(':');
    let (t, s, p, f) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || s.len() > 16 || p.len() > 16 || f.len() > 2 {
        return None;
    }
    let trace_id = TraceId(hex::parse_u128_any_case(t.as_bytes())?.to_be_bytes());
    let span_id = SpanId::from_u64(hex::parse_u128_any_case(s.as_bytes())? as u64);
    hex::parse_u128_any_case(p.as_bytes())?;
    let flags = hex::parse_u128_any_case(f.as_bytes())? as u8;
    if !trace_id.is_valid() || !span_id.is_valid() {
        return None;
    }
    Some(RemoteContext::new(
        trace_id,
        span_id,
        Some(flags & 0x03 != 0),
    ))
}

/// Writes `uber-trace-id` for a request whose parent is `span`.
pub fn inject(inj: &mut dyn Injector, trace: &TraceId, span: &SpanId, sampled: bool) {
    let mut buf = [0u8; 32 + 1 + 16 + 3 + 2];
    let mut t = [0u8; 32];
    trace.write_hex(&mut t);
    buf[..32].copy_from_slice(&t);
    buf[32] = b':';
    let mut s = [0u8; 16];
    span.write_hex(&mut s);
    buf[33..49].copy_from_slice(&s);
    buf[49..52].copy_from_slice(b":0:");
    buf[52] = if sampled { b'1' } else { b'0' };
    inj.set(
        UBER_TRACE_ID,
        core::str::from_utf8(&buf[..53]).unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn get(v: &str) -> Option<RemoteContext> {
        extract(&HashMap::from([(UBER_TRACE_ID.to_string(), v.to_string())]))
    }

    #[rustfmt::skip]
    #[test]
    fn inbound() {
        let cases: &[(&str, Option<(&str, &str, bool)>, &str)] = &[
            ("463ac35c9f6413ad48485a3953bb6124:a2fb4a1d1a96d312:0:1", Some(("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", true)),  "128-bit, sampled"),
            ("48485a3953bb6124:a2fb4a1d1a96d312:0:0",                 Some(("000000000000000048485a3953bb6124", "a2fb4a1d1a96d312", false)), "64-bit left-padded"),
            ("abc:def:0:3",                                           Some(("00000000000000000000000000000abc", "0000000000000def", true)),  "leading zeros omitted, debug"),
            ("463ac35c9f6413ad48485a3953bb6124%3Aa2fb4a1d1a96d312%3A0%3A1", Some(("463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312", true)), "URL-encoded colons"),
            ("0:a2fb4a1d1a96d312:0:1",                                None, "zero trace id"),
            ("abc:0:0:1",                                             None, "zero span id"),
            ("abc:def:0",                                             None, "flags missing"),
            ("abc:def:0:1:2",                                         None, "too many fields"),
            ("xyz:def:0:1",                                           None, "not hex"),
            ("1463ac35c9f6413ad48485a3953bb6124:def:0:1",             None, "trace id over 32 digits"),
        ];
        for &(v, want, why) in cases {
            let got = get(v).map(|c| (c.trace_id.to_hex(), c.span_id.to_hex(), c.sampled == Some(true)));
            let want = want.map(|(t, s, smp)| (t.to_string(), s.to_string(), smp));
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn outbound_round_trip() {
        let t = TraceId::from_hex("463ac35c9f6413ad48485a3953bb6124").unwrap();
        let s = SpanId::from_hex("a2fb4a1d1a96d312").unwrap();
        let mut h: HashMap<String, String> = HashMap::new();
        inject(&mut h, &t, &s, true);
        assert_eq!(
            h[UBER_TRACE_ID],
            "463ac35c9f6413ad48485a3953bb6124:a2fb4a1d1a96d312:0:1"
        );
        let back = get(&h[UBER_TRACE_ID]).unwrap();
        assert_eq!(
            (back.trace_id, back.span_id, back.sampled),
            (t, s, Some(true))
        );
    }
}
