//! Lowercase hexadecimal without allocation: W3C Trace Context accepts only lowercase hex,
//! so decoding rejects uppercase instead of folding it.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The value of one lowercase hex digit, or `None` (uppercase is not a hex digit here).
#[inline]
pub fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes exactly `out.len() * 2` lowercase hex digits into `out`.
pub fn decode_into(src: &[u8], out: &mut [u8]) -> bool {
    if src.len() != out.len() * 2 {
        return false;
    }
    for (i, pair) in src.chunks_exact(2).enumerate() {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => out[i] = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

/// Encodes `src` as lowercase hex into `out` (which must be twice as long).
pub fn encode_into(src: &[u8], out: &mut [u8]) {
    for (i, b) in src.iter().enumerate() {
        out[2 * i] = DIGITS[(b >> 4) as usize];
        out[2 * i + 1] = DIGITS[(b & 0x0f) as usize];
    }
}

/// Parses 1..=16 lowercase hex digits as an unsigned integer.
pub fn parse_u64(src: &[u8]) -> Option<u64> {
    if src.is_empty() || src.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in src {
        v = (v << 4) | u64::from(digit(c)?);
    }
    Some(v)
}

/// Pushes the `digits` low nibbles of `v` (most significant first) as lowercase hex.
pub fn push_u64(out: &mut String, v: u64, digits: usize) {
    for i in (0..digits).rev() {
        out.push(DIGITS[((v >> (4 * i)) & 0xf) as usize] as char);
    }
}

/// Parses 1..=32 hex digits of either case as a 128-bit value (for B3 and Jaeger ids,
/// which are not bound by W3C's lowercase rule).
pub fn parse_u128_any_case(src: &[u8]) -> Option<u128> {
    if src.is_empty() || src.len() > 32 {
        return None;
    }
    let mut v: u128 = 0;
    for &c in src {
        v = (v << 4) | u128::from((c as char).to_digit(16)?);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = [0u8; 4];
        assert!(decode_into(b"00ff10ab", &mut out));
        assert_eq!(out, [0x00, 0xff, 0x10, 0xab]);
        let mut text = [0u8; 8];
        encode_into(&out, &mut text);
        assert_eq!(&text, b"00ff10ab");
    }

    #[test]
    fn rejects_uppercase_and_bad_length() {
        let mut out = [0u8; 2];
        assert!(
            !decode_into(b"00FF", &mut out),
            "uppercase is not valid W3C hex"
        );
        assert!(!decode_into(b"00f", &mut out), "odd length");
        assert!(!decode_into(b"0g00", &mut out), "not a hex digit");
    }

    #[test]
    fn integers() {
        assert_eq!(parse_u64(b"ff"), Some(255));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"11111111111111111"), None);
        let mut s = String::new();
        push_u64(&mut s, 0xabc, 5);
        assert_eq!(s, "00abc");
    }
}
