//! The on-disk framing of the durable queue: pure functions over byte slices, so the reader is
//! fuzzed (`fuzz/`, target `storage_segment`) without touching a file system.
//!
//! A segment file is an 8-byte header ([`SEGMENT_MAGIC`], which carries the format version)
//! followed by records:
//!
//! ```text
//! | magic u32 LE | len u32 LE | crc32 u32 LE | payload (len bytes) |
//! ```
//!
//! `crc32` (IEEE, `crc32fast`) covers the `len` field and the payload, so a flipped length is
//! caught like a flipped payload byte. The per-record magic lets the reader find the next record
//! after a damaged one (a corrupt length says nothing about where the next record starts).
//! The payload is `spans u32 LE` (so recovery can count spans without decoding) followed by one
//! OTLP `ExportTraceServiceRequest` in protobuf.
//!
//! Written by hand rather than with a crate: the framing is ~100 lines, and the crates that offer
//! a write-ahead log either bring their own threads and sync policy (which must stay ours: the
//! receiver's answer depends on it) or are unmaintained.
use std::ops::Range;

/// First bytes of every segment file: `AFQSEG` + format version 1.
pub const SEGMENT_MAGIC: &[u8; 8] = b"AFQSEG\x00\x01";
/// Bytes before the first record of a segment.
pub const SEGMENT_HEADER: u64 = SEGMENT_MAGIC.len() as u64;
/// First bytes of every record ("AFQR" little-endian).
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"AFQR");
/// Bytes of a record before its payload.
pub const RECORD_HEADER: usize = 12;
/// Largest payload the reader accepts: a corrupt length must not make it allocate or skip
/// gigabytes. Writers never produce more (one record holds at most one export batch, and
/// requests are bounded by `receiver.max_body_bytes`, at most a few MiB in practice).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// What the reader finds at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A valid record: its payload's range in the buffer, and where the next record starts.
    Record {
        /// The payload (span count + protobuf).
        payload: Range<usize>,
        /// Offset of the next record.
        next: usize,
    },
    /// Nothing more (the offset is the end of the buffer).
    End,
    /// The buffer ends inside a record that was being written (crash mid-write): stop here.
    Truncated,
    /// Bytes that are not a valid record; the next valid one (if any) starts at `resume`
    /// (the buffer's length when there is none).
    Corrupt {
        /// Where reading continues.
        resume: usize,
    },
}

/// Frames `payload` as one record (header + payload).
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(RECORD_HEADER + payload.len());
    out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A record payload: the span count, then the encoded request.
pub fn payload(spans: u32, request: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + request.len());
    out.extend_from_slice(&spans.to_le_bytes());
    out.extend_from_slice(request);
    out
}

/// Splits a payload into its span count and encoded request (`None` when shorter than 4 bytes).
pub fn split_payload(p: &[u8]) -> Option<(u32, &[u8])> {
    let (n, rest) = p.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*n), rest))
}

fn checksum(len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Whether a complete, valid record starts at `at`; returns its payload range and end.
fn valid_at(buf: &[u8], at: usize) -> Option<(Range<usize>, usize)> {
    if u32_at(buf, at)? != RECORD_MAGIC {
        return None;
    }
    let len = u32_at(buf, at + 4)?;
    let crc = u32_at(buf, at + 8)?;
    let len_usize = usize::try_from(len).ok()?;
    if len_usize > MAX_PAYLOAD {
        return None;
    }
    let start = at + RECORD_HEADER;
    let end = start.checked_add(len_usize)?;
    let payload = buf.get(start..end)?;
    (checksum(len, payload) == crc).then_some((start..end, end))
}

/// Reads the record at `at`. Never panics, whatever the bytes.
pub fn parse(buf: &[u8], at: usize) -> Parsed {
    if at >= buf.len() {
        return Parsed::End;
    }
    if let Some((payload, next)) = valid_at(buf, at) {
        return Parsed::Record { payload, next };
    }
    // A record cut short by a crash: a plausible header whose payload runs past the end, or
    // a header itself cut short. Anything else is damage.
    let rest = buf.len() - at;
    let magic_ok = u32_at(buf, at).map_or_else(
        || RECORD_MAGIC.to_le_bytes().starts_with(&buf[at..]),
        |m| m == RECORD_MAGIC,
    );
    if magic_ok {
        let cut = match u32_at(buf, at + 4) {
            None => true,
            Some(len) => {
                let len = len as usize;
                len <= MAX_PAYLOAD && rest < RECORD_HEADER + len
            }
        };
        // A damaged length also "runs past the end": only when no valid record follows is
        // this the tail a crash cut short.
        let resume = resync(buf, at + 1);
        if (cut || rest < RECORD_HEADER) && resume == buf.len() {
            return Parsed::Truncated;
        }
        return Parsed::Corrupt { resume };
    }
    Parsed::Corrupt {
        resume: resync(buf, at + 1),
    }
}

/// The first offset at or after `from` where a valid record starts (else the buffer's length).
fn resync(buf: &[u8], from: usize) -> usize {
    let magic = RECORD_MAGIC.to_le_bytes();
    let mut i = from;
    while let Some(pos) = buf
        .get(i..)
        .and_then(|rest| rest.windows(4).position(|w| w == magic))
    {
        let at = i + pos;
        if valid_at(buf, at).is_some() {
            return at;
        }
        i = at + 1;
    }
    buf.len()
}

/// What a scan of a whole segment found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Valid records.
    pub records: u64,
    /// Spans in the valid records (from their payload's count).
    pub spans: u64,
    /// Damaged regions skipped (each counted once, however many records it swallowed).
    pub corrupt: u64,
    /// Whether the segment ends in a record cut short.
    pub truncated: bool,
    /// Records whose payload is too short to carry a span count.
    pub bad_payload: u64,
    /// Where the counted records' frames are (header and payload), in order: what a repair
    /// keeps.
    pub kept: Vec<std::ops::Range<usize>>,
}

