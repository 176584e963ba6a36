// SPDX-License-Identifier: GPL-2.0-only
//! The enforce scenario: the acceptance test of enforce mode on a real
//! sched_ext kernel (both switch modes, ejections and the breaker, a config
//! refused at start), checked on what the kernel shows.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use scx_slo_api::Counter;
use serde_json::{json, Value};

use crate::daemon::{daemon_state, daemon_status, write_config, Daemon, CONFIG_PATH};
use crate::fixtures::{enforce_config, setup_cgroups, API, BATCH, GREEDY, TIGHT, UNTARGETED};
use crate::harness::{metric_value, ms, read_json, scrape_metrics, wait_until, Env, Report};
use crate::kernel;
use crate::spawn::Workload;
use crate::workload::{HogResult, ProbeResult, SCHED_EXT};

fn counter(stats: &kernel::KernelTargetStats, c: Counter) -> u64 {
    stats.cnt.get(c.index()).copied().unwrap_or(0)
}

/// One enforce run in `switch` mode.
fn enforce_mode(env: &Env, report: &mut Report, switch: &str) -> Result<()> {
    let partial = switch == "partial";
    let bpftool = env.exe("bpftool");
    let secs = scx_slo_model::Duration::from_secs(env.seconds);
    let mut facts = serde_json::Map::new();

    report.check(format!("{switch}: sched_ext disabled before start"), kernel::sched_ext_state() == "disabled", kernel::sched_ext_state());

    // Tasks that exist before the scheduler: one in a target, one untargeted.
    let mut pre_api = Workload::idle().cgroup(env.cg(API)).spawn(env)?;
    let mut pre_untargeted = Workload::idle().cgroup(env.cg(UNTARGETED)).spawn(env)?;
    std::thread::sleep(Duration::from_millis(200));

    write_config(&enforce_config(switch))?;
    let spawned = Instant::now();
    let mut daemon = Daemon::start(env, switch)?;
    let enabled = daemon.wait_enabled(Duration::from_secs(60));
    let ops = kernel::root_ops();
    report.check(
        format!("{switch}: state enabled with root ops scx_slo after start"),
        enabled.is_some() && ops == "scx_slo",
        format!("state={} ops={ops:?} after {:?} ms; daemon log: {}", kernel::sched_ext_state(), enabled.map(ms), daemon.log_tail()),
    );
    facts.insert("start_to_enabled_ms".into(), json!(enabled.map(ms)));
    if enabled.is_none() {
        return Ok(());
    }
    // Recorded, not asserted: the kernel matrix in docs/testing.md.
    match kernel::verified_insns(&bpftool) {
        Ok(insns) => {
            eprintln!("{switch}: verified instructions per program {insns:?}");
            facts.insert("verified_insns".into(), json!(insns));
        }
        Err(e) => eprintln!("{switch}: no verifier counts: {e:#}"),
    }

    map_memory_matches_the_rule(report, switch, &enforce_config(switch), &mut facts);

    // Existing tasks: switched (partial) or on sched_ext anyway (all).
    let pre_pid = pre_api.id() as i32;
    let untargeted_pid = pre_untargeted.id() as i32;
    let switched = wait_until(Duration::from_secs(3), || !partial || kernel::policy(pre_pid) == SCHED_EXT);
    if partial {
        report.check(
            format!("{switch}: a task already in a target is switched to SCHED_EXT"),
            switched.is_some(),
            format!("policy={} after {:?} ms, ext.enabled={:?}", kernel::policy(pre_pid), switched.map(ms), kernel::ext_enabled(pre_pid)),
        );
    }

    // Measurement workloads start after attach and move into their cgroups;
    // in partial mode each waits until the daemon switched it.
    use scx_slo_model::Duration as D;
    let mut children: Vec<(&str, Child)> = Vec::new();
    let probe = |name: &str, cg: &str, work: D, deadline: D| {
        let probe = Workload::probe().cgroup(env.cg(cg)).period(D::from_ms(10)).work(work).deadline(deadline).duration(secs);
        probe.out(format!("/tmp/{name}-{switch}.json")).wait_ext(partial)
    };
    let hog = |name: &str, cg: &str| Workload::hog().cgroup(env.cg(cg)).duration(secs).out(format!("/tmp/{name}-{switch}.json")).wait_ext(partial);
    children.push(("api", probe("api", API, D::from_us(300), D::from_ms(5)).spawn(env)?));
    children.push(("tight", probe("tight", TIGHT, D::from_ms(3), D::from_ms(4)).spawn(env)?));
    children.push(("greedy", hog("greedy", GREEDY).spawn(env)?));
    children.push(("hog1", hog("hog1", BATCH).spawn(env)?));
    children.push(("hog2", hog("hog2", BATCH).spawn(env)?));

    let watch = kernel::AttachWatch::start("scx_slo");
    std::thread::sleep(Duration::from_millis(1500));
    if partial {
        // The workloads moved themselves into targets after the attach: the
        // scheduler reports each move and the daemon switches it at once;
        // its scan (every second) is only the safety net.
        // (The status file is rewritten every second: wait for it.)
        let switched = || daemon_status().map(|s| s.partial_switch).unwrap_or_default();
        wait_until(Duration::from_secs(5), || switched().by_event >= 5);
        let sw = switched();
        report.check(
            format!("{switch}: tasks moving into targets are switched on the scheduler's report, not by polling"),
            sw.by_event >= 5,
            format!("switched by event {}, by scan {}", sw.by_event, sw.by_scan),
        );
    }
    let targeted_tids: Vec<i32> = [API, TIGHT, GREEDY, BATCH].iter().flat_map(|c| kernel::cgroup_threads(&env.cg(c))).collect();
    let not_ext: Vec<i32> = targeted_tids.iter().copied().filter(|t| partial && kernel::policy(*t) != SCHED_EXT).collect();
    let ext_flags: Vec<Option<bool>> = targeted_tids.iter().map(|t| kernel::ext_enabled(*t)).collect();
    let untargeted_ext = kernel::ext_enabled(untargeted_pid);
    let untargeted_policy = kernel::policy(untargeted_pid);
    let (ok, expect) = if partial {
        (
            !targeted_tids.is_empty()
                && not_ext.is_empty()
                && ext_flags.iter().all(|f| f.unwrap_or(true))
                && untargeted_policy == 0
                && !untargeted_ext.unwrap_or(false),
            "targeted threads SCHED_EXT, the untargeted task stays SCHED_OTHER",
        )
    } else {
        (ext_flags.iter().all(|f| f.unwrap_or(true)) && untargeted_ext.unwrap_or(true), "every task runs on sched_ext")
    };
    report.check(
        format!("{switch}: {expect}"),
        ok,
        format!(
            "{} targeted threads, not SCHED_EXT: {not_ext:?}, ext.enabled: {:?}; untargeted policy={untargeted_policy} ext.enabled={untargeted_ext:?}",
            targeted_tids.len(),
            ext_flags.iter().filter(|f| **f == Some(true)).count()
        ),
    );

    for (name, child) in children.iter_mut() {
        let status = child.wait()?;
        if !status.success() {
            report.check(format!("{switch}: workload {name} ran"), false, format!("exit {status}"));
        }
    }
    // The no-starvation promise, from the kernel's side (docs/scheduler.md): the
    // scheduler stayed attached, and no task waited past the hunt's bound
    // for this config's (default) max_wait and slice_max.
    let attachment = watch.finish();
    let global = kernel::global_stats(&bpftool).unwrap_or_default();
    let (max_wait_ns, tid) = (global.max_wait_ns, global.max_wait_tid);
    let (max_wait, slice_max) = (scx_slo_model::defaults::MAX_WAIT, scx_slo_model::defaults::SLICE_MAX);
    let bound_ms = crate::hunt::wait_bound_ns(max_wait.as_ns() / 1_000, slice_max.as_ns() / 1_000, partial) as f64 / 1e6;
    // Which task waited: a kthread, the harness, a hog (it may have exited).
    let who = std::fs::read_to_string(format!("/proc/{tid}/comm")).map_or_else(|_| "exited".into(), |c| c.trim().to_string());
    report.check(
        format!("{switch}: no ejection and no task waits past the bound ({bound_ms:.0} ms)"),
        attachment.attached && max_wait_ns > 0 && max_wait_ns as f64 / 1e6 <= bound_ms,
        format!(
            "attached={} ejections={:?}; longest wait {:.2} ms (tid {tid}: {who})",
            attachment.attached,
            attachment.ejections,
            max_wait_ns as f64 / 1e6
        ),
    );
    facts.insert("max_wait_ms".into(), json!(max_wait_ns as f64 / 1e6));
    // Kernel-refilled slices the scheduler cut back to slice_max (in
    // partial mode, mostly tasks a fair-class task preempted while they
    // were migration-disabled): recorded, the trace behind it is in
    // docs/scheduler.md.
    let clamps = global.counter(scx_slo_bpf::intf::slo_gstat_id_SLO_GSTAT_SLICE_CLAMPS);
    eprintln!("{switch}: slices the kernel refilled, cut to slice_max: {clamps}");
    facts.insert("slice_clamps".into(), json!(clamps));
    let api: ProbeResult = read_json(&format!("/tmp/api-{switch}.json"))?;
    let tight: ProbeResult = read_json(&format!("/tmp/tight-{switch}.json"))?;
    let hogs: Vec<(String, HogResult)> = ["greedy", "hog1", "hog2"]
        .iter()
        .map(|n| Ok((n.to_string(), read_json::<HogResult>(&format!("/tmp/{n}-{switch}.json"))?)))
        .collect::<Result<_>>()?;

    // The kernel's counters, through bpftool.
    let ids: BTreeMap<&str, u64> = [("api.service", API), ("tight.service", TIGHT), ("greedy.service", GREEDY), ("batch.slice", "batch.slice")]
        .iter()
        .map(|(k, c)| Ok((*k, kernel::cgroup_id(&env.cg(c))?)))
        .collect::<Result<_>>()?;
    let stats = kernel::target_stats_by_cgroup(&bpftool, &ids.values().copied().collect::<Vec<_>>())?;
    let get = |unit: &str| stats.get(&ids[unit]).cloned().unwrap_or_default();
    let (api_k, tight_k, batch_k) = (get("api.service"), get("tight.service"), get("batch.slice"));
    let mut per_target = serde_json::Map::new();
    for unit in ids.keys() {
        let k = get(unit);
        per_target.insert(unit.to_string(), json!({
            "wakeups": counter(&k, Counter::Wakeups), "jobs": counter(&k, Counter::Jobs), "deadline_misses": counter(&k, Counter::DeadlineMisses),
            "runtime_ms": counter(&k, Counter::RuntimeNs) as f64 / 1e6, "edf_enqueues": counter(&k, Counter::EdfEnqueues),
            "vtime_enqueues": counter(&k, Counter::VtimeEnqueues), "budget_exhausted": counter(&k, Counter::BudgetExhausted),
            "preempt_kicks": counter(&k, Counter::PreemptKicks), "early_warnings": counter(&k, Counter::EarlyWarnings),
        }));
    }
    facts.insert("kernel_stats".into(), Value::Object(per_target));
    facts.insert("api_probe".into(), serde_json::to_value(&api)?);
    facts.insert("tight_probe".into(), serde_json::to_value(&tight)?);
    facts.insert("hogs".into(), serde_json::to_value(&hogs)?);

    let wakeups = counter(&api_k, Counter::Wakeups);
    report.check(
        format!("{switch}: the kernel counts api.service wakeups"),
        wakeups as f64 >= 0.5 * api.completion_us.n as f64 && wakeups > 0,
        format!("kernel wakeups={wakeups}, probe requests={}", api.completion_us.n),
    );
    // Thresholds are calibrated for QEMU TCG, where a vCPU thread can stall
    // for milliseconds on the host: EEVDF itself missed 0-5% of these 5 ms
    // deadlines in the demo. "Almost none" is <= 2%.
    let (api_jobs, api_miss) = (counter(&api_k, Counter::Jobs), counter(&api_k, Counter::DeadlineMisses));
    let (tight_jobs, tight_miss) = (counter(&tight_k, Counter::Jobs), counter(&tight_k, Counter::DeadlineMisses));
    let api_rate = api_miss as f64 / api_jobs.max(1) as f64;
    let tight_rate = tight_miss as f64 / tight_jobs.max(1) as f64;
    report.check(
        format!("{switch}: admitted api.service records (almost) no deadline misses"),
        api_jobs > 0 && api_rate <= 0.02,
        format!(
            "misses={api_miss} of {api_jobs} jobs ({:.2}%, tight.service {:.1}%); probe p99 completion {:.0} us",
            api_rate * 100.0,
            tight_rate * 100.0,
            api.completion_us.p99
        ),
    );
    // tight.service's 100 us per 10 ms cannot cover its 3 ms jobs: the
    // budget runs out in every period with a job, and the rest of each job
    // runs by fair share (the floor, docs/scheduler.md). Before the floor
    // it missed 92-94% of its 4 ms deadlines; with the floor's first three
    // fixes 38-74% (each job still waited behind a batch slice when its
    // budget ran out mid-job); since the scheduler keeps a latency task's
    // CPU then, 4.8-20.6%. 35% separates the last two.
    let exhausted = counter(&tight_k, Counter::BudgetExhausted);
    report.check(
        format!("{switch}: under-budget tight.service runs out of budget in (almost) every period with a job, and falls back to fair share (under 35% of its deadlines missed), not behind the batch work"),
        tight_jobs > 0 && exhausted as f64 >= 0.9 * tight_jobs as f64 && tight_rate < 0.35,
        format!("misses={tight_miss} of {tight_jobs} jobs ({:.1}%), budget exhausted in {exhausted} periods", tight_rate * 100.0),
    );
    // The metrics endpoint reads the same maps: its api.service jobs are at
    // least what bpftool saw a moment ago (the counters only grow), once a
    // scan has run since (the snapshot is refreshed every telemetry
    // interval, 1 s: the workload may have ended just after the last one).
    let (mut metrics, mut metric_jobs) = (String::new(), None);
    wait_until(Duration::from_secs(3), || {
        metrics = scrape_metrics().unwrap_or_default();
        metric_jobs = metric_value(&metrics, "scx_slo_jobs_total{unit=\"api.service\"}");
        let caught_up = metric_jobs.is_some_and(|j| j >= api_jobs as f64);
        if !caught_up {
            std::thread::sleep(Duration::from_millis(200));
        }
        caught_up
    });
    report.check(
        format!("{switch}: /metrics shows enforce mode and the kernel's api.service counters"),
        metrics.contains("scx_slo_mode{mode=\"enforce\"} 1") && metric_jobs.is_some_and(|j| j >= api_jobs as f64 && api_jobs > 0),
        format!("scx_slo_jobs_total={metric_jobs:?}, bpftool jobs={api_jobs}"),
    );
    let batch_ok = hogs.iter().filter(|(n, _)| n.starts_with("hog")).all(|(_, h)| h.iterations > 0 && h.cpu_share >= 0.05);
    report.check(
        format!("{switch}: batch hogs keep progressing next to a greedy latency unit (vruntime guard)"),
        batch_ok && counter(&batch_k, Counter::Runs) > 0,
        hogs.iter().map(|(n, h)| format!("{n} cpu_share={:.2}", h.cpu_share)).collect::<Vec<_>>().join(", "),
    );

    // A bad config is refused on reload; the running scheduler and maps stay.
    let cfg_before = kernel::target_cfg_snapshot(&bpftool)?;
    let mut bad = enforce_config(switch);
    bad["targets"]["api.service"]["budget"]["runtime"] = json!("12ms");
    write_config(&bad)?;
    daemon.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(1500));
    let alive = matches!(daemon.child.try_wait(), Ok(None));
    let cfg_after = kernel::target_cfg_snapshot(&bpftool)?;
    report.check(
        format!("{switch}: a bad config sent by SIGHUP is refused and the running scheduler stays"),
        alive && kernel::sched_ext_state() == "enabled" && kernel::root_ops() == ops && cfg_before == cfg_after,
        format!("daemon alive={alive}, state={}, maps unchanged={}; log: {}", kernel::sched_ext_state(), cfg_before == cfg_after, daemon.log_tail()),
    );
    let second = Command::new(env.exe("scx-slod"))
        .args(["--config", CONFIG_PATH, "--status-file", "/tmp/second-status.json"])
        .stderr(Stdio::piped())
        .output()?;
    report.check(
        format!("{switch}: a second daemon with the bad config exits 1 and touches nothing"),
        second.status.code() == Some(1) && kernel::sched_ext_state() == "enabled" && kernel::root_ops() == ops,
        format!("exit={:?}: {}", second.status.code(), String::from_utf8_lossy(&second.stderr).lines().take(2).collect::<Vec<_>>().join(" | ")),
    );
    write_config(&enforce_config(switch))?;

    if let Some(s) = daemon_status() {
        facts.insert("daemon_load_ms".into(), json!(s.load_ms));
        facts.insert("daemon_attach_ms".into(), json!(s.attach_ms));
        facts.insert("daemon_last_apply_us".into(), json!(s.last_apply_us));
        facts.insert("daemon_switched_threads".into(), json!(s.switched_threads));
    }

    // Clean stop: the kernel goes back to its default scheduler.
    daemon.signal(libc::SIGTERM);
    let disabled = wait_until(Duration::from_secs(20), || kernel::sched_ext_state() == "disabled");
    let code = daemon.wait_exit(Duration::from_secs(20));
    facts.insert("sigterm_to_disabled_ms".into(), json!(disabled.map(ms)));
    let restored = !partial || kernel::policy(pre_pid) == 0;
    report.check(
        format!("{switch}: SIGTERM detaches: state disabled, threads restored"),
        disabled.is_some() && code == Some(0) && restored,
        format!("disabled after {:?} ms, exit={code:?}, pre-existing task policy={}", disabled.map(ms), kernel::policy(pre_pid)),
    );
    let _ = pre_api.kill();
    let _ = pre_untargeted.kill();
    let _ = pre_api.wait();
    let _ = pre_untargeted.wait();
    facts.insert("spawn_to_enabled_ms".into(), json!(ms(spawned.elapsed())));
    report.facts.insert(switch.to_string(), Value::Object(facts));
    Ok(())
}

