// SPDX-License-Identifier: GPL-2.0-only
//! Release gates over the bench's statistics (docs/testing.md, "Release
//! gates"): a bench run (report.json) against a stored baseline run of the
//! same bench, setup by setup (scenario × scheduler), metric by metric.
//!
//! A latency metric regresses only when Mann-Whitney finds the candidate's
//! distribution higher at the policy's alpha AND the seeded bootstrap
//! interval of the p99 ratio lies wholly above the allowed ratio; it is
//! inconclusive when the rounds of one run already differ by more than the
//! rerun-variance bound (TCG's noise cannot carry a verdict then), when the
//! two tests disagree, or when there are too few samples. Attachment and
//! lost samples are hard gates. `scx-slo-lab gate` exits 1 only on a
//! regression of a gated metric, 2 on bad input. Not the canary's gate
//! (scx-slod) nor the rollout's (Prometheus): this one reads two bench reports.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::bench_report::micros as us;
use scx_slo_model::stats;

/// Largest report read (a full bench with its samples is a few MB).
pub const MAX_REPORT_BYTES: u64 = 64 << 20;
/// Largest policy file read.
const MAX_POLICY_BYTES: u64 = 64 << 10;
/// Most setups (scenario × scheduler) in one report.
const MAX_SETUPS: usize = 1000;
/// Most rounds of one setup.
const MAX_ROUNDS: usize = 100;
/// Most samples of one metric of one setup, over its rounds.
const MAX_SAMPLES: usize = 1_000_000;
/// A response over this is a deadline miss (the bench's 5 ms deadline).
const DEADLINE_US: f64 = crate::sampler::DEADLINE_NS as f64 / 1e3;

/// What the gate tests, per setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Cells whose scheduler stayed attached (sched_ext setups): hard.
    Attached,
    /// Samples the kernel-side sampler lost (its count since the run
    /// began, read after each cell, so a loss shows on every later setup): hard.
    SamplesDropped,
    /// The scheduler's wakeup-to-run delay, p99 (lower is better).
    QueueP99,
    /// Wakeup to the request done, p99 (lower is better).
    ResponseP99,
    /// Share of responses over the 5 ms deadline.
    Misses,
    /// Batch work against EEVDF's in the same round (higher is better).
    BatchWork,
}

impl Metric {
    pub const ALL: [Metric; 6] =
        [Metric::Attached, Metric::SamplesDropped, Metric::QueueP99, Metric::ResponseP99, Metric::Misses, Metric::BatchWork];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Attached => "attached",
            Metric::SamplesDropped => "samples dropped",
            Metric::QueueP99 => "queue p99",
            Metric::ResponseP99 => "response p99",
            Metric::Misses => "misses",
            Metric::BatchWork => "batch work",
        }
    }
}

/// The gate's settings; every field has a default (see [`Policy::default`]
/// and docs/testing.md, "Release gates", for why each).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Significance level of Mann-Whitney and the proportion test.
    pub alpha: f64,
    /// Confidence level of the bootstrap intervals.
    pub level: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// The bootstrap's seed: the same reports give the same verdicts.
    pub seed: u64,
    /// Fewer samples on either side: inconclusive.
    pub min_samples: usize,
    /// Worst round's p99 / best round's, within one run, above which a
    /// latency verdict is inconclusive (needs two rounds or more).
    pub max_rerun_spread: f64,
    /// A latency p99 regresses when its ratio's interval lies above this.
    pub latency_max_ratio: f64,
    /// Misses regress when the interval of their increase lies above this
    /// (a share: 0.02 is two percentage points).
    pub miss_max_increase: f64,
    /// Batch work regresses when its ratio's interval lies below this.
    pub batch_min_ratio: f64,
    /// Rounds of batch work needed for a verdict (one value per round).
    pub batch_min_rounds: usize,
    /// Schedulers whose regressions fail the gate (the others are shown).
    pub gated_schedulers: Vec<String>,
    /// Metrics whose regressions fail the gate, by name.
    pub gated_metrics: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            alpha: 0.01,
            level: 0.95,
            resamples: 2000,
            seed: 1,
            min_samples: 100,
            max_rerun_spread: 3.0,
            latency_max_ratio: 3.0,
            miss_max_increase: 0.02,
            batch_min_ratio: 0.8,
            batch_min_rounds: 3,
            gated_schedulers: ["scx_slo-partial", "scx_slo-all", "scx_slo-1000"].map(String::from).to_vec(),
            gated_metrics: ["attached", "samples dropped", "queue p99", "response p99", "misses"].map(String::from).to_vec(),
        }
    }
}

