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
//! - [`canary`]: the A/B canary's alternating windows.
//!
//! This file holds the engine's state and the loop that ties them together.

mod adaptive;
mod canary;
pub mod generation;
pub mod host;
mod options;
pub mod partial;
mod reports;
mod requests;
mod session;
pub mod supervisor;
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
use crate::control::{Envelope, Event, Snapshot};
use crate::idempotency::IdempotencyStore;
use crate::lifecycle::Transition;
use crate::metrics::SharedSnapshot;
use crate::persist::PersistentState;
use crate::resolver::Resolved;
use crate::telemetry::{ScanInput, Telemetry};
use generation::Generation;
pub use options::{BackendKind, EngineOptions, Probed};
use host::Host;
use partial::PartialSwitching;
use supervisor::Supervisor;

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

/// The engine.
pub struct Engine {
    opts: EngineOptions,
    host: Box<dyn Host>,
    rx: Receiver<Envelope>,
    snapshot: Arc<Mutex<Snapshot>>,
    events: tokio::sync::mpsc::Sender<Event>,
    generation: Generation,
    adaptation: adaptive::Adaptation,
    /// Reads the targets' own histograms (`scrape` blocks) off the engine
    /// thread.
    scraper: crate::scraper::Scraper,
    /// The A/B canary of the applied config, when it has one.
    canary: Option<canary::CanaryRun>,
    /// A canary a previous run decided (promoted or expired): not run again
    /// for the same config.
    decided_canary: Option<scx_slo_api::documents::CanaryReport>,
    /// The audit trail, or why it cannot be written (mutating calls are
    /// then refused, except Disable).
    audit: Result<crate::audit::AuditTrail, String>,
    /// The embedded BPF objects' digests, verified at start.
    bpf_objects: BTreeMap<String, String>,
    supervisor: Supervisor,
    idempotency: IdempotencyStore<Reply>,
    features: KernelFeatures,
    topology: Topology,
    telemetry: Telemetry,
    /// Each target's cgroup, for those that exist.
    resolved: BTreeMap<String, Resolved>,
    /// Each target's map slot, stable across applies.
    slots: crate::slots::Slots,
    /// What ended sessions counted: counters never go backwards.
    carried: crate::carry::Carried,
    partial: PartialSwitching,
    timings: Timings,
    loaded_maps: LoadedMaps,
    last_reload_error: Option<String>,
    /// Refused reloads and idempotency replays and conflicts, for metrics.
    counts: crate::metrics::DaemonCounts,
    /// Why the last write of the persistent state failed (None: it held).
    persist_error: Option<String>,
    last_exit: Option<ExitInfo>,
    events_received: Arc<AtomicU64>,
    last_telemetry: Option<Instant>,
    last_status: Option<Instant>,
    epoch: Instant,
    shutdown: bool,
    notified_ready: bool,
    final_status_written: bool,
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
        let Probed { file, config, .. } = probed;
        let primary = host::select_mode(&probed.caps, config.mode)?;
        info!(mode = primary.as_str(), requested = ?config.mode, capabilities = ?probed.caps.modes(), "mode selected");
        let persistent = probed.persistent;
        let adaptive_changes = persistent.adaptive_changes;
        let decided_canary = persistent.canary;
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
        let engine = Engine {
            opts,
            host,
            rx,
            snapshot: Arc::clone(&snapshot),
            events: events_tx,
            adaptation: adaptive::Adaptation::new(&generation.config, &adaptive_changes),
            scraper: crate::scraper::Scraper::default(),
            canary: None,
            decided_canary,
            audit,
            bpf_objects,
            generation,
            supervisor,
            idempotency: IdempotencyStore::new(Duration::from_secs(3600), 4096),
            features: probed.features,
            topology: probed.topology,
            telemetry,
            resolved: BTreeMap::new(),
            slots: Default::default(),
            carried: Default::default(),
            partial: PartialSwitching::default(),
            timings: Timings::default(),
            loaded_maps: LoadedMaps::default(),
            last_reload_error: None,
            counts: crate::metrics::DaemonCounts::default(),
            persist_error: None,
            last_exit: None,
            events_received: Arc::new(AtomicU64::new(0)),
            last_telemetry: None,
            last_status: None,
            epoch: Instant::now(),
            shutdown: false,
            notified_ready: false,
            final_status_written: false,
        };
        engine.publish_snapshot();
        let handle = crate::control::EngineHandle {
            tx,
            snapshot,
            reads: Arc::new(tokio::sync::Semaphore::new(crate::control::READ_SLOTS)),
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
        while !self.shutdown {
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
        if !self.final_status_written {
            self.write_status(None, true);
        }
        crate::exit::OK
    }

    /// One wait for a request while no scheduler is loaded.
    fn idle_tick(&mut self) {
        self.host.notify(&[sd_notify::NotifyState::Watchdog]);
        let wait = self.supervisor.until_retry(Instant::now(), self.quiet_tick());
        match self.rx.recv_timeout(wait) {
            Ok(envelope) => self.handle(envelope, None),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.shutdown = true,
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
        self.last_telemetry.is_none_or(|t| t.elapsed() >= self.opts.telemetry_every)
    }

    /// Telemetry for one scan (metrics snapshot, overhead guard, advisory).
    fn telemetry_scan(&mut self, sched: Option<&mut dyn Backend>) {
        self.last_telemetry = Some(Instant::now());
        self.follow_scrapes();
        let caps = self.supervisor.capabilities().modes().to_vec();
        let adaptive = self.adaptive_reports();
        let (breaker_open, breaker_failures) = self.supervisor.breaker();
        let input = ScanInput {
            config: &self.generation.config,
            slots: &self.slots,
            carried: &self.carried,
            resolved: &self.resolved,
            cgroup_root: self.host.cgroup_root(),
            mode: self.supervisor.active,
            state: self.supervisor.state().as_str(),
            generation: self.generation.number,
            capabilities: caps,
            adaptive,
            scrapes: self.scrape_reports(),
            audit: self.audit.as_ref().map_or((0, 0, false), |t| (t.appends, t.failures, true)),
            bpf_objects: self.bpf_objects.clone(),
            maps: (self.loaded_maps.memory.iter().map(|m| (m.name.clone(), m.bytes)).collect(), self.loaded_maps.capacity),
            health: crate::metrics::DaemonHealth {
                breaker_open,
                breaker_failures,
                budget_overrides: self.generation.overrides.len(),
                counts: self.counts,
            },
            canary: self.canary.as_ref().map(canary::CanaryRun::report),
        };
        self.telemetry.scan(&input, sched);
    }

    fn ready(&mut self) {
        if !self.notified_ready {
            self.host.notify(&[sd_notify::NotifyState::Ready]);
            self.notified_ready = true;
        }
    }

    fn publish_snapshot(&self) {
        if let Ok(mut s) = self.snapshot.lock() {
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
        let _ = self.events.try_send(Event::StateChanged {
            state: t.to.to_string(),
            mode: ActiveMode::name_of(self.supervisor.active).into(),
            reason: t.reason,
        });
    }

    /// Writes the persistent state. On failure (a read-only or full state
    /// directory) it logs, keeps the error for Status, and returns the clause
    /// a reply must carry: a reply never says "stays off across restarts"
    /// when the disk does not hold it.
    fn save_persistent(&mut self) -> String {
        let (breaker_open, _) = self.supervisor.breaker();
        let state = PersistentState {
            operator_disabled: self.supervisor.operator_disabled().map(str::to_string),
            breaker_open,
            budget_overrides: self.generation.overrides.clone(),
            adaptive_changes: self.adaptation.last_changes(),
            canary: self.canary.as_ref().and_then(canary::CanaryRun::decided).or_else(|| self.decided_canary.clone()),
        };
        match self.host.save_state(&state) {
            Ok(()) => {
                self.persist_error = None;
                String::new()
            }
            Err(why) => {
                error!(event = "persist_failed", error = %why, "writing persistent state");
                self.persist_error = Some(why.clone());
                format!("; NOT saved ({why}): a restart of scx-slod forgets it")
            }
        }
    }

    fn maybe_write_status(&mut self, sched: Option<&dyn Backend>) {
        if self.last_status.is_none_or(|t| t.elapsed() >= self.opts.status_every) {
            self.write_status(sched, false);
        }
    }

    fn write_status(&mut self, sched: Option<&dyn Backend>, final_write: bool) {
        self.last_status = Some(Instant::now());
        // The final file reads the maps itself (the last scan may predate the
        // session's last second); the periodic one reuses the last scan's.
        if let Err(e) = self.host.write_status(&self.status(sched, final_write, final_write)) {
            warn!(error = %e, "writing the status file");
        }
    }
}
