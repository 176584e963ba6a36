// SPDX-License-Identifier: GPL-2.0-only
//! Adaptive budgets (docs/tuning.md, In the daemon): the daemon's half of the closed loop. Each
//! latency target with an `adaptive` block has a controller
//! (`scx_slo_model::adaptive`, pure and tuned on a simulated plant); here it
//! is fed and obeyed:
//! - **Measure.** Every `interval` the target's statistics are read from the
//!   scheduler's maps, and the interval's p99 comes from the difference with
//!   the previous read (this interval's, not the session's): of the job
//!   response time (`sli: response`, from the slack histogram and the
//!   deadline misses) or of the run-queue delay (`sli: queue_delay`).
//! - **Decide.** The controller holds (too few jobs, cooldown, on target, at
//!   a clamp) or proposes one runtime.
//! - **Apply.** Through the same admission-checked path as SetBudget: the
//!   proposal becomes a budget override, the whole config is validated
//!   again and the maps are written; a refusal is logged and counted, never
//!   forced, and the controller holds for its cooldown. `dry_run` logs.
//! - **Keep.** The learned budget is a budget override, so it persists
//!   across restarts like an operator's, and the config file's budget is
//!   where it started. The last change (why the budget is what it is) is
//!   persisted next to it.
//!
//! An operator's SetBudget or ClearBudget, or a reload, is the new starting
//! point: the controller starts over from the budget in force, after a
//! cooldown.
//!
//! [`Adaptation`] reads the engine through an [`AdaptiveView`] and returns
//! its changes as an [`Effect::ApplyBudgets`]; the engine's loop applies
//! them and hands each result back ([`Adaptation::outcome`]), which returns
//! the audit record to write.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use scx_slo_api::scrape::{counts_p99, interval_counts};
use scx_slo_api::{AdaptiveDecision, AdaptiveReport, BudgetOverride};
use scx_slo_model::adaptive::{Controller, Hold, Observation, Step};
use scx_slo_bpf::TargetStats;
use scx_slo_model::{histogram, Adaptive, AdaptiveSli, Config, Duration};
use tracing::{info, warn};

use super::effects::{BudgetStep, Effect};
use super::targets::Targets;
use crate::backend::Backend;
use crate::change_limit::take_turns;
use crate::scraper::{Reading, Scraper};

/// What an interval's end reads of a target: its kernel statistics, or its
/// own histogram's latest scrape (`sli: service`).
#[derive(Clone, Debug)]
pub enum Measured {
    /// The scheduler's (or the probes') statistics.
    Kernel(TargetStats),
    /// The scraper's latest reading.
    Service(Reading),
}

/// The interval's p99 of the service's own histogram, in seconds, and its
/// number of requests; `Err` names why there is none (a failed scrape, no
/// new reading, a restarted service). Past the last finite bucket the p99
/// counts as twice that bound: the error must grow with the harm, and the
/// histogram says no more.
pub fn service_p99(base: &Reading, now: &Reading) -> Result<(Option<f64>, u64), String> {
    let now_b = now.result.as_ref().map_err(|e| format!("scrape failed: {e}"))?;
    let base_b = base.result.as_ref().map_err(|e| format!("the interval began with a failed scrape: {e}"))?;
    if now.at <= base.at {
        return Err(format!("no new scrape since the interval began (the scraper reads every {}s)", crate::scraper::SCRAPE_EVERY.as_secs()));
    }
    let counts = interval_counts(base_b, now_b).map_err(|e| e.to_string())?;
    let requests = counts.iter().map(|c| c.1).sum::<f64>() as u64;
    let last_finite = counts.iter().rev().map(|c| c.0).find(|le| le.is_finite()).unwrap_or(0.0);
    let p99 = counts_p99(&counts).map(|p| if p.is_finite() { p } else { 2.0 * last_finite });
    Ok((p99, requests))
}

/// One adaptive target's controller and what it has seen.
#[derive(Clone, Debug)]
struct Adapting {
    block: Adaptive,
    /// The target's relative deadline (the response SLI's reference).
    deadline: Duration,
    controller: Controller,
    /// The reading at the start of this interval; `None` until the
    /// session's first read (a new session's maps start at zero).
    base: Option<Measured>,
    /// When the next interval ends.
    due: Option<Instant>,
    changes: u64,
    refused: u64,
    last: Option<AdaptiveDecision>,
    last_change: Option<AdaptiveDecision>,
}

