// SPDX-License-Identifier: GPL-2.0-only
//! The `chaos` VM scenario (docs/testing.md): faults injected into a running
//! enforce-mode daemon under load, with the same invariants checked after
//! each one: the kernel is on a known scheduler (scx_slo attached, or the
//! default one), an operator's Disable returns within its budget with the
//! default scheduler in place, state.json parses, and api.service's jobs and
//! misses never go backwards. Faults: a garbage config reloaded, the state
//! directory read-only, an HTTP flood, a D-Bus flood by an unprivileged
//! user, the target's cgroup removed and recreated, dbus-daemon restarted,
//! kill -9, the state disk full, and a hostile scraped endpoint.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use scx_slo_api::dbus::ManagerProxyBlocking;
use scx_slo_api::documents::parse;
use scx_slo_api::Status;
use serde_json::{json, Value};

use crate::control::{daemon, manager, start_bus, start_fresh};
use crate::kernel;
use crate::daemon::{write_config, CONFIG_PATH};
use crate::disable_timing::Timings;
use crate::fixtures::{enforce_config, API, BATCH};
use crate::harness::{ms, num_cpus, proc_status_kb, scrape_metrics, wait_until as wait, Env, Report};
use crate::spawn::Workload;
use scx_slo_model::Duration as SloDuration;

/// Where chaos's hostile metrics endpoint listens.
const HOSTILE_PORT: u16 = 9701;
/// The daemon's peak RSS past which a scrape fault fails: idle it is about
/// 13-20 MB; the 8 MiB page of tiny samples once cost 300 MB.
const SCRAPE_RSS_LIMIT_KB: u64 = 64 * 1024;

/// Disable's budget: the emergency path must answer within this under any flood.
const DISABLE_BUDGET: Duration = Duration::from_secs(2);

/// What the invariants saw after a fault.
struct Invariants {
    known_scheduler: bool,
    disable_ms: Option<f64>,
    state_parses: bool,
    /// api.service's (jobs, misses) before the Disable.
    counters: Option<(u64, u64)>,
    /// The same after the Enable that follows. The re-attach loads new
    /// maps, but the daemon carries the ended session's counts: these must
    /// not be below `counters`. The next fault's baseline.
    baseline: Option<(u64, u64)>,
}

fn status(m: &ManagerProxyBlocking) -> Option<Status> {
    parse("Status", &m.status().ok()?).ok()
}

fn api_counters(m: &ManagerProxyBlocking) -> Option<(u64, u64)> {
    status(m)?.jobs_and_misses("api.service")
}

/// The daemon's peak RSS (VmHWM), kB; 0 when unreadable.
fn peak_rss_kb(pid: u32) -> u64 {
    proc_status_kb("VmHWM", pid).unwrap_or(0)
}

/// What the checks carry from one fault to the next.
struct Run {
    /// What api.service's counters after the next fault are compared with.
    last: Since,
    /// Every Disable's round trip, and the daemon's share of it.
    timings: Timings,
}

/// The invariants, with a Disable/Enable round trip when `disable` names
/// the fault it follows.
fn invariants(m: &ManagerProxyBlocking, disable: Option<&str>, timings: &mut Timings) -> Invariants {
    let state = kernel::sched_ext_state();
    let known_scheduler = state == "disabled" || (state == "enabled" && kernel::root_ops() == "scx_slo");
    let counters = api_counters(m);
    let disable_ms = disable.map(|fault| {
        let t = Instant::now();
        let reply = m.disable("chaos invariant");
        let took = t.elapsed();
        let ok = reply.is_ok() && kernel::sched_ext_state() == "disabled";
        if let Ok(reply) = &reply {
            timings.record(&format!("after: {fault}"), took, reply);
        }
        let _ = m.enable("enforce");
        (ok && took <= DISABLE_BUDGET).then(|| ms(took))
    });
    std::thread::sleep(Duration::from_millis(300));
    let baseline = api_counters(m);
    let state_parses = match std::fs::read(scx_slo_api::paths::STATE_FILE) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).is_ok(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    Invariants { known_scheduler, disable_ms: disable_ms.flatten(), state_parses, counters, baseline }
}

