// SPDX-License-Identifier: GPL-2.0-only
//! The documents the engine serves, built as the wire crate's types: Status
//! (also the status file), ListTargets and Explain.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use scx_slo_api::documents::{BreakerReport, CapabilityReport, OverrideDrift, ProbeReport, RecentCounters, TargetList};
use scx_slo_api::{ActiveMode, ControlError, Counter, Explain, Reply, State, Status, TargetEntry, TargetStatus, DOCUMENT_VERSION};
use scx_slo_model::Class;

use super::Engine;
use crate::backend::Backend;

fn to_json(doc: &impl serde::Serialize) -> Reply {
    serde_json::to_string(doc).map_err(|e| ControlError::Failed(format!("serializing the reply: {e}")))
}

impl Engine {
    /// The cgroup directory and id of a target, once resolved.
    fn cgroup_of(&self, unit: &str) -> (Option<String>, Option<u64>) {
        let r = self.targets.resolved.get(unit);
        (r.map(|r| r.dir.display().to_string()), r.map(|r| r.cgroup_id))
    }

    /// The status document; `final_write` is the file written at a stop.
    /// `live`: each target's statistics are read from the maps now; else
    /// they are the last telemetry scan's (at most a telemetry period old)
    /// where that scan was of this config generation.
    pub(super) fn status(&self, sched: Option<&dyn Backend>, final_write: bool, live: bool) -> Status {
        let scanned = (!live).then(|| self.telemetry.lock_latest()).filter(|s| s.generation == self.generation.number);
        let targets = self.generation.config.targets.iter().enumerate().map(|(i, t)| {
            let slot = self.targets.slots.get(&t.key);
            let last_scan = scanned.as_ref().and_then(|s| s.units.get(i)).filter(|u| u.unit == t.key);
            let stats = match last_scan {
                Some(u) => u.stats.clone(),
                None => {
                    let live = self.targets.resolved.get(&t.key).and(sched).zip(slot).and_then(|(s, slot)| s.target_stats(slot).ok());
                    self.targets.carried.total(&t.key, live)
                }
            };
            let q = |q| stats.as_ref().and_then(|s| scx_slo_model::histogram::log2_quantile_le_ns(&s.rq_delay_hist, q));
            let (cgroup, cgroup_id) = self.cgroup_of(&t.key);
            TargetStatus {
                key: t.key.clone(),
                class: t.class,
                index: slot,
                cgroup,
                cgroup_id,
                rq_delay_p50_le_ns: q(0.5),
                rq_delay_p99_le_ns: q(0.99),
                stats,
            }
        })
        .collect();
        // The telemetry thread waits on this lock to publish its next scan:
        // held only while the targets are copied, not for the whole document.
        drop(scanned);
        let state = self.supervisor.state();
        let caps = self.supervisor.capabilities();
        let (open, recent_failures) = self.supervisor.breaker();
        let probe = self.supervisor.active.is_some_and(|m| m != ActiveMode::Enforce).then(|| {
            let (overhead_ratio, sample_every, overhead_budget) = self.telemetry.probe_overhead();
            let cost = self.telemetry.probe_cost.unwrap_or_default();
            ProbeReport { overhead_ratio, sample_every, overhead_budget, run_time_ns: cost.run_time_ns, run_count: cost.run_count }
        });
        let overrides = &self.generation.overrides;
        Status {
            version: DOCUMENT_VERSION,
            state: if final_write && state == State::Running { State::Stopped } else { state },
            mode: ActiveMode::name_of(self.supervisor.active).into(),
            primary_mode: self.supervisor.primary(),
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
            requested_mode: self.generation.config.mode,
            capabilities: CapabilityReport {
                modes: caps.modes().iter().map(|(m, ok)| (m.as_str().to_string(), *ok)).collect(),
                host: caps.clone(),
            },
            probe,
            advisory_weights: self.telemetry.advisory_weights.clone(),
            switch: self.generation.config.switch,
            generation: self.generation.number,
            generation_correlation_id: self.generation.correlation_id.clone(),
            config_path: self.opts.config_path.display().to_string(),
            config_sha256: self.generation.file.sha256.clone(),
            backend: format!("{:?}", self.opts.backend).to_lowercase(),
            kernel: self.machine.features.clone(),
            load_ms: self.session.timings.load_ms,
            attach_ms: self.session.timings.attach_ms,
            last_apply_us: self.session.timings.last_apply_us,
            switched_threads: self.partial.switched(),
            partial_switch: self.partial.report(),
            events_received: self.session.events_received.load(Ordering::Relaxed),
            last_reload_error: self.requests.last_reload_error.clone(),
            operator_disabled: self.supervisor.operator_disabled().map(str::to_string),
            persist_error: self.disk.view().persist_error,
            breaker: BreakerReport {
                open,
                recent_failures,
                half_open: self.supervisor.breaker_half_open(),
                probe_in_s: self.supervisor.breaker_probe_in(std::time::Instant::now()),
            },
            budget_overrides: overrides.clone(),
            budget_override_drift: overrides
                .iter()
                .map(|(unit, o)| {
                    let drift = OverrideDrift {
                        override_: format!("{}us per {}us", o.runtime_us, o.period_us),
                        config_file: self.generation.file.budget_as_written(unit),
                    };
                    (unit.clone(), drift)
                })
                .collect(),
            adaptive: self.adaptive_reports(),
            scrapes: self.scrape_reports(),
            canary: self.canary.report(),
            target_capacity: self.session.loaded_maps.capacity,
            maps: self.session.loaded_maps.memory.clone(),
            bpf_objects: self.machine.bpf_objects.clone(),
            audit: {
                let v = self.disk.view();
                match v.audit_error {
                    None => scx_slo_api::documents::AuditReport {
                        last_seq: v.audit_head.0,
                        last_hash: v.audit_head.1,
                        appends: v.audit_appends,
                        append_mean_us: v.audit_append_ns as f64 / v.audit_appends.max(1) as f64 / 1e3,
                        failures: v.audit_failures,
                        error: None,
                    },
                    Some(e) => scx_slo_api::documents::AuditReport { error: Some(e), ..Default::default() },
                }
            },
            targets,
            global: sched.and_then(|s| s.global_stats().ok()).map(|g| g.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>()),
            exit: self.session.last_exit.clone(),
        }
    }

