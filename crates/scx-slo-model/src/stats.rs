// SPDX-License-Identifier: GPL-2.0-only
//! Statistics for comparing latency samples: percentiles, the Mann-Whitney U
//! test, Cliff's delta, and a bootstrap confidence interval for a ratio of
//! percentiles. Used by the benchmark lab (a difference is claimed only when
//! it is significant) and, later, by A/B canaries.
//!
//! Pure and deterministic: the bootstrap uses a seeded xorshift generator,
//! so a report can be recomputed from its samples.

/// The `q` quantile (0..=1) by the nearest-rank method; NaN for no samples.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    nearest_rank(sorted, q).unwrap_or(f64::NAN)
}

/// The `q` quantile (0..=1) of sorted samples of any type by the
/// nearest-rank method (the sample at rank ⌈q·n⌉, at least the first);
/// `None` for no samples.
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()).checked_sub(1)?).copied()
}

/// Sorted copy.
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Result of a two-sided Mann-Whitney U test of `a` against `b`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct MannWhitney {
    /// U statistic of `a`.
    pub u: f64,
    /// z score (normal approximation with tie correction).
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Mann-Whitney U with the normal approximation (fine from ~20 samples a
/// side, which every benchmark cell has), ties corrected.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> MannWhitney {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return MannWhitney { u: 0.0, z: 0.0, p: 1.0 };
    }
    let mut all: Vec<(f64, bool)> = a.iter().map(|x| (*x, true)).chain(b.iter().map(|x| (*x, false))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Average ranks for ties.
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        rank_sum_a += all[i..=j].iter().filter(|(_, is_a)| *is_a).count() as f64 * avg_rank;
        i = j + 1;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if var <= 0.0 {
        return MannWhitney { u, z: 0.0, p: 1.0 };
    }
    // Continuity correction towards the mean.
    let diff = u - mean;
    let z = (diff - 0.5 * diff.signum()) / var.sqrt();
    MannWhitney { u, z, p: (2.0 * normal_sf(z.abs())).min(1.0) }
}

/// Upper tail of the standard normal, P(Z > x) (Abramowitz-Stegun 7.1.26
/// erfc, error < 1.5e-7).
pub fn normal_sf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x / std::f64::consts::SQRT_2);
    let poly = t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    0.5 * poly * (-(x * x) / 2.0).exp()
}

/// One-sided test that the first proportion is the higher: `x1` of `n1`
/// against `x2` of `n2`, by the pooled two-proportion z-test. Returns p
/// (1 without data, or when both proportions are the same 0 or 1).
pub fn proportion_higher_p(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return 1.0;
    }
    let z = (p1 - p2) / se;
    if z >= 0.0 {
        normal_sf(z)
    } else {
        1.0 - normal_sf(-z)
    }
}

/// Cliff's delta: P(a > b) - P(a < b), in -1..=1 (0: no difference).
pub fn cliffs_delta(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let sb = sorted(b);
    let mut more = 0usize;
    let mut less = 0usize;
    for x in a {
        // Counts of b below and above x, by binary search.
        let below = sb.partition_point(|y| y < x);
        let not_above = sb.partition_point(|y| y <= x);
        more += below;
        less += sb.len() - not_above;
    }
    (more as f64 - less as f64) / (a.len() as f64 * b.len() as f64)
}

/// A small deterministic generator (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded; a zero seed is replaced.
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Gamma(shape, 1) for shape >= 1 (Marsaglia and Tsang, 2000).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        let d = shape.max(1.0) - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = 1.0 - self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }
    /// Binomial(n, p): by the normal approximation when its variance is at
    /// least 100 (accurate far beyond a percentile interval's needs), else
    /// exactly, by geometric gaps between successes (about n·min(p, 1-p)
    /// steps, under 200 there). O(1) in n either way.
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if p.is_nan() || p <= 0.0 || n == 0 {
            return 0;
        }
        if p >= 1.0 {
            return n;
        }
        if p > 0.5 {
            return n - self.binomial(n, 1.0 - p);
        }
        let var = n as f64 * p * (1.0 - p);
        if var >= 100.0 {
            return (n as f64 * p + var.sqrt() * self.normal()).round().clamp(0.0, n as f64) as u64;
        }
        let log_q = (1.0 - p).ln();
        let (mut pos, mut count) = (0u64, 0u64);
        loop {
            // Failures before the next success: Geometric(p).
            let gap = ((1.0 - self.uniform()).ln() / log_q).floor();
            if gap >= (n - pos) as f64 {
                return count;
            }
            pos += gap as u64 + 1;
            count += 1;
        }
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform(); // (0, 1]: ln is finite
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

