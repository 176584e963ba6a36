// SPDX-License-Identifier: GPL-2.0-only
//! The canary scenario (docs/tuning.md): the A/B canary on a real sched_ext
//! kernel, twice, under the same load (a latency probe next to 2 CPU hogs
//! per vCPU).
//!
//! 1. A deliberately harmful config: api.service gets 100 µs of budget per
//!    100 ms, may not preempt, and the hogs' batch target has the highest
//!    weight, so once its budget is spent the service waits behind them.
//!    The canary must roll it back within a bounded number of windows: the
//!    breaker opens, the kernel ends on its default scheduler and stays
//!    there, the audit trail records why, and `scx-slo health --canary`
//!    fails naming the rollback.
//! 2. A sound config (the enforce scenario's budget for the same service,
//!    with an SLO so the SLO breaker judges too): the canary must not roll it
//!    back; it promotes it (judged better or same), and `scx-slo health
//!    --canary` then passes.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::daemon::{daemon_status, write_config, Daemon};
use crate::fixtures::{setup_cgroups, API, BATCH};
use crate::harness::{wait_until, Env, Report};
use crate::kernel;
use crate::spawn::Workload;
use scx_slo_api::documents::CanaryState;
use scx_slo_model::Duration as D;

/// One arm's window: long enough for about 1,000 probe jobs (every 10 ms).
const WINDOW_S: u64 = 10;
/// Pairs of windows the harmful config may survive: the first pair should
/// judge it, one more for a pair cut short by the switch or too few samples.
const MAX_WINDOWS_TO_ROLL_BACK: u64 = 2;
/// Promotion after this many good pairs.
const PROMOTE_AFTER: u64 = 2;

fn canary_config(api: Value, batch_weight: u64) -> Value {
    json!({
        "version": 1,
        "mode": "enforce",
        "switch": "all",
        "canary": { "window": format!("{WINDOW_S}s"), "min_samples": 200, "promote_after": PROMOTE_AFTER, "max_windows": 6 },
        "targets": {
            "api.service": api,
            "batch.slice": { "class": "batch", "weight": batch_weight }
        }
    })
}

/// The harmful candidate.
pub fn harmful_config() -> Value {
    let api = json!({ "class": "latency", "budget": { "runtime": "100us", "period": "100ms" }, "deadline": "100ms",
                      "priority": 0, "preemption": "never" });
    canary_config(api, 10_000)
}

/// The sound candidate.
pub fn sound_config() -> Value {
    // An SLO, so the SLO breaker judges each pair too and must not trip.
    let api = json!({ "class": "latency", "budget": { "runtime": "3ms", "period": "10ms" }, "deadline": "8ms",
                      "priority": 800, "preemption": "lower-priority", "slo": { "availability": 0.99 } });
    canary_config(api, 100)
}

/// Runs `scx-slo health --canary` once; (exit code, what it printed).
fn health_canary(env: &Env) -> (Option<i32>, String) {
    let out = std::process::Command::new(env.exe("scx-slo"))
        .args(["health", "--canary", "--status-file", crate::daemon::STATUS_PATH])
        .output();
    match out {
        Ok(o) => (o.status.code(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)).trim().to_string()),
        Err(e) => (None, e.to_string()),
    }
}

fn canary_state() -> Option<scx_slo_api::documents::CanaryReport> {
    daemon_status().and_then(|s| s.canary)
}

/// Starts the daemon on `config` with no persisted state; None (and a
/// failed check) when scx_slo does not attach.
fn start(env: &Env, report: &mut Report, config: &Value, tag: &str) -> Result<Option<(Daemon, Instant)>> {
    let _ = std::fs::remove_file(scx_slo_api::paths::STATE_FILE);
    // The previous daemon's last status must not stand in for this one's.
    let _ = std::fs::remove_file(crate::daemon::STATUS_PATH);
    write_config(config)?;
    let mut daemon = Daemon::start(env, tag)?;
    let start = Instant::now();
    if daemon.wait_enabled(Duration::from_secs(60)).is_none() {
        report.check(format!("canary ({tag}): scx_slo attached"), false, daemon.log_tail());
        return Ok(None);
    }
    Ok(Some((daemon, start)))
}

