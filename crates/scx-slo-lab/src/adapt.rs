// SPDX-License-Identifier: GPL-2.0-only
//! The adapt scenario (docs/tuning.md): an adaptive latency target whose load
//! steps up mid-run next to CPU hogs, from a budget too small for the new
//! load. Checked on what the kernel shows: the runtime budget in the
//! scheduler's maps rises within a bounded number of intervals, and the
//! deadline-miss ratio the scheduler counts falls. Then a restart keeps the
//! learned budget, and `scx-slo tune` profiles the same load and recommends
//! a static budget that, applied, meets the deadline. Last, the controller
//! steers on the service's own histogram (a `scrape` block): the probe
//! serves its response times, and the kernel's budget must rise on them.

use std::time::{Duration, Instant};

use anyhow::Result;
use scx_slo_api::Counter;
use serde_json::{json, Value};

use crate::daemon::{daemon_state, daemon_status, write_config, Daemon};
use crate::fixtures::{setup_cgroups, API, BATCH};
use crate::harness::{ms, wait_until, Env, Report};
use crate::kernel::{self, KernelTargetStats};
use crate::spawn::Workload;
use scx_slo_model::Duration as D;

/// The controller's interval here: short, so the scenario fits CI.
const INTERVAL_S: u64 = 2;
/// Intervals the controller may take, after the step, to raise the budget
/// from 1 ms until the service's response p99 is inside the controller's band
/// (under 90% of the 6 ms objective): one change every other interval
/// (cooldown 1), each `exp(Ki·e)` with Ki = 0.35. With few misses the
/// response p99 sits about 1.7× over the setpoint (e ≈ 0.5): ×1.19 per
/// change. The heavy probe uses 3.3 ms of CPU per 10 ms, but the budget it
/// needs is what meets the objective, not its whole demand: past its budget a
/// latency task still gets a fair task's share (the floor in
/// docs/scheduler.md), and a fresh-clone CI run settled at 2.96 ms with the
/// p99 at 3.8 ms. Measured 12.5 intervals to reach 3.3 ms on an idle host
/// before the floor, 2.5-4.5 on a loaded one (more misses, larger steps).
/// 20 leaves room for TCG.
const MAX_INTERVALS_TO_RAISE: u64 = 20;
/// A deadline-miss ratio that is "almost none" at the raised budget.
const LATE_MISS_RATIO_OK: f64 = 0.005;

/// The config: api.service starts at 1 ms per 10 ms (enough for the light
/// load, too little for the heavy one), deadline 8 ms, and adapts its
/// budget to keep the response p99 under 6 ms.
pub fn adapt_config() -> Value {
    json!({
        "version": 1,
        "mode": "enforce",
        "switch": "all",
        "targets": {
            "api.service": {
                "class": "latency", "budget": { "runtime": "1ms", "period": "10ms" }, "deadline": "8ms",
                "priority": 800, "preemption": "lower-priority",
                "adaptive": { "sli": "response", "objective": "6ms", "interval": format!("{INTERVAL_S}s"),
                              "min_samples": 50, "max_step": 2.0, "cooldown": 1 }
            },
            "batch.slice": { "class": "batch", "weight": 100 }
        }
    })
}

fn counter(k: &KernelTargetStats, c: Counter) -> u64 {
    k.cnt.get(c.index()).copied().unwrap_or(0)
}

/// (jobs, misses) of api.service now, from the kernel (bpftool: seconds
/// under TCG with the full per-CPU statistics map, so only at the ends).
fn kernel_jobs_misses(env: &Env, cgroup_id: u64) -> (u64, u64) {
    let stats = kernel::target_stats_by_cgroup(&env.exe("bpftool"), &[cgroup_id]).unwrap_or_default();
    stats.get(&cgroup_id).map(|k| (counter(k, Counter::Jobs), counter(k, Counter::DeadlineMisses))).unwrap_or_default()
}

