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
//!
//! The owners, each in its module, with ties only downward:
//! - [`generation`]: the config file, the overrides, the validated config;
//! - [`supervisor`]: lifecycle, backoff, breaker, fallback, waiting Enables;
//! - [`partial`]: switching the targets' threads to SCHED_EXT;
//! - [`host`]: the machine (files, cgroups, systemd), behind a trait, and
//!   probing it at start;
//! - `options`: what the engine is started with;
//! - [`requests`]: the control requests, one method each;
//! - [`reports`]: the typed Status, ListTargets and Explain documents;
//! - [`session`]: loading, attaching and running a backend;
//! - [`adaptive`]: the adaptive targets' budget controllers;
//! - [`canary`]: the A/B canary's alternating windows;
//! - [`effects`]: what the canary and the adaptive controller decide, as
//!   values for this file to carry out;
//! - [`targets`]: each target's cgroup, map slot and carried counts.
//!
//! This file holds the engine's state, grouped by owner, and the loop that
//! ties them together. The deciding owners (supervisor, canary, adaptive
//! controller) read a view and return outcomes or effects; only this loop
//! writes across owners. None of them imports from this file, so none is
//! tied back to the engine that holds it.

mod adaptive;
mod canary;
mod effects;
pub mod generation;
pub mod host;
mod options;
pub mod partial;
mod reports;
mod requests;
mod session;
pub mod supervisor;
mod targets;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scx_slo_api::{ActiveMode, ExitInfo, KernelFeatures, Reply};
use scx_slo_bpf::Topology;
use tracing::{error, info, warn};

use crate::backend::Backend;
use crate::change_limit::ChangeLimiter;
use crate::control::{Envelope, Event, Snapshot};
use crate::idempotency::IdempotencyStore;
use crate::lifecycle::Transition;
use crate::metrics::SharedSnapshot;
use crate::persist::PersistentState;
use crate::telemetry::{ScanInput, Telemetry};
use adaptive::{Adaptation, AdaptiveView};
use canary::{CanaryOwner, CanaryView};
use effects::{BudgetStep, Effect};
use generation::Generation;
pub use options::{BackendKind, EngineOptions, Probed};
use host::Host;
use partial::PartialSwitching;
use supervisor::Supervisor;
use targets::Targets;

/// Last load, attach and map-update times.
#[derive(Clone, Copy, Debug, Default)]
struct Timings {
    load_ms: f64,
    attach_ms: f64,
    last_apply_us: f64,
}

/// The loaded backend's maps, for the status (default: nothing loaded).
#[derive(Default)]
struct LoadedMaps {
    /// Target slots they were sized for.
    capacity: u32,
    /// Each map's kernel memory, read once after the attach.
    memory: Vec<scx_slo_bpf::map_memory::MapMemory>,
}

/// The ways in and out of the engine's thread.
struct Channels {
    /// Control requests.
    rx: Receiver<Envelope>,
    /// What the D-Bus properties show.
    snapshot: Arc<Mutex<Snapshot>>,
    /// Events for D-Bus signals.
    events: tokio::sync::mpsc::Sender<Event>,
}

/// What was probed and verified at start.
struct Machine {
    features: KernelFeatures,
    topology: Topology,
    /// The embedded BPF objects' digests, verified at start.
    bpf_objects: BTreeMap<String, String>,
}

/// What the control requests remember between calls.
struct RequestBook {
    idempotency: IdempotencyStore<Reply>,
    /// Refused reloads and idempotency replays and conflicts, for metrics.
    counts: crate::metrics::DaemonCounts,
    last_reload_error: Option<String>,
}

/// What sessions leave for Status: the last one's timings and exit, the
/// loaded maps, the SLO events received so far.
#[derive(Default)]
struct SessionRecord {
    timings: Timings,
    loaded_maps: LoadedMaps,
    last_exit: Option<ExitInfo>,
    /// Early-warning events the reader threads received.
    events_received: Arc<AtomicU64>,
}

