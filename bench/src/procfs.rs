//! CPU time and resident memory of a process, read from `/proc` (Linux only).
//!
//! CPU time is `utime + stime` of `/proc/<pid>/stat`, which covers every thread of the process.
//! The kernel counts it in clock ticks (usually 100 per second), so a measurement window must
//! span many ticks: the harness measures over a fixed, large request count.

use std::time::Duration;

/// CPU time (user + system, all threads) the process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&stat, clock_ticks_per_second())
}

/// CPU time of a process at microsecond resolution, split by thread role: the scheduler's
/// `se.sum_exec_runtime` (milliseconds with six decimals) of each `/proc/<pid>/task/*/sched`.
/// `cpu_time`'s clock ticks are 10 ms: over a slice of a few thousand requests that is
/// several µs per request of rounding. A thread that ends between two readings leaves its
/// time out of the later one: callers check that the figures did not go down, and fall back
/// to `cpu_time` when they did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThreadCpu {
    /// Envoy's worker threads (named `wrk:…`): the request path.
    pub workers: Duration,
    /// Every other thread: Envoy's main thread (export callouts, stats), its file flush and
    /// access-log threads, and any thread a module starts.
    pub others: Duration,
}

impl ThreadCpu {
    /// Time used between `earlier` and `self`.
    pub fn since(&self, earlier: &ThreadCpu) -> ThreadCpu {
        ThreadCpu {
            workers: self.workers.saturating_sub(earlier.workers),
            others: self.others.saturating_sub(earlier.others),
        }
    }
}

/// Every thread's `se.sum_exec_runtime`, summed by role; `None` without `sched` files.
pub fn thread_cpu(pid: u32) -> Option<ThreadCpu> {
    let mut split = ThreadCpu::default();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path();
        let sched = std::fs::read_to_string(path.join("sched")).ok()?;
        let ns = Duration::from_nanos(parse_sched_runtime_ns(&sched)?);
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.starts_with("wrk:") {
            split.workers += ns;
        } else {
            split.others += ns;
        }
    }
    Some(split)
}

/// `se.sum_exec_runtime : 1234.567890` (milliseconds) in nanoseconds.
fn parse_sched_runtime_ns(sched: &str) -> Option<u64> {
    let line = sched
        .lines()
        .find(|l| l.trim_start().starts_with("se.sum_exec_runtime"))?;
    let value = line.split(':').nth(1)?.trim();
    let (ms, frac) = value.split_once('.').unwrap_or((value, "0"));
    let ms: u64 = ms.parse().ok()?;
    // Six decimals are nanoseconds; pad or cut to that.
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    let sub: u64 = digits.parse().ok()?;
    ms.checked_mul(1_000_000)?.checked_add(sub)
}

/// Resident set size in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_rss(&status)
}

/// Peak resident set size in bytes (`VmHWM`: the kernel's high-water mark of `VmRSS` over the
/// life of the process, so no peak between two readings is missed).
pub fn hwm_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, "VmHWM:")
}

fn clock_ticks_per_second() -> u64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100,
        ticks => ticks,
    }
}

/// `utime` and `stime` are fields 14 and 15; the command name (field 2) is in parentheses and may
/// itself contain spaces or parentheses, so fields are counted from the last `)`.
fn parse_stat_cpu(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_ascii_whitespace();
    // After the command: field 3 (state) is the first; utime is field 14, so skip 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_nanos(
        ticks * 1_000_000_000 / ticks_per_second,
    ))
}

fn parse_status_rss(status: &str) -> Option<u64> {
    parse_status_kib(status, "VmRSS:")
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as the kernel allows.
        let stat = "4242 (envoy (main)) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_stat_cpu(stat, 100), Some(Duration::from_secs(3)));
    }

    #[test]
    fn this_process_threads_are_split_by_name() {
        // A thread named like an Envoy worker does some work, then waits while it is read.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("wrk:worker_0".into())
            .spawn(move || {
                let mut x = 0u64;
                for i in 0..5_000_000u64 {
                    x = std::hint::black_box(x.wrapping_add(i));
                }
                let _ = done_tx.send(x);
                let _ = end_rx.recv();
            })
            .expect("spawn");
        done_rx.recv().expect("worker done");
        let split = thread_cpu(std::process::id()).expect("sched files");
        drop(end_tx);
        worker.join().expect("join");
        assert!(split.workers > Duration::ZERO, "{split:?}");
        assert!(split.others > Duration::ZERO, "{split:?}");
    }

    #[test]
    fn rss_is_read_in_kibibytes() {
        let status = "Name:\tenvoy\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(parse_status_rss(status), Some(1234 * 1024));
        let status = "VmHWM:\t  4321 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(4321 * 1024));
    }

    #[test]
    fn sched_runtime_is_read_in_nanoseconds() {
        let sched = "envoy (42, #threads: 3)\n---\nse.exec_start   :   5.000001\nse.sum_exec_runtime                          :          1234.567890\n";
        assert_eq!(parse_sched_runtime_ns(sched), Some(1_234_567_890));
        assert_eq!(
            parse_sched_runtime_ns("se.sum_exec_runtime : 7.5\n"),
            Some(7_500_000)
        );
        assert_eq!(parse_sched_runtime_ns("se.vruntime : 1.0\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(cpu_time(pid).is_some());
        assert!(thread_cpu(pid).is_some());
        assert!(rss_bytes(pid).unwrap_or(0) > 0);
        assert!(hwm_bytes(pid).unwrap_or(0) >= rss_bytes(pid).unwrap_or(0) / 2);
    }
}
