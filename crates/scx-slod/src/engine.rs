// SPDX-License-Identifier: GPL-2.0-only
//! The engine: one thread that owns the scheduler and every piece of state.
//! D-Bus handlers and signal handlers send it requests over a bounded
//! channel; it replies with the real result, changes state only after the
//! work succeeded, and is the only writer of the status file and of the
//! properties the D-Bus service shows.
//!
//! Safety rules: nothing touches the kernel until a config is valid; maps are
//! filled before attach; a rejected reload or budget change leaves the
//! running generation in place; Disable detaches before it replies; any
//! failure or ejection detaches, backs off and, after repeated failures,
//! opens the circuit breaker until an operator resets it.

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scx_slo_bpf::{KernelFeatures, LoadParams, Observer, Scheduler, Topology};
use scx_slo_model::{Class, Config};
use serde_json::{json, Value};
use tracing::{debug, error, info, warn};

use crate::backend::{Backend, Simulated};
use crate::metrics::SharedSnapshot;
use crate::modes::{ActiveMode, Capabilities};
use crate::telemetry::{ScanInput, Telemetry};
use crate::breaker::{Breaker, BreakerConfig, Decision};
use crate::control::{ControlError, Envelope, Event, Reply, Request, Snapshot};
use crate::idempotency::{IdempotencyStore, Lookup};
use crate::lifecycle::{Lifecycle, State};
use crate::persist::{self, BudgetOverride, PersistentState};
use crate::resolver::{self, Resolved};
use crate::switcher::Switcher;

/// How long the scheduler must run before a failure counts as a fresh start
/// for the backoff (the breaker's window still counts every failure).
const STABLE_RUN: Duration = Duration::from_secs(30);

/// Cgroups the partial-mode switcher reads per scan, about.
const SWITCH_SCAN_CGROUPS: usize = 100;

/// Which scheduler the engine drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The scx_slo BPF scheduler (needs sched_ext).
    Bpf,
    /// An in-memory stand-in for control-plane tests on any host.
    Simulated,
}

/// Everything the engine is started with.
pub struct EngineOptions {
    /// The config file.
    pub config_path: PathBuf,
    /// Where the status document goes.
    pub status_path: PathBuf,
    /// Where persistent state goes.
    pub state_path: PathBuf,
    /// Scan period (partial switching, exit checks).
    pub tick: Duration,
    /// Period of the slower work: re-resolving targets, reading cgroup
    /// files and maps for metrics, the overhead guard and advisory.
    pub telemetry_every: Duration,
    /// Status file period.
    pub status_every: Duration,
    /// bpf_printk in the scheduler.
    pub debug_bpf: bool,
    /// Backend.
    pub backend: BackendKind,
    /// Breaker settings.
    pub breaker: BreakerConfig,
    /// systemd's bus for advisory mode (None: the system bus). Tests point it
    /// at a private bus, which also stands in for systemd's presence.
    pub systemd_bus: Option<String>,
}

/// Reads and validates a config file: `(raw JSON, config, SHA-256 of the
/// text)`, or an exit code and message.
pub fn read_config(path: &std::path::Path) -> Result<(Value, Config, String), (i32, String)> {
    let text = scx_slo_model::read_config_text(path).map_err(|e| {
        let code = if e.is_invalid_content() { crate::exit::INVALID_CONFIG } else { crate::exit::UNREADABLE_CONFIG };
        (code, format!("reading {}: {e}", path.display()))
    })?;
    let config = scx_slo_model::load_str(&text, Some(online_cpus()))
        .map_err(|errors| (crate::exit::INVALID_CONFIG, format!("{} is invalid:\n{errors}", path.display())))?;
    // load_str accepted the text, so it is JSON.
    let raw = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok((raw, config, scx_slo_model::config_digest(&text)))
}

fn online_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Load-time sections a reload cannot change without reloading BPF.
fn load_time_change(old: &Config, new: &Config) -> Option<&'static str> {
    if old.switch != new.switch {
        Some("switch")
    } else if old.scheduler != new.scheduler {
        Some("scheduler")
    } else if old.numa != new.numa {
        Some("numa")
    } else if old.early_warning != new.early_warning {
        Some("early_warning")
    } else if old.mode != new.mode {
        Some("mode")
    } else {
        None
    }
}

/// The file config with budget overrides patched in, validated whole.
fn effective(raw: &Value, overrides: &BTreeMap<String, BudgetOverride>) -> Result<Config, String> {
    let mut patched = raw.clone();
    for (unit, o) in overrides {
        // get_mut, not indexing: `patched["targets"][unit]` would insert a
        // null target for an override whose target the file no longer has.
        if let Some(target) = patched.get_mut("targets").and_then(|t| t.get_mut(unit.as_str())).filter(|t| t.is_object()) {
            target["budget"] = json!({ "runtime": format!("{}us", o.runtime_us), "period": format!("{}us", o.period_us) });
        }
    }
    scx_slo_model::load_str(&patched.to_string(), Some(online_cpus())).map_err(|e| e.to_string())
}

/// Splits the overrides into those that still apply to `raw` and those that
/// do not, with why: an override's target was removed from the file or is
/// no longer a latency target. A reload drops the latter (and says so)
/// instead of failing on them: the file is the operator's newer word.
fn applicable_overrides(raw: &Value, overrides: &BTreeMap<String, BudgetOverride>) -> (BTreeMap<String, BudgetOverride>, Vec<String>) {
    let mut kept = BTreeMap::new();
    let mut dropped = Vec::new();
    for (unit, o) in overrides {
        match raw.get("targets").and_then(|t| t.get(unit.as_str())) {
            None => dropped.push(format!("{unit} (no longer in the config)")),
            Some(t) if t.get("class").and_then(Value::as_str) != Some("latency") => {
                dropped.push(format!("{unit} (now class {})", t.get("class").map_or("unset".to_string(), |c| c.to_string())))
            }
            Some(_) => {
                kept.insert(unit.clone(), *o);
            }
        }
    }
    (kept, dropped)
}


/// Tells systemd about the lifecycle; a no-op outside systemd.
fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify");
    }
}