impl Adapting {
    fn new(block: Adaptive, deadline: Duration, runtime: Duration) -> Adapting {
        Adapting {
            block,
            deadline,
            controller: Controller::for_target(&block, runtime),
            base: None,
            due: None,
            changes: 0,
            refused: 0,
            last: None,
            last_change: None,
        }
    }
}

/// Every adaptive target's controller.
#[derive(Clone, Debug, Default)]
pub struct Adaptation {
    targets: BTreeMap<String, Adapting>,
    /// The last target whose step the host-wide limit let through: the next
    /// pass with more steps than the limit allows starts after it.
    turn: Option<String>,
}

impl Adaptation {
    /// The controllers of `config`'s adaptive targets, with the last changes
    /// a previous run persisted.
    pub fn new(config: &Config, persisted: &BTreeMap<String, AdaptiveDecision>) -> Adaptation {
        let mut a = Adaptation::default();
        a.follow(config);
        for (key, t) in &mut a.targets {
            t.last_change = persisted.get(key).cloned();
        }
        a
    }

    /// Follows a generation that did not come from a controller (a reload,
    /// an operator's SetBudget or ClearBudget): a target whose block changed
    /// gets a new controller, one whose budget changed starts over from it,
    /// and targets without a block are dropped.
    pub fn follow(&mut self, config: &Config) {
        let mut next = BTreeMap::new();
        for t in &config.targets {
            let (Some(block), Some(budget), Some(deadline)) = (t.adaptive, t.budget, t.deadline) else { continue };
            let entry = match self.targets.remove(&t.key) {
                Some(mut a) if a.block == block && a.deadline == deadline => {
                    if a.controller.runtime() != budget.runtime {
                        a.controller.reset(budget.runtime);
                    }
                    a
                }
                Some(old) => Adapting { base: old.base, due: old.due, last: old.last, last_change: old.last_change, ..Adapting::new(block, deadline, budget.runtime) },
                None => Adapting::new(block, deadline, budget.runtime),
            };
            next.insert(t.key.clone(), entry);
        }
        self.targets = next;
    }

    /// A session attached with fresh maps: every interval starts over.
    pub fn session_started(&mut self) {
        // (A scrape is not the session's: still, the interval restarts with
        // the session, so that every interval judges one scheduler.)
        for t in self.targets.values_mut() {
            t.base = None;
            t.due = None;
        }
    }

    /// The last change of each target, to persist.
    pub fn last_changes(&self) -> BTreeMap<String, AdaptiveDecision> {
        self.targets.iter().filter_map(|(k, t)| t.last_change.clone().map(|c| (k.clone(), c))).collect()
    }

    /// Whether `unit`'s budget in force is the one its controller set.
    pub fn set_by_controller(&self, unit: &str, runtime_us: u64) -> bool {
        self.targets.get(unit).and_then(|t| t.last_change.as_ref()).is_some_and(|c| c.to_us == runtime_us)
    }

    /// The report of one target; `config_runtime` is the file's budget.
    pub fn report(&self, unit: &str, config_runtime: Option<Duration>) -> Option<AdaptiveReport> {
        let t = self.targets.get(unit)?;
        Some(AdaptiveReport {
            runtime_us: t.controller.runtime().as_ns() / 1000,
            config_runtime_us: config_runtime.map_or(0, |d| d.as_ns() / 1000),
            objective_us: t.block.objective.as_ns() / 1000,
            dry_run: t.block.dry_run,
            changes: t.changes,
            refused: t.refused,
            last: t.last.clone(),
            last_change: t.last_change.clone(),
        })
    }

    /// The targets whose interval ended by `now` (or that have not read
    /// their first histogram yet).
    fn due(&self, now: Instant) -> Vec<String> {
        self.targets.iter().filter(|(_, t)| t.due.is_none_or(|d| now >= d)).map(|(k, _)| k.clone()).collect()
    }
}

