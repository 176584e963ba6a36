// SPDX-License-Identifier: GPL-2.0-only
//! The control requests, one method each. Every reply says what happened and
//! nothing more: a change is reported only after it took effect (maps
//! written, state saved, or the reply says it was not saved).

use std::time::Instant;

use scx_slo_api::{BudgetOverride, ControlError, Reply};
use tracing::{error, info, warn};

use super::generation::Candidate;
use super::supervisor::EnableOutcome;
use super::Engine;
use crate::backend::Backend;
use crate::control::{Envelope, Event, Request};
use crate::idempotency::Lookup;

impl Engine {
    /// Answers one request (or parks an Enable until its session attached).
    /// A mutating request is recorded in the audit trail before it runs
    /// (with its caller) and its result after; when the trail cannot record
    /// it within [`crate::disk_writer::AUDIT_WAIT`], it is refused and
    /// nothing happens (its result entry says so). Disable and Shutdown are
    /// the exception: an emergency stop never waits on a disk before it
    /// acts, so its entry (and Disable's save) is queued first, it acts,
    /// and only then waits for them, at most
    /// [`crate::disk_writer::EMERGENCY_WAIT`]; the reply says what is not
    /// (yet) recorded or saved.
    ///
    /// A Reload (SIGHUP) first re-opens a trail that could not be opened,
    /// so an operator who moved a bad trail aside gets mutating calls back
    /// without a restart.
    pub(super) fn handle(&mut self, envelope: Envelope, sched: Option<&mut dyn Backend>) {
        // Reads are not correlated: they change nothing and may come often.
        if !envelope.request.is_mutating() {
            return self.handle_request(envelope, sched);
        }
        let c = self.correlate("call");
        self.handle_request(envelope, sched);
        self.end_correlation(c);
    }