/// The engine.
pub struct Engine {
    opts: EngineOptions,
    rx: Receiver<Envelope>,
    snapshot: Arc<Mutex<Snapshot>>,
    events: tokio::sync::mpsc::Sender<Event>,
    raw: Value,
    config: Config,
    generation: u64,
    lifecycle: Lifecycle,
    breaker: Breaker,
    idempotency: IdempotencyStore<Reply>,
    persistent: PersistentState,
    features: KernelFeatures,
    caps: Capabilities,
    /// The mode the config asks for on this host.
    primary: ActiveMode,
    /// The mode running now (None: nothing loaded).
    active: Option<ActiveMode>,
    /// An Enable asked for another mode: end the session and start it.
    mode_switch: bool,
    /// Observe could not load as a fallback; not retried until this.
    fallback_retry_at: Option<Instant>,
    telemetry: Telemetry,
    last_telemetry: Option<Instant>,
    scans: u64,
    cgroup_root: PathBuf,
    topology: Topology,
    resolved: BTreeMap<String, Resolved>,
    switcher: Switcher,
    wanted_on: bool,
    retry_at: Option<Instant>,
    pending_enable: Vec<tokio::sync::oneshot::Sender<Reply>>,
    shutdown: bool,
    epoch: Instant,
    last_status: Option<Instant>,
    load_ms: f64,
    attach_ms: f64,
    last_apply_us: f64,
    last_reload_error: Option<String>,
    /// SHA-256 of the config file text the running generation came from.
    config_sha256: String,
    /// Why the last write of the persistent state failed (None: it held).
    persist_error: Option<String>,
    /// Each target's map slot, stable across applies.
    slots: crate::slots::Slots,
    last_exit: Option<scx_slo_bpf::ExitInfo>,
    events_received: Arc<AtomicU64>,
    /// Tids the events thread switched to SCHED_EXT (partial mode), for the
    /// switcher to adopt at its next scan.
    reported_switched: Arc<Mutex<Vec<i32>>>,
    /// Threads switched to SCHED_EXT on the scheduler's report / by a scan.
    switched_by_event: Arc<AtomicU64>,
    switched_by_scan: u64,
    /// Threads the kernel refused SCHED_EXT (EPERM...), the last reason, and
    /// when that was last logged.
    switch_refusals: u64,
    switch_last_refusal: Option<String>,
    switch_refused_warned: Option<Instant>,
    notified_ready: bool,
    final_status_written: bool,
}

/// What `Engine::new` needs that it cannot check itself.
pub struct Started {
    /// The engine, to run on its own thread.
    pub engine: Engine,
    /// The way in.
    pub handle: crate::control::EngineHandle,
    /// Events for D-Bus signals.
    pub events: tokio::sync::mpsc::Receiver<Event>,
    /// The metrics snapshot, for the HTTP endpoint.
    pub metrics: SharedSnapshot,
}

impl Engine {
    /// Validates the config, probes the kernel and restores persistent state.
    /// `Err` carries the process exit code and the message.
    pub fn new(opts: EngineOptions) -> Result<Started, (i32, String)> {
        let (raw, config, config_sha256) = read_config(&opts.config_path)?;
        let features = scx_slo_bpf::probe::probe();
        let cgroup_root = resolver::cgroup2_root();
        let mut caps = crate::modes::probe(&features, cgroup_root.as_deref());
        if opts.systemd_bus.is_some() {
            // Test hook: a private bus plays systemd on a host without it.
            caps.systemd = true;
            caps.cgroup2_unified = caps.cgroup2;
        }
        if opts.backend == BackendKind::Simulated {
            caps.sched_ext = true;
            caps.enforce_unavailable = None;
        }
        let primary = caps.select(config.mode).map_err(|why| {
            (crate::exit::MODE_UNAVAILABLE, format!("mode {}: {why}", serde_json::to_string(&config.mode).unwrap_or_default()))
        })?;
        let cgroup_root = cgroup_root.ok_or((
            crate::exit::MODE_UNAVAILABLE,
            "no cgroup2 hierarchy is mounted; scx-slo targets cgroups by their v2 id".to_string(),
        ))?;
        info!(mode = primary.as_str(), requested = ?config.mode, capabilities = ?caps.modes(), "mode selected");
        let topology = Topology::from_sysfs().map_err(|e| (crate::exit::LOAD_FAILED, format!("reading the CPU topology: {e:#}")))?;

        let loaded = persist::load(&opts.state_path)
            .map_err(|e| (crate::exit::LOAD_FAILED, format!("reading {}: {e}", opts.state_path.display())))?;
        if let Some(msg) = &loaded.quarantined {
            error!("{msg}");
        }
        let mut persistent = loaded.state;
        // Overrides for targets that left the config, or that no longer
        // validate, are dropped with a warning rather than blocking start.
        let mut config = config;
        if !persistent.budget_overrides.is_empty() {
            match effective(&raw, &persistent.budget_overrides) {
                Ok(c) => config = c,
                Err(e) => {
                    warn!("stored budget overrides no longer fit the config and are dropped: {e}");
                    persistent.budget_overrides.clear();
                }
            }
        }
        let breaker = if persistent.breaker_open { Breaker::opened(opts.breaker) } else { Breaker::new(opts.breaker) };
        let wanted_on = persistent.operator_disabled.is_none() && !persistent.breaker_open;

        let (tx, rx) = std::sync::mpsc::sync_channel(crate::control::ENGINE_QUEUE);
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(256);
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let metrics: SharedSnapshot = Arc::default();
        let telemetry = Telemetry::new(Arc::clone(&metrics), config.observe.overhead_budget, opts.systemd_bus.clone());
        let mut lifecycle = Lifecycle::default();
        if persistent.breaker_open {
            // Restored: the breaker opened before the restart.
            let _ = lifecycle.go(State::Starting, "restoring");
            let _ = lifecycle.go(State::Failed, "circuit breaker was open before the restart");
        }
        let engine = Engine {
            opts,
            rx,
            snapshot: Arc::clone(&snapshot),
            events: events_tx,
            raw,
            config,
            generation: 1,
            lifecycle,
            breaker,
            idempotency: IdempotencyStore::new(Duration::from_secs(3600), 4096),
            persistent,
            features,
            caps,
            primary,
            active: None,
            mode_switch: false,
            fallback_retry_at: None,
            telemetry,
            last_telemetry: None,
            scans: 0,
            cgroup_root,
            topology,
            resolved: BTreeMap::new(),
            switcher: Switcher::default(),
            wanted_on,
            retry_at: None,
            pending_enable: Vec::new(),
            shutdown: false,
            epoch: Instant::now(),
            last_status: None,
            load_ms: 0.0,
            attach_ms: 0.0,
            last_apply_us: 0.0,
            last_reload_error: None,
            config_sha256,
            persist_error: None,
            slots: Default::default(),
            last_exit: None,
            events_received: Arc::new(AtomicU64::new(0)),
            reported_switched: Arc::new(Mutex::new(Vec::new())),
            switched_by_event: Arc::new(AtomicU64::new(0)),
            switched_by_scan: 0,
            switch_refusals: 0,
            switch_last_refusal: None,
            switch_refused_warned: None,
            notified_ready: false,
            final_status_written: false,
        };
        engine.publish_snapshot();
        Ok(Started { engine, handle: crate::control::EngineHandle {
                tx,
                snapshot,
                reads: Arc::new(tokio::sync::Semaphore::new(crate::control::READ_SLOTS)),
            }, events: events_rx, metrics })
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn mode_name(&self) -> &'static str {
        self.active.map_or("none", ActiveMode::as_str)
    }

