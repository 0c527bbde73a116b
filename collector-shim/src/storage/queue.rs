//! One exporter's queue on disk: numbered segment files (`00000000000000000042.seg`) of
//! records (see [`super::record`]), and a `cursor` file naming the first record not yet
//! exported.
//!
//! - Append goes to the newest segment, opened by this process (recovered segments are never
//!   appended to: their tail may be a record a crash cut short). A segment is closed at
//!   `segment_bytes` and a new one started.
//! - Read hands out records from the cursor on; [`DiskQueue::ack`] moves the cursor once the
//!   backend took them, saves it (write to `cursor.tmp`, rename) and deletes the segments it has
//!   passed.
//! - Budget: the segment files never exceed `max_bytes` in total. An append that would is
//!   dropped (`drop_newest`), or whole oldest segments are deleted to make room
//!   (`drop_oldest`); either way the spans are counted.
//! - Recovery ([`DiskQueue::open`]) reads every segment with its checksums, counts what is
//!   damaged (a damaged region is skipped and reading resumes at the next valid record), moves a
//!   file that is not a segment aside (`.corrupt`), and deletes segments already exported.
//!
//! Methods do blocking I/O: callers run them on `spawn_blocking`. The queue is shared by the
//! writer task and the export worker behind one mutex; every operation is short.
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::files::{
    read_bounded, read_cursor, rewrite_segment, seg_path, sync_dir, write_cursor,
    write_cursor_durably,
};
pub use super::files::{Appended, Item, Options, Position, SyncPolicy};
use super::record::{self, Parsed, MAX_PAYLOAD, SEGMENT_HEADER, SEGMENT_MAGIC};
use super::StorageTelemetry;
use crate::config::WhenFull;

/// Locks a shared queue. A panic while it was held leaves the queue as consistent as a crash
/// would, which recovery handles, so a poisoned lock is used as it is.
pub fn lock(q: &Mutex<DiskQueue>) -> MutexGuard<'_, DiskQueue> {
    q.lock().unwrap_or_else(|e| e.into_inner())
}

/// A segment file.
#[derive(Debug)]
struct Segment {
    /// Its number (file name).
    id: u64,
    /// File size.
    bytes: u64,
    /// Valid records not yet exported.
    records: u64,
    /// Spans of those records.
    spans: u64,
    /// Found at start-up: its damage was counted then, reading skips it silently.
    recovered: bool,
}

/// One exporter's durable queue.
pub struct DiskQueue {
    /// The exporter's directory.
    dir: PathBuf,
    /// Limits and policies.
    opts: Options,
    /// Segments, oldest first.
    segments: VecDeque<Segment>,
    /// The newest segment, open for appending (None until the first append, or after an error).
    writer: Option<File>,
    /// Next record to hand out.
    read: Position,
    /// First record not yet exported (saved in `cursor`).
    acked: Position,
    /// The current segment's bytes from `buf_at` on, read once (the reader's memory bound).
    buf: Vec<u8>,
    /// Segment and offset `buf` starts at.
    buf_at: Position,
    /// Number for the next new segment.
    next_id: u64,
    /// Data written since the last sync.
    unsynced: bool,
    /// When data was last synced.
    last_sync: Instant,
    /// Most bytes of a segment read at once (a damaged or foreign file can be huge).
    max_file: u64,
    /// Metrics.
    tel: StorageTelemetry,
}

