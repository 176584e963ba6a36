// SPDX-License-Identifier: GPL-2.0-only
//! The A/B canary's verdicts (docs/tuning.md): one window's SLI samples under the
//! candidate (scx-slo enforcing) against the baseline (the default
//! scheduler, same load), judged with the statistics the benchmark lab uses
//! ([`crate::stats`]), and the promotion / rollback decision over windows.
//!
//! - `worse`: the p99 ratio is over `1 + max_regression` *and* its bootstrap
//!   interval lies above 1. Both, so neither a large but noisy ratio nor a
//!   significant but negligible one rolls back.
//! - `better`: the p99 interval lies below 1, or the whole distribution is
//!   significantly lower (Mann-Whitney, Cliff's δ < 0) while a p99
//!   regression over the threshold is ruled out (below).
//! - `same`: a p99 regression over `1 + max_regression` is ruled out: the
//!   one-sided 95% upper bound of the ratio is at most that.
//! - `not-enough-data`: below `min_samples` per arm, or the interval is too
//!   wide to say either (it straddles the threshold).
//!
//! `same` has to *rule out* a regression, not merely fail to show one: the
//! first rule, "`same` for N windows in a row promotes", would otherwise
//! promote a real 5% regression whenever three windows were too small to see
//! it (measured: it did, at 50,000 samples per arm). With the bound, a false
//! promotion needs three independent windows each with a 5% chance: 1 in
//! 8,000 at most.
//!
//! The rollback interval is at 99.9% (one-sided 0.05% per bound), not 95%:
//! a canary judges up to `max_windows` (10) windows, each a chance to roll
//! back on noise, and the false-rollback rate of a whole canary must stay
//! under 1% (10 × 0.05% = 0.5% at most; tested: 1,000 seeded canaries on
//! pure noise, run to the end). The price is samples: docs/tuning.md has the
//! table (a 5% regression of a long-tailed SLI is caught within 8 windows in
//! ≥ 95% of canaries at 50,000 per arm; pure noise promotes in 94% of
//! canaries at 50,000).
//!
//! A canary still undecided after `max_windows` *expires*: nothing was shown
//! either way, so nothing is rolled back (that would be a rollback on noise)
//! and nothing is promoted (the rollout gate stays shut); the operator is
//! told to lengthen the windows.

use serde::{Deserialize, Serialize};

use crate::stats;

/// A window's verdict. On the wire (Status, state.json, metrics labels) it
/// is its kebab-case name, [`Verdict::as_str`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The candidate's SLI is significantly better.
    Better,
    /// No significant difference that matters.
    Same,
    /// A significant p99 regression over the threshold.
    Worse,
    /// Too few samples in an arm to say.
    #[default]
    NotEnoughData,
}

impl Verdict {
    /// Every verdict, in the order metrics list them.
    pub const ALL: [Verdict; 4] = [Verdict::Better, Verdict::Same, Verdict::Worse, Verdict::NotEnoughData];

    /// The name in Status, metrics and logs (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Same => "same",
            Verdict::Worse => "worse",
            Verdict::NotEnoughData => "not-enough-data",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a canary judges and decides.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CanaryPolicy {
    /// Fewest samples per arm for a verdict.
    pub min_samples: usize,
    /// The p99 regression that rolls back, as a fraction (0.02: 2%).
    pub max_regression: f64,
    /// Windows in a row judged `better` or `same` that promote the canary.
    pub promote_after: u32,
    /// Bootstrap resamples for the p99 interval.
    pub resamples: usize,
    /// Windows after which a canary that neither promoted nor rolled back
    /// ends undecided ([`CanaryState::Expired`]).
    pub max_windows: u32,
}

/// The defaults: a 2% p99 regression rolls back; 3 good windows in a row
/// promote; 1,000 samples per arm at least (a p99 from fewer rests on a
/// handful of samples); 10,000 resamples, so the interval's 0.05% ends
/// are not single draws (each resample costs two Beta draws, not a sort);
/// 10 windows to decide (5 minutes at the 30 s interval).
pub const DEFAULT_POLICY: CanaryPolicy =
    CanaryPolicy { min_samples: 1_000, max_regression: 0.02, promote_after: 3, resamples: 10_000, max_windows: 10 };

/// The rollback interval's confidence level (see the module's comment).
pub const LEVEL: f64 = 0.999;

/// The one-sided level of the bound that rules a regression out.
pub const SAME_LEVEL: f64 = 0.95;

/// One window, judged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// Samples in the candidate arm.
    pub candidate_samples: usize,
    /// Samples in the baseline arm.
    pub baseline_samples: usize,
    /// candidate p99 / baseline p99 (NaN without data).
    pub p99_ratio: f64,
    /// Its bootstrap interval at [`LEVEL`].
    pub p99_ratio_ci: (f64, f64),
    /// Its one-sided upper bound at [`SAME_LEVEL`].
    pub p99_ratio_upper: f64,
    /// Mann-Whitney's two-sided p.
    pub mann_whitney_p: f64,
    /// Cliff's δ (negative: the candidate is lower).
    pub cliffs_delta: f64,
}

