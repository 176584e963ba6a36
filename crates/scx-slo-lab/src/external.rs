// SPDX-License-Identifier: GPL-2.0-only
//! What users get, measured with programs nobody here wrote inside the
//! latency target (a workload: rt-tests' cyclictest, nginx under wrk, or
//! redis-server under redis-benchmark, each measured by its own tool; see
//! [`crate::external_workloads`]), next to a batch side of real programs
//! (stress-ng's CPU stressors) in the batch target, all in one VM boot.
//!
//! Every setup a user would pick instead runs in the same boot: EEVDF as it
//! is, EEVDF with the unit's cpu.weight at 10000 (what advisory mode does),
//! the tool's threads as SCHED_FIFO 50 (what `chrt -f 50` gives), and the scx
//! peers found next to the lab. scx-slo runs in both modes with two budgets:
//! the one `scx-slo tune` recommends from a profile of the same workload
//! under EEVDF (taken first, in this boot), and half of it (the floor:
//! declaring an SLO with too small a budget must leave the service no worse
//! than undeclared).
//!
//! The tool's own latency (timer expiry to running, its histogram) and the
//! scheduler's share of it (waking to running, from the kernel: the bench's
//! observe sampler) are reported for each setup, pooled over rounds, with
//! the batch side's work; the verdicts are in [`verdicts`]. Checks fail only
//! when a setup could not run, scx_slo was ejected, or the tool lost
//! measurement cycles under scx_slo: speeds are reported, not asserted.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::daemon::{write_config, Daemon};
use crate::fixtures::{API, BATCH};
use crate::harness::{num_cpus, uname, wait_until, Env, Report};
use crate::kernel;
use crate::sampler::WakeSampler;
use crate::spawn::start_in_cgroup;
pub(crate) use crate::external_report::Summary;
pub(crate) use crate::external_verdicts::{cycle_checks, samples_kept, verdicts};
pub(crate) use crate::external_tools::{parse_bogo_ops, ToolRun};
pub(crate) use crate::external_workloads::Workload;
use crate::external_workloads::{INTERVAL_US, LOADGEN};
use scx_slo_model::Duration as SloDuration;
/// The latency target's deadline and priority (the shape users reported).
const DEADLINE: &str = "500us";
const PRIORITY: u16 = 900;

/// One way to run the service.
#[derive(Clone, Debug, PartialEq)]
enum Setup {
    Eevdf,
    /// EEVDF, the unit's cpu.weight at 10000.
    Weight,
    /// EEVDF, the tool's threads SCHED_FIFO 50.
    Fifo,
    /// The kernel's own EDF: each serving thread SCHED_DEADLINE with tune's
    /// runtime, the declared deadline and the 1 ms period, where admission
    /// control accepts it.
    Deadline { runtime: SloDuration, deadline: SloDuration },
    /// scx_slo in `switch` mode with `runtime` per 1 ms; with `adaptive`,
    /// the budget controller starts there and steers the queue delay's p99
    /// under that objective.
    Slo { switch: &'static str, budget: &'static str, runtime: SloDuration, deadline: SloDuration, adaptive: Option<SloDuration> },
    /// A peer sched_ext scheduler, no configuration.
    Peer(&'static str),
}

impl Setup {
    fn name(&self) -> String {
        match self {
            Setup::Eevdf => "eevdf".into(),
            Setup::Weight => "eevdf-weight10000".into(),
            Setup::Fifo => "eevdf-fifo50".into(),
            Setup::Deadline { .. } => "sched-deadline".into(),
            Setup::Slo { switch, budget, .. } => format!("scx_slo-{switch}-{budget}"),
            Setup::Peer(p) => p.to_string(),
        }
    }