/// One reading of the daemon's status file (rewritten every second, from
/// the scheduler's maps).
struct StatusReading {
    /// api.service's runtime in force by its controller, ns (0 without a
    /// controller: the tuned, static budget).
    runtime_ns: u64,
    /// api.service's (jobs, misses).
    counts: (u64, u64),
    /// The controller holds a budget of `runtime_ns` because the response
    /// p99 is inside its band: its last decision was `on-target` at this
    /// very budget.
    on_target: bool,
}

fn status_reading() -> Option<StatusReading> {
    let s = daemon_status()?;
    let adaptive = s.adaptive.get("api.service");
    let runtime_ns = adaptive.map_or(0, |a| a.runtime_us * 1000);
    let on_target = adaptive
        .and_then(|a| a.last.as_ref())
        .is_some_and(|d| d.outcome == "on-target" && d.from_us * 1000 == runtime_ns);
    let stats = s.targets.iter().find(|t| t.key == "api.service")?.stats.clone()?;
    Some(StatusReading { runtime_ns, counts: (stats.get(Counter::Jobs), stats.get(Counter::DeadlineMisses)), on_target })
}

fn miss_ratio(from: (u64, u64), to: (u64, u64)) -> (f64, u64) {
    let jobs = to.0.saturating_sub(from.0);
    (to.1.saturating_sub(from.1) as f64 / jobs.max(1) as f64, jobs)
}