    pub(super) fn status_json(&self, sched: Option<&dyn Backend>) -> Reply {
        to_json(&self.status(sched, false, true))
    }

    pub(super) fn list_json(&self) -> Reply {
        let targets = self.generation.config.targets.iter().map(|t| {
            let (cgroup, cgroup_id) = self.cgroup_of(&t.key);
            TargetEntry {
                key: t.key.clone(),
                class: t.class,
                cgroup,
                cgroup_id,
                budget: t.budget,
                deadline: t.deadline,
                priority: t.priority,
                overridden: self.generation.overrides.contains_key(&t.key),
            }
        })
        .collect();
        to_json(&TargetList { version: DOCUMENT_VERSION, targets })
    }

    pub(super) fn explain_json(&self, unit: &str, sched: Option<&dyn Backend>) -> Reply {
        let Some(t) = self.generation.config.targets.iter().find(|t| t.key == unit) else {
            return Err(ControlError::InvalidArgument(format!(
                "unit {unit:?} is not a target (targets: {})",
                self.generation.config.targets.iter().map(|t| t.key.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        let config_path = self.opts.config_path.display();
        let source = match self.generation.overrides.get(unit) {
            Some(o) if self.adaptation.set_by_controller(unit, o.runtime_us) => format!(
                "the adaptive controller's budget ({}us per {}us, see adaptation.last_change) over {config_path} (budget there: {})",
                o.runtime_us,
                o.period_us,
                self.generation.file.budget_as_written(unit).unwrap_or_default()
            ),
            Some(o) => format!(
                "SetBudget override ({}us per {}us) over {config_path} (budget there: {})",
                o.runtime_us,
                o.period_us,
                self.generation.file.budget_as_written(unit).unwrap_or_default()
            ),
            None => config_path.to_string(),
        };
        let live = self.targets.slots.get(unit).and_then(|slot| sched.and_then(|s| s.target_stats(slot).ok()));
        let stats = self.targets.carried.total(unit, live);
        let (cgroup, cgroup_id) = self.cgroup_of(unit);
        let state = self.supervisor.state();
        let recent = stats.map(|s| {
            let (wakeups, spent) = (s.get(Counter::Wakeups), s.get(Counter::BudgetSpentWakeups));
            RecentCounters {
                wakeups,
                jobs: s.get(Counter::Jobs),
                deadline_misses: s.get(Counter::DeadlineMisses),
                budget_exhausted: s.get(Counter::BudgetExhausted),
                budget_spent_wakeups: spent,
                fair_preempts: s.get(Counter::FairPreempts),
                budget_covered_pct: budget_covered_pct(wakeups, spent),
            }
        });
        let why = match (cgroup_id, state) {
            (None, _) => "no cgroup found yet: the unit is not running (or the cgroup path is wrong); it is retried every scan".to_string(),
            (Some(_), State::Running) => match t.class {
                Class::Latency => {
                    let mut why = "earliest-deadline-first while its budget lasts in each period, then fair share (with the sleeper credit and wakeup preemption any task gets)".to_string();
                    if let Some(short) = recent.as_ref().and_then(|r| shortfall(unit, r, t.budget.as_ref().map(|b| b.period))) {
                        why.push_str("; ");
                        why.push_str(&short);
                    }
                    why
                }
                Class::Batch => "weighted virtual time".to_string(),
            },
            (Some(_), state) => format!("scx-slo is {state}: the unit runs on the kernel's default scheduler"),
        };
        to_json(&Explain {
            version: DOCUMENT_VERSION,
            unit: unit.to_string(),
            state,
            generation: self.generation.number,
            source,
            target: t.clone(),
            cgroup,
            cgroup_id,
            why,
            recent,
            adaptation: self.adaptation.report(unit, self.file_runtime(unit)),
        })
    }

    /// `targets.<unit>.budget.runtime` as the config file writes it.
    fn file_runtime(&self, unit: &str) -> Option<scx_slo_model::Duration> {
        let budget = self.generation.file.budget_as_written(unit)?;
        budget.get("runtime")?.as_str()?.parse().ok()
    }

    /// Every `scrape` block's endpoint, by target.
    pub(super) fn scrape_reports(&self) -> BTreeMap<String, scx_slo_api::documents::ScrapeReport> {
        self.generation.config.targets.iter().filter_map(|t| Some((t.key.clone(), self.scraper.report(t.scrape.as_ref()?)))).collect()
    }

    /// Every adaptive target's controller report.
    pub(super) fn adaptive_reports(&self) -> BTreeMap<String, scx_slo_api::AdaptiveReport> {
        self.generation
            .config
            .targets
            .iter()
            .filter_map(|t| self.adaptation.report(&t.key, self.file_runtime(&t.key)).map(|r| (t.key.clone(), r)))
            .collect()
    }
}

/// Percent of wakeups that found budget left; `None` before the first.
fn budget_covered_pct(wakeups: u64, spent: u64) -> Option<f64> {
    (wakeups > 0).then(|| 100.0 * wakeups.saturating_sub(spent) as f64 / wakeups as f64)
}

/// Explain's sentence on a budget that falls short of the unit's need, with
/// the command that measures the need; `None` while the budget covers every
/// wakeup.
fn shortfall(unit: &str, recent: &RecentCounters, period: Option<scx_slo_model::Duration>) -> Option<String> {
    let covered = recent.budget_covered_pct?;
    if recent.budget_spent_wakeups == 0 {
        return None;
    }
    let period = period.map(|p| format!(" --period {p}")).unwrap_or_default();
    Some(format!(
        "the budget covered {covered:.1}% of its wakeups: {} of {} found it spent and ran by fair share only; `scx-slo tune {unit}{period}` measures the CPU per period it needs and recommends a budget",
        recent.budget_spent_wakeups, recent.wakeups
    ))
}

#[cfg(test)]
mod shortfall_tests {
    use super::*;

    fn recent(wakeups: u64, spent: u64) -> RecentCounters {
        RecentCounters { wakeups, budget_spent_wakeups: spent, budget_covered_pct: budget_covered_pct(wakeups, spent), ..RecentCounters::default() }
    }

    #[test]
    fn coverage_is_the_share_of_wakeups_with_budget_left() {
        assert_eq!(budget_covered_pct(0, 0), None);
        assert_eq!(budget_covered_pct(200, 50), Some(75.0));
        assert_eq!(budget_covered_pct(10, 10), Some(0.0));
        // A per-CPU copy read mid-update cannot push coverage below zero.
        assert_eq!(budget_covered_pct(10, 11), Some(0.0));
    }

    #[test]
    fn a_shortfall_names_its_size_and_the_tune_command() {
        let period = Some(scx_slo_model::Duration::from_ms(1));
        let s = shortfall("api.service", &recent(200, 50), period).expect("a shortfall");
        assert!(s.contains("75.0%"), "{s}");
        assert!(s.contains("50 of 200"), "{s}");
        assert!(s.contains("`scx-slo tune api.service --period 1ms`"), "{s}");
        assert_eq!(shortfall("api.service", &recent(200, 0), period), None);
        assert_eq!(shortfall("api.service", &recent(0, 0), period), None);
    }
}
