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
    fn rss_is_read_in_kibibytes() {
        let status = "Name:\tenvoy\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(parse_status_rss(status), Some(1234 * 1024));
        let status = "VmHWM:\t  4321 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(4321 * 1024));
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(cpu_time(pid).is_some());
        assert!(rss_bytes(pid).unwrap_or(0) > 0);
        assert!(hwm_bytes(pid).unwrap_or(0) >= rss_bytes(pid).unwrap_or(0) / 2);
    }
}
