//! Median and spread over repeated runs, and latency percentiles.

use serde::Serialize;

/// A figure measured in several interleaved runs.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Spread {
    /// The median of the runs (the figure the table shows).
    pub median: f64,
    /// The smallest run.
    pub min: f64,
    /// The largest run.
    pub max: f64,
    /// How many runs.
    pub runs: usize,
}

impl Spread {
    /// None when there is no finite value.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }

    /// Half the min-max range relative to the median, in percent (how noisy the figure is).
    pub fn spread_percent(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / 2.0 / self.median.abs() * 100.0
        }
    }
}

/// First quartile, median and third quartile of a figure over repeated measurements
/// (the paired slices).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Quartiles {
    /// 25th percentile.
    pub q1: f64,
    /// 50th percentile.
    pub median: f64,
    /// 75th percentile.
    pub q3: f64,
    /// How many values.
    pub n: usize,
}

impl Quartiles {
    /// None when there is no finite value. Linear interpolation between ranks.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let pos = q * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        };
        Some(Self {
            q1: at(0.25),
            median: at(0.5),
            q3: at(0.75),
            n: v.len(),
        })
    }
}

/// The `q`-quantile (0..=1) of `sorted` by the nearest-rank method.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate_between_ranks() {
        let q = Quartiles::of([4.0, 1.0, 3.0, 2.0, 5.0]).expect("values");
        assert_eq!((q.q1, q.median, q.q3, q.n), (2.0, 3.0, 4.0, 5));
        let q = Quartiles::of([1.0, 2.0]).expect("values");
        assert_eq!((q.q1, q.median, q.q3), (1.25, 1.5, 1.75));
        assert!(Quartiles::of([f64::NAN]).is_none());
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of([1.0, 2.0, 4.0, 10.0]).unwrap().median, 3.0);
        assert_eq!(Spread::of([f64::NAN]), None);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&v, 0.0), Some(1));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
