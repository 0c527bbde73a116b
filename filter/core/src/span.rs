//! The span the filter records: a plain model, turned into OTLP by [`crate::otlp`].

use crate::ids::{SpanId, TraceId};
use std::borrow::Cow;

/// OTLP span kinds the filter produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// The proxy serves the request (ingress).
    Server,
    /// The proxy calls a service (egress).
    Client,
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// A 64-bit integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// One attribute. Keys are mostly static names from the semantic conventions.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    /// The attribute name.
    pub key: Cow<'static, str>,
    /// The value.
    pub value: Value,
}

/// Span status code, as in OTLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StatusCode {
    /// Not set (success for server 4xx, and so on).
    #[default]
    Unset,
    /// Explicit success (the filter never sets it: conventions leave it to applications).
    Ok,
    /// Failed.
    Error,
}

/// A link to another span context (used for an untrusted incoming context).
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// Linked trace.
    pub trace_id: TraceId,
    /// Linked span.
    pub span_id: SpanId,
    /// Its tracestate header value.
    pub trace_state: String,
    /// W3C trace flags of the linked context.
    pub flags: u8,
    /// The linked context came from another process.
    pub is_remote: bool,
}

impl Link {
    /// The link's OTLP `flags` (see [`crate::contract::otlp_flags`]).
    pub fn otlp_flags(&self) -> u32 {
        crate::contract::otlp_flags(self.flags, self.is_remote)
    }
}

/// A finished (or in-progress) span.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Trace id.
    pub trace_id: TraceId,
    /// This span's id.
    pub span_id: SpanId,
    /// The parent (the caller's span), if any.
    pub parent_span_id: Option<SpanId>,
    /// The parent is in another process (always, when there is a parent).
    pub parent_is_remote: bool,
    /// W3C trace flags (0x01 sampled, 0x02 random).
    pub flags: u8,
    /// The tracestate propagated with this span (`ot=th:...` when probability-sampled).
    pub trace_state: String,
    /// Span name per the conventions.
    pub name: String,
    /// Server or client.
    pub kind: SpanKind,
    /// Start, nanoseconds since the Unix epoch (host clock).
    pub start_unix_nano: u64,
    /// End, nanoseconds since the Unix epoch (host clock).
    pub end_unix_nano: u64,
    /// Attributes, values already capped.
    pub attributes: Vec<Attribute>,
    /// Status code.
    pub status: StatusCode,
    /// Status message (only with `Error`).
    pub status_message: String,
    /// Links.
    pub links: Vec<Link>,
}

impl Span {
    /// The span's OTLP `flags`: is-remote when it has a parent from another process (see
    /// [`crate::contract::otlp_flags`]).
    pub fn otlp_flags(&self) -> u32 {
        let remote = self.parent_span_id.is_some() && self.parent_is_remote;
        crate::contract::otlp_flags(self.flags, remote)
    }
}

/// Cuts `s` to at most `max` bytes on a UTF-8 character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Collects attributes, capping string values at `max_len` bytes.
#[derive(Debug)]
pub struct Attributes {
    /// The attributes so far.
    pub list: Vec<Attribute>,
    /// Longest string value in bytes.
    pub max_len: usize,
}

impl Attributes {
    /// An empty list with room for a typical span.
    pub fn new(max_len: usize) -> Attributes {
        Attributes {
            list: Vec::with_capacity(16),
            max_len,
        }
    }

    /// Adds a string attribute, capped.
    pub fn str(&mut self, key: impl Into<Cow<'static, str>>, v: &str) {
        self.list.push(Attribute {
            key: key.into(),
            value: Value::Str(truncate_utf8(v, self.max_len).to_owned()),
        });
    }

    /// Adds a string attribute the caller owns, capped in place (no copy).
    pub fn string(&mut self, key: impl Into<Cow<'static, str>>, mut v: String) {
        let keep = truncate_utf8(&v, self.max_len).len();
        v.truncate(keep);
        self.list.push(Attribute {
            key: key.into(),
            value: Value::Str(v),
        });
    }

    /// Adds an integer attribute.
    pub fn int(&mut self, key: &'static str, v: i64) {
        self.list.push(Attribute {
            key: Cow::Borrowed(key),
            value: Value::Int(v),
        });
    }

    /// Adds a boolean attribute.
    pub fn bool(&mut self, key: &'static str, v: bool) {
        self.list.push(Attribute {
            key: Cow::Borrowed(key),
            value: Value::Bool(v),
        });
    }

    /// The value of `key`, if set (tests and the status rules read back).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.list.iter().find(|a| a.key == key).map(|a| &a.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_utf8("hello", 10), "hello");
        assert_eq!(truncate_utf8("hello", 3), "hel");
        assert_eq!(
            truncate_utf8("h\u{e9}llo", 2),
            "h",
            "é is 2 bytes: cut before it"
        );
        assert_eq!(truncate_utf8("\u{1F600}", 3), "");
        let mut a = Attributes::new(4);
        a.str("k", "abcdef");
        a.int("n", 3);
        a.string("o", "h\u{e9}llo".to_owned());
        assert_eq!(a.get("k"), Some(&Value::Str("abcd".into())));
        assert_eq!(a.get("o"), Some(&Value::Str("h\u{e9}l".into())));
        assert_eq!(a.get("n"), Some(&Value::Int(3)));
        assert_eq!(a.get("x"), None);
    }
}