impl Policy {
    /// Reads a policy file (JSON; absent fields keep their defaults).
    pub fn load(path: &Path) -> Result<Policy> {
        let text = read_bounded(path, MAX_POLICY_BYTES, "policy")?;
        let policy: Policy = serde_json::from_str(&text).with_context(|| format!("policy {}: not a gate policy", path.display()))?;
        policy.validate().with_context(|| format!("policy {}", path.display()))?;
        Ok(policy)
    }

    /// Every field in its range, every gated metric known.
    pub fn validate(&self) -> Result<()> {
        let within = |name: &str, v: f64, lo: f64, hi: f64| {
            ensure!(v.is_finite() && v > lo && v < hi, "field {name}: {v} is outside ({lo}, {hi})");
            Ok(())
        };
        within("alpha", self.alpha, 0.0, 0.5)?;
        within("level", self.level, 0.5, 1.0)?;
        within("max_rerun_spread", self.max_rerun_spread, 1.0, 1e6)?;
        within("latency_max_ratio", self.latency_max_ratio, 0.0, 1e6)?;
        ensure!(self.latency_max_ratio >= 1.0, "field latency_max_ratio: {} is under 1 (it would call the same code a regression)", self.latency_max_ratio);
        within("miss_max_increase", self.miss_max_increase, -1e-12, 1.0)?;
        within("batch_min_ratio", self.batch_min_ratio, 0.0, 1.0 + 1e-12)?;
        ensure!((100..=100_000).contains(&self.resamples), "field resamples: {} is outside 100..=100000", self.resamples);
        ensure!((2..=MAX_SAMPLES).contains(&self.min_samples), "field min_samples: {} is outside 2..={MAX_SAMPLES}", self.min_samples);
        ensure!((2..=MAX_ROUNDS).contains(&self.batch_min_rounds), "field batch_min_rounds: {} is outside 2..={MAX_ROUNDS}", self.batch_min_rounds);
        for m in &self.gated_metrics {
            ensure!(
                Metric::ALL.iter().any(|k| k.name() == m),
                "field gated_metrics: unknown metric {m:?}; known: {}",
                Metric::ALL.map(Metric::name).join(", ")
            );
        }
        Ok(())
    }

    fn gated(&self, scheduler: &str, metric: Metric) -> bool {
        self.gated_schedulers.iter().any(|s| s == scheduler) && self.gated_metrics.iter().any(|m| m == metric.name())
    }
}

/// One setup of a report, as the gate reads it.
#[derive(Clone, Debug)]
struct Setup {
    scenario: String,
    scheduler: String,
    rounds: usize,
    queue_us: Vec<Vec<f64>>,
    response_us: Vec<Vec<f64>>,
    batch_ratio: Vec<f64>,
    attached_cells: Option<u64>,
    samples_dropped: u64,
}

impl Setup {
    fn name(&self) -> String {
        format!("{} / {}", self.scenario, self.scheduler)
    }
}

/// A bench report, as the gate reads it.
#[derive(Clone, Debug)]
pub struct Run {
    scenario: String,
    about: String,
    setups: Vec<Setup>,
}

fn read_bounded(path: &Path, max: u64, what: &str) -> Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("{what} {}: cannot open", path.display()))?;
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text).with_context(|| format!("{what} {}: not UTF-8 text", path.display()))?;
    ensure!(text.len() as u64 <= max, "{what} {}: larger than {} bytes", path.display(), max);
    Ok(text)
}

impl Run {
    /// Reads a bench report; `role` (baseline or candidate) names it in errors.
    pub fn load(path: &Path, role: &str) -> Result<Run> {
        let text = read_bounded(path, MAX_REPORT_BYTES, role)?;
        let value: Value = serde_json::from_str(&text).with_context(|| format!("{role} {}: not JSON", path.display()))?;
        Run::from_report(&value).with_context(|| format!("{role} {}", path.display()))
    }