/// Bootstrap confidence interval (percentile method) of
/// `percentile(a, q) / percentile(b, q)`: `(low, high)` at `level` (0.95).
///
/// Exact and O(1) per resample: a resample's k-th smallest value is
/// `x[ceil(n·U)]` of the sorted sample, where U is the k-th smallest of n
/// uniforms, which is Beta(k, n + 1 − k) distributed. So each resample draws
/// one Beta per arm instead of drawing and ordering n values: the same
/// distribution as resampling, at a cost that does not grow with the sample
/// (a canary's window holds tens of thousands).
pub fn bootstrap_ratio_ci(a: &[f64], b: &[f64], q: f64, level: f64, resamples: usize, seed: u64) -> (f64, f64) {
    interval(&bootstrap_ratios(a, b, q, resamples, seed), level)
}

/// The two-sided percentile interval at `level` of a sorted bootstrap
/// distribution ([`bootstrap_ratios`]); NaNs when it is empty.
pub fn interval(sorted_ratios: &[f64], level: f64) -> (f64, f64) {
    if sorted_ratios.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let alpha = (1.0 - level) / 2.0;
    (percentile(sorted_ratios, alpha), percentile(sorted_ratios, 1.0 - alpha))
}

/// The bootstrap distribution behind [`bootstrap_ratio_ci`], sorted: one
/// ratio per resample (empty without data), so a caller can read several
/// bounds (two-sided and one-sided) from the same resamples.
pub fn bootstrap_ratios(a: &[f64], b: &[f64], q: f64, resamples: usize, seed: u64) -> Vec<f64> {
    if a.is_empty() || b.is_empty() || resamples == 0 {
        return Vec::new();
    }
    let (a, b) = (sorted(a), sorted(b));
    let mut rng = Rng::new(seed);
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let den = resampled_quantile(&b, q, &mut rng);
        ratios.push(if den > 0.0 { resampled_quantile(&a, q, &mut rng) / den } else { f64::INFINITY });
    }
    ratios.sort_by(|x, y| x.total_cmp(y));
    ratios
}

/// The nearest-rank `q` quantile of one bootstrap resample of `sorted`
/// (see [`bootstrap_ratio_ci`]).
fn resampled_quantile(sorted: &[f64], q: f64, rng: &mut Rng) -> f64 {
    let n = sorted.len();
    let k = ((q * n as f64).ceil().max(1.0) as usize).min(n);
    let (x, y) = (rng.gamma(k as f64), rng.gamma((n + 1 - k) as f64));
    let u = x / (x + y);
    let index = ((u * n as f64).ceil() as usize).clamp(1, n);
    sorted[index - 1]
}

/// Bootstrap confidence interval (percentile method) of the difference of
/// two proportions, `x1 / n1 - x2 / n2`: `(low, high)` at `level`. Each
/// resample redraws both arms' counts as Binomial(n, observed rate) (what
/// redrawing n Bernoulli outcomes gives, at a cost that does not grow with
/// n), from the seeded generator, so the interval is reproducible; NaNs
/// without data.
pub fn bootstrap_proportion_diff_ci(x1: u64, n1: u64, x2: u64, n2: u64, level: f64, resamples: usize, seed: u64) -> (f64, f64) {
    if n1 == 0 || n2 == 0 || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = Rng::new(seed);
    let mut redraw = |x: u64, n: u64| rng.binomial(n, x as f64 / n as f64) as f64 / n as f64;
    let mut diffs: Vec<f64> = (0..resamples).map(|_| redraw(x1, n1) - redraw(x2, n2)).collect();
    diffs.sort_by(|a, b| a.total_cmp(b));
    interval(&diffs, level)
}

/// A comparison of a candidate's samples against a baseline's.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// candidate p50 / baseline p50.
    pub p50_ratio: f64,
    /// candidate p99 / baseline p99.
    pub p99_ratio: f64,
    /// 95% bootstrap interval of the p99 ratio.
    pub p99_ratio_ci95: (f64, f64),
    /// Mann-Whitney on the whole distributions.
    pub mann_whitney: MannWhitney,
    /// Cliff's delta (negative: the candidate is lower, i.e. faster).
    pub cliffs_delta: f64,
    /// "better", "worse" or "no significant difference" (p < 0.01 and the
    /// p99 interval excluding 1 in the same direction).
    pub verdict: &'static str,
    /// The tail alone: "better" / "worse" when the p99 ratio's interval
    /// lies below / above 1, else "no significant difference". A scheduler
    /// can cut the tail while its median rises (preemption costs a little on
    /// every wakeup and saves milliseconds on the worst): `verdict` would
    /// call that no difference, this does not.
    pub tail: &'static str,
    /// The body of the distribution (Mann-Whitney p < 0.01, side of
    /// Cliff's δ): "lower", "higher" or "no significant difference".
    pub body: &'static str,
}

