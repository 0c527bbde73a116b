//! The durable queue's disk format on its own: append, read, acknowledge, reopen; the budget
//! with each `when_full` rule; damaged files at start-up counted and skipped.
use std::path::Path;

use collector_shim::config::{StorageConfig, SyncMode, WhenFull};
use collector_shim::metrics::Metrics;
use collector_shim::storage::queue::{DiskQueue, Options};
use collector_shim::storage::record;
use collector_shim::storage::StorageTelemetry;

fn opts(max_bytes: u64, when_full: WhenFull) -> Options {
    Options::from_config(&StorageConfig {
        max_bytes,
        when_full,
        sync: SyncMode::Always,
        ..StorageConfig::default()
    })
}

fn open(dir: &Path, o: Options) -> (DiskQueue, Metrics) {
    let m = Metrics::new();
    let q = DiskQueue::open(dir, o, StorageTelemetry::new(&m, "q")).expect("open");
    (q, m)
}

/// A payload whose request bytes are `tag` repeated (recognisable when read back).
fn item(tag: u8, len: usize) -> Vec<u8> {
    record::payload(1, &vec![tag; len])
}

/// Reads and acknowledges everything; returns the tags read.
fn drain(q: &mut DiskQueue) -> Vec<u8> {
    let mut tags = Vec::new();
    // Bounded: a queue of these tests never holds more than 1000 records.
    for _ in 0..1000 {
        let Some(it) = q.read_next().unwrap() else {
            break;
        };
        tags.push(it.payload[4]);
        q.ack(it.end, &[(it.end.seg, it.spans)]).unwrap();
    }
    tags
}

/// Appends records tagged 0 to 47 of 1000 bytes (three segments under a 256 KiB budget).
fn append_48(q: &mut DiskQueue) {
    for tag in 0..48u8 {
        assert!(q.append(&item(tag, 1000), 1).unwrap().written);
    }
}

/// The segment files of `dir`, oldest first.
fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs
}

/// Cuts the last `n` bytes off a file (a crash in the middle of a write).
fn cut_short(path: &Path, n: u64) {
    let len = std::fs::metadata(path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len - n).unwrap();
}

fn metric(m: &Metrics, series: &str) -> f64 {
    m.encode()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn records_come_back_in_order_and_survive_a_reopen_from_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), opts(1 << 20, WhenFull::DropNewest));
    for tag in 0..10u8 {
        assert!(q.append(&item(tag, 3000), 1).unwrap().written);
    }
    // Export (acknowledge) the first four, then "crash" (drop without any clean-up).
    for _ in 0..4 {
        let it = q.read_next().unwrap().unwrap();
        q.ack(it.end, &[(it.end.seg, it.spans)]).unwrap();
    }
    let _in_flight = q.read_next().unwrap().unwrap(); // read, never acknowledged
    drop(q);
    let (mut q, m) = open(dir.path(), opts(1 << 20, WhenFull::DropNewest));
    assert_eq!(
        metric(&m, "shim_storage_recovered_spans_total{exporter=\"q\"}"),
        6.0
    );
    assert_eq!(drain(&mut q), (4..10).collect::<Vec<u8>>());
    // Everything acknowledged: the segments are gone, the budget free again.
    assert_eq!(q.spans(), 0);
    let (q, _) = open(dir.path(), opts(1 << 20, WhenFull::DropNewest));
    assert_eq!(q.spans(), 0);
}

#[test]
fn a_full_budget_drops_the_newest_or_the_oldest_and_never_exceeds_it() {
    for rule in [WhenFull::DropNewest, WhenFull::DropOldest] {
        let dir = tempfile::tempdir().unwrap();
        let budget = 64 * 1024;
        let (mut q, _) = open(dir.path(), opts(budget, rule));
        let mut written = 0u64;
        let mut dropped_oldest = 0u64;
        for i in 0..100u8 {
            let a = q.append(&item(i, 2000), 1).unwrap();
            written += u64::from(a.written);
            dropped_oldest += a.dropped_oldest;
            assert!(q.bytes() <= budget, "{rule:?}: {} bytes", q.bytes());
            let on_disk: u64 = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                .map(|e| e.metadata().unwrap().len())
                .sum();
            assert_eq!(on_disk, q.bytes(), "{rule:?}: the accounting is the files'");
        }
        let kept = drain(&mut q);
        assert!(
            kept.len() > 20 && kept.len() < 40,
            "{rule:?}: kept {}",
            kept.len()
        );
        // Every record is either kept or counted as dropped.
        match rule {
            WhenFull::DropNewest => {
                assert_eq!(kept, (0..kept.len() as u8).collect::<Vec<_>>());
                assert_eq!(written, kept.len() as u64);
            }
            WhenFull::DropOldest => {
                assert_eq!(*kept.last().unwrap(), 99);
                assert_eq!(written, 100);
                assert_eq!(dropped_oldest + kept.len() as u64, 100);
            }
        }
    }
}

