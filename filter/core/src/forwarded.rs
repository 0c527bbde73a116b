//! The original client's address from the request's forwarding headers, for `client.address`.
//!
//! The semantic conventions ask a server span for the client *behind* any proxies when it is
//! known ("from `Forwarded#for`, `X-Forwarded-For`, or a similar header"), and the header is
//! in the request map the filter already holds, so it costs no host read; only a request
//! without one falls back to Envoy's `source.address` property (the direct peer).
//!
//! Header values are untrusted: only an IP literal is accepted (RFC 7239 `node`: IPv4, or
//! IPv6 in brackets, with an optional port); `unknown`, obfuscated identifiers and anything
//! that does not parse leave the address to the fallback.

/// `Forwarded` (RFC 7239).
pub const FORWARDED: &str = "forwarded";
/// `X-Forwarded-For` (de facto).
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address of the first (client-most) `for=` of a `Forwarded` value.
pub fn from_forwarded(value: &str) -> Option<String> {
    let element = first_element(value);
    for pair in element.split(';') {
        let Some((name, v)) = pair.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("for") {
            let v = v.trim();
            let v = match v.strip_prefix('"') {
                Some(q) => q.strip_suffix('"')?,
                None => v,
            };
            return node_ip(v);
        }
    }
    None
}

/// The client address of the first (client-most) entry of an `X-Forwarded-For` value.
pub fn from_x_forwarded_for(value: &str) -> Option<String> {
    let first = value.split(',').next()?.trim();
    // Proxies write bare IPv6 (no brackets) as well as RFC 7239 style nodes.
    if is_ipv6(first) {
        return Some(first.to_ascii_lowercase());
    }
    node_ip(first)
}

/// The first element of a comma-separated list whose items may be quoted strings.
fn first_element(value: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => return &value[..i],
            _ => {}
        }
    }
    value
}

/// An RFC 7239 `node` (`192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:80`)
/// to its IP (IPv6 in lowercase, as written otherwise).
fn node_ip(node: &str) -> Option<String> {
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || port(after.strip_prefix(':')?)) || !is_ipv6(v6) {
            return None;
        }
        return Some(v6.to_ascii_lowercase());
    }
    let host = match node.split_once(':') {
        Some((h, p)) if port(p) => h,
        Some(_) => return None,
        None => node,
    };
    is_ipv4(host).then(|| host.to_owned())
}

// The two validators below are written out because `std::net`'s parsers and their `Display`
// add about 11 KB to the Wasm module (measured), a twentieth of its size budget.

/// Dotted-quad IPv4 (RFC 3986 `IPv4address`: no leading zeros, each octet at most 255).
fn is_ipv4(s: &str) -> bool {
    let mut octets = 0;
    for part in s.split('.') {
        octets += 1;
        let ok = matches!(part.len(), 1..=3)
            && part.bytes().all(|b| b.is_ascii_digit())
            && !(part.len() > 1 && part.starts_with('0'))
            && part.parse::<u16>().is_ok_and(|n| n <= 255);
        if !ok || octets > 4 {
            return false;
        }
    }
    octets == 4
}

/// IPv6 text (RFC 4291 section 2.2): eight groups of one to four hex digits, one `::` standing
/// for one or more zero groups, and an optional dotted-quad IPv4 in place of the last two.
fn is_ipv6(s: &str) -> bool {
    if s.len() < 2 || !s.contains(':') {
        return false;
    }
    let (head, tail, compressed) = match s.split_once("::") {
        Some((h, t)) => (h, t, true),
        None => (s, "", false),
    };
    if tail.contains("::") {
        return false;
    }
    let mut groups = 0;
    for (i, side) in [head, tail].into_iter().enumerate() {
        if side.is_empty() {
            continue;
        }
        let parts: Vec<&str> = side.split(':').collect();
        for (j, g) in parts.iter().enumerate() {
            let last = j + 1 == parts.len() && (i == 1 || !compressed);
            if last && g.contains('.') {
                if !is_ipv4(g) {
                    return false;
                }
                groups += 2;
            } else if matches!(g.len(), 1..=4) && g.bytes().all(|b| b.is_ascii_hexdigit()) {
                groups += 1;
            } else {
                return false;
            }
        }
    }
    if compressed {
        groups < 8
    } else {
        groups == 8
    }
}

/// An RFC 7239 `node-port` that is a number (obfuscated ports carry no address anyway).
fn port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_of_the_first_element() {
        for (value, want) in [
            (
                "for=192.0.2.60;proto=http;by=203.0.113.43",
                Some("192.0.2.60"),
            ),
            (
                "For=\"[2001:db8:cafe::17]:4711\"",
                Some("2001:db8:cafe::17"),
            ),
            ("for=192.0.2.43, for=198.51.100.17", Some("192.0.2.43")),
            ("proto=https; for=\"192.0.2.43:47011\"", Some("192.0.2.43")),
            ("for=\"[2001:DB8::1]\"", Some("2001:db8::1")),
            ("by=10.0.0.1", None),
            ("for=unknown", None),
            ("for=_hidden, for=10.0.0.1", None),
            ("for=\"_gazonk\"", None),
            ("for=\"192.0.2.1", None),
            ("for=192.0.2.1:_port", None),
            ("for=[2001:db8::1]:x", None),
            ("for=999.0.0.1", None),
            ("for=01.2.3.4", None),
            ("for=1.2.3", None),
            ("for=1.2.3.4.5", None),
            ("for=\"[::1]\"", Some("::1")),
            ("for=\"[::ffff:192.0.2.1]:80\"", Some("::ffff:192.0.2.1")),
            ("for=\"[1:2:3:4:5:6:7:8:9]\"", None),
            ("for=\"[1::2::3]\"", None),
            ("for=\"[1:2:3:4:5:6:7:8]\"", Some("1:2:3:4:5:6:7:8")),
            ("for=\"[1:2:3:4:5:6:7]\"", None),
            ("for=\"[12345::]\"", None),
            ("for=\"[::g]\"", None),
            ("for=\"a,b\", for=10.0.0.1", None),
            ("", None),
            ("for=", None),
        ] {
            assert_eq!(from_forwarded(value).as_deref(), want, "{value:?}");
        }
    }

    #[test]
    fn x_forwarded_for_first_entry() {
        for (value, want) in [
            ("203.0.113.195", Some("203.0.113.195")),
            (
                "203.0.113.195, 70.41.3.18, 150.172.238.178",
                Some("203.0.113.195"),
            ),
            (
                " 2001:DB8:85a3::8a2e:370:7334 , 10.0.0.1",
                Some("2001:db8:85a3::8a2e:370:7334"),
            ),
            ("fe80::1:2", Some("fe80::1:2")),
            ("1.2.3.4:", None),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("192.0.2.1:8080", Some("192.0.2.1")),
            ("unknown, 10.0.0.1", None),
            ("not an address", None),
            ("", None),
            (",10.0.0.1", None),
        ] {
            assert_eq!(from_x_forwarded_for(value).as_deref(), want, "{value:?}");
        }
    }
}
