// SPDX-License-Identifier: GPL-2.0-only
//! The request state machine without root, a bus or a kernel: the engine on a
//! host in memory, with a backend that records what it is told (and can be
//! told to fail). Every request, each of its error replies, and each
//! lifecycle transition the engine makes, with what it persists and reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scx_slo_api::documents::{parse, TargetList};
use scx_slo_api::{Capabilities, ControlError, Counter, Explain, ExitInfo, KernelFeatures, State, Status, TargetStats};
use scx_slo_bpf::{MapTarget, Topology};
use scx_slo_model::Config;

use super::host::Host;
use super::{BackendKind, Engine, EngineOptions, Probed};
use crate::backend::Backend;
use crate::breaker::BreakerConfig;
use crate::control::{EngineHandle, Envelope, Reply, Request};
use crate::persist::PersistentState;
use crate::resolver::Resolved;

const EXAMPLE: &str = include_str!("../../../../examples/enforce.json");

/// The machine in memory; clones share it, so a test keeps one to look at.
#[derive(Clone, Default)]
struct MemoryHost {
    config: Arc<Mutex<String>>,
    saved: Arc<Mutex<Vec<PersistentState>>>,
    statuses: Arc<Mutex<Vec<Status>>>,
    notified: Arc<Mutex<Vec<String>>>,
    disk_read_only: Arc<AtomicBool>,
    /// The runtime Disable marker (disable_marker).
    marker: Arc<Mutex<Option<String>>>,
    /// The runtime directory refuses the marker.
    marker_fails: Arc<AtomicBool>,
}

impl MemoryHost {
    fn new(config: &str) -> Self {
        let host = MemoryHost::default();
        *host.config.lock().unwrap() = config.to_string();
        host
    }

    /// What probing finds at start: this host's config file, parsed as the
    /// daemon parses it.
    fn probed(&self, caps: Capabilities, persistent: PersistentState) -> Probed {
        let text = self.config.lock().unwrap().clone();
        let (file, config) = super::host::parse_config(Path::new("/etc/scx-slo/config.json"), text, 2).expect("a valid config");
        Probed { file, config, features: KernelFeatures::default(), caps, topology: Topology { nr_cpus: 2, nr_nodes: 1, cpu_to_node: vec![0, 0] }, persistent }
    }

    fn last_saved(&self) -> PersistentState {
        self.saved.lock().unwrap().last().cloned().expect("the state was saved")
    }
}

impl Host for MemoryHost {
    fn online_cpus(&self) -> u32 {
        2
    }
    fn cgroup_root(&self) -> &Path {
        Path::new("/nonexistent-cgroup-root")
    }
    /// Every target but `batch.slice` runs; ids follow config order.
    fn resolve_all(&self, config: &Config) -> BTreeMap<String, Resolved> {
        let running = config.targets.iter().enumerate().filter(|(_, t)| t.key != "batch.slice");
        running.map(|(i, t)| (t.key.clone(), Resolved { dir: PathBuf::from(format!("/cg/{}", t.key)), cgroup_id: 100 + i as u64 })).collect()
    }
    fn state_saver(&self) -> crate::disk_writer::Saver {
        let host = self.clone();
        Box::new(move |state: &PersistentState| {
            if host.disk_read_only.load(Ordering::Relaxed) {
                return Err("/var/lib/scx-slo/state.json: Read-only file system (os error 30)".into());
            }
            host.saved.lock().unwrap().push(state.clone());
            Ok(())
        })
    }
    fn write_status(&self, status: &Status) -> Result<(), String> {
        self.statuses.lock().unwrap().push(status.clone());
        Ok(())
    }
    fn notify(&self, states: &[sd_notify::NotifyState]) {
        self.notified.lock().unwrap().extend(states.iter().map(|s| format!("{s:?}")));
    }
    fn mark_disabled(&self, reason: Option<&str>) -> Result<(), String> {
        if self.marker_fails.load(Ordering::Relaxed) {
            return Err("/run/scx-slo/disabled: No space left on device (os error 28)".into());
        }
        *self.marker.lock().unwrap() = reason.map(str::to_string);
        Ok(())
    }
}