/// The scenario.
pub fn run(env: &Env) -> Result<Report> {
    let mut report = Report::new("adapt");
    setup_cgroups(env)?;
    let bpftool = env.exe("bpftool");
    let _ = std::fs::remove_file(scx_slo_api::paths::STATE_FILE);
    write_config(&adapt_config())?;
    let api_id = kernel::cgroup_id(&env.cg(API))?;
    let (light_s, heavy_s) = (16u64, 56u64);
    let total = D::from_secs(light_s + heavy_s + 40);

    let mut children = Vec::new();
    for i in 0..2 * crate::harness::num_cpus() {
        children.push(Workload::hog().cgroup(env.cg(BATCH)).duration(total).out(format!("/tmp/adapt-hog{i}.json")).spawn(env)?);
    }
    let light = Workload::probe().cgroup(env.cg(API)).period(D::from_ms(10)).work(D::from_us(300)).deadline(D::from_ms(8));
    children.push(light.duration(total).out("/tmp/adapt-light.json").spawn(env)?);

    let mut daemon = Daemon::start(env, "adapt")?;
    if daemon.wait_enabled(Duration::from_secs(60)).is_none() {
        report.check("adapt: scx_slo attached", false, daemon.log_tail());
        return Ok(report);
    }
    let watch = kernel::AttachWatch::start("scx_slo");
    let seq_at_start = kernel::enable_seq();
    let runtime = || kernel::target_runtime_ns(&bpftool, api_id).ok().flatten().unwrap_or(0);
    // The runtime in force and the counters, once a second from the status
    // file: (seconds since the step, runtime ns, jobs, misses).
    let mut series: Vec<(f64, u64, u64, u64)> = Vec::new();
    let light_start = Instant::now();
    let mut last = None;
    while light_start.elapsed() < Duration::from_secs(light_s) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(reading) = status_reading() {
            let (jobs, misses) = reading.counts;
            series.push((light_start.elapsed().as_secs_f64() - light_s as f64, reading.runtime_ns, jobs, misses));
            last = Some((reading.runtime_ns, reading.counts));
        }
    }
    let (before_step, at_step) = last.unwrap_or_default();

    // The step: a second probe, 3 ms of CPU every 10 ms, and two more hogs
    // per vCPU for as long. Since a latency task past its budget keeps its
    // CPU while it is not ahead in fair share (the floor), the probe alone
    // next to two hogs per vCPU got about the 0.33 CPU it needs at 1 ms:
    // one run's controller had nothing to raise for 42 s. With four hogs
    // per vCPU its fair share is about 0.2 CPU, and only the budget covers
    // the step, as the service-histogram phase found too.
    let heavy = Workload::probe().cgroup(env.cg(API)).period(D::from_ms(10)).work(D::from_ms(3)).deadline(D::from_ms(8));
    children.push(heavy.duration(D::from_secs(heavy_s + 2)).out("/tmp/adapt-heavy.json").spawn(env)?);
    for i in 0..2 * crate::harness::num_cpus() {
        children.push(Workload::hog().cgroup(env.cg(BATCH)).duration(D::from_secs(heavy_s + 2)).out(format!("/tmp/adapt-step-hog{i}.json")).spawn(env)?);
    }
    let step = Instant::now();
    // When the controller first held a budget above the step's because the
    // p99 was inside its band, and that budget.
    let (mut early, mut late_start, mut at_end, mut settled) = (None, None, at_step, None);
    while step.elapsed() < Duration::from_secs(heavy_s) {
        std::thread::sleep(Duration::from_secs(1));
        let t = step.elapsed().as_secs_f64();
        let Some(reading) = status_reading() else { continue };
        let (r, counts) = (reading.runtime_ns, reading.counts);
        series.push((t, r, counts.0, counts.1));
        if settled.is_none() && reading.on_target && r > before_step {
            settled = Some((t, r));
        }
        if early.is_none() && t >= 8.0 {
            early = Some(counts);
        }
        if late_start.is_none() && t >= (heavy_s - 14) as f64 {
            late_start = Some(counts);
        }
        at_end = counts;
    }
    // The kernel's own view at the end: the budget in its maps, and its
    // counters at least what the status file showed a moment before.
    // The controller keeps running while bpftool reads (seconds under
    // TCG): the kernel's budget must be the status file's just before or
    // just after the read.
    let status_before = status_reading().map(|r| r.runtime_ns);
    let after = runtime();
    let kernel_counts = kernel_jobs_misses(env, api_id);
    let status_after = status_reading().map(|r| r.runtime_ns);
    let attachment = watch.finish();
    let (early_ratio, early_jobs) = miss_ratio(at_step, early.unwrap_or(at_step));
    let (late_ratio, late_jobs) = miss_ratio(late_start.unwrap_or(at_end), at_end);
    let status = daemon_status();
    let adaptive = status.as_ref().and_then(|s| s.adaptive.get("api.service").cloned());
    report.check(
        "adapt: the status file's numbers are the kernel's (bpftool: the budget in the maps, the counters at least as high)",
        after > 0 && (status_before == Some(after) || status_after == Some(after)) && kernel_counts.0 >= at_end.0 && kernel_counts.1 >= at_end.1,
        format!("kernel runtime {after} ns, status before/after the read {status_before:?}/{status_after:?} ns; kernel jobs/misses {kernel_counts:?}, status {at_end:?}"),
    );

    report.check(
        "adapt: scx_slo stays attached through the step (no ejection)",
        attachment.attached,
        format!(
            "ejections: {:?}; state {}, ops {:?}, enable_seq {} (was {seq_at_start})",
            attachment.ejections,
            kernel::sched_ext_state(),
            kernel::root_ops(),
            kernel::enable_seq()
        ),
    );
    let bound = (MAX_INTERVALS_TO_RAISE * INTERVAL_S) as f64;
    report.check(
        format!("adapt: after the load step the controller raises the kernel's budget until the response p99 is inside its band within {MAX_INTERVALS_TO_RAISE} intervals ({bound:.0} s), and holds it above the step's"),
        settled.is_some_and(|(t, _)| t <= bound + 1.0) && after > before_step,
        format!(
            "runtime {before_step} ns at the step; on target at a raised budget (s after the step, ns): {settled:?}; {after} ns at the end; last decision {:?}",
            adaptive.as_ref().and_then(|a| a.last.as_ref()).map(|d| (&d.outcome, d.p99_us, d.from_us))
        ),
    );
    // Since the scheduler keeps a latency task's CPU when its budget runs
    // out mid-job (the floor, docs/scheduler.md), 1 ms already meets the
    // 8 ms deadline for almost every job: a CI run saw 1 miss in 1,595 jobs
    // after the step and 3 in 3,009 at the raised budget, and "falls"
    // compared two near-zero counts. The controller steers the response
    // p99 (checked above); here the misses must not rise past what the step
    // saw, or past 0.5%.
    report.check(
        "adapt: once the budget is raised the deadline-miss ratio the kernel counts is no higher than after the step, or under 0.5%",
        early_jobs > 0 && late_jobs > 0 && late_ratio <= early_ratio.max(LATE_MISS_RATIO_OK),
        format!(
            "first 8 s after the step {:.2}% of {early_jobs} jobs, last 14 s {:.2}% of {late_jobs} jobs (from the scheduler's counters via the status file)",
            early_ratio * 100.0,
            late_ratio * 100.0
        ),
    );
    report.check(
        "adapt: Status reports the controller's changes and the budget the kernel holds",
        adaptive.as_ref().is_some_and(|a| a.changes >= 1 && a.last_change.is_some() && Some(a.runtime_us * 1000) == status_after),
        format!("{adaptive:?}"),
    );

    // A restart starts from the learned budget, not the file's 1 ms: what
    // the state file holds when the daemon stopped is what the kernel's map
    // holds after the restart (or, if the new controller already moved it,
    // what it moved it from).
    daemon.signal(libc::SIGTERM);
    let _ = daemon.wait_exit(Duration::from_secs(20));
    let persisted = std::fs::read(scx_slo_api::paths::STATE_FILE)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["budget_overrides"]["api.service"]["runtime_us"].as_u64())
        .map(|us| us * 1000);
    let mut daemon = Daemon::start(env, "adapt-restart")?;
    let enabled = daemon.wait_enabled(Duration::from_secs(60));
    let restarted = wait_until(Duration::from_secs(5), || runtime() > 0).map(|_| runtime()).unwrap_or(0);
    let moved_from = daemon_status().and_then(|s| s.adaptive.get("api.service").and_then(|a| a.last.clone())).filter(|d| d.outcome == "applied").map(|d| d.from_us * 1000);
    report.check(
        "adapt: after a restart the kernel holds the learned budget (persisted), not the config file's",
        enabled.is_some() && persisted.is_some_and(|p| p != 1_000_000 && (restarted == p || moved_from == Some(p))),
        format!("persisted {persisted:?} ns; kernel after the restart {restarted} ns (a new step from {moved_from:?}); enabled after {:?} ms", enabled.map(ms)),
    );
    tune_and_apply(env, &mut report, &mut daemon, api_id)?;
    // The last phase brings its own load: hogs left from the step would
    // end in the middle of it (they are sized for the step and tune, and
    // TCG's pace moves when), changing the load between its windows.
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    service_sli(env, &mut report, &mut daemon)?;
    daemon.signal(libc::SIGTERM);
    let _ = daemon.wait_exit(Duration::from_secs(20));
    report.facts.insert("interval_s".into(), json!(INTERVAL_S));
    report.facts.insert("runtime_ns_before_step".into(), json!(before_step));
    report.facts.insert("runtime_ns_after".into(), json!(after));
    report.facts.insert("on_target_after_s".into(), json!(settled.map(|(t, _)| t)));
    report.facts.insert("on_target_runtime_ns".into(), json!(settled.map(|(_, r)| r)));
    report.facts.insert("miss_ratio_early".into(), json!(early_ratio));
    report.facts.insert("miss_ratio_late".into(), json!(late_ratio));
    report.facts.insert("series_t_runtime_jobs_misses".into(), json!(series));
    report.facts.insert("adaptive".into(), serde_json::to_value(&adaptive)?);
    // The verdict: every check passed (a report's `ok` starts false).
    report.ok = !report.checks.is_empty() && report.checks.iter().all(|c| c.ok);
    Ok(report)
}

