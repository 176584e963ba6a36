// SPDX-License-Identifier: GPL-2.0-only
//! The runtime-budget controller of an adaptive latency target (docs/tuning.md):
//! once per interval it compares the observed p99 with the SLO's objective
//! and proposes the next runtime budget.
//!
//! A PID controller in velocity form on the logarithm of the runtime: each
//! interval it computes a *change*, `Kp·Δe + Ki·e + Kd·Δ²e`, and the budget
//! is multiplied by `exp(change)`. Why this form:
//! - **Anti-windup by construction.** The integral lives in the budget
//!   itself, which is clamped; there is no separate integral state to wind up
//!   while the budget sits at `max_runtime` (or while admission refuses a
//!   step), so the first interval whose latency is on the other side of the
//!   setpoint moves the budget back at once (tested below).
//! - **Log scale.** Latency responds to a budget roughly in proportion (a
//!   reservation 10% larger has about the same effect at 1 ms as at 10 ms),
//!   so one set of gains serves every budget size, `max_step` is a ratio,
//!   and the error is `e = ln(observed / setpoint)`, clamped to
//!   `±ERROR_CAP` so one outlier interval cannot command a jump.
//! - **Never against the error.** The P and D terms damp a step; they never
//!   reverse it: while the p99 is over the band the budget only rises or
//!   holds, and under it only falls or holds. (Unrestricted, the P term's
//!   kick lowered a budget whose p99 was still over the objective, because
//!   the error had shrunk since the last interval.)
//!
//! The setpoint is below the objective (`SETPOINT`), and a band around it
//! (`RAISE_ABOVE`, `LOWER_BELOW`) holds the budget still: at steady state,
//! noise inside the band changes nothing, so the controller does not
//! oscillate.

use serde::Serialize;

use crate::duration::Duration;

/// The p99 the controller steers to, as a fraction of the objective: room
/// for the noise of one interval's p99 without crossing the objective.
pub const SETPOINT: f64 = 0.75;
/// The band around the setpoint where the budget holds still, in the
/// log error, asymmetric: the budget rises when the p99 passes 90% of the
/// objective (1.2 × the setpoint) and falls only under 45% (0.6 × the
/// setpoint). A latency service near its demand is sensitive (on the
/// simulated plant a 15% larger budget cut the p99 by a third), so a
/// symmetric band turned one raise into a fall and back, every other
/// interval; with this band a full step either way lands inside it. Giving
/// CPU back is the lesser goal, so it is the slower side.
pub const RAISE_ABOVE: f64 = 0.182_321_556_793_954_6; // ln 1.2
/// See [`RAISE_ABOVE`].
pub const LOWER_BELOW: f64 = -0.510_825_623_765_990_7; // ln 0.6
/// A lowering step is at most `max_step`'s third. Near its demand a service's
/// p99 moves 2-3× as much as its budget does, and the interval that crosses
/// the lower band is often a noise-low one: a full `max_step` down put the
/// p99 back over the raise band on the simulated plant, undone two
/// intervals later.
pub const LOWER_SLOWDOWN: f64 = 3.0;
/// The largest log error acted on: a p99 4× the setpoint or more counts as 4×.
pub const ERROR_CAP: f64 = 1.386_294_361_119_890_6; // ln 4

pub use crate::config::Gains;

/// The defaults, from the sweep in `tune_gains` on [`plant`]'s simulated
/// service (docs/tuning.md): after a load step from 20% to 35% of a CPU,
/// starting from a budget too small for the new load, 200 seeds with 10%
/// noise: the budget meets the objective 1.0 interval after the step on
/// average (2 at most), the p99 is over the objective in 1.1 intervals, and
/// at steady state it changes 10.2 times per 1,000 intervals (the noise's
/// crossings of the band, never undone). Larger Ki settles faster but
/// changes 2-4× as often at steady state; Kp or Kd past 0.1/0.05 add
/// changes without settling faster.
pub const DEFAULT_GAINS: Gains = Gains { kp: 0.1, ki: 0.35, kd: 0.05 };

