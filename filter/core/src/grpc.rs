//! gRPC over HTTP/2: detection, `:path` -> method, status codes, and message counting from
//! the 5-byte length prefixes (1 flag byte + 4-byte big-endian length) without buffering.

use crate::span::SpanKind;

/// True for `application/grpc`, `application/grpc+proto`, `application/grpc-web...`, etc.
pub fn is_grpc(content_type: &str) -> bool {
    let ct = content_type.trim_start().as_bytes();
    ct.len() >= 16 && ct[..16].eq_ignore_ascii_case(b"application/grpc")
}

/// `package.Service/Method` from a gRPC `:path` (`/package.Service/Method`); `None` when the
/// path is not of that shape.
pub fn method_from_path(path: &str) -> Option<&str> {
    let m = path.strip_prefix('/')?;
    let m = m.split(['?', '#']).next().unwrap_or(m);
    let (service, method) = m.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some(m)
}

/// gRPC status code names, by code.
const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a status code (`"OK"`, `"NOT_FOUND"`, ...); unknown codes map to `UNKNOWN`,
/// as gRPC clients treat them.
pub fn status_name(code: u32) -> &'static str {
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

/// Parses a `grpc-status` value (a decimal integer).
pub fn parse_status(v: &str) -> Option<u32> {
    let v = v.trim();
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Whether `code` marks the span as failed, per the RPC conventions: server spans fail on
/// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS; client
/// spans on every code but OK.
pub fn is_error(code: u32, kind: SpanKind) -> bool {
    match kind {
        SpanKind::Client => code != 0,
        SpanKind::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15) || code > 16,
    }
}

/// Decodes `grpc-message` (percent-encoded UTF-8); invalid sequences are kept as sent.
pub fn decode_message(v: &str) -> String {
    crate::propagation::baggage::percent_decode(v).unwrap_or_else(|| v.to_owned())
}

/// Counts length-prefixed messages in one direction of a stream, chunk by chunk; a prefix
/// may be split across chunks. Only prefix bytes are read: payloads are skipped by length.
#[derive(Clone, Debug, Default)]
pub struct FrameCounter {
    /// Prefix bytes collected so far for the next message (0..5).
    have: usize,
    /// The prefix being collected.
    prefix: [u8; 5],
    /// Payload bytes of the current message still to skip.
    skip: u64,
    /// Messages whose prefix was seen.
    pub messages: u64,
    /// A chunk could not be read: counting stopped (the count is a lower bound).
    pub lost: bool,
}

impl FrameCounter {
    /// A fresh counter.
    pub fn new() -> FrameCounter {
        FrameCounter::default()
    }

    /// Feeds a chunk held in memory (no copy: prefix bytes are read in place).
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while !rest.is_empty() && !self.lost {
            if self.skip > 0 {
                let n = self.skip.min(rest.len() as u64);
                self.skip -= n;
                rest = rest.get(n as usize..).unwrap_or_default();
                continue;
            }
            let want = (5 - self.have).min(rest.len());
            let (bytes, after) = rest.split_at(want);
            self.take_prefix(bytes);
            rest = after;
        }
    }

    /// Adds prefix bytes; a complete prefix counts a message and sets its payload to skip.
    fn take_prefix(&mut self, bytes: &[u8]) {
        self.prefix[self.have..self.have + bytes.len()].copy_from_slice(bytes);
        self.have += bytes.len();
        if self.have == 5 {
            self.have = 0;
            self.messages += 1;
            let l = [
                self.prefix[1],
                self.prefix[2],
                self.prefix[3],
                self.prefix[4],
            ];
            self.skip = u64::from(u32::from_be_bytes(l));
        }
    }

    /// Feeds a chunk of `len` bytes that `read(offset, len)` can fetch piecewise (the filter
    /// reads from Envoy's body buffer): only prefix bytes are fetched.
    pub fn feed_with(&mut self, len: usize, mut read: impl FnMut(usize, usize) -> Option<Vec<u8>>) {
        let mut pos = 0usize;
        while pos < len && !self.lost {
            if self.skip > 0 {
                let n = self.skip.min((len - pos) as u64);
                self.skip -= n;
                pos += n as usize;
                continue;
            }
            let want = (5 - self.have).min(len - pos);
            let Some(bytes) = read(pos, want).filter(|b| b.len() == want) else {
                self.lost = true;
                return;
            };
            self.take_prefix(&bytes);
            pos += want;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload_len: usize) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&(payload_len as u32).to_be_bytes());
        v.extend(std::iter::repeat_n(7u8, payload_len));
        v
    }

    #[test]
    fn detection_and_method() {
        assert!(is_grpc("application/grpc"));
        assert!(is_grpc("application/grpc+proto"));
        assert!(is_grpc("Application/GRPC-web"));
        assert!(!is_grpc("application/json"));
        assert!(!is_grpc("application/grp"));
        assert_eq!(
            method_from_path("/helloworld.Greeter/SayHello"),
            Some("helloworld.Greeter/SayHello")
        );
        assert_eq!(method_from_path("/a/b/c"), None);
        assert_eq!(method_from_path("/a"), None);
        assert_eq!(method_from_path("a/b"), None);
        assert_eq!(method_from_path("//b"), None);
    }

    #[test]
    fn status_rules() {
        assert_eq!(status_name(0), "OK");
        assert_eq!(status_name(5), "NOT_FOUND");
        assert_eq!(status_name(16), "UNAUTHENTICATED");
        assert_eq!(status_name(99), "UNKNOWN");
        assert_eq!(parse_status(" 14 "), Some(14));
        assert_eq!(parse_status("-1"), None);
        assert_eq!(parse_status("99999999999"), None);
        assert_eq!(parse_status(""), None);
        for code in 0..=16 {
            let server = matches!(code, 2 | 4 | 12 | 13 | 14 | 15);
            assert_eq!(is_error(code, SpanKind::Server), server, "server {code}");
            assert_eq!(is_error(code, SpanKind::Client), code != 0, "client {code}");
        }
        assert_eq!(decode_message("not%20found"), "not found");
        assert_eq!(decode_message("bad%zz"), "bad%zz");
    }

    #[test]
    fn counts_frames_across_any_chunking() {
        let mut stream = Vec::new();
        for len in [0, 1, 5, 300, 70_000, 3] {
            stream.extend(frame(len));
        }
        // Every chunk size from 1 byte up, including prefixes split across chunks.
        for chunk in [1, 2, 3, 4, 5, 6, 7, 11, 64, 1000, stream.len()] {
            let mut c = FrameCounter::new();
            for part in stream.chunks(chunk) {
                c.feed(part);
            }
            assert_eq!(c.messages, 6, "chunk size {chunk}");
            assert!(!c.lost);
        }
    }

    #[test]
    fn reads_only_prefix_bytes() {
        let stream = [frame(10_000), frame(10_000)].concat();
        let mut c = FrameCounter::new();
        let mut fetched = 0;
        c.feed_with(stream.len(), |off, len| {
            fetched += len;
            stream.get(off..off + len).map(<[u8]>::to_vec)
        });
        assert_eq!(c.messages, 2);
        assert_eq!(fetched, 10, "two 5-byte prefixes, no payload");
    }

    #[test]
    fn unreadable_chunk_stops_counting() {
        let mut c = FrameCounter::new();
        c.feed_with(10, |_, _| None);
        assert!(c.lost);
        c.feed(&frame(1));
        assert_eq!(c.messages, 0);
    }
}
