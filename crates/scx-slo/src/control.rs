// SPDX-License-Identifier: GPL-2.0-only
//! The daemon commands: `status`, `list`, `explain`, `enable`, `disable`,
//! `reload`, `set-budget`, `clear-budget`, `reset-breaker`, over D-Bus (the
//! system bus, or `DBUS_SYSTEM_BUS_ADDRESS`), through the wire crate's proxy;
//! replies are read as its typed documents.

use scx_slo_api::dbus::ManagerProxyBlocking;
use scx_slo_api::documents::{parse, TargetList};
use scx_slo_api::exit::cli::{OK, REFUSED, UNREACHABLE};
use scx_slo_api::{Counter, Explain, Status};

/// What to ask the daemon.
pub enum Call {
    /// Status (table or JSON).
    Status { json: bool },
    /// Targets (table or JSON).
    List { json: bool },
    /// One unit.
    Explain { unit: String },
    /// Load the scheduler.
    Enable { mode: String },
    /// Emergency stop.
    Disable { reason: String },
    /// Re-read the config.
    Reload,
    /// Budget override.
    SetBudget { unit: String, runtime_us: u64, period_us: u64, key: String },
    /// Remove a budget override.
    ClearBudget { unit: String },
    /// Close the breaker.
    ResetBreaker,
    /// This CLI's version and the daemon's, with its BPF objects' digests.
    Version,
}

/// The operator socket to try first: `SCX_SLO_CONTROL_SOCKET` (`off`: the
/// system bus only), else the daemon's default.
fn operator_socket() -> Option<std::path::PathBuf> {
    match std::env::var("SCX_SLO_CONTROL_SOCKET") {
        Ok(v) if v == "off" || v.is_empty() => None,
        Ok(v) => Some(v.into()),
        Err(_) => Some(scx_slo_api::paths::CONTROL_SOCKET.into()),
    }
}

/// A connection to the daemon: its operator socket when this user may
/// open it (root and group scx-slo; no flood on the bus reaches it), else
/// the system bus (anyone may read there).
fn connect() -> Result<zbus::blocking::Connection, String> {
    if let Some(path) = operator_socket().filter(|p| p.exists()) {
        // Bounded (scx_slo_api::operator): a stopped or frozen daemon
        // would otherwise hold the CLI (and ExecReload) forever.
        match scx_slo_api::operator::connect(&path) {
            Ok(conn) => return Ok(conn),
            // Not an operator: the bus is this user's way in.
            Err(zbus::Error::InputOutput(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(e) => eprintln!("scx-slo: the operator socket {}: {e}; using the system bus", path.display()),
        }
    }
    zbus::blocking::Connection::system().map_err(|e| format!("cannot reach the system bus: {e}"))
}

fn proxy() -> Result<(zbus::blocking::Connection, ()), String> {
    connect().map(|c| (c, ()))
}

fn describe(e: zbus::Error) -> (u8, String) {
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            let name = name.as_str().to_string();
            let code = if name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner" {
                UNREACHABLE
            } else {
                REFUSED
            };
            let hint = if code == UNREACHABLE { " (is scx-slod running?)" } else { "" };
            (code, format!("{name}: {}{hint}", msg.unwrap_or_default()))
        }
        other => (UNREACHABLE, other.to_string()),
    }
}

