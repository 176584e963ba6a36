// SPDX-License-Identifier: GPL-2.0-only
//! The benchmark lab, inside one VM boot: every scenario under the kernel's
//! default scheduler (EEVDF), scx-slo (partial and all) and the peer
//! sched_ext schedulers found next to the lab (scx_bpfland, scx_flash,
//! scx_lavd), repeated. Each cell records the latency unit's raw wake delays
//! and completions, deadline misses and batch work; the host-side report
//! turns them into ratios to EEVDF with significance tests
//! (scx_slo_model::stats). With kernel.bpf_stats_enabled the sched_ext
//! programs' ns per callback are read from bpftool. The daemon's footprint
//! (RSS, idle CPU, time to apply 1,000 targets) is measured too.
//!
//! Nothing here asserts a speed: a check fails only when a cell could not run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::bench_resume::{self, Block};
use crate::kernel;
use crate::sampler::{self, WakeSampler};
use crate::daemon::{write_config, Daemon};
use crate::fixtures::{API, BATCH};
use crate::harness::{cpu_share, cpu_ticks, num_cpus, proc_status_kb, read_json, uname, wait_until, Env, Report};
use crate::spawn::Workload;
use crate::workload::{Arrival, HogResult, ProbeResult};
use scx_slo_model::Duration as SloDuration;

/// Schedulers compared, in order; peers only when their binary is present.
/// `scx_slo-1000` is `scx_slo-all` with 1,000 targets configured: the same
/// units plus idle batch targets (the scale scenario).
const SCHEDULERS: [&str; 7] = ["eevdf", "scx_slo-partial", "scx_slo-all", "scx_slo-1000", "scx_bpfland", "scx_flash", "scx_lavd"];

/// Targets in `scx_slo-1000`'s config, all told.
const SCALE_TARGETS: usize = 1000;

/// Request shape of the latency unit: 300 us of CPU every 10 ms, due in 5 ms.
const PERIOD: SloDuration = SloDuration::from_ms(10);
const WORK: SloDuration = SloDuration::from_us(300);
const DEADLINE: SloDuration = SloDuration::from_ms(5);

/// One scenario: what runs next to the latency unit.
struct Scenario {
    name: &'static str,
    /// CPU hogs per CPU in the batch cgroup.
    hogs_per_cpu: usize,
    /// Noisy-neighbour threads (bursting) in the batch cgroup.
    noisy_threads: usize,
    /// fork/exec loops in the batch cgroup.
    forkexec: usize,
    /// cpu.max of the batch cgroup ("max" for none).
    batch_quota: &'static str,
    /// Latency units (each its own cgroup and probe).
    latency_units: usize,
    /// Poisson arrivals instead of periodic.
    poisson: bool,
}

/// A focused bench: a subset of schedulers and scenarios, for iterating on
/// the scheduler (its report is not the full table of docs/benchmarks.md).
#[derive(Debug, Default)]
pub struct Selection {
    schedulers: Vec<String>,
    scenarios: Vec<String>,
}

impl Selection {
    /// Comma-separated names; empty lists select everything. Unknown names,
    /// or a selection that leaves `quick` (oversub-2x only) nothing to run,
    /// are an error naming them and what is known.
    pub fn parse(schedulers: &str, scenarios: &str, quick: bool) -> Result<Selection> {
        let split = |s: &str| s.split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect::<Vec<_>>();
        let sel = Selection { schedulers: split(schedulers), scenarios: split(scenarios) };
        let known_scenarios: Vec<&str> = all_scenarios().iter().map(|s| s.name).collect();
        for n in &sel.schedulers {
            anyhow::ensure!(SCHEDULERS.contains(&n.as_str()), "unknown scheduler {n:?}; known: {}", SCHEDULERS.join(", "));
        }
        for n in &sel.scenarios {
            anyhow::ensure!(known_scenarios.contains(&n.as_str()), "unknown scenario {n:?}; known: {}", known_scenarios.join(", "));
        }
        anyhow::ensure!(
            !self::scenarios(quick, &sel).is_empty(),
            "--quick runs only oversub-2x, and --scenarios {} leaves it nothing",
            sel.scenarios.join(",")
        );
        Ok(sel)
    }

