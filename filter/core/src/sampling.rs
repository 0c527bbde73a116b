//! Consistent probability sampling, as in OpenTelemetry "TraceState: Probability Sampling"
//! (OTEP 235): every participant that sees the same trace compares the same 56-bit
//! randomness `R` with its rejection threshold `T` and keeps the trace iff `R >= T`.
//!
//! - Randomness: the explicit `rv` sub-key of the `ot` tracestate member when present
//!   (exactly 14 hex digits), else the trace id's low 56 bits (its last 7 bytes).
//! - Threshold: `T = round((1 - p) * 2^56)`; `T = 0` keeps everything (`th:0`). A probability
//!   below 2^-56 rounds to `T = 2^56`, which no randomness reaches: never sampled, and it
//!   has no `th` encoding.
//! - Encoding: `th` is `T` as 14 hex digits with trailing zeros removed (`0` for zero), so
//!   `th:8` is 50 %, `th:c` 25 %, `th:e6666666666666` about 10 %.
//!
//! The filter and the collector shim both use this module, so their decisions agree.

use crate::hex;
use crate::ids::TraceId;

/// 2^56: the number of distinct randomness values; also the "never sample" threshold.
pub const MAX_ADJUSTED_COUNT: u64 = 1 << 56;

/// Number of hex digits in a full-precision threshold or randomness value.
pub const HEX_DIGITS: usize = 14;

/// 56 bits of randomness, from a trace id or an explicit `rv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Randomness(u64);

impl Randomness {
    /// The trace id's low 56 bits.
    pub fn from_trace_id(id: &TraceId) -> Randomness {
        Randomness(id.low_56_bits())
    }

    /// A value from its integer form; `None` when it has more than 56 bits.
    pub fn from_u64(v: u64) -> Option<Randomness> {
        (v < MAX_ADJUSTED_COUNT).then_some(Randomness(v))
    }

    /// Parses an `rv` value: exactly 14 lowercase hex digits.
    pub fn parse_rv(s: &str) -> Option<Randomness> {
        if s.len() != HEX_DIGITS {
            return None;
        }
        hex::parse_u64(s.as_bytes()).map(Randomness)
    }

    /// The `rv` encoding (14 lowercase hex digits).
    pub fn to_rv(self) -> String {
        let mut s = String::with_capacity(HEX_DIGITS);
        hex::push_u64(&mut s, self.0, HEX_DIGITS);
        s
    }

    /// The 56-bit value.
    pub fn value(self) -> u64 {
        self.0
    }
}

/// A rejection threshold in `0..=2^56`: a trace is kept iff its randomness is `>=` it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(u64);

impl Threshold {
    /// Keeps every trace (`th:0`, probability 1).
    pub const ALWAYS: Threshold = Threshold(0);
    /// Keeps no trace (probability 0); has no `th` encoding.
    pub const NEVER: Threshold = Threshold(MAX_ADJUSTED_COUNT);

    /// The threshold for sampling probability `p` in `[0, 1]`: `round((1 - p) * 2^56)`,
    /// computed exactly as `2^56 - round(p * 2^56)` (scaling by a power of two loses nothing).
    /// `None` for NaN or values outside `[0, 1]`.
    pub fn from_probability(p: f64) -> Option<Threshold> {
        if !(0.0..=1.0).contains(&p) {
            return None;
        }
        let kept = (p * MAX_ADJUSTED_COUNT as f64).round() as u64;
        Some(Threshold(MAX_ADJUSTED_COUNT - kept.min(MAX_ADJUSTED_COUNT)))
    }

    /// A threshold from its integer form; `None` above 2^56.
    pub fn from_u64(t: u64) -> Option<Threshold> {
        (t <= MAX_ADJUSTED_COUNT).then_some(Threshold(t))
    }

    /// The integer form in `0..=2^56`.
    pub fn value(self) -> u64 {
        self.0
    }

