//! W3C Baggage (<https://www.w3.org/TR/baggage/>, "Limits"; unchanged in the editor's draft at
//! w3c/baggage `9af80f4`, 2025-06-18): the proxy forwards `baggage` unchanged when the combined
//! lines are within the limits every platform must propagate (64 members, 8192 bytes, commas
//! and whitespace included; no per-member limit); beyond them it keeps the leading complete
//! members that fit, never a partial member. Members named in `baggage_to_attributes` become
//! span attributes (`baggage.<key>`), with their values percent-decoded (bytes that are not
//! UTF-8 become U+FFFD, as the spec requires).
//!
//! Grammar: `list-member *(OWS "," OWS list-member)`, `list-member = key OWS "=" OWS value
//! *(OWS ";" OWS property)`, key = RFC 7230 token, value = baggage-octets (percent-encoded).

use super::Extractor;

/// Header name.
pub const BAGGAGE: &str = "baggage";
/// Most members propagated.
pub const MAX_MEMBERS: usize = 64;
/// Most bytes propagated (the combined header).
pub const MAX_BYTES: usize = 8192;

/// An RFC 7230 `tchar` (token character): baggage keys and HTTP header names are tokens.
pub(crate) fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn is_baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Splits one member into its key and raw (still percent-encoded) value, checking the
/// grammar; properties after `;` are checked for being non-empty and dropped.
pub fn parse_member(member: &str) -> Option<(&str, &str)> {
    let mut parts = member.split(';');
    let kv = parts.next()?;
    let (k, v) = kv.split_once('=')?;
    let (k, v) = (trim_ows(k), trim_ows(v));
    if k.is_empty() || !k.bytes().all(is_tchar) || !v.bytes().all(is_baggage_octet) {
        return None;
    }
    for prop in parts {
        let prop = trim_ows(prop);
        let (key, value) = prop
            .split_once('=')
            .map_or((prop, ""), |(pk, pv)| (trim_ows(pk), trim_ows(pv)));
        if key.is_empty() || !key.bytes().all(is_tchar) || !value.bytes().all(is_baggage_octet) {
            return None;
        }
    }
    Some((k, v))
}

/// Percent-decodes a value; `None` for a malformed escape or a result that is not UTF-8.
pub fn percent_decode(v: &str) -> Option<String> {
    String::from_utf8(percent_decode_bytes(v)?).ok()
}

/// Percent-decodes a baggage value as W3C Baggage says: octet sequences that are not UTF-8
/// become U+FFFD. `None` only for a malformed escape (`%` not followed by two hex digits),
/// which the grammar does not allow.
pub fn percent_decode_lossy(v: &str) -> Option<String> {
    Some(String::from_utf8_lossy(&percent_decode_bytes(v)?).into_owned())
}

fn percent_decode_bytes(v: &str) -> Option<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = (*b.get(i + 1)? as char).to_digit(16)?;
            let lo = (*b.get(i + 2)? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// What the proxy does with the incoming `baggage` header lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    /// The members as received (trimmed), in order, at most 64 / 8192 bytes.
    members: Vec<String>,
    /// True when the lines had to be cut to fit the limits (the header must be rewritten).
    pub trimmed: bool,
    /// True when some member did not match the grammar (it is still forwarded unchanged,
    /// but never turned into an attribute).
    pub invalid: bool,
}