/// The interval's p99 of `sli`, in seconds, and its number of samples.
pub fn interval_p99(sli: AdaptiveSli, deadline: Duration, base: &TargetStats, now: &TargetStats) -> (Option<f64>, u64) {
    match sli {
        AdaptiveSli::QueueDelay => hist_p99_seconds(&hist_delta(&base.rq_delay_hist, &now.rq_delay_hist)),
        // (A service SLI reads the scraper, `service_p99`; on kernel
        // statistics the response time is the nearest.)
        AdaptiveSli::Response | AdaptiveSli::Service => {
            let jobs = now.get(scx_slo_api::Counter::Jobs).wrapping_sub(base.get(scx_slo_api::Counter::Jobs));
            let misses = now.get(scx_slo_api::Counter::DeadlineMisses).wrapping_sub(base.get(scx_slo_api::Counter::DeadlineMisses)).min(jobs);
            let slack = hist_delta(&base.slack_hist, &now.slack_hist);
            (response_p99_seconds(deadline, jobs, misses, &slack), jobs)
        }
    }
}

/// The p99 of the job response time (wakeup to completion) over `jobs`
/// jobs, `misses` of them past `deadline`, the others counted in `slack`
/// (a histogram of the time left at completion, same buckets as the delay
/// histogram), in seconds; `None` without jobs.
///
/// A job's response is `deadline - slack`, so the p99 response is the
/// deadline minus the slack of the job at rank 1% from the smallest slack,
/// misses first. With 1% or more of the jobs missed, the p99 is past the
/// deadline, where the scheduler counts but does not time: it is taken as
/// `deadline × √(miss ratio / 1%)`, the deadline at exactly 1% (continuous
/// with the in-time side) and further past it the more jobs miss: 4% missed
/// counts as twice the deadline, 16% as four times. A heuristic: what the
/// controller needs is an error that grows with the harm. The first form,
/// `deadline × (1 + miss ratio)`, made 20% misses look like a p99 20% past
/// the deadline, and the budget took 31 s (15 intervals) to catch up with a
/// load step in the VM.
pub fn response_p99_seconds(deadline: Duration, jobs: u64, misses: u64, slack: &[u64]) -> Option<f64> {
    if jobs == 0 {
        return None;
    }
    let deadline_s = deadline.as_ns() as f64 / 1e9;
    let tail = 0.01 * jobs as f64;
    if misses as f64 >= tail && misses > 0 {
        return Some(deadline_s * (misses as f64 / tail).sqrt());
    }
    // The slack at rank `tail - misses` from the smallest, among in-time
    // jobs; none counted (the histogram lags the counters): as late as the
    // deadline.
    let want = tail - misses as f64;
    let slack_ns = histogram::value_at_rank(histogram::log2_buckets(slack), want, histogram::Interpolation::Geometric);
    Some(slack_ns.map_or(deadline_s, |ns| (deadline_s - ns / 1e9).max(0.0)))
}

/// `now - base`, bucket by bucket ([`histogram::delta`]: a bucket that went
/// down was reset and counts 0).
pub fn hist_delta(base: &[u64], now: &[u64]) -> Vec<u64> {
    histogram::delta(base, now)
}

/// The p99 of a run-queue delay histogram (intf.h's log2 buckets: bucket
/// `i` ends at [`histogram::upper_ns`]`(i)` and starts at half that, bucket
/// 0 at 0), in seconds, and the number of samples. Interpolated geometrically inside the
/// bucket: a bucket spans a factor of 2, as wide as the controller's whole
/// hold band, so its upper bound alone would make the p99 jump 2× between
/// intervals and the controller chase the buckets. The last bucket is open:
/// a p99 there counts as up to twice its start.
pub fn hist_p99_seconds(hist: &[u64]) -> (Option<f64>, u64) {
    let total: u64 = hist.iter().fold(0u64, |a, n| a.saturating_add(*n));
    (histogram::log2_quantile_ns(hist, 0.99).map(|ns| ns / 1e9), total)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn hold_name(h: Hold) -> &'static str {
    match h {
        Hold::NotEnoughData => "not-enough-data",
        Hold::Cooldown => "cooldown",
        Hold::OnTarget => "on-target",
        Hold::AtLimit => "at-limit",
    }
}