    fn handle_request(&mut self, envelope: Envelope, sched: Option<&mut dyn Backend>) {
        let Envelope { request, reply, caller, queued_at } = envelope;
        let audited = request.is_mutating();
        let name = request.name();
        let generation_before = self.generation.number;
        let emergency = matches!(request, Request::Disable { .. } | Request::Shutdown);
        // An emergency call queues its entry and acts without waiting for
        // it; it waits (at most EMERGENCY_WAIT) only after acting.
        let call_detail = serde_json::json!({ "args": request.audit_args(), "acted_without_waiting": emergency });
        if matches!(request, Request::Reload { .. }) {
            self.reopen_audit();
        }
        let mut unrecorded = None;
        let queued_entry = (audited && emergency).then(|| {
            let entry = self.audit_entry("call", Some(caller.clone()), name, call_detail.clone());
            self.disk.append_queued(entry)
        });
        if audited && !emergency {
            if let Err(e) = self.audit_event("call", Some(caller.clone()), name, call_detail.clone()) {
                let refused = ControlError::Failed(format!("{name} refused: the audit trail cannot record it ({e}); nothing was done"));
                // Should the call's entry land later, its result follows it.
                let detail = serde_json::json!({ "ok": false, "reply": refused.to_string(), "generation_before": generation_before, "generation_after": generation_before });
                self.audit_later("call_result", Some(caller), name, detail);
                if let Some(r) = reply {
                    let _ = r.send(Err(refused));
                }
                return;
            }
        }
        let result = match request {
            Request::Status => self.status_json(sched.as_deref()),
            Request::ListTargets => self.list_json(),
            Request::Explain { unit } => self.explain_json(&unit, sched.as_deref()),
            Request::Enable { mode } => match self.enable(&mode, sched.is_some()) {
                Ok(EnableOutcome::SessionStarts) => {
                    // The reply comes when the session attached or failed;
                    // the trail records the scheduler's attach or failure.
                    let detail = serde_json::json!({ "ok": true, "reply": "accepted: the scheduler loads", "generation": generation_before });
                    self.audit_later("call_result", Some(caller), name, detail);
                    if let Some(r) = reply {
                        self.supervisor.park(r);
                    }
                    return;
                }
                Ok(EnableOutcome::AlreadyRunning) => Ok(format!("already running generation {}", self.generation.number)),
                Err(e) => Err(e),
            },
            Request::Disable { reason } => self.disable(reason, queued_at, sched),
            Request::Reload { text } => self.reload(text, sched),
            Request::SetBudget { unit, runtime_us, period_us, key } => {
                let args = format!("{unit}\u{1f}{runtime_us}\u{1f}{period_us}");
                self.idempotent(&key, &args, |engine| engine.set_budget(&unit, BudgetOverride { runtime_us, period_us }, sched))
            }
            Request::ClearBudget { unit } => self.clear_budget(&unit, sched),
            Request::ResetBreaker => Ok(self.reset_breaker()),
            Request::Shutdown => {
                info!("stop requested");
                self.loop_state.shutdown = true;
                Ok("stopping".into())
            }
        };
        let acted = Instant::now();
        if let Some(queued) = queued_entry {
            unrecorded = match queued.wait(&self.disk, crate::disk_writer::EMERGENCY_WAIT) {
                crate::disk_writer::Written::Done(_) => None,
                other => Some(written_error(other)),
            };
        }
        let result = if audited {
            let detail = serde_json::json!({
                "ok": result.is_ok(),
                "reply": match &result { Ok(text) => text.clone(), Err(e) => e.to_string() },
                "generation_before": generation_before,
                "generation_after": self.generation.number,
            });
            let wait = if emergency { crate::disk_writer::EMERGENCY_WAIT } else { crate::disk_writer::AUDIT_WAIT };
            let after = self.audit_event_within(wait, "call_result", Some(caller), name, detail);
            match (result, unrecorded.or(after.err())) {
                (Ok(text), Some(e)) => Ok(format!("{text}; NOT recorded in the audit trail: {e}")),
                (result, _) => result,
            }
        } else {
            result
        };
        if emergency {
            // Where an emergency call's time went, for the chaos run and an
            // operator asking why a Disable was slow: the queue and the
            // action are in the reply, the audit trail's part only here.
            info!(
                event = "emergency_timing",
                request = name,
                total_ms = format!("{:.2}", queued_at.elapsed().as_secs_f64() * 1e3),
                audit_ms = format!("{:.2}", acted.elapsed().as_secs_f64() * 1e3),
                "emergency call answered"
            );
        }
        if let Some(r) = reply {
            let _ = r.send(result);
        }
    }

    /// Opens the trail again if it could not be opened (at start or the
    /// last reload): the operator may have moved a bad one aside.
    fn reopen_audit(&mut self) {
        if self.disk.view().audit_error.is_some() {
            // The writer logs the outcome; the reload's own entry says
            // whether the trail took it.
            let _ = self.disk.reopen(crate::disk_writer::AUDIT_WAIT);
        }
    }

    /// Starts a correlation for one D-Bus call or automatic action
    /// (`origin`: `call`, `adaptive`, `canary`, `scheduler`, `breaker`): a
    /// new id that its audit entries, journal lines and the generation it
    /// makes carry until [`Engine::end_correlation`]. Unique across restarts
    /// (the time in ms, then a counter).
    pub(super) fn correlate(&mut self, origin: &str) -> Correlation {
        self.loop_state.correlations += 1;
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let id = format!("{origin}-{ms:x}-{}", self.loop_state.correlations);
        let span = tracing::info_span!("correlation", correlation_id = %id).entered();
        Correlation { outer: self.loop_state.correlation.replace(id), _span: span }
    }

    pub(super) fn end_correlation(&mut self, c: Correlation) {
        self.loop_state.correlation = c.outer;
    }

    /// Appends to the audit trail, waiting up to
    /// [`crate::disk_writer::AUDIT_WAIT`]; the error says why it could not.
    pub(super) fn audit_event(&mut self, kind: &str, caller: Option<crate::control::Caller>, action: &str, detail: serde_json::Value) -> Result<u64, String> {
        self.audit_event_within(crate::disk_writer::AUDIT_WAIT, kind, caller, action, detail)
    }

