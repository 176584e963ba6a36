// SPDX-License-Identifier: GPL-2.0-only
//! Latency histograms, the one implementation of their bounds, quantiles,
//! interval deltas and samples.
//!
//! Two kinds reach scx-slo, and both are a list of buckets, each an upper
//! bound with a count, a bucket starting where the one before it ends (the
//! first at 0):
//! - the scheduler's log2 histograms (bpf/intf.h): bucket 0 holds
//!   [0, 1.024 µs), bucket `i` holds [2^(i-1), 2^i) × 1.024 µs, and the last
//!   everything from about 4.3 s up. Read as [`log2_buckets`], the open last
//!   bucket is taken to span one more doubling.
//! - a service's Prometheus histogram, its `le` bounds, the last often `+Inf`.
//!
//! Quantiles are interpolated inside their bucket: linearly (Prometheus's
//! `histogram_quantile` does so, and a bucket from 0 has no geometric
//! middle), or geometrically in log2 buckets, whose bounds are a factor of 2
//! apart: the upper bound alone would make a p99 jump 2× from one interval
//! to the next, as wide as a controller's whole hold band.

/// Bucket 0 ends at `1 << SHIFT` ns (intf.h's `SLO_HIST_SHIFT`; scx-slo-bpf
/// checks the two agree).
pub const SHIFT: u32 = 10;
/// Buckets of a log2 histogram (intf.h's `SLO_HIST_BUCKETS`).
pub const BUCKETS: usize = 24;

/// Exclusive upper bound of log2 bucket `i`, in ns; `u64::MAX` for the last
/// (open) one.
pub const fn upper_ns(i: usize) -> u64 {
    if i + 1 >= BUCKETS {
        return u64::MAX;
    }
    (1u64 << i) << SHIFT
}

/// Inclusive lower bound of log2 bucket `i`, in ns.
pub const fn lower_ns(i: usize) -> u64 {
    if i == 0 {
        0
    } else if i >= BUCKETS {
        upper_ns(BUCKETS - 2)
    } else {
        upper_ns(i - 1)
    }
}

/// A log2 histogram as (upper bound in ns, count) buckets, the open last
/// bucket closed at twice its start: what a quantile or a sample past the
/// last finite bound is taken to be.
pub fn log2_buckets(hist: &[u64]) -> impl Iterator<Item = (f64, f64)> + Clone + '_ {
    let mut lower = 0.0;
    hist.iter().enumerate().map(move |(i, n)| {
        let upper = match upper_ns(i) {
            u64::MAX => lower * 2.0,
            u => u as f64,
        };
        lower = upper;
        (upper, *n as f64)
    })
}

/// `now - base`, bucket by bucket; a histogram shorter than the other counts
/// as zeros. A bucket that went down counts 0: the kernel's u64 event
/// counters do not wrap in practice (2^64 events), so a smaller count is a
/// reset (a session's counts leaving a total), not a wrap, and taking it as
/// 2^64 samples would throw a controller to its clamp.
pub fn delta(base: &[u64], now: &[u64]) -> Vec<u64> {
    now.iter().enumerate().map(|(i, n)| n.saturating_sub(base.get(i).copied().unwrap_or(0))).collect()
}

/// How a value is placed inside the bucket that holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// In proportion to the bucket's width.
    Linear,
    /// In proportion to the log of the bucket's bounds (linear in a bucket
    /// that starts at 0).
    Geometric,
}

/// The value at rank `rank` (1 is the smallest sample; fractional ranks
/// interpolate) of (upper bound, count) buckets, placed inside its bucket by
/// `how`; infinite in a bucket whose upper bound is; `None` past the last
/// sample.
pub fn value_at_rank(buckets: impl IntoIterator<Item = (f64, f64)>, rank: f64, how: Interpolation) -> Option<f64> {
    let (mut seen, mut lower) = (0.0, 0.0);
    for (upper, n) in buckets {
        if n > 0.0 && seen + n >= rank {
            if upper.is_infinite() {
                return Some(f64::INFINITY);
            }
            let frac = ((rank - seen) / n).clamp(0.0, 1.0);
            return Some(match how {
                Interpolation::Geometric if lower > 0.0 => lower * (upper / lower).powf(frac),
                _ => lower + frac * (upper - lower),
            });
        }
        seen += n;
        lower = upper;
    }
    None
}

/// The `q` quantile (0..=1) of (upper bound, count) buckets, interpolated
/// by `how` (see [`value_at_rank`]); `None` without samples.
pub fn quantile(buckets: impl IntoIterator<Item = (f64, f64)> + Clone, q: f64, how: Interpolation) -> Option<f64> {
    let total: f64 = buckets.clone().into_iter().map(|b| b.1).sum();
    if total <= 0.0 {
        return None;
    }
    value_at_rank(buckets, q * total, how)
}

/// The `q` quantile of a log2 histogram in ns, interpolated geometrically;
/// `None` without samples.
pub fn log2_quantile_ns(hist: &[u64], q: f64) -> Option<f64> {
    quantile(log2_buckets(hist), q, Interpolation::Geometric)
}