/// What bounds the controller; from the target's `adaptive` block.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ControllerLimits {
    /// Smallest runtime budget it may set.
    pub min_runtime: Duration,
    /// Largest runtime budget it may set (at most the period).
    pub max_runtime: Duration,
    /// Largest ratio one change may apply (1.25: at most 25% more); a
    /// lowering step is at most a third of it in the log ([`LOWER_SLOWDOWN`]).
    pub max_step: f64,
    /// Intervals to hold after a change (or a rollback), so the next
    /// measurement sees only the new budget.
    pub cooldown_intervals: u32,
    /// Fewest jobs an interval needs before its p99 is trusted.
    pub min_samples: u64,
}

/// One interval's measurement.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Observation {
    /// The SLI's p99 over the interval, in seconds.
    pub p99_seconds: f64,
    /// How many samples (jobs or requests) it is computed from.
    pub samples: u64,
}

/// Why a step changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hold {
    /// Fewer samples than `min_samples` (an idle service, or a new window).
    NotEnoughData,
    /// Inside the cooldown after a change.
    Cooldown,
    /// The p99 is inside the band around the setpoint.
    OnTarget,
    /// The budget is already at the clamp the error pushes toward.
    AtLimit,
}

/// What one interval decided.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Step {
    /// The log error, `ln(p99 / setpoint)` (0 when held for data or cooldown).
    pub error: f64,
    /// The budget before the step.
    pub from: Duration,
    /// The proposed budget (`from` when held).
    pub to: Duration,
    /// Set when nothing changes, with the reason.
    pub hold: Option<Hold>,
}

impl Step {
    /// Whether this step proposes a new budget.
    pub fn changes(&self) -> bool {
        self.hold.is_none() && self.to != self.from
    }
}

/// The controller of one target. Pure: the daemon feeds it one observation
/// per interval and applies (or, in `dry_run`, logs) the proposed budget
/// through the admission-checked SetBudget path.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Controller {
    gains: Gains,
    limits: ControllerLimits,
    objective_seconds: f64,
    runtime: Duration,
    /// The last two errors acted on (velocity form), newest first.
    errors: [f64; 2],
    cooldown_left: u32,
}

impl ControllerLimits {
    /// The limits a target's `adaptive` block sets.
    pub fn of(a: &crate::config::Adaptive) -> ControllerLimits {
        ControllerLimits {
            min_runtime: a.min_runtime,
            max_runtime: a.max_runtime,
            max_step: a.max_step,
            cooldown_intervals: a.cooldown,
            min_samples: a.min_samples,
        }
    }
}

impl Controller {
    /// The controller a target's `adaptive` block describes, starting from
    /// `runtime` (the budget in force).
    pub fn for_target(a: &crate::config::Adaptive, runtime: Duration) -> Controller {
        Controller::new(a.gains, ControllerLimits::of(a), a.objective, runtime)
    }

    /// A controller starting from `runtime` (the config's budget, or a
    /// learned one), steering the p99 under `objective`.
    pub fn new(gains: Gains, limits: ControllerLimits, objective: Duration, runtime: Duration) -> Controller {
        Controller {
            gains,
            limits,
            objective_seconds: objective.as_ns() as f64 / 1e9,
            runtime: clamp(runtime, limits.min_runtime, limits.max_runtime),
            errors: [0.0; 2],
            cooldown_left: 0,
        }
    }

    /// The budget the controller believes is in force.
    pub fn runtime(&self) -> Duration {
        self.runtime
    }