/// Runs a call; prints the result; returns the exit code.
pub fn run(call: Call) -> u8 {
    if matches!(call, Call::Version) {
        outln!("scx-slo {}", env!("CARGO_PKG_VERSION"));
    }
    let (conn, ()) = match proxy() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scx-slo: {e}");
            return UNREACHABLE;
        }
    };
    let manager = match ManagerProxyBlocking::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("scx-slo: {e}");
            return UNREACHABLE;
        }
    };
    let result = match call {
        Call::Status { json } => manager.status().map(|s| if json { s } else { shown(parse::<Status>("Status", &s), status_table) }),
        Call::List { json } => manager.list_targets().map(|s| if json { s } else { shown(parse::<TargetList>("ListTargets", &s), list_table) }),
        Call::Explain { unit } => manager.explain(&unit).map(|s| shown(parse::<Explain>("Explain", &s), |_| pretty(&s))),
        Call::Enable { mode } => manager.enable(&mode),
        Call::Disable { reason } => manager.disable(&reason),
        Call::Reload => manager.reload(),
        Call::SetBudget { unit, runtime_us, period_us, key } => manager.set_budget(&unit, runtime_us, period_us, &key),
        Call::ClearBudget { unit } => manager.clear_budget(&unit),
        Call::ResetBreaker => manager.reset_breaker(),
        Call::Version => manager.status().map(|s| match parse::<Status>("Status", &s) {
            Ok(status) => daemon_version(&status),
            Err(why) => format!("scx-slod: ({why})"),
        }),
    };
    match result {
        Ok(text) => {
            outln!("{text}");
            OK
        }
        Err(e) => {
            let (code, msg) = describe(e);
            eprintln!("scx-slo: {msg}");
            code
        }
    }
}

/// A document as a table, or, when it does not fit this CLI's version of
/// the documents (a newer daemon), why, with the raw JSON to read instead.
fn shown<T>(doc: Result<T, String>, table: impl Fn(&T) -> String) -> String {
    match doc {
        Ok(doc) => table(&doc),
        Err(why) => format!("({why}; use --json)"),
    }
}

/// The document as the daemon sent it, indented: every field, including
/// ones a newer daemon adds that this CLI's types do not know.
fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json).and_then(|v| serde_json::to_string_pretty(&v)).unwrap_or_else(|_| json.to_string())
}

fn us(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |n| if n == u64::MAX { ">4s".into() } else { format!("{}", n / 1000) })
}

fn count(stats: Option<&scx_slo_api::TargetStats>, c: Counter) -> String {
    stats.map_or("-".into(), |s| s.get(c).to_string())
}

