// SPDX-License-Identifier: GPL-2.0-only
//! The A/B canary in the daemon (docs/tuning.md; the statistics and the decision
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
//! arm, the probes' in the baseline arm, one layout). When latency targets
//! have `scrape` blocks it is their own histograms instead, the source the
//! adaptive controller uses, read by the scraper in both arms alike. Either
//! way the samples judged are each bucket's count spread evenly over the
//! bucket: the verdict sees a regression that moves the tail's mass across
//! buckets, not one inside a bucket (docs/tuning.md).
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
//!
//! [`CanaryOwner`] decides all of that from a read-only [`CanaryView`] and
//! returns it as [`Effect`]s (the baseline flag, the rollback, the audit
//! record, the persist, the signal); the engine's loop carries them out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scx_slo_api::documents::{CanaryReport, CanaryWindow};
use scx_slo_api::scrape::{counts_samples, interval_counts, Buckets};
use scx_slo_api::ActiveMode;
use scx_slo_model::canary::{self, Action, Arm, BurnJudgement, Canary, CanaryPolicy, CanaryState, Judgement, Verdict};
use scx_slo_model::config::CanarySettings;
use scx_slo_model::Config;
use tracing::{info, warn};

use super::adaptive::hist_delta;
use super::effects::Effect;
use super::targets::Targets;
use crate::backend::Backend;
use crate::control::Event;
use crate::scraper::{Scraper, Source};

/// Most samples an arm's histogram is expanded into (counts are scaled
/// down past it, keeping the distribution's shape): bounds memory and the
/// bootstrap's time whatever the load.
pub const MAX_SAMPLES: usize = 50_000;

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
/// is the difference of two). When any latency target has a `scrape`
/// block, the SLI is the scraped histograms instead of the run-queue delay
/// (the same source the adaptive controller uses).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sli {
    /// Run-queue delay, log2 buckets.
    pub hist: Vec<u64>,
    /// Jobs ended.
    pub jobs: u64,
    /// Of which past their deadline.
    pub misses: u64,
    /// The scraped histograms that could be read, by endpoint; `None` when
    /// no latency target has a `scrape` block.
    pub service: Option<BTreeMap<Source, Arc<Buckets>>>,
}

/// One arm's window: the difference of two [`Sli`] readings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    hist: Vec<u64>,
    jobs: u64,
    misses: u64,
    /// Per endpoint read at both ends (and not restarted between), the
    /// requests per bucket.
    service: Option<Vec<Vec<(f64, f64)>>>,
}

impl Sli {
    /// This reading minus an earlier one.
    fn since(&self, start: &Sli) -> Window {
        let service = self.service.as_ref().map(|now| {
            let before = start.service.as_ref();
            now.iter().filter_map(|(src, b)| interval_counts(before?.get(src)?, b).ok()).collect()
        });
        Window { hist: hist_delta(&start.hist, &self.hist), jobs: self.jobs.saturating_sub(start.jobs), misses: self.misses.saturating_sub(start.misses), service }
    }
}

