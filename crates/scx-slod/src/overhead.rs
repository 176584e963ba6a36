// SPDX-License-Identifier: GPL-2.0-only
//! The observe probes' overhead guard: from the kernel's run-time statistics
//! of the probe programs, the share of one CPU they use; over the budget, the
//! probes measure one wakeup in N (N grows in proportion to the excess), and
//! well under it, N halves back towards 1.
//!
//! The statistics are on only in short windows: [`MEASURE`] every
//! [`EVERY`]. While they are on, every BPF program run on the host pays two
//! clock reads (71 ns of the probes' 224 ns per run on this host,
//! docs/observe.md), so keeping them on all the time cost a third of what it measured.
//! The price: a jump in the wakeup rate is seen up to [`EVERY`] later.

use std::time::Duration;

use scx_slo_bpf::ProbeCost;

/// How long a measurement window lasts (at least one telemetry scan).
pub const MEASURE: Duration = Duration::from_secs(2);
/// How often a window begins: stats are on `MEASURE / EVERY` of the time.
pub const EVERY: Duration = Duration::from_secs(20);
/// Largest sampling divisor.
pub const MAX_SAMPLE_EVERY: u32 = 4096;

/// What the guard wants done with the kernel's statistics at a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nothing: between windows, or inside one.
    Wait,
    /// Turn them on and [`OverheadGuard::begin`] with the cost read after.
    Begin,
    /// Read the cost, turn them off, and [`OverheadGuard::end`].
    End,
}

/// The guard's state.
#[derive(Debug)]
pub struct OverheadGuard {
    budget: f64,
    sample_every: u32,
    ratio: f64,
    /// The open window: when it began and the cost then.
    window: Option<(Duration, ProbeCost)>,
    /// When the next window begins.
    next: Duration,
}

impl OverheadGuard {
    /// A guard with a budget as a fraction of one CPU.
    pub fn new(budget: f64) -> Self {
        OverheadGuard { budget, sample_every: 1, ratio: 0.0, window: None, next: Duration::ZERO }
    }

    /// The last measured share of one CPU.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The current divisor.
    pub fn sample_every(&self) -> u32 {
        self.sample_every
    }

    /// What to do at `now` (any monotonic clock).
    pub fn phase(&self, now: Duration) -> Phase {
        match self.window {
            Some((start, _)) if now.saturating_sub(start) >= MEASURE => Phase::End,
            Some(_) => Phase::Wait,
            None if now >= self.next => Phase::Begin,
            None => Phase::Wait,
        }
    }

    /// A window began at `now` with the statistics just turned on.
    pub fn begin(&mut self, now: Duration, cost: ProbeCost) {
        self.window = Some((now, cost));
    }

    /// The statistics could not be turned on: try again next period.
    pub fn skip(&mut self, now: Duration) {
        self.window = None;
        self.next = now + EVERY;
    }

    /// The window ends at `now` with `cost` (read before the statistics
    /// were turned off); returns the new divisor when it changes.
    pub fn end(&mut self, now: Duration, cost: ProbeCost) -> Option<u32> {
        let (start, base) = self.window.take()?;
        self.next = start + EVERY;
        let wall = now.saturating_sub(start);
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

    /// One window from `t` seconds, with `ns` of probe run time in it.
    fn window(g: &mut OverheadGuard, t: u64, ns: u64) -> Option<u32> {
        let s = Duration::from_secs;
        assert_eq!(g.phase(s(t)), Phase::Begin, "at {t} s");
        g.begin(s(t), cost(1_000_000));
        assert_eq!(g.phase(s(t + 1)), Phase::Wait, "inside the window");
        assert_eq!(g.phase(s(t + 2)), Phase::End);
        g.end(s(t + 2), cost(1_000_000 + ns))
    }

    #[test]
    fn stats_are_on_only_in_short_windows() {
        let mut g = OverheadGuard::new(0.01);
        let s = Duration::from_secs;
        window(&mut g, 0, 0);
        // Between windows: nothing, for EVERY - MEASURE.
        for t in 2..20 {
            assert_eq!(g.phase(s(t)), Phase::Wait, "{t}");
        }
        window(&mut g, 20, 0);
        // A refused BPF_ENABLE_STATS waits a whole period.
        assert_eq!(g.phase(s(40)), Phase::Begin);
        g.skip(s(40));
        assert_eq!(g.phase(s(59)), Phase::Wait);
        assert_eq!(g.phase(s(60)), Phase::Begin);
        // On-time share: 2 s in 20.
        assert_eq!(MEASURE.as_secs_f64() / EVERY.as_secs_f64(), 0.1);
    }

    #[test]
    fn sheds_over_budget_and_recovers_under_it() {
        let mut g = OverheadGuard::new(0.01);
        // 4% of a CPU over the 2 s window: 4x the budget -> 1 * 4 * 1.25 = 5.
        assert_eq!(window(&mut g, 0, 80_000_000), Some(5));
        assert!((g.ratio() - 0.04).abs() < 1e-9);
        // Inside the budget: unchanged.
        assert_eq!(window(&mut g, 20, 16_000_000), None);
        // Far under it: halve.
        assert_eq!(window(&mut g, 40, 400_000), Some(2));
        assert_eq!(window(&mut g, 60, 400_000), Some(1));
        assert_eq!(window(&mut g, 80, 400_000), None);
    }

    #[test]
    fn the_divisor_is_capped() {
        let mut g = OverheadGuard::new(0.001);
        for i in 0..20 {
            window(&mut g, 20 * i, 2_000_000_000); // a whole CPU
        }
        assert_eq!(g.sample_every(), MAX_SAMPLE_EVERY);
    }
}