impl Baggage {
    /// Reads every `baggage` line; `None` when there is none.
    pub fn extract(headers: &(impl Extractor + ?Sized)) -> Option<Baggage> {
        let lines = headers.get_all(BAGGAGE);
        if lines.is_empty() {
            return None;
        }
        let mut bag = Baggage::default();
        let mut bytes = 0usize;
        'lines: for line in lines {
            for raw in line.split(',') {
                let member = trim_ows(raw);
                if member.is_empty() {
                    continue;
                }
                let added = member.len() + usize::from(!bag.members.is_empty());
                if bag.members.len() == MAX_MEMBERS || bytes + added > MAX_BYTES {
                    bag.trimmed = true;
                    break 'lines;
                }
                if parse_member(member).is_none() {
                    bag.invalid = true;
                }
                bytes += added;
                bag.members.push(member.to_owned());
            }
        }
        Some(bag)
    }

    /// The combined header value to send upstream when [`Baggage::trimmed`] is set.
    pub fn header_value(&self) -> String {
        self.members.join(",")
    }

    /// Number of members kept.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// No member kept.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The decoded value of the first valid member named `key` (non-UTF-8 bytes as U+FFFD).
    pub fn get(&self, key: &str) -> Option<String> {
        self.members
            .iter()
            .filter_map(|m| parse_member(m))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| percent_decode_lossy(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn bag(lines: &[&str]) -> Option<Baggage> {
        let mut h: HashMap<String, Vec<String>> = HashMap::new();
        if !lines.is_empty() {
            h.insert(
                "baggage".into(),
                lines.iter().map(|s| s.to_string()).collect(),
            );
        }
        Baggage::extract(&h)
    }

    #[rustfmt::skip]
    const MEMBERS: &[(&str, Option<(&str, &str)>, &str)] = &[
        ("userId=alice",                   Some(("userId", "alice")),       "plain"),
        ("k = v",                          Some(("k", "v")),                "whitespace around ="),
        ("k=v;prop1;prop2=x",              Some(("k", "v")),                "properties are dropped"),
        ("k=",                             Some(("k", "")),                 "empty value is allowed"),
        ("serverNode=DF%2028",             Some(("serverNode", "DF%2028")), "percent-encoded value kept raw"),
        ("=v",                             None,                            "empty key"),
        ("k v=1",                          None,                            "space in key"),
        ("k=a b",                          None,                            "space in value"),
        ("k=a\"b",                         None,                            "DQUOTE is not a baggage-octet"),
        ("k",                              None,                            "no ="),
        ("k=v;",                           None,                            "empty property"),
        ("k=v;p = x%20y",                  Some(("k", "v")),                "property with a value"),
        ("k=v;p=x y",                      None,                            "property value outside baggage-octet"),
        ("k=\u{e9}",                       None,                            "non-ASCII value must be percent-encoded"),
    ];

    #[test]
    fn member_grammar() {
        for &(m, want, why) in MEMBERS {
            assert_eq!(parse_member(m), want, "{why}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("DF%2028").as_deref(), Some("DF 28"));
        assert_eq!(percent_decode("%C3%A9t%c3%a9").as_deref(), Some("été"));
        assert_eq!(percent_decode("%2"), None, "truncated escape");
        assert_eq!(percent_decode("%zz"), None, "not hex");
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
        assert_eq!(
            percent_decode_lossy("a%ffb%C3%A9").as_deref(),
            Some("a\u{fffd}b\u{e9}"),
            "W3C Baggage: non-UTF-8 sequences become U+FFFD"
        );
        assert_eq!(percent_decode_lossy("%zz"), None, "malformed escape");
    }

    #[test]
    fn lines_within_limits_are_kept_unchanged() {
        assert_eq!(bag(&[]), None);
        let b = bag(&["a=1, b=2", "c=%20x;p"]).unwrap();
        assert!(!b.trimmed && !b.invalid);
        assert_eq!(b.header_value(), "a=1,b=2,c=%20x;p");
        assert_eq!(b.get("c").as_deref(), Some(" x"));
        assert_eq!(b.get("nope"), None);
        let b = bag(&["k=%ff%41"]).unwrap();
        assert_eq!(b.get("k").as_deref(), Some("\u{fffd}A"));
        let b = bag(&["a=1,bad value"]).unwrap();
        assert!(
            b.invalid && !b.trimmed,
            "invalid members are flagged, forwarded, not parsed"
        );
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn more_than_64_members_keeps_the_first_64() {
        let line = (0..70)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let b = bag(&[&line]).unwrap();
        assert!(b.trimmed);
        assert_eq!(b.len(), 64);
        assert!(b.header_value().ends_with(",k63=v"));
    }

    #[test]
    fn over_8192_bytes_keeps_only_whole_members() {
        let member = format!("k={}", "v".repeat(998)); // 1000 bytes
        let line = vec![member.clone(); 9].join(",");
        let b = bag(&[&line]).unwrap();
        assert!(b.trimmed);
        let out = b.header_value();
        assert_eq!(
            b.len(),
            8,
            "8 members + 7 commas = 8007 bytes; a 9th would pass 8192"
        );
        assert!(out.len() <= MAX_BYTES);
        assert!(out.split(',').all(|m| m == member), "no partial member");
        // Exactly at the limit is kept.
        let exact = format!("k={}", "v".repeat(MAX_BYTES - 2));
        let b = bag(&[&exact]).unwrap();
        assert!(!b.trimmed && b.len() == 1);
        let over = format!("k={}", "v".repeat(MAX_BYTES - 1));
        let b = bag(&[&over]).unwrap();
        assert!(b.trimmed && b.is_empty());
    }
}
