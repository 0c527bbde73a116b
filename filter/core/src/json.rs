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

    /// Any number, as `f64` (see [`number_to_f64`]).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(t) => number_to_f64(t),
            _ => None,
        }
    }
}

/// Exact powers of ten as `f64` (10^22 is the largest an `f64` holds exactly).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A JSON number's text (already checked against the grammar) as `f64`, without the standard
/// library's decimal parser: its correctly rounded algorithm and tables add 19 KB to the Wasm
/// module (measured), whose budget is 300 KB, for one configuration key (`sample_ratio`).
///
/// A number of at most 15 significant digits with a decimal exponent within ±22 (every value a
/// configuration is written with) is exact: the digits and the power of ten are both exact
/// `f64`s, and one IEEE division or multiplication rounds correctly (Clinger's fast path), so
/// the result is the one `str::parse` gives. Longer or larger numbers keep 19 digits and
/// scale in steps, within a few units in the last place.
pub fn number_to_f64(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let neg = b.first() == Some(&b'-');
    let mut i = usize::from(neg);
    let (mut mant, mut digits, mut exp10) = (0u64, 0u32, 0i64);
    let mut seen = false;
    let mut in_fraction = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' => {
                seen = true;
                let d = u64::from(c - b'0');
                if mant == 0 && d == 0 {
                    // A leading zero is not a significant digit.
                } else if digits < 19 {
                    mant = mant * 10 + d;
                    digits += 1;
                } else if !in_fraction {
                    // A digit beyond the 19 kept, in the integer part: one more power of ten.
                    exp10 += 1;
                    i += 1;
                    continue;
                } else {
                    i += 1;
                    continue;
                }
                if in_fraction {
                    exp10 -= 1;
                }
            }
            b'.' if !in_fraction => in_fraction = true,
            b'e' | b'E' => {
                let rest = text.get(i + 1..)?;
                let (eneg, digits) = match rest.as_bytes().first() {
                    Some(b'-') => (true, &rest[1..]),
                    Some(b'+') => (false, &rest[1..]),
                    _ => (false, rest),
                };
                if digits.is_empty() || !digits.bytes().all(|d| d.is_ascii_digit()) {
                    return None;
                }
                // Saturates far beyond any f64's range: the value is then 0 or infinite anyway.
                let e = digits
                    .bytes()
                    .fold(0i64, |acc, d| (acc * 10 + i64::from(d - b'0')).min(100_000));
                exp10 += if eneg { -e } else { e };
                break;
            }
            _ => return None,
        }
        i += 1;
    }
    if !seen {
        return None;
    }
    let v = if mant == 0 {
        0.0
    } else if digits <= 15 && (-22..=22).contains(&exp10) {
        let m = mant as f64; // below 10^15 < 2^53: exact
        let p = POW10[exp10.unsigned_abs() as usize];
        if exp10 < 0 {
            m / p
        } else {
            m * p
        }
    } else {
        let mut v = mant as f64;
        let mut e = exp10;
        while e > 22 && v.is_finite() {
            v *= 1e22;
            e -= 22;
        }
        while e < -22 && v != 0.0 {
            v /= 1e22;
            e += 22;
        }
        let p = POW10[e.unsigned_abs().min(22) as usize];
        if e < 0 {
            v / p
        } else {
            v * p
        }
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_f64_match_the_standard_parser() {
        // Exact (the standard parser's correctly rounded result) within the fast path.
        for t in [
            "0",
            "-0",
            "1",
            "0.5",
            "0.25",
            "0.1",
            "0.2",
            "0.3",
            "0.01",
            "0.001",
            "1e-3",
            "2.5E-1",
            "0.0001",
            "0.333",
            "0.999999999999999",
            "123456789012345",
            "-2.5e3",
            "1e22",
            "1e-22",
            "0.000000000000000000001",
            "100",
            "7E+2",
            "0.1e1",
        ] {
            let want: f64 = t.parse().unwrap();
            assert_eq!(number_to_f64(t), Some(want), "{t}");
        }
        // Beyond it: within a few units in the last place.
        for t in [
            "0.1234567890123456789",
            "3.14159265358979323846264338327950288",
            "1e300",
            "1e-300",
            "12345678901234567890123",
            "0.3333333333333333333333333333",
        ] {
            let want: f64 = t.parse().unwrap();
            let got = number_to_f64(t).unwrap();
            assert!(((got - want) / want).abs() < 1e-14, "{t}: {got} vs {want}");
        }
        assert_eq!(number_to_f64("1e400"), Some(f64::INFINITY));
        assert_eq!(number_to_f64("1e-400"), Some(0.0));
        for bad in ["", "-", "e5", "1e", "1e+", "1.2.3", "0x10", "1,5"] {
            assert_eq!(number_to_f64(bad), None, "{bad:?}");
        }
    }

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
