// SPDX-License-Identifier: GPL-2.0-only
//! The observe probes' overhead guard: from the kernel's run-time statistics
//! of the probe programs, the share of one CPU they use; over the budget, the
//! probes measure one wakeup in N (N grows in proportion to the excess), and
//! well under it, N halves back towards 1.

use std::time::Duration;

use scx_slo_bpf::ProbeCost;

/// Shortest window a decision is made on; shorter ones are noise.
pub const WINDOW: Duration = Duration::from_secs(5);
/// Largest sampling divisor.
pub const MAX_SAMPLE_EVERY: u32 = 4096;

/// The guard's state.
#[derive(Debug)]
pub struct OverheadGuard {
    budget: f64,
    sample_every: u32,
    ratio: f64,
    window_start: Option<(Duration, ProbeCost)>,
}

impl OverheadGuard {
    /// A guard with a budget as a fraction of one CPU.
    pub fn new(budget: f64) -> Self {
        OverheadGuard { budget, sample_every: 1, ratio: 0.0, window_start: None }
    }

    /// The last measured share of one CPU.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The current divisor.
    pub fn sample_every(&self) -> u32 {
        self.sample_every
    }

    /// Feeds a reading taken at `now` (any monotonic clock); returns the new
    /// divisor when it changes.
    pub fn observe(&mut self, now: Duration, cost: ProbeCost) -> Option<u32> {
        let Some((start, base)) = self.window_start else {
            self.window_start = Some((now, cost));
            return None;
        };
        let wall = now.saturating_sub(start);
        if wall < WINDOW {
            return None;
        }
        self.window_start = Some((now, cost));
        let used = cost.run_time_ns.saturating_sub(base.run_time_ns);
        self.ratio = used as f64 / wall.as_nanos().max(1) as f64;
        let next = if self.ratio > self.budget {
            // Proportional, with 25% headroom; at least a doubling.
            let scaled = (f64::from(self.sample_every) * self.ratio / self.budget * 1.25).ceil() as u32;
            scaled.max(self.sample_every.saturating_mul(2)).min(MAX_SAMPLE_EVERY)
        } else if self.ratio < self.budget / 4.0 && self.sample_every > 1 {
            (self.sample_every / 2).max(1)
        } else {
            self.sample_every
        };
        (next != self.sample_every).then(|| {
            self.sample_every = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(ns: u64) -> ProbeCost {
        ProbeCost { run_time_ns: ns, run_count: 0 }
    }

    #[test]
    fn sheds_over_budget_and_recovers_under_it() {
        let mut g = OverheadGuard::new(0.01);
        let s = Duration::from_secs;
        assert_eq!(g.observe(s(0), cost(0)), None);
        // Too short a window: no decision.
        assert_eq!(g.observe(s(1), cost(1_000_000_000)), None);
        // 4% of a CPU over 5 s: 4x the budget -> 1 * 4 * 1.25 = 5.
        assert_eq!(g.observe(s(5), cost(200_000_000)), Some(5));
        assert!((g.ratio() - 0.04).abs() < 1e-9);
        // Inside the budget: unchanged.
        assert_eq!(g.observe(s(10), cost(200_000_000 + 40_000_000)), None);
        // Far under it: halve.
        assert_eq!(g.observe(s(15), cost(240_000_000 + 1_000_000)), Some(2));
        assert_eq!(g.observe(s(20), cost(241_000_000 + 1_000_000)), Some(1));
        assert_eq!(g.observe(s(25), cost(242_000_000)), None);
    }

    #[test]
    fn the_divisor_is_capped() {
        let mut g = OverheadGuard::new(0.001);
        let s = Duration::from_secs;
        g.observe(s(0), cost(0));
        let mut ns = 0;
        for i in 1..20 {
            ns += 5_000_000_000; // a whole CPU
            g.observe(s(5 * i), cost(ns));
        }
        assert_eq!(g.sample_every(), MAX_SAMPLE_EVERY);
    }
}