/// Judges one window: `candidate` and `baseline` are SLI samples (latencies,
/// lower is better). `seed` makes the bootstrap reproducible.
pub fn judge(candidate: &[f64], baseline: &[f64], policy: &CanaryPolicy, seed: u64) -> Judgement {
    let (cn, bn) = (candidate.len(), baseline.len());
    if cn < policy.min_samples || bn < policy.min_samples {
        return Judgement {
            verdict: Verdict::NotEnoughData,
            candidate_samples: cn,
            baseline_samples: bn,
            p99_ratio: f64::NAN,
            p99_ratio_ci: (f64::NAN, f64::NAN),
            p99_ratio_upper: f64::NAN,
            mann_whitney_p: f64::NAN,
            cliffs_delta: f64::NAN,
        };
    }
    let (c, b) = (stats::sorted(candidate), stats::sorted(baseline));
    let den = stats::percentile(&b, 0.99);
    let p99_ratio = if den > 0.0 { stats::percentile(&c, 0.99) / den } else { f64::NAN };
    let ratios = stats::bootstrap_ratios(&c, &b, 0.99, policy.resamples, seed);
    let ci = stats::interval(&ratios, LEVEL);
    let upper = stats::percentile(&ratios, SAME_LEVEL);
    let mw = stats::mann_whitney(&c, &b);
    let delta = stats::cliffs_delta(&c, &b);
    let ruled_out = upper <= 1.0 + policy.max_regression;
    let verdict = if p99_ratio > 1.0 + policy.max_regression && ci.0 > 1.0 {
        Verdict::Worse
    } else if ci.1 < 1.0 || (mw.p < 1.0 - LEVEL && delta < 0.0 && ruled_out) {
        Verdict::Better
    } else if ruled_out {
        Verdict::Same
    } else {
        Verdict::NotEnoughData
    };
    Judgement {
        verdict,
        candidate_samples: cn,
        baseline_samples: bn,
        p99_ratio,
        p99_ratio_ci: ci,
        p99_ratio_upper: upper,
        mann_whitney_p: mw.p,
        cliffs_delta: delta,
    }
}

/// The SLO breaker's test on one pair of windows: is the error budget
/// burning significantly faster under the candidate than under the
/// baseline, and faster than the SLO allows? Jobs and deadline misses per
/// arm; one-sided at 0.05%, the level of each bound of the p99 rollback's
/// 99.9% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BurnJudgement {
    /// Miss ratio under the candidate.
    pub candidate_ratio: f64,
    /// Miss ratio under the baseline.
    pub baseline_ratio: f64,
    /// One-sided p that the candidate's ratio is the higher.
    pub p: f64,
    /// The candidate's burn rate: its miss ratio over the error budget
    /// (1: spends the budget exactly over the SLO window).
    pub burn_rate: f64,
    /// Significantly worse and burning faster than the SLO allows.
    pub worse: bool,
}

/// Judges the burn of one pair: `(misses, jobs)` per arm, and the error
/// budget `1 - availability`.
pub fn judge_burn(candidate: (u64, u64), baseline: (u64, u64), error_budget: f64) -> BurnJudgement {
    let ratio = |(m, j): (u64, u64)| if j == 0 { 0.0 } else { m as f64 / j as f64 };
    let p = stats::proportion_higher_p(candidate.0, candidate.1, baseline.0, baseline.1);
    let burn_rate = if error_budget > 0.0 { ratio(candidate) / error_budget } else { f64::INFINITY };
    BurnJudgement {
        candidate_ratio: ratio(candidate),
        baseline_ratio: ratio(baseline),
        p,
        burn_rate,
        // One-sided 0.05%, as each bound of the p99 rollback's interval: a
        // window's chance of a false rollback stays within 0.1% with both.
        worse: p < (1.0 - LEVEL) / 2.0 && burn_rate > 1.0,
    }
}