fn us(d: Duration) -> u64 {
    d.as_ns() / 1000
}

/// A decision's record; `outcome` and `why` are filled by the caller.
fn decision(step: &Step, p99: Option<f64>, samples: u64) -> AdaptiveDecision {
    AdaptiveDecision {
        at_unix_s: unix_now(),
        // A p99 is finite and non-negative (the scrape reader refuses NaN
        // and negative bounds); anything else is shown as no p99.
        p99_us: p99.filter(|s| s.is_finite() && *s >= 0.0).map(|s| (s * 1e6).round() as u64),
        samples,
        from_us: us(step.from),
        to_us: us(step.to),
        outcome: String::new(),
        why: String::new(),
    }
}

/// What the adaptive controller reads of the engine, read-only.
pub struct AdaptiveView<'a> {
    /// The applied config.
    pub config: &'a Config,
    /// The targets' cgroups and slots.
    pub targets: &'a Targets,
    /// The targets' own histograms, as last scraped.
    pub scraper: &'a Scraper,
    /// The loaded scheduler.
    pub sched: &'a dyn Backend,
    /// How many changes the host-wide limit allows now, and the limit
    /// itself (changes, window) for the record of a step it holds back.
    pub allowance: (usize, (usize, std::time::Duration)),
}

impl Adaptation {
    /// One pass of the adaptive targets whose interval ended (enforce mode,
    /// from the session's scan). The pass's changes come as one
    /// [`Effect::ApplyBudgets`], applied together as one generation: one map
    /// write per pass, however many targets changed (with 1,000 adaptive
    /// targets, one write each would rewrite the whole target set 1,000
    /// times).
    pub fn pass(&mut self, view: &AdaptiveView<'_>, now: Instant) -> Vec<Effect> {
        let mut steps = Vec::new();
        for unit in self.due(now) {
            let target = view.config.targets.iter().find(|x| x.key == unit);
            let live = match (view.targets.resolved.contains_key(&unit), view.targets.slots.get(&unit), target.and_then(|t| Some((t.adaptive?.sli, t.scrape.as_ref())))) {
                (true, Some(_), Some((AdaptiveSli::Service, Some(scrape)))) => view.scraper.latest(scrape).map(Measured::Service),
                (true, Some(slot), _) => view.sched.target_stats(slot).ok().map(Measured::Kernel),
                _ => None,
            };
            let period_us = target.and_then(|x| x.budget).map_or(0, |b| us(b.period));
            if let Some(step) = self.interval_ended(&unit, live, now, period_us) {
                steps.push(step);
            }
        }
        let (allowance, limit) = view.allowance;
        let (steps, held) = take_turns(&mut self.turn, steps, allowance, |s| s.unit.as_str());
        for step in held {
            self.held_back(step, limit);
        }
        if steps.is_empty() {
            Vec::new()
        } else {
            vec![Effect::ApplyBudgets(steps)]
        }
    }

    /// Records what became of a step (in the log, the controller and the
    /// report) in generation `generation`; true when it was applied, with
    /// the audit record to write.
    pub fn outcome(&mut self, step: BudgetStep, result: Result<String, scx_slo_api::ControlError>, generation: u64) -> (bool, Vec<Effect>) {
        let BudgetStep { unit, budget, mut decision, why } = step;
        let Some(t) = self.targets.get_mut(&unit) else { return (false, Vec::new()) };
        match result {
            Ok(reply) => {
                info!(event = "adaptive_budget", unit = %unit, from_us = decision.from_us, to_us = budget.runtime_us, generation, "{why}");
                decision.outcome = "applied".into();
                decision.why = format!("{why} ({reply})");
                t.controller.applied(Duration::from_us(budget.runtime_us));
                t.changes += 1;
                t.last = Some(decision.clone());
                t.last_change = Some(decision.clone());
                let detail = serde_json::json!({ "unit": unit, "from_us": decision.from_us, "to_us": decision.to_us, "period_us": budget.period_us, "why": decision.why });
                (true, vec![Effect::Audit { kind: "adaptive", action: "budget changed".into(), detail }])
            }
            Err(e) => {
                warn!(event = "adaptive_refused", unit = %unit, from_us = decision.from_us, to_us = budget.runtime_us, error = %e, "budget step refused, not forced: {why}");
                decision.outcome = "refused".into();
                decision.why = format!("{why}: refused, not forced: {e}");
                t.controller.refused();
                t.refused += 1;
                t.last = Some(decision);
                (false, Vec::new())
            }
        }
    }
}

