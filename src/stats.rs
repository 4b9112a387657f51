//! Statistics over repetitions: the median with a distribution-free confidence
//! interval, and an exact rank test for "is this difference real".
//!
//! Both assume nothing about the shape of the distribution, which on a shared
//! 2-core machine is skewed and sometimes bimodal (a run that met a busy neighbour).
//! This module only computes; it never reads files or prints.

/// The confidence level every interval aims for.
pub const LEVEL: f64 = 0.95;
/// The significance level of [`rank_test`].
pub const ALPHA: f64 = 0.05;

/// Median of `values` with an order-statistic confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianCi {
    /// Values.
    pub n: usize,
    /// Median (mean of the two middle values for even n).
    pub median: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
    /// The interval's exact coverage for the median: ≥ [`LEVEL`], or, when `n` is too
    /// small to reach it (n ≤ 5), the most that n values give ([min, max]).
    pub level: f64,
}

impl MedianCi {
    /// The median and its interval; None for no values. NaNs are ignored.
    ///
    /// The interval is [x(k), x(n+1-k)] for the largest k whose coverage
    /// 1 − 2·P(Binomial(n, ½) < k) is still ≥ [`LEVEL`] (k = 1 when none is).
    pub fn of(values: &[f64]) -> Option<MedianCi> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
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
        let mut k = 1;
        while k < n.div_ceil(2) && coverage(n, k + 1) >= LEVEL {
            k += 1;
        }
        Some(MedianCi {
            n,
            median,
            lo: v[k - 1],
            hi: v[n - k],
            level: coverage(n, k),
        })
    }

    /// True when the interval reaches [`LEVEL`].
    pub fn is_confident(&self) -> bool {
        self.level >= LEVEL - 1e-12
    }
}

/// Coverage of [x(k), x(n+1-k)] for the median: 1 − 2·P(Bin(n, ½) ≤ k−1).
fn coverage(n: usize, k: usize) -> f64 {
    if k == 0 || 2 * k > n + 1 {
        return 0.0;
    }
    let tail: f64 = (0..k).map(|i| binomial(n, i)).sum::<f64>() / 2f64.powi(n as i32);
    (1.0 - 2.0 * tail).max(0.0)
}

/// n choose k, as f64 (exact for the small n used here).
fn binomial(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// What a comparison of two samples concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The samples differ (two-sided exact rank test, p < [`ALPHA`]).
    Real,
    /// No difference shown at this n.
    NotShown,
    /// Too few values: even two completely separated samples could not reach p < [`ALPHA`].
    TooFewValues,
}

/// Two-sided exact Mann–Whitney (Wilcoxon rank-sum) test of `a` against `b`.
///
/// Returns the verdict and the p-value (None when a sample is empty). Exact by
/// enumeration of every split of the pooled ranks (mid-ranks for ties), which is
/// quick for repetition counts (C(n+m, n) ≤ 2·10^5, i.e. up to about 9 + 9); larger
/// samples use the normal approximation with a tie correction.
pub fn rank_test(a: &[f64], b: &[f64]) -> (Verdict, Option<f64>) {
    let a: Vec<f64> = a.iter().copied().filter(|x| !x.is_nan()).collect();
    let b: Vec<f64> = b.iter().copied().filter(|x| !x.is_nan()).collect();
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return (Verdict::TooFewValues, None);
    }
    let splits = binomial(n + m, n);
    let best_possible = (2.0 / splits).min(1.0);
    let ranks = pooled_ranks(&a, &b);
    let observed: f64 = ranks[..n].iter().sum();
    let p = if splits <= 200_000.0 {
        exact_p(&ranks, n, observed)
    } else {
        normal_p(&ranks, n, m, observed)
    };
    let verdict = if best_possible >= ALPHA {
        Verdict::TooFewValues
    } else if p < ALPHA {
        Verdict::Real
    } else {
        Verdict::NotShown
    };
    (verdict, Some(p))
}

/// Ranks (1-based, mid-ranks for ties) of `a` then `b` in the pooled order.
fn pooled_ranks(a: &[f64], b: &[f64]) -> Vec<f64> {
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let mut order: Vec<usize> = (0..pooled.len()).collect();
    order.sort_by(|&i, &j| pooled[i].total_cmp(&pooled[j]));
    let mut ranks = vec![0.0; pooled.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && pooled[order[j + 1]] == pooled[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            ranks[o] = mid;
        }
        i = j + 1;
    }
    ranks
}