    /// The same, waiting up to `wait`: past it the entry stays queued and
    /// the error says it is not yet written.
    pub(super) fn audit_event_within(&mut self, wait: std::time::Duration, kind: &str, caller: Option<crate::control::Caller>, action: &str, detail: serde_json::Value) -> Result<u64, String> {
        let entry = self.audit_entry(kind, caller, action, detail);
        match self.disk.append(entry, wait) {
            crate::disk_writer::Written::Done(seq) => Ok(seq),
            other => Err(written_error(other)),
        }
    }

    /// Appends to the audit trail without waiting (automatic actions: the
    /// writer logs and counts a failure).
    pub(super) fn audit_later(&mut self, kind: &str, caller: Option<crate::control::Caller>, action: &str, detail: serde_json::Value) {
        let entry = self.audit_entry(kind, caller, action, detail);
        self.disk.append_later(entry);
    }

    pub(super) fn audit_entry(&self, kind: &str, caller: Option<crate::control::Caller>, action: &str, detail: serde_json::Value) -> crate::disk_writer::Entry {
        crate::disk_writer::Entry { kind: kind.into(), caller, action: action.into(), detail, correlation: self.loop_state.correlation.clone() }
    }

    fn enable(&mut self, mode: &str, running: bool) -> Result<EnableOutcome, ControlError> {
        let outcome = self.supervisor.enable(mode, self.generation.config.mode, running)?;
        if let Err(e) = self.host.mark_disabled(None) {
            warn!(error = %e, "removing the runtime Disable marker: a restart in this boot would stay off until Enable");
        }
        let unsaved = self.save_persistent();
        if !unsaved.is_empty() {
            warn!("Enable is not persisted{unsaved}");
        }
        Ok(outcome)
    }

    fn disable(&mut self, reason: String, queued_at: Instant, sched: Option<&mut dyn Backend>) -> Reply {
        if reason.trim().is_empty() {
            return Err(ControlError::InvalidArgument("reason: say why (it is kept in the state file and the journal)".into()));
        }
        let t = Instant::now();
        // What the call waited for the engine (behind at most READ_SLOTS
        // reads, or a scan in progress): said apart from the detach, so a
        // slow Disable names its cause.
        let queued_ms = t.saturating_duration_since(queued_at).as_secs_f64() * 1e3;
        // Decided before the detach, which cannot fail: the runtime marker
        // (tmpfs, at once) and the save are queued first, so the disk
        // writes while the kernel detaches, and the reply waits (at most
        // EMERGENCY_WAIT) only for what is left. A crash in between leaves
        // the kernel on its default scheduler and the Disable kept, which
        // is what the operator asked for.
        let transition = self.supervisor.disable(&reason);
        let marked = self.host.mark_disabled(Some(&reason));
        if let Err(e) = &marked {
            warn!(error = %e, "writing the runtime Disable marker");
        }
        let save = self.disk.save_queued(self.persistent_state());
        let kernel = Instant::now();
        if let Some(s) = sched {
            s.detach();
        }
        let kernel_ms = kernel.elapsed().as_secs_f64() * 1e3;
        let restored = self.partial.restore_all();
        let detach_ms = t.elapsed().as_secs_f64() * 1e3;
        let forgets = if marked.is_ok() {
            "a reboot forgets it; a restart of scx-slod in this boot does not (the runtime marker holds it)"
        } else {
            "a restart of scx-slod forgets it"
        };
        let saving = Instant::now();
        let unsaved = crate::disk_writer::unsaved_clause(save.wait(&self.disk, crate::disk_writer::EMERGENCY_WAIT), forgets);
        let save_ms = saving.elapsed().as_secs_f64() * 1e3;
        warn!(event = "operator_disable", reason = %reason, detach_ms = format!("{detach_ms:.2}"), kernel_ms = format!("{kernel_ms:.2}"), queued_ms = format!("{queued_ms:.2}"), save_ms = format!("{save_ms:.2}"), restored_threads = restored, "disabled by an operator");
        self.announce(transition);
        let done = format!("disabled in {detach_ms:.2} ms (the kernel's detach {kernel_ms:.2} ms; after {queued_ms:.2} ms in the engine's queue)");
        if unsaved.is_empty() {
            Ok(format!("{done}; stays off across restarts until Enable"))
        } else if marked.is_ok() {
            Ok(format!("{done}; stays off until Enable or a reboot{unsaved}"))
        } else {
            Ok(format!("{done}, until scx-slod restarts{unsaved}"))
        }
    }