/// What api.service's counters after a fault are compared with.
#[derive(Clone, Copy, Debug)]
enum Since {
    /// The (jobs, misses) read after the previous check's re-attach: the
    /// counts after this fault must not be below them.
    Counts((u64, u64)),
    /// No counts could be read before this fault: nothing to compare with,
    /// so the check fails (counters that vanish are not "monotonic").
    Unread,
    /// The fault replaced the daemon process (faults 6 and 7). A new daemon
    /// loads new maps and its counters start again (crates/scx-slod/src/carry.rs),
    /// so only its own Disable/Enable round trip is compared.
    NewDaemon,
}

impl Since {
    fn from(counts: Option<(u64, u64)>) -> Since {
        counts.map_or(Since::Unread, Since::Counts)
    }
}

/// Whether (jobs, misses) went from `from` to `to` without either falling;
/// `None` when either side was not read.
fn grew(from: Option<(u64, u64)>, to: Option<(u64, u64)>) -> Option<bool> {
    let ((j0, m0), (j1, m1)) = (from?, to?);
    Some(j1 >= j0 && m1 >= m0)
}

/// Records one fault's check: its own verdict and the invariants after it.
/// api.service's counters must be readable after the fault and after the
/// invariants' re-attach, and never fall: across the fault (from `last`,
/// unless the fault replaced the daemon) and across the re-attach.
fn fault(report: &mut Report, name: &str, ok: bool, detail: String, m: &ManagerProxyBlocking, run: &mut Run) {
    let inv = invariants(m, Some(name), &mut run.timings);
    let across_fault = match run.last {
        Since::Counts(before) => grew(Some(before), inv.counters),
        Since::Unread => None,
        Since::NewDaemon => Some(true),
    };
    let across_reattach = grew(inv.counters, inv.baseline);
    let monotonic = across_fault == Some(true) && across_reattach == Some(true);
    let sound = inv.counters.is_some_and(|(j, mi)| mi <= j);
    let since = run.last;
    run.last = Since::from(inv.baseline);
    report.check(
        format!("chaos: {name}"),
        ok && inv.known_scheduler && inv.disable_ms.is_some() && inv.state_parses && monotonic && sound,
        format!(
            "{detail}; after: known scheduler {}, Disable {} (budget {} ms), state.json parses {}, api (jobs, misses) before {since:?}, after the fault {:?}, after a re-attach {:?} (never fell across the fault {across_fault:?}, across the re-attach {across_reattach:?}; None: not read; misses <= jobs {sound})",
            inv.known_scheduler,
            inv.disable_ms.map_or("FAILED or over budget".into(), |d| format!("{d:.1} ms")),
            DISABLE_BUDGET.as_millis(),
            inv.state_parses,
            inv.counters,
            inv.baseline
        ),
    );
}

/// Opens `n` connections to the metrics endpoint, each sending a head that
/// announces a 100 GB body and then holding the connection.
fn http_flood(n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut s = std::net::TcpStream::connect((scx_slo_api::paths::METRICS_ADDRESS, scx_slo_api::paths::METRICS_PORT)).ok()?;
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nContent-Length: 100000000000\r\nX-Pad: ");
            let _ = s.write_all(&[b'a'; 8192]);
            Some(s)
        })
        .collect()
}

/// `n` processes as nobody, each calling Explain as fast as it can for
/// `seconds` (the lab's `dbus-flood`).
fn dbus_flood(env: &Env, n: usize, seconds: u64, extra: &[&str]) -> Result<Vec<Child>> {
    use std::os::unix::process::CommandExt;
    (0..n)
        .map(|_| {
            Command::new(env.exe("scx-slo-lab"))
                .args(["dbus-flood", "--seconds", &seconds.to_string()])
                .args(extra)
                .uid(65534)
                .gid(65534)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawning dbus-flood")
        })
        .collect()
}