    /// The sampling probability this threshold keeps: `(2^56 - T) / 2^56`.
    pub fn probability(self) -> f64 {
        (MAX_ADJUSTED_COUNT - self.0) as f64 / MAX_ADJUSTED_COUNT as f64
    }

    /// How many traces each kept trace represents: `1 / probability` (0 for `NEVER`).
    pub fn adjusted_count(self) -> f64 {
        if self == Threshold::NEVER {
            0.0
        } else {
            MAX_ADJUSTED_COUNT as f64 / (MAX_ADJUSTED_COUNT - self.0) as f64
        }
    }

    /// The consistent decision: keep iff `randomness >= threshold`.
    #[inline]
    pub fn should_sample(self, randomness: Randomness) -> bool {
        randomness.0 >= self.0
    }

    /// Parses a `th` value: 1 to 14 lowercase hex digits, right-padded with zeros to 14.
    pub fn parse_th(s: &str) -> Option<Threshold> {
        if s.is_empty() || s.len() > HEX_DIGITS {
            return None;
        }
        let v = hex::parse_u64(s.as_bytes())?;
        Some(Threshold(v << (4 * (HEX_DIGITS - s.len()))))
    }

    /// Appends the `th` encoding (no `th:` prefix) to `out`; false (nothing written) for
    /// `NEVER`, which has no encoding.
    pub fn write_th(self, out: &mut String) -> bool {
        if self.0 >= MAX_ADJUSTED_COUNT {
            return false;
        }
        if self.0 == 0 {
            out.push('0');
            return true;
        }
        let trailing_zero_digits = (self.0.trailing_zeros() / 4) as usize;
        let digits = HEX_DIGITS - trailing_zero_digits;
        hex::push_u64(out, self.0 >> (4 * trailing_zero_digits), digits);
        true
    }

    /// The `th` encoding, or `None` for `NEVER`.
    pub fn to_th(self) -> Option<String> {
        let mut s = String::with_capacity(HEX_DIGITS);
        self.write_th(&mut s).then_some(s)
    }
}

/// Why an `ot` tracestate value was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtParseError {
    /// Longer than the 256 characters a tracestate value may have.
    TooLong,
    /// A sub-key or value outside the OTel tracestate grammar.
    Grammar,
    /// The same sub-key twice.
    DuplicateKey,
    /// `th` is not 1..=14 lowercase hex digits.
    InvalidThreshold,
    /// `rv` is not exactly 14 lowercase hex digits.
    InvalidRandomness,
}

/// The OpenTelemetry member of a W3C tracestate (`ot=th:...;rv:...;k:v`), parsed.
/// Sub-keys other than `th` and `rv` are kept in order and written back unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtTraceState {
    /// The `th` sub-key: the threshold the trace was sampled with.
    pub threshold: Option<Threshold>,
    /// The `rv` sub-key: explicit randomness replacing the trace id's bits.
    pub randomness: Option<Randomness>,
    /// Other sub-keys, in order, as `(key, value)`.
    pub extra: Vec<(String, String)>,
}