    /// One interval: the proposed budget for the next, or why it holds.
    /// Call [`Controller::applied`] or [`Controller::refused`] with the
    /// outcome of a proposed change.
    pub fn step(&mut self, obs: Observation) -> Step {
        let from = self.runtime;
        let held = |hold| Step { error: 0.0, from, to: from, hold: Some(hold) };
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            return held(Hold::Cooldown);
        }
        if obs.samples < self.limits.min_samples || !obs.p99_seconds.is_finite() || obs.p99_seconds < 0.0 {
            return held(Hold::NotEnoughData);
        }
        let setpoint = self.objective_seconds * SETPOINT;
        let raw = (obs.p99_seconds.max(1e-9) / setpoint).ln().clamp(-ERROR_CAP, ERROR_CAP);
        // Inside the band the error counts as zero, so the history the
        // derivative and proportional terms see is "on target" too.
        let e = if raw > LOWER_BELOW && raw < RAISE_ABOVE { 0.0 } else { raw };
        let [e1, e2] = self.errors;
        self.errors = [e, e1];
        if e == 0.0 {
            return Step { error: raw, from, to: from, hold: Some(Hold::OnTarget) };
        }
        let g = self.gains;
        let change = g.kp * (e - e1) + g.ki * e + g.kd * (e - 2.0 * e1 + e2);
        // Never against the error (see the module's comment).
        let change = if e > 0.0 { change.max(0.0) } else { change.min(0.0) };
        let limit = self.limits.max_step.ln();
        let factor = change.clamp(-limit / LOWER_SLOWDOWN, limit).exp();
        let to = clamp(
            Duration::from_ns((from.as_ns() as f64 * factor).round() as u64),
            self.limits.min_runtime,
            self.limits.max_runtime,
        );
        if to == from {
            return Step { error: raw, from, to, hold: Some(Hold::AtLimit) };
        }
        Step { error: raw, from, to, hold: None }
    }

    /// The proposed budget is in force: hold for the cooldown.
    pub fn applied(&mut self, runtime: Duration) {
        self.runtime = clamp(runtime, self.limits.min_runtime, self.limits.max_runtime);
        self.cooldown_left = self.limits.cooldown_intervals;
    }

    /// Admission (or the operator) refused the step: keep the budget, and
    /// forget the error history so the refused step is not compounded.
    pub fn refused(&mut self) {
        self.errors = [0.0; 2];
        self.cooldown_left = self.limits.cooldown_intervals;
    }

    /// The budget changed outside the controller (SetBudget, a rollback, a
    /// reload): start over from it, after a cooldown.
    pub fn reset(&mut self, runtime: Duration) {
        self.applied(runtime);
        self.errors = [0.0; 2];
    }
}

fn clamp(d: Duration, lo: Duration, hi: Duration) -> Duration {
    d.max(lo).min(hi)
}

/// A simulated service for tuning and testing the controller: requests
/// arrive as a Poisson stream and need CPU; the scheduler grants the target
/// `runtime / period` of a CPU. Its p99 follows an M/M/1 queue served at
/// that share (`p99 = ln(100) · work / (share − demand)`), times lognormal
/// noise, and saturates at `SATURATED × objective` when the demand exceeds
/// the share (the vruntime guard still runs it, late).
pub mod plant {
    use crate::stats::Rng;

    /// p99 when the budget is smaller than the demand, as a multiple of the
    /// work per request.
    pub const SATURATED: f64 = 200.0;

    /// The simulated service.
    #[derive(Clone, Debug)]
    pub struct Plant {
        /// CPU seconds per request.
        pub work_s: f64,
        /// Requests per second.
        pub rate: f64,
        /// Spread of the lognormal noise on each interval's p99.
        pub noise_sigma: f64,
        rng: Rng,
    }

    impl Plant {
        /// A service needing `work_s` CPU seconds per request at `rate`
        /// requests per second, with `noise_sigma` of measurement noise.
        pub fn new(work_s: f64, rate: f64, noise_sigma: f64, seed: u64) -> Plant {
            Plant { work_s, rate, noise_sigma, rng: Rng::new(seed) }
        }

        /// CPUs the service needs.
        pub fn demand(&self) -> f64 {
            self.work_s * self.rate
        }

        /// The p99 without noise at a share of `share` CPUs.
        pub fn p99_ideal(&self, share: f64) -> f64 {
            let spare = share - self.demand();
            if spare <= self.work_s * 100.0_f64.ln() / SATURATED {
                return SATURATED * self.work_s;
            }
            100.0_f64.ln() * self.work_s / spare
        }