/// `scx-slo tune` against the running service: it profiles the heavy load
/// for 5 s and recommends a budget; that budget, applied as a static one
/// (the adaptive block removed, so only the recommendation acts), must keep
/// the deadline-miss ratio the kernel counts at 2% or under.
fn tune_and_apply(env: &Env, report: &mut Report, daemon: &mut Daemon, api_id: u64) -> Result<()> {
    // Long enough for the profile, the daemon's restart (about 13 s under
    // TCG) and the 12 s measured after it; killed at the end.
    let secs = D::from_secs(60);
    let mut load = Vec::new();
    for (work, name) in [(D::from_ms(3), "heavy"), (D::from_us(300), "light")] {
        let p = Workload::probe().cgroup(env.cg(API)).period(D::from_ms(10)).work(work).deadline(D::from_ms(8));
        load.push(p.duration(secs).out(format!("/tmp/tune-{name}.json")).spawn(env)?);
    }
    std::thread::sleep(Duration::from_secs(1));
    let out = std::process::Command::new(env.exe("scx-slo"))
        .args(["tune", "api.service", "--duration", "5s", "--period", "10ms", "--config", crate::daemon::CONFIG_PATH, "--json"])
        .args(["--cgroup-root", &env.cgroot.display().to_string(), "--cgroup", API])
        .output()?;
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let rec = &doc["recommendation"];
    let (runtime, period, deadline) = (rec["runtime"].as_str(), rec["period"].as_str(), rec["deadline"].as_str());
    report.check(
        "adapt: scx-slo tune profiles the loaded service and recommends an admissible budget",
        out.status.success() && runtime.is_some() && doc["admission"]["ok"] == true,
        format!("exit {:?}; {}; {}", out.status.code(), rec, String::from_utf8_lossy(&out.stderr).trim()),
    );
    let (Some(runtime), Some(period), Some(deadline)) = (runtime, period, deadline) else {
        return Ok(());
    };
    let mut config = adapt_config();
    let target = &mut config["targets"]["api.service"];
    target.as_object_mut().map(|t| t.remove("adaptive"));
    target["budget"] = json!({ "runtime": runtime, "period": period });
    target["deadline"] = json!(deadline);
    write_config(&config)?;
    // The learned override would stand in for the recommendation: clear it
    // by starting from an empty state.
    daemon.signal(libc::SIGTERM);
    let _ = daemon.wait_exit(Duration::from_secs(20));
    let _ = std::fs::remove_file(scx_slo_api::paths::STATE_FILE);
    *daemon = Daemon::start(env, "adapt-tuned")?;
    let enabled = daemon.wait_enabled(Duration::from_secs(60));
    // Measured once this daemon runs and its status file shows counters.
    let running = wait_until(Duration::from_secs(30), || daemon_state() == "running" && status_reading().is_some());
    // 12 s, about 2,400 jobs: over 6 s (1,200), one stall of the emulator
    // weighed enough to fail a CI run (2.99% of 935 jobs, against 0.08% and
    // 0.10% in the runs around it).
    let from = status_reading().map(|r| r.counts).unwrap_or_default();
    std::thread::sleep(Duration::from_secs(12));
    let to = status_reading().map(|r| r.counts).unwrap_or_default();
    let (ratio, jobs) = miss_ratio(from, to);
    let kernel_runtime = kernel::target_runtime_ns(&env.exe("bpftool"), api_id).ok().flatten();
    report.check(
        "adapt: the recommended budget, applied, meets the deadline (misses <= 2%, from the kernel)",
        enabled.is_some() && running.is_some() && jobs > 0 && ratio <= 0.02,
        format!(
            "budget {runtime} per {period}, deadline {deadline} (kernel runtime {kernel_runtime:?} ns): {:.2}% of {jobs} jobs missed; daemon state {:?} after {:?}; log: {}",
            ratio * 100.0,
            daemon_state(),
            running.map(ms),
            daemon.log_tail()
        ),
    );
    report.facts.insert("tune".into(), doc);
    report.facts.insert("tuned_miss_ratio".into(), json!(ratio));
    for mut c in load {
        let _ = c.kill();
        let _ = c.wait();
    }
    Ok(())
}

