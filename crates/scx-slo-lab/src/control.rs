// SPDX-License-Identifier: GPL-2.0-only
//! The `control` VM scenario: the D-Bus control plane on a real sched_ext
//! kernel with a real dbus-daemon in the guest. Emergency disable latency
//! over 20 calls, kill -9 of the daemon 20 times, and applying 1,000 targets.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use scx_slo_api::dbus::ManagerProxyBlocking;
use scx_slo_api::documents::parse;
use scx_slo_api::Status;
use serde_json::{json, Value};

use crate::kernel;
use crate::daemon::write_config;
use crate::fixtures::{enforce_config, setup_cgroups};
use crate::harness::{ms, wait_until as wait, Env, Report};

const BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

pub(crate) fn start_bus(env: &Env) -> Result<Child> {
    std::fs::create_dir_all("/run/dbus")?;
    std::fs::create_dir_all("/etc/dbus-1/system.d")?;
    std::fs::copy(env.bin.join("org.scxslo1.conf"), "/etc/dbus-1/system.d/org.scxslo1.conf")
        .context("installing the bus policy")?;
    std::fs::write("/etc/dbus-1/guest.conf", scx_slo_api::dbus::private_bus_config(BUS_SOCKET, "/etc/dbus-1/system.d"))?;
    // A bus that died leaves its socket behind: waiting for the path alone
    // would then connect to nothing (the chaos scenario restarts the bus).
    let _ = std::fs::remove_file(BUS_SOCKET);
    let child = Command::new(env.bin.join("dbus-daemon"))
        .args(["--nofork", "--nopidfile", "--config-file=/etc/dbus-1/guest.conf"])
        .stdout(Stdio::null())
        .spawn()
        .context("starting dbus-daemon")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::path::Path::new(BUS_SOCKET).exists() {
        anyhow::ensure!(Instant::now() < deadline, "dbus-daemon did not create {BUS_SOCKET}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// Where the control-plane scenarios' daemons write their journal lines.
pub(crate) const DAEMON_LOG: &str = "/tmp/scx-slod-control.log";

pub(crate) fn daemon(env: &Env) -> Result<Child> {
    Command::new(env.bin.join("scx-slod"))
        .args(["--config", scx_slo_api::paths::CONFIG, "--dbus", "required", "--retry-backoff", "1s"])
        // Appended to: a scenario that restarts the daemon (chaos) keeps
        // every daemon's lines for its report.
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(DAEMON_LOG)?)
        .spawn()
        .context("starting scx-slod")
}

pub(crate) fn manager(conn: &zbus::blocking::Connection) -> Result<ManagerProxyBlocking<'static>> {
    Ok(ManagerProxyBlocking::builder(conn).cache_properties(zbus::proxy::CacheProperties::No).build()?)
}

fn summary(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    json!({ "n": v.len(), "min": v[0], "median": v[v.len() / 2], "max": v[v.len() - 1] })
}

/// A fresh start for a control-plane scenario (control, chaos): the config
/// written, no state file, the guest's bus, and scx-slod on it. Returns the
/// bus, a connection to it, the daemon, and how long it took to run (None:
/// not within 60 s).
pub(crate) fn start_fresh(env: &Env, config: &Value) -> Result<(Child, zbus::blocking::Connection, Child, Option<Duration>)> {
    setup_cgroups(env)?;
    write_config(config)?;
    let _ = std::fs::remove_file(scx_slo_api::paths::STATE_FILE);
    let _ = std::fs::remove_file(DAEMON_LOG);
    let bus = start_bus(env)?;
    let conn = zbus::blocking::Connection::system().context("connecting to the guest's system bus")?;
    let m = manager(&conn)?;
    let d = daemon(env)?;
    let up = wait(Duration::from_secs(60), || m.state().is_ok_and(|s| s == "running"));
    Ok((bus, conn, d, up))
}

/// Runs the scenario.
pub fn run(env: &Env) -> Result<Report> {
    let mut report = Report::new("control");
    let (mut bus, conn, mut d, up) = start_fresh(env, &enforce_config("partial"))?;
    let m = manager(&conn)?;
    report.check("the daemon serves org.scxslo1 and runs the scheduler", up.is_some() && kernel::sched_ext_state() == "enabled",
        format!("state={:?}, kernel={}", m.state().ok(), kernel::sched_ext_state()));
    if up.is_none() {
        eprintln!("{}", std::fs::read_to_string(DAEMON_LOG).unwrap_or_default());
        return Ok(report);
    }

    // Emergency disable, 20 times: call -> reply, and call -> kernel
    // disabled. docs/control.md promises the detach before the reply; the
    // check polls the kernel for up to 5 s after each reply and records how
    // long it took, and how often it was already `disabled` at the reply.
    let (mut to_reply, mut to_kernel, mut enable_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut all_off, mut all_on, mut off_at_reply) = (true, true, 0);
    for i in 0..20 {
        let t = Instant::now();
        m.disable(&format!("timing run {i}")).context("Disable")?;
        to_reply.push(ms(t.elapsed()));
        off_at_reply += usize::from(kernel::sched_ext_state() == "disabled");
        let off = wait(Duration::from_secs(5), || kernel::sched_ext_state() == "disabled");
        all_off &= off.is_some();
        to_kernel.push(ms(t.elapsed()));
        let t = Instant::now();
        m.enable("enforce").context("Enable")?;
        enable_ms.push(ms(t.elapsed()));
        all_on &= kernel::sched_ext_state() == "enabled";
    }
    report.check(
        "Disable x20: the kernel is on its default scheduler within 5 s of each call (time recorded); Enable re-attaches before it returns",
        all_off && all_on,
        format!(
            "disabled within 5 s every time {all_off}, already at the reply {off_at_reply} of 20; enabled when Enable returned every time {all_on}; call->reply ms {}, call->disabled ms {}, enable ms {}",
            summary(to_reply.clone()),
            summary(to_kernel.clone()),
            summary(enable_ms.clone())
        ),
    );
    report.facts.insert("disable_reply_ms".into(), summary(to_reply));
    report.facts.insert("disable_to_kernel_ms".into(), summary(to_kernel));
    report.facts.insert("disabled_at_reply".into(), json!(off_at_reply));
    report.facts.insert("enable_ms".into(), summary(enable_ms));

    // 1,000 targets in one reload.
    let mut big = enforce_config("partial");
    for i in 0..996 {
        let path = format!("/bench/u{i}");
        std::fs::create_dir_all(env.cgroot.join(path.trim_start_matches('/')))?;
        big["targets"][path] = json!({ "class": "batch", "weight": 100 });
    }
    write_config(&big)?;
    // The maps were loaded with 32 slots for 4 targets (docs/scheduler.md, Map memory): the
    // reload is refused before anything is written, and the generation and
    // the scheduler stay. A restart sizes the maps for 1,000.
    let generation = m.config_generation().unwrap_or(0);
    let refused = m.reload().map_err(|e| format!("{e:#}"));
    let refused_ok = matches!(&refused, Err(e) if e.contains("1000 targets do not fit the 32 slots") && e.contains("restart scx-slod"))
        && m.config_generation().unwrap_or(0) == generation
        && kernel::sched_ext_state() == "enabled";
    report.check("Reload with 1,000 targets past the 32 slots loaded for 4 is refused; the generation and the scheduler stay", refused_ok,
        format!("{refused:?}; generation {generation} -> {}", m.config_generation().unwrap_or(0)));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let _ = d.wait();
    let t = Instant::now();
    d = daemon(env)?;
    let up = wait(Duration::from_secs(60), || kernel::sched_ext_state() == "enabled" && m.state().is_ok_and(|s| s == "running"));
    let start_ms = ms(t.elapsed());
    let status: Status = parse("Status", &m.status()?).map_err(anyhow::Error::msg)?;
    let apply_us = status.last_apply_us;
    let resolved = status.targets.iter().filter(|t| t.cgroup_id.is_some()).count();
    let stats_bytes = status.maps.iter().find(|m| m.name == "target_stats").map_or(0, |m| m.bytes);
    report.check(
        "a restart loads maps for 1,000 targets (1,024 slots) and applies them as one generation",
        up.is_some() && resolved == 1000 && status.target_capacity == 1024,
        format!("restart->running {start_ms} ms, apply {apply_us:.0} us; {resolved} resolved; {} slots, target_stats {stats_bytes} bytes", status.target_capacity),
    );
    report.facts.insert("start_1000_targets".into(), json!({ "apply_us": apply_us, "start_ms": start_ms, "target_stats_bytes": stats_bytes }));
    // Fewer targets fit the slots: a reload.
    write_config(&enforce_config("partial"))?;
    m.reload().context("Reload back to 4 targets")?;

    // kill -9, 20 times: the kernel drops the scheduler; a restart re-applies.
    let (mut dropped_ms, mut back_ms) = (Vec::new(), Vec::new());
    let mut all_ok = true;
    for _ in 0..20 {
        let t = Instant::now();
        let _ = d.kill();
        let _ = d.wait();
        let off = wait(Duration::from_secs(10), || kernel::sched_ext_state() == "disabled");
        all_ok &= off.is_some();
        dropped_ms.push(ms(t.elapsed()));
        let t = Instant::now();
        d = daemon(env)?;
        let on = wait(Duration::from_secs(60), || {
            kernel::sched_ext_state() == "enabled" && m.state().is_ok_and(|s| s == "running")
        });
        all_ok &= on.is_some();
        back_ms.push(ms(t.elapsed()));
    }
    let applied = m.config_generation().unwrap_or(0) >= 1
        && kernel::bpftool_dump(&env.bin.join("bpftool"), "cgroup_targets").map(|v| v.len()).unwrap_or(0) == 4;
    report.check(
        "kill -9 x20: the kernel returns to its default scheduler each time; the restarted daemon re-applies the config",
        all_ok && applied,
        format!("kill->disabled ms {}, restart->running ms {}, maps hold 4 targets: {applied}", summary(dropped_ms.clone()), summary(back_ms.clone())),
    );
    report.facts.insert("kill9_to_disabled_ms".into(), summary(dropped_ms));
    report.facts.insert("restart_to_running_ms".into(), summary(back_ms));

    // The audit trail (docs/security.md): every call above is in it with its
    // caller, across the 20 kill -9 restarts, and the chain verifies.
    let mut entries = Vec::new();
    let verified = scx_slo_api::audit::verify_with(std::path::Path::new(scx_slo_api::paths::AUDIT_DIR), |e| entries.push(e.clone()));
    let calls = |action: &str| {
        entries.iter().filter(|e| e.kind == "call" && e.action == action && e.caller.as_ref().is_some_and(|c| c.uid == Some(0) && c.via == "dbus")).count()
    };
    let starts = entries.iter().filter(|e| e.kind == "start").count();
    let (disables, enables, reloads) = (calls("Disable"), calls("Enable"), calls("Reload"));
    let status_head = m.status().ok().and_then(|t| scx_slo_api::documents::parse::<scx_slo_api::Status>("Status", &t).ok()).map(|s| s.audit);
    report.check(
        "the audit trail verifies and records every Disable, Enable and Reload with the caller's uid, across the kill -9 restarts",
        verified.as_ref().is_ok_and(|v| status_head.as_ref().is_some_and(|h| h.last_seq == v.last_seq && h.last_hash == v.last_hash))
            && disables >= 20 && enables >= 20 && reloads >= 1 && starts >= 21,
        format!(
            "{:?}; Disable {disables}, Enable {enables}, Reload {reloads} calls by uid 0 over D-Bus, {starts} daemon starts; Status head {:?}",
            verified.as_ref().map(|v| (v.entries, v.last_seq)),
            status_head.as_ref().map(|h| (h.last_seq, h.append_mean_us))
        ),
    );
    if let Some(h) = &status_head {
        report.facts.insert("audit_append_mean_us".into(), json!(h.append_mean_us));
    }
    report.facts.insert("audit_entries".into(), json!(entries.len()));

    // `scx-slo version --verbose` (docs/security.md, BPF object integrity) names every embedded BPF
    // object with the digest the build recorded (`scx-slod --bpf-digests`).
    let recorded: std::collections::BTreeMap<String, String> = Command::new(env.bin.join("scx-slod"))
        .arg("--bpf-digests")
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default();
    let version = Command::new(env.exe("scx-slo")).args(["version", "--verbose"]).output()?;
    let text = String::from_utf8_lossy(&version.stdout).into_owned();
    let named = recorded.iter().all(|(object, sha)| text.contains(&format!("BPF object {object} sha256 {sha} (verified at start)")));
    report.check(
        "scx-slo version --verbose shows the daemon's version and each BPF object's recorded SHA-256",
        version.status.success() && !recorded.is_empty() && named && text.contains("scx-slod "),
        format!("exit {:?}; {} objects recorded; {}", version.status.code(), recorded.len(), text.trim().replace('\n', " | ")),
    );

    // docs/troubleshooting.md's read-only commands run against this daemon.
    let mut failed = Vec::new();
    let mut ran = 0;
    for line in troubleshooting_reads() {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        let out = Command::new(env.exe("scx-slo")).args(&words).output()?;
        ran += 1;
        if !out.status.success() {
            failed.push(format!("`{line}`: exit {:?} {}", out.status.code(), String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    report.check(
        "docs/troubleshooting.md: every read-only scx-slo command exits 0 against the running daemon",
        ran >= 8 && failed.is_empty(),
        format!("{ran} commands; failed: {failed:?}"),
    );

    let _ = m.disable("scenario done");
    let _ = d.kill();
    let _ = d.wait();
    let _ = bus.kill();
    let _ = std::fs::remove_file(scx_slo_api::paths::STATE_FILE);
    report.ok = !report.checks.is_empty() && report.checks.iter().all(|c| c.ok);
    Ok(report)
}

/// The `scx-slo` lines of docs/troubleshooting.md's `sh` blocks that only
/// read (the mutating ones are the control scenario's own calls above).
fn troubleshooting_reads() -> Vec<&'static str> {
    const READS: [&str; 7] = ["status", "list", "explain", "audit", "health", "check-config", "version"];
    let mut in_sh = false;
    let mut lines = Vec::new();
    for line in include_str!("../../../docs/troubleshooting.md").lines().map(str::trim) {
        if line.starts_with("```") {
            in_sh = line == "```sh";
        } else if in_sh
            && line.split_whitespace().next() == Some("scx-slo")
            && line.split_whitespace().nth(1).is_some_and(|sub| READS.contains(&sub))
        {
            lines.push(line);
        }
    }
    lines.sort_unstable();
    lines.dedup();
    lines
}
