//! W3C Trace Context Level 1 `traceparent`, with the Level 2 random flag.
//!
//! `version "-" trace-id "-" parent-id "-" trace-flags`, lowercase hex only:
//! - version `00`: exactly 55 characters;
//! - versions `01`..`fe` (future): parsed by the `00` layout; longer values must continue
//!   with `-` after the flags (the extra data is ignored, and we re-emit version `00`);
//! - version `ff` is invalid; all-zero trace id or parent id is invalid;
//! - more than one `traceparent` header line is invalid.
//!
//! An invalid `traceparent` means: start a new trace and ignore `tracestate`.

use super::Extractor;
use crate::ids::{SpanId, TraceId};

/// Header name.
pub const TRACEPARENT: &str = "traceparent";
/// Trace flag: the caller may have recorded (sampled) the trace.
pub const FLAG_SAMPLED: u8 = 0x01;
/// Trace flag (Level 2): the trace id's low 56 bits are random.
pub const FLAG_RANDOM: u8 = 0x02;
/// Flags defined by Level 2; other bits are reserved and written as zero.
pub const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;
/// Length of a version-00 header.
pub const LEN: usize = 55;

/// A parsed `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id (never zero once parsed).
    pub trace_id: TraceId,
    /// The caller's span id (never zero once parsed).
    pub parent_id: SpanId,
    /// The trace flags byte as received (reserved bits are cleared on output).
    pub flags: u8,
}

/// Why a `traceparent` is invalid (each reason counts as `aetherflow_invalid_traceparent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceParentError {
    /// Version 00 not exactly 55 chars, or a future version shorter than 55.
    Length,
    /// Version is not two lowercase hex digits.
    Version,
    /// Version `ff` is forbidden.
    ForbiddenVersion,
    /// A `-` is missing where the layout needs one.
    Delimiter,
    /// Trace id is not 32 lowercase hex digits.
    TraceId,
    /// Parent id is not 16 lowercase hex digits.
    ParentId,
    /// Flags are not 2 lowercase hex digits.
    Flags,
    /// All-zero trace id.
    ZeroTraceId,
    /// All-zero parent id.
    ZeroParentId,
    /// More than one `traceparent` header line.
    Multiple,
}