/// Where the probe serves its histogram in the last phase.
const SERVE_PORT: u16 = 9464;
/// How long the last phase may take to raise the budget on the service's
/// histogram once the controller may act: from 1 ms, with 3 ms of work per
/// 10 ms next to 4 hogs per CPU, the first interval's p99 is far past the
/// 6 ms objective and one change (at most ×2) comes by the second interval;
/// TCG's start-up and the scraper's second of lag leave room for 10.
const SERVICE_RAISE_S: u64 = 10 * INTERVAL_S;
/// Hogs per CPU in the last phase. With 2 per CPU a latency task past its
/// 1 ms budget still gets about the 0.4 CPU the probe needs from its fair
/// share (the floor in docs/scheduler.md), so 1 ms and a raised budget gave
/// the same service p99 (10.3 ms and 11.7 ms in one CI run, 15.2 ms and
/// 10.0 ms in another): the check measured noise. With 4 per CPU the fair
/// share is about 0.2 CPU and only the budget gives the probe what it needs.
const SERVICE_HOGS_PER_CPU: usize = 4;
/// Seconds of each measured window of the service's own histogram: about
/// 800 requests, so the p99 rests on 8 of them.
const SERVICE_WINDOW_S: u64 = 8;
/// The service's histogram bucket bound at the 8 ms deadline, seconds: the
/// share of requests past it is read from whole buckets, no interpolation.
const SERVICE_DEADLINE_LE: f64 = 0.008;