/// A loaded backend that records what it is told.
#[derive(Default)]
struct Recording {
    attached: bool,
    detaches: u32,
    applied: Vec<MapTarget>,
    fail_apply: bool,
    exit: Option<ExitInfo>,
    /// Statistics by map index (the adaptive tests' input).
    stats: BTreeMap<u32, TargetStats>,
    /// Target slots; `None`: the most there can be.
    capacity: Option<u32>,
    /// When the last detach happened.
    detached_at: Option<std::time::Instant>,
}

impl Backend for Recording {
    fn attach(&mut self) -> scx_slo_bpf::Result<()> {
        self.attached = true;
        Ok(())
    }
    fn apply(&mut self, targets: &[MapTarget]) -> scx_slo_bpf::Result<()> {
        scx_slo_bpf::ensure!(!self.fail_apply, "map update: E2BIG");
        self.applied = targets.to_vec();
        Ok(())
    }
    fn detach(&mut self) {
        self.attached = false;
        self.detaches += 1;
        self.detached_at = Some(std::time::Instant::now());
    }
    fn exit_info(&self) -> Option<ExitInfo> {
        self.exit.clone()
    }
    fn target_stats(&self, index: u32) -> scx_slo_bpf::Result<TargetStats> {
        scx_slo_bpf::ensure!(self.applied.iter().any(|t| t.index == index), "no target at {index}");
        let mut stats = self.stats.get(&index).cloned().unwrap_or_default();
        stats.counters.set(Counter::Wakeups, 7);
        Ok(stats)
    }
    fn global_stats(&self) -> scx_slo_bpf::Result<Vec<(&'static str, u64)>> {
        Ok(vec![("enqueues", 3)])
    }
    fn events_map(&self) -> Option<scx_slo_bpf::events::EventsMap> {
        None
    }
    fn target_capacity(&self) -> u32 {
        self.capacity.unwrap_or(scx_slo_model::MAX_TARGETS as u32)
    }
}

fn caps() -> Capabilities {
    Capabilities { sched_ext: true, btf: true, cgroup2: true, cgroup2_unified: true, systemd: false, enforce_unavailable: None }
}

/// A fresh audit directory for each engine a test starts.
fn test_audit_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("scx-slod-engine-audit-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options() -> EngineOptions {
    EngineOptions {
        config_path: scx_slo_api::paths::CONFIG.into(),
        status_path: scx_slo_api::paths::STATUS_FILE.into(),
        state_path: scx_slo_api::paths::STATE_FILE.into(),
        audit_dir: test_audit_dir(),
        audit_retain_bytes: crate::audit::DEFAULT_RETAIN_BYTES,
        tick: Duration::from_millis(10),
        telemetry_every: Duration::from_millis(10),
        status_every: Duration::from_millis(10),
        backend: BackendKind::Simulated,
        breaker: BreakerConfig::default(),
        auto_change_limit: (crate::change_limit::DEFAULT_MAX_CHANGES, crate::change_limit::DEFAULT_WINDOW),
        systemd_bus: None,
    }
}

fn engine_with(host: &MemoryHost, persistent: PersistentState) -> (Engine, EngineHandle) {
    let probed = host.probed(caps(), persistent);
    let started = Engine::with_host(options(), Box::new(host.clone()), probed).expect("the engine starts");
    (started.engine, started.handle)
}

fn engine(host: &MemoryHost) -> (Engine, EngineHandle) {
    engine_with(host, PersistentState::default())
}

/// The caller every test request comes from: uid 1000 of the operators' group, over the bus.
fn operator() -> crate::control::Caller {
    crate::control::Caller { uid: Some(1000), pid: Some(4242), unit: Some("deploy.service".into()), via: "dbus".into() }
}