impl Window {
    /// The samples judged, in µs, and how many were measured (before the
    /// expansion's cap).
    fn samples(&self) -> (Vec<f64>, u64) {
        match &self.service {
            None => (hist_samples(&self.hist), self.hist.iter().sum()),
            Some(endpoints) => {
                let each = MAX_SAMPLES / endpoints.len().max(1);
                let measured = endpoints.iter().flatten().map(|c| c.1).sum::<f64>() as u64;
                (endpoints.iter().flat_map(|c| counts_samples(c, each)).collect(), measured)
            }
        }
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
    candidate: Option<Window>,
    verdicts: Vec<Verdict>,
    last: Option<CanaryWindow>,
    outcome: Option<String>,
}

/// Samples from a log2 histogram, in µs: each bucket's count spread evenly
/// over the bucket (the first from 0, the open last one over one more
/// doubling), at most [`MAX_SAMPLES`] in all.
pub fn hist_samples(hist: &[u64]) -> Vec<f64> {
    scx_slo_model::histogram::log2_samples_us(hist, MAX_SAMPLES)
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

    /// A canary a previous run decided on the same config: not run again.
    pub fn restored(settings: CanarySettings, report: &CanaryReport) -> CanaryRun {
        let mut run = CanaryRun::new(settings, None, &report.config_sha256);
        run.canary.state = if report.state == CanaryState::Promoted { CanaryState::Promoted } else { CanaryState::Expired };
        run.canary.windows = report.windows;
        run.canary.streak = report.streak;
        run.verdicts = report.verdicts.clone();
        run.last = report.last.clone();
        run.outcome = report.outcome.as_ref().map(|o| format!("{o} (decided before scx-slod restarted)"));
        run
    }

    /// Its report, when it ended promoted or expired (what persists).
    pub fn decided(&self) -> Option<CanaryReport> {
        matches!(self.canary.state, CanaryState::Promoted | CanaryState::Expired).then(|| {
            let mut r = self.report();
            r.outcome = r.outcome.map(|o| o.trim_end_matches(" (decided before scx-slod restarted)").to_string());
            r
        })
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
        // The minimum is on what was measured, not on the capped expansion.
        let ((c, cn), (b, bn)) = (candidate_sli.samples(), window.samples());
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
            verdict: j.verdict,
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
        self.verdicts.push(j.verdict);
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
        CanaryReport {
            state: self.canary.state,
            arm: self.arm(),
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
        j.verdict.as_str(),
        j.p99_ratio,
        j.p99_ratio_ci.0,
        j.p99_ratio_ci.1,
        j.mann_whitney_p,
        j.cliffs_delta,
        j.candidate_samples,
        j.baseline_samples
    )
}

/// What the canary reads of the engine, read-only.
pub struct CanaryView<'a> {
    /// The applied config.
    pub config: &'a Config,
    /// The targets' cgroups, slots and carried counts.
    pub targets: &'a Targets,
    /// The targets' own histograms, as last scraped.
    pub scraper: &'a Scraper,
    /// The loaded backend (the scheduler's or the probes' maps).
    pub sched: &'a dyn Backend,
    /// Whether the supervisor holds enforce back for the baseline now.
    pub in_baseline: bool,
    /// The bootstrap's seed for a window judged now.
    pub seed: u64,
}

impl CanaryView<'_> {
    /// The latency targets' run-queue delay histogram, jobs and misses,
    /// summed: the SLI.
    fn sli(&self) -> Sli {
        let mut sum = Sli { hist: vec![0u64; scx_slo_bpf::intf::slo_consts_SLO_HIST_BUCKETS as usize], ..Sli::default() };
        let latency = self.config.targets.iter().filter(|t| t.class == scx_slo_model::Class::Latency);
        let scraped: Vec<&scx_slo_model::Scrape> = latency.clone().filter_map(|t| t.scrape.as_ref()).collect();
        if !scraped.is_empty() {
            let readings = scraped.into_iter().filter_map(|s| Some(((s.url.clone(), s.histogram.clone()), self.scraper.latest(s)?.result.ok()?)));
            sum.service = Some(readings.collect());
        }
        for t in latency {
            let live = self.targets.live(&t.key, self.sched);
            if let Some(stats) = self.targets.carried.total(&t.key, live) {
                for (s, v) in sum.hist.iter_mut().zip(stats.rq_delay_hist.iter()) {
                    *s = s.wrapping_add(*v);
                }
                sum.jobs = sum.jobs.wrapping_add(stats.get(scx_slo_api::Counter::Jobs));
                sum.misses = sum.misses.wrapping_add(stats.get(scx_slo_api::Counter::DeadlineMisses));
            }
        }
        sum
    }

    /// The arm a session measures: enforce is the candidate, observe while
    /// enforce is held back the baseline; any other session neither.
    fn arm_of(&self, mode: ActiveMode, fallback: bool) -> Option<Arm> {
        match (mode, fallback) {
            (ActiveMode::Enforce, false) if !self.in_baseline => Some(Arm::Candidate),
            (ActiveMode::Observe, true) if self.in_baseline => Some(Arm::Baseline),
            _ => None,
        }
    }
}

/// The canary owner: the A/B canary of the applied config, and a decision a
/// previous run persisted. It decides; the engine's loop carries out the
/// [`Effect`]s it returns.
#[derive(Debug, Default)]
pub struct CanaryOwner {
    /// The canary of the applied config, when it has one.
    run: Option<CanaryRun>,
    /// A canary a previous run decided (promoted or expired): not run again
    /// for the same config.
    decided: Option<CanaryReport>,
}

impl CanaryOwner {
    /// No canary yet; `decided` is what the last run persisted.
    pub fn new(decided: Option<CanaryReport>) -> CanaryOwner {
        CanaryOwner { run: None, decided }
    }

    /// Status's view of the canary, when there is one.
    pub fn report(&self) -> Option<CanaryReport> {
        self.run.as_ref().map(CanaryRun::report)
    }

    /// What persists: this run's decision, or the one restored at start.
    pub fn to_persist(&self) -> Option<CanaryReport> {
        self.run.as_ref().and_then(CanaryRun::decided).or_else(|| self.decided.clone())
    }

    /// The session ended for another reason (an operator, an ejection,
    /// a stop): a window still open was cut short and is not judged.
    pub fn abandon(&mut self) {
        if let Some(c) = self.run.as_mut() {
            c.abandon();
        }
    }

