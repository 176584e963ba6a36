// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo rollout PLAN`: stage by stage, deploy the stage's nodes with
//! deploy-rs (or the plan's command), watch its gates in Prometheus for the
//! soak time, then proceed, or roll the stage back and stop, saying why.
//! Every decision goes into the rollout log with the queries and their
//! answers (docs/operations.md, "Upgrades and rollbacks with deploy-rs").
//!
//! Exit codes (scx_slo_api::exit::cli): OK every stage proceeded; REFUSED
//! a stage was stopped (and rolled back); USAGE the plan or the log is
//! wrong, or the log could not be written.

mod commands;
mod gates;
mod journal;
mod plan;
mod prom;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use gates::{Baseline, Check, Times};
use journal::{Entry, Journal, Ran};
use plan::{Plan, ResolvedStage};
use prom::Prometheus;

/// The default log of a plan: beside it, `PLAN.log.jsonl`.
pub fn default_log(plan: &Path) -> PathBuf {
    let mut name = plan.file_name().unwrap_or_default().to_os_string();
    name.push(".log.jsonl");
    plan.with_file_name(name)
}

fn instances(plan: &Plan, nodes: &[String]) -> Vec<String> {
    nodes.iter().filter_map(|n| plan.nodes.get(n).cloned()).collect()
}

fn secs(d: scx_slo_model::Duration) -> Duration {
    Duration::from_nanos(d.as_ns())
}

/// The command's entry point.
pub fn run(plan_path: &Path, log: Option<&Path>, dry_run: bool) -> u8 {
    match run_inner(plan_path, log, dry_run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scx-slo rollout: {e:#}");
            scx_slo_api::exit::cli::USAGE
        }
    }
}

