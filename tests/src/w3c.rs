//! Independent readers for what the filter writes: W3C `traceparent`/`tracestate` as seen by the
//! upstream, and the OTel consistent-probability-sampling rule (threshold `th`, randomness = the
//! low 56 bits of the trace id) to predict the filter's decisions.

/// A parsed version-00 `traceparent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traceparent {
    /// Version byte as two hex digits.
    pub version: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub parent_id: String,
    /// Trace flags.
    pub flags: u8,
}

impl Traceparent {
    /// Sampled flag (0x01).
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 != 0
    }

    /// Level 2 random flag (0x02).
    pub fn random(&self) -> bool {
        self.flags & 0x02 != 0
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a `traceparent` the filter emitted: it must be exactly the version-00 form.
pub fn parse_emitted_traceparent(value: &str) -> Result<Traceparent, String> {
    let parts: Vec<&str> = value.split('-').collect();
    if value.len() != 55 || parts.len() != 4 {
        return Err(format!("not a 55-char version-00 traceparent: {value:?}"));
    }
    let ok = parts[0] == "00"
        && is_lower_hex(parts[1], 32)
        && is_lower_hex(parts[2], 16)
        && is_lower_hex(parts[3], 2)
        && parts[1] != "0".repeat(32)
        && parts[2] != "0".repeat(16);
    if !ok {
        return Err(format!("invalid emitted traceparent {value:?}"));
    }
    Ok(Traceparent {
        version: parts[0].into(),
        trace_id: parts[1].into(),
        parent_id: parts[2].into(),
        flags: u8::from_str_radix(parts[3], 16).map_err(|e| e.to_string())?,
    })
}

/// The list-members of a (combined) `tracestate` value, trimmed, empty members skipped.
pub fn tracestate_members(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|m| m.trim_matches(|c| c == ' ' || c == '\t').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The consistent-sampling rejection threshold for `ratio` (0 < ratio <= 1), as a 56-bit integer:
/// `T = round((1 - ratio) * 2^56)`; a trace is sampled when its randomness `R >= T`.
pub fn threshold_for_ratio(ratio: f64) -> u64 {
    let max = (1u64 << 56) as f64;
    ((1.0 - ratio) * max).round().clamp(0.0, max - 1.0) as u64
}

/// The `th` value encoding `threshold`: 14 hex digits with trailing zeros removed (`0` for zero).
pub fn encode_th(threshold: u64) -> String {
    if threshold == 0 {
        return "0".into();
    }
    let full = format!("{threshold:014x}");
    full.trim_end_matches('0').to_string()
}

/// The randomness value of a trace id: its low 56 bits.
pub fn randomness(trace_id_hex: &str) -> u64 {
    let low = &trace_id_hex[trace_id_hex.len().saturating_sub(14)..];
    u64::from_str_radix(low, 16).unwrap_or(0)
}

/// Whether consistent probability sampling at `ratio` keeps the trace `trace_id_hex`.
pub fn consistent_decision(trace_id_hex: &str, ratio: f64) -> bool {
    ratio > 0.0 && randomness(trace_id_hex) >= threshold_for_ratio(ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_match_the_spec_examples() {
        // Examples from the OTel "TraceState: Probability Sampling" spec.
        assert_eq!(encode_th(threshold_for_ratio(1.0)), "0");
        assert_eq!(encode_th(threshold_for_ratio(0.5)), "8");
        assert_eq!(encode_th(threshold_for_ratio(0.25)), "c");
        assert!(consistent_decision(
            &format!("{:032x}", 0x80_0000_0000_0000u64),
            0.5
        ));
        assert!(!consistent_decision(
            &format!("{:032x}", 0x7f_ffff_ffff_ffffu64),
            0.5
        ));
    }
}
