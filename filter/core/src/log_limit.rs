//! At most one log line per kind of recurring runtime fault per period, with the count of
//! repeats suppressed since the last line: a fault on every request must not flood Envoy's
//! log. Lock-free, so the native form's worker threads share one limiter.

use std::sync::atomic::{AtomicU64, Ordering};

/// One log line per this period, per limiter.
pub const PERIOD_NS: u64 = 10_000_000_000;

/// Rate limit of one kind of log line.
#[derive(Debug, Default)]
pub struct LogLimiter {
    last_ns: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// A limiter that allows its first line (usable in a `static`).
    pub const fn new() -> LogLimiter {
        LogLimiter {
            last_ns: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be logged at `now_ns`: `Some(repeats suppressed since the last
    /// line)`, or `None` (and the repeat is counted).
    pub fn allow(&self, now_ns: u64) -> Option<u64> {
        let last = self.last_ns.load(Ordering::Relaxed);
        if last != 0 && now_ns.saturating_sub(last) < PERIOD_NS {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // One thread wins the period; the others count as suppressed.
        if self
            .last_ns
            .compare_exchange(last, now_ns.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }

    /// `msg`, with the suppressed count appended when there is one.
    pub fn line(msg: &str, suppressed: u64) -> String {
        if suppressed > 0 {
            format!("aetherflow: {msg} ({suppressed} more since the last report)")
        } else {
            format!("aetherflow: {msg}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_repeats_counted() {
        let l = LogLimiter::default();
        assert_eq!(l.allow(5), Some(0));
        assert_eq!(l.allow(6), None);
        assert_eq!(l.allow(PERIOD_NS), None);
        assert_eq!(l.allow(PERIOD_NS + 5), Some(2));
        assert_eq!(
            LogLimiter::line("x", 2),
            "aetherflow: x (2 more since the last report)"
        );
        assert_eq!(LogLimiter::line("x", 0), "aetherflow: x");
    }
}