    pub fn is_everything(&self) -> bool {
        self.schedulers.is_empty() && self.scenarios.is_empty()
    }

    /// EEVDF always runs: every ratio is against it.
    fn scheduler(&self, name: &str) -> bool {
        name == "eevdf" || self.schedulers.is_empty() || self.schedulers.iter().any(|s| s == name)
    }

    fn scenario(&self, name: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|s| s == name)
    }
}

fn scenarios(quick: bool, selection: &Selection) -> Vec<Scenario> {
    let all = if quick { all_scenarios().into_iter().filter(|s| s.name == "oversub-2x").collect() } else { all_scenarios() };
    all.into_iter().filter(|s| selection.scenario(s.name)).collect()
}

fn all_scenarios() -> Vec<Scenario> {
    let base = |name, hogs| Scenario {
        name,
        hogs_per_cpu: hogs,
        noisy_threads: 0,
        forkexec: 0,
        batch_quota: "max",
        latency_units: 1,
        poisson: false,
    };
    vec![
        // No load at all: the floor TCG itself puts under every scheduler.
        base("idle", 0),
        base("oversub-1x", 1),
        base("oversub-2x", 2),
        base("oversub-4x", 4),
        Scenario { noisy_threads: 2 * num_cpus(), ..base("noisy-neighbour", 0) },
        Scenario { batch_quota: "50000 100000", ..base("batch-throttled", 2) },
        Scenario { forkexec: num_cpus(), ..base("fork-exec", 1) },
        Scenario { latency_units: 4, poisson: true, ..base("many-latency-units", 1) },
    ]
}

fn latency_cgroup(i: usize) -> String {
    if i == 0 {
        API.to_string()
    } else {
        format!("system.slice/api{i}.service")
    }
}

/// scx-slo's config for a scenario: each latency unit admitted with 1 ms
/// per 10 ms, the batch cgroup as a batch target.
fn slo_config(switch: &str, units: usize) -> Value {
    let mut targets = serde_json::Map::new();
    for i in 0..units {
        let key = if i == 0 { "api.service".to_string() } else { format!("api{i}.service") };
        targets.insert(
            key,
            json!({ "class": "latency", "budget": { "runtime": "1ms", "period": "10ms" }, "deadline": DEADLINE.to_string(),
                    "priority": 800, "preemption": "lower-priority" }),
        );
    }
    targets.insert("batch.slice".into(), json!({ "class": "batch", "weight": 100 }));
    json!({ "version": 1, "mode": "enforce", "switch": switch, "targets": targets })
}

/// `slo_config("all")` grown to [`SCALE_TARGETS`] with idle batch targets,
/// each its own (empty) cgroup under `bench-scale/`.
fn scale_config(env: &Env) -> Result<Value> {
    let mut config = slo_config("all", MAX_LATENCY_UNITS);
    let targets = config["targets"].as_object_mut().context("targets")?;
    for i in 0..SCALE_TARGETS - targets.len() {
        std::fs::create_dir_all(env.cg(&format!("bench-scale/t{i}")))?;
        targets.insert(format!("/bench-scale/t{i}"), json!({ "class": "batch", "weight": 100 }));
    }
    Ok(config)
}

/// A running scheduler for one cell; stops on drop.
enum Running {
    Eevdf,
    Slo(Daemon),
    Peer(Child),
}