/// Where a canary stands. On the wire it is its kebab-case name,
/// [`CanaryState::as_str`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryState {
    /// Judging windows.
    #[default]
    Running,
    /// `promote_after` good windows in a row: the candidate stays.
    Promoted,
    /// A `worse` window: the candidate was rolled back.
    RolledBack,
    /// `max_windows` passed undecided: the candidate stays as it was, not
    /// promoted (the rollout gate stays shut).
    Expired,
}

impl CanaryState {
    /// Every state, in the order metrics list them.
    pub const ALL: [CanaryState; 4] = [CanaryState::Running, CanaryState::Promoted, CanaryState::RolledBack, CanaryState::Expired];

    /// The name in Status, metrics, logs and the audit trail (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryState::Running => "running",
            CanaryState::Promoted => "promoted",
            CanaryState::RolledBack => "rolled-back",
            CanaryState::Expired => "expired",
        }
    }

    /// Promoted or expired: decided without a rollback, so a restart on the
    /// same config does not judge it again.
    pub fn decided_in_place(self) -> bool {
        matches!(self, CanaryState::Promoted | CanaryState::Expired)
    }
}

impl std::fmt::Display for CanaryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which scheduler a canary window measures. On the wire it is its
/// lowercase name, [`Arm::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arm {
    /// scx-slo enforcing.
    Candidate,
    /// The kernel's default scheduler (the observe probes measuring).
    Baseline,
}

impl Arm {
    /// Both arms, candidate first (the order a pair runs them).
    pub const ALL: [Arm; 2] = [Arm::Candidate, Arm::Baseline];

    /// The name in Status and logs (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Candidate => "candidate",
            Arm::Baseline => "baseline",
        }
    }
}

impl std::fmt::Display for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do after a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Keep alternating.
    Continue,
    /// Keep the candidate; the canary is over.
    Promote,
    /// Disable the candidate (breaker open, audit, SloViolation).
    Rollback,
    /// The canary ends undecided: log it and tell the operator; the
    /// candidate is neither rolled back nor promoted.
    Expire,
}

/// A canary's progress over windows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Canary {
    /// Its policy.
    pub policy: CanaryPolicy,
    /// Where it stands.
    pub state: CanaryState,
    /// Good windows in a row.
    pub streak: u32,
    /// Windows judged.
    pub windows: u32,
    /// The last window's judgement.
    pub last: Option<Judgement>,
}

impl Canary {
    /// A new canary.
    pub fn new(policy: CanaryPolicy) -> Canary {
        Canary { policy, state: CanaryState::Running, streak: 0, windows: 0, last: None }
    }