impl TraceParent {
    /// True when the caller sampled the trace.
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// Parses one header value (surrounding optional whitespace is ignored, as HTTP does).
    pub fn parse(value: &str) -> Result<TraceParent, TraceParentError> {
        let v = value.trim_matches(|c| c == ' ' || c == '\t').as_bytes();
        if v.len() < 2 {
            return Err(TraceParentError::Length);
        }
        let version = match (crate::hex::digit(v[0]), crate::hex::digit(v[1])) {
            (Some(h), Some(l)) => (h << 4) | l,
            _ => return Err(TraceParentError::Version),
        };
        if version == 0xff {
            return Err(TraceParentError::ForbiddenVersion);
        }
        if version == 0 && v.len() != LEN {
            return Err(TraceParentError::Length);
        }
        if v.len() < LEN {
            return Err(TraceParentError::Length);
        }
        if v.len() > LEN && v[LEN] != b'-' {
            return Err(TraceParentError::Delimiter);
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return Err(TraceParentError::Delimiter);
        }
        let mut t = [0u8; 16];
        if !crate::hex::decode_into(&v[3..35], &mut t) {
            return Err(TraceParentError::TraceId);
        }
        let mut p = [0u8; 8];
        if !crate::hex::decode_into(&v[36..52], &mut p) {
            return Err(TraceParentError::ParentId);
        }
        let mut f = [0u8; 1];
        if !crate::hex::decode_into(&v[53..55], &mut f) {
            return Err(TraceParentError::Flags);
        }
        let (trace_id, parent_id) = (TraceId(t), SpanId(p));
        if !trace_id.is_valid() {
            return Err(TraceParentError::ZeroTraceId);
        }
        if !parent_id.is_valid() {
            return Err(TraceParentError::ZeroParentId);
        }
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags: f[0],
        })
    }

    /// Reads the `traceparent` header: `Ok(None)` when absent, an error when invalid or
    /// repeated.
    pub fn extract(
        headers: &(impl Extractor + ?Sized),
    ) -> Result<Option<TraceParent>, TraceParentError> {
        let values = headers.get_all(TRACEPARENT);
        match values.as_slice() {
            [] => Ok(None),
            [one] => TraceParent::parse(one).map(Some),
            _ => Err(TraceParentError::Multiple),
        }
    }

    /// Writes the version-00 header into `out` without allocating; reserved flag bits are
    /// written as zero.
    pub fn write(&self, out: &mut [u8; LEN]) {
        out[0] = b'0';
        out[1] = b'0';
        out[2] = b'-';
        let mut t = [0u8; 32];
        self.trace_id.write_hex(&mut t);
        out[3..35].copy_from_slice(&t);
        out[35] = b'-';
        let mut p = [0u8; 16];
        self.parent_id.write_hex(&mut p);
        out[36..52].copy_from_slice(&p);
        out[52] = b'-';
        crate::hex::encode_into(&[self.flags & KNOWN_FLAGS], &mut out[53..55]);
    }

    /// The version-00 header value.
    pub fn format(&self) -> String {
        let mut buf = [0u8; LEN];
        self.write(&mut buf);
        buf.iter().map(|&c| c as char).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use TraceParentError as E;

    const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PID: &str = "00f067aa0ba902b7";

    #[rustfmt::skip]
    const VALID: &[(&str, u8, &str)] = &[
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0x01, "sampled"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 0x00, "not sampled"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", 0x03, "sampled + random (Level 2)"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", 0x09, "unknown flag bits parse"),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0x01, "future version, 55 chars"),
        ("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds", 0x01, "future version with more data"),
        ("fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-", 0x00, "highest version, trailing dash"),
        (" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t", 0x01, "optional whitespace around the value"),
    ];

    #[rustfmt::skip]
    const INVALID: &[(&str, TraceParentError, &str)] = &[
        ("",                                                          E::Length,           "empty"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",    E::Length,           "version 00 too short"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  E::Length,           "version 00 must be exactly 55 chars"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", E::Length,       "version 00 cannot carry extra data"),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   E::ForbiddenVersion, "version ff is forbidden"),
        ("0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   E::Version,          "version not hex"),
        ("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   E::Version,          "uppercase version"),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  E::Delimiter,        "future version: data after flags must start with -"),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",    E::Length,           "future version shorter than 55"),
        ("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   E::Delimiter,        "wrong first delimiter"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",   E::Delimiter,        "wrong second delimiter"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",   E::Delimiter,        "wrong third delimiter"),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   E::TraceId,          "uppercase trace id"),
        ("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   E::TraceId,          "trace id not hex"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",   E::ParentId,         "uppercase parent id"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0X",   E::Flags,            "flags not hex"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-AB",   E::Flags,            "uppercase flags"),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01",   E::ZeroTraceId,      "all-zero trace id"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   E::ZeroParentId,     "all-zero parent id"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01,00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                                                      E::Length,           "two values folded into one line"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9\u{e9}02b-01", E::Length,          "non-ASCII: 56 bytes"),
    ];

    #[test]
    fn valid_headers() {
        for &(v, flags, why) in VALID {
            let tp = TraceParent::parse(v).unwrap_or_else(|e| panic!("{why}: {e:?}"));
            assert_eq!(tp.trace_id.to_hex(), TID, "{why}");
            assert_eq!(tp.parent_id.to_hex(), PID, "{why}");
            assert_eq!(tp.flags, flags, "{why}");
        }
    }

    #[test]
    fn invalid_headers() {
        for &(v, err, why) in INVALID {
            assert_eq!(TraceParent::parse(v), Err(err), "{why}: {v:?}");
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        for v in [
            "-",
            "--",
            "00",
            "\u{1F600}".repeat(20).as_str(),
            &"-".repeat(55),
            &"0".repeat(200),
        ] {
            assert!(TraceParent::parse(v).is_err(), "{v:?}");
        }
        // Multi-byte characters at the delimiter positions must not split a char boundary.
        let mut s = String::from("01-");
        s.push_str(&"\u{e9}".repeat(40));
        assert!(TraceParent::parse(&s).is_err());
    }

    #[test]
    fn re_emitted_as_version_00_with_known_flags_only() {
        let tp = TraceParent::parse(VALID[5].0).unwrap();
        assert_eq!(tp.format(), format!("00-{TID}-{PID}-01"));
        let tp = TraceParent::parse(VALID[3].0).unwrap();
        assert_eq!(
            tp.format(),
            format!("00-{TID}-{PID}-01"),
            "reserved bit 0x08 cleared"
        );
        let tp = TraceParent::parse(VALID[2].0).unwrap();
        assert_eq!(
            tp.format(),
            format!("00-{TID}-{PID}-03"),
            "random flag kept"
        );
    }

    #[test]
    fn extract_from_header_lines() {
        let one = format!("00-{TID}-{PID}-01");
        let mut h: HashMap<String, Vec<String>> = HashMap::new();
        assert_eq!(TraceParent::extract(&h), Ok(None));
        h.insert("traceparent".into(), vec![one.clone()]);
        assert!(TraceParent::extract(&h).unwrap().unwrap().sampled());
        h.insert("traceparent".into(), vec![one.clone(), one.clone()]);
        assert_eq!(
            TraceParent::extract(&h),
            Err(E::Multiple),
            "duplicate lines, even equal"
        );
        let lines = vec![("traceparent".to_owned(), one)];
        assert!(TraceParent::extract(lines.as_slice()).unwrap().is_some());
    }
}
