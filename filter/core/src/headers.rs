//! A header map exactly as the proxy-wasm host serializes it, read in place.
//!
//! `proxy_get_header_map_pairs` returns one buffer: a little-endian `u32` line count, then a
//! `(name length, value length)` `u32` pair per line, then each name and value followed by a
//! NUL byte. The SDK turns that into a `String` and a `Vec` per line; the filter only looks
//! at a handful of lines, so [`HeaderLines`] keeps the buffer and indexes it instead: one
//! allocation for the index, none per line (measured: this is the request path's hottest
//! host result).
//!
//! The buffer comes from the host and is parsed defensively: a truncated or inconsistent
//! buffer yields the lines that are complete, never a panic. Header values may carry
//! obs-text bytes that are not UTF-8; such a value becomes U+FFFD (lossy), which is an
//! invalid trace header anyway and still readable when recorded as an attribute.

use crate::propagation::Extractor;
use std::ops::Range;

/// Which header names a map may hold, as a 64-bit set of name fingerprints (length and last
/// byte, case-folded). A request is looked up for a dozen propagation headers (`traceparent`,
/// each B3 and Jaeger form, `baggage`, the legacy headers to remove) and carries one or two of
/// them: the filter answers most lookups with one AND instead of a scan of every line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameFilter(u64);

impl NameFilter {
    /// Length, last and middle byte: cheap, and with Envoy's usual request headers
    /// (`:authority`, `user-agent`, `x-request-id`, `x-forwarded-proto`, ...) it shares no
    /// slot with the propagation headers looked up.
    fn bit(name: &[u8]) -> u64 {
        let last = name.last().map_or(0, u8::to_ascii_lowercase);
        let mid = name.get(name.len() / 2).map_or(0, u8::to_ascii_lowercase);
        let slot = name.len() + 2 * usize::from(last) + usize::from(mid);
        1 << (slot & 63)
    }

    /// Records a name the map holds.
    pub fn insert(&mut self, name: &str) {
        self.0 |= Self::bit(name.as_bytes());
    }

    /// False when no line can be named `name` (case-insensitive); true when one may be.
    pub fn may_contain(self, name: &str) -> bool {
        self.0 & Self::bit(name.as_bytes()) != 0
    }
}

/// Request or response header lines, in the order the host gave them, repeated names kept.
#[derive(Clone, Debug, Default)]
pub struct HeaderLines {
    /// Every name and value, validated once and copied back to back (one allocation).
    text: String,
    /// (name, value) ranges into `text`, per line.
    lines: Vec<(Range<usize>, Range<usize>)>,
    /// The names present.
    names: NameFilter,
}

fn read_u32(buf: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b) as usize)
}

impl HeaderLines {
    /// Indexes a serialized header map. Never panics; stops at the first inconsistency.
    pub fn parse(buf: &[u8]) -> HeaderLines {
        let mut out = HeaderLines::default();
        let Some(count) = read_u32(buf, 0) else {
            return out;
        };
        // Each line takes at least 10 bytes (two lengths, two NULs): a count beyond that is a
        // lie and must not size an allocation.
        if count > buf.len() / 10 {
            return out;
        }
        out.lines.reserve_exact(count);
        out.text.reserve(buf.len());
        let mut data = 4 + count * 8;
        for i in 0..count {
            let (Some(klen), Some(vlen)) = (read_u32(buf, 4 + i * 8), read_u32(buf, 8 + i * 8))
            else {
                break;
            };
            let Some(key_end) = data.checked_add(klen) else {
                break;
            };
            let Some(val_end) = key_end.checked_add(1).and_then(|v| v.checked_add(vlen)) else {
                break;
            };
            let (Some(key), Some(val)) = (buf.get(data..key_end), buf.get(key_end + 1..val_end))
            else {
                break;
            };
            data = val_end + 1;
            let Ok(key) = std::str::from_utf8(key) else {
                continue;
            };
            out.names.insert(key);
            let k = out.push(key);
            let v = match std::str::from_utf8(val) {
                Ok(v) => out.push(v),
                Err(_) => out.push(&String::from_utf8_lossy(val)),
            };
            out.lines.push((k, v));
        }
        out
    }

    fn push(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    /// Builds lines from pairs (tests, and hosts that hand over parsed maps).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HeaderLines {
        let mut out = HeaderLines::default();
        for (k, v) in pairs {
            out.names.insert(k);
            let k = out.push(k);
            let v = out.push(v);
            out.lines.push((k, v));
        }
        out
    }

    /// Serializes lines the way the host does: how a Wasm module hands headers to the host
    /// (an HTTP call's), and the tests of [`HeaderLines::parse`].
    pub fn serialize(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&(self.lines.len() as u32).to_le_bytes());
        for (k, v) in self.iter() {
            buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in self.iter() {
            buf.extend_from_slice(k.as_bytes());
            buf.push(0);
            buf.extend_from_slice(v.as_bytes());
            buf.push(0);
        }
        buf
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// No lines.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn text(&self, r: &Range<usize>) -> &str {
        self.text.get(r.clone()).unwrap_or_default()
    }