/// `f`'s first `Some` within `timeout`, trying every 200 ms (a status file
/// rewritten every second, an endpoint: no need to spin under TCG).
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn read_served() -> Option<scx_slo_api::scrape::Buckets> {
    let t = scx_slo_api::scrape::Timeouts { io: Duration::from_secs(5), total: Duration::from_secs(10) };
    scx_slo_api::scrape::http_histogram(&format!("http://127.0.0.1:{SERVE_PORT}/metrics"), "probe_response_seconds", t).ok()
}

/// What the service's own histogram showed over one window: requests, the
/// p99 (seconds) and the share of requests past the deadline.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct ServedWindow {
    requests: u64,
    p99_s: Option<f64>,
    over_deadline: f64,
}

/// The window between two reads of the service's histogram.
fn served_window(from: &Option<scx_slo_api::scrape::Buckets>, to: &Option<scx_slo_api::scrape::Buckets>) -> ServedWindow {
    let (Some(a), Some(b)) = (from, to) else { return ServedWindow::default() };
    let Ok(counts) = scx_slo_api::scrape::interval_counts(a, b) else { return ServedWindow::default() };
    let total: f64 = counts.iter().map(|c| c.1).sum();
    let late: f64 = counts.iter().filter(|c| c.0 > SERVICE_DEADLINE_LE).map(|c| c.1).sum();
    ServedWindow { requests: total as u64, p99_s: scx_slo_api::scrape::counts_p99(&counts), over_deadline: if total > 0.0 { late / total } else { 0.0 } }
}

