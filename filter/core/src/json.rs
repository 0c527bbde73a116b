//! A small JSON reader for the plugin configuration (RFC 8259). The filter needs to read
//! one small document once; a dedicated reader costs a few KB in the wasm module where
//! `serde_json` with its float formatting cost about 60 KB (the module must stay under
//! 300 KB). Nesting depth is bounded; numbers keep their text and convert on demand.

/// A parsed JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, members in document order (duplicates are kept; callers reject them).
    Object(Vec<(String, Json)>),
}

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 32;

/// A syntax error: byte offset and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset in the input.
    pub offset: usize,
    /// What was expected.
    pub reason: &'static str,
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn err<T>(&self, reason: &'static str) -> Result<T, JsonError> {
        Err(JsonError {
            offset: self.i,
            reason,
        })
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn lit(&mut self, word: &[u8], v: Json) -> Result<Json, JsonError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("invalid literal")
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        self.ws();
        match self.b.get(self.i) {
            None => self.err("unexpected end of input"),
            Some(b'n') => self.lit(b"null", Json::Null),
            Some(b't') => self.lit(b"true", Json::Bool(true)),
            Some(b'f') => self.lit(b"false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::String),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return self.err("expected a string key");
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return self.err("expected ':'");
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    members.push((k, v));
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.err("expected a value"),
        }
    }

    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.i;
        let digits = |r: &mut Self| {
            let s = r.i;
            while r.i < r.b.len() && r.b[r.i].is_ascii_digit() {
                r.i += 1;
            }
            r.i - s
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b[int_start] == b'0') {
            return self.err("invalid number");
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return self.err("invalid number");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.err("invalid number");
            }
        }
        let text = core::str::from_utf8(&self.b[start..self.i]).unwrap_or_default();
        Ok(Json::Number(text.to_owned()))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let s = self.b.get(self.i..self.i + 4).ok_or(JsonError {
            offset: self.i,
            reason: "bad \\u escape",
        })?;
        let v = core::str::from_utf8(s)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        self.i += 4;
        v.ok_or(JsonError {
            offset: self.i,
            reason: "bad \\u escape",
        })
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return self.err("unterminated string");
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xd800..0xdc00).contains(&hi) {
                                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return self.err("unpaired surrogate");
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return self.err("unpaired surrogate");
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            match char::from_u32(cp) {
                                Some(ch) => ch,
                                None => return self.err("unpaired surrogate"),
                            }
                        }
                        _ => return self.err("bad escape"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return self.err("control character in string"),
                _ => out.push(c),
            }
        }
        String::from_utf8(out).or_else(|_| self.err("string is not UTF-8"))
    }
}

/// Parses one JSON document (surrounding whitespace allowed, nothing after it).
pub fn parse(input: &[u8]) -> Result<Json, JsonError> {
    let mut r = Reader { b: input, i: 0 };
    let v = r.value(0)?;
    r.ws();
    if r.i != input.len() {
        return r.err("trailing characters after the value");
    }
    Ok(v)
}

impl Json {
    /// The kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// A non-negative integer that fits in `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(t) => t.parse().ok(),
            _ => None,
        }
    }

    /// Any number, as `f64`: the nearest, as `str::parse` gives it, read by
    /// [`crate::decimal::parse`] (a fraction of the standard parser's size in the Wasm module).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(t) => crate::decimal::parse(t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let v =
            parse(br#" {"a": [1, -2.5e3, true, null], "b": {"c": "x\"\u00e9\ud83d\ude00\n"}} "#)
                .unwrap();
        let Json::Object(m) = v else { panic!() };
        assert_eq!(m[0].0, "a");
        assert_eq!(
            m[0].1,
            Json::Array(vec![
                Json::Number("1".into()),
                Json::Number("-2.5e3".into()),
                Json::Bool(true),
                Json::Null
            ])
        );
        assert_eq!(
            m[1].1,
            Json::Object(vec![(
                "c".into(),
                Json::String("x\"\u{e9}\u{1F600}\n".into())
            )])
        );
        assert_eq!(Json::Number("-2.5e3".into()).as_f64(), Some(-2500.0));
        // Read by crate::decimal, exactly as str::parse reads it (the fuzz seed that failed a
        // reader limited to Clinger's fast path, and values beyond it).
        for t in [
            "2e-124",
            "0.1",
            "1e-7",
            "4.9406564584124654e-324",
            "1e400",
            "-0",
        ] {
            let want: f64 = t.parse().unwrap();
            let got = Json::Number(t.into()).as_f64().unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{t}");
        }
        assert_eq!(Json::Number("-1".into()).as_u64(), None);
        assert_eq!(Json::Number("1.0".into()).as_u64(), None);
    }

    #[rustfmt::skip]
    const BAD: &[(&str, &str)] = &[
        ("",            "empty"),
        ("{",           "unterminated object"),
        ("{\"a\" 1}",   "missing colon"),
        ("{\"a\":1,}",  "trailing comma"),
        ("[1 2]",       "missing comma"),
        ("01",          "leading zero"),
        ("1.",          "no fraction digits"),
        ("-",           "lone minus"),
        ("\"\\x\"",     "bad escape"),
        ("\"\\ud800\"", "unpaired surrogate"),
        ("\"a\nb\"",    "raw control character"),
        ("tru",         "bad literal"),
        ("{} {}",       "two documents"),
        ("{'a': 1}",    "single quotes"),
    ];

    #[test]
    fn rejects_invalid_documents() {
        for &(doc, why) in BAD {
            assert!(parse(doc.as_bytes()).is_err(), "{why}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(
            parse(deep.as_bytes()).unwrap_err().reason,
            "nested too deeply"
        );
    }
}