#[test]
fn damaged_files_at_start_up_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Three segments of 16 records (a 256 KiB budget makes 16 KiB segments).
        let (mut q, _) = open(dir.path(), opts(256 * 1024, WhenFull::DropNewest));
        append_48(&mut q);
    }
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 3, "{segs:?}");
    // A flipped byte in the first segment's second record, the last segment cut mid-record,
    // a file that is no segment at all, and a damaged cursor.
    let mut first = std::fs::read(&segs[0]).unwrap();
    let second_record = 8 + record::RECORD_HEADER + 1004 + record::RECORD_HEADER + 10;
    first[second_record] ^= 0xff;
    std::fs::write(&segs[0], first).unwrap();
    cut_short(segs.last().unwrap(), 100);
    std::fs::write(
        dir.path().join("00000000000000000000.seg"),
        b"garbage, not a segment",
    )
    .unwrap();
    std::fs::write(dir.path().join("cursor"), b"also garbage").unwrap();

    let (mut q, m) = open(dir.path(), opts(256 * 1024, WhenFull::DropNewest));
    let got = drain(&mut q);
    assert_eq!(got.len(), 46, "{got:?}");
    assert!(!got.contains(&1) && !got.contains(&47), "{got:?}");
    for (reason, n) in [
        ("checksum", 1.0),
        ("truncated", 1.0),
        ("header", 1.0),
        ("cursor", 1.0),
    ] {
        let series =
            format!("shim_storage_corrupt_records_total{{exporter=\"q\",reason=\"{reason}\"}}");
        assert_eq!(metric(&m, &series), n, "{series}\n{}", m.encode());
    }
    // The foreign file was moved aside, so the next start does not count it again.
    assert!(dir.path().join("00000000000000000000.seg.corrupt").exists());
}

#[test]
fn reading_never_panics_on_arbitrary_segment_bytes() {
    // A deterministic sweep of damaged inputs through the same reader recovery uses.
    let mut clean = record::SEGMENT_MAGIC.to_vec();
    for tag in 0..4u8 {
        clean.extend(record::frame(&item(tag, 20)));
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut buf = clean.clone();
        let at = (seed as usize) % buf.len();
        buf[at] = (seed >> 32) as u8;
        buf.truncate(buf.len() - ((seed >> 40) as usize % 16));
        let _ = record::scan(&buf, 0);
    }
}

#[test]
fn interval_sync_waits_for_its_interval_and_always_syncs_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let interval = Options::from_config(&StorageConfig {
        sync: SyncMode::Interval,
        sync_interval: std::time::Duration::from_millis(100),
        ..StorageConfig::default()
    });
    let (mut q, _) = open(dir.path(), interval);
    assert_eq!(q.sync_due_in(), None, "nothing written, nothing due");
    q.append(&item(1, 10), 1).unwrap();
    q.sync(false).unwrap();
    let due = q
        .sync_due_in()
        .expect("written data waits for the interval");
    assert!(due <= std::time::Duration::from_millis(100));
    std::thread::sleep(std::time::Duration::from_millis(120));
    q.sync(false).unwrap();
    assert_eq!(q.sync_due_in(), None, "synced once due");
    q.append(&item(2, 10), 1).unwrap();
    q.sync(true).unwrap();
    assert_eq!(
        q.sync_due_in(),
        None,
        "a forced sync (shutdown) does not wait"
    );

    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), opts(1 << 20, WhenFull::DropNewest));
    q.append(&item(1, 10), 1).unwrap();
    assert_eq!(q.sync_due_in(), None, "`always` never waits for a timer");
}

#[test]
fn damage_is_repaired_at_start_up_so_the_next_start_counts_none() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut q, _) = open(dir.path(), opts(256 * 1024, WhenFull::DropNewest));
        append_48(&mut q);
        // Export the first three records, so the cursor points inside the first segment.
        for _ in 0..3 {
            let it = q.read_next().unwrap().expect("a record");
            q.ack(it.end, &[(it.end.seg, it.spans)]).unwrap();
        }
    }
    let segs = segments(dir.path());
    // Damage the first segment after the cursor (its sixth record) and cut the last one short.
    let mut first = std::fs::read(&segs[0]).unwrap();
    let frame = record::RECORD_HEADER + 1004;
    first[8 + 5 * frame + record::RECORD_HEADER + 10] ^= 0xff;
    std::fs::write(&segs[0], first).unwrap();
    cut_short(segs.last().unwrap(), 100);

    let corrupt = |m: &Metrics, reason: &str| {
        metric(
            m,
            &format!("shim_storage_corrupt_records_total{{exporter=\"q\",reason=\"{reason}\"}}"),
        )
    };
    // First start: the damage is counted once; nothing is read yet (a crash before export).
    {
        let (_q, m) = open(dir.path(), opts(256 * 1024, WhenFull::DropNewest));
        assert_eq!(corrupt(&m, "checksum"), 1.0, "{}", m.encode());
        assert_eq!(corrupt(&m, "truncated"), 1.0, "{}", m.encode());
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "no repair file left behind"
    );
    // Second start: the segments were repaired, so there is nothing to count again, and the
    // same records come back: all but the three exported, the damaged one and the cut one.
    let (mut q, m) = open(dir.path(), opts(256 * 1024, WhenFull::DropNewest));
    assert_eq!(corrupt(&m, "checksum"), 0.0, "{}", m.encode());
    assert_eq!(corrupt(&m, "truncated"), 0.0, "{}", m.encode());
    let got = drain(&mut q);
    let want: Vec<u8> = (3..47u8).filter(|t| *t != 5).collect();
    assert_eq!(got, want);
}