/// One request answered at once (None: it was parked).
fn call(engine: &mut Engine, sched: Option<&mut dyn Backend>, request: Request) -> Option<Reply> {
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    engine.handle(Envelope::new(request, Some(tx), operator()), sched);
    rx.try_recv().ok()
}

fn ok(reply: Option<Reply>) -> String {
    reply.expect("answered").expect("succeeded")
}

fn err(reply: Option<Reply>) -> ControlError {
    reply.expect("answered").expect_err("refused")
}

fn status(engine: &mut Engine, sched: Option<&mut dyn Backend>) -> Status {
    parse("Status", &ok(call(engine, sched, Request::Status))).expect("a Status document")
}

/// Every write queued so far on the disk, then the state last saved
/// (automatic changes save without waiting: the disk writer's thread).
fn saved(engine: &Engine, host: &MemoryHost) -> PersistentState {
    settle(engine);
    host.last_saved()
}

/// Waits until every write queued so far is on the disk.
fn settle(engine: &Engine) {
    assert!(engine.disk.flush(std::time::Duration::from_secs(10)), "the disk writer is stuck");
}

/// Reload with the host's config file as the D-Bus handler reads it.
fn reload(host: &MemoryHost) -> Request {
    Request::Reload { text: Ok(host.config.lock().unwrap().clone()) }
}

fn set_budget(unit: &str, runtime_us: u64, period_us: u64, key: &str) -> Request {
    Request::SetBudget { unit: unit.into(), runtime_us, period_us, key: key.into() }
}

/// A running engine: the session's start without its loop.
fn running(engine: &mut Engine, backend: &mut Recording) {
    let t = engine.supervisor.go(State::Starting, "test");
    engine.announce(t);
    engine.fill_and_attach(backend).expect("maps filled and attached");
    let _ = engine.supervisor.attached(scx_slo_api::ActiveMode::Enforce, false);
    let t = engine.supervisor.go(State::Running, "test");
    engine.announce(t);
}