    /// Writes a candidate's maps (while a backend is loaded) and makes it the
    /// running generation; on a failed write nothing changes.
    pub(super) fn apply(&mut self, candidate: Candidate, sched: Option<&mut dyn Backend>) -> Reply {
        let resolved = self.host.resolve_all(&candidate.config);
        // On a copy: if the maps cannot be written, the running generation
        // keeps its slots.
        let mut slots = self.targets.slots.clone();
        slots.assign(&candidate.config);
        if let Some(s) = sched {
            // The maps hold the slots they were sized for at load; every
            // slot stays below the target count (slots.rs), so the count
            // decides.
            let (wanted, capacity) = (candidate.config.targets.len(), s.target_capacity());
            if wanted > capacity as usize {
                return Err(ControlError::InvalidConfig(format!(
                    "targets: {wanted} targets do not fit the {capacity} slots the maps were sized for when they loaded; \
                     restart scx-slod to size them for this config (generation {} stays)",
                    self.generation.number
                )));
            }
            let t = Instant::now();
            let targets = slots.map_targets(&candidate.config, &resolved);
            s.apply(&targets).map_err(|e| {
                ControlError::Failed(format!("writing maps: {e:#}; generation {} stays", self.generation.number))
            })?;
            slots.written(&candidate.config, &targets);
            self.session.timings.last_apply_us = t.elapsed().as_secs_f64() * 1e6;
        }
        self.targets.slots = slots;
        self.targets.resolved = resolved;
        self.generation.commit(candidate);
        self.generation.correlation_id = self.loop_state.correlation.clone();
        self.targets.carried.retain(&self.generation.config);
        self.publish_snapshot();
        let _ = self.channels.events.try_send(Event::PropertiesChanged);
        let (number, targets, us) = (self.generation.number, self.generation.config.targets.len(), self.session.timings.last_apply_us);
        info!(generation = number, targets, apply_us = format!("{us:.0}"), "generation applied");
        let budgets: serde_json::Map<String, serde_json::Value> = self
            .generation
            .config
            .targets
            .iter()
            .map(|t| (t.key.clone(), t.budget.map_or(serde_json::Value::Null, |b| serde_json::json!([b.runtime.as_us(), b.period.as_us()]))))
            .collect();
        let detail = serde_json::json!({
            "generation": number,
            "config_sha256": self.generation.file.sha256,
            "budgets_us": budgets,
            "overrides": self.generation.overrides,
        });
        self.audit_later("generation", None, "applied", detail);
        Ok(format!("generation {number} applied ({targets} targets, {us:.0} us)"))
    }

    fn reload(&mut self, text: Result<String, String>, sched: Option<&mut dyn Backend>) -> Reply {
        let cpus = self.host.online_cpus();
        let result = text
            .map_err(ControlError::InvalidConfig)
            .and_then(|text| super::host::parse_config(&self.opts.config_path, text, cpus).map_err(|r| ControlError::InvalidConfig(r.message)))
            .and_then(|(file, _)| self.generation.reload(file, cpus))
            .and_then(|candidate| {
                let dropped = candidate.dropped.join(", ");
                let reply = self.apply(candidate, sched)?;
                self.follow_config();
                if dropped.is_empty() {
                    return Ok(reply);
                }
                let unsaved = self.save_persistent();
                warn!(event = "budget_override_dropped", overrides = %dropped, "budget overrides dropped by a reload");
                Ok(format!("{reply}; budget overrides dropped: {dropped}{unsaved}"))
            });
        match &result {
            Ok(_) => self.requests.last_reload_error = None,
            Err(e) => {
                error!("reload rejected, generation {} stays: {e}", self.generation.number);
                self.requests.last_reload_error = Some(e.to_string());
                self.requests.counts.reload_failures += 1;
            }
        }
        result
    }

