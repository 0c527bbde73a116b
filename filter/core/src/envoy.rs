//! Envoy facts that need decoding: the `response.flags` property is a bit vector; spans
//! carry the short names that Envoy's access logs use (`UF,URX`).

/// Short names of Envoy's response flags, by bit position (Envoy's legacy flag order).
const RESPONSE_FLAGS: [&str; 30] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
    "UDO",
];

/// The comma-separated short names of the bits set in `bits`; `None` when no flag is set.
/// Unknown bits are written as `0x<bit>` so nothing is silently lost.
pub fn response_flags(bits: u64) -> Option<String> {
    if bits == 0 {
        return None;
    }
    let mut out = String::new();
    for i in 0..64 {
        if bits & (1u64 << i) == 0 {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        match RESPONSE_FLAGS.get(i) {
            Some(name) => out.push_str(name),
            None => {
                out.push_str("0x");
                crate::hex::push_u64(&mut out, 1u64 << i, 16);
            }
        }
    }
    Some(out)
}

/// The part of an `ip:port` / `[v6]:port` address before the port.
pub fn address_ip(addr: &str) -> &str {
    crate::semconv::split_authority(addr).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert_eq!(response_flags(0), None);
        assert_eq!(response_flags(0x20).as_deref(), Some("UF"));
        assert_eq!(response_flags(0x20 | 0x8000).as_deref(), Some("UF,URX"));
        assert_eq!(response_flags(0x100).as_deref(), Some("NR"));
        assert_eq!(
            response_flags(1 << 40).as_deref(),
            Some("0x0000010000000000")
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(address_ip("10.0.0.1:4242"), "10.0.0.1");
        assert_eq!(address_ip("[::1]:80"), "::1");
        assert_eq!(address_ip("10.0.0.1"), "10.0.0.1");
    }
}
