//! W3C Trace Context (Level 1 + Level 2 random flag) as a demo service needs it: read the
//! `traceparent` the proxy injected, and mint span ids for the service's own spans.
//!
//! The services are ordinary upstreams, so they follow the spec's rules for a participant:
//! an invalid header means "start a new trace", never an error for the caller.

use rand::RngCore;

/// Sampled bit of the trace flags.
pub const FLAG_SAMPLED: u8 = 0x01;
/// Level 2 "random" bit: the trace id's low 56 bits are random.
pub const FLAG_RANDOM: u8 = 0x02;

/// A parsed `traceparent`: the caller's position in the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16-byte trace id, never all zero.
    pub trace_id: [u8; 16],
    /// The caller's span id (the proxy span when Envoy forwarded the request), never zero.
    pub parent_id: [u8; 8],
    /// Trace flags (bit 0 sampled, bit 1 random).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value by the core's parser (the one the filter uses): version
    /// `00` is exactly 55 characters, future versions may append `-`-separated data, `ff` and
    /// upper-case hex are invalid, neither id may be all zero.
    pub fn parse(value: &str) -> Option<Self> {
        let tp = aetherflow_core::propagation::traceparent::TraceParent::parse(value).ok()?;
        Some(Self {
            trace_id: tp.trace_id.0,
            parent_id: tp.parent_id.0,
            flags: tp.flags,
        })
    }

    /// Whether the caller sampled this trace.
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The `traceparent` header value for this position (always emitted as version `00`).
    pub fn header_value(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.parent_id),
            self.flags
        )
    }
}

/// Lowercase hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A fresh non-zero span id.
pub fn new_span_id() -> [u8; 8] {
    loop {
        let mut id = [0u8; 8];
        rand::rng().fill_bytes(&mut id);
        if id != [0; 8] {
            return id;
        }
    }
}

/// A fresh non-zero, fully random trace id (so the Level 2 random flag may be set).
pub fn new_trace_id() -> [u8; 16] {
    loop {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        if id != [0; 16] {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const INVALID: &[(&str, &str)] = &[
        ("", "empty"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", "too short"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", "version 00 with extra data"),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version ff"),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "uppercase hex"),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "zero trace id"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "zero parent id"),
        ("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "bad separator"),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", "future version, no dash before extra"),
    ];

    #[test]
    fn rejects_invalid_headers() {
        for (value, why) in INVALID {
            assert_eq!(TraceParent::parse(value), None, "{why}: {value:?}");
        }
    }

    #[test]
    fn parses_and_round_trips() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
        let tp = TraceParent::parse(value).expect("valid");
        assert!(tp.sampled());
        assert_eq!(tp.flags, 0x03);
        assert_eq!(tp.header_value(), value);
    }

    #[test]
    fn future_version_parsed_by_the_00_layout() {
        let tp = TraceParent::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more")
            .expect("future version accepted");
        assert!(!tp.sampled());
        assert!(tp.header_value().starts_with("00-"));
    }
}