    /// Runs `call` once per idempotency key (empty: no key): a retry with
    /// the same key and arguments gets the first reply, with other
    /// arguments a conflict.
    fn idempotent(&mut self, key: &str, args: &str, call: impl FnOnce(&mut Self) -> Reply) -> Reply {
        if key.is_empty() {
            return call(self);
        }
        match self.requests.idempotency.check(key, args, self.epoch.elapsed()) {
            Lookup::Replay(first) => {
                self.requests.counts.idempotency_replays += 1;
                return first;
            }
            Lookup::Conflict => {
                self.requests.counts.idempotency_conflicts += 1;
                return Err(ControlError::Conflict(format!("key {key:?} was used with other arguments within the last hour")));
            }
            Lookup::New => {}
        }
        let result = call(self);
        self.requests.idempotency.record(key, args, result.clone(), self.epoch.elapsed());
        result
    }

    fn set_budget(&mut self, unit: &str, budget: BudgetOverride, sched: Option<&mut dyn Backend>) -> Reply {
        self.generation.latency_target(unit)?;
        let mut overrides = self.generation.overrides.clone();
        overrides.insert(unit.to_string(), budget);
        let candidate = self.generation.with_overrides(overrides, self.host.online_cpus())?;
        let reply = self.apply(candidate, sched)?;
        // The operator's budget is the adaptive controller's new start.
        self.follow_config();
        let unsaved = self.save_persistent();
        let BudgetOverride { runtime_us, period_us } = budget;
        info!(event = "budget_override", unit, runtime_us, period_us, generation = self.generation.number, "budget override");
        Ok(format!("{unit}: budget {runtime_us}us per {period_us}us; {reply}{unsaved}"))
    }

    fn clear_budget(&mut self, unit: &str, sched: Option<&mut dyn Backend>) -> Reply {
        let mut overrides = self.generation.overrides.clone();
        if overrides.remove(unit).is_none() {
            let known: Vec<&str> = self.generation.overrides.keys().map(String::as_str).collect();
            return Err(ControlError::InvalidArgument(format!(
                "unit: {unit:?} has no budget override (overrides: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
        let candidate = self.generation.with_overrides(overrides, self.host.online_cpus())?;
        let reply = self.apply(candidate, sched)?;
        self.follow_config();
        let unsaved = self.save_persistent();
        info!(event = "budget_override_cleared", unit, generation = self.generation.number, "budget override removed");
        Ok(format!("{unit}: budget override removed, the config file's budget applies; {reply}{unsaved}"))
    }

    fn reset_breaker(&mut self) -> String {
        let (retrying, transition) = self.supervisor.reset_breaker();
        let unsaved = self.save_persistent();
        self.announce(transition);
        if retrying {
            format!("circuit breaker closed; retrying now{unsaved}")
        } else {
            format!("circuit breaker closed{unsaved}")
        }
    }
}

/// One correlation in progress: the id it replaced (restored at its end)
/// and its span, which puts `SCX_SLO_CORRELATION_ID` on the journal lines
/// logged inside it.
pub(super) struct Correlation {
    outer: Option<String>,
    _span: tracing::span::EnteredSpan,
}

/// Why an audit entry is not on disk, as a reply says it.
fn written_error<T>(written: crate::disk_writer::Written<T>) -> String {
    match written {
        crate::disk_writer::Written::Done(_) => String::new(),
        crate::disk_writer::Written::Failed(e) => e,
        crate::disk_writer::Written::Pending(w) => format!(
            "not yet written: the state disk took no write within {} ms (the entry stays queued and lands when the disk takes writes)",
            w.as_millis()
        ),
    }
}