#[test]
fn reads_are_typed_documents_and_an_unknown_unit_is_named() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    let s = status(&mut e, Some(&mut b));
    assert_eq!((s.state, s.mode.as_str(), s.generation, s.targets.len()), (State::Running, "enforce", 1, 4));
    assert_eq!(s.config_sha256, scx_slo_model::config_digest(EXAMPLE));
    let api = s.targets.iter().find(|t| t.key == "api.service").unwrap();
    assert_eq!((api.cgroup_id, api.stats.as_ref().map(|s| s.get(Counter::Wakeups))), (Some(101), Some(7)), "{api:?}");
    assert_eq!(s.global.as_ref().and_then(|g| g.get("enqueues")), Some(&3));
    let batch = s.targets.iter().find(|t| t.key == "batch.slice").unwrap();
    assert!(batch.cgroup_id.is_none() && batch.stats.is_none(), "an unresolved target has no counters: {batch:?}");

    let list: TargetList = parse("ListTargets", &ok(call(&mut e, None, Request::ListTargets))).unwrap();
    assert_eq!(list.targets.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["/legacy/cron-jobs", "api.service", "batch.slice", "worker.service"]);
    let x: Explain = parse("Explain", &ok(call(&mut e, Some(&mut b), Request::Explain { unit: "api.service".into() }))).unwrap();
    assert!(x.why.contains("earliest-deadline-first") && x.recent.as_ref().is_some_and(|r| r.wakeups == 7), "{x:?}");
    let x: Explain = parse("Explain", &ok(call(&mut e, None, Request::Explain { unit: "batch.slice".into() }))).unwrap();
    assert!(x.why.contains("no cgroup found yet"), "{x:?}");
    match err(call(&mut e, None, Request::Explain { unit: "nope.service".into() })) {
        ControlError::InvalidArgument(m) => assert!(m.contains("\"nope.service\"") && m.contains("api.service, batch.slice"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn enable_parks_until_the_session_runs_and_refuses_bad_modes() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    assert!(matches!(err(call(&mut e, None, Request::Enable { mode: "turbo".into() })), ControlError::InvalidArgument(m) if m.contains("use enforce")));
    // Idle: the reply waits for the session (None here).
    assert!(call(&mut e, None, Request::Enable { mode: "".into() }).is_none());
    assert!(!saved(&e, &host).breaker_open && saved(&e, &host).operator_disabled.is_none());
    let mut b = Recording::default();
    running(&mut e, &mut b);
    assert_eq!(ok(call(&mut e, Some(&mut b), Request::Enable { mode: "enforce".into() })), "already running generation 1");
}

#[test]
fn enable_a_mode_the_host_lacks_is_not_supported() {
    let host = MemoryHost::new(EXAMPLE);
    let no_sched_ext = Capabilities { sched_ext: false, enforce_unavailable: Some("kernel x has no sched_ext".into()), ..caps() };
    let probed = host.probed(no_sched_ext, PersistentState::default());
    // The config asks for enforce: the engine does not start.
    let refused = Engine::with_host(options(), Box::new(host.clone()), probed).err().expect("refused");
    assert_eq!(refused.0, crate::exit::MODE_UNAVAILABLE);
    assert!(refused.1.contains("no sched_ext"), "{}", refused.1);
}

#[test]
fn disable_detaches_before_it_replies_and_persists_or_says_it_did_not() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    assert!(matches!(err(call(&mut e, Some(&mut b), Request::Disable { reason: "  ".into() })), ControlError::InvalidArgument(m) if m.starts_with("reason")));
    assert!(b.attached && e.supervisor.state() == State::Running, "a refused Disable changes nothing");
    let reply = ok(call(&mut e, Some(&mut b), Request::Disable { reason: "incident 42".into() }));
    assert!(reply.contains("stays off across restarts"), "{reply}");
    assert!(!b.attached && b.detaches == 1);
    assert_eq!(e.supervisor.state(), State::Disabled);
    assert_eq!(saved(&e, &host).operator_disabled.as_deref(), Some("incident 42"));
    assert!(host.notified.lock().unwrap().iter().any(|n| n.contains("disabled by an operator: incident 42")));
    assert_eq!(host.marker.lock().unwrap().as_deref(), Some("incident 42"), "the runtime marker holds the Disable too");
    assert!(reply.contains("in the engine's queue"), "the reply says the wait apart from the detach: {reply}");
    assert!(call(&mut e, None, Request::Enable { mode: "".into() }).is_none(), "the session starts; the reply comes with it");
    assert_eq!(*host.marker.lock().unwrap(), None, "Enable removed the marker");

    // A read-only disk: the reply and Status say it is not saved, and that
    // only the runtime marker holds it (a reboot forgets it).
    let (mut e, _h) = engine(&host);
    running(&mut e, &mut b);
    host.disk_read_only.store(true, Ordering::Relaxed);
    let reply = ok(call(&mut e, Some(&mut b), Request::Disable { reason: "again".into() }));
    assert!(reply.contains("stays off until Enable or a reboot") && reply.contains("NOT saved"), "{reply}");
    assert!(reply.contains("a restart of scx-slod in this boot does not") && !reply.contains("stays off across restarts"), "{reply}");
    assert!(status(&mut e, None).persist_error.is_some_and(|p| p.contains("Read-only")));
    assert_eq!(host.marker.lock().unwrap().as_deref(), Some("again"));

    // Neither the disk nor the runtime directory: a restart forgets it.
    let (mut e, _h) = engine(&host);
    running(&mut e, &mut b);
    host.marker_fails.store(true, Ordering::Relaxed);
    let reply = ok(call(&mut e, Some(&mut b), Request::Disable { reason: "third".into() }));
    assert!(reply.contains("until scx-slod restarts") && reply.contains("a restart of scx-slod forgets it"), "{reply}");
    host.marker_fails.store(false, Ordering::Relaxed);
    host.disk_read_only.store(false, Ordering::Relaxed);
}

#[test]
fn reload_applies_a_new_generation_or_keeps_the_running_one() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    assert!(ok(call(&mut e, Some(&mut b), reload(&host))).starts_with("generation 2 applied (4 targets"));

    // Invalid: refused with the validator's words, generation 2 stays and
    // Status says why until the next good reload.
    *host.config.lock().unwrap() = EXAMPLE.replace("\"3ms\"", "\"30ms\"");
    assert!(matches!(err(call(&mut e, Some(&mut b), reload(&host))), ControlError::InvalidConfig(m) if m.contains("budget.runtime")));
    let s = status(&mut e, None);
    assert_eq!(s.generation, 2);
    assert!(s.last_reload_error.is_some_and(|r| r.starts_with("invalid config")));

    // An unreadable file (the handler's reason) is refused, nothing changes.
    let unreadable = Request::Reload { text: Err("reading /etc/scx-slo/config.json took over 10 s".into()) };
    assert!(matches!(err(call(&mut e, Some(&mut b), unreadable)), ControlError::InvalidConfig(m) if m.contains("took over 10 s")));

    // A load-time section: refused, named.
    *host.config.lock().unwrap() = EXAMPLE.replace("\"slice_max\": \"5ms\"", "\"slice_max\": \"4ms\"");
    assert!(matches!(err(call(&mut e, Some(&mut b), reload(&host))), ControlError::InvalidConfig(m) if m.contains("`scheduler` is fixed")));

    // The maps cannot be written: Failed, nothing changes.
    *host.config.lock().unwrap() = EXAMPLE.replace("\"priority\": 800", "\"priority\": 900");
    b.fail_apply = true;
    assert!(matches!(err(call(&mut e, Some(&mut b), reload(&host))), ControlError::Failed(m) if m.contains("generation 2 stays")));
    b.fail_apply = false;
    assert_eq!(ok(call(&mut e, Some(&mut b), reload(&host))).split(' ').nth(1), Some("3"));
    let s = status(&mut e, None);
    assert!(s.last_reload_error.is_none() && s.config_sha256 == scx_slo_model::config_digest(&host.config.lock().unwrap()));
}