    /// The gate's view of a report (bench_report reads the same JSON for the tables).
    pub fn from_report(report: &Value) -> Result<Run> {
        let scenario = report["scenario"].as_str().context("no \"scenario\": not a report of checks/vm/run")?;
        ensure!(scenario == "bench" || scenario == "bench-quick", "scenario {scenario:?} is not a bench (bench or bench-quick)");
        let facts = &report["facts"];
        let results = facts["results"].as_array().context("facts.results: missing (not a bench report)")?;
        ensure!(!results.is_empty(), "facts.results: empty (no setup ran)");
        ensure!(results.len() <= MAX_SETUPS, "facts.results: {} setups, more than {MAX_SETUPS}", results.len());
        let mut setups: Vec<Setup> = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let setup = setup(r).with_context(|| format!("facts.results[{i}]"))?;
            // Reports written before the summary was fixed repeat setups (bench_report::unique_results).
            if !setups.iter().any(|s| s.scenario == setup.scenario && s.scheduler == setup.scheduler) {
                setups.push(setup);
            }
        }
        let about = format!(
            "{scenario}, kernel {}, QEMU {} TCG thread={}, {} s per cell, {} round(s)",
            facts["kernel"].as_str().unwrap_or("?"),
            report["harness"]["qemu"].as_str().unwrap_or("?"),
            report["harness"]["tcg_thread"].as_str().unwrap_or("?"),
            facts["seconds_per_cell"],
            facts["rounds"]
        );
        Ok(Run { scenario: scenario.to_string(), about, setups })
    }
}

fn setup(r: &Value) -> Result<Setup> {
    let scenario = r["scenario"].as_str().context("no scenario")?.to_string();
    let scheduler = r["scheduler"].as_str().context("no scheduler")?.to_string();
    let name = format!("{scenario} / {scheduler}");
    let rounds = r["rounds"].as_u64().with_context(|| format!("{name}: no rounds"))? as usize;
    ensure!((1..=MAX_ROUNDS).contains(&rounds), "{name}: {rounds} rounds, outside 1..={MAX_ROUNDS}");
    let per_round = |key: &str| -> Result<Vec<Vec<f64>>> {
        let rounds_v = r[key].as_array().with_context(|| {
            format!("{name}: no {key} (a report written before the bench kept its samples; rebuild it with scx-slo-lab bench-rebuild)")
        })?;
        ensure!(rounds_v.len() == rounds, "{name}: {key} holds {} rounds, the setup {rounds}", rounds_v.len());
        let mut total = 0;
        let mut out = Vec::with_capacity(rounds);
        for (i, round) in rounds_v.iter().enumerate() {
            let v = round.as_array().with_context(|| format!("{name}: {key}[{i}] is not a list"))?;
            total += v.len();
            ensure!(total <= MAX_SAMPLES, "{name}: {key} holds more than {MAX_SAMPLES} samples");
            let us: Vec<f64> =
                v.iter().map(|x| x.as_u64().map(|ns| ns as f64 / 1e3)).collect::<Option<_>>().with_context(|| format!("{name}: {key}[{i}] holds a value that is not a count of ns"))?;
            out.push(us);
        }
        ensure!(total > 0, "{name}: {key} is empty (no samples in any round)");
        Ok(out)
    };
    let batch_ratio = r["batch_work_ratio_per_round"].as_array().map(|v| v.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
    Ok(Setup {
        queue_us: per_round("queue_ns_per_round")?,
        response_us: per_round("response_ns_per_round")?,
        batch_ratio,
        attached_cells: r["attached_cells"].as_u64(),
        samples_dropped: r["samples_dropped"].as_u64().unwrap_or(0),
        scenario,
        scheduler,
        rounds,
    })
}

/// A verdict on one metric of one setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Regressed,
    Improved,
    Inconclusive,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One line of the gate's table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub metric: Metric,
    pub setup: String,
    pub baseline: String,
    pub candidate: String,
    /// candidate / baseline (a difference for misses), as shown.
    pub change: String,
    pub p: Option<f64>,
    pub ci: Option<(f64, f64)>,
    /// Rerun spread (worst round / best round) of baseline and candidate.
    pub spread: String,
    pub verdict: Verdict,
    /// Why, when not a plain pass.
    pub why: String,
    pub gated: bool,
}

/// The gate's result: every row, and whether a gated metric regressed.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub header: String,
    pub rows: Vec<Row>,
}

impl Outcome {
    pub fn failed(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.gated && r.verdict == Verdict::Regressed).collect()
    }
}