/// The flood's client: Explain with a maximal unit name, in a loop; with
/// `large_bytes`, `connections` connections each sending Explain calls of
/// that size without waiting for replies (each is refused for its size by
/// the daemon, but first carried through the bus: dbus-daemon drops
/// messages to the daemon once its queue is full, root's included).
pub fn flood_client(seconds: u64, connections: usize, large_bytes: Option<usize>) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(seconds);
    let Some(bytes) = large_bytes else {
        let conn = zbus::blocking::Connection::system()?;
        let m = manager(&conn)?;
        let unit = "x".repeat(scx_slo_api::dbus::arg_limits::UNIT);
        while Instant::now() < end {
            let _ = m.explain(&unit);
        }
        return Ok(());
    };
    let threads: Vec<_> = (0..connections.clamp(1, 1000))
        .map(|_| {
            std::thread::spawn(move || -> Result<()> {
                let conn = zbus::blocking::Connection::system()?;
                let body = "x".repeat(bytes.min(32 << 20));
                let msg = zbus::message::Message::method_call(scx_slo_api::dbus::OBJECT_PATH, "Explain")?
                    .destination(scx_slo_api::dbus::BUS_NAME)?
                    .interface(scx_slo_api::dbus::INTERFACE)?
                    .build(&(body.as_str(),))?;
                while Instant::now() < end {
                    conn.send(&msg)?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// api.service's failed scrapes so far, and the latest reason (Status).
fn scrape_failed(m: &ManagerProxyBlocking) -> (u64, Option<String>) {
    let Some(v) = m.status().ok().and_then(|s| serde_json::from_str::<Value>(&s).ok()) else { return (0, None) };
    let r = &v["scrapes"]["api.service"];
    (r["failed"].as_u64().unwrap_or(0), r["last_error"].as_str().map(|e| e.chars().take(160).collect()))
}

/// Writes `path` until the file system is full; the bytes written.
fn fill(path: &std::path::Path) -> u64 {
    let Ok(mut f) = std::fs::File::create(path) else { return 0 };
    let block = [0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // The last bytes the page cache took may still fail at sync: fill those too.
    let _ = f.sync_all();
    while let Ok(n) = f.write(&block[..512]) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    written
}

/// The daemon's operator socket, as `scx-slo` reaches it (root's own lane).
fn operator_manager() -> Result<(zbus::blocking::Connection, ManagerProxyBlocking<'static>)> {
    let conn = scx_slo_api::operator::connect(std::path::Path::new(scx_slo_api::paths::CONTROL_SOCKET)).context("connecting to the operator socket")?;
    let m = manager(&conn)?;
    Ok((conn, m))
}

/// A D-Bus error's name, without the bus's long explanation.
fn short_error(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        other => other.to_string().chars().take(80).collect(),
    }
}

/// Runs the scenario.
pub fn run(env: &Env) -> Result<Report> {
    let mut report = Report::new("chaos");
    let mut config = enforce_config("partial");
    config["scheduler"] = json!({ "max_wait": "50ms" });
    // The scraper's fault: api.service's histogram is read from an endpoint
    // that turns hostile (nothing listens there before).
    config["targets"]["api.service"]["scrape"] =
        json!({ "url": format!("http://127.0.0.1:{HOSTILE_PORT}/metrics"), "histogram": crate::hostile_metrics::HISTOGRAM });
    let (mut bus, conn, mut d, up) = start_fresh(env, &config)?;
    let m = manager(&conn)?;
    report.check("the daemon runs scx_slo before any fault", up.is_some() && kernel::root_ops() == "scx_slo", kernel::sched_ext_state());
    if up.is_none() {
        return Ok(report);
    }
    // Load: a hog per CPU in batch, a bursty latency unit in api.service.
    let mut load: Vec<Child> = Vec::new();
    for _ in 0..num_cpus() {
        load.push(Workload::hog().duration(SloDuration::from_secs(900)).cgroup(env.cg(BATCH)).spawn(env)?);
    }
    let api_load = Workload::noisy().bursts(1, SloDuration::from_ms(1)).duration(SloDuration::from_secs(900)).cgroup(env.cg(API));
    let mut api = api_load.spawn(env)?;
    std::thread::sleep(Duration::from_secs(3));
    let mut run = Run { last: Since::from(api_counters(&m)), timings: Timings::default() };
    let mut faults = 0;

    // 1. A garbage config, reloaded.
    std::fs::write(CONFIG_PATH, b"{\"version\": 1, \"targets\": {\"a\0\xff")?;
    let gen = m.config_generation().ok();
    let refused = m.reload().is_err();
    let same = m.config_generation().ok() == gen;
    write_config(&config)?;
    faults += 1;
    fault(&mut report, "a garbage config is refused on reload", refused && same && kernel::root_ops() == "scx_slo", format!("reload refused {refused}, generation kept {same}"), &m, &mut run);

    // 2. The state directory read-only.
    std::fs::create_dir_all(scx_slo_api::paths::STATE_DIR)?;
    let ro = Command::new("mount").args(["-t", "tmpfs", "-o", "ro", "tmpfs", scx_slo_api::paths::STATE_DIR]).status()?.success();
    let reply = m.disable("chaos: read-only state dir").unwrap_or_else(|e| e.to_string());
    let honest = reply.contains("NOT saved");
    let _ = m.enable("enforce");
    let _ = Command::new("umount").arg(scx_slo_api::paths::STATE_DIR).status();
    faults += 1;
    fault(&mut report, "a read-only state directory: Disable says it is not saved", ro && honest, format!("reply: {reply}"), &m, &mut run);

    // 3. An HTTP flood: 200 held connections announcing 100 GB bodies.
    let pid = d.id();
    let rss_before = peak_rss_kb(pid);
    let held = http_flood(200);
    let during = invariants(&m, Some("during: /metrics held by 200 connections"), &mut run.timings);
    run.last = Since::from(during.baseline);
    let alive = d.try_wait()?.is_none();
    let rss_http = peak_rss_kb(pid);
    drop(held);
    std::thread::sleep(Duration::from_secs(1));
    let scrape = scrape_metrics().map(|t| t.contains("scx_slo_mode")).unwrap_or(false);
    faults += 1;
    fault(
        &mut report,
        "an HTTP flood (200 held connections, 100 GB Content-Length)",
        alive && during.disable_ms.is_some() && scrape,
        format!("Disable during the flood {:?} ms; peak RSS {rss_before} -> {rss_http} kB; scrape after {scrape}", during.disable_ms),
        &m,
        &mut run,
    );
    report.facts.insert("http_flood".into(), json!({ "disable_ms": during.disable_ms, "peak_rss_kb": rss_http }));

    // 4. A D-Bus flood as nobody: 16 processes calling Explain, and 100
    // connections sending 1 MiB Explains without waiting, for 12 s. Root
    // acts on the operator socket (its own lane; the bus drops messages to
    // a full queue) and is also timed on the bus, where each call must be
    // answered: done, or refused with the reason, never hung.
    let mut flood = dbus_flood(env, 16, 12, &[])?;
    flood.extend(dbus_flood(env, 1, 12, &["--connections", "100", "--large-bytes", "1048576"])?);
    std::thread::sleep(Duration::from_secs(2));
    let mut disable_ms = Vec::new();
    let mut disable_failures = Vec::new();
    let mut bus_answers = Vec::new();
    for _ in 0..5 {
        let op = operator_manager();
        let t = Instant::now();
        let result = match &op {
            Ok((_, om)) => om.disable("chaos: D-Bus flood").map_err(|e| e.to_string()),
            Err(e) => Err(format!("operator socket: {e:#}")),
        };
        let elapsed = t.elapsed();
        let took = ms(elapsed);
        if let Ok(reply) = &result {
            run.timings.record("during: the D-Bus flood (operator socket)", elapsed, reply);
        }
        let off = kernel::sched_ext_state() == "disabled";
        match result {
            Ok(_) if off && took <= DISABLE_BUDGET.as_secs_f64() * 1e3 => disable_ms.push(took),
            other => disable_failures.push(format!("{other:?}, kernel disabled {off}, after {took:.0} ms")),
        }
        let _ = match &op {
            Ok((_, om)) => om.enable("enforce"),
            Err(_) => m.enable("enforce"),
        };
        std::thread::sleep(Duration::from_millis(300));
        run.last = Since::from(api_counters(&m));
        let t = Instant::now();
        let answer = m.status().map(|_| "answered".to_string()).unwrap_or_else(|e| short_error(&e));
        bus_answers.push(format!("{answer} in {:.0} ms", ms(t.elapsed())));
        std::thread::sleep(Duration::from_millis(500));
    }
    for c in &mut flood {
        let _ = c.wait();
    }
    let rss_dbus = peak_rss_kb(pid);
    let alive = d.try_wait().ok().flatten().is_none();
    let bus_kept = m.state().is_ok();
    faults += 1;
    fault(
        &mut report,
        "a D-Bus flood by nobody (16 processes of Explain, 100 connections of 1 MiB Explains): root's Disable on the operator socket stays within budget; the daemon keeps the bus",
        disable_ms.len() == 5 && alive && bus_kept,
        format!("Disable during the flood ms {disable_ms:?} (operator socket), failed {disable_failures:?}; root's Status on the bus: {bus_answers:?}; daemon alive {alive}, bus answers after {bus_kept}; peak RSS {rss_dbus} kB"),
        &m,
        &mut run,
    );
    report.facts.insert("dbus_flood".into(), json!({ "disable_ms": disable_ms, "failed": disable_failures, "bus_status": bus_answers, "peak_rss_kb": rss_dbus }));

    // 5. The target's cgroup removed and recreated (a unit restart).
    let _ = api.kill();
    let _ = api.wait();
    let dir = env.cg(API);
    let removed = wait(Duration::from_secs(5), || std::fs::remove_dir(&dir).is_ok()).is_some();
    std::fs::create_dir_all(&dir)?;
    let new_id = kernel::cgroup_id(&dir)?;
    api = api_load.spawn(env)?;
    let resolved = wait(Duration::from_secs(20), || {
        status(&m).is_some_and(|s| s.target("api.service").is_some_and(|t| t.cgroup_id == Some(new_id)))
    });
    std::thread::sleep(Duration::from_secs(2));
    faults += 1;
    fault(&mut report, "the target's cgroup removed and recreated", removed && resolved.is_some(), format!("removed {removed}; the new cgroup resolved after {resolved:?}"), &m, &mut run);

    // 6. dbus-daemon restarted: the daemon stops (exit 5) for its supervisor.
    // A new daemon loads new maps: its counters start again.
    run.last = Since::NewDaemon;
    let _ = bus.kill();
    let _ = bus.wait();
    let exited = wait(Duration::from_secs(15), || d.try_wait().ok().flatten().is_some());
    let code = d.try_wait()?.and_then(|s| s.code());
    let off = kernel::sched_ext_state() == "disabled";
    bus = start_bus(env)?;
    d = daemon(env)?;
    let conn = zbus::blocking::Connection::system()?;
    let m = manager(&conn)?;
    let back = wait(Duration::from_secs(60), || m.state().is_ok_and(|s| s == "running") && kernel::root_ops() == "scx_slo");
    faults += 1;
    fault(
        &mut report,
        "dbus-daemon restarted: scx-slod stops with exit 5 on the default scheduler, and a restart brings it back",
        exited.is_some() && code == Some(scx_slo_api::exit::daemon::BUS_LOST) && off && back.is_some(),
        format!("exit {code:?} after {exited:?}; kernel disabled then {off}; back after {back:?}"),
        &m,
        &mut run,
    );

    // 7. kill -9 under load: a new daemon again.
    run.last = Since::NewDaemon;
    let _ = d.kill();
    let _ = d.wait();
    let dropped = wait(Duration::from_secs(10), || kernel::sched_ext_state() == "disabled");
    d = daemon(env)?;
    let back = wait(Duration::from_secs(60), || m.state().is_ok_and(|s| s == "running") && kernel::root_ops() == "scx_slo");
    faults += 1;
    fault(&mut report, "kill -9 under load", dropped.is_some() && back.is_some(), format!("default scheduler after {dropped:?}, back after {back:?}"), &m, &mut run);

    // 8. The state disk full (a 2 MiB tmpfs under /var/lib/scx-slo, the
    // trail and state.json on it, filled to the last byte): Disable answers
    // within budget and says what it could not save; a normal mutation is
    // refused with nothing done; once space returns, mutations are recorded
    // again and the trail verifies (a partial entry is cut and the cut
    // recorded, never appended after). A new daemon, on the small disk.
    run.last = Since::NewDaemon;
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let _ = d.wait();
    std::fs::create_dir_all(scx_slo_api::paths::STATE_DIR)?;
    let small = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs", scx_slo_api::paths::STATE_DIR]).status()?.success();
    d = daemon(env)?;
    let back = wait(Duration::from_secs(60), || m.state().is_ok_and(|s| s == "running") && kernel::root_ops() == "scx_slo");
    let filler = std::path::Path::new(scx_slo_api::paths::STATE_DIR).join("filler");
    let filled = fill(&filler);
    // Timed on an open connection, as the other Disables are: the call's
    // round trip, not the handshake.
    let op = operator_manager();
    let t = Instant::now();
    let reply = op.and_then(|(_c, om)| Ok(om.disable("chaos: full state disk")?)).unwrap_or_else(|e| format!("FAILED: {e}"));
    let elapsed = t.elapsed();
    let full_disable_ms = ms(elapsed);
    run.timings.record("during: the state disk full (operator socket)", elapsed, &reply);
    let honest = reply.contains("disabled in") && (reply.contains("NOT saved") || reply.contains("NOT yet saved")) && !reply.contains("stays off across restarts");
    let _ = m.enable("enforce");
    let refused = m.set_budget("api.service", 2000, 10_000, "").map_or_else(|e| e.to_string(), |r| format!("DONE: {r}"));
    let refused_ok = refused.contains("nothing was done") || refused.contains("NOT saved");
    let _ = std::fs::remove_file(&filler);
    let after = m.reset_breaker().unwrap_or_else(|e| format!("FAILED: {e}"));
    let recorded_again = !after.starts_with("FAILED") && !after.contains("NOT recorded");
    let verified = scx_slo_api::audit::verify_with(std::path::Path::new(scx_slo_api::paths::AUDIT_DIR), |_| {}).map_err(|e| e.to_string());
    let back_on = wait(Duration::from_secs(30), || m.state().is_ok_and(|s| s == "running") && kernel::root_ops() == "scx_slo");
    faults += 1;
    fault(
        &mut report,
        "the state disk full: Disable answers and says what it could not save, other mutations are refused, and once space returns the trail verifies",
        small && back.is_some() && filled > 0 && honest && full_disable_ms < DISABLE_BUDGET.as_secs_f64() * 1e3 && refused_ok && recorded_again && verified.is_ok() && back_on.is_some(),
        format!(
            "tmpfs {small}, filled {filled} bytes; Disable {full_disable_ms:.1} ms: {reply:?}; SetBudget: {refused:?}; after freeing: {after:?}; verify {verified:?}"
        ),
        &m,
        &mut run,
    );
    report.facts.insert("full_disk".into(), json!({ "disable_ms": full_disable_ms }));
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let _ = d.wait();
    let _ = Command::new("umount").arg(scx_slo_api::paths::STATE_DIR).status();
    d = daemon(env)?;
    let _ = wait(Duration::from_secs(60), || m.state().is_ok_and(|s| s == "running"));

    // 9. The scraped service turns hostile, in three ways, about 8 s each
    // (the server lives until it is killed, so the latest reading is of
    // its page, never of a server that already left): a page
    // of 8 MiB of tiny samples, 200,000 histogram bounds, and a reply that
    // trickles a byte every 0.4 s. Each reading must fail (counted, with
    // the reason), the daemon's memory stay bounded, and root's Disable on
    // the operator socket stay within budget.
    let mut rows = Vec::new();
    let mut scrape_ok = true;
    for mode in ["tiny", "bounds", "trickle"] {
        let failed_before = scrape_failed(&m).0;
        let log = format!("/tmp/hostile-metrics-{mode}.log");
        let mut server = Command::new(env.exe("scx-slo-lab"))
            .args(["hostile-metrics", "--port", &HOSTILE_PORT.to_string(), "--mode", mode, "--seconds", "60"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting hostile-metrics")?;
        std::thread::sleep(Duration::from_secs(4));
        let listening = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], HOSTILE_PORT).into(), Duration::from_secs(2)).is_ok();
        let op = operator_manager();
        let t = Instant::now();
        let reply = op.and_then(|(_c, om)| Ok(om.disable("chaos: hostile scrape")?));
        let elapsed = t.elapsed();
        let disable_ms = ms(elapsed);
        let disabled = reply.is_ok();
        if let Ok(reply) = &reply {
            run.timings.record(&format!("during: a hostile scrape ({mode})"), elapsed, reply);
        }
        let _ = m.enable("enforce");
        std::thread::sleep(Duration::from_secs(4));
        let (failed_after, last_error) = scrape_failed(&m);
        let _ = server.kill();
        let _ = server.wait();
        let rss = peak_rss_kb(d.id());
        // The reading must fail for what the page is, not for a missing
        // server: each mode names the bound it meets.
        let named = match mode {
            "tiny" => ["samples", "MiB"],
            "bounds" => ["le bounds", "label sets"],
            _ => ["deadline", "per-read timeout"],
        };
        let for_the_page = last_error.as_deref().is_some_and(|e| named.iter().any(|n| e.contains(n)));
        let ok = listening && disabled && disable_ms < DISABLE_BUDGET.as_secs_f64() * 1e3 && failed_after > failed_before && for_the_page && rss < SCRAPE_RSS_LIMIT_KB;
        scrape_ok &= ok;
        let server_log: String = std::fs::read_to_string(&log).unwrap_or_default().chars().take(200).collect();
        rows.push(json!({ "mode": mode, "listening": listening, "disable_ms": disable_ms, "failed": failed_after - failed_before.min(failed_after), "last_error": last_error, "peak_rss_kb": rss, "ok": ok, "server_log": server_log }));
    }
    faults += 1;
    fault(
        &mut report,
        "the scraped service turns hostile (8 MiB of tiny samples, 200,000 bounds, a trickling reply): each reading fails with its reason, memory stays bounded, Disable within budget",
        scrape_ok,
        format!("{rows:?}"),
        &m,
        &mut run,
    );
    report.facts.insert("hostile_scrape".into(), json!(rows));

    report.facts.insert("faults_injected".into(), json!(faults));
    // Reported against the 100 ms target, not asserted (disable_timing).
    let summary = run.timings.summary();
    eprintln!("[INFO] Disable's round trips: {summary}");
    report.facts.insert("disable_timings".into(), run.timings.to_json());
    report.facts.insert("disable_summary".into(), json!(summary));
    // The daemon's own account of each emergency call (save and audit
    // waits), from its journal lines.
    let log = std::fs::read_to_string(crate::control::DAEMON_LOG).unwrap_or_default();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("emergency_timing") || l.contains("operator_disable")).take(80).collect();
    report.facts.insert("daemon_disable_lines".into(), json!(lines));
    let _ = m.disable("chaos done");
    for mut c in load.into_iter().chain([api]) {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = d.kill();
    let _ = d.wait();
    let _ = bus.kill();
    let _ = std::fs::remove_file(scx_slo_api::paths::STATE_FILE);
    report.ok = report.checks.iter().all(|c| c.ok);
    Ok(report)
}