/// The daemon's status file, when there is one and it is a Status document.
/// SysRq-S ejects the scheduler: the host is on the default scheduler at
/// once, the daemon backs off and re-attaches; the third ejection within the
/// window opens the breaker and it stays off.
fn ejection(env: &Env, report: &mut Report) -> Result<()> {
    write_config(&enforce_config("partial"))?;
    let _ = std::fs::remove_file(scx_slo_api::paths::STATE_FILE);
    let mut daemon = Daemon::start_with(env, "eject", &["--retry-backoff", "1s", "--breaker-failures", "3"])?;
    if daemon.wait_enabled(Duration::from_secs(60)).is_none() {
        report.check("ejection: scheduler started", false, daemon.log_tail());
        return Ok(());
    }
    let mut reattach_ms = Vec::new();
    for round in 1..=3 {
        std::fs::write("/proc/sysrq-trigger", "S").context("writing S to /proc/sysrq-trigger")?;
        let off = wait_until(Duration::from_secs(5), || kernel::sched_ext_state() == "disabled");
        if round < 3 {
            let back = wait_until(Duration::from_secs(90), || kernel::sched_ext_state() == "enabled");
            reattach_ms.push(back.map(ms));
            report.check(
                format!("ejection {round}: SysRq-S puts the host on the default scheduler, the daemon backs off and re-attaches"),
                off.is_some() && back.is_some(),
                format!("disabled after {:?} ms, enabled again after {:?} ms (backoff {}s)", off.map(ms), back.map(ms), 1 << (round - 1)),
            );
        } else {
            std::thread::sleep(Duration::from_secs(6));
            let alive = matches!(daemon.child.try_wait(), Ok(None));
            let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
            let ok = off.is_some() && kernel::sched_ext_state() == "disabled" && alive && daemon_state() == "failed"
                && log.contains("sysrq") && log.contains("circuit breaker open");
            if !ok {
                eprintln!("--- scx-slod log ---\n{log}");
            }
            report.check(
                "ejection 3: the circuit breaker opens, the scheduler stays off, the daemon stays up and logs the reason",
                ok,
                format!("state={}, daemon alive={alive}, daemon state={:?}; log: {}", kernel::sched_ext_state(), daemon_state(), daemon.log_tail()),
            );
            // Degrading: with enforce off, the daemon keeps measuring in observe mode.
            let mode = daemon_status().map(|s| s.mode).unwrap_or_default();
            let metrics = scrape_metrics().unwrap_or_default();
            report.check(
                "ejection 3: enforce off, the daemon falls back to observe mode (status and /metrics)",
                mode == "observe" && metrics.contains("scx_slo_mode{mode=\"observe\"} 1") && metrics.contains("scx_slo_state{state=\"failed\"} 1"),
                format!("status mode={mode:?}; metrics mode lines: {}", metrics.lines().filter(|l| l.starts_with("scx_slo_mode{") || l.starts_with("scx_slo_state{")).collect::<Vec<_>>().join(", ")),
            );
        }
    }
    report.facts.insert("ejection_reattach_ms".into(), json!(reattach_ms));
    // The audit trail (docs/security.md) has each ejection with the kernel's
    // reason, the breaker opening, and the SIGHUP reloads of both modes
    // (the refused bad config among them), and it verifies.
    let mut entries = Vec::new();
    let verified = scx_slo_api::audit::verify_with(std::path::Path::new(scx_slo_api::paths::AUDIT_DIR), |e| entries.push(e.clone()));
    let ejected = entries.iter().filter(|e| e.kind == "scheduler" && e.action == "ejected by the kernel" && e.detail["kind"].as_str().is_some()).count();
    let breaker = entries.iter().filter(|e| e.kind == "breaker" && e.action == "opened").count();
    let reloads = entries.iter().filter(|e| e.kind == "call" && e.action == "Reload" && e.caller.as_ref().is_some_and(|c| c.via == "signal")).count();
    let refused_reload = entries.iter().any(|e| e.kind == "call_result" && e.action == "Reload" && e.detail["ok"] == false);
    report.check(
        "the audit trail verifies and records the ejections with the kernel's reason, the breaker, and the SIGHUP reloads (the refused one too)",
        verified.is_ok() && ejected >= 3 && breaker >= 1 && reloads >= 2 && refused_reload,
        format!("{:?}; ejections {ejected}, breaker openings {breaker}, SIGHUP reloads {reloads}, a refused reload recorded {refused_reload}", verified.map(|v| (v.entries, v.last_seq))),
    );
    daemon.signal(libc::SIGTERM);
    daemon.wait_exit(Duration::from_secs(20));
    let _ = std::fs::remove_file(scx_slo_api::paths::STATE_FILE);
    Ok(())
}