    fn is_baseline(&self) -> bool {
        !matches!(self, Setup::Slo { .. })
    }
}

/// Starts the setup's scheduler; the returned daemon (if any) is stopped by
/// [`stop`].
fn start(env: &Env, setup: &Setup, tag: &str) -> Result<Option<Running>> {
    match setup {
        Setup::Eevdf | Setup::Fifo | Setup::Deadline { .. } => Ok(Some(Running::None)),
        Setup::Weight => {
            std::fs::write(env.cg(API).join("cpu.weight"), "10000").context("setting the unit's cpu.weight")?;
            Ok(Some(Running::Weight))
        }
        Setup::Slo { switch, runtime, deadline, adaptive, .. } => {
            write_config(&slo_config(switch, *runtime, *deadline, *adaptive))?;
            let mut d = Daemon::start_with(env, tag, &["--metrics-listen", "off"])?;
            if d.wait_enabled(Duration::from_secs(60)).is_none() {
                anyhow::bail!("scx_slo did not attach: {}", d.log_tail());
            }
            Ok(Some(Running::Slo(d)))
        }
        Setup::Peer(p) => {
            let exe = env.exe(p);
            if !exe.exists() {
                return Ok(None);
            }
            let child = Command::new(&exe).stdout(Stdio::null()).stderr(Stdio::null()).spawn().with_context(|| format!("starting {p}"))?;
            let running = Running::Peer(child);
            if wait_until(Duration::from_secs(60), || kernel::sched_ext_state() == "enabled").is_none() {
                stop(env, running);
                anyhow::bail!("{p} did not attach");
            }
            Ok(Some(running))
        }
    }
}

enum Running {
    None,
    Weight,
    Slo(Daemon),
    Peer(Child),
}

fn stop(env: &Env, running: Running) {
    match running {
        Running::None => return,
        Running::Weight => {
            let _ = std::fs::write(env.cg(API).join("cpu.weight"), "100");
            return;
        }
        Running::Slo(mut d) => {
            d.signal(libc::SIGTERM);
            d.wait_exit(Duration::from_secs(20));
        }
        Running::Peer(mut c) => {
            // SAFETY: kill(2) on our child.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            if wait_until(Duration::from_secs(10), || matches!(c.try_wait(), Ok(Some(_)))).is_none() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
    wait_until(Duration::from_secs(10), || kernel::sched_ext_state() != "enabled");
}

/// scx-slo's config: the tool's cgroup a latency target with `runtime` per
/// 1 ms, the batch side a batch target. With an `adaptive` objective the
/// controller steers the queue delay's p99 under it every second, up to
/// the deadline.
fn slo_config(switch: &str, runtime: SloDuration, deadline: SloDuration, adaptive: Option<SloDuration>) -> Value {
    let mut api = json!({ "class": "latency", "budget": { "runtime": runtime.to_string(), "period": SloDuration::from_us(INTERVAL_US).to_string() },
                          "deadline": deadline.to_string(), "priority": PRIORITY, "preemption": "lower-priority" });
    if let Some(objective) = adaptive {
        api["adaptive"] = json!({ "sli": "queue_delay", "objective": objective.to_string(), "interval": "1s", "max_step": 2.0, "cooldown": 0,
                                  "max_runtime": deadline.to_string() });
    }
    json!({ "version": 1, "mode": "enforce", "switch": switch, "targets": { "api.service": api, "batch.slice": { "class": "batch", "weight": 100 } } })
}

/// The batch side: stress-ng's CPU stressors, two per CPU, for `secs`.
fn spawn_batch(env: &Env, secs: u64, out: &Path) -> Result<Child> {
    let mut cmd = Command::new(env.exe("stress-ng"));
    cmd.args(["--cpu", &(2 * num_cpus()).to_string(), "--timeout", &format!("{secs}s"), "--metrics-brief"]);
    cmd.args(["--yaml", &out.display().to_string()]).stdout(Stdio::null()).stderr(Stdio::null());
    start_in_cgroup(&mut cmd, &env.cg(BATCH))?;
    cmd.spawn().context("starting stress-ng (the batch side)")
}

/// One setup, one round of `workload`.
fn cell(env: &Env, workload: Workload, setup: &Setup, round: usize, running: &Running, sampler: &WakeSampler) -> Result<Value> {
    let tag = format!("ext-{}-{}-{round}", workload.name(), setup.name());
    let batch_out = format!("/tmp/{tag}-stress.yaml");
    let watch = matches!(running, Running::Slo(_) | Running::Peer(_)).then(|| kernel::AttachWatch::start(&kernel::root_ops()));
    let (_, _, dropped_before) = sampler.take()?;
    let cpu_before = cpu_usage_us(env);
    let mut batch = spawn_batch(env, env.seconds + 1, Path::new(&batch_out))?;
    // The batch side first: the tool measures a loaded host from its first cycle.
    std::thread::sleep(Duration::from_millis(300));
    let mut tool = workload.start(env, env.seconds, *setup == Setup::Fifo, &tag)?;
    // The service's threads, to name the task behind the scheduler's longest wait.
    std::thread::sleep(Duration::from_millis(300));
    // SCHED_DEADLINE goes on the serving threads once they exist; a refusal
    // lets the cell run out (the threads stay SCHED_OTHER) and marks it,
    // so that it is reported as refused, never as a deadline run.
    let refused = match setup {
        Setup::Deadline { runtime, deadline } => crate::external_workloads::set_deadline(
            &tool.serving_threads(),
            runtime.as_ns(),
            deadline.as_ns(),
            INTERVAL_US * 1000,
        )
        .err()
        .map(|e| format!("{e:#}")),
        _ => None,
    };
    let tool_pid = tool.service_pid().unwrap_or(0) as u64;
    let tool_tids: Vec<u64> = crate::external_workloads::threads_of(tool_pid as u32).into_iter().map(u64::from).collect();
    // An adaptive budget, once a second while the tool runs: (s, µs).
    let mut budget_series: Vec<(f64, u64)> = Vec::new();
    let started = std::time::Instant::now();
    let adaptive = matches!(setup, Setup::Slo { adaptive: Some(_), .. });
    loop {
        if tool.poll(env)? {
            break;
        }
        std::thread::sleep(Duration::from_millis(if adaptive { 1000 } else { 50 }));
        if adaptive {
            if let Some(a) = crate::daemon::daemon_status().and_then(|st| st.adaptive.get("api.service").cloned()) {
                budget_series.push((started.elapsed().as_secs_f64(), a.runtime_us));
            }
        }
    }
    let (queue, _, dropped_after) = sampler.take()?;
    batch.wait()?;
    // CPU time each side got in the cell: a closed-loop load generator's
    // rate is also its own share of the CPUs.
    let cpu_ms: serde_json::Map<String, Value> =
        cpu_usage_us(env).into_iter().zip(cpu_before).map(|((k, after), (_, before))| (k.to_string(), json!(after.saturating_sub(before) / 1000))).collect();
    let longest_wait = matches!(running, Running::Slo(_)).then(|| kernel::global_stats(&env.exe("bpftool")).ok()).flatten().map(|g| {
        let who = if g.max_wait_tid == tool_pid {
            format!("{}'s main thread", workload.programs()[0])
        } else if tool_tids.contains(&g.max_wait_tid) {
            format!("a {} thread", workload.programs()[0])
        } else {
            std::fs::read_to_string(format!("/proc/{}/comm", g.max_wait_tid)).map_or("exited".to_string(), |c| c.trim().to_string())
        };
        json!({ "ms": g.max_wait_ns as f64 / 1e6, "tid": g.max_wait_tid, "who": who })
    });
    let run = tool.finish()?;
    let bogo = std::fs::read_to_string(&batch_out).ok().as_deref().and_then(parse_bogo_ops);
    let attachment = watch.map(|w| w.finish());
    // The latency target's scheduler counters (the daemon starts per cell,
    // so they are this cell's), for the why behind the numbers.
    let counters = matches!(running, Running::Slo(_))
        .then(crate::daemon::daemon_status)
        .flatten()
        .and_then(|st| st.targets.into_iter().find(|t| t.key == "api.service"))
        .and_then(|t| t.stats)
        .map(|s| {
            let mut c = s.counters.by_name();
            c.insert("max_wait_ns", s.max_wait_ns);
            c
        });
    Ok(json!({
        "setup": setup.name(), "round": round, "refused": refused, "tool": run, "queue_ns": queue, "samples_dropped": dropped_after.saturating_sub(dropped_before), "batch_bogo_ops": bogo, "counters": counters, "longest_wait": longest_wait, "cpu_ms": cpu_ms,
        "adaptive": adaptive_outcome(setup, &budget_series),
        "attached": attachment.as_ref().map(|a| a.attached), "ejections": attachment.map(|a| a.ejections),
    }))
}

/// What an adaptive cell's controller did: where it started, the budget
/// each second, and its last decision (None for a static budget).
fn adaptive_outcome(setup: &Setup, series: &[(f64, u64)]) -> Option<Value> {
    let Setup::Slo { runtime, adaptive: Some(objective), .. } = setup else { return None };
    let report = crate::daemon::daemon_status().and_then(|st| st.adaptive.get("api.service").cloned());
    Some(json!({
        "start_us": runtime.as_ns() / 1000, "objective_us": objective.as_ns() / 1000, "series_s_us": series,
        "end_us": report.as_ref().map(|a| a.runtime_us), "changes": report.as_ref().map(|a| a.changes),
        "last": report.as_ref().and_then(|a| a.last.as_ref()).map(|d| json!({ "outcome": d.outcome, "p99_us": d.p99_us, "why": d.why })),
    }))
}

/// `scx-slo tune`'s runtime for the workload under EEVDF next to the batch
/// side, with tune's whole answer.
fn tuned_budget(env: &Env, workload: Workload) -> Result<(SloDuration, Value)> {
    let mut batch = spawn_batch(env, env.seconds + 2, Path::new("/tmp/ext-tune-stress.yaml"))?;
    let mut tool = workload.start(env, env.seconds + 1, false, "ext-tune")?;
    std::thread::sleep(Duration::from_millis(500));
    write_config(&slo_config("partial", SloDuration::from_us(300), DEADLINE.parse()?, None))?;
    let out = Command::new(env.exe("scx-slo"))
        .args(["tune", "api.service", "--cgroup", API, "--period", &SloDuration::from_us(INTERVAL_US).to_string()])
        .args(["--duration", &format!("{}s", env.seconds.saturating_sub(1).max(1)), "--json", "--config", crate::daemon::CONFIG_PATH])
        .output()
        .context("running scx-slo tune")?;
    while !tool.poll(env)? {
        std::thread::sleep(Duration::from_millis(100));
    }
    tool.finish()?;
    batch.wait()?;
    let doc: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("scx-slo tune's JSON (stderr: {})", String::from_utf8_lossy(&out.stderr).chars().take(300).collect::<String>()))?;
    let rec = &doc["recommendation"];
    let runtime: SloDuration = rec["runtime"].as_str().context("recommendation.runtime")?.parse()?;
    Ok((runtime, doc))
}

/// CPU time so far of the service's, the load generator's and the batch
/// side's cgroups, µs (cpu.stat's usage_usec; 0 where unreadable).
fn cpu_usage_us(env: &Env) -> [(&'static str, u64); 3] {
    let read = |rel: &str| {
        std::fs::read_to_string(env.cg(rel).join("cpu.stat"))
            .ok()
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("usage_usec ").and_then(|v| v.trim().parse().ok())))
            .unwrap_or(0)
    };
    [("service", read(API)), ("loadgen", read(LOADGEN)), ("batch", read(BATCH))]
}

/// A third of `runtime`, rounded up to 10 µs: where the adaptive setup's
/// controller starts.
pub(crate) fn third_budget(runtime: SloDuration) -> SloDuration {
    let third = runtime.as_ns().div_ceil(3).div_ceil(10_000) * 10_000;
    SloDuration::from_ns(third.max(scx_slo_model::limits::MIN_RUNTIME.as_ns()))
}

/// Half of `runtime`, rounded up to 10 µs: the floor's budget.
pub(crate) fn half_budget(runtime: SloDuration) -> SloDuration {
    let half = runtime.as_ns().div_ceil(2).div_ceil(10_000) * 10_000;
    SloDuration::from_ns(half.max(scx_slo_model::limits::MIN_RUNTIME.as_ns()))
}

/// Every setup's name, in the full run's order (`tuned`/`under` budgets are
/// filled in at run time).
const SETUP_NAMES: [&str; 12] = [
    "eevdf",
    "eevdf-weight10000",
    "eevdf-fifo50",
    "sched-deadline",
    "scx_slo-partial-under",
    "scx_slo-all-under",
    "scx_slo-partial-tuned",
    "scx_slo-all-tuned",
    "scx_slo-all-adaptive",
    "scx_flash",
    "scx_bpfland",
    "scx_lavd",
];

/// `--only`: comma-separated setup names (EEVDF always runs: every ratio
/// is against it); empty selects every setup. An unknown name is an error
/// naming what is known.
pub(crate) fn parse_only(only: &str) -> Result<Vec<String>> {
    let names: Vec<String> = only.split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect();
    for n in &names {
        anyhow::ensure!(SETUP_NAMES.contains(&n.as_str()), "unknown setup {:?}; known: {}", n.chars().take(40).collect::<String>(), SETUP_NAMES.join(", "));
    }
    Ok(names)
}

/// The external-workload scenario, for each of `workloads` in turn.
pub fn run(env: &Env, rounds: usize, quick: bool, only: &str, workloads: &str) -> Result<Report> {
    let only = parse_only(only)?;
    let workloads = Workload::parse_list(workloads)?;
    let mut report = Report::new(if quick { "external-quick" } else { "external" });
    crate::fixtures::setup_cgroups(env)?;
    std::fs::create_dir_all(env.cg(LOADGEN)).context("creating the load generators' cgroup")?;
    // cpu.weight on the unit needs the cpu controller down to its parent.
    for dir in ["", "system.slice"] {
        std::fs::write(env.cg(dir).join("cgroup.subtree_control"), "+cpu").with_context(|| format!("enabling the cpu controller under /{dir}"))?;
    }
    report.facts.insert("kernel".into(), json!(uname()));
    report.facts.insert("cpus".into(), json!(num_cpus()));
    report.facts.insert("seconds_per_cell".into(), json!(env.seconds));
    report.facts.insert("rounds".into(), json!(rounds));
    let mut object = std::mem::MaybeUninit::uninit();
    let sampler = WakeSampler::start(env, &[API.to_string()], &mut object).context("loading the wakeup sampler (observe probes)")?;
    let mut done = Vec::new();
    for workload in workloads {
        match run_workload(env, workload, rounds, quick, &only, &sampler, &mut report) {
            Ok(facts) => done.push(facts),
            Err(e) => report.check(format!("{}: profiled and measured", workload.name()), false, format!("{e:#}")),
        }
    }
    report.facts.insert("workloads".into(), json!(done));
    report.ok = report.checks.iter().all(|c| c.ok);
    Ok(report)
}

/// Every setup's rounds of one workload: its facts (budgets, tune's
/// answer, the summary, the cells, the verdicts); its checks go into
/// `report`, named after the workload.
fn run_workload(env: &Env, workload: Workload, rounds: usize, quick: bool, only: &[String], sampler: &WakeSampler, report: &mut Report) -> Result<Value> {
    let wl = workload.name();
    let (runtime, tune_doc) = tuned_budget(env, workload).with_context(|| format!("profiling {wl} with scx-slo tune under EEVDF"))?;
    let under = half_budget(runtime);
    // The deadline users declared, raised to the runtime where the runtime
    // is longer (the config requires runtime <= deadline).
    let declared: SloDuration = DEADLINE.parse()?;
    let slo = |switch, budget, runtime: SloDuration| Setup::Slo { switch, budget, runtime, deadline: declared.max(runtime), adaptive: None };
    // The controller from a third of tune's budget, allowed up to the
    // larger of the deadline and tune's budget, steering the queue delay's
    // p99 under the declared deadline.
    let adaptive = Setup::Slo {
        switch: "all",
        budget: "adaptive",
        runtime: third_budget(runtime),
        deadline: declared.max(runtime),
        adaptive: Some(declared),
    };
    let setups: Vec<Setup> = if quick {
        vec![Setup::Eevdf, slo("all", "under", under), slo("all", "tuned", runtime)]
    } else {
        vec![
            Setup::Eevdf,
            Setup::Weight,
            Setup::Fifo,
            Setup::Deadline { runtime, deadline: declared.max(runtime) },
            slo("partial", "under", under),
            slo("all", "under", under),
            slo("partial", "tuned", runtime),
            slo("all", "tuned", runtime),
            adaptive,
            Setup::Peer("scx_flash"),
            Setup::Peer("scx_bpfland"),
            Setup::Peer("scx_lavd"),
        ]
    };
    let setups: Vec<Setup> = setups.into_iter().filter(|s| only.is_empty() || *s == Setup::Eevdf || only.contains(&s.name())).collect();
    let mut cells = Vec::new();
    // Setups the kernel refused (SCHED_DEADLINE's admission control), with why.
    let mut refused: Vec<(String, String)> = Vec::new();
    for round in 0..rounds {
        let mut order = setups.clone();
        order.rotate_left(round % setups.len());
        for setup in order {
            let name = setup.name();
            let running = match start(env, &setup, &format!("ext-{wl}-{name}-{round}")) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    report.check(format!("{wl} / {name} / round {round} started"), false, format!("{e:#}"));
                    continue;
                }
            };
            let result = cell(env, workload, &setup, round, &running, sampler);
            stop(env, running);
            match result {
                Ok(c) if c["refused"].is_string() => {
                    let why = c["refused"].as_str().unwrap_or_default().to_string();
                    if !refused.iter().any(|(n, _)| *n == name) {
                        refused.push((name.clone(), why));
                    }
                }
                Ok(c) => {
                    if name.starts_with("scx_slo") && c["attached"] != json!(true) {
                        report.check(format!("{wl} / {name} / round {round}: scx_slo stayed attached"), false, format!("ejections: {}", c["ejections"]));
                    }
                    cells.push(c);
                }
                Err(e) => report.check(format!("{wl} / {name} / round {round} ran"), false, format!("{e:#}")),
            }
        }
    }
    let summary = summarize(&setups, &cells);
    let mut lines = verdicts(&summary);
    lines.extend(refused.iter().map(|(name, why)| format!("{name}: not measured: {why}")));
    lines.extend(crate::external_report::adaptive_lines(&cells, runtime));
    for (name, ok, detail) in cycle_checks(&summary) {
        report.check(format!("{wl} / {name}"), ok, detail);
    }
    let missing: Vec<String> = setups
        .iter()
        .filter(|s| !refused.iter().any(|(n, _)| *n == s.name()))
        .map(|s| (s.name(), cells.iter().filter(|c| c["setup"] == json!(s.name())).count()))
        .filter(|(_, n)| *n < rounds)
        .map(|(name, n)| format!("{name}: {n} of {rounds}"))
        .collect();
    let (ok, detail) = samples_kept(&cells);
    report.check(format!("{wl}: the kernel sampler lost no queue-delay samples"), ok, detail);
    report.check(
        format!("{wl}: every setup ran its {rounds} rounds"),
        !setups.is_empty() && missing.is_empty(),
        format!("{} cells of {} setups; short: {missing:?}", cells.len(), setups.len()),
    );
    Ok(json!({
        "workload": wl,
        "tune": tune_doc,
        "budgets": { "tuned": runtime.to_string(), "under": under.to_string(), "period": SloDuration::from_us(INTERVAL_US).to_string() },
        "verdicts": lines,
        "external": summary,
        "cells": cells
            .iter()
            .map(|c| json!({ "setup": c["setup"], "round": c["round"], "tool": c["tool"], "batch_bogo_ops": c["batch_bogo_ops"], "queue_p99_us": queue_p99(&[c]), "samples_dropped": c["samples_dropped"], "counters": c["counters"], "longest_wait": c["longest_wait"], "cpu_ms": c["cpu_ms"] }))
            .collect::<Vec<_>>(),
    }))
}