    /// Starts, restarts or drops the canary to match the applied config: a
    /// new canary for every config it has not judged.
    pub fn follow(&mut self, config: &Config, sha: &str) -> Vec<Effect> {
        match config.canary {
            Some(settings) if self.run.as_ref().is_some_and(|c| c.judges(&settings, sha)) => Vec::new(),
            Some(settings) if self.decided.as_ref().is_some_and(|r| r.config_sha256 == sha && r.state.decided_in_place()) => {
                // The file's digest covers the canary block: same digest,
                // same settings, same verdict.
                let report = self.decided.take().unwrap_or_default();
                info!(event = "canary", config_sha256 = %sha, "canary: this config was {} before scx-slod restarted; not judged again", report.state);
                self.run = Some(CanaryRun::restored(settings, &report));
                vec![Effect::Baseline(false)]
            }
            Some(settings) => {
                self.decided = None;
                info!(event = "canary", config_sha256 = %sha, "canary: judging this config against the default scheduler, {} per arm", settings.window);
                let budget = config.targets.iter().filter_map(|t| t.slo).map(|s| 1.0 - s.availability).reduce(f64::min);
                self.run = Some(CanaryRun::new(settings, budget, sha));
                vec![Effect::Baseline(false)]
            }
            None => {
                self.decided = None;
                if self.run.take().is_some() {
                    vec![Effect::Baseline(false)]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Called in the session loop (and at its start), after [`Self::follow`]:
    /// begins the session's arm, and when the arm's window is over ends it.
    /// True when the session must end (the other arm is next, or the
    /// canary decided).
    pub fn tick(&mut self, view: &CanaryView<'_>, mode: ActiveMode, fallback: bool) -> (bool, Vec<Effect>) {
        let Some(c) = self.run.as_mut().filter(|c| c.running()) else { return (false, Vec::new()) };
        if c.arm().is_none() {
            if let Some(arm) = view.arm_of(mode, fallback) {
                c.begin(arm, Instant::now(), view.sli());
                info!(event = "canary_arm", arm = arm.as_str(), "canary: the {arm} window begins");
            }
            return (false, Vec::new());
        }
        if !c.due(Instant::now()) {
            return (false, Vec::new());
        }
        let Some(step) = c.end(&view.sli(), view.seed) else { return (false, Vec::new()) };
        let report = c.report();
        if !matches!(step, Step::ToBaseline) {
            let last = report.last.as_ref();
            let verdict = last.map_or("", |l| l.verdict.as_str());
            info!(event = "canary_window", verdict = %verdict, p99_ratio = ?last.and_then(|l| l.p99_ratio), "canary: window judged {verdict}");
        }
        // Every step but ToBaseline ends a baseline arm, and a baseline arm
        // only runs in the observe session that stands in for enforce: that
        // session ends either way.
        let effects = match step {
            Step::ToBaseline => vec![Effect::Baseline(true)],
            Step::ToCandidate => vec![Effect::Baseline(false)],
            Step::Done => {
                let outcome = report.outcome.clone().unwrap_or_default();
                info!(event = "canary_done", "canary: {outcome}");
                let audit = Effect::Audit {
                    kind: "canary",
                    action: report.state.as_str().to_string(),
                    detail: serde_json::json!({ "outcome": outcome, "report": report }),
                };
                vec![Effect::Baseline(false), Effect::Persist { unsaved: None }, audit]
            }
            Step::Rollback(reason) => {
                warn!(event = "canary_rollback", "{reason}");
                let audit = Effect::Audit {
                    kind: "canary",
                    action: CanaryState::RolledBack.as_str().to_string(),
                    detail: serde_json::json!({ "reason": reason, "report": report }),
                };
                let signal = Event::SloViolation { unit: String::new(), kind: "canary_rollback".into(), slack_ns: 0 };
                vec![audit, Effect::RollBack(reason), Effect::Emit(signal)]
            }
        };
        (true, effects)
    }

    /// The baseline's probes could not load: the canary cannot measure, and
    /// ends undecided (the candidate stays, not promoted).
    pub fn baseline_failed(&mut self, in_baseline: bool, why: &str) -> Vec<Effect> {
        if !in_baseline {
            return Vec::new();
        }
        if let Some(c) = self.run.as_mut() {
            c.expire(&format!("the default scheduler could not be measured ({why})"));
            warn!(event = "canary_done", "canary expired: the baseline could not be measured ({why}); the candidate stays, not promoted");
        }
        vec![Effect::Baseline(false)]
    }
}

#[cfg(test)]
#[path = "tests/canary_run.rs"]
mod tests;