/// When the periodic work last ran, and the automatic changes it made
/// lately (the host-wide limit on them).
#[derive(Default)]
struct Cadence {
    last_telemetry: Option<Instant>,
    last_status: Option<Instant>,
    auto_changes: ChangeLimiter,
}

/// The loop's own flags.
#[derive(Default)]
struct LoopState {
    shutdown: bool,
    notified_ready: bool,
    final_status_written: bool,
    /// The D-Bus call or automatic action being carried out, and how many
    /// were started (the ids' counter).
    correlation: Option<String>,
    correlations: u64,
}


/// The engine: its owners, each a field (the code_shape test caps their
/// number: a new piece of state joins its owner).
pub struct Engine {
    opts: EngineOptions,
    host: Box<dyn Host>,
    channels: Channels,
    generation: Generation,
    supervisor: Supervisor,
    adaptation: Adaptation,
    /// The A/B canary of the applied config.
    canary: CanaryOwner,
    /// Reads the targets' own histograms (`scrape` blocks) off the engine
    /// thread.
    scraper: crate::scraper::Scraper,
    /// The audit trail and state.json, written on their own thread: the
    /// trail may be unavailable (mutating calls are then refused, except
    /// Disable), and a hung disk holds a caller only as long as its wait.
    disk: crate::disk_writer::DiskWriter,
    machine: Machine,
    requests: RequestBook,
    telemetry: Telemetry,
    cadence: Cadence,
    targets: Targets,
    partial: PartialSwitching,
    session: SessionRecord,
    epoch: Instant,
    loop_state: LoopState,
}

