// SPDX-License-Identifier: GPL-2.0-only
//! The A/B canary in the daemon (issue 14; the statistics and the decision
//! over windows are `scx_slo_model::canary`). Alternating windows, one arm
//! each: scx-slo enforcing (the candidate), then the kernel's default
//! scheduler with the observe probes measuring (the baseline), same host,
//! same load. Why this form and not two instances of a templated unit: it
//! needs nothing from the service (any unit, one instance), and both arms
//! see the same machine and the same traffic, seconds apart; the cost is
//! that half of the canary's time runs on the default scheduler.
//!
//! The SLI of a window is the run-queue delay of every latency target,
//! from the same maps the metrics read (the scheduler's in the candidate
//! arm, the probes' in the baseline arm, one layout). The histogram's
//! buckets are powers of two, so the samples judged are each bucket's
//! count spread evenly over the bucket: the verdict sees a regression that
//! moves the tail's mass across buckets, not one inside a bucket
//! (docs/tuning.md).
//!
//! Each pair also feeds the SLO breaker (`canary::judge_burn`): the deadline
//! misses per job in each arm (the observe probes count would-be misses
//! under the default scheduler). When the error budget burns significantly
//! faster under scx-slo than under the default scheduler, and faster than
//! the SLO allows, the canary rolls back whatever the p99 says.
//!
//! The engine ends the running session when an arm's window is over; the
//! supervisor's baseline flag holds enforce back while the observe session
//! measures. A rollback opens the breaker (the host stays on its default
//! scheduler), is audited, and signals `SloViolation`.

use std::time::{Duration, Instant};

use scx_slo_api::documents::{CanaryReport, CanaryWindow};
use scx_slo_api::ActiveMode;
use scx_slo_model::canary::{self, Action, BurnJudgement, Canary, CanaryPolicy, CanaryState, Judgement};
use scx_slo_model::config::CanarySettings;
use tracing::{info, warn};

use super::adaptive::hist_delta;
use super::Engine;
use crate::backend::Backend;
use crate::control::Event;

/// Most samples an arm's histogram is expanded into (counts are scaled
/// down past it, keeping the distribution's shape): bounds memory and the
/// bootstrap's time whatever the load.
pub const MAX_SAMPLES: usize = 50_000;

/// Which scheduler an arm measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// scx-slo enforcing.
    Candidate,
    /// The kernel's default scheduler (observe probes measuring).
    Baseline,
}

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::Candidate => "candidate",
            Arm::Baseline => "baseline",
        }
    }
}

/// What the engine does when an arm's window ends.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The candidate's window ended: measure the default scheduler next.
    ToBaseline,
    /// A pair was judged and the canary goes on: the candidate again.
    ToCandidate,
    /// Promoted or expired: the candidate stays, no more windows.
    Done,
    /// The candidate is worse: roll it back, for this reason.
    Rollback(String),
}

/// What an arm measures: the latency targets' run-queue delay histogram,
/// and their ended jobs and deadline misses (cumulative readings; a window
/// is the difference of two).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sli {
    /// Run-queue delay, log2 buckets.
    pub hist: Vec<u64>,
    /// Jobs ended.
    pub jobs: u64,
    /// Of which past their deadline.
    pub misses: u64,
}

impl Sli {
    /// This reading minus an earlier one.
    fn since(&self, start: &Sli) -> Sli {
        Sli { hist: hist_delta(&start.hist, &self.hist), jobs: self.jobs.saturating_sub(start.jobs), misses: self.misses.saturating_sub(start.misses) }
    }
}

/// One canary, for one config.
#[derive(Debug)]
pub struct CanaryRun {
    settings: CanarySettings,
    /// The strictest error budget (1 - availability) of the latency
    /// targets with an SLO; None: no SLO, no burn test.
    error_budget: Option<f64>,
    canary: Canary,
    config_sha: String,
    /// The arm measuring now: since when, and the SLI then.
    arm: Option<(Arm, Instant, Sli)>,
    /// The last candidate window's SLI, waiting for its baseline.
    candidate: Option<Sli>,
    verdicts: Vec<String>,
    last: Option<CanaryWindow>,
    outcome: Option<String>,
}