    fn publish_snapshot(&self) {
        if let Ok(mut s) = self.snapshot.lock() {
            *s = Snapshot { state: self.lifecycle.state(), mode: self.mode_name().into(), generation: self.generation };
        }
    }

    fn go(&mut self, to: State, reason: impl Into<String>) {
        let reason = reason.into();
        match self.lifecycle.go(to, reason.clone()) {
            Ok(Some(t)) => {
                info!(event = "state_changed", from = %t.from, to = %t.to, reason = %t.reason, "state changed");
                notify(&[sd_notify::NotifyState::Status(&format!("{}: {}", t.to, t.reason))]);
                self.publish_snapshot();
                let _ = self.events.try_send(Event::StateChanged {
                    state: t.to.to_string(),
                    mode: self.mode_name().into(),
                    reason: t.reason,
                });
            }
            Ok(None) => {}
            Err(e) => error!("internal: {e} ({reason})"),
        }
    }

    /// Writes the persistent state. On failure (a read-only or full state
    /// directory) it logs, keeps the error for Status, and returns the clause
    /// a reply must carry: a reply never says "stays off across restarts"
    /// when the disk does not hold it.
    fn save_persistent(&mut self) -> String {
        match persist::save_json(&self.opts.state_path, &self.persistent) {
            Ok(()) => {
                self.persist_error = None;
                String::new()
            }
            Err(e) => {
                error!(event = "persist_failed", path = %self.opts.state_path.display(), error = %e, "writing persistent state");
                let why = format!("{}: {e}", self.opts.state_path.display());
                self.persist_error = Some(why.clone());
                format!("; NOT saved ({why}): a restart of scx-slod forgets it")
            }
        }
    }

    /// Runs until shutdown; returns the process exit code.
    pub fn run(mut self) -> i32 {
        if !self.wanted_on {
            let why = match &self.persistent.operator_disabled {
                Some(reason) => format!("disabled by an operator before the restart: {reason}"),
                None => "circuit breaker open before the restart".to_string(),
            };
            warn!("{why}; staying off until Enable");
            self.ready();
        }
        while !self.shutdown {
            match self.next_session() {
                Some((mode, fallback)) => {
                    let mut object = MaybeUninit::uninit();
                    self.session(mode, fallback, &mut object);
                }
                None => self.idle_tick(),
            }
        }
        notify(&[sd_notify::NotifyState::Stopping]);
        // A session that was running wrote the final status with the
        // kernel's counters; only a stop while idle still owes one.
        if !self.final_status_written {
            self.write_status(None, true);
        }
        crate::exit::OK
    }

    fn ready(&mut self) {
        if !self.notified_ready {
            notify(&[sd_notify::NotifyState::Ready]);
            self.notified_ready = true;
        }
    }