fn invalid_at_start(env: &Env, report: &mut Report) -> Result<()> {
    let mut bad = enforce_config("partial");
    bad["targets"]["api.service"]["priority"] = json!(5000);
    write_config(&bad)?;
    let out = Command::new(env.exe("scx-slod")).args(["--config", CONFIG_PATH]).stderr(Stdio::piped()).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    report.check(
        "a daemon started with an invalid config exits 1, names the field, and loads nothing",
        out.status.code() == Some(1) && stderr.contains("targets.\"api.service\".priority") && kernel::sched_ext_state() == "disabled",
        format!("exit={:?}, state={}, stderr: {}", out.status.code(), kernel::sched_ext_state(), stderr.lines().last().unwrap_or("")),
    );
    Ok(())
}

/// The per-target maps hold the slots the config's size asks for,
/// and the kernel's count of every map's memory is the sizing rule's plus a
/// struct header (`scx_slo_bpf::map_memory`).
fn map_memory_matches_the_rule(report: &mut Report, switch: &str, config: &serde_json::Value, facts: &mut serde_json::Map<String, serde_json::Value>) {
    // The status file is written a moment after the attach.
    let mut status = None;
    wait_until(Duration::from_secs(5), || {
        status = crate::daemon::daemon_status().filter(|s| !s.maps.is_empty());
        status.is_some()
    });
    let Some(status) = status else {
        report.check(format!("{switch}: maps sized by the rule"), false, "no status with maps from the daemon");
        return;
    };
    let targets = config["targets"].as_object().map_or(0, |t| t.len());
    let capacity = scx_slo_model::target_capacity(targets) as u64;
    let cpus = libbpf_rs::num_possible_cpus().unwrap_or(0) as u64;
    let rule = scx_slo_bpf::map_memory::rule(cpus, capacity);
    let mut off = Vec::new();
    for (name, want) in &rule {
        match status.maps.iter().find(|m| m.name == *name) {
            Some(m) if m.bytes >= *want && m.bytes - want < scx_slo_bpf::map_memory::HEADER_SLACK => {}
            Some(m) => off.push(format!("{name}: kernel {} bytes, rule {want}", m.bytes)),
            None => off.push(format!("{name}: not in the status")),
        }
    }
    let total: u64 = status.maps.iter().map(|m| m.bytes).sum();
    report.check(
        format!("{switch}: maps sized for {targets} targets and {cpus} CPUs as the rule says"),
        u64::from(status.target_capacity) == capacity && off.is_empty(),
        format!("capacity {} (rule {capacity}), {} in {} maps; {}", status.target_capacity, scx_slo_bpf::map_memory::mib(total), status.maps.len(), off.join("; ")),
    );
    facts.insert("map_memory".into(), json!({ "capacity": status.target_capacity, "cpus": cpus, "maps": status.maps }));
}

pub fn enforce(env: &Env) -> Result<Report> {
    let mut report = Report::new("enforce");
    setup_cgroups(env)?;
    invalid_at_start(env, &mut report)?;
    for switch in ["partial", "all"] {
        if let Err(e) = enforce_mode(env, &mut report, switch) {
            report.check(format!("{switch}: scenario ran"), false, format!("{e:#}"));
        }
    }
    if let Err(e) = ejection(env, &mut report) {
        report.check("ejection: scenario ran", false, format!("{e:#}"));
    }
    report.ok = !report.checks.is_empty() && report.checks.iter().all(|c| c.ok);
    Ok(report)
}