/// Samples from a log2 histogram, in µs: each bucket's count spread evenly
/// over the bucket (the first from 0, the open last one over one more
/// doubling), at most [`MAX_SAMPLES`] in all.
pub fn hist_samples(hist: &[u64]) -> Vec<f64> {
    let total: u64 = hist.iter().sum();
    let scale = if total as usize > MAX_SAMPLES { MAX_SAMPLES as f64 / total as f64 } else { 1.0 };
    let mut out = Vec::with_capacity(total.min(MAX_SAMPLES as u64) as usize);
    let mut lower = 0.0;
    for (i, count) in hist.iter().enumerate() {
        let upper_ns = scx_slo_bpf::maps::hist_bucket_upper_ns(i);
        let upper = if upper_ns == u64::MAX { lower * 2.0 } else { upper_ns as f64 / 1e3 };
        let n = (*count as f64 * scale).round() as usize;
        for k in 0..n {
            out.push(lower + (upper - lower) * (k as f64 + 0.5) / n as f64);
        }
        lower = upper;
    }
    out
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl CanaryRun {
    /// A canary of the config with digest `config_sha`.
    pub fn new(settings: CanarySettings, error_budget: Option<f64>, config_sha: &str) -> CanaryRun {
        CanaryRun {
            settings,
            error_budget,
            canary: Canary::new(Self::policy(&settings)),
            config_sha: config_sha.to_string(),
            arm: None,
            candidate: None,
            verdicts: Vec::new(),
            last: None,
            outcome: None,
        }
    }

    fn policy(s: &CanarySettings) -> CanaryPolicy {
        CanaryPolicy {
            min_samples: usize::try_from(s.min_samples).unwrap_or(usize::MAX),
            max_regression: s.max_regression,
            promote_after: s.promote_after,
            resamples: canary::DEFAULT_POLICY.resamples,
            max_windows: s.max_windows,
        }
    }

    /// Whether this canary judges this config with these settings.
    pub fn judges(&self, settings: &CanarySettings, config_sha: &str) -> bool {
        self.settings == *settings && self.config_sha == config_sha
    }

    /// Still deciding.
    pub fn running(&self) -> bool {
        self.canary.state == CanaryState::Running
    }

    /// The arm measuring now.
    pub fn arm(&self) -> Option<Arm> {
        self.arm.as_ref().map(|a| a.0)
    }

    /// An arm begins, with the SLI as it stands.
    pub fn begin(&mut self, arm: Arm, now: Instant, sli: Sli) {
        if self.running() {
            self.arm = Some((arm, now, sli));
        }
    }

    /// The arm's window is over.
    pub fn due(&self, now: Instant) -> bool {
        let window = Duration::from_nanos(self.settings.window.as_ns());
        self.arm.as_ref().is_some_and(|(_, since, _)| now.saturating_duration_since(*since) >= window)
    }

    /// The session ended for another reason (an operator, an ejection):
    /// the arm's window is incomplete and is not judged.
    pub fn abandon(&mut self) {
        self.arm = None;
    }

    /// The arm's window ended with the SLI at `now`.
    pub fn end(&mut self, now: &Sli, seed: u64) -> Option<Step> {
        let (arm, _, start) = self.arm.take()?;
        let window = now.since(&start);
        if arm == Arm::Candidate {
            self.candidate = Some(window);
            return Some(Step::ToBaseline);
        }
        let Some(candidate_sli) = self.candidate.take() else { return Some(Step::ToCandidate) };
        let burn = self.error_budget.map(|b| canary::judge_burn((candidate_sli.misses, candidate_sli.jobs), (window.misses, window.jobs), b));
        let (candidate, delta) = (candidate_sli.hist, window.hist);
        let (c, b) = (hist_samples(&candidate), hist_samples(&delta));
        // The minimum is on what was measured, not on the capped expansion.
        let (cn, bn) = (candidate.iter().sum::<u64>(), delta.iter().sum::<u64>());
        let mut policy = self.canary.policy;
        policy.min_samples = if cn.min(bn) >= self.settings.min_samples { 1 } else { usize::MAX };
        let mut j = canary::judge(&c, &b, &policy, seed);
        // The words keep the p99 verdict; the SLO breaker overrules it.
        let why = describe(&j);
        let breaker = burn.filter(|b| b.worse);
        if breaker.is_some() {
            j.verdict = canary::Verdict::Worse;
        }
        let p99 = |v: &[f64]| finite(scx_slo_model::stats::percentile(&scx_slo_model::stats::sorted(v), 0.99));
        self.last = Some(CanaryWindow {
            verdict: j.verdict.name().to_string(),
            candidate_samples: cn as usize,
            baseline_samples: bn as usize,
            p99_ratio: finite(j.p99_ratio),
            p99_ratio_ci: finite(j.p99_ratio_ci.0).zip(finite(j.p99_ratio_ci.1)),
            mann_whitney_p: finite(j.mann_whitney_p),
            cliffs_delta: finite(j.cliffs_delta),
            p99_us: if c.is_empty() || b.is_empty() { None } else { p99(&c).zip(p99(&b)) },
            miss_ratio: burn.map(|b| (b.candidate_ratio, b.baseline_ratio)),
            burn_rate: burn.map(|b| b.burn_rate).and_then(finite),
        });
        self.verdicts.push(j.verdict.name().to_string());
        let windows = self.canary.windows + 1;
        Some(match self.canary.record(j) {
            Action::Continue => Step::ToCandidate,
            Action::Promote => {
                self.outcome = Some(format!("promoted: {} windows in a row better or same ({why})", self.settings.promote_after));
                Step::Done
            }
            Action::Expire => {
                self.outcome = Some(format!("expired undecided after {windows} windows ({why}); lengthen canary.window for more samples"));
                Step::Done
            }
            Action::Rollback => {
                let reason = match breaker {
                    Some(burn) => format!("canary rolled back after {windows} windows by the SLO breaker: {}; p99 {why}", describe_burn(&burn)),
                    None => format!("canary rolled back after {windows} windows: {why}"),
                };
                self.outcome = Some(reason.clone());
                Step::Rollback(reason)
            }
        })
    }

    /// The baseline cannot be measured (the probes did not load): the
    /// canary ends undecided, the candidate stays.
    pub fn expire(&mut self, why: &str) {
        self.arm = None;
        self.canary.state = CanaryState::Expired;
        self.outcome = Some(format!("expired: {why}"));
    }

    /// Status's view.
    pub fn report(&self) -> CanaryReport {
        let state = match self.canary.state {
            CanaryState::Running => "running",
            CanaryState::Promoted => "promoted",
            CanaryState::RolledBack => "rolled-back",
            CanaryState::Expired => "expired",
        };
        CanaryReport {
            state: state.to_string(),
            arm: self.arm().map(|a| a.name().to_string()),
            windows: self.canary.windows,
            streak: self.canary.streak,
            window_s: self.settings.window.as_ns() as f64 / 1e9,
            config_sha256: self.config_sha.clone(),
            verdicts: self.verdicts.clone(),
            last: self.last.clone(),
            outcome: self.outcome.clone(),
        }
    }
}

/// The burn test in words.
fn describe_burn(b: &BurnJudgement) -> String {
    format!(
        "deadline misses {:.3}% of jobs under scx-slo against {:.3}% under the default scheduler (one-sided p {:.1e}), burning the error budget {:.1}x",
        b.candidate_ratio * 100.0,
        b.baseline_ratio * 100.0,
        b.p,
        b.burn_rate
    )
}

/// A judgement in words, for logs, the audit trail and the outcome.
fn describe(j: &Judgement) -> String {
    format!(
        "{}: p99 ratio {:.3} (99.9% interval {:.3}..{:.3}), Mann-Whitney p {:.2e}, Cliff's delta {:.3}, {} and {} samples",
        j.verdict.name(),
        j.p99_ratio,
        j.p99_ratio_ci.0,
        j.p99_ratio_ci.1,
        j.mann_whitney_p,
        j.cliffs_delta,
        j.candidate_samples,
        j.baseline_samples
    )
}

impl Engine {
    /// The latency targets' run-queue delay histogram, jobs and misses,
    /// summed: the SLI.
    fn canary_sli(&self, sched: &dyn Backend) -> Sli {
        let mut sum = Sli { hist: vec![0u64; scx_slo_bpf::intf::slo_consts_SLO_HIST_BUCKETS as usize], jobs: 0, misses: 0 };
        let latency = self.generation.config.targets.iter().filter(|t| t.class == scx_slo_model::Class::Latency);
        for t in latency {
            let live = self.slots.get(&t.key).filter(|_| self.resolved.contains_key(&t.key)).and_then(|slot| sched.target_stats(slot).ok());
            if let Some(stats) = self.carried.total(&t.key, live) {
                for (s, v) in sum.hist.iter_mut().zip(stats.rq_delay_hist.iter()) {
                    *s = s.wrapping_add(*v);
                }
                sum.jobs = sum.jobs.wrapping_add(stats.get("jobs"));
                sum.misses = sum.misses.wrapping_add(stats.get("deadline_misses"));
            }
        }
        sum
    }

    /// Starts, restarts or drops the canary to match the applied config: a
    /// new canary for every config it has not judged.
    pub(super) fn canary_follow(&mut self) {
        let sha = &self.generation.file.sha256;
        match self.generation.config.canary {
            Some(settings) if self.canary.as_ref().is_some_and(|c| c.judges(&settings, sha)) => {}
            Some(settings) => {
                let sha = sha.clone();
                info!(event = "canary", config_sha256 = %sha, "canary: judging this config against the default scheduler, {} per arm", settings.window);
                let budget = self.generation.config.targets.iter().filter_map(|t| t.slo).map(|s| 1.0 - s.availability).reduce(f64::min);
                self.canary = Some(CanaryRun::new(settings, budget, &sha));
                self.supervisor.set_baseline(false);
            }
            None => {
                if self.canary.take().is_some() {
                    self.supervisor.set_baseline(false);
                }
            }
        }
    }

    /// The arm a session measures: enforce is the candidate, observe while
    /// enforce is held back the baseline; any other session neither.
    fn canary_arm_of(&self, mode: ActiveMode, fallback: bool) -> Option<Arm> {
        match (mode, fallback) {
            (ActiveMode::Enforce, false) if !self.supervisor.in_baseline() => Some(Arm::Candidate),
            (ActiveMode::Observe, true) if self.supervisor.in_baseline() => Some(Arm::Baseline),
            _ => None,
        }
    }

    /// Called in the session loop (and at its start): follows the config,
    /// begins the session's arm, and when the arm's window is over ends it
    /// and says whether the session must end (the other arm is next).
    pub(super) fn canary_tick(&mut self, sched: &dyn Backend, mode: ActiveMode, fallback: bool) -> bool {
        self.canary_follow();
        let Some(c) = self.canary.as_ref().filter(|c| c.running()) else { return false };
        if c.arm().is_none() {
            if let Some(arm) = self.canary_arm_of(mode, fallback) {
                let sli = self.canary_sli(sched);
                if let Some(c) = self.canary.as_mut() {
                    c.begin(arm, Instant::now(), sli);
                }
                info!(event = "canary_arm", arm = arm.name(), "canary: the {} window begins", arm.name());
            }
            return false;
        }
        if !c.due(Instant::now()) {
            return false;
        }
        let sli = self.canary_sli(sched);
        let seed = self.generation.number ^ self.epoch.elapsed().as_nanos() as u64;
        let Some(step) = self.canary.as_mut().and_then(|c| c.end(&sli, seed)) else { return false };
        let report = self.canary.as_ref().map(CanaryRun::report);
        let last = report.as_ref().and_then(|r| r.last.clone());
        if !matches!(step, Step::ToBaseline) {
            let verdict = last.as_ref().map_or("", |l| l.verdict.as_str()).to_string();
            info!(event = "canary_window", verdict = %verdict, p99_ratio = ?last.as_ref().and_then(|l| l.p99_ratio), "canary: window judged {verdict}");
        }
        // Every step but ToBaseline ends a baseline arm, and a baseline arm
        // only runs in the observe session that stands in for enforce: that
        // session ends either way.
        match step {
            Step::ToBaseline => {
                self.supervisor.set_baseline(true);
                true
            }
            Step::ToCandidate => {
                self.supervisor.set_baseline(false);
                true
            }
            Step::Done => {
                self.supervisor.set_baseline(false);
                let outcome = report.as_ref().and_then(|r| r.outcome.clone()).unwrap_or_default();
                info!(event = "canary_done", "canary: {outcome}");
                let _ = self.audit_event("canary", None, &report.as_ref().map_or(String::new(), |r| r.state.clone()), serde_json::json!({ "outcome": outcome, "report": report }));
                true
            }
            Step::Rollback(reason) => {
                warn!(event = "canary_rollback", "{reason}");
                let _ = self.audit_event("canary", None, "rolled-back", serde_json::json!({ "reason": reason, "report": report }));
                let t = self.supervisor.canary_rolled_back(&reason);
                let _ = self.save_persistent();
                self.announce(t);
                let _ = self.events.try_send(Event::SloViolation { unit: String::new(), kind: "canary_rollback".into(), slack_ns: 0 });
                true
            }
        }
    }

    /// The baseline's probes could not load: the canary cannot measure.
    pub(super) fn canary_baseline_failed(&mut self, why: &str) {
        if self.supervisor.in_baseline() {
            self.supervisor.set_baseline(false);
            if let Some(c) = self.canary.as_mut() {
                c.expire(&format!("the default scheduler could not be measured ({why})"));
                warn!(event = "canary_done", "canary expired: the baseline could not be measured ({why}); the candidate stays, not promoted");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scx_slo_model::Duration as D;

    fn settings() -> CanarySettings {
        CanarySettings { window: D::from_secs(10), min_samples: 100, max_regression: 0.02, promote_after: 2, max_windows: 4 }
    }

    /// A histogram with `n` samples in bucket `b` (each bucket doubles).
    fn hist(fill: &[(usize, u64)]) -> Vec<u64> {
        let mut h = vec![0u64; scx_slo_bpf::intf::slo_consts_SLO_HIST_BUCKETS as usize];
        for (b, n) in fill {
            h[*b] += n;
        }
        h
    }

    fn add(a: &[u64], b: &[u64]) -> Vec<u64> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }

    fn sli(hist: Vec<u64>) -> Sli {
        Sli { hist, jobs: 0, misses: 0 }
    }

    /// Runs one pair: the candidate's window adds `cand`, the baseline's `base`.
    fn pair(run: &mut CanaryRun, at: &mut Vec<u64>, cand: &[u64], base: &[u64], seed: u64) -> Step {
        let now = Instant::now();
        run.begin(Arm::Candidate, now, sli(at.clone()));
        *at = add(at, cand);
        assert_eq!(run.end(&sli(at.clone()), seed), Some(Step::ToBaseline));
        run.begin(Arm::Baseline, now, sli(at.clone()));
        *at = add(at, base);
        run.end(&sli(at.clone()), seed).expect("a step")
    }

    #[test]
    fn samples_spread_over_their_buckets_and_are_capped() {
        let s = hist_samples(&hist(&[(0, 2), (3, 4)]));
        assert_eq!(s.len(), 6);
        // Bucket 0 is [0, 1.024) µs, bucket 3 [4.096, 8.192) µs.
        assert!(s[..2].iter().all(|v| *v > 0.0 && *v < 1.024), "{s:?}");
        assert!(s[2..].iter().all(|v| *v > 4.096 && *v < 8.192), "{s:?}");
        let big = hist_samples(&hist(&[(5, 400_000), (9, 100_000)]));
        assert!((big.len() as i64 - MAX_SAMPLES as i64).abs() <= 2, "{}", big.len());
        let high = big.iter().filter(|v| **v > 262.0).count() as f64 / big.len() as f64;
        assert!((high - 0.2).abs() < 0.001, "the shape is kept: {high}");
    }

    #[test]
    fn a_tail_a_bucket_worse_rolls_back_and_equal_windows_promote() {
        let mut at = hist(&[]);
        let mut worse = CanaryRun::new(settings(), None, "a");
        let base = hist(&[(6, 40_000), (8, 1_600)]);
        let cand = hist(&[(6, 40_000), (10, 1_600)]);
        match pair(&mut worse, &mut at, &cand, &base, 1) {
            Step::Rollback(why) => assert!(why.contains("worse") && why.contains("after 1 windows"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(worse.report().state, "rolled-back");
        assert_eq!(worse.report().verdicts, ["worse"]);

        let mut same = CanaryRun::new(settings(), None, "b");
        assert_eq!(pair(&mut same, &mut at, &base, &base, 2), Step::ToCandidate);
        assert_eq!(pair(&mut same, &mut at, &base, &base, 3), Step::Done, "{:?}", same.report());
        let r = same.report();
        assert_eq!((r.state.as_str(), r.windows, r.streak), ("promoted", 2, 2));
        assert!(r.outcome.unwrap().starts_with("promoted"));
        assert_eq!(r.last.unwrap().p99_ratio, Some(1.0));
        // A decided canary measures nothing more.
        same.begin(Arm::Candidate, Instant::now(), sli(at.clone()));
        assert_eq!(same.arm(), None);
    }

    #[test]
    fn too_few_samples_never_decide_and_the_canary_expires() {
        let mut at = hist(&[]);
        let mut run = CanaryRun::new(settings(), None, "c");
        let few = hist(&[(6, 50)]);
        for i in 0..3 {
            assert_eq!(pair(&mut run, &mut at, &few, &few, i), Step::ToCandidate, "window {i}");
        }
        assert_eq!(pair(&mut run, &mut at, &few, &few, 9), Step::Done);
        let r = run.report();
        assert_eq!(r.state, "expired");
        assert_eq!(r.verdicts, ["not-enough-data"; 4]);
        assert_eq!(r.last.unwrap().candidate_samples, 50);
    }

    #[test]
    fn an_abandoned_window_is_not_judged() {
        let mut run = CanaryRun::new(settings(), None, "d");
        let now = Instant::now();
        run.begin(Arm::Candidate, now, sli(hist(&[])));
        assert!(!run.due(now) && run.due(now + std::time::Duration::from_secs(10)));
        run.abandon();
        assert_eq!(run.end(&sli(hist(&[(3, 10)])), 0), None);
        // A baseline without a candidate window before it judges nothing.
        run.begin(Arm::Baseline, now, sli(hist(&[])));
        assert_eq!(run.end(&sli(hist(&[(3, 10)])), 0), Some(Step::ToCandidate));
        assert_eq!(run.report().windows, 0);
        assert!(run.judges(&settings(), "d") && !run.judges(&settings(), "e"));
    }

    #[test]
    fn the_slo_breaker_rolls_back_a_candidate_that_burns_the_budget_though_its_p99_is_the_same() {
        let h = hist(&[(6, 40_000), (8, 1_600)]);
        let now = Instant::now();
        let mut run = CanaryRun::new(settings(), Some(0.001), "f");
        run.begin(Arm::Candidate, now, Sli { hist: hist(&[]), jobs: 0, misses: 0 });
        run.end(&Sli { hist: h.clone(), jobs: 10_000, misses: 200 }, 1);
        run.begin(Arm::Baseline, now, Sli { hist: h.clone(), jobs: 10_000, misses: 200 });
        let step = run.end(&Sli { hist: add(&h, &h), jobs: 20_000, misses: 205 }, 1);
        match step {
            Some(Step::Rollback(why)) => assert!(why.contains("SLO breaker") && why.contains("2.000% of jobs under scx-slo against 0.050%"), "{why}"),
            other => panic!("{other:?}"),
        }
        let r = run.report();
        assert_eq!((r.state.as_str(), r.verdicts.as_slice()), ("rolled-back", ["worse".to_string()].as_slice()));
        let last = r.last.unwrap();
        assert_eq!(last.p99_ratio, Some(1.0), "the p99 alone would not have rolled back");
        assert_eq!(last.miss_ratio, Some((0.02, 0.0005)));
        // Without an SLO there is no budget to burn: the same windows go on.
        let mut no_slo = CanaryRun::new(settings(), None, "g");
        no_slo.begin(Arm::Candidate, now, Sli { hist: hist(&[]), jobs: 0, misses: 0 });
        no_slo.end(&Sli { hist: h.clone(), jobs: 10_000, misses: 200 }, 1);
        no_slo.begin(Arm::Baseline, now, Sli { hist: h.clone(), jobs: 10_000, misses: 200 });
        assert_eq!(no_slo.end(&Sli { hist: add(&h, &h), jobs: 20_000, misses: 205 }, 1), Some(Step::ToCandidate));
    }
}