fn run_inner(plan_path: &Path, log: Option<&Path>, dry_run: bool) -> Result<u8> {
    let (plan, stages, sha) = plan::load(plan_path)?;
    if dry_run {
        print_plan(&plan, &stages);
        return Ok(scx_slo_api::exit::cli::OK);
    }
    let prometheus = Prometheus::new(&plan.prometheus.url, secs(plan.prometheus.timeout))?;
    let log_path = log.map_or_else(|| default_log(plan_path), Path::to_path_buf);
    let mut journal = Journal::open(&log_path, &sha)?;
    let id = journal.rollout_id.clone();
    if let Some(name) = journal.rolling_back.clone() {
        // The machine died after the decision to roll back: finish that, never deploy again.
        let stage = stages.iter().find(|s| s.name == name).ok_or_else(|| anyhow::anyhow!("the log's stopped stage {name:?} is not in the plan"))?;
        outln!("rollout {id}: resuming the rollback of stage {name}");
        let why = roll_back(&plan, stage, &stage.nodes, &mut journal, vec!["the rollback was decided before this run (see the log)".into()])?;
        let summary = format!("stopped at stage {name}: {why}");
        journal.write(&Entry::Finished { rollout_id: &id, time: prom::now(), outcome: "stopped", summary: &summary })?;
        outln!("rollout {id}: {summary}");
        return Ok(scx_slo_api::exit::cli::REFUSED);
    }
    let first = stages.iter().position(|s| !journal.done.contains(&s.name));
    let Some(first) = first else {
        // Every stage proceeded but the machine died before the last line.
        let summary = format!("every stage proceeded ({})", journal.done.join(", "));
        journal.write(&Entry::Finished { rollout_id: &id, time: prom::now(), outcome: "completed", summary: &summary })?;
        outln!("rollout {id}: {summary}");
        return Ok(scx_slo_api::exit::cli::OK);
    };
    if journal.resumed {
        outln!("rollout {id}: resuming at stage {} ({} stage(s) already proceeded)", stages[first].name, first);
        journal.write(&Entry::Resume { rollout_id: &id, time: prom::now(), from_stage: &stages[first].name })?;
    } else {
        outln!("rollout {id}: {} ({} stages), log {}", plan.name, stages.len(), log_path.display());
        let names = stages.iter().map(|s| s.name.as_str()).collect();
        journal.write(&Entry::Start { rollout_id: &id, plan: &plan.name, plan_sha256: &sha, time: prom::now(), stages: names })?;
    }
    for stage in &stages[first..] {
        let outcome = run_stage(&plan, stage, &prometheus, &mut journal).with_context(|| {
            format!("stage {}: its nodes may run the release now; re-running with the same log resumes at this stage", stage.name)
        })?;
        if let Some(why) = outcome {
            let summary = format!("stopped at stage {}: {why}", stage.name);
            journal.write(&Entry::Finished { rollout_id: &id, time: prom::now(), outcome: "stopped", summary: &summary })?;
            outln!("rollout {id}: {summary}");
            return Ok(scx_slo_api::exit::cli::REFUSED);
        }
    }
    let summary = format!("every stage proceeded ({})", stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "));
    journal.write(&Entry::Finished { rollout_id: &id, time: prom::now(), outcome: "completed", summary: &summary })?;
    outln!("rollout {id}: {summary}");
    Ok(scx_slo_api::exit::cli::OK)
}

/// The stage's baseline: the one its `deploy_start` line logged when the
/// stage is resumed, else asked now and logged before anything is deployed.
/// `Ok(None)` when it cannot be read: the stage is not deployed.
///
/// A log written before the baseline was logged has a `deployed` line and
/// no `deploy_start` for a stage caught mid-soak: its hosts may run the
/// release already, so the baseline asked now may be the release itself.
/// That is said, and the comparison with the hosts not yet rolled out
/// still holds; the baseline asked now is logged, and a later resume
/// reuses it.
fn stage_baseline(plan: &Plan, stage: &ResolvedStage, p: &Prometheus, journal: &mut Journal) -> Result<Result<Baseline, String>> {
    if let Some((_, b)) = journal.baseline.take().filter(|(s, _)| *s == stage.name) {
        outln!("stage {}: resumed; its gates compare with the baseline logged before its first deploy", stage.name);
        return Ok(Ok(b));
    }
    if journal.deployed.contains(&stage.name) {
        outln!(
            "stage {}: resumed from a log without its baseline: its hosts may run the release already, so \"before\" is now and may not show a regression; the hosts not yet rolled out are still compared",
            stage.name
        );
    }
    let label = plan.prometheus.instance_label.as_str();
    let base = match gates::baseline(p, label, stage, &instances(plan, &stage.nodes), prom::now(), secs(plan.prometheus.step)) {
        Ok(b) => b,
        Err(e) => return Ok(Err(format!("the gates' baseline could not be read, so nothing was deployed: {e:#}"))),
    };
    let id = journal.rollout_id.clone();
    journal.write(&Entry::DeployStart { rollout_id: &id, stage: &stage.name, time: base.time, baseline: &base })?;
    Ok(Ok(base))
}

/// One stage: deploy, soak, decide; `Some(why)` when it was stopped.
fn run_stage(plan: &Plan, stage: &ResolvedStage, p: &Prometheus, journal: &mut Journal) -> Result<Option<String>> {
    let id = journal.rollout_id.clone();
    let base = match stage_baseline(plan, stage, p, journal)? {
        Ok(b) => b,
        Err(why) => return Ok(Some(why)),
    };
    outln!("stage {} ({}): deploying {}", stage.index + 1, stage.name, stage.nodes.join(", "));
    let mut ran: Vec<Ran> = Vec::new();
    for node in &stage.nodes {
        let r = commands::run(node, &plan::expand(&plan.deploy, plan, node, &id), &id, secs(plan.command_timeout));
        let ok = r.outcome == "ok";
        ran.push(r);
        if !ok {
            break;
        }
    }
    journal.write(&Entry::Deployed { rollout_id: &id, stage: &stage.name, time: prom::now(), commands: &ran })?;
    let (checks, reasons) = if let Some(bad) = ran.iter().find(|r| r.outcome != "ok") {
        let why = format!("deploying {} {} (exit code {:?})", bad.node, bad.outcome, bad.exit_code);
        (Vec::new(), vec![why])
    } else {
        let t = Times { soak_start: prom::now(), now: 0.0 };
        soak(plan, stage, p, &base, t)
    };
    let proceed = reasons.is_empty();
    let decision = if proceed { "proceed" } else { "rollback" };
    let shown: Vec<String> = if proceed { checks.iter().flat_map(|c| c.findings.clone()).collect() } else { reasons.clone() };
    journal.write(&Entry::Decision { rollout_id: &id, stage: &stage.name, time: prom::now(), decision, reasons: &shown, checks: &checks })?;
    for line in &shown {
        outln!("  {line}");
    }
    if proceed {
        outln!("stage {}: proceed", stage.name);
        return Ok(None);
    }
    let nodes: Vec<String> = ran.iter().map(|r| r.node.clone()).collect();
    roll_back(plan, stage, &nodes, journal, reasons).map(Some)
}

/// Runs the rollback command on `nodes` of `stage` and logs it; returns
/// the stage's reasons with what the rollback did.
fn roll_back(plan: &Plan, stage: &ResolvedStage, nodes: &[String], journal: &mut Journal, reasons: Vec<String>) -> Result<String> {
    let id = journal.rollout_id.clone();
    outln!("stage {}: rolling back {}", stage.name, nodes.join(", "));
    let back: Vec<Ran> = nodes.iter().map(|n| commands::run(n, &plan::expand(&plan.rollback, plan, n, &id), &id, secs(plan.command_timeout))).collect();
    journal.write(&Entry::RolledBack { rollout_id: &id, stage: &stage.name, time: prom::now(), commands: &back })?;
    let failed: Vec<&str> = back.iter().filter(|r| r.outcome != "ok").map(|r| r.node.as_str()).collect();
    let mut why = reasons.join("; ");
    if failed.is_empty() {
        why.push_str(&format!("; rolled back {} node(s) to {}", back.len(), plan.rollback_flake));
    } else {
        why.push_str(&format!("; the rollback FAILED on {}: those nodes may still run the release", failed.join(", ")));
    }
    Ok(why)
}

/// A gate that could not be read fails: an unverified stage does not proceed.
fn checked(gate: &'static str, r: Result<Check>) -> Check {
    r.unwrap_or_else(|e| Check { gate, pass: false, findings: vec![format!("{gate}: could not be read: {e:#}")], asked: Vec::new() })
}

/// Watches a stage for its soak time: the alert gates every `poll` (a
/// failure ends the soak early), every gate at the end. Returns the last
/// checks and the reasons to roll back (none: proceed).
fn soak(plan: &Plan, stage: &ResolvedStage, p: &Prometheus, base: &Baseline, mut t: Times) -> (Vec<Check>, Vec<String>) {
    let label = plan.prometheus.instance_label.as_str();
    let mine = instances(plan, &stage.nodes);
    let later = instances(plan, &stage.later);
    let q = gates::queries(label, &mine, &stage.gates, 1);
    let end = t.soak_start + secs(stage.soak).as_secs_f64();
    let alert_checks = |t: Times| {
        vec![
            checked("up", gates::up(p, label, stage, &mine, t)),
            checked("daemon_alerts", gates::alerts(p, "daemon_alerts", &q.daemon_alerts, &["alertname", label], &base.daemon_alerts, base.time, t)),
            checked("burn_alerts", gates::alerts(p, "burn_alerts", &q.burn_alerts, &["alertname", "unit"], &base.burn_alerts, base.time, t)),
        ]
    };
    let failing = |checks: &[Check]| -> Vec<String> { checks.iter().filter(|c| !c.pass).flat_map(|c| c.findings.iter().map(move |f| format!("{}: {f}", c.gate))).collect() };
    loop {
        let left = end - prom::now();
        if left <= 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_secs_f64(left.min(secs(plan.poll).as_secs_f64())));
        t.now = prom::now();
        let checks = alert_checks(t);
        let bad = failing(&checks);
        if !bad.is_empty() {
            return (checks, bad);
        }
    }
    t.now = prom::now();
    let mut checks = alert_checks(t);
    checks.push(checked("miss_ratio", gates::miss_ratio(p, label, stage, &mine, &later, base, t)));
    checks.push(checked("latency", gates::latency(p, label, stage, &mine, &later, base, t)));
    let bad = failing(&checks);
    (checks, bad)
}