impl DiskQueue {
    /// Opens (creating) `dir` and recovers what a previous run left there.
    pub fn open(dir: &Path, opts: Options, tel: StorageTelemetry) -> io::Result<DiskQueue> {
        fs::create_dir_all(dir)?;
        let mut cursor = read_cursor(dir).unwrap_or_else(|_| {
            tel.corrupt("cursor", 1);
            tracing::warn!(exporter = %tel.exporter, dir = %dir.display(), "durable queue cursor unreadable; sending every stored record again");
            None
        });
        let mut ids: Vec<u64> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".seg.tmp") {
                // A repair a crash cut short: the segment it was made from is still there.
                let _ = fs::remove_file(dir.join(name.as_ref()));
                continue;
            }
            if let Some(id) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut q = DiskQueue {
            dir: dir.to_path_buf(),
            segments: VecDeque::new(),
            writer: None,
            read: Position {
                seg: 0,
                off: SEGMENT_HEADER,
            },
            acked: Position {
                seg: 0,
                off: SEGMENT_HEADER,
            },
            buf: Vec::new(),
            buf_at: Position { seg: 0, off: 0 },
            next_id: ids.last().map_or(1, |l| l.saturating_add(1)),
            unsynced: false,
            last_sync: Instant::now(),
            // Largest file a writer could have produced: a full segment plus one record.
            max_file: opts.segment_bytes
                + (MAX_PAYLOAD + record::RECORD_HEADER) as u64
                + SEGMENT_HEADER,
            tel,
            opts,
        };
        let limit = q.max_file;
        for id in ids {
            let path = seg_path(dir, id);
            if cursor.is_some_and(|c| id < c.seg) {
                let _ = fs::remove_file(&path); // exported before a crash cut the clean-up short
                continue;
            }
            let from = match cursor {
                Some(c) if c.seg == id => c.off,
                _ => SEGMENT_HEADER,
            };
            let read =
                fs::metadata(&path).and_then(|m| Ok((m.len(), read_bounded(&path, 0, limit)?)));
            let (bytes, buf) = match read {
                Ok(r) => r,
                Err(e) => {
                    q.tel.io_errors.inc();
                    tracing::warn!(exporter = %q.tel.exporter, file = %path.display(), error = %e, "unreadable durable queue segment skipped");
                    continue;
                }
            };
            let Some(scan) = record::scan(&buf, usize::try_from(from).unwrap_or(usize::MAX)) else {
                q.tel.corrupt("header", 1);
                tracing::warn!(exporter = %q.tel.exporter, file = %path.display(), "not a durable queue segment; moved aside as .corrupt");
                let _ = fs::rename(&path, path.with_extension("seg.corrupt"));
                continue;
            };
            let unread_tail = bytes > buf.len() as u64;
            q.tel
                .corrupt("checksum", scan.corrupt + u64::from(unread_tail));
            q.tel.corrupt("payload", scan.bad_payload);
            q.tel.corrupt("truncated", u64::from(scan.truncated));
            let damaged = scan.damaged(unread_tail);
            if damaged {
                tracing::warn!(exporter = %q.tel.exporter, file = %path.display(), corrupt = scan.corrupt, truncated = scan.truncated, "damaged durable queue segment: valid records are kept, the rest skipped");
            }
            if scan.records == 0 {
                let _ = fs::remove_file(&path);
                continue;
            }
            let mut bytes = bytes;
            if damaged {
                // The repaired file starts at its first record not yet exported: a cursor in it
                // moves to that start, on disk before the file changes (a crash in between
                // then sends exported records again, never skips one).
                let reset = Position {
                    seg: id,
                    off: SEGMENT_HEADER,
                };
                let header = buf.get(..SEGMENT_HEADER as usize).unwrap_or_default();
                let repaired = match cursor {
                    Some(c) if c.seg == id => write_cursor_durably(dir, reset),
                    _ => Ok(()),
                }
                .and_then(|()| rewrite_segment(&path, header, &buf, &scan.kept));
                match repaired {
                    Ok(len) => {
                        bytes = len;
                        sync_dir(dir);
                        if let Some(c) = cursor.as_mut().filter(|c| c.seg == id) {
                            *c = reset;
                        }
                    }
                    Err(e) => {
                        // Kept as it is: still read correctly, its damage counted again at the
                        // next start.
                        q.tel.io_errors.inc();
                        tracing::warn!(exporter = %q.tel.exporter, file = %path.display(), error = %e, "damaged durable queue segment could not be repaired");
                    }
                }
            }
            q.tel.recovered.inc_by(scan.spans);
            q.segments.push_back(Segment {
                id,
                bytes,
                records: scan.records,
                spans: scan.spans,
                recovered: true,
            });
        }
        let start = match (cursor, q.segments.front()) {
            (Some(c), Some(f)) if c.seg == f.id => c,
            (_, Some(f)) => Position {
                seg: f.id,
                off: SEGMENT_HEADER,
            },
            (_, None) => Position {
                seg: q.next_id,
                off: SEGMENT_HEADER,
            },
        };
        q.read = start;
        q.acked = start;
        q.save_cursor()?;
        q.gauges();
        Ok(q)
    }

    fn gauges(&self) {
        let (mut bytes, mut records, mut spans) = (0u64, 0u64, 0u64);
        for s in &self.segments {
            bytes += s.bytes;
            records += s.records;
            spans += s.spans;
        }
        self.tel.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.tel
            .records
            .set(i64::try_from(records).unwrap_or(i64::MAX));
        self.tel
            .queue_spans
            .set(i64::try_from(spans).unwrap_or(i64::MAX));
    }

    /// Bytes of all segment files.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Spans stored and not yet exported.
    pub fn spans(&self) -> u64 {
        self.segments.iter().map(|s| s.spans).sum()
    }

    /// Appends one record (`payload` from [`record::payload`], holding `spans` spans).
    pub fn append(&mut self, payload: &[u8], spans: u32) -> io::Result<Appended> {
        let rec = record::frame(payload);
        let size = rec.len() as u64;
        let mut out = Appended::default();
        if size + SEGMENT_HEADER > self.opts.max_bytes {
            return Ok(out); // could never fit: dropped like any record beyond the budget
        }
        loop {
            let new_segment = match (&self.writer, self.segments.back()) {
                (Some(_), Some(s)) => {
                    s.bytes + size > self.opts.segment_bytes && s.bytes > SEGMENT_HEADER
                }
                _ => true,
            };
            let need = size + if new_segment { SEGMENT_HEADER } else { 0 };
            if self.bytes() + need <= self.opts.max_bytes {
                if new_segment {
                    self.start_segment()?;
                }
                break;
            }
            match self.opts.when_full {
                WhenFull::DropNewest => return Ok(out),
                WhenFull::DropOldest => out.dropped_oldest += self.drop_oldest_segment()?,
            }
        }
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("no segment open"));
        };
        if let Err(e) = w.write_all(&rec) {
            // A partial record may be on disk: close the segment, whose reader stops there.
            self.writer = None;
            if let Some(s) = self.segments.back_mut() {
                s.bytes = fs::metadata(seg_path(&self.dir, s.id)).map_or(s.bytes, |m| m.len());
            }
            return Err(e);
        }
        if let Some(s) = self.segments.back_mut() {
            s.bytes += size;
            s.records += 1;
            s.spans += u64::from(spans);
        }
        self.unsynced = true;
        out.written = true;
        self.gauges();
        Ok(out)
    }

    fn start_segment(&mut self) -> io::Result<()> {
        let id = self.next_id;
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(seg_path(&self.dir, id))?;
        f.write_all(SEGMENT_MAGIC)?;
        self.next_id += 1;
        self.writer = Some(f);
        self.segments.push_back(Segment {
            id,
            bytes: SEGMENT_HEADER,
            records: 0,
            spans: 0,
            recovered: false,
        });
        if self.opts.sync == SyncPolicy::Always {
            sync_dir(&self.dir); // the new file's name must survive a power loss too
        }
        Ok(())
    }

    /// Deletes the oldest segment; returns its unexported spans.
    fn drop_oldest_segment(&mut self) -> io::Result<u64> {
        let Some(old) = self.segments.pop_front() else {
            return Err(io::Error::other("budget smaller than one record"));
        };
        if self.segments.is_empty() {
            self.writer = None; // it was the one being appended to
        }
        let next = Position {
            seg: self.segments.front().map_or(self.next_id, |s| s.id),
            off: SEGMENT_HEADER,
        };
        if self.acked.seg <= old.id {
            self.acked = next;
        }
        if self.read.seg <= old.id {
            self.read = next;
            self.buf.clear();
        }
        fs::remove_file(seg_path(&self.dir, old.id))?;
        self.save_cursor()?;
        Ok(old.spans)
    }

    /// Makes written data durable when the policy says it is time (`force` at shutdown).
    pub fn sync(&mut self, force: bool) -> io::Result<()> {
        let due = match self.opts.sync {
            SyncPolicy::Always => true,
            SyncPolicy::Interval(d) => force || self.last_sync.elapsed() >= d,
        };
        if self.unsynced && due {
            if let Some(w) = &self.writer {
                w.sync_data()?;
            }
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Time until the next interval sync is due, if data waits for one.
    pub fn sync_due_in(&self) -> Option<Duration> {
        match self.opts.sync {
            SyncPolicy::Interval(d) if self.unsynced => {
                Some(d.saturating_sub(self.last_sync.elapsed()))
            }
            _ => None,
        }
    }

    /// The next record not handed out yet, if any.
    pub fn read_next(&mut self) -> io::Result<Option<Item>> {
        loop {
            let Some(idx) = self.segments.iter().position(|s| s.id >= self.read.seg) else {
                return Ok(None);
            };
            let (id, recovered, active) = {
                let s = &self.segments[idx];
                (
                    s.id,
                    s.recovered,
                    idx + 1 == self.segments.len() && self.writer.is_some(),
                )
            };
            if id != self.read.seg {
                self.read = Position {
                    seg: id,
                    off: SEGMENT_HEADER,
                };
            }
            let in_buf = self.buf_at.seg == id
                && self.read.off >= self.buf_at.off
                && self.read.off < self.buf_at.off + self.buf.len() as u64;
            if !in_buf {
                let limit = self.segments[idx]
                    .bytes
                    .saturating_sub(self.read.off)
                    .min(self.max_file);
                self.buf = read_bounded(&seg_path(&self.dir, id), self.read.off, limit)?;
                self.buf_at = self.read;
            }
            let at = usize::try_from(self.read.off - self.buf_at.off).unwrap_or(usize::MAX);
            match record::parse(&self.buf, at) {
                Parsed::Record { payload, next } => {
                    let payload = self.buf[payload].to_vec();
                    let start = self.read;
                    self.read.off = self.buf_at.off + next as u64;
                    let Some((spans, _)) = record::split_payload(&payload) else {
                        if !recovered {
                            self.tel.corrupt("payload", 1);
                        }
                        continue;
                    };
                    return Ok(Some(Item {
                        payload,
                        start,
                        end: self.read,
                        spans,
                    }));
                }
                Parsed::Corrupt { resume } => {
                    if !recovered {
                        self.tel.corrupt("checksum", 1);
                    }
                    self.read.off = self.buf_at.off + resume as u64;
                }
                Parsed::End | Parsed::Truncated if active => return Ok(None),
                Parsed::End | Parsed::Truncated => {
                    // A closed segment read to its end: go on with the next one.
                    self.read = Position {
                        seg: id + 1,
                        off: SEGMENT_HEADER,
                    };
                    if !self.segments.iter().any(|s| s.id > id) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Hands `item` out again on the next read (it did not fit in the batch).
    pub fn unread(&mut self, item: &Item) {
        if item.start >= self.acked {
            self.read = item.start;
        }
    }

    /// Whether the record at `start` is still stored. When `drop_oldest` deleted it, the
    /// worker drops its copy (already counted) and reads again from the cursor.
    pub fn still_stored(&mut self, start: Position) -> bool {
        if start >= self.acked {
            return true;
        }
        self.read = self.acked;
        false
    }

    /// Records up to `end` were exported (`records` records, `spans` spans): move and save the
    /// cursor, delete the segments it has passed.
    pub fn ack(&mut self, end: Position, records: &[(u64, u32)]) -> io::Result<()> {
        if end <= self.acked {
            return Ok(()); // deleted meanwhile by `drop_oldest`, already counted
        }
        for (seg, spans) in records {
            if let Some(s) = self.segments.iter_mut().find(|s| s.id == *seg) {
                s.records = s.records.saturating_sub(1);
                s.spans = s.spans.saturating_sub(u64::from(*spans));
            }
        }
        self.acked = end;
        // A segment is done when the cursor has left it, or reached the end of a closed one.
        while let Some(front) = self.segments.front() {
            let is_active = self.segments.len() == 1 && self.writer.is_some();
            let done =
                front.id < end.seg || (front.id == end.seg && end.off >= front.bytes && !is_active);
            if !done {
                break;
            }
            let id = front.id;
            self.segments.pop_front();
            if let Err(e) = fs::remove_file(seg_path(&self.dir, id)) {
                self.tel
                    .io_error
                    .report_with(1, format_args!("deleting an exported segment: {e}"));
            }
        }
        self.gauges();
        self.save_cursor()
    }

    fn save_cursor(&mut self) -> io::Result<()> {
        write_cursor(&self.dir, self.acked)
    }
}