impl Running {
    fn stop(self) {
        match self {
            Running::Eevdf => {}
            Running::Slo(mut d) => {
                d.signal(libc::SIGTERM);
                d.wait_exit(Duration::from_secs(20));
            }
            Running::Peer(mut c) => {
                // SAFETY: kill(2) on our child.
                unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(10) && matches!(c.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        wait_until(Duration::from_secs(10), || kernel::sched_ext_state() != "enabled");
    }
}

/// Latency units the scx-slo config declares (the most any scenario uses).
const MAX_LATENCY_UNITS: usize = 4;

fn start(env: &Env, scheduler: &str, tag: &str) -> Result<Option<Running>> {
    match scheduler {
        "eevdf" => Ok(Some(Running::Eevdf)),
        s if s.starts_with("scx_slo-") => {
            let config = match s.trim_start_matches("scx_slo-") {
                "1000" => scale_config(env)?,
                switch => slo_config(switch, MAX_LATENCY_UNITS),
            };
            write_config(&config)?;
            let mut d = Daemon::start_with(env, tag, &["--metrics-listen", "off"])?;
            if d.wait_enabled(Duration::from_secs(60)).is_none() {
                anyhow::bail!("scx_slo did not attach: {}", d.log_tail());
            }
            Ok(Some(Running::Slo(d)))
        }
        peer => {
            let exe = env.exe(peer);
            if !exe.exists() {
                return Ok(None);
            }
            let child = Command::new(&exe)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(format!("/tmp/{tag}.log"))?)
                .spawn()
                .with_context(|| format!("starting {peer}"))?;
            let mut running = Running::Peer(child);
            if wait_until(Duration::from_secs(60), || kernel::sched_ext_state() == "enabled").is_none() {
                let log = std::fs::read_to_string(format!("/tmp/{tag}.log")).unwrap_or_default();
                if let Running::Peer(c) = &mut running {
                    let _ = c.kill();
                }
                anyhow::bail!("{peer} did not attach: {}", log.lines().rev().take(3).collect::<Vec<_>>().join(" | "));
            }
            Ok(Some(running))
        }
    }
}

/// Runs one cell; returns its raw record.
fn cell(env: &Env, sc: &Scenario, scheduler: &str, round: usize, running: &Running, sampler: &WakeSampler) -> Result<Value> {
    let tag = format!("{}-{scheduler}-{round}", sc.name);
    let _ = std::fs::write(env.cg(BATCH).parent().unwrap_or(Path::new("/")).join("cpu.max"), sc.batch_quota);
    let ext = scheduler != "eevdf";
    let bpf_before = if ext { bpf_callback_cost(env) } else { BTreeMap::new() };
    // Whatever the cell's scheduler registered as: it must stay attached.
    let watch = ext.then(|| kernel::AttachWatch::start(&kernel::root_ops()));
    sampler.take()?; // what ran between cells is not this cell's
    let daemon_pid = match running {
        Running::Slo(d) => Some(d.child.id()),
        _ => None,
    };
    let daemon_ticks = daemon_pid.and_then(cpu_ticks);
    let cell_started = Instant::now();
    let partial = scheduler == "scx_slo-partial";
    let secs = SloDuration::from_secs(env.seconds);
    let mut kids: Vec<Child> = Vec::new();
    let (mut probes, mut outs) = (Vec::new(), Vec::new());
    let arrival = if sc.poisson { Arrival::Poisson } else { Arrival::Periodic };
    for i in 0..sc.latency_units {
        let out = format!("/tmp/bench-{tag}-api{i}.json");
        let probe = Workload::probe().cgroup(env.cg(&latency_cgroup(i))).period(PERIOD).work(WORK).deadline(DEADLINE);
        let probe = probe.duration(secs).samples().out(&out).arrival(arrival).wait_ext(partial);
        probes.push(probe.spawn_held(env)?);
        outs.push(out);
    }
    let mut batch_outs = Vec::new();
    let mut add = |workload: Workload, kids: &mut Vec<Child>| -> Result<()> {
        let out = format!("/tmp/bench-{tag}-{}{}.json", workload.args()[0], batch_outs.len());
        kids.push(workload.cgroup(env.cg(BATCH)).duration(secs).out(&out).wait_ext(partial).spawn(env)?);
        batch_outs.push(out);
        Ok(())
    };
    for _ in 0..sc.hogs_per_cpu * num_cpus() {
        add(Workload::hog(), &mut kids)?;
    }
    if sc.noisy_threads > 0 {
        add(Workload::noisy().threads_only(sc.noisy_threads), &mut kids)?;
    }
    for _ in 0..sc.forkexec {
        add(Workload::forkexec(), &mut kids)?;
    }
    // The probes have exited once their samples are taken; the batch runs out its duration.
    let (queue, response, samples_dropped) = sampler::finish_held_probes(&mut probes, sampler)?;
    for k in kids.iter_mut() {
        k.wait()?;
    }
    let probe_results: Vec<ProbeResult> = outs.iter().map(|o| read_json(o)).collect::<Result<_>>()?;
    let batch: Vec<HogResult> = batch_outs.iter().map(|o| read_json(o)).collect::<Result<_>>()?;
    let attachment = watch.map(|w| w.finish());
    let bpf = if ext { bpf_delta(&bpf_before, &bpf_callback_cost(env)) } else { Value::Null };
    let rss_kb = daemon_pid.and_then(|pid| proc_status_kb("VmRSS", pid));
    let daemon_cpu_share = cpu_share(daemon_ticks, daemon_pid.and_then(cpu_ticks), cell_started.elapsed());
    let wake: Vec<u64> = probe_results.iter().flat_map(|p| p.wake_ns.iter().copied()).collect();
    let completion: Vec<u64> = probe_results.iter().flat_map(|p| p.completion_ns.iter().copied()).collect();
    Ok(json!({
        "scenario": sc.name,
        "scheduler": scheduler,
        "round": round,
        "wake_ns": wake,
        "completion_ns": completion,
        "queue_ns": queue,
        "response_misses": response.iter().filter(|r| **r > sampler::DEADLINE_NS).count(),
        "response_ns": response,
        "samples_dropped": samples_dropped,
        "requests": completion.len(),
        "over_deadline": probe_results.iter().map(|p| p.over_deadline).sum::<usize>(),
        "overruns": probe_results.iter().map(|p| p.overruns).sum::<usize>(),
        "batch_work": batch.iter().map(|b| b.iterations).sum::<u64>(),
        "bpf": bpf,
        "daemon_rss_kb": rss_kb,
        "daemon_cpu_share": daemon_cpu_share,
        // null for EEVDF (nothing to eject); else whether the scheduler
        // stayed attached for the whole window, and what the kernel said.
        "attached": attachment.as_ref().map(|a| a.attached),
        "ejections": attachment.map(|a| a.ejections),
    }))
}

/// Cumulative (run_time_ns, run_cnt) of each sched_ext callback of the
/// loaded scheduler, from bpftool (kernel.bpf_stats_enabled=1).
fn bpf_callback_cost(env: &Env) -> BTreeMap<&'static str, (u64, u64)> {
    let mut by_callback = BTreeMap::new();
    let Ok(out) = Command::new(env.exe("bpftool")).args(["-j", "prog", "show"]).output() else { return by_callback };
    let Ok(progs) = serde_json::from_slice::<Vec<Value>>(&out.stdout) else { return by_callback };
    for p in progs.iter().filter(|p| p["type"] == "struct_ops") {
        let name = p["name"].as_str().unwrap_or_default();
        let Some(cb) = ["select_cpu", "enqueue", "dispatch", "running", "stopping", "runnable", "quiescent", "tick"]
            .into_iter()
            .find(|cb| name.ends_with(cb))
        else {
            continue;
        };
        let e: &mut (u64, u64) = by_callback.entry(cb).or_default();
        e.0 += p["run_time_ns"].as_u64().unwrap_or(0);
        e.1 += p["run_cnt"].as_u64().unwrap_or(0);
    }
    by_callback
}

/// ns per call of each callback between two readings.
fn bpf_delta(before: &BTreeMap<&'static str, (u64, u64)>, after: &BTreeMap<&'static str, (u64, u64)>) -> Value {
    after
        .iter()
        .map(|(cb, (ns, cnt))| {
            let (ns0, cnt0) = before.get(cb).copied().unwrap_or_default();
            let (ns, cnt) = (ns.saturating_sub(ns0), cnt.saturating_sub(cnt0));
            (cb.to_string(), json!({ "run_time_ns": ns, "run_cnt": cnt, "ns_per_call": if cnt > 0 { ns as f64 / cnt as f64 } else { 0.0 } }))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn samples_us(cells: &[&Value], key: &str) -> Vec<f64> {
    cells.iter().flat_map(|c| c[key].as_array().into_iter().flatten().filter_map(Value::as_u64).map(|ns| ns as f64 / 1e3)).collect()
}

/// Per scenario and scheduler: rounds pooled; percentiles, misses, batch
/// work, BPF cost, and the comparison with EEVDF of the same scenario.
pub fn summarize(cells: &[Value]) -> Value {
    use scx_slo_model::stats;
    let mut out = Vec::new();
    // Cells come scheduler by scheduler; keep each scenario once, in first-seen order.
    let mut scenario_names: Vec<&str> = Vec::new();
    for name in cells.iter().filter_map(|c| c["scenario"].as_str()) {
        if !scenario_names.contains(&name) {
            scenario_names.push(name);
        }
    }
    for sc in scenario_names {
        let of = |sched: &str| cells.iter().filter(|c| c["scenario"] == sc && c["scheduler"] == sched).collect::<Vec<_>>();
        let base = of("eevdf");
        let (base_wake, base_done) = (samples_us(&base, "wake_ns"), samples_us(&base, "completion_ns"));
        let base_queue = samples_us(&base, "queue_ns");
        let base_response = samples_us(&base, "response_ns");
        let base_work: u64 = base.iter().filter_map(|c| c["batch_work"].as_u64()).sum();
        let mut names: Vec<&str> = cells.iter().filter(|c| c["scenario"] == sc).filter_map(|c| c["scheduler"].as_str()).collect();
        names.sort_by_key(|n| SCHEDULERS.iter().position(|s| s == n));
        names.dedup();
        for sched in names {
            let mine = of(sched);
            let wake = stats::sorted(&samples_us(&mine, "wake_ns"));
            let done = stats::sorted(&samples_us(&mine, "completion_ns"));
            let queue = stats::sorted(&samples_us(&mine, "queue_ns"));
            let response = stats::sorted(&samples_us(&mine, "response_ns"));
            let response_misses: u64 = mine.iter().filter_map(|c| c["response_misses"].as_u64()).sum();
            let requests: u64 = mine.iter().filter_map(|c| c["requests"].as_u64()).sum();
            let misses: u64 = mine.iter().filter_map(|c| c["over_deadline"].as_u64()).sum();
            let work: u64 = mine.iter().filter_map(|c| c["batch_work"].as_u64()).sum();
            let per_round_p99: Vec<f64> = mine
                .iter()
                .map(|c| stats::percentile(&stats::sorted(&samples_us(&[*c], "wake_ns")), 0.99))
                .collect();
            let per_round_queue_p99: Vec<f64> = mine
                .iter()
                .map(|c| stats::percentile(&stats::sorted(&samples_us(&[*c], "queue_ns")), 0.99))
                .collect();
            // What a release gate (bench_gate.rs) tests a later run against:
            // each round's raw samples, and each round's batch work against
            // EEVDF's in the same round (added to the report; older reports
            // lack them and the gate names what is missing).
            let per_round_ns = |key: &str| -> Vec<Vec<u64>> {
                mine.iter().map(|c| c[key].as_array().into_iter().flatten().filter_map(Value::as_u64).collect()).collect()
            };
            let batch_ratio_per_round: Vec<f64> = mine
                .iter()
                .map(|c| {
                    let base_round = base.iter().find(|b| b["round"] == c["round"]).and_then(|b| b["batch_work"].as_u64()).unwrap_or(0);
                    match c["batch_work"].as_u64() {
                        Some(w) if base_round > 0 => w as f64 / base_round as f64,
                        _ => f64::NAN,
                    }
                })
                .collect();
            let vs = |mine: &[f64], base: &[f64], seed| {
                if sched == "eevdf" || mine.is_empty() || base.is_empty() {
                    Value::Null
                } else {
                    json!(stats::compare(mine, base, seed))
                }
            };
            let (vs_wake, vs_done, vs_queue, vs_response) =
                (vs(&wake, &base_wake, 1), vs(&done, &base_done, 2), vs(&queue, &base_queue, 3), vs(&response, &base_response, 4));
            out.push(json!({
                "scenario": sc,
                "scheduler": sched,
                "rounds": mine.len(),
                "requests": requests,
                "wake_us": { "p50": stats::percentile(&wake, 0.5), "p99": stats::percentile(&wake, 0.99), "p999": stats::percentile(&wake, 0.999) },
                "completion_us": { "p50": stats::percentile(&done, 0.5), "p99": stats::percentile(&done, 0.99), "p999": stats::percentile(&done, 0.999) },
                "wake_p99_us_per_round": per_round_p99,
                "queue_us": { "p50": stats::percentile(&queue, 0.5), "p99": stats::percentile(&queue, 0.99), "p999": stats::percentile(&queue, 0.999) },
                "queue_p99_us_per_round": per_round_queue_p99,
                "vs_eevdf_queue": vs_queue,
                "response_us": { "p50": stats::percentile(&response, 0.5), "p99": stats::percentile(&response, 0.99), "p999": stats::percentile(&response, 0.999) },
                "vs_eevdf_response": vs_response,
                "response_miss_ratio": if response.is_empty() { f64::NAN } else { response_misses as f64 / response.len() as f64 },
                "samples_dropped": mine.iter().filter_map(|c| c["samples_dropped"].as_u64()).max(),
                "deadline_miss_ratio": if requests > 0 { misses as f64 / requests as f64 } else { 0.0 },
                "batch_work": work,
                "batch_work_ratio": if base_work > 0 { work as f64 / base_work as f64 } else { f64::NAN },
                "vs_eevdf_wake": vs_wake,
                "vs_eevdf_completion": vs_done,
                "bpf": mine.last().map(|c| c["bpf"].clone()),
                "daemon_rss_kb": mine.iter().filter_map(|c| c["daemon_rss_kb"].as_u64()).max(),
                "daemon_cpu_share": mine.iter().filter_map(|c| c["daemon_cpu_share"].as_f64()).reduce(f64::max),
                // Cells in which the scheduler stayed attached for the whole
                // window (EEVDF: null, nothing to eject).
                "attached_cells": (sched != "eevdf").then(|| mine.iter().filter(|c| c["attached"] == json!(true)).count()),
                "queue_ns_per_round": per_round_ns("queue_ns"),
                "response_ns_per_round": per_round_ns("response_ns"),
                "batch_work_ratio_per_round": batch_ratio_per_round,
            }));
        }
    }
    Value::Array(out)
}

/// The benchmark scenario.
pub fn run(env: &Env, rounds: usize, quick: bool, selection: &Selection, out: &Path, crash_after: Option<usize>) -> Result<Report> {
    let mut report = Report::new(if quick { "bench-quick" } else { "bench" });
    crate::fixtures::setup_cgroups(env)?;
    for i in 1..4 {
        std::fs::create_dir_all(env.cg(&latency_cgroup(i)))?;
    }
    // cpu.max on the batch slice needs the cpu controller delegated down.
    for dir in ["", "batch.slice"] {
        let _ = std::fs::write(env.cg(dir).join("cgroup.subtree_control"), "+cpu");
    }
    let present: Vec<&str> = SCHEDULERS
        .iter()
        .copied()
        .filter(|s| !s.starts_with("scx_") || s.starts_with("scx_slo") || env.exe(s).exists())
        .filter(|s| selection.scheduler(s))
        .collect();
    report.facts.insert("schedulers".into(), json!(present));
    if !selection.is_everything() {
        report.facts.insert("selection".into(), json!(format!("{selection:?}")));
    }
    report.facts.insert("kernel".into(), json!(uname()));
    report.facts.insert("cpus".into(), json!(num_cpus()));
    report.facts.insert("seconds_per_cell".into(), json!(env.seconds));
    report.facts.insert("rounds".into(), json!(rounds));
    // One load per scheduler per round, all scenarios under it: every
    // sched_ext attach and detach live-patches kernel text, and multi-threaded
    // TCG occasionally panics on that (docs/testing.md), so the bench toggles
    // sched_ext rounds × schedulers times, not once per cell.
    let mut cells = Vec::new();
    let mut object = std::mem::MaybeUninit::uninit();
    let cgroups: Vec<String> = (0..MAX_LATENCY_UNITS).map(latency_cgroup).collect();
    let sampler = WakeSampler::start(env, &cgroups, &mut object).context("loading the wakeup sampler (observe probes)")?;
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");
    let mut done = bench_resume::load_done();
    let (resumed, mut measured) = (done.len(), 0);
    for round in 0..rounds {
        // Rotate the order each round so drift does not favour one scheduler.
        let mut order = present.clone();
        order.rotate_left(round % present.len());
        for scheduler in order {
            // Measured by an earlier boot of this bench: taken as it is.
            let block = match done.remove(&(round, scheduler.to_string())) {
                Some(b) => b,
                None => {
                    let b = measure_block(env, scheduler, round, quick, selection, &sampler);
                    bench_resume::checkpoint(out, &b)?;
                    measured += 1;
                    bench_resume::crash_if_due(crash_after, measured);
                    b
                }
            };
            for (name, detail) in block.failures {
                report.check(name, false, detail);
            }
            cells.extend(block.cells);
        }
    }
    report.facts.insert("blocks_from_earlier_boots".into(), json!(resumed));
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0");
    report.check(
        "every cell ran",
        !cells.is_empty() && report.checks.is_empty(),
        format!("{} cells", cells.len()),
    );
    match crate::bench_footprint::footprint(env, Duration::from_secs(if quick { 10 } else { 60 }), &slo_config("partial", 1)) {
        Ok(f) => {
            report.facts.insert("daemon_footprint".into(), f);
        }
        Err(e) => report.check("daemon footprint measured", false, format!("{e:#}")),
    }
    report.facts.insert("results".into(), summarize(&cells));
    report.ok = report.checks.iter().all(|c| c.ok);
    Ok(report)
}

/// One scheduler loaded for one round, every scenario under it.
fn measure_block(env: &Env, scheduler: &str, round: usize, quick: bool, selection: &Selection, sampler: &WakeSampler) -> Block {
    let mut block = Block { round, scheduler: scheduler.to_string(), ..Block::default() };
    let running = match start(env, scheduler, &format!("{scheduler}-{round}")) {
        Ok(Some(r)) => r,
        Ok(None) => return block,
        Err(e) => {
            block.failures.push((format!("{scheduler} / round {round} started"), format!("{e:#}")));
            return block;
        }
    };
    for sc in scenarios(quick, selection) {
        match cell(env, &sc, scheduler, round, &running, sampler) {
            Ok(c) => {
                // An ejection of scx_slo is a failure wherever it happens; a
                // peer's is recorded in its cell.
                if scheduler.starts_with("scx_slo") && c["attached"] != json!(true) {
                    block.failures.push((format!("{} / {scheduler} / round {round}: scx_slo stayed attached", sc.name), format!("ejections: {}", c["ejections"])));
                }
                block.cells.push(c)
            }
            Err(e) => block.failures.push((format!("{} / {scheduler} / round {round} ran", sc.name), format!("{e:#}"))),
        }
    }
    running.stop();
    block
}

#[cfg(test)]
#[path = "bench_tests.rs"]
mod tests;