/// `--dry-run`: the stages, the commands and the queries, nothing run.
fn print_plan(plan: &Plan, stages: &[ResolvedStage]) {
    outln!("plan {:?}: {} stage(s), {} node(s), Prometheus {}", plan.name, stages.len(), plan.nodes.len(), plan.prometheus.url);
    outln!("deploys {} and rolls back to {}; each command at most {}", plan.flake, plan.rollback_flake, plan.command_timeout);
    let label = plan.prometheus.instance_label.as_str();
    for s in stages {
        outln!("\nstage {} {:?}: {} node(s), soak {}", s.index + 1, s.name, s.nodes.len(), s.soak);
        for node in &s.nodes {
            outln!("  deploy   {}", plan::expand(&plan.deploy, plan, node, "<rollout-id>").join(" "));
            outln!("  rollback {}", plan::expand(&plan.rollback, plan, node, "<rollout-id>").join(" "));
        }
        let soak_s = s.soak.as_ns() / 1_000_000_000;
        let q = gates::queries(label, &instances(plan, &s.nodes), &s.gates, soak_s);
        outln!("  every {} during the soak, at its start and now (new ones fail):", plan.poll);
        outln!("    {}", q.up);
        outln!("    {}", q.daemon_alerts);
        outln!("    {}", q.burn_alerts);
        outln!("  at the soak's end, against the same hosts before the stage:");
        outln!("    {}\n    {}\n    {}", q.misses, q.jobs, q.latency);
        if s.later.is_empty() {
            outln!("  and no hosts are left to compare with");
        } else {
            let r = gates::queries(label, &instances(plan, &s.later), &s.gates, soak_s);
            outln!("  and against the {} host(s) not yet rolled out:", s.later.len());
            outln!("    {}\n    {}\n    {}", r.misses, r.jobs, r.latency);
        }
        let g = &s.gates;
        outln!(
            "  fails on: a new alert; a unit's miss ratio over the comparisons' by more than {} (p < {}); its p{} latency over by more than {}% (p < {})",
            g.miss_ratio_increase,
            g.alpha,
            g.latency_quantile * 100.0,
            g.latency_regression_pct,
            g.alpha
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Prometheus where the stage's unit misses 500 of 1,000 jobs
    /// whenever it is asked, its host answers scrapes and no alert is on.
    fn prometheus() -> String {
        gates::tests::fake_url(|q| {
            if q.contains("query_range") {
                return ("matrix", String::new());
            }
            let unit = |v: u32| format!(r#"{{"metric":{{"unit":"api.service"}},"value":[1,"{v}"]}}"#);
            let v = if q.contains("query=up") {
                r#"{"metric":{"instance":"a:1"},"value":[1,"1"]}"#.to_string()
            } else if q.contains("deadline_misses") {
                unit(500)
            } else if q.contains("jobs_total") {
                unit(1000)
            } else {
                String::new()
            };
            ("vector", v)
        })
    }

    /// A one-stage plan in `dir` on `url`, its deploy and rollback doing
    /// nothing; its path, and a log of it begun (start, then `lines`).
    fn resumed(dir: &Path, url: &str, lines: &[String]) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        let plan = dir.join("plan.json");
        std::fs::write(
            &plan,
            format!(
                r#"{{"version":1,"name":"t","flake":".","rollback_flake":"o","deploy":["true","{{node}}"],"rollback":["true","{{node}}"],"command_timeout":"10s",
                "prometheus":{{"url":"{url}","step":"1s"}},"nodes":{{"c":"a:1"}},"poll":"1s",
                "stages":[{{"name":"canary","nodes":["c"],"soak":"1s"}}]}}"#
            ),
        )
        .unwrap();
        let sha = plan::load(&plan).unwrap().2;
        let mut log = format!(r#"{{"event":"start","rollout_id":"ro-t","plan":"t","plan_sha256":"{sha}","time":1.0,"stages":["canary"]}}"#);
        for l in lines {
            log.push('\n');
            log.push_str(l);
        }
        log.push('\n');
        let path = dir.join("log.jsonl");
        std::fs::write(&path, log).unwrap();
        (plan, path)
    }

    fn events(log: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    const DEPLOYED: &str = r#"{"event":"deployed","rollout_id":"ro-t","stage":"canary","time":1001.0,"commands":[]}"#;

    #[test]
    fn a_resumed_stage_compares_with_the_baseline_logged_before_its_deploy() {
        // Before the deploy the unit missed none of 1,000 jobs; the
        // machine died mid-soak, with the release (500 of 1,000) on the
        // stage. Asking "before" again now would compare the release with
        // itself and pass.
        let dir = std::env::temp_dir().join(format!("scx-slo-rollout-resume-{}", std::process::id()));
        let unit = |v: u32| format!(r#"{{"labels":{{"unit":"api.service"}},"points":[[1000.0,"{v}"]]}}"#);
        let baseline = format!(
            r#"{{"time":1000.0,"soak_s":1,"step_s":1.0,"daemon_alerts":[],"burn_alerts":[],"misses":[{}],"jobs":[{}],"latency":[]}}"#,
            unit(0),
            unit(1000)
        );
        let start = format!(r#"{{"event":"deploy_start","rollout_id":"ro-t","stage":"canary","time":1000.0,"baseline":{baseline}}}"#);
        let (plan, log) = resumed(&dir, &prometheus(), &[start, DEPLOYED.to_string()]);
        assert_eq!(run_inner(&plan, Some(&log), false).unwrap(), scx_slo_api::exit::cli::REFUSED);
        let lines = events(&log);
        assert_eq!(lines.iter().filter(|l| l["event"] == "deploy_start").count(), 1, "the baseline was asked again");
        let decision = lines.iter().find(|l| l["event"] == "decision").unwrap();
        assert_eq!(decision["decision"], "rollback", "{decision}");
        assert!(decision["reasons"][0].as_str().unwrap().contains("miss ratio 0.5000 (500/1000) on the stage; before it 0.0000 (0/1000"), "{decision}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_log_without_a_baseline_resumes_with_one_asked_at_the_resume() {
        // A log of a version that did not write deploy_start: "before" is
        // asked now (the release may be on the stage) and logged.
        let dir = std::env::temp_dir().join(format!("scx-slo-rollout-old-log-{}", std::process::id()));
        let (plan, log) = resumed(&dir, &prometheus(), &[DEPLOYED.to_string()]);
        assert_eq!(run_inner(&plan, Some(&log), false).unwrap(), scx_slo_api::exit::cli::OK);
        let lines = events(&log);
        let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(events, ["start", "deployed", "resume", "deploy_start", "deployed", "decision", "finished"]);
        assert_eq!(lines[3]["baseline"]["misses"][0]["points"][0][1], "500");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
