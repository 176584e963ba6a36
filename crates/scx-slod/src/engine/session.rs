// SPDX-License-Identifier: GPL-2.0-only
//! A session: load a backend (the scheduler, or the observe probes), fill
//! its maps, attach, and run it until it is disabled, fails, is ejected, or
//! the daemon stops; then detach and put every thread back.

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scx_slo_api::{ActiveMode, State};
use scx_slo_bpf::{LoadParams, Observer, Scheduler};
use tracing::{debug, error, info, warn};

use super::supervisor::FailureOutcome;
use super::{BackendKind, Engine, LoadedMaps};
use crate::backend::{Backend, Simulated};
use crate::control::Event;

/// How long the scheduler must run before a failure counts as a fresh start
/// for the backoff (the breaker's window still counts every failure).
const STABLE_RUN: Duration = Duration::from_secs(30);

/// What a session loads, in words.
fn what(mode: ActiveMode) -> &'static str {
    match mode {
        ActiveMode::Enforce => "scx_slo",
        ActiveMode::Observe | ActiveMode::Advisory => "the observe probes",
    }
}

impl Engine {
    fn load<'obj>(
        &self,
        mode: ActiveMode,
        object: &'obj mut MaybeUninit<scx_slo_bpf::OpenObject>,
    ) -> scx_slo_bpf::Result<Box<dyn Backend + 'obj>> {
        match (self.opts.backend, mode) {
            (BackendKind::Simulated, _) => Ok(Box::new(Simulated::new(self.target_capacity()))),
            (BackendKind::Bpf, ActiveMode::Enforce) => {
                let params = LoadParams {
                    config: self.generation.config.clone(),
                    topology: self.machine.topology.clone(),
                    target_capacity: self.target_capacity(),
                };
                Ok(Box::new(Scheduler::load(object, &params)?))
            }
            (BackendKind::Bpf, ActiveMode::Observe | ActiveMode::Advisory) => {
                Ok(Box::new(Observer::load(object, self.target_capacity())?))
            }
        }
    }

    /// The slots a backend loaded now gets: from the running config's
    /// target count, or from the highest slot one of its targets keeps,
    /// whichever needs more (slots survive sessions; see slots.rs).
    pub(super) fn target_capacity(&self) -> u32 {
        let mut slots = self.targets.slots.clone();
        slots.assign(&self.generation.config);
        let needed = slots.highest().map_or(0, |s| s as usize + 1).max(self.generation.config.targets.len());
        scx_slo_model::target_capacity(needed) as u32
    }

    /// Whether this session switches targeted threads to SCHED_EXT itself.
    fn partial_switching(&self, mode: ActiveMode) -> bool {
        mode == ActiveMode::Enforce && self.generation.config.switch == scx_slo_model::SwitchMode::Partial
    }

    /// Fills a freshly loaded backend's maps and attaches it.
    pub(super) fn fill_and_attach(&mut self, sched: &mut dyn Backend) -> Result<(), String> {
        self.targets.resolved = self.host.resolve_all(&self.generation.config);
        self.follow_scrapes();
        let t = Instant::now();
        self.targets.slots.new_maps();
        self.targets.slots.assign(&self.generation.config);
        let targets = self.targets.slots.map_targets(&self.generation.config, &self.targets.resolved);
        sched.apply(&targets).map_err(|e| format!("filling the maps: {e:#}"))?;
        self.targets.slots.written(&self.generation.config, &targets);
        self.session.timings.last_apply_us = t.elapsed().as_secs_f64() * 1e6;
        self.adaptation.session_started();
        let t = Instant::now();
        sched.attach().map_err(|e| format!("attaching: {e:#}"))?;
        self.session.timings.attach_ms = t.elapsed().as_secs_f64() * 1e3;
        self.session.loaded_maps.capacity = sched.target_capacity();
        self.session.loaded_maps.memory = sched.map_memory().unwrap_or_else(|e| {
            warn!("the maps' memory cannot be read: {e:#}");
            Vec::new()
        });
        Ok(())
    }

    /// Loads, attaches and runs a backend until it is disabled, fails, is
    /// ejected, or the daemon stops. A fallback session (observe while
    /// enforce backs off) leaves the lifecycle state alone and ends when
    /// enforce is due again.
    pub(super) fn session(&mut self, mode: ActiveMode, fallback: bool, object: &mut MaybeUninit<scx_slo_bpf::OpenObject>) {
        let what = what(mode);
        if !fallback {
            let t = self.supervisor.go(State::Starting, format!("loading {what} ({} mode)", mode.as_str()));
            self.announce(t);
        }
        let started = Instant::now();
        let loaded = self.load(mode, object).map_err(|e| format!("loading {what}: {e:#}"));
        let mut sched = match loaded {
            Ok(s) => s,
            Err(why) => return self.session_failed(fallback, why),
        };
        self.session.timings.load_ms = started.elapsed().as_secs_f64() * 1e3;
        if let Err(why) = self.fill_and_attach(sched.as_mut()) {
            return self.session_failed(fallback, format!("{what}: {why}"));
        }
        if self.supervisor.attached(mode, fallback) {
            let c = self.correlate("breaker");
            self.audit_later("breaker", None, "half-open", serde_json::json!({ "mode": mode.as_str() }));
            self.end_correlation(c);
        }
        self.telemetry.session_started(self.generation.config.observe.overhead_budget);
        self.canary_tick(sched.as_ref(), mode, fallback);
        let detail = serde_json::json!({
            "mode": mode.as_str(), "fallback": fallback, "generation": self.generation.number,
            "load_ms": self.session.timings.load_ms, "attach_ms": self.session.timings.attach_ms,
        });
        self.audit_later("scheduler", None, &format!("{what} attached"), detail);
        if fallback && self.supervisor.in_baseline() {
            info!(event = "mode_changed", mode = mode.as_str(), "canary baseline: the default scheduler runs, the observe probes measure it");
            self.publish_snapshot();
            let _ = self.channels.events.try_send(Event::PropertiesChanged);
        } else if fallback {
            warn!(event = "mode_changed", mode = mode.as_str(), "enforce is not running: observing with the default scheduler meanwhile");
            self.publish_snapshot();
            let _ = self.channels.events.try_send(Event::PropertiesChanged);
        } else {
            self.session.last_exit = None;
            let t = self.supervisor.go(
                State::Running,
                format!(
                    "{what} attached, {} mode (generation {}, {} of {} targets resolved, load {:.1} ms, attach {:.1} ms)",
                    mode.as_str(),
                    self.generation.number,
                    self.targets.resolved.len(),
                    self.generation.config.targets.len(),
                    self.session.timings.load_ms,
                    self.session.timings.attach_ms
                ),
            );
            self.announce(t);
            self.supervisor.running(self.generation.number);
            for t in self.generation.config.targets.iter().filter(|t| !self.targets.resolved.contains_key(&t.key)) {
                warn!(unit = %t.key, "target has no cgroup yet; retrying every scan");
            }
            self.ready();
        }
        self.session_loop(sched.as_mut(), mode, fallback);
    }

    fn session_failed(&mut self, fallback: bool, why: String) {
        if fallback {
            self.canary_baseline_failed(&why);
            warn!(event = "observe_fallback_failed", "{why}; no measurements until the next attempt");
            self.supervisor.fallback_failed(Instant::now());
        } else {
            self.failed(why);
        }
    }

    /// A load failure or an ejection: back off, or open the breaker.
    pub(super) fn failed(&mut self, why: String) {
        let c = self.correlate("scheduler");
        self.failure(why);
        self.end_correlation(c);
    }

    fn failure(&mut self, why: String) {
        error!(event = "scheduler_failed", "{why}");
        let (outcome, transition) = self.supervisor.failure(&why, self.epoch.elapsed(), Instant::now());
        if let FailureOutcome::BreakerOpened(_) = outcome {
            self.save_persistent_within(std::time::Duration::ZERO);
            self.audit_later("breaker", None, "opened", serde_json::json!({ "why": why }));
        }
        self.announce(transition);
        self.ready();
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
                if self.supervisor.stable() {
                    let c = self.correlate("breaker");
                    self.save_persistent_within(std::time::Duration::ZERO);
                    self.audit_later("breaker", None, "closed", serde_json::json!({ "why": "the half-open probe ran stably" }));
                    self.end_correlation(c);
                }
            }
            self.host.notify(&[sd_notify::NotifyState::Watchdog]);
            let mut wait = tick.saturating_sub(last_scan.elapsed());
            if fallback {
                wait = self.supervisor.until_retry(Instant::now(), wait);
            }
            match self.channels.rx.recv_timeout(wait) {
                Ok(envelope) => self.handle(envelope, Some(&mut *sched)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.loop_state.shutdown = true,
            }
            if self.loop_state.shutdown || !self.supervisor.wanted_on() || self.supervisor.mode_switch() {
                break;
            }
            if fallback && self.supervisor.primary_due(Instant::now()) {
                info!("enforce is due again: stopping the observe fallback");
                break;
            }
            if self.canary_tick(&*sched, mode, fallback) {
                break;
            }
            if let Some(exit) = sched.exit_info() {
                self.telemetry.count_exit(&exit.kind_name);
                let why = format!(
                    "the kernel ejected scx_slo ({}: {} {}); the host is on its default scheduler",
                    exit.kind_name, exit.reason, exit.msg
                );
                let detail = serde_json::json!({ "kind": exit.kind_name, "reason": exit.reason, "msg": exit.msg });
                self.audit_later("scheduler", None, "ejected by the kernel", detail);
                self.session.last_exit = Some(exit);
                sched.detach();
                self.partial.restore_all();
                self.failed(why);
                break;
            }
            if last_scan.elapsed() >= tick {
                last_scan = Instant::now();
                self.scan(&mut *sched, mode);
            }
            self.maybe_write_status(Some(&*sched));
        }
        // Disable already detached; stopping and ejection land here too. A
        // canary window still open was cut short: it is not judged.
        self.canary.abandon();
        let t = Instant::now();
        sched.detach();
        self.session.loaded_maps = LoadedMaps::default();
        // No new-task switching after this point: stop the events thread
        // before restoring, and restore what it switched too.
        if let Some(stop) = &reader_stop {
            stop.stop();
        }
        if let Some(handle) = reader {
            let _ = handle.join();
        }
        self.partial.adopt_reported();
        let restored = self.partial.restore_all();
        if self.loop_state.shutdown {
            self.write_status(Some(&*sched), true);
            self.loop_state.final_status_written = true;
        }
        // After the final status (which reads the live maps itself): from
        // here the ended session's counts are carried.
        self.targets.carried.session_ended(&self.generation.config, &self.targets.slots, &self.targets.resolved, &*sched);
        if self.loop_state.shutdown {
            info!(
                detach_ms = format!("{:.1}", t.elapsed().as_secs_f64() * 1e3),
                restored_threads = restored,
                "{} detached",
                what(mode)
            );
        }
        self.supervisor.detached();
        let detail = serde_json::json!({ "mode": mode.as_str(), "generation": self.generation.number, "restored_threads": restored, "stopping": self.loop_state.shutdown });
        self.audit_later("scheduler", None, &format!("{} detached", what(mode)), detail);
        self.publish_snapshot();
        self.telemetry_scan(None);
    }

    fn spawn_event_reader(
        &self,
        map: scx_slo_bpf::events::EventsMap,
        stop: Arc<scx_slo_bpf::events::ReaderStop>,
    ) -> std::thread::JoinHandle<()> {
        let names: Vec<String> = self.generation.config.targets.iter().map(|t| t.key.clone()).collect();
        let received = Arc::clone(&self.session.events_received);
        let sink = self.partial.sink();
        let events = self.channels.events.clone();
        std::thread::spawn(move || {
            let result = scx_slo_bpf::events::read_events(map, stop, move |ev| {
                if ev.kind == scx_slo_bpf::intf::slo_event_kind_SLO_EVENT_NEW_TASK {
                    let tids = crate::switcher::switch_reported(ev.pid as i32, ev.slack_ns != 0);
                    debug!(pid = ev.pid, switched = tids.len(), "new task in a target");
                    sink.by_event.fetch_add(tids.len() as u64, Ordering::Relaxed);
                    if let Ok(mut r) = sink.reported.lock() {
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

    /// Periodic work while running: follow unit starts and partial switching.
    fn scan(&mut self, sched: &mut dyn Backend, mode: ActiveMode) {
        // Resolution and telemetry read a file or two per target: at the
        // telemetry period, not every scan (1,000 targets cost 64% of a CPU
        // at the 100 ms scan period, measured).
        let slow_due = self.telemetry_due();
        if slow_due {
            let now_resolved = self.host.resolve_all(&self.generation.config);
            if now_resolved != self.targets.resolved {
                let t = Instant::now();
                let targets = self.targets.slots.map_targets(&self.generation.config, &now_resolved);
                match sched.apply(&targets) {
                    Ok(()) => {
                        self.targets.slots.written(&self.generation.config, &targets);
                        self.session.timings.last_apply_us = t.elapsed().as_secs_f64() * 1e6;
                        info!(resolved = now_resolved.len(), "target cgroups changed; maps updated");
                        self.targets.resolved = now_resolved;
                    }
                    Err(e) => warn!("updating maps for changed cgroups: {e:#}"),
                }
            }
        }
        if self.partial_switching(mode) {
            self.partial.scan(&self.targets.resolved);
        }
        // Budgets exist only while scx_slo schedules.
        if mode == ActiveMode::Enforce {
            self.adapt(&mut *sched, Instant::now());
        }
        if slow_due {
            self.telemetry_scan(Some(sched));
        }
    }
}