/// The controller on the service's own histogram: api.service gets a
/// `scrape` block (so `sli` defaults to `service`), its probe serves its
/// response times, and from the file's 1 ms the kernel's budget must rise
/// on what the service reports, not on the scheduler's counters. The first
/// window runs the controller as a dry run, so the kernel holds the file's
/// 1 ms while it is measured; a SIGHUP reload then lets it act.
fn service_sli(env: &Env, report: &mut Report, daemon: &mut Daemon) -> Result<()> {
    daemon.signal(libc::SIGTERM);
    let _ = daemon.wait_exit(Duration::from_secs(20));
    let _ = std::fs::remove_file(scx_slo_api::paths::STATE_FILE);
    let mut config = adapt_config();
    let target = &mut config["targets"]["api.service"];
    target["adaptive"].as_object_mut().map(|a| a.remove("sli"));
    target["adaptive"]["dry_run"] = json!(true);
    target["scrape"] = json!({ "url": format!("http://127.0.0.1:{SERVE_PORT}/metrics"), "histogram": "probe_response_seconds" });
    write_config(&config)?;
    let secs = D::from_secs(SERVICE_RAISE_S + 4 * SERVICE_WINDOW_S + 60);
    let mut load = Vec::new();
    for i in 0..SERVICE_HOGS_PER_CPU * crate::harness::num_cpus() {
        load.push(Workload::hog().cgroup(env.cg(BATCH)).duration(secs).out(format!("/tmp/adapt-service-hog{i}.json")).spawn(env)?);
    }
    let probe = Workload::probe().cgroup(env.cg(API)).period(D::from_ms(10)).work(D::from_ms(3)).deadline(D::from_ms(8)).serve(SERVE_PORT);
    load.push(probe.duration(secs).out("/tmp/adapt-service-probe.json").spawn(env)?);
    *daemon = Daemon::start(env, "adapt-service")?;
    let enabled = daemon.wait_enabled(Duration::from_secs(60));
    let held = || status_reading().map_or(0, |r| r.runtime_ns);
    let first = poll(Duration::from_secs(10), read_served);
    std::thread::sleep(Duration::from_secs(SERVICE_WINDOW_S));
    let early_end = read_served();
    let early_runtime = held();
    let early = served_window(&first, &early_end);

    target_act(&mut config);
    write_config(&config)?;
    daemon.signal(libc::SIGHUP);
    let start = Instant::now();
    let raised = poll(Duration::from_secs(SERVICE_RAISE_S), || (held() > 1_000_000).then(|| start.elapsed().as_secs_f64()));
    // Settle, then the service's own histogram over a late stretch.
    std::thread::sleep(Duration::from_secs(12));
    let late_start = read_served();
    std::thread::sleep(Duration::from_secs(SERVICE_WINDOW_S));
    let late_end = read_served();
    let late = served_window(&late_start, &late_end);
    let late_runtime = held();
    let status = daemon_status();
    let adaptive = status.as_ref().and_then(|s| s.adaptive.get("api.service").cloned());
    let scrape = status.as_ref().and_then(|s| s.scrapes.get("api.service").cloned());
    let why = adaptive.as_ref().and_then(|a| a.last_change.as_ref()).map(|c| c.why.clone()).unwrap_or_default();
    report.check(
        format!("adapt: with a scrape block the controller raises the kernel's budget on the service's own histogram within {SERVICE_RAISE_S} s of being let act (a dry run held 1 ms)"),
        enabled.is_some() && early_runtime == 1_000_000 && raised.is_some() && why.contains("service p99") && late_runtime > 1_000_000,
        format!("enabled after {:?} ms; dry run held {early_runtime} ns; first raise {raised:?} s after the reload: {why:?}; {late_runtime} ns later; log: {}", enabled.map(ms), daemon.log_tail()),
    );
    report.check(
        "adapt: the daemon's scraper reads the service's endpoint every second (Status.scrapes)",
        scrape.as_ref().is_some_and(|r| r.ok >= 10 && r.last_error.is_none()),
        format!("{scrape:?}"),
    );
    report.check(
        "adapt: the service's own p99 and its share of requests past the 8 ms deadline fall once the budget is raised",
        early.requests > 0 && late.requests > 0 && late.p99_s < early.p99_s && late.over_deadline < early.over_deadline,
        format!(
            "{early_runtime} ns: p99 {:?} s, {:.2}% past 8 ms of {} requests; {late_runtime} ns: p99 {:?} s, {:.2}% past 8 ms of {} requests",
            early.p99_s,
            early.over_deadline * 100.0,
            early.requests,
            late.p99_s,
            late.over_deadline * 100.0,
            late.requests
        ),
    );
    report.facts.insert("service_sli".into(), json!({
        "raised_after_reload_s": raised, "runtime_ns_early": early_runtime, "runtime_ns_late": late_runtime, "why": why,
        "early": early, "late": late, "scrape": scrape, "adaptive": adaptive,
    }));
    for mut c in load {
        let _ = c.kill();
        let _ = c.wait();
    }
    Ok(())
}

/// Lets the dry-run controller act: the same config, `dry_run` off.
fn target_act(config: &mut Value) {
    config["targets"]["api.service"]["adaptive"]["dry_run"] = json!(false);
}