fn queue_p99(cells: &[&Value]) -> f64 {
    use scx_slo_model::stats;
    let us: Vec<f64> = cells.iter().flat_map(|c| c["queue_ns"].as_array().into_iter().flatten().filter_map(Value::as_u64).map(|n| n as f64 / 1e3)).collect();
    stats::percentile(&stats::sorted(&us), 0.99)
}

fn summarize(setups: &[Setup], cells: &[Value]) -> Vec<Summary> {
    use scx_slo_model::stats;
    let mut out = Vec::new();
    for setup in setups {
        let name = setup.name();
        let mine: Vec<&Value> = cells.iter().filter(|c| c["setup"] == name.as_str()).collect();
        if mine.is_empty() {
            continue;
        }
        let mut tool = ToolRun::default();
        for c in &mine {
            if let Ok(t) = serde_json::from_value::<ToolRun>(c["tool"].clone()) {
                tool.merge(&t);
            }
        }
        let queue: Vec<f64> = stats::sorted(
            &mine.iter().flat_map(|c| c["queue_ns"].as_array().into_iter().flatten().filter_map(Value::as_u64).map(|n| n as f64 / 1e3)).collect::<Vec<_>>(),
        );
        out.push(Summary {
            baseline: setup.is_baseline(),
            rounds: mine.len(),
            p50_us: tool.quantile(0.5),
            p99_us: tool.quantile(0.99),
            p999_us: tool.quantile(0.999),
            max_us: tool.max_us as f64,
            samples: tool.samples,
            per_s: tool.per_s(),
            errors: tool.errors,
            queue_p99_us: stats::percentile(&queue, 0.99),
            queue_p999_us: stats::percentile(&queue, 0.999),
            batch_bogo_ops: mine.iter().filter_map(|c| c["batch_bogo_ops"].as_u64()).sum(),
            attached_cells: matches!(setup, Setup::Slo { .. } | Setup::Peer(_)).then(|| mine.iter().filter(|c| c["attached"] == json!(true)).count()),
            setup: name,
        });
    }
    out
}

#[cfg(test)]
#[path = "external_tests.rs"]
mod tests;