/// The scenario.
pub fn run(env: &Env) -> Result<Report> {
    let mut report = Report::new("canary");
    setup_cgroups(env)?;
    let total = D::from_secs(300);
    let mut children = Vec::new();
    for i in 0..2 * crate::harness::num_cpus() {
        children.push(Workload::hog().cgroup(env.cg(BATCH)).duration(total).out(format!("/tmp/canary-hog{i}.json")).spawn(env)?);
    }
    let probe = Workload::probe().cgroup(env.cg(API)).period(D::from_ms(10)).work(D::from_us(300)).deadline(D::from_ms(8));
    children.push(probe.duration(total).out("/tmp/canary-probe.json").spawn(env)?);

    harmful(env, &mut report)?;
    sound(env, &mut report)?;

    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    report.facts.insert("window_s".into(), json!(WINDOW_S));
    report.ok = !report.checks.is_empty() && report.checks.iter().all(|c| c.ok);
    Ok(report)
}

fn harmful(env: &Env, report: &mut Report) -> Result<()> {
    let Some((mut daemon, started)) = start(env, report, &harmful_config(), "canary-harmful")? else { return Ok(()) };
    // Each pair takes two windows plus a load and an attach (seconds under TCG).
    let bound = Duration::from_secs(MAX_WINDOWS_TO_ROLL_BACK * (2 * WINDOW_S + 15));
    let rolled = wait_until(bound, || canary_state().is_some_and(|c| c.state == CanaryState::RolledBack));
    let rollback_s = rolled.map(|_| started.elapsed().as_secs_f64());
    let canary = canary_state();
    // After the rollback the kernel stays on its default scheduler.
    std::thread::sleep(Duration::from_secs(5));
    let kernel_state = kernel::sched_ext_state();
    let status = daemon_status();
    report.check(
        format!("canary: a harmful config is rolled back within {MAX_WINDOWS_TO_ROLL_BACK} pairs of windows, and the kernel ends on its default scheduler"),
        rolled.is_some() && kernel_state != "enabled" && status.as_ref().is_some_and(|s| s.breaker.open),
        format!(
            "rolled back after {rollback_s:?} s; sched_ext {kernel_state:?} 5 s later; state {:?}, breaker open {:?}; {:?}",
            status.as_ref().map(|s| s.state.to_string()),
            status.as_ref().map(|s| s.breaker.open),
            canary.as_ref().map(|c| (&c.verdicts, &c.outcome))
        ),
    );
    let mut entries = Vec::new();
    let _ = scx_slo_api::audit::verify_with(std::path::Path::new(scx_slo_api::paths::AUDIT_DIR), |e| entries.push(e.clone()));
    let audited = entries.iter().any(|e| e.kind == "canary" && e.action == CanaryState::RolledBack.as_str());
    let (code, text) = health_canary(env);
    report.check(
        "canary: the rollback is in the audit trail, and scx-slo health --canary fails naming it",
        audited && code == Some(1) && text.contains("rolled"),
        format!("audit entry: {audited}; health --canary exit {code:?}: {text}"),
    );
    report.facts.insert("harmful_rollback_s".into(), json!(rollback_s));
    report.facts.insert("harmful_canary".into(), serde_json::to_value(&canary)?);
    daemon.signal(libc::SIGTERM);
    let _ = daemon.wait_exit(Duration::from_secs(20));
    Ok(())
}

fn sound(env: &Env, report: &mut Report) -> Result<()> {
    let Some((mut daemon, started)) = start(env, report, &sound_config(), "canary-sound")? else { return Ok(()) };
    // At most max_windows pairs; it should promote after PROMOTE_AFTER.
    let bound = Duration::from_secs(6 * (2 * WINDOW_S + 15));
    let decided = wait_until(bound, || canary_state().is_some_and(|c| c.state != CanaryState::Running));
    let decided_s = decided.map(|_| started.elapsed().as_secs_f64());
    let canary = canary_state();
    let promoted = canary.as_ref().is_some_and(|c| c.state == CanaryState::Promoted);
    // Promoted: scx_slo is back and stays attached.
    let attached = wait_until(Duration::from_secs(30), || kernel::sched_ext_state() == "enabled").is_some();
    let (code, text) = health_canary(env);
    report.check(
        "canary: a sound config is promoted (never rolled back), scx_slo stays attached, and scx-slo health --canary passes",
        promoted && attached && code == Some(0),
        format!(
            "decided after {decided_s:?} s: {:?}; sched_ext attached {attached}; health --canary exit {code:?}: {text}",
            canary.as_ref().map(|c| (&c.state, &c.verdicts, c.last.as_ref().and_then(|l| l.p99_ratio), c.last.as_ref().and_then(|l| l.p99_us), c.last.as_ref().and_then(|l| l.miss_ratio)))
        ),
    );
    report.facts.insert("sound_decided_s".into(), json!(decided_s));
    report.facts.insert("sound_canary".into(), serde_json::to_value(&canary)?);
    daemon.signal(libc::SIGTERM);
    let _ = daemon.wait_exit(Duration::from_secs(20));
    Ok(())
}
