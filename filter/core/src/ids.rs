//! Trace and span identifiers and the generator that makes them.
//!
//! The generator is seeded once (the filter seeds it per VM from WASI `random_get`) and then
//! never calls the host again: one host call per id would cost more than the rest of the span.

use crate::hex;
use core::fmt;

/// A W3C / OpenTelemetry 128-bit trace id. All zeros is the invalid id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

/// A W3C / OpenTelemetry 64-bit span (parent) id. All zeros is the invalid id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// The all-zero (invalid) trace id.
    pub const INVALID: TraceId = TraceId([0; 16]);

    /// False for the all-zero id, which W3C Trace Context forbids.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 16]
    }

    /// Parses exactly 32 lowercase hex digits (zero is returned as is; check `is_valid`).
    pub fn from_hex(s: &str) -> Option<TraceId> {
        let mut b = [0u8; 16];
        hex::decode_into(s.as_bytes(), &mut b).then_some(TraceId(b))
    }

    /// A 64-bit id (B3, Jaeger) left-padded with zeros to 128 bits.
    pub fn from_u64(low: u64) -> TraceId {
        let mut b = [0u8; 16];
        b[8..].copy_from_slice(&low.to_be_bytes());
        TraceId(b)
    }

    /// The 128-bit id as two big-endian halves (high, low), as Jaeger Thrift carries it.
    pub fn to_u64_pair(&self) -> (u64, u64) {
        let mut hi = [0u8; 8];
        let mut lo = [0u8; 8];
        hi.copy_from_slice(&self.0[..8]);
        lo.copy_from_slice(&self.0[8..]);
        (u64::from_be_bytes(hi), u64::from_be_bytes(lo))
    }

    /// Writes the 32 lowercase hex digits into `out` without allocating.
    pub fn write_hex(&self, out: &mut [u8; 32]) {
        hex::encode_into(&self.0, out);
    }

    /// The 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        let mut buf = [0u8; 32];
        self.write_hex(&mut buf);
        buf.iter().map(|&c| c as char).collect()
    }

    /// The low 56 bits (last 7 bytes), the randomness that OTel consistent probability
    /// sampling uses when the tracestate carries no explicit `rv`.
    pub fn low_56_bits(&self) -> u64 {
        let mut b = [0u8; 8];
        b[1..].copy_from_slice(&self.0[9..]);
        u64::from_be_bytes(b)
    }
}

impl SpanId {
    /// The all-zero (invalid) span id.
    pub const INVALID: SpanId = SpanId([0; 8]);

    /// False for the all-zero id, which W3C Trace Context forbids.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8]
    }

    /// Parses exactly 16 lowercase hex digits.
    pub fn from_hex(s: &str) -> Option<SpanId> {
        let mut b = [0u8; 8];
        hex::decode_into(s.as_bytes(), &mut b).then_some(SpanId(b))
    }

    /// The id from its big-endian integer value.
    pub fn from_u64(v: u64) -> SpanId {
        SpanId(v.to_be_bytes())
    }

    /// The id as a big-endian integer.
    pub fn to_u64(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// Writes the 16 lowercase hex digits into `out` without allocating.
    pub fn write_hex(&self, out: &mut [u8; 16]) {
        hex::encode_into(&self.0, out);
    }

    /// The 16 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        let mut buf = [0u8; 16];
        self.write_hex(&mut buf);
        buf.iter().map(|&c| c as char).collect()
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A fast, non-cryptographic generator (xoshiro256++) for ids. Seed it once from a real
/// entropy source; every id after that costs a few arithmetic instructions.
#[derive(Clone, Debug)]
pub struct IdGenerator {
    s: [u64; 4],
}

/// SplitMix64 step: spreads a seed over the xoshiro state so that any seed (even 0) is usable.
fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl IdGenerator {
    /// A generator from 32 seed bytes (e.g. from `getrandom`).
    pub fn from_seed(seed: [u8; 32]) -> IdGenerator {
        let mut s = [0u64; 4];
        for (i, chunk) in seed.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            s[i] = u64::from_le_bytes(b);
        }
        // Mix so that low-entropy seeds (all zeros, small counters) still give a good state;
        // xoshiro must never start from the all-zero state.
        let mut x = s[0] ^ s[1].rotate_left(17) ^ s[2].rotate_left(31) ^ s[3].rotate_left(47);
        for (i, word) in s.iter_mut().enumerate() {
            *word ^= splitmix64(&mut x).wrapping_add(i as u64);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        IdGenerator { s }
    }

    /// A generator from a 64-bit seed (tests, benchmarks).
    pub fn from_u64(seed: u64) -> IdGenerator {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        IdGenerator::from_seed(bytes)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A new trace id: all 128 bits random (so the low 56 bits are random and the W3C
    /// Level 2 random flag 0x02 may be set), never the invalid zero id.
    pub fn trace_id(&mut self) -> TraceId {
        let hi = self.next_u64();
        let mut lo = self.next_u64();
        if hi == 0 && lo == 0 {
            lo = 1;
        }
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&hi.to_be_bytes());
        b[8..].copy_from_slice(&lo.to_be_bytes());
        TraceId(b)
    }

    /// A new span id, never the invalid zero id.
    pub fn span_id(&mut self) -> SpanId {
        let v = self.next_u64();
        SpanId::from_u64(if v == 0 { 1 } else { v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let t = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(t.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.low_56_bits(), 0xce929d0e0e4736);
        let s = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(s.to_u64(), 0x00f067aa0ba902b7);
        assert_eq!(s.to_string(), "00f067aa0ba902b7");
        assert!(TraceId::from_hex("4BF92F3577B34DA6A3CE929D0E0E4736").is_none());
        assert!(!TraceId::from_hex(&"0".repeat(32)).unwrap().is_valid());
    }

    #[test]
    fn sixty_four_bit_ids_are_left_padded() {
        let t = TraceId::from_u64(0x0123456789abcdef);
        assert_eq!(t.to_hex(), "00000000000000000123456789abcdef");
        assert_eq!(t.to_u64_pair(), (0, 0x0123456789abcdef));
    }

    #[test]
    fn generator_is_deterministic_per_seed_and_never_zero() {
        let mut a = IdGenerator::from_u64(0);
        let mut b = IdGenerator::from_u64(0);
        let mut c = IdGenerator::from_u64(1);
        for _ in 0..1000 {
            let (ta, tb, tc) = (a.trace_id(), b.trace_id(), c.trace_id());
            assert_eq!(ta, tb);
            assert_ne!(ta, tc);
            assert!(ta.is_valid());
            assert!(a.span_id().is_valid());
            b.span_id();
            c.span_id();
        }
    }

    #[test]
    fn low_56_bits_look_uniform() {
        // Half of the ids must fall on each side of 2^55: a coarse check that the randomness
        // used by consistent sampling is not biased (bounds are 6 sigma for 10_000 draws).
        let mut g = IdGenerator::from_u64(42);
        let n = 10_000;
        let above = (0..n)
            .filter(|_| g.trace_id().low_56_bits() >= 1 << 55)
            .count();
        assert!((4700..5300).contains(&above), "{above}");
    }
}
