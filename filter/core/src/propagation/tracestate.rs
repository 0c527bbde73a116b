//! W3C Trace Context Level 1 `tracestate`.
//!
//! - Several header lines are one list, combined in order (as if joined with `,`).
//! - Keys: `simple-key` (`lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/")`) or
//!   multi-tenant `tenant@system` (tenant up to 241 chars starting with lcalpha or DIGIT,
//!   system up to 14 chars starting with lcalpha). Values: up to 256 printable ASCII
//!   chars except `,` and `=`, not ending with a space.
//! - Empty members (`a=1,,b=2`) are allowed and ignored; at most 32 members; keys unique.
//! - An invalid list is dropped as a whole (we then propagate no `tracestate`).
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
    /// The same key twice.
    DuplicateKey,
}

/// A valid tracestate list, leftmost (most recent) member first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceState {
    members: Vec<(String, String)>,
}

fn key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
}

/// Checks the key grammar, including multi-tenant keys.
pub fn is_valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    match key.split_once('@') {
        None => {
            !b.is_empty()
                && b.len() <= 256
                && b[0].is_ascii_lowercase()
                && b.iter().all(|&c| key_char(c))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|&c| key_char(c))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s.iter().all(|&c| key_char(c))
        }
    }
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
            if self.members.len() == MAX_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            if self.get(k).is_some() {
                return Err(TraceStateError::DuplicateKey);
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
        ("a_-*/9=v",                                   "a_-*/9=v",                   "all key characters"),
        ("k=a b!\"#$%&'()*+-./:;<>?@[]^_`{|}~",        "k=a b!\"#$%&'()*+-./:;<>?@[]^_`{|}~", "all value characters"),
        ("",                                           "",                           "empty list"),
    ];

    #[rustfmt::skip]
    const INVALID: &[(&str, TraceStateError, &str)] = &[
        ("a",                 E::Key,            "no ="),
        ("A=1",               E::Key,            "uppercase key"),
        ("1a=1",              E::Key,            "simple key starts with a digit"),
        ("a@=1",              E::Key,            "empty system id"),
        ("@a=1",              E::Key,            "empty tenant id"),
        ("t@1sys=1",          E::Key,            "system id starts with a digit"),
        ("t@systemnameistoolong=1", E::Key,      "system id over 14 chars"),
        ("a@b@c=1",           E::Key,            "two @"),
        ("a=",                E::Value,          "empty value"),
        ("a=x\u{1}",          E::Value,          "control character in value"),
        ("a=b=c",             E::Value,          "= inside the value"),
        ("a=\u{e9}",          E::Value,          "non-ASCII value"),
        ("a=1,a=2",           E::DuplicateKey,   "duplicate key"),
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
        h.insert("tracestate".into(), vec!["a=1".into(), "a=2".into()]);
        assert_eq!(
            TraceState::extract(&h),
            Err(E::DuplicateKey),
            "duplicate across lines"
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