    /// The primary mode may (re)start: on, breaker closed, backoff over.
    fn primary_due(&self) -> bool {
        self.wanted_on && !self.breaker.is_open() && self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// What to run next: the primary mode when due; while enforce backs off
    /// or its breaker is open, observe as a fallback (the kernel schedules
    /// with its default scheduler either way, and the numbers keep coming).
    fn next_session(&self) -> Option<(ActiveMode, bool)> {
        if self.primary_due() {
            return Some((self.primary, false));
        }
        let fallback_ok = self.wanted_on
            && self.primary == ActiveMode::Enforce
            && self.caps.can_observe()
            && self.opts.backend == BackendKind::Bpf
            && self.fallback_retry_at.is_none_or(|t| Instant::now() >= t);
        fallback_ok.then_some((ActiveMode::Observe, true))
    }

    /// How often a loop with nothing to poll wakes on its own: the slower
    /// telemetry/status cadence (control requests wake it at once). Only
    /// partial switching needs the scan interval, to catch new threads.
    fn quiet_tick(&self) -> Duration {
        self.opts.tick.max(self.opts.telemetry_every.min(self.opts.status_every))
    }

    /// The wait until `retry_at`, when sooner than `wait`.
    fn until_retry(&self, wait: Duration) -> Duration {
        self.retry_at.map_or(wait, |at| wait.min(at.saturating_duration_since(Instant::now())))
    }

    /// One wait for a request while no scheduler is loaded.
    fn idle_tick(&mut self) {
        notify(&[sd_notify::NotifyState::Watchdog]);
        let wait = self.until_retry(self.quiet_tick());
        match self.rx.recv_timeout(wait) {
            Ok(envelope) => self.handle(envelope, None),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.shutdown = true,
        }
        if self.last_telemetry.is_none_or(|t| t.elapsed() >= self.opts.telemetry_every) {
            self.telemetry_scan(None);
        }
        self.maybe_write_status(None);
    }

    fn load<'obj>(
        &self,
        mode: ActiveMode,
        object: &'obj mut MaybeUninit<scx_slo_bpf::OpenObject>,
    ) -> anyhow::Result<Box<dyn Backend + 'obj>> {
        match (self.opts.backend, mode) {
            (BackendKind::Simulated, _) => Ok(Box::new(Simulated::default())),
            (BackendKind::Bpf, ActiveMode::Enforce) => {
                let params = LoadParams { config: self.config.clone(), topology: self.topology.clone(), debug: self.opts.debug_bpf };
                Ok(Box::new(Scheduler::load(object, &params)?))
            }
            (BackendKind::Bpf, ActiveMode::Observe | ActiveMode::Advisory) => Ok(Box::new(Observer::load(object)?)),
        }
    }

    /// Telemetry for one scan (metrics snapshot, overhead guard, advisory).
    fn telemetry_scan(&mut self, sched: Option<&mut dyn Backend>) {
        self.last_telemetry = Some(Instant::now());
        // Built from the fields directly, so the borrow of `telemetry` stays
        // disjoint from the ones the input holds.
        let input = ScanInput {
            config: &self.config,
            slots: &self.slots,
            resolved: &self.resolved,
            cgroup_root: &self.cgroup_root,
            mode: self.active,
            state: self.lifecycle.state().as_str(),
            generation: self.generation,
            capabilities: self.caps.modes().to_vec(),
        };
        self.telemetry.scan(&input, sched);
    }

    /// What a session loads, in words.
    fn what(mode: ActiveMode) -> &'static str {
        match mode {
            ActiveMode::Enforce => "scx_slo",
            ActiveMode::Observe | ActiveMode::Advisory => "the observe probes",
        }
    }

    /// A fallback session could not start: the primary's state stands, and
    /// observe is tried again in a minute.
    fn fallback_failed(&mut self, why: String) {
        warn!(event = "observe_fallback_failed", "{why}; no measurements until the next attempt");
        self.fallback_retry_at = Some(Instant::now() + Duration::from_secs(60));
    }

    /// Loads, attaches and runs a backend (the scheduler, or the probes)
    /// until it is disabled, fails, is ejected, or the daemon stops. A
    /// fallback session (observe while enforce backs off) leaves the
    /// lifecycle state alone and ends when enforce is due again.
    fn session(&mut self, mode: ActiveMode, fallback: bool, object: &mut MaybeUninit<scx_slo_bpf::OpenObject>) {
        let what = Self::what(mode);
        if !fallback {
            self.go(State::Starting, format!("loading {what} ({} mode)", mode.as_str()));
        }
        let started = Instant::now();
        let fail = |engine: &mut Self, why: String| if fallback { engine.fallback_failed(why) } else { engine.failed(why) };
        let mut sched = match self.load(mode, object) {
            Ok(s) => s,
            Err(e) => return fail(self, format!("loading {what}: {e:#}")),
        };
        self.load_ms = started.elapsed().as_secs_f64() * 1e3;
        self.resolved = resolver::resolve_all(&self.cgroup_root, &self.config);
        let t = Instant::now();
        self.slots.new_maps();
        self.slots.assign(&self.config);
        let targets = self.slots.map_targets(&self.config, &self.resolved);
        if let Err(e) = sched.apply(&targets) {
            return fail(self, format!("filling the maps of {what}: {e:#}"));
        }
        self.slots.written(&self.config, &targets);
        self.last_apply_us = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        if let Err(e) = sched.attach() {
            return fail(self, format!("attaching {what}: {e:#}"));
        }
        self.attach_ms = t.elapsed().as_secs_f64() * 1e3;
        self.active = Some(mode);
        self.telemetry.session_started(self.config.observe.overhead_budget);
        if fallback {
            warn!(event = "mode_changed", mode = mode.as_str(), "enforce is not running: observing with the default scheduler meanwhile");
            self.publish_snapshot();
            let _ = self.events.try_send(Event::PropertiesChanged);
            self.session_loop(sched.as_mut(), mode, true);
            return;
        }
        self.retry_at = None;
        self.last_exit = None;
        self.go(
            State::Running,
            format!(
                "{what} attached, {} mode (generation {}, {} of {} targets resolved, load {:.1} ms, attach {:.1} ms)",
                mode.as_str(),
                self.generation,
                self.resolved.len(),
                self.config.targets.len(),
                self.load_ms,
                self.attach_ms
            ),
        );
        for t in self.config.targets.iter().filter(|t| !self.resolved.contains_key(&t.key)) {
            warn!(unit = %t.key, "target has no cgroup yet; retrying every scan");
        }
        for reply in self.pending_enable.drain(..) {
            let _ = reply.send(Ok(format!("running generation {}", self.generation)));
        }
        self.ready();

        self.session_loop(sched.as_mut(), mode, false);
    }

    /// The running part of a session.
    fn session_loop(&mut self, sched: &mut dyn Backend, mode: ActiveMode, fallback: bool) {
        let reader_stop = scx_slo_bpf::events::ReaderStop::new();
        if let Err(e) = &reader_stop {
            warn!("early-warning events unavailable: {e:#}");
        }
        let reader_stop = reader_stop.ok();
        let reader = match (&reader_stop, sched.events_map()) {
            (Some(stop), Some(map)) => Some(self.spawn_event_reader(map, Arc::clone(stop))),
            _ => None,
        };

        // The backoff starts over only after a stable run: a scheduler that
        // is ejected right after every attach backs off 1 s, 2 s, 4 s, ...
        let running_since = Instant::now();
        let mut stable = false;
        let mut last_scan = Instant::now();
        // Nothing here needs polling faster than the quiet cadence: new
        // threads of targets are switched when the scheduler reports them
        // (events thread), the scan is only their safety net; a kernel
        // ejection is noticed at the next wake (the kernel has put every
        // task back on its default scheduler by then already). Without the
        // events thread, partial switching polls at the scan interval.
        let tick = if self.partial_switching(mode) && reader.is_none() { self.opts.tick } else { self.quiet_tick() };
        loop {
            if !fallback && !stable && running_since.elapsed() >= STABLE_RUN {
                stable = true;
                self.breaker.success();
            }
            notify(&[sd_notify::NotifyState::Watchdog]);
            let mut wait = tick.saturating_sub(last_scan.elapsed());
            if fallback {
                wait = self.until_retry(wait);
            }
            match self.rx.recv_timeout(wait) {
                Ok(envelope) => self.handle(envelope, Some(&mut *sched)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.shutdown = true,
            }
            if self.shutdown || !self.wanted_on || self.mode_switch {
                break;
            }
            if fallback && self.primary_due() {
                info!("enforce is due again: stopping the observe fallback");
                break;
            }
            if let Some(exit) = sched.exit_info() {
                self.telemetry.count_exit(&exit.kind_name);
                self.last_exit = Some(exit.clone());
                sched.detach();
                self.switcher.restore_all();
                self.failed(format!(
                    "the kernel ejected scx_slo ({}: {} {}); the host is on its default scheduler",
                    exit.kind_name, exit.reason, exit.msg
                ));
                break;
            }
            if last_scan.elapsed() >= tick {
                last_scan = Instant::now();
                self.scan(&mut *sched, mode);
            }
            self.maybe_write_status(Some(&*sched));
        }
        // Disable already detached; stopping and ejection land here too.
        let t = Instant::now();
        sched.detach();
        // No new-task switching after this point: stop the events thread
        // before restoring, and restore what it switched too.
        if let Some(stop) = &reader_stop {
            stop.stop();
        }
        if let Some(handle) = reader {
            let _ = handle.join();
        }
        self.adopt_reported();
        let restored = self.switcher.restore_all();
        if self.shutdown {
            self.write_status(Some(&*sched), true);
            self.final_status_written = true;
            info!(
                detach_ms = format!("{:.1}", t.elapsed().as_secs_f64() * 1e3),
                restored_threads = restored,
                "{} detached",
                Self::what(mode)
            );
        }
        self.active = None;
        if self.mode_switch {
            self.mode_switch = false;
            self.retry_at = None;
        }
        self.publish_snapshot();
        self.telemetry_scan(None);
    }

    /// Whether this session switches targeted threads to SCHED_EXT itself.
    fn partial_switching(&self, mode: ActiveMode) -> bool {
        mode == ActiveMode::Enforce && self.config.switch == scx_slo_model::SwitchMode::Partial
    }

    fn adopt_reported(&mut self) {
        let tids = self.reported_switched.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
        self.switcher.adopt(tids);
    }

    fn spawn_event_reader(&self, map: scx_slo_bpf::events::EventsMap, stop: Arc<scx_slo_bpf::events::ReaderStop>) -> std::thread::JoinHandle<()> {
        let names: Vec<String> = self.config.targets.iter().map(|t| t.key.clone()).collect();
        let received = Arc::clone(&self.events_received);
        let reported = Arc::clone(&self.reported_switched);
        let by_event = Arc::clone(&self.switched_by_event);
        let events = self.events.clone();
        std::thread::spawn(move || {
            let result = scx_slo_bpf::events::read_events(map, stop, move |ev| {
                if ev.kind == scx_slo_bpf::intf::slo_event_kind_SLO_EVENT_NEW_TASK {
                    let tids = crate::switcher::switch_reported(ev.pid as i32, ev.slack_ns != 0);
                    debug!(pid = ev.pid, switched = tids.len(), "new task in a target");
                    by_event.fetch_add(tids.len() as u64, Ordering::Relaxed);
                    if let Ok(mut r) = reported.lock() {
                        r.extend(tids);
                    }
                    return;
                }
                received.fetch_add(1, Ordering::Relaxed);
                let unit = names.get(ev.target as usize).cloned().unwrap_or_default();
                let kind = if ev.kind == scx_slo_bpf::intf::slo_event_kind_SLO_EVENT_DEADLINE_MISS {
                    "deadline_miss"
                } else {
                    "low_slack"
                };
                debug!(unit = %unit, pid = ev.pid, kind, slack_ns = ev.slack_ns, "slo event");
                let _ = events.try_send(Event::SloViolation { unit, kind: kind.into(), slack_ns: ev.slack_ns });
            });
            if let Err(e) = result {
                warn!("early-warning events unavailable: {e:#}");
            }
        })
    }

    /// A load failure or an ejection: back off, or open the breaker.
    fn failed(&mut self, why: String) {
        error!(event = "scheduler_failed", "{why}");
        let decision = self.breaker.failure(self.now());
        match decision {
            Decision::RetryAfter(delay) => {
                self.retry_at = Some(Instant::now() + delay);
                self.go(State::Degraded, format!("{why}; retrying in {:.1} s", delay.as_secs_f64()));
            }
            Decision::Open => {
                self.retry_at = None;
                self.persistent.breaker_open = true;
                let _ = self.save_persistent();
                self.go(
                    State::Failed,
                    format!(
                        "{why}; circuit breaker open after {} failures, staying off until ResetBreaker or Enable",
                        self.breaker.recent_failures()
                    ),
                );
            }
        }
        for reply in self.pending_enable.drain(..) {
            let _ = reply.send(Err(ControlError::Failed(why.clone())));
        }
        self.ready();
    }

    /// Periodic work while running: follow unit starts and partial switching.
    fn scan(&mut self, sched: &mut dyn Backend, mode: ActiveMode) {
        // Resolution and telemetry read a file or two per target: at the
        // telemetry period, not every scan (1,000 targets cost 64% of a CPU
        // at the 100 ms scan period, measured).
        let slow_due = self.last_telemetry.is_none_or(|t| t.elapsed() >= self.opts.telemetry_every);
        let now_resolved = if slow_due { resolver::resolve_all(&self.cgroup_root, &self.config) } else { self.resolved.clone() };
        if now_resolved != self.resolved {
            let t = Instant::now();
            let targets = self.slots.map_targets(&self.config, &now_resolved);
            match sched.apply(&targets) {
                Ok(()) => {
                    self.slots.written(&self.config, &targets);
                    self.last_apply_us = t.elapsed().as_secs_f64() * 1e6;
                    info!(resolved = now_resolved.len(), "target cgroups changed; maps updated");
                    self.resolved = now_resolved;
                }
                Err(e) => warn!("updating maps for changed cgroups: {e:#}"),
            }
        }
        // Partial switching reads every target's cgroup.threads: with many
        // targets, scan them less often, so the cost stays near 100 cgroups
        // per scan (1,000 targets: every 10th scan; 80% of a TCG vCPU before).
        self.scans = self.scans.wrapping_add(1);
        let every = (self.resolved.len() / SWITCH_SCAN_CGROUPS).max(1) as u64;
        if self.partial_switching(mode) && self.scans % every == 0 {
            let dirs: Vec<_> = self.resolved.values().map(|r| r.dir.clone()).collect();
            self.adopt_reported();
            let report = self.switcher.scan(&dirs);
            self.switched_by_scan += report.switched as u64;
            if report.switched + report.restored + report.failed > 0 {
                debug!(switched = report.switched, restored = report.restored, failed = report.failed, "partial switch scan");
            }
            if let Some(errno) = report.refused_errno {
                // The targets are not on scx_slo: say so, at most once a minute.
                self.switch_refusals += report.failed as u64;
                let why = std::io::Error::from_raw_os_error(errno).to_string();
                if self.switch_refused_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    self.switch_refused_warned = Some(Instant::now());
                    warn!(
                        event = "partial_switch_refused",
                        threads = report.failed,
                        errno,
                        "the kernel refused SCHED_EXT for {} target threads ({why}): they stay on the fair class; under systemd, RestrictRealtime=yes refuses policy 7 and CAP_SYS_NICE is needed (docs/nixos.md)",
                        report.failed
                    );
                }
                self.switch_last_refusal = Some(why);
            }
        }
        if slow_due {
            self.telemetry_scan(Some(sched));
        }
    }

    fn handle(&mut self, envelope: Envelope, sched: Option<&mut dyn Backend>) {
        let Envelope { request, reply } = envelope;
        let result = match request {
            Request::Status => Ok(self.status_json(sched.as_deref())),
            Request::ListTargets => Ok(self.list_targets()),
            Request::Explain { unit } => self.explain(&unit, sched.as_deref()),
            Request::Enable { mode } => match self.enable(&mode, sched.is_some()) {
                // The reply comes when the session attached or failed.
                Ok(None) => {
                    if let Some(r) = reply {
                        self.pending_enable.push(r);
                    }
                    return;
                }
                Ok(Some(done)) => Ok(done),
                Err(e) => Err(e),
            },
            Request::Disable { reason } => self.disable(reason, sched),
            Request::Reload => self.reload(sched),
            Request::SetBudget { unit, runtime_us, period_us, key } => {
                self.set_budget_idempotent(&unit, runtime_us, period_us, &key, sched)
            }
            Request::ClearBudget { unit } => self.clear_budget(&unit, sched),
            Request::ResetBreaker => Ok(self.reset_breaker()),
            Request::Shutdown => {
                info!("stop requested");
                self.shutdown = true;
                Ok("stopping".into())
            }
        };
        if let Some(r) = reply {
            let _ = r.send(result);
        }
    }

    /// `Ok(None)`: a session will start and reply; `Ok(Some)`: nothing to do.
    fn enable(&mut self, mode: &str, running: bool) -> Result<Option<String>, ControlError> {
        let requested = match mode {
            "" => self.config.mode,
            "auto" => scx_slo_model::Mode::Auto,
            "enforce" => scx_slo_model::Mode::Enforce,
            "advisory" => scx_slo_model::Mode::Advisory,
            "observe" => scx_slo_model::Mode::Observe,
            other => {
                return Err(ControlError::InvalidArgument(format!(
                    "mode {other:?}: use enforce, advisory, observe, auto, or \"\" for the config's mode"
                )))
            }
        };
        let wanted = self.caps.select(requested).map_err(|why| ControlError::NotSupported(format!("mode {mode}: {why}")))?;
        let running = running && self.active == Some(self.primary) && self.lifecycle.state() == State::Running;
        if wanted != self.primary {
            info!(from = self.primary.as_str(), to = wanted.as_str(), "Enable switches the mode");
            self.primary = wanted;
            if running {
                self.mode_switch = true;
            }
        }
        let running = running && !self.mode_switch;
        let was_open = self.breaker.is_open();
        self.breaker.reset();
        self.persistent.breaker_open = false;
        self.persistent.operator_disabled = None;
        let unsaved = self.save_persistent();
        if !unsaved.is_empty() {
            warn!("Enable is not persisted{unsaved}");
        }
        self.wanted_on = true;
        self.retry_at = None;
        if was_open {
            info!("circuit breaker reset by Enable");
        }
        if running {
            return Ok(Some(format!("already running generation {}", self.generation)));
        }
        Ok(None)
    }

    fn disable(&mut self, reason: String, sched: Option<&mut dyn Backend>) -> Reply {
        if reason.trim().is_empty() {
            return Err(ControlError::InvalidArgument("reason: say why (it is kept in the state file and the journal)".into()));
        }
        let t = Instant::now();
        if let Some(s) = sched {
            s.detach();
        }
        let restored = self.switcher.restore_all();
        let detach_ms = t.elapsed().as_secs_f64() * 1e3;
        self.wanted_on = false;
        self.retry_at = None;
        self.persistent.operator_disabled = Some(reason.clone());
        let unsaved = self.save_persistent();
        warn!(event = "operator_disable", reason = %reason, detach_ms = format!("{detach_ms:.2}"), restored_threads = restored, "disabled by an operator");
        self.go(State::Disabled, format!("disabled by an operator: {reason}"));
        for pending in self.pending_enable.drain(..) {
            let _ = pending.send(Err(ControlError::Failed("disabled before the scheduler started".into())));
        }
        if unsaved.is_empty() {
            Ok(format!("disabled in {detach_ms:.2} ms; stays off across restarts until Enable"))
        } else {
            Ok(format!("disabled in {detach_ms:.2} ms, until scx-slod restarts{unsaved}"))
        }
    }

    fn apply_config(&mut self, raw: Value, config: Config, sched: Option<&mut dyn Backend>) -> Reply {
        if let Some(field) = load_time_change(&self.config, &config) {
            return Err(ControlError::InvalidConfig(format!(
                "`{field}` is fixed when the scheduler loads; restart scx-slod to change it (generation {} stays)",
                self.generation
            )));
        }
        let resolved = resolver::resolve_all(&self.cgroup_root, &config);
        // On a copy: if the maps cannot be written, the running generation
        // keeps its slots.
        let mut slots = self.slots.clone();
        slots.assign(&config);
        if let Some(s) = sched {
            let t = Instant::now();
            let targets = slots.map_targets(&config, &resolved);
            s.apply(&targets)
                .map_err(|e| ControlError::Failed(format!("writing maps: {e:#}; generation {} stays", self.generation)))?;
            slots.written(&config, &targets);
            self.last_apply_us = t.elapsed().as_secs_f64() * 1e6;
        }
        self.slots = slots;
        self.raw = raw;
        self.config = config;
        self.resolved = resolved;
        self.generation += 1;
        self.publish_snapshot();
        let _ = self.events.try_send(Event::PropertiesChanged);
        info!(generation = self.generation, targets = self.config.targets.len(), apply_us = format!("{:.0}", self.last_apply_us), "generation applied");
        Ok(format!("generation {} applied ({} targets, {:.0} us)", self.generation, self.config.targets.len(), self.last_apply_us))
    }

    fn reload(&mut self, sched: Option<&mut dyn Backend>) -> Reply {
        let result = match read_config(&self.opts.config_path) {
            Err((_, msg)) => Err(ControlError::InvalidConfig(msg)),
            Ok((raw, _, digest)) => {
                // Overrides survive a reload when their target is still a
                // latency target and they still fit admission.
                let (overrides, dropped) = applicable_overrides(&raw, &self.persistent.budget_overrides);
                let applied = match effective(&raw, &overrides) {
                    Ok(config) => self.apply_config(raw, config, sched),
                    Err(e) => Err(ControlError::InvalidConfig(format!("with the runtime budget overrides: {e}"))),
                };
                match applied {
                    Ok(reply) => {
                        self.config_sha256 = digest;
                        if dropped.is_empty() {
                            Ok(reply)
                        } else {
                            self.persistent.budget_overrides = overrides;
                            let unsaved = self.save_persistent();
                            warn!(event = "budget_override_dropped", overrides = %dropped.join(", "), "budget overrides dropped by a reload");
                            Ok(format!("{reply}; budget overrides dropped: {}{unsaved}", dropped.join(", ")))
                        }
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match &result {
            Ok(_) => self.last_reload_error = None,
            Err(e) => {
                error!("reload rejected, generation {} stays: {e}", self.generation);
                self.last_reload_error = Some(e.to_string());
            }
        }
        result
    }

    fn set_budget_idempotent(&mut self, unit: &str, runtime_us: u64, period_us: u64, key: &str, sched: Option<&mut dyn Backend>) -> Reply {
        let args = format!("{unit}\u{1f}{runtime_us}\u{1f}{period_us}");
        if !key.is_empty() {
            match self.idempotency.check(key, &args, self.now()) {
                Lookup::Replay(first) => return first,
                Lookup::Conflict => {
                    return Err(ControlError::Conflict(format!("key {key:?} was used with other arguments within the last hour")))
                }
                Lookup::New => {}
            }
        }
        let result = self.set_budget(unit, runtime_us, period_us, sched);
        if !key.is_empty() {
            let now = self.now();
            self.idempotency.record(key, &args, result.clone(), now);
        }
        result
    }

    fn set_budget(&mut self, unit: &str, runtime_us: u64, period_us: u64, sched: Option<&mut dyn Backend>) -> Reply {
        let Some(target) = self.config.targets.iter().find(|t| t.key == unit) else {
            return Err(ControlError::InvalidArgument(format!("unit {unit:?} is not a target")));
        };
        if target.class != Class::Latency {
            return Err(ControlError::InvalidArgument(format!("unit {unit:?} is a batch target; only latency targets have a budget")));
        }
        if period_us == 0 {
            return Err(ControlError::InvalidArgument("period_us must be positive".into()));
        }
        if runtime_us > period_us {
            return Err(ControlError::InvalidArgument(format!("runtime_us {runtime_us} exceeds period_us {period_us}")));
        }
        if period_us > 10_000_000 {
            return Err(ControlError::InvalidArgument(format!("period_us {period_us} is over 10 s")));
        }
        let mut overrides = self.persistent.budget_overrides.clone();
        overrides.insert(unit.to_string(), BudgetOverride { runtime_us, period_us });
        let config = effective(&self.raw, &overrides).map_err(ControlError::InvalidConfig)?;
        let raw = self.raw.clone();
        let reply = self.apply_config(raw, config, sched)?;
        self.persistent.budget_overrides = overrides;
        let unsaved = self.save_persistent();
        info!(event = "budget_override", unit, runtime_us, period_us, generation = self.generation, "budget override");
        Ok(format!("{unit}: budget {runtime_us}us per {period_us}us; {reply}{unsaved}"))
    }

    fn clear_budget(&mut self, unit: &str, sched: Option<&mut dyn Backend>) -> Reply {
        let mut overrides = self.persistent.budget_overrides.clone();
        if overrides.remove(unit).is_none() {
            let known: Vec<&str> = self.persistent.budget_overrides.keys().map(String::as_str).collect();
            return Err(ControlError::InvalidArgument(format!(
                "unit: {unit:?} has no budget override (overrides: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
        let config = effective(&self.raw, &overrides).map_err(ControlError::InvalidConfig)?;
        let raw = self.raw.clone();
        let reply = self.apply_config(raw, config, sched)?;
        self.persistent.budget_overrides = overrides;
        let unsaved = self.save_persistent();
        info!(event = "budget_override_cleared", unit, generation = self.generation, "budget override removed");
        Ok(format!("{unit}: budget override removed, the config file's budget applies; {reply}{unsaved}"))
    }

    fn reset_breaker(&mut self) -> String {
        self.breaker.reset();
        self.persistent.breaker_open = false;
        let unsaved = self.save_persistent();
        if self.lifecycle.state() == State::Failed {
            self.retry_at = None;
            info!("circuit breaker reset by an operator");
            if !self.wanted_on {
                self.go(State::Disabled, "circuit breaker reset");
            }
            return format!("circuit breaker closed; retrying now{unsaved}");
        }
        format!("circuit breaker closed{unsaved}")
    }

    fn list_targets(&self) -> String {
        let list: Vec<Value> = self
            .config
            .targets
            .iter()
            .map(|t| {
                let r = self.resolved.get(&t.key);
                json!({
                    "key": t.key,
                    "class": t.class,
                    "cgroup": r.map(|r| r.dir.display().to_string()),
                    "cgroup_id": r.map(|r| r.cgroup_id),
                    "budget": t.budget,
                    "deadline": t.deadline,
                    "priority": t.priority,
                    "override": self.persistent.budget_overrides.contains_key(&t.key),
                })
            })
            .collect();
        Value::Array(list).to_string()
    }

    fn explain(&self, unit: &str, sched: Option<&dyn Backend>) -> Reply {
        let Some(t) = self.config.targets.iter().find(|t| t.key == unit) else {
            return Err(ControlError::InvalidArgument(format!(
                "unit {unit:?} is not a target (targets: {})",
                self.config.targets.iter().map(|t| t.key.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        let file_budget = self.raw["targets"][unit]["budget"].clone();
        let source = match self.persistent.budget_overrides.get(unit) {
            Some(o) => format!(
                "SetBudget override ({}us per {}us) over {} (budget there: {file_budget})",
                o.runtime_us,
                o.period_us,
                self.opts.config_path.display()
            ),
            None => format!("{}", self.opts.config_path.display()),
        };
        let stats = self.slots.get(unit).and_then(|slot| sched.and_then(|s| s.target_stats(slot).ok()));
        let r = self.resolved.get(unit);
        Ok(json!({
            "unit": unit,
            "state": self.lifecycle.state(),
            "generation": self.generation,
            "source": source,
            "class": t.class,
            "budget": t.budget,
            "deadline": t.deadline,
            "priority": t.priority,
            "preemption": t.preemption,
            "weight": t.weight,
            "cgroup": r.map(|r| r.dir.display().to_string()),
            "cgroup_id": r.map(|r| r.cgroup_id),
            "why": match (r, self.lifecycle.state()) {
                (None, _) => "no cgroup found yet: the unit is not running (or the cgroup path is wrong); it is retried every scan".to_string(),
                (Some(_), State::Running) => match t.class {
                    Class::Latency => "earliest-deadline-first while its budget lasts in each period, then fair share".to_string(),
                    Class::Batch => "weighted virtual time".to_string(),
                },
                (Some(_), state) => format!("scx-slo is {state}: the unit runs on the kernel's default scheduler"),
            },
            "recent": stats.map(|s| json!({
                "wakeups": s.get("wakeups"),
                "jobs": s.get("jobs"),
                "deadline_misses": s.get("deadline_misses"),
                "budget_exhausted": s.get("budget_exhausted"),
            })),
        })
        .to_string())
    }

    fn status_value(&self, sched: Option<&dyn Backend>, final_write: bool) -> Value {
        let targets: Vec<Value> = self
            .config
            .targets
            .iter()
            .map(|t| {
                let r = self.resolved.get(&t.key);
                let slot = self.slots.get(&t.key);
                let stats = r.and(sched).zip(slot).and_then(|(s, slot)| s.target_stats(slot).ok());
                let q = |q| stats.as_ref().and_then(|s| scx_slo_bpf::maps::quantile_upper_ns(&s.rq_delay_hist, q));
                json!({
                    "key": t.key,
                    "class": t.class,
                    "index": slot,
                    "cgroup": r.map(|r| r.dir.display().to_string()),
                    "cgroup_id": r.map(|r| r.cgroup_id),
                    "rq_delay_p50_le_ns": q(0.5),
                    "rq_delay_p99_le_ns": q(0.99),
                    "stats": stats,
                })
            })
            .collect();
        let state = if final_write && self.lifecycle.state() == State::Running { "stopped" } else { self.lifecycle.state().as_str() };
        json!({
            "state": state,
            "mode": self.mode_name(),
            "primary_mode": self.primary,
            "requested_mode": self.config.mode,
            "capabilities": {
                "modes": self.caps.modes().iter().map(|(m, ok)| (m.as_str(), *ok)).collect::<BTreeMap<_, _>>(),
                "host": self.caps,
            },
            "probe": (self.active.is_some_and(|m| m != ActiveMode::Enforce)).then(|| {
                let (ratio, sample_every, budget) = self.telemetry.probe_overhead();
                let cost = self.telemetry.probe_cost.unwrap_or_default();
                json!({
                    "overhead_ratio": ratio,
                    "sample_every": sample_every,
                    "overhead_budget": budget,
                    "run_time_ns": cost.run_time_ns,
                    "run_count": cost.run_count,
                })
            }),
            "advisory_weights": self.telemetry.advisory_weights,
            "switch": self.config.switch,
            "generation": self.generation,
            "config_path": self.opts.config_path.display().to_string(),
            "config_sha256": self.config_sha256,
            "backend": format!("{:?}", self.opts.backend).to_lowercase(),
            "kernel": self.features,
            "load_ms": self.load_ms,
            "attach_ms": self.attach_ms,
            "last_apply_us": self.last_apply_us,
            "switched_threads": self.switcher.switched(),
            "partial_switch": {
                "by_event": self.switched_by_event.load(Ordering::Relaxed),
                "by_scan": self.switched_by_scan,
                "refused": self.switch_refusals,
                "last_refusal": self.switch_last_refusal,
            },
            "events_received": self.events_received.load(Ordering::Relaxed),
            "last_reload_error": self.last_reload_error,
            "operator_disabled": self.persistent.operator_disabled,
            "persist_error": self.persist_error,
            "breaker": { "open": self.breaker.is_open(), "recent_failures": self.breaker.recent_failures() },
            "budget_overrides": self.persistent.budget_overrides,
            // Each override next to what the file declares for that target:
            // the drift an operator must decide about (ClearBudget undoes it).
            "budget_override_drift": self.persistent.budget_overrides.iter().map(|(unit, o)| {
                (unit.clone(), json!({
                    "override": format!("{}us per {}us", o.runtime_us, o.period_us),
                    "config_file": self.raw.get("targets").and_then(|t| t.get(unit.as_str())).and_then(|t| t.get("budget")),
                }))
            }).collect::<BTreeMap<_, _>>(),
            "targets": targets,
            "global": sched.and_then(|s| s.global_stats().ok()).map(|g| g.into_iter().collect::<BTreeMap<_, _>>()),
            "exit": self.last_exit,
        })
    }

    fn status_json(&self, sched: Option<&dyn Backend>) -> String {
        self.status_value(sched, false).to_string()
    }

    fn maybe_write_status(&mut self, sched: Option<&dyn Backend>) {
        if self.last_status.is_none_or(|t| t.elapsed() >= self.opts.status_every) {
            self.write_status(sched, false);
        }
    }

    fn write_status(&mut self, sched: Option<&dyn Backend>, final_write: bool) {
        self.last_status = Some(Instant::now());
        if let Err(e) = persist::replace_json(&self.opts.status_path, &self.status_value(sched, final_write)) {
            warn!(error = %e, path = %self.opts.status_path.display(), "writing the status file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_patch_the_file_config_and_are_validated_whole() {
        let raw: Value = serde_json::from_str(include_str!("../../../examples/enforce.json")).unwrap();
        let mut o = BTreeMap::new();
        o.insert("api.service".to_string(), BudgetOverride { runtime_us: 4000, period_us: 10000 });
        let c = effective(&raw, &o).unwrap();
        let api = c.targets.iter().find(|t| t.key == "api.service").unwrap();
        assert_eq!(api.budget.unwrap().runtime, scx_slo_model::Duration::from_us(4000));
        // deadline 5ms < period: fine; a period shorter than the deadline is not.
        o.insert("api.service".to_string(), BudgetOverride { runtime_us: 1000, period_us: 2000 });
        assert!(effective(&raw, &o).unwrap_err().contains("exceeds budget.period"));
        // Admission: 2 CPUs x 0.95.
        o.insert("api.service".to_string(), BudgetOverride { runtime_us: 5000, period_us: 5000 });
        o.insert("worker.service".to_string(), BudgetOverride { runtime_us: 20000, period_us: 20000 });
        assert!(effective(&raw, &o).unwrap_err().contains("latency budgets reserve"));
    }

    #[test]
    fn load_time_sections_are_named() {
        let raw: Value = serde_json::from_str(include_str!("../../../examples/enforce.json")).unwrap();
        let a = effective(&raw, &BTreeMap::new()).unwrap();
        let mut b = a.clone();
        b.scheduler.slice_max = scx_slo_model::Duration::from_ms(4);
        assert_eq!(load_time_change(&a, &b), Some("scheduler"));
        assert_eq!(load_time_change(&a, &a), None);
    }
}