/// P(|W − E[W]| ≥ |w − E[W]|) over every way of picking n of the pooled ranks.
fn exact_p(ranks: &[f64], n: usize, observed: f64) -> f64 {
    let total = ranks.len();
    let mean = n as f64 * (total as f64 + 1.0) / 2.0;
    let dev = (observed - mean).abs() - 1e-9;
    let (mut extreme, mut all) = (0u64, 0u64);
    let mut pick = Vec::with_capacity(n);
    fn walk(
        ranks: &[f64],
        start: usize,
        left: usize,
        sum: f64,
        pick: &mut Vec<usize>,
        visit: &mut dyn FnMut(f64),
    ) {
        if left == 0 {
            visit(sum);
            return;
        }
        for i in start..=ranks.len() - left {
            pick.push(i);
            walk(ranks, i + 1, left - 1, sum + ranks[i], pick, visit);
            pick.pop();
        }
    }
    walk(ranks, 0, n, 0.0, &mut pick, &mut |w| {
        all += 1;
        if (w - mean).abs() >= dev {
            extreme += 1;
        }
    });
    extreme as f64 / all.max(1) as f64
}

/// Normal approximation of the two-sided p, with tie correction.
fn normal_p(ranks: &[f64], n: usize, m: usize, observed: f64) -> f64 {
    let (nf, mf) = (n as f64, m as f64);
    let total = nf + mf;
    let mean = nf * (total + 1.0) / 2.0;
    let mut sorted = ranks.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let j = sorted[i..].iter().take_while(|&&r| r == sorted[i]).count();
        let t = j as f64;
        ties += t * t * t - t;
        i += j;
    }
    let var = nf * mf / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((observed - mean).abs() - 0.5).max(0.0) / var.sqrt();
    (2.0 * (1.0 - std_normal_cdf(z))).min(1.0)
}

/// Φ(z) by the Abramowitz–Stegun 7.1.26 erf approximation (|error| < 1.5e-7).
fn std_normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    let erf = if x >= 0.0 { erf } else { -erf };
    0.5 * (1.0 + erf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_interval_of_small_samples() {
        let ci = MedianCi::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((ci.median, ci.lo, ci.hi), (2.0, 1.0, 3.0));
        assert!((ci.level - 0.75).abs() < 1e-12);
        assert!(!ci.is_confident());
        let ci = MedianCi::of(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!((ci.median, ci.lo, ci.hi), (3.5, 1.0, 6.0));
        assert!((ci.level - 0.96875).abs() < 1e-12);
        assert!(ci.is_confident());
        assert!(MedianCi::of(&[]).is_none());
        assert!(MedianCi::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn interval_narrows_as_n_grows() {
        // n = 20: the textbook 95% interval is [x(6), x(15)], coverage 95.86%.
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let ci = MedianCi::of(&v).unwrap();
        assert_eq!((ci.lo, ci.hi), (6.0, 15.0));
        assert!((ci.level - 0.958_610_5).abs() < 1e-6, "{}", ci.level);
    }

    #[test]
    fn rank_test_knows_when_n_is_too_small() {
        // 3 vs 3 completely separated: p = 2/20 = 0.1, never below 0.05.
        let (v, p) = rank_test(&[1.0, 2.0, 3.0], &[10.0, 11.0, 12.0]);
        assert_eq!(v, Verdict::TooFewValues);
        assert!((p.unwrap() - 0.1).abs() < 1e-12);
        // 4 vs 4 separated: p = 2/70.
        let (v, p) = rank_test(&[1.0, 2.0, 3.0, 4.0], &[10.0, 11.0, 12.0, 13.0]);
        assert_eq!(v, Verdict::Real);
        assert!((p.unwrap() - 2.0 / 70.0).abs() < 1e-12);
        // Interleaved samples: nothing shown.
        let (v, _) = rank_test(&[1.0, 3.0, 5.0, 7.0, 9.0], &[2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(v, Verdict::NotShown);
        assert_eq!(rank_test(&[], &[1.0]).0, Verdict::TooFewValues);
    }

    #[test]
    fn rank_test_large_samples_use_the_normal_approximation() {
        let a: Vec<f64> = (0..40).map(f64::from).collect();
        let b: Vec<f64> = (0..40).map(|i| f64::from(i) + 30.0).collect();
        let (v, p) = rank_test(&a, &b);
        assert_eq!(v, Verdict::Real);
        assert!(p.unwrap() < 1e-6);
        let (v, _) = rank_test(&a, &a);
        assert_eq!(v, Verdict::NotShown);
    }
}
