//! The durable queue's small file-level pieces: positions and options, segment file names,
//! bounded reads, and the `cursor` file (the position of the first record not yet exported:
//! 8-byte magic, segment and offset as u64 LE, CRC-32 of those 16 bytes).
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{StorageConfig, SyncMode, WhenFull};

const CURSOR: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";
const CURSOR_MAGIC: &[u8; 8] = b"AFQCUR01";

/// A position in the queue: a segment and a byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Segment number.
    pub seg: u64,
    /// Byte offset in the segment.
    pub off: u64,
}

/// One record handed to the export worker.
#[derive(Debug)]
pub struct Item {
    /// The payload (span count + request).
    pub payload: Vec<u8>,
    /// Where it starts.
    pub start: Position,
    /// Where the next record starts: the cursor once this one is exported.
    pub end: Position,
    /// Spans in it.
    pub spans: u32,
}

/// What one append did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// False when the record was dropped (`drop_newest`, or larger than the whole budget).
    pub written: bool,
    /// Spans of older records deleted to make room (`drop_oldest`).
    pub dropped_oldest: u64,
}

/// When written data is forced to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// After every append group, before the receiver answers.
    Always,
    /// When this much time has passed since the last sync.
    Interval(Duration),
}

/// Limits and policies, resolved from the config.
#[derive(Clone, Debug)]
pub struct Options {
    /// Budget of all segment files.
    pub max_bytes: u64,
    /// Size at which a segment is closed.
    pub segment_bytes: u64,
    /// What goes when the budget is reached.
    pub when_full: WhenFull,
    /// When data reaches the disk.
    pub sync: SyncPolicy,
}

impl Options {
    /// From `batch.storage`. Segments are a sixteenth of the budget (so `drop_oldest` deletes
    /// about 6 % at a time), between 16 KiB and 8 MiB (the reader holds one in memory).
    pub fn from_config(c: &StorageConfig) -> Self {
        Options {
            max_bytes: c.max_bytes,
            segment_bytes: (c.max_bytes / 16).clamp(16 * 1024, 8 * 1024 * 1024),
            when_full: c.when_full,
            sync: match c.sync {
                SyncMode::Always => SyncPolicy::Always,
                SyncMode::Interval => SyncPolicy::Interval(c.sync_interval),
            },
        }
    }
}

/// The file of segment `id` (zero-padded, so names sort as numbers).
pub fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The saved cursor; `Ok(None)` when there is none yet.
pub fn read_cursor(dir: &Path) -> Result<Option<Position>, CursorDamaged> {
    let bytes = match fs::read(dir.join(CURSOR)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err(CursorDamaged),
    };
    let (Some(body), Some(crc)) = (bytes.get(8..24), bytes.get(24..28)) else {
        return Err(CursorDamaged);
    };
    if bytes.len() != 28
        || !bytes.starts_with(CURSOR_MAGIC)
        || crc32fast::hash(body).to_le_bytes() != crc
    {
        return Err(CursorDamaged);
    }
    let mut seg = [0u8; 8];
    let mut off = [0u8; 8];
    seg.copy_from_slice(&body[..8]);
    off.copy_from_slice(&body[8..]);
    Ok(Some(Position {
        seg: u64::from_le_bytes(seg),
        off: u64::from_le_bytes(off),
    }))
}

/// The cursor file exists but cannot be read or is not valid: every stored record is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorDamaged;

/// Reads at most `limit` bytes of `path` from `from` (a damaged file cannot make us read gigabytes).
pub fn read_bounded(path: &Path, from: u64, limit: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Saves the cursor: written to `cursor.tmp`, then renamed over `cursor`, so a crash leaves the
/// old cursor or the new one, never a torn one. It is not forced to disk (an fsync per export
/// capped delivery at about 150 batches/s here): a power loss can only leave it behind, which
/// sends exported records again (at least once), never skips one.
pub fn write_cursor(dir: &Path, at: Position) -> io::Result<()> {
    let mut body = Vec::with_capacity(28);
    body.extend_from_slice(CURSOR_MAGIC);
    body.extend_from_slice(&at.seg.to_le_bytes());
    body.extend_from_slice(&at.off.to_le_bytes());
    let crc = crc32fast::hash(&body[8..]);
    body.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(CURSOR_TMP);
    File::create(&tmp)?.write_all(&body)?;
    fs::rename(&tmp, dir.join(CURSOR))
}

/// Saves the cursor and forces it to disk (the rare paths that change what its offset means).
pub fn write_cursor_durably(dir: &Path, at: Position) -> io::Result<()> {
    write_cursor(dir, at)?;
    File::open(dir.join(CURSOR))?.sync_all()?;
    sync_dir(dir);
    Ok(())
}

/// Makes a new or renamed entry of `dir` durable (best effort: not every platform allows it).
pub fn sync_dir(dir: &Path) {
    // Directory fsync makes a new or renamed entry durable; not every platform allows it.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Rewrites a damaged segment with only its valid, not yet exported records (`kept`, frame
/// ranges of `buf`), so that the damage counted at this start is not met, and counted, again
/// at the next. Written to `<id>.seg.tmp`, forced to disk, then renamed over the segment: a
/// crash leaves the damaged file or the repaired one. Returns the new file's length.
pub fn rewrite_segment(
    path: &Path,
    header: &[u8],
    buf: &[u8],
    kept: &[std::ops::Range<usize>],
) -> io::Result<u64> {
    let tmp = path.with_extension("seg.tmp");
    let mut f = File::create(&tmp)?;
    let mut len = header.len() as u64;
    f.write_all(header)?;
    for r in kept {
        let frame = buf.get(r.clone()).unwrap_or_default();
        f.write_all(frame)?;
        len += frame.len() as u64;
    }
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(len)
}
