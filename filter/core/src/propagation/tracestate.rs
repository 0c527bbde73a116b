//! W3C Trace Context Level 2 `tracestate` (editor's draft, w3c/trace-context `acab820`).
//!
//! - Several header lines are one list, combined in order (as if joined with `,`).
//! - Keys: `( lcalpha / DIGIT ) 0*255 ( lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@" )`, so
//!   1 to 256 characters; Level 2 dropped Level 1's separate `tenant@system` form (its
//!   241/14-character parts and the single `@`). Values: up to 256 printable ASCII chars
//!   except `,` and `=`, not ending with a space; leading spaces are part of the value,
//!   trailing ones are optional whitespace.
//! - Empty members (`a=1,,b=2`) are allowed and ignored; at most 32 members (counted as
//!   received, duplicates included).
//! - A repeated key keeps its first (leftmost) member; later ones are discarded (the spec lets
//!   a vendor discard duplicates it did not generate) and counted.
//! - Any other invalid member drops the list as a whole (we then propagate no `tracestate`).
//! - A member we change or add moves to the front; when the header exceeds [`MAX_LEN`],
//!   members longer than 128 chars go first, then members from the end.

use super::Extractor;

/// Header name.
pub const TRACESTATE: &str = "tracestate";
/// Most list members a tracestate may carry.
pub const MAX_MEMBERS: usize = 32;
/// The length we propagate at most (the spec asks to propagate at least 512 chars).
pub const MAX_LEN: usize = 512;
/// Members longer than this are the first to go when trimming for size.
pub const LONG_MEMBER: usize = 128;

/// Why a tracestate list was dropped (counted as `aetherflow_invalid_tracestate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceStateError {
    /// A member without `=`, or a key outside the key grammar.
    Key,
    /// A value outside the value grammar.
    Value,
    /// More than 32 members.
    TooManyMembers,
}

/// A valid tracestate list, leftmost (most recent) member first. Two lists are equal when
/// their members are (the parse counters are not compared).
#[derive(Clone, Debug, Default)]
pub struct TraceState {
    members: Vec<(String, String)>,
    /// Members as received, duplicates included (the 32-member limit applies to these).
    received: usize,
    /// Members discarded because their key was already in the list.
    duplicates: usize,
}

impl PartialEq for TraceState {
    fn eq(&self, other: &TraceState) -> bool {
        self.members == other.members
    }
}

impl Eq for TraceState {}

fn key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// Most characters in a key.
pub const MAX_KEY_LEN: usize = 256;

/// Checks the Level 2 key grammar: a lowercase letter or a digit, then up to 255 of lowercase
/// letters, digits, `_`, `-`, `*`, `/` and `@`.
pub fn is_valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_KEY_LEN
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| key_char(c))
}

/// Checks the value grammar: 1..=256 chars of `%x20-2B / %x2D-3C / %x3E-7E`, last not a space.
pub fn is_valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b[b.len() - 1] != b' '
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

impl TraceState {
    /// Parses one combined list.
    pub fn parse(value: &str) -> Result<TraceState, TraceStateError> {
        let mut ts = TraceState::default();
        ts.parse_into(value)?;
        Ok(ts)
    }

    fn parse_into(&mut self, value: &str) -> Result<(), TraceStateError> {
        for raw in value.split(',') {
            let member = raw.trim_matches(|c| c == ' ' || c == '\t');
            if member.is_empty() {
                continue;
            }
            let (k, v) = member.split_once('=').ok_or(TraceStateError::Key)?;
            if !is_valid_key(k) {
                return Err(TraceStateError::Key);
            }
            if !is_valid_value(v) {
                return Err(TraceStateError::Value);
            }
            if self.received == MAX_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            self.received += 1;
            if self.get(k).is_some() {
                self.duplicates += 1;
                continue;
            }
            self.members.push((k.to_owned(), v.to_owned()));
        }
        Ok(())
    }

    /// Reads and combines every `tracestate` header line: `Ok(None)` when absent.
    pub fn extract(
        headers: &(impl Extractor + ?Sized),
    ) -> Result<Option<TraceState>, TraceStateError> {
        let lines = headers.get_all(TRACESTATE);
        if lines.is_empty() {
            return Ok(None);
        }
        let mut ts = TraceState::default();
        for line in lines {
            ts.parse_into(line)?;
        }
        Ok(Some(ts))
    }

