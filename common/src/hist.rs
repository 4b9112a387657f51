//! Latency histograms and their percentiles, the same on both sides.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram is sized for without growing: 1 hour in ns (SYN
/// retransmits reach tens of seconds). Histograms auto-resize beyond it.
pub const HIST_HIGH_NS: u64 = 3_600_000_000_000;

/// A latency histogram in nanoseconds, 3 significant figures, from 1 ns.
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds known to be valid (1 ns .. 1 h, 3 digits).
    let mut h = Histogram::new_with_bounds(1, HIST_HIGH_NS, 3)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

/// Percentiles of a latency histogram, in its unit (ns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Number of values.
    pub count: u64,
    /// Smallest value.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

impl Percentiles {
    /// Percentiles of a histogram, or None when it is empty: a figure that was not
    /// measured is absent, never zero.
    pub fn measured(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Self::of(h))
    }

    /// Percentiles of a histogram (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_histogram_and_of_none() {
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50 as f64 - 500_000.0).abs() < 1000.0, "{p:?}");
        assert!(p.p99 >= p.p90 && p.p999 >= p.p99 && p.max >= p.p999);
        // Values past the sizing bound grow the histogram instead of failing.
        h.record(2 * HIST_HIGH_NS).unwrap();
    }
}