/// The status document as an operator reads it.
pub fn status_table(s: &Status) -> String {
    let mut out = format!(
        "state {}  mode {}  switch {}  generation {}  breaker {}\n",
        s.state,
        s.mode,
        wire_name(&s.switch),
        s.generation,
        if s.breaker.open { "OPEN" } else { "closed" },
    );
    if let Some(reason) = &s.operator_disabled {
        out.push_str(&format!("disabled by an operator: {reason}\n"));
    }
    if let Some(e) = &s.last_reload_error {
        out.push_str(&format!("last reload rejected: {e}\n"));
    }
    if s.breaker.open || s.breaker.recent_failures > 0 {
        let until = match (s.breaker.open, s.breaker.probe_in_s) {
            (true, Some(secs)) => format!("; open, probing once again in {secs} s (or `scx-slo reset-breaker`)"),
            (true, None) => "; open until `scx-slo reset-breaker`".to_string(),
            (false, _) if s.breaker.half_open => "; half-open: one probe runs, a failure opens it again".to_string(),
            (false, _) => String::new(),
        };
        out.push_str(&format!("breaker: {} recent failures{until}\n", s.breaker.recent_failures));
    }
    if let Some(x) = &s.exit {
        let words: Vec<&str> = [x.kind_name.as_str(), x.reason.as_str(), x.msg.as_str()].into_iter().filter(|w| !w.is_empty()).collect();
        out.push_str(&format!("last ejection: {}\n", words.join(" ")));
    }
    if let Some(p) = &s.probe {
        out.push_str(&format!(
            "probes: {:.2}% of a CPU (budget {:.2}%), measuring 1 wakeup in {}\n",
            p.overhead_ratio * 100.0,
            p.overhead_budget * 100.0,
            p.sample_every
        ));
    }
    if let Some(c) = &s.canary {
        out.push_str(&format!(
            "canary: {}, {} windows judged ({}){}{}\n",
            c.state,
            c.windows,
            if c.verdicts.is_empty() { "none yet".to_string() } else { c.verdicts.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ") },
            c.arm.as_ref().map(|a| format!(", {a} arm now")).unwrap_or_default(),
            c.outcome.as_ref().map(|o| format!("; {o}")).unwrap_or_default(),
        ));
    }
    // A scrape that fails is the controller's and the canary's blind spot:
    // said, not only counted.
    for (unit, r) in s.scrapes.iter().filter(|(_, r)| r.last_error.is_some()) {
        out.push_str(&format!("scrape of {unit}'s {} failing ({} failed, {} ok): {}\n", r.histogram, r.failed, r.ok, r.last_error.as_deref().unwrap_or_default()));
    }
    if let Some(e) = &s.audit.error {
        out.push_str(&format!("audit trail closed (mutating calls but Disable are refused): {e}\n"));
    }
    out.push_str(&format!("{:<28} {:<8} {:>9} {:>9} {:>8} {:>13}\n", "TARGET", "CLASS", "WAKEUPS", "JOBS", "MISSES", "RQ-P99<=US"));
    for t in &s.targets {
        let stats = t.stats.as_ref();
        out.push_str(&format!(
            "{:<28} {:<8} {:>9} {:>9} {:>8} {:>13}{}\n",
            t.key,
            wire_name(&t.class),
            count(stats, Counter::Wakeups),
            count(stats, Counter::Jobs),
            count(stats, Counter::DeadlineMisses),
            us(t.rq_delay_p99_le_ns),
            if t.cgroup_id.is_some() { "" } else { "  (no cgroup yet)" },
        ));
    }
    out.trim_end().to_string()
}

/// What `scx-slo version --verbose` says of the running daemon: its
/// version, backend and kernel, and each BPF object's SHA-256 as the daemon
/// verified it against the build's record before loading.
pub fn daemon_version(s: &Status) -> String {
    let version = if s.daemon_version.is_empty() { "(unknown: a daemon older than this field)" } else { s.daemon_version.as_str() };
    let mut out = format!(
        "scx-slod {version}  backend {}  state {}  mode {}\nkernel {}  sched_ext {}\nconfig {} sha256 {}\n",
        s.backend,
        s.state,
        s.mode,
        s.kernel.release,
        if s.kernel.sched_ext { "yes" } else { "no" },
        s.config_path,
        s.config_sha256,
    );
    if s.bpf_objects.is_empty() {
        out.push_str("BPF objects: none embedded (simulated backend)\n");
    }
    for (object, sha) in &s.bpf_objects {
        out.push_str(&format!("BPF object {object} sha256 {sha} (verified at start)\n"));
    }
    out.trim_end().to_string()
}

/// The name a value has on the wire (`latency`, `partial`).
fn wire_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn list_table(list: &TargetList) -> String {
    let mut out = format!("{:<28} {:<8} {:>8} {:>22} {:<}\n", "TARGET", "CLASS", "PRIORITY", "BUDGET", "CGROUP");
    for t in &list.targets {
        let budget = match t.budget {
            Some(b) => format!("{}/{}{}", b.runtime, b.period, if t.overridden { " (override)" } else { "" }),
            None => "-".into(),
        };
        out.push_str(&format!(
            "{:<28} {:<8} {:>8} {:>22} {}\n",
            t.key,
            wire_name(&t.class),
            t.priority,
            budget,
            t.cgroup.as_deref().unwrap_or("(not running)"),
        ));
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use scx_slo_api::{State, TargetStats, TargetStatus};
    use scx_slo_model::Class;

    use super::*;

    #[test]
    fn status_table_shows_state_targets_and_unresolved_ones() {
        let target = |key: &str, class, cgroup_id, stats| TargetStatus {
            key: key.into(),
            class,
            index: None,
            cgroup: None,
            cgroup_id,
            rq_delay_p50_le_ns: None,
            rq_delay_p99_le_ns: cgroup_id.map(|_| 65536),
            stats,
        };
        let counters = [(Counter::Wakeups, 10), (Counter::Jobs, 9), (Counter::DeadlineMisses, 1)].into();
        let status = Status {
            state: State::Running,
            mode: "enforce".into(),
            generation: 2,
            last_reload_error: Some("bad".into()),
            targets: vec![
                target("api.service", Class::Latency, Some(5), Some(TargetStats { counters, ..Default::default() })),
                target("x.service", Class::Batch, None, None),
            ],
            ..Default::default()
        };
        let t = status_table(&status);
        assert!(t.contains("state running") && t.contains("generation 2") && t.contains("last reload rejected: bad"), "{t}");
        assert!(t.lines().any(|l| l.starts_with("api.service") && l.contains(" 10 ") && l.trim_end().ends_with("65")), "{t}");
        assert!(t.contains("(no cgroup yet)"), "{t}");
        // The document survives the wire.
        assert_eq!(parse::<Status>("Status", &serde_json::to_string(&status).unwrap()).unwrap(), status);
        assert!(!t.contains("breaker:") && !t.contains("probes:") && !t.contains("ejection") && !t.contains("audit"), "{t}");
    }

    #[test]
    fn verbose_version_names_the_daemon_and_each_bpf_objects_digest() {
        let mut status = Status { daemon_version: "0.1.0".into(), backend: "bpf".into(), ..Default::default() };
        status.bpf_objects.insert("scx_slo".into(), "ab".repeat(32));
        status.bpf_objects.insert("observe".into(), "cd".repeat(32));
        let text = daemon_version(&status);
        assert!(text.starts_with("scx-slod 0.1.0  backend bpf"), "{text}");
        assert!(text.contains(&format!("BPF object scx_slo sha256 {} (verified at start)", "ab".repeat(32))), "{text}");
        assert!(text.contains(&format!("BPF object observe sha256 {}", "cd".repeat(32))), "{text}");
        let simulated = daemon_version(&Status::default());
        assert!(simulated.contains("unknown: a daemon older") && simulated.contains("none embedded"), "{simulated}");
    }

    #[test]
    fn status_table_names_what_the_alerts_send_an_operator_to_read() {
        let status = Status {
            breaker: scx_slo_api::documents::BreakerReport { open: true, recent_failures: 3, half_open: false, probe_in_s: None },
            exit: Some(scx_slo_api::ExitInfo { kind: 1026, kind_name: "error_stall".into(), exit_code: 0, reason: "runnable task stall".into(), msg: String::new() }),
            probe: Some(scx_slo_api::documents::ProbeReport { overhead_ratio: 0.0153, sample_every: 4, overhead_budget: 0.01, run_time_ns: 0, run_count: 0 }),
            audit: scx_slo_api::documents::AuditReport { error: Some("read-only file system".into()), ..Default::default() },
            ..Default::default()
        };
        let mut status = status;
        status.canary = Some(scx_slo_api::documents::CanaryReport {
            state: scx_slo_api::documents::CanaryState::Running,
            windows: 1,
            verdicts: vec![scx_slo_api::documents::Verdict::Same],
            arm: Some(scx_slo_api::documents::Arm::Baseline),
            ..Default::default()
        });
        status.scrapes.insert("api.service".into(), scx_slo_api::documents::ScrapeReport { histogram: "rpc_seconds".into(), ok: 5, failed: 2, last_error: Some("connection refused".into()), ..Default::default() });
        status.scrapes.insert("ok.service".into(), scx_slo_api::documents::ScrapeReport { ok: 7, ..Default::default() });
        let t = status_table(&status);
        assert!(t.contains("scrape of api.service's rpc_seconds failing (2 failed, 5 ok): connection refused"), "{t}");
        assert!(!t.contains("ok.service"), "a healthy scrape is not news: {t}");
        assert!(t.contains("canary: running, 1 windows judged (same), baseline arm now"), "{t}");
        assert!(t.contains("breaker: 3 recent failures; open until `scx-slo reset-breaker`"), "{t}");
        let mut probing = status.clone();
        probing.breaker.probe_in_s = Some(120);
        assert!(status_table(&probing).contains("breaker: 3 recent failures; open, probing once again in 120 s"), "{t}");
        probing.breaker = scx_slo_api::documents::BreakerReport { open: false, recent_failures: 3, half_open: true, probe_in_s: None };
        assert!(status_table(&probing).contains("; half-open: one probe runs, a failure opens it again"));
        assert!(t.contains("last ejection: error_stall runnable task stall"), "{t}");
        assert!(t.contains("probes: 1.53% of a CPU (budget 1.00%), measuring 1 wakeup in 4"), "{t}");
        assert!(t.contains("audit trail closed (mutating calls but Disable are refused): read-only file system"), "{t}");
    }
}