/// Compares `candidate` with `baseline` under `policy`. Errors when the two
/// are not the same bench (scenario or setup list): a gate over different
/// setups would compare nothing with something.
pub fn gate(baseline: &Run, candidate: &Run, policy: &Policy) -> Result<Outcome> {
    policy.validate().context("policy")?;
    if baseline.scenario != candidate.scenario {
        bail!("the baseline is a {} report and the candidate a {} report: gate a run against a baseline of the same bench", baseline.scenario, candidate.scenario);
    }
    let names = |r: &Run| r.setups.iter().map(Setup::name).collect::<BTreeSet<_>>();
    let (b, c) = (names(baseline), names(candidate));
    if b != c {
        bail!(
            "the setups differ (a bench run with other --only/--scenarios?): only in the baseline: [{}]; only in the candidate: [{}]",
            b.difference(&c).cloned().collect::<Vec<_>>().join(", "),
            c.difference(&b).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let mut rows = Vec::new();
    for base in &baseline.setups {
        let Some(cand) = candidate.setups.iter().find(|s| s.name() == base.name()) else { continue };
        let mut push = |mut row: Row| {
            (row.setup, row.gated) = (base.name(), policy.gated(&base.scheduler, row.metric));
            rows.push(row);
        };
        if base.attached_cells.is_some() || cand.attached_cells.is_some() {
            push(attached(base, cand));
        }
        push(dropped(base, cand));
        push(latency(Metric::QueueP99, &base.queue_us, &cand.queue_us, policy));
        push(latency(Metric::ResponseP99, &base.response_us, &cand.response_us, policy));
        push(misses(base, cand, policy));
        if base.scheduler != "eevdf" {
            push(batch(base, cand, policy));
        }
    }
    Ok(Outcome { header: format!("baseline: {}\ncandidate: {}", baseline.about, candidate.about), rows })
}

impl Row {
    /// A row of `metric` before its verdict (inconclusive until decided),
    /// its setup and whether it is gated.
    fn new(metric: Metric, baseline: String, candidate: String, change: String, spread: String) -> Row {
        let (p, ci, verdict) = (None, None, Verdict::Inconclusive);
        Row { metric, setup: String::new(), baseline, candidate, change, p, ci, spread, verdict, why: String::new(), gated: false }
    }

    /// A hard gate's row: no test, no interval.
    fn hard(metric: Metric, baseline: String, candidate: String, (verdict, why): (Verdict, String)) -> Row {
        Row { verdict, why, ..Row::new(metric, baseline, candidate, "–".into(), "–".into()) }
    }
}

fn attached(base: &Setup, cand: &Setup) -> Row {
    let (b, c) = (base.attached_cells.unwrap_or(0), cand.attached_cells.unwrap_or(0));
    let (b_all, c_all) = (b >= base.rounds as u64, c >= cand.rounds as u64);
    let verdict = match (b_all, c_all) {
        (_, false) => (Verdict::Regressed, format!("the scheduler left {} of {} cells", cand.rounds as u64 - c, cand.rounds)),
        (false, true) => (Verdict::Improved, String::new()),
        (true, true) => (Verdict::Pass, String::new()),
    };
    Row::hard(Metric::Attached, format!("{b}/{}", base.rounds), format!("{c}/{}", cand.rounds), verdict)
}

fn dropped(base: &Setup, cand: &Setup) -> Row {
    let (b, c) = (base.samples_dropped, cand.samples_dropped);
    let verdict = match (b, c) {
        (_, 1..) => (Verdict::Regressed, format!("the sampler lost {c} samples by this setup's last cell (counted from the run's start): the latency rows miss them")),
        (1.., 0) => (Verdict::Improved, String::new()),
        (0, 0) => (Verdict::Pass, String::new()),
    };
    Row::hard(Metric::SamplesDropped, b.to_string(), c.to_string(), verdict)
}

/// Worst round's p99 / best round's, or None with fewer than two rounds.
fn rerun_spread(rounds: &[Vec<f64>]) -> Option<f64> {
    let p99: Vec<f64> = rounds.iter().filter(|r| !r.is_empty()).map(|r| stats::percentile(&stats::sorted(r), 0.99)).collect();
    if p99.len() < 2 {
        return None;
    }
    let (lo, hi) = (p99.iter().copied().fold(f64::INFINITY, f64::min), p99.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    Some(if lo > 0.0 { hi / lo } else { f64::INFINITY })
}

fn spread_text(b: Option<f64>, c: Option<f64>) -> String {
    let one = |s: Option<f64>| s.map_or("– (1 round)".to_string(), |x| format!("{x:.2}×"));
    format!("{} / {}", one(b), one(c))
}

/// The verdict from two tests, each given as (significant in that
/// direction, interval past the tolerance in that direction): regressed or
/// improved only when both say so; an interval past the tolerance that the
/// significance test does not back is inconclusive; a significant shift
/// inside the tolerance passes (that is what the tolerance allows).
fn two_tests(worse: (bool, bool), better: (bool, bool), what: &str) -> (Verdict, String) {
    match (worse, better) {
        ((true, true), _) => (Verdict::Regressed, String::new()),
        (_, (true, true)) => (Verdict::Improved, String::new()),
        ((false, true), _) | (_, (false, true)) => {
            (Verdict::Inconclusive, format!("the interval lies past the tolerance ({what}) but the significance test does not back it"))
        }
        _ => (Verdict::Pass, String::new()),
    }
}

fn latency(metric: Metric, base: &[Vec<f64>], cand: &[Vec<f64>], policy: &Policy) -> Row {
    let (b, c) = (stats::sorted(&base.concat()), stats::sorted(&cand.concat()));
    let (b99, c99) = (stats::percentile(&b, 0.99), stats::percentile(&c, 0.99));
    let (sb, sc) = (rerun_spread(base), rerun_spread(cand));
    let change = if b99 > 0.0 { format!("{:.2}×", c99 / b99) } else { "–".into() };
    let mut row = Row::new(metric, us(b99), us(c99), change, spread_text(sb, sc));
    if b.len() < policy.min_samples || c.len() < policy.min_samples {
        row.why = format!("{} and {} samples, under the {} needed", b.len(), c.len(), policy.min_samples);
        return row;
    }
    let mw = stats::mann_whitney(&c, &b);
    let delta = stats::cliffs_delta(&c, &b);
    let ci = stats::bootstrap_ratio_ci(&c, &b, 0.99, policy.level, policy.resamples, policy.seed);
    (row.p, row.ci) = (Some(mw.p), Some(ci));
    if let Some(s) = [sb, sc].into_iter().flatten().find(|s| *s > policy.max_rerun_spread) {
        row.why = format!("rounds of one run differ {s:.2}× at p99, over the {:.2}× bound", policy.max_rerun_spread);
        return row;
    }
    let significant = mw.p < policy.alpha;
    let worse = (significant && delta > 0.0, ci.0 > policy.latency_max_ratio);
    let better = (significant && delta < 0.0, ci.1 < 1.0 / policy.latency_max_ratio);
    (row.verdict, row.why) = two_tests(worse, better, &format!("{:.2}×", policy.latency_max_ratio));
    row
}

fn misses(base: &Setup, cand: &Setup, policy: &Policy) -> Row {
    let count = |rounds: &[Vec<f64>]| {
        let all = rounds.concat();
        (all.iter().filter(|x| **x > DEADLINE_US).count() as u64, all.len() as u64)
    };
    let ((xb, nb), (xc, nc)) = (count(&base.response_us), count(&cand.response_us));
    let share = |x: u64, n: u64| if n > 0 { x as f64 / n as f64 } else { f64::NAN };
    let (pb, pc) = (share(xb, nb), share(xc, nc));
    let (baseline, candidate) = (format!("{:.2}% ({xb}/{nb})", pb * 100.0), format!("{:.2}% ({xc}/{nc})", pc * 100.0));
    let mut row = Row::new(Metric::Misses, baseline, candidate, format!("{:+.2} pp", (pc - pb) * 100.0), "–".into());
    if (nb as usize) < policy.min_samples || (nc as usize) < policy.min_samples {
        row.why = format!("{nb} and {nc} responses, under the {} needed", policy.min_samples);
        return row;
    }
    let p_worse = stats::proportion_higher_p(xc, nc, xb, nb);
    let p_better = stats::proportion_higher_p(xb, nb, xc, nc);
    let ci = stats::bootstrap_proportion_diff_ci(xc, nc, xb, nb, policy.level, policy.resamples, policy.seed);
    (row.p, row.ci) = (Some(p_worse.min(p_better)), Some((ci.0 * 100.0, ci.1 * 100.0)));
    let worse = (p_worse < policy.alpha, ci.0 > policy.miss_max_increase);
    let better = (p_better < policy.alpha, ci.1 < -policy.miss_max_increase);
    (row.verdict, row.why) = two_tests(worse, better, &format!("{:.1} pp", policy.miss_max_increase * 100.0));
    row
}

fn batch(base: &Setup, cand: &Setup, policy: &Policy) -> Row {
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    let (mb, mc) = (mean(&base.batch_ratio), mean(&cand.batch_ratio));
    let change = if mb > 0.0 { format!("{:.2}×", mc / mb) } else { "–".into() };
    let mut row = Row::new(Metric::BatchWork, format!("{mb:.2}× EEVDF"), format!("{mc:.2}× EEVDF"), change, "–".into());
    let (nb, nc) = (base.batch_ratio.len(), cand.batch_ratio.len());
    if nb < policy.batch_min_rounds || nc < policy.batch_min_rounds {
        row.why = format!("{nb} and {nc} rounds (one value each), under the {} needed", policy.batch_min_rounds);
        return row;
    }
    let mw = stats::mann_whitney(&cand.batch_ratio, &base.batch_ratio);
    let delta = stats::cliffs_delta(&cand.batch_ratio, &base.batch_ratio);
    let ci = stats::bootstrap_ratio_ci(&cand.batch_ratio, &base.batch_ratio, 0.5, policy.level, policy.resamples, policy.seed);
    (row.p, row.ci) = (Some(mw.p), Some(ci));
    let significant = mw.p < policy.alpha;
    // Higher is better here.
    let worse = (significant && delta < 0.0, ci.1 < policy.batch_min_ratio);
    let better = (significant && delta > 0.0, ci.0 > 1.0 / policy.batch_min_ratio);
    (row.verdict, row.why) = two_tests(worse, better, &format!("{:.2}×", policy.batch_min_ratio));
    row
}

/// The gate's table (markdown) and its last line.
pub fn table(outcome: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", outcome.header);
    let _ = writeln!(out, "| metric | setup | baseline | candidate | ratio | p | 95% CI | rerun spread (base / cand) | verdict |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for r in &outcome.rows {
        let p = r.p.map_or("–".into(), |p| format!("{p:.1e}"));
        let ci = r.ci.map_or("–".into(), |(lo, hi)| if r.metric == Metric::Misses { format!("[{lo:+.2}, {hi:+.2}] pp") } else { format!("[{lo:.2}, {hi:.2}]") });
        let mut verdict = r.verdict.name().to_string();
        if !r.why.is_empty() {
            let _ = write!(verdict, ": {}", r.why);
        }
        if !r.gated {
            verdict.push_str(" (not gated)");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {p} | {ci} | {} | {verdict} |",
            r.metric.name(),
            r.setup,
            r.baseline,
            r.candidate,
            r.change,
            r.spread
        );
    }
    let count = |v: Verdict| outcome.rows.iter().filter(|r| r.gated && r.verdict == v).count();
    let failed = outcome.failed();
    if failed.is_empty() {
        let _ = writeln!(
            out,
            "\ngate: PASS ({} gated rows: {} pass, {} improved, {} inconclusive, 0 regressed)",
            outcome.rows.iter().filter(|r| r.gated).count(),
            count(Verdict::Pass),
            count(Verdict::Improved),
            count(Verdict::Inconclusive)
        );
    } else {
        let names: Vec<String> = failed.iter().map(|r| format!("{} on {}", r.metric.name(), r.setup)).collect();
        let _ = writeln!(out, "\ngate: FAIL (regressed: {})", names.join("; "));
    }
    out
}

/// `scx-slo-lab gate`: loads both reports and the policy, prints the
/// table; Ok(true) when a gated metric regressed. Every error is bad input.
pub fn run(baseline: &Path, candidate: &Path, policy: Option<&Path>) -> Result<bool> {
    let policy = match policy {
        Some(p) => Policy::load(p)?,
        None => Policy::default(),
    };
    let outcome = gate(&Run::load(baseline, "baseline")?, &Run::load(candidate, "candidate")?, &policy)?;
    print!("{}", table(&outcome));
    Ok(!outcome.failed().is_empty())
}

#[cfg(test)]
#[path = "bench_gate_tests.rs"]
mod tests;