impl Scan {
    /// Whether anything in the segment was damaged (counted, and repaired at recovery).
    pub fn damaged(&self, unread_tail: bool) -> bool {
        self.corrupt + self.bad_payload > 0 || self.truncated || unread_tail
    }
}

/// Scans every record after the segment header, counting in `records`/`spans` only those that
/// start at or after `from` (the acknowledged position: earlier ones were exported), and damage
/// anywhere. `None` when the header is not ours.
pub fn scan(buf: &[u8], from: usize) -> Option<Scan> {
    if !buf.starts_with(SEGMENT_MAGIC) {
        return None;
    }
    let mut s = Scan::default();
    let mut at = SEGMENT_HEADER as usize;
    loop {
        match parse(buf, at) {
            Parsed::Record { payload, next } => {
                match split_payload(&buf[payload]) {
                    Some((n, _)) if at >= from => {
                        s.records += 1;
                        s.spans += u64::from(n);
                        s.kept.push(at..next);
                    }
                    Some(_) => {}
                    None => s.bad_payload += 1,
                }
                at = next;
            }
            Parsed::End => return Some(s),
            Parsed::Truncated => {
                s.truncated = true;
                return Some(s);
            }
            Parsed::Corrupt { resume } => {
                s.corrupt += 1;
                at = resume;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[&[u8]]) -> Vec<u8> {
        let mut buf = SEGMENT_MAGIC.to_vec();
        for r in records {
            buf.extend(frame(&payload(1, r)));
        }
        buf
    }

    #[test]
    fn records_round_trip() {
        let buf = segment(&[b"one", b"", b"three"]);
        let s = scan(&buf, 0).unwrap();
        assert_eq!(
            (s.records, s.spans, s.corrupt, s.truncated),
            (3, 3, 0, false)
        );
        let Parsed::Record { payload, next } = parse(&buf, 8) else {
            panic!("a record")
        };
        assert_eq!(split_payload(&buf[payload]), Some((1, &b"one"[..])));
        assert!(matches!(parse(&buf, next), Parsed::Record { .. }));
    }

    #[test]
    fn every_cut_of_the_last_record_is_truncation() {
        let buf = segment(&[b"first", b"second record"]);
        let last = 8 + RECORD_HEADER + 9;
        for cut in last + 1..buf.len() {
            let s = scan(&buf[..cut], 0).unwrap();
            assert_eq!(
                (s.records, s.truncated, s.corrupt),
                (1, true, 0),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_flipped_byte_skips_one_record_and_resyncs() {
        let clean = segment(&[b"aaaa", b"bbbb", b"cccc"]);
        for i in 8..clean.len() {
            let mut buf = clean.clone();
            buf[i] ^= 0x5a;
            let s = scan(&buf, 0).unwrap();
            assert!(s.records >= 2, "flip at {i}: {s:?}");
            assert_eq!(
                s.records + s.corrupt + u64::from(s.truncated),
                3,
                "flip at {i}: {s:?}"
            );
        }
    }

    #[test]
    fn foreign_files_and_garbage_never_panic() {
        assert_eq!(scan(b"not a segment", 0), None);
        let mut buf = SEGMENT_MAGIC.to_vec();
        buf.extend(RECORD_MAGIC.to_le_bytes());
        buf.extend(u32::MAX.to_le_bytes());
        buf.extend([0u8; 40]);
        let s = scan(&buf, 0).unwrap();
        assert_eq!(s.records, 0);
        assert_eq!(s.corrupt, 1);
    }
}
