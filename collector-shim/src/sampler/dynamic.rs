//! Dynamic probability: every `adjust_interval`, pick the probability that would keep
//! `target_traces_per_second` of the traces seen in the last interval, raised by the share of
//! traces with an error (`p * (1 + error_boost * error_share)`), within `[min, max]`.
use std::collections::HashSet;

use tokio::time::Instant;

use crate::config::DynamicConfig;

/// Distinct traces remembered per interval; beyond it every span counts as a new trace
/// (over-estimates the rate, which only lowers the probability: safe for memory).
const MAX_TRACKED: usize = 100_000;

/// The controller's state.
#[derive(Debug)]
pub struct DynamicProbability {
    /// Settings.
    cfg: DynamicConfig,
    /// Probability in force.
    current: f64,
    /// Start of the current interval.
    since: Instant,
    /// Trace ids seen this interval.
    seen: HashSet<[u8; 16]>,
    /// Traces beyond `MAX_TRACKED` this interval.
    untracked: u64,
    /// Trace ids with an error span this interval.
    errors: HashSet<[u8; 16]>,
}

impl DynamicProbability {
    /// Starts at `max_probability` (keep everything until there is data).
    pub fn new(cfg: DynamicConfig, now: Instant) -> Self {
        DynamicProbability {
            current: cfg.max_probability,
            cfg,
            since: now,
            seen: HashSet::new(),
            untracked: 0,
            errors: HashSet::new(),
        }
    }

    /// The probability to apply now.
    pub fn probability(&self) -> f64 {
        self.current
    }

    /// Records one span of trace `id` (`error`: its status is ERROR).
    pub fn observe(&mut self, id: [u8; 16], error: bool) {
        if self.seen.len() < MAX_TRACKED {
            self.seen.insert(id);
        } else if !self.seen.contains(&id) {
            self.untracked += 1;
        }
        if error && self.errors.len() < MAX_TRACKED {
            self.errors.insert(id);
        }
    }

    /// When the next adjustment is due.
    pub fn next_adjust(&self) -> Instant {
        self.since + self.cfg.adjust_interval
    }

    /// Recomputes the probability if the interval is over; returns true when it did.
    pub fn adjust(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < self.cfg.adjust_interval {
            return false;
        }
        let traces = self.seen.len() as f64 + self.untracked as f64;
        let p = if traces == 0.0 {
            self.cfg.max_probability
        } else {
            let rate = traces / elapsed.as_secs_f64();
            let error_share = self.errors.len() as f64 / traces;
            (self.cfg.target_traces_per_second / rate) * (1.0 + self.cfg.error_boost * error_share)
        };
        self.current = p.clamp(self.cfg.min_probability, self.cfg.max_probability);
        self.since = now;
        self.seen.clear();
        self.errors.clear();
        self.untracked = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> DynamicConfig {
        DynamicConfig {
            target_traces_per_second: 10.0,
            min_probability: 0.01,
            max_probability: 1.0,
            error_boost: 10.0,
            adjust_interval: Duration::from_secs(1),
        }
    }

    fn id(i: u32) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[12..].copy_from_slice(&i.to_be_bytes());
        b
    }

    #[test]
    fn holds_the_target_rate_and_rises_with_errors() {
        let t0 = Instant::now();
        let mut d = DynamicProbability::new(cfg(), t0);
        assert_eq!(d.probability(), 1.0);
        for i in 0..100 {
            d.observe(id(i), false);
        }
        assert!(d.adjust(t0 + Duration::from_secs(1)));
        // 100 traces/s, target 10/s.
        assert!((d.probability() - 0.1).abs() < 1e-9, "{}", d.probability());
        // Next second: 10 % of traces have errors -> 0.1 * (1 + 10 * 0.1) = 0.2.
        for i in 0..100 {
            d.observe(id(i), i % 10 == 0);
        }
        assert!(d.adjust(t0 + Duration::from_secs(2)));
        assert!((d.probability() - 0.2).abs() < 1e-9, "{}", d.probability());
        // A quiet interval goes back to max; a flood stops at min.
        assert!(d.adjust(t0 + Duration::from_secs(3)));
        assert_eq!(d.probability(), 1.0);
        for i in 0..100_000 {
            d.observe(id(i), false);
        }
        assert!(d.adjust(t0 + Duration::from_secs(4)));
        assert_eq!(d.probability(), 0.01);
    }
}