/// The smallest log2 bucket bound under which `q` (0..=1) of the samples
/// fall, in ns (`u64::MAX` in the open last bucket), by nearest rank; `None`
/// without samples. An upper bound, not an estimate: what the status
/// document's `_le_ns` fields promise.
pub fn log2_quantile_le_ns(hist: &[u64], q: f64) -> Option<u64> {
    let total: u64 = hist.iter().fold(0u64, |a, n| a.saturating_add(*n));
    if total == 0 {
        return None;
    }
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (i, n) in hist.iter().enumerate() {
        seen = seen.saturating_add(*n);
        if seen >= want {
            return Some(upper_ns(i));
        }
    }
    Some(u64::MAX)
}

/// Samples from (upper bound, count) buckets, in the bounds' unit: each
/// bucket's count spread evenly over it (the first from 0; an open bucket
/// over one more width of the one before it, at least a doubling), counts
/// scaled down so that at most `max` come out, keeping the distribution's
/// shape.
pub fn samples(buckets: impl IntoIterator<Item = (f64, f64)> + Clone, max: usize) -> Vec<f64> {
    let total: f64 = buckets.clone().into_iter().map(|b| b.1).sum();
    let scale = if total > max as f64 { max as f64 / total } else { 1.0 };
    let mut out = Vec::with_capacity(total.min(max as f64) as usize);
    let (mut lower, mut width) = (0.0f64, 0.0f64);
    for (upper, n) in buckets {
        let upper = if upper.is_finite() { upper } else { lower + width.max(lower) };
        let n = (n * scale).round() as usize;
        for k in 0..n.min(max - out.len().min(max)) {
            out.push(lower + (upper - lower) * (k as f64 + 0.5) / n as f64);
        }
        width = upper - lower;
        lower = upper;
    }
    out
}

/// Samples from a log2 histogram, in µs (see [`samples`]).
pub fn log2_samples_us(hist: &[u64], max: usize) -> Vec<f64> {
    samples(log2_buckets(hist).map(|(upper, n)| (upper / 1e3, n)), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_bounds_follow_intf_h() {
        assert_eq!((lower_ns(0), upper_ns(0)), (0, 1024));
        assert_eq!((lower_ns(1), upper_ns(1)), (1024, 2048));
        assert_eq!((lower_ns(5), upper_ns(5)), (16 * 1024, 32 * 1024));
        assert_eq!(upper_ns(BUCKETS - 1), u64::MAX, "the last bucket is open");
        assert_eq!(lower_ns(BUCKETS - 1), 1 << (BUCKETS - 2 + SHIFT as usize));
        let b: Vec<(f64, f64)> = log2_buckets(&[0; BUCKETS]).collect();
        assert_eq!(b[BUCKETS - 1].0, 2.0 * lower_ns(BUCKETS - 1) as f64, "closed at one more doubling");
    }

    #[test]
    fn a_delta_is_per_bucket_and_a_reset_counts_nothing() {
        assert_eq!(delta(&[1, 2, 3], &[1, 5, 3, 7]), vec![0, 3, 0, 7]);
        assert_eq!(delta(&[5, 1], &[2, 4]), vec![0, 3]);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        // 100 samples in [1024, 2048): the p50 is the geometric middle.
        let mut h = vec![0; BUCKETS];
        h[1] = 100;
        let p50 = log2_quantile_ns(&h, 0.5).unwrap();
        assert!((p50 - 1024.0 * 2f64.sqrt()).abs() < 1e-6, "{p50}");
        assert_eq!(log2_quantile_ns(&h, 1.0), Some(2048.0));
        // Bucket 0 starts at 0: linear there.
        let mut h0 = vec![0; BUCKETS];
        h0[0] = 10;
        assert_eq!(log2_quantile_ns(&h0, 0.5), Some(512.0));
        // The open bucket: up to twice its start.
        let mut top = vec![0; BUCKETS];
        top[BUCKETS - 1] = 4;
        assert_eq!(log2_quantile_ns(&top, 0.5), Some(lower_ns(BUCKETS - 1) as f64 * 2f64.sqrt()));
        assert_eq!(log2_quantile_ns(&[0; BUCKETS], 0.99), None);
        // Prometheus buckets: linear, infinite past the last finite bound.
        let p75 = quantile([(0.001, 50.0), (0.01, 50.0)], 0.75, Interpolation::Linear).unwrap();
        assert!((p75 - 0.0055).abs() < 1e-12, "{p75}");
        assert_eq!(quantile([(0.001, 1.0), (f64::INFINITY, 1.0)], 0.99, Interpolation::Linear), Some(f64::INFINITY));
    }

    #[test]
    fn the_le_quantile_is_the_bucket_bound() {
        let mut h = vec![0; BUCKETS];
        h[0] = 98;
        h[5] = 2;
        assert_eq!(log2_quantile_le_ns(&h, 0.5), Some(1024));
        assert_eq!(log2_quantile_le_ns(&h, 0.99), Some(32 * 1024));
        assert_eq!(log2_quantile_le_ns(&[0; BUCKETS], 0.99), None);
    }

    #[test]
    fn samples_spread_each_bucket_and_are_capped() {
        let mut h = vec![0; BUCKETS];
        h[0] = 2;
        h[1] = 1;
        assert_eq!(log2_samples_us(&h, 100), vec![0.256, 0.768, 1.536]);
        h[1] = 1_000;
        let s = log2_samples_us(&h, 100);
        assert!(s.len() <= 100 && s.iter().all(|v| (1.024..2.048).contains(v)), "{s:?}");
        // An open bucket spans one more width of the one before, at least a doubling.
        assert_eq!(samples([(1.0, 0.0), (3.0, 0.0), (f64::INFINITY, 1.0)], 10), vec![4.5]);
    }
}