fn is_ot_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn is_ot_value(v: &str) -> bool {
    v.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

impl OtTraceState {
    /// Parses the value of the `ot` tracestate member (without the `ot=`). An empty value
    /// is an empty state.
    pub fn parse(value: &str) -> Result<OtTraceState, OtParseError> {
        if value.len() > 256 {
            return Err(OtParseError::TooLong);
        }
        let mut st = OtTraceState::default();
        if value.is_empty() {
            return Ok(st);
        }
        for member in value.split(';') {
            let (k, v) = member.split_once(':').ok_or(OtParseError::Grammar)?;
            if !is_ot_key(k) || !is_ot_value(v) {
                return Err(OtParseError::Grammar);
            }
            match k {
                "th" => {
                    if st.threshold.is_some() {
                        return Err(OtParseError::DuplicateKey);
                    }
                    st.threshold =
                        Some(Threshold::parse_th(v).ok_or(OtParseError::InvalidThreshold)?);
                }
                "rv" => {
                    if st.randomness.is_some() {
                        return Err(OtParseError::DuplicateKey);
                    }
                    st.randomness =
                        Some(Randomness::parse_rv(v).ok_or(OtParseError::InvalidRandomness)?);
                }
                _ => {
                    if st.extra.iter().any(|(ek, _)| ek == k) {
                        return Err(OtParseError::DuplicateKey);
                    }
                    st.extra.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        Ok(st)
    }

    /// The randomness to sample this trace with: `rv` when present, else the trace id's bits.
    pub fn randomness_for(&self, trace_id: &TraceId) -> Randomness {
        self.randomness
            .unwrap_or_else(|| Randomness::from_trace_id(trace_id))
    }

    /// True when there is nothing to write (no `th`, no `rv`, no other sub-key).
    pub fn is_empty(&self) -> bool {
        self.threshold.is_none() && self.randomness.is_none() && self.extra.is_empty()
    }

    /// Appends the value (without `ot=`): `th` first, then `rv`, then the other sub-keys.
    pub fn write_value(&self, out: &mut String) {
        let start = out.len();
        if let Some(t) = self.threshold {
            out.push_str("th:");
            if !t.write_th(out) {
                // NEVER has no encoding: leave `th` out rather than write an invalid value.
                out.truncate(start);
            }
        }
        if let Some(r) = self.randomness {
            if out.len() > start {
                out.push(';');
            }
            out.push_str("rv:");
            hex::push_u64(out, r.0, HEX_DIGITS);
        }
        for (k, v) in &self.extra {
            if out.len() > start {
                out.push(';');
            }
            out.push_str(k);
            out.push(':');
            out.push_str(v);
        }
    }

    /// The value (without `ot=`).
    pub fn to_value(&self) -> String {
        let mut s = String::new();
        self.write_value(&mut s);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const PROBABILITIES: &[(f64, &str)] = &[
        (1.0,         "0"),
        (0.5,         "8"),
        (0.25,        "c"),
        (0.75,        "4"),
        (0.125,       "e"),
        (1.0 / 16.0,  "f"),
        (0.1,         "e6666666666666"),
        (0.01,        "fd70a3d70a3d71"),
        (1.0 / 72057594037927936.0, "ffffffffffffff"),
    ];

    #[test]
    fn probability_to_th_and_back() {
        for &(p, th) in PROBABILITIES {
            let t = Threshold::from_probability(p).unwrap();
            assert_eq!(t.to_th().as_deref(), Some(th), "p = {p}");
            assert_eq!(Threshold::parse_th(th), Some(t), "th = {th}");
            assert!((t.probability() - p).abs() <= p * 1e-12, "p = {p}");
        }
    }

    #[test]
    fn extremes() {
        assert_eq!(Threshold::from_probability(0.0), Some(Threshold::NEVER));
        assert_eq!(Threshold::from_probability(1e-30), Some(Threshold::NEVER));
        assert_eq!(Threshold::NEVER.to_th(), None);
        assert_eq!(Threshold::NEVER.adjusted_count(), 0.0);
        assert_eq!(Threshold::ALWAYS.adjusted_count(), 1.0);
        assert_eq!(
            Threshold::from_probability(0.25).unwrap().adjusted_count(),
            4.0
        );
        for bad in [-0.1, 1.0001, f64::NAN, f64::INFINITY] {
            assert_eq!(Threshold::from_probability(bad), None, "{bad}");
        }
    }

    #[test]
    fn decisions_compare_randomness_with_threshold() {
        let half = Threshold::from_probability(0.5).unwrap();
        let r = |v| Randomness::from_u64(v).unwrap();
        assert!(half.should_sample(r(0x80000000000000)), "R == T is sampled");
        assert!(!half.should_sample(r(0x7fffffffffffff)));
        assert!(Threshold::ALWAYS.should_sample(r(0)));
        assert!(!Threshold::NEVER.should_sample(r(0xffffffffffffff)));
        // The randomness of a trace id is its last 7 bytes; the first 9 do not matter.
        let id = TraceId::from_hex("ffffffffffffffffff80000000000000").unwrap();
        assert!(half.should_sample(Randomness::from_trace_id(&id)));
        let id = TraceId::from_hex("ffffffffffffffff007fffffffffffff").unwrap();
        assert!(!half.should_sample(Randomness::from_trace_id(&id)));
    }

    #[rustfmt::skip]
    const BAD_TH: &[(&str, &str)] = &[
        ("",                "empty"),
        ("123456789abcdef", "15 digits: more than 56 bits"),
        ("8A",              "uppercase hex"),
        ("8 ",              "not a hex digit"),
    ];

    #[test]
    fn invalid_th() {
        for &(th, why) in BAD_TH {
            assert_eq!(Threshold::parse_th(th), None, "{why}");
        }
        assert_eq!(
            Threshold::parse_th("00000000000000"),
            Some(Threshold::ALWAYS)
        );
    }

    #[test]
    fn rv_is_exactly_14_digits() {
        assert_eq!(
            Randomness::parse_rv("00000000000001").map(Randomness::value),
            Some(1)
        );
        assert_eq!(Randomness::parse_rv("1"), None);
        assert_eq!(Randomness::parse_rv("ffffffffffffff0"), None);
        assert_eq!(Randomness::from_u64(1 << 56), None);
        assert_eq!(
            Randomness::from_u64(0xab).unwrap().to_rv(),
            "000000000000ab"
        );
    }

    #[test]
    fn ot_value_round_trip_keeps_other_subkeys() {
        let st = OtTraceState::parse("rv:0123456789abcd;th:c;foo:bar.1").unwrap();
        assert_eq!(st.threshold, Threshold::parse_th("c"));
        assert_eq!(st.randomness, Randomness::parse_rv("0123456789abcd"));
        assert_eq!(st.extra, vec![("foo".to_owned(), "bar.1".to_owned())]);
        assert_eq!(st.to_value(), "th:c;rv:0123456789abcd;foo:bar.1");
        let id = TraceId::from_hex("ffffffffffffffffffffffffffffffff").unwrap();
        assert_eq!(st.randomness_for(&id).value(), 0x0123456789abcd);
        assert_eq!(OtTraceState::parse("").unwrap(), OtTraceState::default());
        let only_extra = OtTraceState::parse("a1:x").unwrap();
        assert_eq!(only_extra.to_value(), "a1:x");
        assert_eq!(only_extra.randomness_for(&id).value(), 0xffffffffffffff);
    }

    #[rustfmt::skip]
    const BAD_OT: &[(&str, OtParseError, &str)] = &[
        ("th",            OtParseError::Grammar,           "no colon"),
        ("th:8;",         OtParseError::Grammar,           "empty trailing member"),
        ("Th:8",          OtParseError::Grammar,           "uppercase key"),
        ("1a:8",          OtParseError::Grammar,           "key starts with a digit"),
        ("k:a b",         OtParseError::Grammar,           "space in value"),
        ("th:8;th:c",     OtParseError::DuplicateKey,      "th twice"),
        ("th:xyz",        OtParseError::InvalidThreshold,  "th not hex"),
        ("rv:abc",        OtParseError::InvalidRandomness, "rv too short"),
    ];

    #[test]
    fn invalid_ot_values() {
        for &(v, err, why) in BAD_OT {
            assert_eq!(OtTraceState::parse(v), Err(err), "{why}");
        }
        assert_eq!(
            OtTraceState::parse(&format!("k:{}", "a".repeat(260))),
            Err(OtParseError::TooLong)
        );
    }

    #[test]
    fn empirical_rate_matches_probability() {
        // 20_000 generated ids against p = 0.1: the kept share must be within 6 sigma.
        let t = Threshold::from_probability(0.1).unwrap();
        let mut g = crate::ids::IdGenerator::from_u64(7);
        let kept = (0..20_000)
            .filter(|_| t.should_sample(Randomness::from_trace_id(&g.trace_id())))
            .count();
        assert!((1750..2250).contains(&kept), "{kept}");
    }
}