impl Adaptation {
    /// A step the host-wide limit held back: recorded, not applied, and the
    /// controller's budget stays where it was (its next interval decides
    /// again from there).
    fn held_back(&mut self, step: BudgetStep, (changes, window): (usize, std::time::Duration)) {
        let Some(t) = self.targets.get_mut(&step.unit) else { return };
        let BudgetStep { unit, mut decision, why, .. } = step;
        info!(event = "adaptive_rate_limited", unit = %unit, from_us = decision.from_us, to_us = decision.to_us, "budget step held back by the host-wide limit: {why}");
        decision.outcome = "rate-limited".into();
        decision.why = format!(
            "{why}: held back, the host-wide limit of {changes} automatic changes per {} s is reached; the next interval decides again",
            window.as_secs()
        );
        t.last = Some(decision);
    }

    /// The end of `unit`'s interval with `live` statistics (None: the unit
    /// does not run): records a hold or a dry run, or returns the change to
    /// apply.
    fn interval_ended(&mut self, unit: &str, live: Option<Measured>, now: Instant, period_us: u64) -> Option<BudgetStep> {
        let t = self.targets.get_mut(unit)?;
        t.due = Some(now + std::time::Duration::from_nanos(t.block.interval.as_ns()));
        // A unit not running has no interval to judge; its first read
        // starts one.
        let Some(reading) = live else {
            t.base = None;
            return None;
        };
        let base = t.base.replace(reading.clone())?;
        let measured = match (&base, &reading) {
            (Measured::Kernel(b), Measured::Kernel(n)) => Ok(interval_p99(t.block.sli, t.deadline, b, n)),
            (Measured::Service(b), Measured::Service(n)) => service_p99(b, n),
            _ => Err("the SLI's source changed; the next interval starts over".to_string()),
        };
        let (p99, samples) = match measured {
            Ok(m) => m,
            Err(why) => {
                // No p99 to act on: hold, and start the next interval from
                // a reading that is good (a failed one is no base).
                if matches!(&reading, Measured::Service(r) if r.result.is_err()) {
                    t.base = None;
                }
                warn!(event = "adaptive_no_data", unit = %unit, "{why}");
                let runtime = us(t.controller.runtime());
                t.last = Some(AdaptiveDecision { at_unix_s: unix_now(), p99_us: None, samples: 0, from_us: runtime, to_us: runtime, outcome: "no-data".into(), why });
                return None;
            }
        };
        let step = t.controller.step(Observation { p99_seconds: p99.unwrap_or(f64::NAN), samples });
        let mut d = decision(&step, p99, samples);
        let objective_us = us(t.block.objective);
        let sli = match t.block.sli {
            AdaptiveSli::Response => "response",
            AdaptiveSli::QueueDelay => "queue delay",
            AdaptiveSli::Service => "service",
        };
        if let Some(h) = step.hold {
            d.outcome = hold_name(h).into();
            d.why = match h {
                Hold::NotEnoughData => format!("{samples} samples this interval, fewer than min_samples {}", t.block.min_samples),
                Hold::Cooldown => "cooling down after the last change".into(),
                Hold::OnTarget => format!("{sli} p99 {}us is inside the band around the setpoint (objective {objective_us}us)", d.p99_us.unwrap_or(0)),
                Hold::AtLimit => format!("{sli} p99 {}us, but the runtime is at its clamp {}us", d.p99_us.unwrap_or(0), d.from_us),
            };
            t.last = Some(d);
            return None;
        }
        if !step.changes() {
            return None;
        }
        let direction = if step.to > step.from { "raise" } else { "lower" };
        let why = format!(
            "{sli} p99 {}us over {samples} samples against objective {objective_us}us: {direction} runtime {}us -> {}us",
            d.p99_us.unwrap_or(0),
            d.from_us,
            d.to_us
        );
        if t.block.dry_run {
            info!(event = "adaptive_dry_run", unit = %unit, from_us = d.from_us, to_us = d.to_us, "dry run, not applied: {why}");
            d.outcome = "dry-run".into();
            d.why = format!("dry run, not applied: {why}");
            t.last = Some(d);
            return None;
        }
        let budget = BudgetOverride { runtime_us: d.to_us, period_us };
        Some(BudgetStep { unit: unit.to_string(), budget, decision: d, why })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_the_difference_of_two_reads() {
        assert_eq!(hist_delta(&[1, 2, 3], &[1, 5, 3, 7]), vec![0, 3, 0, 7]);
        // A bucket that went down was reset, not wrapped: it counts nothing.
        assert_eq!(hist_delta(&[u64::MAX], &[1]), vec![0]);
    }

    #[test]
    fn the_p99_is_interpolated_inside_its_bucket() {
        assert_eq!(hist_p99_seconds(&[0; 8]), (None, 0));
        // 100 jobs, all in bucket 3 ([4.096, 8.192) us): the p99 is 99% of
        // the way, in the log, across it.
        let upper = histogram::upper_ns(3) as f64;
        let mut h = vec![0u64; 16];
        h[3] = 100;
        let (p99, n) = hist_p99_seconds(&h);
        assert_eq!(n, 100);
        let want = upper / 2.0 * 0.99f64.exp2() / 1e9;
        assert!((p99.unwrap() - want).abs() < 1e-15, "{p99:?} vs {want}");
        // 98 fast jobs and 2 slow ones: the p99 is in the slow bucket.
        let mut h = vec![0u64; 16];
        h[3] = 98;
        h[9] = 2;
        let p99 = hist_p99_seconds(&h).0.unwrap() * 1e9;
        let slow = histogram::upper_ns(9) as f64;
        assert!((slow / 2.0..slow).contains(&p99), "{p99}");
        // More samples in the slow bucket move the estimate up inside it
        // (the bucket's upper bound would not move).
        h[3] = 95;
        h[9] = 5;
        assert!(hist_p99_seconds(&h).0.unwrap() * 1e9 > p99);
    }

    #[test]
    fn the_response_p99_is_the_deadline_minus_the_one_percent_smallest_slack() {
        let deadline = Duration::from_ms(5);
        assert_eq!(response_p99_seconds(deadline, 0, 0, &[]), None);
        // 1% or more missed: past the deadline, growing with the misses.
        assert_eq!(response_p99_seconds(deadline, 100, 1, &[0; 16]), Some(0.005));
        assert_eq!(response_p99_seconds(deadline, 100, 4, &[0; 16]), Some(0.010));
        assert_eq!(response_p99_seconds(deadline, 1000, 160, &[0; 16]), Some(0.020));
        // No misses, 1,000 jobs: 10 with slack in bucket 10 (about 0.5-1 ms
        // left), the rest with lots of slack (bucket 11, 1-2 ms): the p99
        // response is 5 ms minus a slack inside bucket 10, at its top.
        let mut slack = vec![0u64; 16];
        slack[10] = 10;
        slack[11] = 990;
        let p99 = response_p99_seconds(deadline, 1000, 0, &slack).unwrap();
        let (lo, hi) = (histogram::upper_ns(10) as f64 / 2.0, histogram::upper_ns(10) as f64);
        assert!((0.005 - hi / 1e9..=0.005 - lo / 1e9).contains(&p99), "{p99}");
        // Fewer than 1% missed: the misses are the smallest slack, so the
        // rank moves down into the in-time jobs by as many.
        let with_misses = response_p99_seconds(deadline, 1000, 5, &slack).unwrap();
        assert!(with_misses >= p99, "{with_misses} < {p99}");
        // More jobs with little slack raise the p99.
        slack[10] = 100;
        slack[11] = 900;
        assert!(response_p99_seconds(deadline, 1000, 0, &slack).unwrap() > p99 - 1e-12);
        slack[4] = 20;
        assert!(response_p99_seconds(deadline, 1020, 0, &slack).unwrap() > 0.0049, "slack under 16 us: about the deadline");
    }
}