    /// Records a window's judgement and says what to do. A decided canary
    /// stays decided.
    pub fn record(&mut self, j: Judgement) -> Action {
        if self.state != CanaryState::Running {
            return Action::Continue;
        }
        self.windows += 1;
        let verdict = j.verdict;
        self.last = Some(j);
        match verdict {
            Verdict::Worse => {
                self.state = CanaryState::RolledBack;
                self.streak = 0;
                return Action::Rollback;
            }
            Verdict::NotEnoughData => {}
            Verdict::Better | Verdict::Same => {
                self.streak += 1;
                if self.streak >= self.policy.promote_after {
                    self.state = CanaryState::Promoted;
                    return Action::Promote;
                }
            }
        }
        if self.windows >= self.policy.max_windows {
            self.state = CanaryState::Expired;
            self.streak = 0;
            return Action::Expire;
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Rng;

    #[test]
    fn the_burn_breaker_needs_both_significance_and_a_burn_over_the_budget() {
        // 2% misses against 0.1% over 5,000 jobs each, a 0.1% budget: worse.
        let j = judge_burn((100, 5_000), (5, 5_000), 0.001);
        assert!(j.worse && j.p < 1e-6 && (j.burn_rate - 20.0).abs() < 1e-9, "{j:?}");
        // Significantly worse, but within the budget (0.05% against 0%, a 1% budget).
        let j = judge_burn((50, 100_000), (0, 100_000), 0.01);
        assert!(!j.worse && j.p < 1e-6 && j.burn_rate < 1.0, "{j:?}");
        // Over the budget, but the default scheduler misses as often: not the candidate's doing.
        assert!(!judge_burn((100, 5_000), (98, 5_000), 0.001).worse);
        // Too few jobs to tell.
        assert!(!judge_burn((1, 20), (0, 20), 0.001).worse);
        assert!(!judge_burn((0, 0), (0, 0), 0.001).worse);
        // Better under the candidate: p near 1.
        assert!(judge_burn((5, 5_000), (100, 5_000), 0.001).p > 0.999);
    }

    #[test]
    fn the_burn_breaker_rarely_trips_on_noise() {
        // Both arms miss 0.5% of 5,000 jobs a window (5x a 0.1% budget: the
        // burn condition holds), 10 windows a canary, 1,000 seeded canaries:
        // a canary trips if any window does.
        let mut rng = Rng::new(17);
        let (n, p) = (5_000u64, 0.005);
        let mut misses = || {
            let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
            (mean + sd * rng.normal()).round().max(0.0) as u64
        };
        let tripped = (0..1_000).filter(|_| (0..10).any(|_| judge_burn((misses(), n), (misses(), n), 0.001).worse)).count();
        eprintln!("burn breaker on noise: {tripped} of 1,000 canaries tripped");
        assert!(tripped < 10, "{tripped} of 1,000 canaries tripped on noise");
        // (Measured: 13 of 1,000 at a one-sided 0.1%, hence 0.05%.)
    }

    /// Lognormal latencies around 1 ms (σ 0.5): a long-tailed SLI.
    fn sample(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| scale * 0.001 * (0.5 * rng.normal()).exp()).collect()
    }

    /// Runs a canary until it decides or `max_windows` pass; each window
    /// has `n` samples per arm, the candidate's scaled by `scale`.
    fn canary_run(seed: u64, n: usize, scale: f64, max_windows: u32) -> (Action, u32) {
        let mut rng = Rng::new(seed);
        let mut canary = Canary::new(DEFAULT_POLICY);
        for w in 1..=max_windows {
            let (a, b) = (sample(&mut rng, n, scale), sample(&mut rng, n, 1.0));
            let action = canary.record(judge(&a, &b, &DEFAULT_POLICY, seed * 100 + u64::from(w)));
            if action != Action::Continue {
                return (action, w);
            }
        }
        (Action::Continue, max_windows)
    }

    #[test]
    fn noise_rarely_rolls_back() {
        // Same distribution in both arms: 1,000 seeded canaries, each run to
        // its end (at 2,000 samples a 2% regression is never ruled out, so
        // every window is judged until the canary expires: 10 chances each
        // to roll back on noise).
        let rollbacks = (1..=1000u64).filter(|&seed| canary_run(seed, 2_000, 1.0, 10).0 == Action::Rollback).count();
        assert!(rollbacks < 10, "false rollbacks in {rollbacks} of 1000 canaries (must be under 1%)");
    }

    #[test]
    fn a_five_percent_regression_rolls_back() {
        let runs: Vec<(Action, u32)> = (1..=100u64).map(|seed| canary_run(seed, 50_000, 1.05, 8)).collect();
        let caught = runs.iter().filter(|r| r.0 == Action::Rollback).count();
        assert!(caught >= 95, "a 5% regression rolled back within 8 windows in {caught}/100 canaries");
        assert!(runs.iter().all(|r| r.0 != Action::Promote), "a regression is never promoted");
        // Too few samples to see it is not a licence to promote it either.
        let small: Vec<(Action, u32)> = (1..=100u64).map(|seed| canary_run(seed, 5_000, 1.05, 8)).collect();
        assert!(small.iter().all(|r| r.0 != Action::Promote), "a regression is never promoted on small windows");
    }

    #[test]
    fn noise_promotes_given_enough_samples() {
        // Ruling out a 2% p99 regression needs big windows: 50,000 samples
        // per arm promote most noise canaries within their 10 windows (94
        // of 100 in the table), 10,000 only a fifth.
        let promoted = (1..=20u64).filter(|&seed| canary_run(seed, 50_000, 1.0, 10).0 == Action::Promote).count();
        assert!(promoted >= 16, "noise promoted in {promoted}/20 canaries at 50,000 samples per arm");
    }

    /// The table in docs/tuning.md: `cargo test -p scx-slo-model --release
    /// -- --ignored canary_power --nocapture`.
    #[test]
    #[ignore]
    fn canary_power() {
        for n in [10_000, 30_000, 50_000, 100_000, 200_000] {
            for scale in [1.0, 1.05] {
                let runs: Vec<(Action, u32)> = (1..=100u64).map(|seed| canary_run(seed, n, scale, 10)).collect();
                let count = |a| runs.iter().filter(|r| r.0 == a).count();
                let caught_by_8 = runs.iter().filter(|r| r.0 == Action::Rollback && r.1 <= 8).count();
                println!(
                    "n={n} scale={scale}: promoted {} rolled back {} (by window 8: {caught_by_8}) expired {} of 100",
                    count(Action::Promote),
                    count(Action::Rollback),
                    count(Action::Expire)
                );
            }
        }
    }

    #[test]
    fn improvements_and_small_data() {
        let mut rng = Rng::new(3);
        let (a, b) = (sample(&mut rng, 5_000, 0.8), sample(&mut rng, 5_000, 1.0));
        assert_eq!(judge(&a, &b, &DEFAULT_POLICY, 3).verdict, Verdict::Better);
        let few = sample(&mut rng, 500, 1.0);
        assert_eq!(judge(&few, &b, &DEFAULT_POLICY, 3).verdict, Verdict::NotEnoughData);
        assert_eq!(judge(&a, &[], &DEFAULT_POLICY, 3).verdict, Verdict::NotEnoughData);
    }

    #[test]
    fn promotes_after_good_windows_and_rolls_back_once() {
        let j = |verdict| Judgement {
            verdict,
            candidate_samples: 0,
            baseline_samples: 0,
            p99_ratio: 1.0,
            p99_ratio_ci: (1.0, 1.0),
            p99_ratio_upper: 1.0,
            mann_whitney_p: 1.0,
            cliffs_delta: 0.0,
        };
        let mut c = Canary::new(DEFAULT_POLICY);
        assert_eq!(c.record(j(Verdict::Same)), Action::Continue);
        assert_eq!(c.record(j(Verdict::NotEnoughData)), Action::Continue);
        assert_eq!(c.record(j(Verdict::Better)), Action::Continue);
        assert_eq!(c.record(j(Verdict::Same)), Action::Promote);
        assert_eq!(c.state, CanaryState::Promoted);
        assert_eq!(c.record(j(Verdict::Worse)), Action::Continue, "decided stays decided");

        let mut c = Canary::new(DEFAULT_POLICY);
        c.record(j(Verdict::Same));
        assert_eq!(c.record(j(Verdict::Worse)), Action::Rollback);
        assert_eq!((c.state, c.streak, c.windows), (CanaryState::RolledBack, 0, 2));

        // Undecided for max_windows: expired, neither rolled back nor promoted.
        let mut c = Canary::new(CanaryPolicy { max_windows: 3, ..DEFAULT_POLICY });
        assert_eq!(c.record(j(Verdict::NotEnoughData)), Action::Continue);
        assert_eq!(c.record(j(Verdict::Same)), Action::Continue);
        assert_eq!(c.record(j(Verdict::NotEnoughData)), Action::Expire);
        assert_eq!(c.state, CanaryState::Expired);
    }

    #[test]
    fn each_wire_name_is_the_serde_name() {
        fn wire<T: Serialize>(v: T) -> String {
            serde_json::to_value(v).unwrap().as_str().unwrap().to_string()
        }
        for v in Verdict::ALL {
            assert_eq!(wire(v), v.as_str());
            assert_eq!(serde_json::from_value::<Verdict>(serde_json::json!(v.as_str())).unwrap(), v);
        }
        for s in CanaryState::ALL {
            assert_eq!(wire(s), s.as_str());
            assert_eq!(serde_json::from_value::<CanaryState>(serde_json::json!(s.as_str())).unwrap(), s);
        }
        for a in Arm::ALL {
            assert_eq!(wire(a), a.as_str());
        }
    }
}