/// The maps hold the slots they were sized for at load; a reload
/// with more targets is refused before anything is written, and says how
/// to size them anew.
#[test]
fn a_reload_past_the_loaded_slots_is_refused_and_the_generation_stays() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let mut b = Recording { capacity: Some(4), ..Recording::default() };
    running(&mut e, &mut b);
    assert_eq!(status(&mut e, None).target_capacity, 4);
    let before: Vec<u64> = b.applied.iter().map(|t| t.cgroup_id).collect();
    *host.config.lock().unwrap() = EXAMPLE.replacen("\"targets\": {", "\"targets\": { \"extra.service\": { \"class\": \"batch\" },", 1);
    let refused = err(call(&mut e, Some(&mut b), reload(&host)));
    assert!(
        matches!(&refused, ControlError::InvalidConfig(m) if m.contains("5 targets do not fit the 4 slots") && m.contains("restart scx-slod") && m.contains("generation 1 stays")),
        "{refused:?}"
    );
    assert_eq!(b.applied.iter().map(|t| t.cgroup_id).collect::<Vec<_>>(), before, "nothing was written");
    assert_eq!(status(&mut e, None).generation, 1);
    // Loaded with room for them, the same file applies.
    b.capacity = Some(8);
    assert!(ok(call(&mut e, Some(&mut b), reload(&host))).starts_with("generation 2 applied (5 targets"));
    // What a fresh load would get: twice the targets, at least 32.
    assert_eq!(e.target_capacity(), 32);
}