    /// How many members were discarded because their key came earlier in the list.
    pub fn duplicates(&self) -> usize {
        self.duplicates
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` and moves it to the front, as the spec requires for a member we update.
    /// Returns false (and changes nothing) when the key or value is not valid. If the list
    /// is full, the rightmost member makes room.
    pub fn set_front(&mut self, key: &str, value: &str) -> bool {
        if !is_valid_key(key) || !is_valid_value(value) {
            return false;
        }
        self.remove(key);
        if self.members.len() == MAX_MEMBERS {
            self.members.pop();
        }
        self.members.insert(0, (key.to_owned(), value.to_owned()));
        true
    }

    /// Removes `key`; true if it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|(k, _)| k != key);
        self.members.len() != before
    }

    /// The members, leftmost first.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The header value, trimmed to [`MAX_LEN`]: members over 128 chars are removed first
    /// (rightmost first), then members from the end, until it fits.
    pub fn header_value(&self) -> String {
        let member_len = |(k, v): &(String, String)| k.len() + 1 + v.len();
        let total = |keep: &[bool]| -> usize {
            let (n, sum) = self
                .members
                .iter()
                .zip(keep)
                .filter(|(_, &kp)| kp)
                .fold((0usize, 0usize), |(n, s), (m, _)| {
                    (n + 1, s + member_len(m))
                });
            sum + n.saturating_sub(1)
        };
        let mut keep = vec![true; self.members.len()];
        for i in (0..self.members.len()).rev() {
            if total(&keep) <= MAX_LEN {
                break;
            }
            if member_len(&self.members[i]) > LONG_MEMBER {
                keep[i] = false;
            }
        }
        for i in (0..self.members.len()).rev() {
            if total(&keep) <= MAX_LEN {
                break;
            }
            keep[i] = false;
        }
        let mut out = String::with_capacity(total(&keep));
        for (m, _) in self.members.iter().zip(&keep).filter(|(_, &k)| k) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&m.0);
            out.push('=');
            out.push_str(&m.1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use TraceStateError as E;

    #[rustfmt::skip]
    const VALID: &[(&str, &str, &str)] = &[
        ("congo=t61rcWkgMzE",                          "congo=t61rcWkgMzE",          "one member"),
        ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",    "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "order kept"),
        (" a=1 ,\tb=2\t",                              "a=1,b=2",                    "optional whitespace around members"),
        ("a=1,,b=2,",                                  "a=1,b=2",                    "empty members are ignored"),
        ("tenant@system=x,1tenant@sys-2=y",            "tenant@system=x,1tenant@sys-2=y", "multi-tenant keys"),
        ("1a=1,a@=2,a@b@c=3,t@1sys=4",                 "1a=1,a@=2,a@b@c=3,t@1sys=4", "Level 2 keys: a digit first, '@' anywhere after the first character"),
        ("t@systemnamelongerthan14=x",                 "t@systemnamelongerthan14=x", "Level 2: no 14-character limit after '@'"),
        ("a=1,b=2,a=3",                                "a=1,b=2",                    "a repeated key: the first member stays"),
        ("k= v",                                       "k= v",                       "leading spaces belong to the value"),
        ("a_-*/9=v",                                   "a_-*/9=v",                   "all key characters"),
        ("k=a b!\"#$%&'()*+-./:;<>?@[]^_`{|}~",        "k=a b!\"#$%&'()*+-./:;<>?@[]^_`{|}~", "all value characters"),
        ("",                                           "",                           "empty list"),
    ];

    #[rustfmt::skip]
    const INVALID: &[(&str, TraceStateError, &str)] = &[
        ("a",                 E::Key,            "no ="),
        ("A=1",               E::Key,            "uppercase key"),
        ("@a=1",              E::Key,            "key starts with @"),
        ("_a=1",              E::Key,            "key starts with _"),
        ("a.b=1",             E::Key,            ". in a key"),
        ("a =1",              E::Key,            "space before ="),
        ("a=",                E::Value,          "empty value"),
        ("a=x\u{1}",          E::Value,          "control character in value"),
        ("a=b=c",             E::Value,          "= inside the value"),
        ("a=\u{e9}",          E::Value,          "non-ASCII value"),
    ];

    #[test]
    fn valid_lists() {
        for &(input, out, why) in VALID {
            let ts = TraceState::parse(input).unwrap_or_else(|e| panic!("{why}: {e:?}"));
            assert_eq!(ts.header_value(), out, "{why}");
        }
    }

    #[test]
    fn invalid_lists() {
        for &(input, err, why) in INVALID {
            assert_eq!(TraceState::parse(input), Err(err), "{why}: {input:?}");
        }
        let long_key = format!("{}=1", "a".repeat(257));
        assert_eq!(
            TraceState::parse(&long_key),
            Err(E::Key),
            "key over 256 chars"
        );
        let key_256 = format!("{}@{}", "t".repeat(200), "v".repeat(55));
        assert!(
            TraceState::parse(&format!("{key_256}=1")).is_ok(),
            "256 chars with @"
        );
        let long_value = format!("a={}", "v".repeat(257));
        assert_eq!(
            TraceState::parse(&long_value),
            Err(E::Value),
            "value over 256 chars"
        );
    }

    #[test]
    fn at_most_32_members() {
        let list = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(TraceState::parse(&list(32)).unwrap().members().count(), 32);
        assert_eq!(TraceState::parse(&list(33)), Err(E::TooManyMembers));
    }

    #[test]
    fn lines_are_combined_in_order() {
        let mut h: HashMap<String, Vec<String>> = HashMap::new();
        assert_eq!(TraceState::extract(&h), Ok(None));
        h.insert("tracestate".into(), vec!["a=1,b=2".into(), "c=3".into()]);
        assert_eq!(
            TraceState::extract(&h).unwrap().unwrap().header_value(),
            "a=1,b=2,c=3"
        );
        h.insert("tracestate".into(), vec!["a=1".into(), "a=2,b=3".into()]);
        let ts = TraceState::extract(&h).unwrap().unwrap();
        assert_eq!(ts.header_value(), "a=1,b=3", "duplicate across lines");
        assert_eq!(ts.duplicates(), 1);
        let dup32: Vec<String> = (0..33).map(|i| format!("k{}=v", i % 2)).collect();
        h.insert("tracestate".into(), vec![dup32.join(",")]);
        assert_eq!(
            TraceState::extract(&h),
            Err(E::TooManyMembers),
            "33 members received, even if only 2 keys"
        );
        let lines: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        h.insert("tracestate".into(), lines);
        assert_eq!(
            TraceState::extract(&h),
            Err(E::TooManyMembers),
            "33 members over 33 lines"
        );
    }

    #[test]
    fn updated_member_moves_to_front() {
        let mut ts = TraceState::parse("a=1,ot=th:8,b=2").unwrap();
        assert!(ts.set_front("ot", "th:c"));
        assert_eq!(ts.header_value(), "ot=th:c,a=1,b=2");
        assert!(!ts.set_front("ot", "bad,value"));
        assert!(ts.remove("a"));
        assert_eq!(ts.header_value(), "ot=th:c,b=2");
        let mut full = TraceState::parse(
            &(0..32)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .unwrap();
        assert!(full.set_front("ot", "th:0"));
        assert_eq!(full.members().count(), 32);
        assert_eq!(full.members().next(), Some(("ot", "th:0")));
        assert_eq!(full.get("k31"), None, "rightmost member made room");
    }

    #[test]
    fn trimming_drops_long_members_first_then_from_the_end() {
        let long = format!("long={}", "x".repeat(200));
        let shorts: Vec<String> = (0..20)
            .map(|i| format!("k{i:02}={}", "y".repeat(16)))
            .collect();
        let mut members = vec![shorts[0].clone(), long.clone()];
        members.extend(shorts[1..].iter().cloned());
        let ts = TraceState::parse(&members.join(",")).unwrap();
        let out = ts.header_value();
        assert!(out.len() <= MAX_LEN, "{}", out.len());
        assert!(!out.contains("long="), "the >128-char member goes first");
        assert!(
            out.starts_with("k00="),
            "short members are kept from the left"
        );
        // 20 members of 20 chars + separators = 419 chars: all short members fit.
        assert_eq!(out.split(',').count(), 20);

        let many: Vec<String> = (0..30)
            .map(|i| format!("k{i:02}={}", "y".repeat(26)))
            .collect();
        let out = TraceState::parse(&many.join(",")).unwrap().header_value();
        assert!(out.len() <= MAX_LEN);
        assert_eq!(
            out.split(',').count(),
            16,
            "16 x 30 chars + 15 commas = 495; members dropped from the end, never split"
        );
        assert!(out.ends_with(&many[15]));
    }
}