/// A started engine and the ways into it.
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
    /// Validates the config, probes the machine and restores persistent
    /// state. `Err` carries the process exit code and the message.
    pub fn start(opts: EngineOptions) -> Result<Started, (i32, String)> {
        // Nothing is loaded from a binary whose BPF objects changed after
        // the build (scx_slo_bpf::integrity; docs/security.md).
        if opts.backend == BackendKind::Bpf {
            scx_slo_bpf::integrity::verify_all().map_err(|e| (crate::exit::LOAD_FAILED, e))?;
        }
        let (host, probed) = host::probe(&opts)?;
        Engine::with_host(opts, Box::new(host), probed)
    }

    /// The engine on a given host with what was probed (the unit tests'
    /// way in: a host in memory, no root).
    pub fn with_host(opts: EngineOptions, host: Box<dyn Host>, probed: Probed) -> Result<Started, (i32, String)> {
        let auto_change_limit = opts.auto_change_limit;
        let Probed { file, config, .. } = probed;
        let primary = host::select_mode(&probed.caps, config.mode)?;
        info!(mode = primary.as_str(), requested = ?config.mode, capabilities = ?probed.caps.modes(), "mode selected");
        let persistent = probed.persistent;
        let adaptive_changes = persistent.adaptive_changes;
        let canary = CanaryOwner::new(persistent.canary);
        let (generation, dropped) = Generation::first(file, config, persistent.budget_overrides, host.online_cpus());
        if let Some(warning) = dropped {
            warn!("{warning}");
        }
        let can_fallback = opts.backend == BackendKind::Bpf;
        let supervisor =
            Supervisor::new(probed.caps, primary, opts.breaker, persistent.operator_disabled, persistent.breaker_open, can_fallback);

        let (tx, rx) = std::sync::mpsc::sync_channel(crate::control::ENGINE_QUEUE);
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(256);
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let metrics: SharedSnapshot = Arc::default();
        let telemetry = Telemetry::new(Arc::clone(&metrics), generation.config.observe.overhead_budget, opts.systemd_bus.clone());
        let mut audit = crate::audit::AuditTrail::open(&opts.audit_dir, opts.audit_retain_bytes)
            .inspect_err(|e| error!(event = "audit_unavailable", error = %e, "audit trail unavailable: mutating calls are refused, except Disable"));
        let bpf_objects: BTreeMap<String, String> = match opts.backend {
            BackendKind::Bpf => scx_slo_bpf::integrity::objects().into_iter().map(|d| (d.object.to_string(), d.actual)).collect(),
            BackendKind::Simulated => BTreeMap::new(),
        };
        if let (Ok(trail), false) = (&mut audit, bpf_objects.is_empty()) {
            let _ = trail.append("start", None, "bpf_objects_verified", serde_json::json!({ "sha256": bpf_objects }));
        }
        let (dir, retain) = (opts.audit_dir.clone(), opts.audit_retain_bytes);
        let disk = crate::disk_writer::DiskWriter::start(audit, host.state_saver(), Box::new(move || crate::audit::AuditTrail::open(&dir, retain)))
            .map_err(|e| (crate::exit::LOAD_FAILED, format!("starting the disk writer thread: {e}")))?;
        let engine = Engine {
            opts,
            host,
            channels: Channels { rx, snapshot: Arc::clone(&snapshot), events: events_tx },
            adaptation: Adaptation::new(&generation.config, &adaptive_changes),
            scraper: crate::scraper::Scraper::default(),
            canary,
            disk,
            machine: Machine { features: probed.features, topology: probed.topology, bpf_objects },
            generation,
            supervisor,
            requests: RequestBook {
                idempotency: IdempotencyStore::new(Duration::from_secs(3600), 4096),
                counts: crate::metrics::DaemonCounts::default(),
                last_reload_error: None,
            },
            telemetry,
            cadence: Cadence { auto_changes: ChangeLimiter::new(auto_change_limit.0, auto_change_limit.1), ..Cadence::default() },
            targets: Targets::default(),
            partial: PartialSwitching::default(),
            session: SessionRecord::default(),
            epoch: Instant::now(),
            loop_state: LoopState::default(),
        };
        engine.publish_snapshot();
        let handle = crate::control::EngineHandle {
            tx,
            snapshot,
            reads: Arc::new(tokio::sync::Semaphore::new(crate::control::READ_SLOTS)),
            operator_reads: Arc::new(tokio::sync::Semaphore::new(crate::control::OPERATOR_READ_SLOTS)),
            config_path: Arc::new(engine.opts.config_path.clone()),
        };
        Ok(Started { engine, handle, events: events_rx, metrics })
    }

    /// Runs until shutdown; returns the process exit code.
    pub fn run(mut self) -> i32 {
        if !self.supervisor.wanted_on() {
            let why = match self.supervisor.operator_disabled() {
                Some(reason) => format!("disabled by an operator before the restart: {reason}"),
                None => "circuit breaker open before the restart".to_string(),
            };
            warn!("{why}; staying off until Enable");
            self.ready();
        }
        while !self.loop_state.shutdown {
            match self.supervisor.next_session(Instant::now()) {
                Some((mode, fallback)) => {
                    let mut object = MaybeUninit::uninit();
                    self.session(mode, fallback, &mut object);
                }
                None => self.idle_tick(),
            }
        }
        self.host.notify(&[sd_notify::NotifyState::Stopping]);
        // A session that was running wrote the final status with the
        // kernel's counters; only a stop while idle still owes one.
        if !self.loop_state.final_status_written {
            self.write_status(None, true);
        }
        // The last entries and the last save, if the disk takes them soon;
        // a stop never waits longer on it.
        if !self.disk.flush(Duration::from_secs(2)) {
            warn!("the state disk did not take the last writes within 2 s; they may be lost");
        }
        crate::exit::OK
    }

    /// One wait for a request while no scheduler is loaded.
    fn idle_tick(&mut self) {
        self.host.notify(&[sd_notify::NotifyState::Watchdog]);
        let wait = self.supervisor.until_retry(Instant::now(), self.quiet_tick());
        match self.channels.rx.recv_timeout(wait) {
            Ok(envelope) => self.handle(envelope, None),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.loop_state.shutdown = true,
        }
        if self.telemetry_due() {
            self.telemetry_scan(None);
        }
        self.maybe_write_status(None);
    }

    /// How often a loop with nothing to poll wakes on its own: the slower
    /// telemetry/status cadence (control requests wake it at once). Only
    /// partial switching needs the scan interval, to catch new threads.
    fn quiet_tick(&self) -> Duration {
        self.opts.tick.max(self.opts.telemetry_every.min(self.opts.status_every))
    }

    fn telemetry_due(&self) -> bool {
        self.cadence.last_telemetry.is_none_or(|t| t.elapsed() >= self.opts.telemetry_every)
    }

    /// Telemetry for one scan (metrics snapshot, overhead guard, advisory).
    fn telemetry_scan(&mut self, sched: Option<&mut dyn Backend>) {
        self.cadence.last_telemetry = Some(Instant::now());
        self.follow_scrapes();
        let caps = self.supervisor.capabilities().modes().to_vec();
        let adaptive = self.adaptive_reports();
        let (breaker_open, breaker_failures) = self.supervisor.breaker();
        let input = ScanInput {
            config: &self.generation.config,
            slots: &self.targets.slots,
            carried: &self.targets.carried,
            resolved: &self.targets.resolved,
            cgroup_root: self.host.cgroup_root(),
            mode: self.supervisor.active,
            state: self.supervisor.state().as_str(),
            generation: self.generation.number,
            capabilities: caps,
            adaptive,
            scrapes: self.scrape_reports(),
            audit: {
                let v = self.disk.view();
                (v.audit_appends, v.audit_failures, v.audit_error.is_none())
            },
            bpf_objects: self.machine.bpf_objects.clone(),
            maps: (self.session.loaded_maps.memory.iter().map(|m| (m.name.clone(), m.bytes)).collect(), self.session.loaded_maps.capacity),
            health: crate::metrics::DaemonHealth {
                breaker_open,
                breaker_failures,
                budget_overrides: self.generation.overrides.len(),
                counts: self.requests.counts,
            },
            canary: self.canary.report(),
        };
        self.telemetry.scan(&input, sched, &mut self.cadence.auto_changes);
    }

    /// Follows a generation that did not come from a controller (a reload,
    /// an operator's SetBudget or ClearBudget): the controllers start over
    /// from it (`Adaptation::follow`), and the scraper reads its endpoints.
    fn follow_config(&mut self) {
        self.adaptation.follow(&self.generation.config);
        self.follow_scrapes();
    }

    /// The scraper's endpoints and their units' cgroups, as resolved now
    /// (each scan: units start and stop).
    fn follow_scrapes(&mut self) {
        let resolved = &self.targets.resolved;
        self.scraper.follow(self.generation.config.targets.iter().filter_map(|t| Some((t.scrape.as_ref()?, resolved.get(&t.key).map(|r| r.dir.clone())))));
    }

    /// The canary's turn in a session (at its start and every loop): it
    /// follows the applied config, then begins or ends its arm's window.
    /// True when the session must end (the other arm is next).
    fn canary_tick(&mut self, sched: &dyn Backend, mode: ActiveMode, fallback: bool) -> bool {
        let followed = self.canary.follow(&self.generation.config, &self.generation.file.sha256);
        self.carry_out_correlated("canary", followed, None);
        let view = CanaryView {
            config: &self.generation.config,
            targets: &self.targets,
            scraper: &self.scraper,
            sched,
            in_baseline: self.supervisor.in_baseline(),
            seed: self.generation.number ^ self.epoch.elapsed().as_nanos() as u64,
        };
        let (ends, effects) = self.canary.tick(&view, mode, fallback);
        self.carry_out_correlated("canary", effects, None);
        ends
    }

    /// The observe session of the canary's baseline could not load.
    fn canary_baseline_failed(&mut self, why: &str) {
        let effects = self.canary.baseline_failed(self.supervisor.in_baseline(), why);
        self.carry_out_correlated("canary", effects, None);
    }

    /// Carries out what an automatic action decided, as one correlation
    /// (none when it decided nothing).
    fn carry_out_correlated(&mut self, origin: &str, effects: Vec<Effect>, sched: Option<&mut dyn Backend>) {
        if effects.is_empty() {
            return;
        }
        let c = self.correlate(origin);
        self.carry_out(effects, sched);
        self.end_correlation(c);
    }

    /// The adaptive targets whose interval ended by `now` (enforce mode,
    /// from the session's scan): a pass that changes budgets is one
    /// correlation.
    fn adapt(&mut self, sched: &mut dyn Backend, now: Instant) {
        let allowance = (self.cadence.auto_changes.allowance(now), self.cadence.auto_changes.limit());
        let view = AdaptiveView { config: &self.generation.config, targets: &self.targets, scraper: &self.scraper, sched: &*sched, allowance };
        let effects = self.adaptation.pass(&view, now);
        self.carry_out_correlated("adaptive", effects, Some(sched));
    }

    /// Carries out what an owner decided, in order ([`effects`]).
    fn carry_out(&mut self, effects: Vec<Effect>, mut sched: Option<&mut dyn Backend>) {
        for effect in effects {
            match effect {
                Effect::Baseline(on) => self.supervisor.set_baseline(on),
                Effect::RollBack(reason) => {
                    let t = self.supervisor.canary_rolled_back(&reason);
                    self.save_persistent_within(Duration::ZERO);
                    self.announce(t);
                }
                Effect::ApplyBudgets(steps) => match sched.as_mut() {
                    Some(s) => self.apply_budget_steps(steps, &mut **s),
                    None => error!("budget steps without a loaded scheduler: not applied"),
                },
                Effect::Audit { kind, action, detail } => self.audit_later(kind, None, &action, detail),
                Effect::Persist { unsaved } => {
                    // An automatic change does not wait on the disk: the
                    // writer logs a failed save and Status shows it.
                    let clause = self.save_persistent_within(Duration::ZERO);
                    if let (Some(what), false) = (unsaved, clause.is_empty()) {
                        warn!("{what}{clause}");
                    }
                }
                Effect::Emit(event) => {
                    let _ = self.channels.events.try_send(event);
                }
            }
        }
    }

    /// [`Effect::ApplyBudgets`]: the steps together as one generation; if
    /// admission refuses them together, each alone, so one refusal does not
    /// hold back the others. Each result goes back to the controller at
    /// once (its audit record follows the generation's), and the state is
    /// saved once if any step was applied.
    fn apply_budget_steps(&mut self, mut steps: Vec<BudgetStep>, sched: &mut dyn Backend) {
        let together: Vec<(String, scx_slo_api::BudgetOverride)> = steps.iter().map(|p| (p.unit.clone(), p.budget)).collect();
        let mut applied = 0;
        let record = |engine: &mut Engine, step: BudgetStep, result: Reply| {
            let (ok, effects) = engine.adaptation.outcome(step, result, engine.generation.number);
            engine.carry_out(effects, None);
            usize::from(ok)
        };
        match self.adaptive_budgets(&together, sched) {
            Ok(reply) => {
                for step in steps {
                    applied += record(self, step, Ok(reply.clone()));
                }
            }
            Err(e) if steps.len() == 1 => {
                record(self, steps.remove(0), Err(e));
            }
            Err(_) => {
                for step in steps {
                    let alone = self.adaptive_budgets(&[(step.unit.clone(), step.budget)], sched);
                    applied += record(self, step, alone);
                }
            }
        }
        let now = Instant::now();
        for _ in 0..applied {
            self.cadence.auto_changes.take(now);
        }
        if applied > 0 {
            self.carry_out(vec![Effect::Persist { unsaved: Some("the learned budgets are in force") }], None);
        }
    }

    /// Controllers' budgets through SetBudget's path: validated whole with
    /// the other overrides, admission-checked, the maps written, and only
    /// then the running generation. The controllers are not told to start
    /// over (their own change).
    fn adaptive_budgets(&mut self, budgets: &[(String, scx_slo_api::BudgetOverride)], sched: &mut dyn Backend) -> Reply {
        let mut overrides = self.generation.overrides.clone();
        for (unit, budget) in budgets {
            overrides.insert(unit.clone(), *budget);
        }
        let candidate = self.generation.with_overrides(overrides, self.host.online_cpus())?;
        self.apply(candidate, Some(sched))
    }

    fn ready(&mut self) {
        if !self.loop_state.notified_ready {
            self.host.notify(&[sd_notify::NotifyState::Ready]);
            self.loop_state.notified_ready = true;
        }
    }

    fn publish_snapshot(&self) {
        if let Ok(mut s) = self.channels.snapshot.lock() {
            *s = Snapshot {
                state: self.supervisor.state(),
                mode: ActiveMode::name_of(self.supervisor.active).into(),
                generation: self.generation.number,
            };
        }
    }

    /// Logs, tells systemd and the bus about a transition the supervisor made.
    fn announce(&mut self, transition: Option<Transition>) {
        let Some(t) = transition else { return };
        info!(event = "state_changed", from = %t.from, to = %t.to, reason = %t.reason, "state changed");
        self.host.notify(&[sd_notify::NotifyState::Status(&format!("{}: {}", t.to, t.reason))]);
        self.publish_snapshot();
        let _ = self.channels.events.try_send(Event::StateChanged {
            state: t.to.to_string(),
            mode: ActiveMode::name_of(self.supervisor.active).into(),
            reason: t.reason,
        });
    }

    /// Writes the persistent state, waiting [`crate::disk_writer::AUDIT_WAIT`]
    /// ([`Engine::save_persistent_within`]).
    fn save_persistent(&mut self) -> String {
        self.save_persistent_within(crate::disk_writer::AUDIT_WAIT)
    }

    /// Writes the persistent state, waiting up to `wait` (zero: an
    /// automatic change, which does not wait). On failure (a read-only or
    /// full state directory) the writer logs and keeps the error for
    /// Status; this returns the clause a reply must carry: a reply never
    /// says "stays off across restarts" when the disk does not hold it, or
    /// does not hold it yet.
    fn save_persistent_within(&mut self, wait: Duration) -> String {
        self.save_persistent_saying(wait, "a restart of scx-slod forgets it")
    }

    /// The same, with what a lost save costs said by the caller (Disable's
    /// runtime marker survives a restart of the daemon).
    fn save_persistent_saying(&mut self, wait: Duration, forgets: &str) -> String {
        let written = self.disk.save(self.persistent_state(), wait);
        crate::disk_writer::unsaved_clause(written, forgets)
    }

    /// What state.json holds for the engine as it is now.
    fn persistent_state(&self) -> PersistentState {
        let (breaker_open, _) = self.supervisor.breaker();
        PersistentState {
            operator_disabled: self.supervisor.operator_disabled().map(str::to_string),
            breaker_open,
            budget_overrides: self.generation.overrides.clone(),
            adaptive_changes: self.adaptation.last_changes(),
            canary: self.canary.to_persist(),
        }
    }

    fn maybe_write_status(&mut self, sched: Option<&dyn Backend>) {
        if self.cadence.last_status.is_none_or(|t| t.elapsed() >= self.opts.status_every) {
            self.write_status(sched, false);
        }
    }

    fn write_status(&mut self, sched: Option<&dyn Backend>, final_write: bool) {
        self.cadence.last_status = Some(Instant::now());
        // The final file reads the maps itself (the last scan may predate the
        // session's last second); the periodic one reuses the last scan's.
        if let Err(e) = self.host.write_status(&self.status(sched, final_write, final_write)) {
            warn!(error = %e, "writing the status file");
        }
    }
}