#[test]
fn set_budget_is_validated_applied_persisted_and_idempotent() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    for (request, what) in [
        (set_budget("nope.service", 1000, 10_000, ""), "not a target"),
        (set_budget("batch.slice", 1000, 10_000, ""), "batch target"),
        (set_budget("api.service", 1000, 0, ""), "budget.period"),
        (set_budget("api.service", 20_000, 10_000, ""), "budget.runtime"),
    ] {
        assert!(matches!(err(call(&mut e, Some(&mut b), request)), ControlError::InvalidArgument(m) if m.contains(what)), "{what}");
    }
    // Admission and the target's deadline are the config's, not the argument's.
    assert!(matches!(err(call(&mut e, Some(&mut b), set_budget("api.service", 1000, 2000, ""))), ControlError::InvalidConfig(_)));
    assert!(matches!(err(call(&mut e, Some(&mut b), set_budget("api.service", 9_500_000, 10_000_000, ""))), ControlError::InvalidConfig(m) if m.contains("deadline")));
    assert_eq!(e.generation.number, 1, "refused calls change nothing");
    assert!(host.saved.lock().unwrap().is_empty());

    let first = ok(call(&mut e, Some(&mut b), set_budget("api.service", 4000, 10_000, "k1")));
    assert!(first.starts_with("api.service: budget 4000us per 10000us; generation 2 applied"), "{first}");
    let api = b.applied.iter().find(|t| t.cgroup_id == 101).expect("api.service in the maps");
    assert_eq!((api.cfg.runtime_ns, api.cfg.period_ns), (4_000_000, 10_000_000));
    assert_eq!(saved(&e, &host).budget_overrides["api.service"].runtime_us, 4000);
    assert_eq!(ok(call(&mut e, Some(&mut b), set_budget("api.service", 4000, 10_000, "k1"))), first, "a replay");
    assert!(matches!(err(call(&mut e, Some(&mut b), set_budget("api.service", 3000, 10_000, "k1"))), ControlError::Conflict(_)));
    assert_eq!(e.generation.number, 2);
    let list: TargetList = parse("ListTargets", &ok(call(&mut e, None, Request::ListTargets))).unwrap();
    assert_eq!(list.targets.iter().filter(|t| t.overridden).map(|t| t.key.as_str()).collect::<Vec<_>>(), ["api.service"]);
    let s = status(&mut e, None);
    assert_eq!(s.budget_override_drift["api.service"].override_, "4000us per 10000us");

    // The maps cannot be written: nothing applied, nothing persisted.
    b.fail_apply = true;
    assert!(matches!(err(call(&mut e, Some(&mut b), set_budget("worker.service", 500, 20_000, ""))), ControlError::Failed(_)));
    b.fail_apply = false;
    assert!(!saved(&e, &host).budget_overrides.contains_key("worker.service"));

    // ClearBudget.
    assert!(matches!(err(call(&mut e, Some(&mut b), Request::ClearBudget { unit: "worker.service".into() })), ControlError::InvalidArgument(m) if m.contains("overrides: api.service")));
    assert!(ok(call(&mut e, Some(&mut b), Request::ClearBudget { unit: "api.service".into() })).contains("generation 3 applied"));
    assert!(saved(&e, &host).budget_overrides.is_empty());

    // Overrides survive a restart, and a reload that removes their target drops them, saying so.
    ok(call(&mut e, Some(&mut b), set_budget("api.service", 2000, 10_000, "")));
    let (mut e, _h) = engine_with(&host, saved(&e, &host));
    let api = e.generation.config.targets.iter().find(|t| t.key == "api.service").unwrap();
    assert_eq!(api.budget.map(|b| b.runtime.as_ns()), Some(2_000_000));
    let mut json: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    json["targets"].as_object_mut().unwrap().remove("api.service");
    *host.config.lock().unwrap() = json.to_string();
    let reply = ok(call(&mut e, None, reload(&host)));
    assert!(reply.contains("budget overrides dropped: api.service (no longer in the config)"), "{reply}");
    assert!(saved(&e, &host).budget_overrides.is_empty());
}