        /// One interval's measured p99 at `share` CPUs.
        pub fn measure(&mut self, share: f64) -> f64 {
            self.p99_ideal(share) * (self.noise_sigma * self.rng.normal()).exp()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::plant::Plant;
    use super::*;

    const PERIOD_NS: u64 = 10_000_000;

    fn limits() -> ControllerLimits {
        ControllerLimits {
            min_runtime: Duration::from_us(500),
            max_runtime: Duration::from_ms(9),
            max_step: 1.25,
            cooldown_intervals: 1,
            min_samples: 50,
        }
    }

    fn share(rt: Duration) -> f64 {
        rt.as_ns() as f64 / PERIOD_NS as f64
    }

    /// Runs `intervals` of the loop; `load(i)` gives the request rate of
    /// interval i. Returns (p99 seen, budget in force) per interval.
    fn run(c: &mut Controller, plant: &mut Plant, intervals: usize, load: impl Fn(usize) -> f64) -> Vec<(f64, Duration)> {
        let mut trace = Vec::new();
        for i in 0..intervals {
            plant.rate = load(i);
            let p99 = plant.measure(share(c.runtime()));
            trace.push((p99, c.runtime()));
            let step = c.step(Observation { p99_seconds: p99, samples: 1000 });
            assert!(step.hold.is_some() || step.to != step.from);
            if step.changes() {
                c.applied(step.to);
            }
        }
        trace
    }

    fn controller(runtime_us: u64) -> Controller {
        Controller::new(DEFAULT_GAINS, limits(), Duration::from_ms(10), Duration::from_us(runtime_us))
    }

    #[test]
    fn converges_after_a_load_step_from_a_budget_too_small() {
        // 0.5 ms per request at 400/s: 20% of a CPU; then 700/s: 35%.
        // Start at 2.5 ms per 10 ms (25%): fine for the first load, far too
        // small for the second.
        for seed in 0..50 {
            let mut plant = Plant::new(0.0005, 400.0, 0.1, seed);
            let mut c = controller(2_500);
            let trace = run(&mut c, &mut plant, 60, |i| if i < 20 { 400.0 } else { 700.0 });
            // Within 8 intervals of the step the p99 is under the objective
            // and stays there (noise aside: the ideal p99 of the budget).
            let settled = (20..60)
                .find(|&i| (i..60).all(|j| Plant::new(0.0005, 700.0, 0.0, 0).p99_ideal(share(trace[j].1)) < 0.010))
                .unwrap_or_else(|| panic!("seed {seed}: never settles: {trace:?}"));
            assert!(settled - 20 <= 8, "seed {seed}: settled {} intervals after the step: {trace:?}", settled - 20);
        }
    }

    #[test]
    fn never_leaves_its_clamps_nor_exceeds_max_step() {
        for seed in 0..200 {
            let mut plant = Plant::new(0.0005, 400.0, 0.5, seed);
            let mut c = controller(100 + seed * 50);
            let mut rng = crate::stats::Rng::new(seed);
            let mut last = c.runtime();
            for i in 0..200 {
                plant.rate = 100.0 + 1700.0 * rng.uniform();
                let p99 = plant.measure(share(c.runtime()));
                let step = c.step(Observation { p99_seconds: p99, samples: 1000 });
                if step.changes() {
                    let ratio = step.to.as_ns() as f64 / step.from.as_ns() as f64;
                    let lim = limits();
                    assert!(ratio <= lim.max_step + 1e-6 && ratio >= lim.max_step.powf(-1.0 / LOWER_SLOWDOWN) - 1e-6, "seed {seed} i {i}: {step:?}");
                    c.applied(step.to);
                    // At most one change per interval, and none in the cooldown.
                    let next = c.step(Observation { p99_seconds: p99, samples: 1000 });
                    assert_eq!(next.hold, Some(Hold::Cooldown));
                }
                assert!(c.runtime() >= limits().min_runtime && c.runtime() <= limits().max_runtime, "{:?}", c.runtime());
                let _ = std::mem::replace(&mut last, c.runtime());
            }
        }
    }

    #[test]
    fn holds_still_at_steady_state() {
        // From the budget that puts the p99 at the setpoint, 500 intervals
        // of 10% noise: a rare change at most, and never a change undone
        // within 4 intervals (no oscillation).
        for seed in 0..50 {
            let mut plant = Plant::new(0.0005, 400.0, 0.1, seed);
            // p99 = 4.6 * 0.5 ms / (share - 0.2) = 7.5 ms -> share 0.507.
            let mut c = controller(5_070);
            let trace = run(&mut c, &mut plant, 500, |_| 400.0);
            let changes: Vec<(usize, bool)> =
                trace.windows(2).enumerate().filter(|(_, w)| w[0].1 != w[1].1).map(|(i, w)| (i, w[1].1 > w[0].1)).collect();
            assert!(changes.len() <= 5, "seed {seed}: {} changes in 500 intervals", changes.len());
            for pair in changes.windows(2) {
                assert!(pair[0].1 == pair[1].1 || pair[1].0 - pair[0].0 > 4, "seed {seed}: reversed within 4 intervals: {changes:?}");
            }
        }
    }

    /// The sweep behind DEFAULT_GAINS (docs/tuning.md): `cargo test -p
    /// scx-slo-model --release -- --ignored tune_gains --nocapture`.
    #[test]
    #[ignore]
    fn tune_gains() {
        println!("kp ki kd | settle (mean, max) | intervals over objective after the step | steady-state changes per 1000");
        for kp in [0.0, 0.1, 0.2, 0.3] {
            for ki in [0.2, 0.35, 0.5, 0.7, 1.0] {
                for kd in [0.0, 0.05] {
                    let gains = Gains { kp, ki, kd };
                    let (mut settle, mut worst, mut over, mut steady) = (0usize, 0usize, 0usize, 0usize);
                    for seed in 0..200 {
                        let mut plant = Plant::new(0.0005, 400.0, 0.1, seed);
                        let mut c = Controller::new(gains, limits(), Duration::from_ms(10), Duration::from_us(2_500));
                        let t = run(&mut c, &mut plant, 60, |i| if i < 20 { 400.0 } else { 700.0 });
                        let ideal = |rt| Plant::new(0.0005, 700.0, 0.0, 0).p99_ideal(share(rt));
                        let s = (20..60).find(|&i| (i..60).all(|j| ideal(t[j].1) < 0.010)).unwrap_or(60) - 20;
                        settle += s;
                        worst = worst.max(s);
                        over += t[20..].iter().filter(|x| x.0 > 0.010).count();
                        let mut c = Controller::new(gains, limits(), Duration::from_ms(10), Duration::from_us(5_070));
                        let mut plant = Plant::new(0.0005, 400.0, 0.1, seed);
                        let t = run(&mut c, &mut plant, 100, |_| 400.0);
                        steady += t.windows(2).filter(|w| w[0].1 != w[1].1).count();
                    }
                    println!("{kp} {ki} {kd} | {:.1} {worst} | {:.1} | {:.1}", settle as f64 / 200.0, over as f64 / 200.0, steady as f64 / 20.0);
                }
            }
        }
    }

    #[test]
    fn no_windup_after_a_long_saturation() {
        // Latency far over the objective for 50 intervals pins the budget
        // at max_runtime; the first interval far under the setpoint lowers
        // it. A positional PID's integral would keep it pinned for as long
        // as it had wound up.
        let mut c = controller(2_000);
        for _ in 0..50 {
            let s = c.step(Observation { p99_seconds: 1.0, samples: 1000 });
            if s.changes() {
                c.applied(s.to);
            }
        }
        assert_eq!(c.runtime(), limits().max_runtime);
        let mut s = c.step(Observation { p99_seconds: 0.001, samples: 1000 });
        if s.hold == Some(Hold::Cooldown) {
            s = c.step(Observation { p99_seconds: 0.001, samples: 1000 });
        }
        assert!(s.changes() && s.to < s.from, "{s:?}");
    }

    #[test]
    fn holds_without_data_and_after_a_refusal() {
        let mut c = controller(2_000);
        let s = c.step(Observation { p99_seconds: 1.0, samples: 3 });
        assert_eq!(s.hold, Some(Hold::NotEnoughData));
        let s = c.step(Observation { p99_seconds: f64::NAN, samples: 1000 });
        assert_eq!(s.hold, Some(Hold::NotEnoughData));
        let s = c.step(Observation { p99_seconds: 1.0, samples: 1000 });
        assert!(s.changes() && s.to > s.from);
        c.refused();
        assert_eq!(c.runtime(), Duration::from_us(2_000), "a refused step is never forced");
        assert_eq!(c.step(Observation { p99_seconds: 1.0, samples: 1000 }).hold, Some(Hold::Cooldown));
        let again = c.step(Observation { p99_seconds: 1.0, samples: 1000 });
        assert_eq!(again.to, s.to, "after a refusal, the same step again, not a compounded one");
    }

    #[test]
    fn lowers_a_budget_far_too_large() {
        let mut plant = Plant::new(0.0005, 400.0, 0.1, 7);
        let mut c = controller(9_000);
        let trace = run(&mut c, &mut plant, 40, |_| 400.0);
        let last = trace.last().unwrap().1;
        assert!(last < Duration::from_us(7_000), "gave CPU back: {last:?}");
        assert!(Plant::new(0.0005, 400.0, 0.0, 0).p99_ideal(share(last)) < 0.010, "still meets the objective");
    }
}