/// The tail verdict from the p99 ratio's interval (see `Comparison::tail`).
pub fn tail_verdict(ci95: (f64, f64)) -> &'static str {
    if ci95.1 < 1.0 {
        "better"
    } else if ci95.0 > 1.0 {
        "worse"
    } else {
        "no significant difference"
    }
}

/// The body verdict from Mann-Whitney's p and Cliff's δ (see `Comparison::body`).
pub fn body_verdict(p: f64, delta: f64) -> &'static str {
    if p < 0.01 && delta < 0.0 {
        "lower"
    } else if p < 0.01 && delta > 0.0 {
        "higher"
    } else {
        "no significant difference"
    }
}

/// Compares latency samples (lower is better).
pub fn compare(candidate: &[f64], baseline: &[f64], seed: u64) -> Comparison {
    let (c, b) = (sorted(candidate), sorted(baseline));
    let ratio = |q| {
        let den = percentile(&b, q);
        if den > 0.0 {
            percentile(&c, q) / den
        } else {
            f64::NAN
        }
    };
    let ci = bootstrap_ratio_ci(&c, &b, 0.99, 0.95, 1000, seed);
    let mw = mann_whitney(&c, &b);
    let delta = cliffs_delta(&c, &b);
    let (tail, body) = (tail_verdict(ci), body_verdict(mw.p, delta));
    // Both at once, in the same direction.
    let verdict = match (tail, body) {
        ("better", "lower") => "better",
        ("worse", "higher") => "worse",
        _ => "no significant difference",
    };
    Comparison { p50_ratio: ratio(0.5), p99_ratio: ratio(0.99), p99_ratio_ci95: ci, mann_whitney: mw, cliffs_delta: delta, verdict, tail, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn mann_whitney_matches_a_worked_example() {
        // Classic example: a = [1..=5], b = [6..=10]: U = 0, every a below every b.
        let a: Vec<f64> = (1..=5).map(f64::from).collect();
        let b: Vec<f64> = (6..=10).map(f64::from).collect();
        let r = mann_whitney(&a, &b);
        assert_eq!(r.u, 0.0);
        // Exact two-sided p is 2/252 = 0.0079; the normal approximation with
        // continuity correction gives about 0.012.
        assert!(r.p > 0.005 && r.p < 0.02, "{r:?}");
        // Identical samples: no evidence.
        assert!(mann_whitney(&a, &a).p > 0.9);
    }

    #[test]
    fn normal_tail_is_accurate() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_sf(3.0) - 0.001_349_9).abs() < 1e-6);
    }

    #[test]
    fn cliffs_delta_bounds_and_sign() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, 5.0, 6.0];
        assert_eq!(cliffs_delta(&a, &b), -1.0);
        assert_eq!(cliffs_delta(&b, &a), 1.0);
        assert_eq!(cliffs_delta(&a, &a), 0.0);
    }

    #[test]
    fn compare_claims_only_significant_differences() {
        let mut rng = Rng::new(7);
        let noise = |rng: &mut Rng, scale: f64| (0..400).map(|_| scale * (1.0 + (rng.next_u64() % 1000) as f64 / 1000.0)).collect::<Vec<_>>();
        let base = noise(&mut rng, 100.0);
        let same = noise(&mut rng, 100.0);
        let faster = noise(&mut rng, 10.0);
        assert_eq!(compare(&same, &base, 1).verdict, "no significant difference");
        let c = compare(&faster, &base, 1);
        assert_eq!(c.verdict, "better");
        assert!(c.p99_ratio < 0.2 && c.p99_ratio_ci95.1 < 0.2, "{c:?}");
        assert_eq!(compare(&base, &faster, 1).verdict, "worse");
        assert_eq!((c.tail, c.body), ("better", "lower"));
    }

    #[test]
    fn a_shorter_tail_over_a_higher_body_is_told_apart() {
        // Baseline: 100..200 with 2% at 3000 (a tail); candidate: 110..220,
        // no tail. The p99 is far lower, the body slightly higher.
        let mut rng = Rng::new(11);
        let mut body = |lo: f64| lo * (1.0 + (rng.next_u64() % 1000) as f64 / 1000.0);
        let base: Vec<f64> = (0..2000).map(|i| if i % 50 == 0 { 3000.0 } else { body(100.0) }).collect();
        let cand: Vec<f64> = (0..2000).map(|_| body(110.0)).collect();
        let c = compare(&cand, &base, 3);
        assert_eq!(c.tail, "better", "{c:?}");
        assert_eq!(c.body, "higher", "{c:?}");
        assert_eq!(c.verdict, "no significant difference");
        assert!(c.p99_ratio < 0.2, "{c:?}");
    }

    #[test]
    fn the_order_statistic_bootstrap_matches_resampling() {
        // The same interval as drawing n values and sorting them, within
        // the Monte Carlo error of 2,000 resamples.
        let mut rng = Rng::new(5);
        let a: Vec<f64> = (0..3000).map(|_| (0.5 * rng.normal()).exp()).collect();
        let b: Vec<f64> = (0..3000).map(|_| (0.5 * rng.normal()).exp()).collect();
        let fast = bootstrap_ratio_ci(&a, &b, 0.99, 0.95, 2000, 9);
        let mut ratios = Vec::new();
        let (mut ra, mut rb) = (vec![0.0; a.len()], vec![0.0; b.len()]);
        for _ in 0..2000 {
            ra.iter_mut().for_each(|x| *x = a[rng.below(a.len())]);
            rb.iter_mut().for_each(|x| *x = b[rng.below(b.len())]);
            ratios.push(percentile(&sorted(&ra), 0.99) / percentile(&sorted(&rb), 0.99));
        }
        let slow = (percentile(&sorted(&ratios), 0.025), percentile(&sorted(&ratios), 0.975));
        assert!((fast.0 / slow.0 - 1.0).abs() < 0.02 && (fast.1 / slow.1 - 1.0).abs() < 0.02, "fast {fast:?} resampled {slow:?}");
    }

    #[test]
    fn the_proportion_difference_interval_covers_the_difference_and_repeats() {
        // 10% of 1,000 against 5% of 1,000: a difference of 0.05 with a
        // standard error of about 0.0116.
        let ci = bootstrap_proportion_diff_ci(100, 1000, 50, 1000, 0.95, 2000, 3);
        assert!(ci.0 > 0.02 && ci.0 < 0.04 && ci.1 > 0.06 && ci.1 < 0.08, "{ci:?}");
        assert_eq!(ci, bootstrap_proportion_diff_ci(100, 1000, 50, 1000, 0.95, 2000, 3));
        // No events on either side: exactly zero; no data: NaN.
        assert_eq!(bootstrap_proportion_diff_ci(0, 400, 0, 400, 0.95, 100, 1), (0.0, 0.0));
        assert!(bootstrap_proportion_diff_ci(0, 0, 0, 400, 0.95, 100, 1).0.is_nan());
    }

    #[test]
    fn binomial_draws_have_the_binomials_mean_and_variance() {
        let mut rng = Rng::new(17);
        // Both branches: exact by gaps (n p q = 19.8) and normal (n p q = 2,475).
        for (n, p) in [(2000u64, 0.01), (10_000, 0.33), (400, 0.995)] {
            let draws: Vec<f64> = (0..20_000).map(|_| rng.binomial(n, p) as f64).collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
            let (m, v) = (n as f64 * p, n as f64 * p * (1.0 - p));
            assert!((mean - m).abs() < 0.05 * m.max(1.0) && (var / v - 1.0).abs() < 0.1, "n {n} p {p}: mean {mean} var {var}");
            assert!(draws.iter().all(|x| *x <= n as f64));
        }
        assert_eq!((rng.binomial(10, 0.0), rng.binomial(10, 1.0), rng.binomial(0, 0.5)), (0, 10, 0));
    }

    #[test]
    fn bootstrap_is_deterministic() {
        let a: Vec<f64> = (1..=50).map(f64::from).collect();
        let b: Vec<f64> = (1..=50).map(|x| f64::from(x) * 2.0).collect();
        let x = bootstrap_ratio_ci(&a, &b, 0.99, 0.95, 200, 42);
        assert_eq!(x, bootstrap_ratio_ci(&a, &b, 0.99, 0.95, 200, 42));
        // The true p99 ratio is 50 / 100.
        assert!(x.0 <= x.1 && x.0 > 0.3 && x.1 < 0.7, "{x:?}");
    }
}