#[test]
fn failures_back_off_open_the_breaker_and_enable_or_reset_close_it() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let mut b = Recording::default();
    running(&mut e, &mut b);
    e.failed("ejected".into());
    assert_eq!(e.supervisor.state(), State::Degraded);
    for _ in 0..2 {
        e.supervisor.go(State::Starting, "retry");
        e.failed("ejected".into());
    }
    assert_eq!(e.supervisor.state(), State::Failed);
    assert!(saved(&e, &host).breaker_open);
    assert!(status(&mut e, None).breaker.open);
    assert_eq!(ok(call(&mut e, None, Request::ResetBreaker)), "circuit breaker closed; retrying now");
    assert!(!saved(&e, &host).breaker_open);
    let (mut fresh, _h) = engine(&host);
    assert_eq!(ok(call(&mut fresh, None, Request::ResetBreaker)), "circuit breaker closed");

    // Restored open after a restart: Enable closes it and is persisted.
    let (mut e, _h) = engine_with(&host, PersistentState { breaker_open: true, ..Default::default() });
    assert_eq!(e.supervisor.state(), State::Failed);
    assert!(call(&mut e, None, Request::Enable { mode: "".into() }).is_none());
    assert!(!saved(&e, &host).breaker_open && e.supervisor.wanted_on());
}

#[test]
fn counters_carry_over_a_re_attach() {
    let host = MemoryHost::new(EXAMPLE);
    let (mut e, _h) = engine(&host);
    let wakeups = |s: &Status| s.target("api.service").and_then(|t| t.stats.as_ref()).map(|s| s.get(Counter::Wakeups));
    let mut first = Recording::default();
    running(&mut e, &mut first);
    assert_eq!(wakeups(&status(&mut e, Some(&mut first))), Some(7));
    // The session ends (Disable, an ejection, a mode switch): its counts stay.
    e.targets.carried.session_ended(&e.generation.config, &e.targets.slots, &e.targets.resolved, &first);
    assert_eq!(wakeups(&status(&mut e, None)), Some(7), "between sessions");
    let mut second = Recording::default();
    running(&mut e, &mut second);
    assert_eq!(wakeups(&status(&mut e, Some(&mut second))), Some(14), "new maps start at zero; the total does not");
    // A target that leaves the config leaves its count behind.
    let mut json: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    json["targets"].as_object_mut().unwrap().remove("api.service");
    *host.config.lock().unwrap() = json.to_string();
    ok(call(&mut e, Some(&mut second), reload(&host)));
    assert_eq!(e.targets.carried.total("api.service", None), None);
}

#[test]
fn a_whole_run_attaches_answers_enable_and_writes_a_final_status() {
    let host = MemoryHost::new(EXAMPLE);
    let (e, handle) = engine_with(&host, PersistentState { operator_disabled: Some("before".into()), ..Default::default() });
    let (tx, rx) = tokio::sync::oneshot::channel();
    handle.tx.try_send(Envelope::new(Request::Enable { mode: "".into() }, Some(tx), operator())).unwrap();
    let runner = std::thread::spawn(move || e.run());
    let reply = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(rx).unwrap();
    assert_eq!(reply, Ok("running generation 1".to_string()), "Enable is answered once the session runs");
    assert_eq!(handle.snapshot().state, State::Running);
    assert!(handle.post(Request::Shutdown));
    assert_eq!(runner.join().unwrap(), crate::exit::OK);
    let last = host.statuses.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.state, State::Stopped, "the last status file never reads running");
    let notified = host.notified.lock().unwrap().join("\n");
    assert!(notified.contains("Ready") && notified.contains("Stopping"), "{notified}");
}

mod closed_loop_and_audit;
mod daemon_metrics;