    /// Every `(name, value)` line, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.lines.iter().map(|(k, v)| (self.text(k), self.text(v)))
    }

    /// Whether a line named `name` (case-insensitive) exists.
    pub fn contains(&self, name: &str) -> bool {
        self.names.may_contain(name)
            && self
                .lines
                .iter()
                .any(|(k, _)| self.text(k).eq_ignore_ascii_case(name))
    }
}

impl Extractor for HeaderLines {
    fn get_all(&self, name: &str) -> Vec<&str> {
        if !self.names.may_contain(name) {
            return Vec::new();
        }
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    fn get(&self, name: &str) -> Option<&str> {
        if !self.names.may_contain(name) {
            return None;
        }
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The propagation headers a request is looked up for.
    const PROPAGATION: [&str; 10] = [
        "traceparent",
        "tracestate",
        "baggage",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-sampled",
        "x-b3-flags",
        "x-b3-parentspanid",
        "uber-trace-id",
    ];

    #[test]
    fn name_filter_never_misses_a_name_it_holds() {
        let names = PROPAGATION.into_iter().chain([
            ":method",
            ":path",
            ":authority",
            "user-agent",
            "x-request-id",
            "",
            "a",
            "X-Force-Trace",
        ]);
        let names: Vec<&str> = names.collect();
        let mut f = NameFilter::default();
        for n in &names {
            f.insert(n);
        }
        for n in &names {
            assert!(f.may_contain(n), "{n}");
            assert!(f.may_contain(&n.to_ascii_uppercase()), "{n} upper case");
        }
        // A usual request rules out every propagation header it lacks.
        let mut usual = NameFilter::default();
        for n in [
            ":method",
            ":path",
            ":scheme",
            ":authority",
            "user-agent",
            "accept",
            "x-request-id",
            "x-forwarded-proto",
            "content-type",
            "te",
            "grpc-timeout",
        ] {
            usual.insert(n);
        }
        for n in PROPAGATION {
            assert!(!usual.may_contain(n), "{n}");
        }
        // A map with no lines rules out every name.
        assert!(!NameFilter::default().may_contain("traceparent"));
    }

    #[test]
    fn round_trip_keeps_order_and_repeats() {
        let h = HeaderLines::from_pairs([
            (":method", "GET"),
            ("tracestate", "a=1"),
            ("x-empty", ""),
            ("tracestate", "b=2"),
        ]);
        assert_eq!(h.len(), 4);
        assert_eq!(h.get(":method"), Some("GET"));
        assert_eq!(h.get("TraceState"), Some("a=1"));
        assert_eq!(h.get_all("tracestate"), vec!["a=1", "b=2"]);
        assert_eq!(h.get("x-empty"), Some(""));
        assert_eq!(h.get("missing"), None);
        assert!(h.contains("X-EMPTY"));
        let lines: Vec<_> = h.iter().collect();
        assert_eq!(lines[3], ("tracestate", "b=2"));
        let again = HeaderLines::parse(&h.serialize());
        assert_eq!(again.iter().collect::<Vec<_>>(), lines);
    }

    #[test]
    fn obs_text_values_become_lossy_copies() {
        let mut buf = HeaderLines::from_pairs([("user-agent", "ab"), ("x", "y")]).serialize();
        // Replace "ab" by two obs-text bytes (same length, so the layout stays valid).
        let at = buf.windows(2).position(|w| w == b"ab").unwrap();
        buf[at] = 0xff;
        buf[at + 1] = 0xfe;
        let h = HeaderLines::parse(&buf);
        assert_eq!(h.get("user-agent"), Some("\u{fffd}\u{fffd}"));
        assert_eq!(h.get("x"), Some("y"));
    }

    #[test]
    fn hostile_buffers_never_panic() {
        let good = HeaderLines::from_pairs([("a", "1"), ("bb", "22")]).serialize();
        // Every truncation yields a prefix of the lines.
        for cut in 0..good.len() {
            let h = HeaderLines::parse(&good[..cut]);
            assert!(h.len() <= 2, "cut {cut}");
            if h.len() == 1 {
                assert_eq!(h.get("a"), Some("1"));
            }
        }
        assert_eq!(HeaderLines::parse(&good).len(), 2);
        // A huge count and huge lengths are refused without a big allocation.
        let mut lie = Vec::new();
        lie.extend_from_slice(&u32::MAX.to_le_bytes());
        lie.extend_from_slice(&u32::MAX.to_le_bytes());
        lie.extend_from_slice(&u32::MAX.to_le_bytes());
        lie.extend_from_slice(&[0u8; 20]);
        assert!(HeaderLines::parse(&lie).is_empty());
        assert!(HeaderLines::parse(&[]).is_empty());
        // A name that is not UTF-8 is skipped, later lines still read.
        let mut buf = HeaderLines::from_pairs([("k", "v"), ("n", "w")]).serialize();
        let at = buf.iter().position(|b| *b == b'k').unwrap();
        buf[at] = 0xff;
        let h = HeaderLines::parse(&buf);
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("n"), Some("w"));
    }
}
