// SPDX-License-Identifier: GPL-2.0-only
//! What the engine does with numbers every scan, in every mode: reads the
//! backend's per-target statistics and the cgroup files, computes budget
//! utilization and steal, runs the probes' overhead guard and the advisory
//! controller, and publishes the metrics snapshot.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use scx_slo_bpf::TargetStats;
use scx_slo_model::{histogram, Class, Config};
use tracing::{info, warn};

use crate::advisory;
use crate::change_limit::ChangeLimiter;
use crate::attribution::{self, CgroupReading, CpuTimes};
use crate::backend::Backend;
use crate::metrics::{MetricsSnapshot, SharedSnapshot, UnitMetrics};
use crate::modes::ActiveMode;
use crate::overhead::OverheadGuard;
use crate::resolver::Resolved;

/// cgroup files (cpu.stat, cpu.pressure) are read at most this often:
/// reading cpu.stat flushes the kernel's per-CPU statistics, and with 1,000
/// targets that was most of the daemon's idle CPU (measured with perf).
pub const ATTRIBUTION_EVERY: Duration = Duration::from_secs(5);

/// What one scan needs from the engine.
pub struct ScanInput<'a> {
    /// The applied config.
    pub config: &'a Config,
    /// Each target's map slot.
    pub slots: &'a crate::slots::Slots,
    /// What ended sessions counted (added to the live maps).
    pub carried: &'a crate::carry::Carried,
    /// Resolved targets.
    pub resolved: &'a BTreeMap<String, Resolved>,
    /// cgroup2 mount point.
    pub cgroup_root: &'a Path,
    /// Mode running now.
    pub mode: Option<ActiveMode>,
    /// Lifecycle state name.
    pub state: &'static str,
    /// Config generation.
    pub generation: u64,
    /// Mode availability.
    pub capabilities: Vec<(ActiveMode, bool)>,
    /// The adaptive targets' controllers.
    pub adaptive: BTreeMap<String, scx_slo_api::AdaptiveReport>,
    /// The scraper's endpoints, by target.
    pub scrapes: BTreeMap<String, scx_slo_api::documents::ScrapeReport>,
    /// The audit trail: appends, failed appends, and whether it is open.
    pub audit: (u64, u64, bool),
    /// The embedded BPF objects' digests.
    pub bpf_objects: BTreeMap<String, String>,
    /// The loaded maps' kernel memory, and their target slots.
    pub maps: (BTreeMap<String, u64>, u32),
    /// Breaker, overrides and the engine's counts.
    pub health: crate::metrics::DaemonHealth,
    /// The A/B canary, when the config has one.
    pub canary: Option<scx_slo_api::documents::CanaryReport>,
}

/// The per-scan state.
pub struct Telemetry {
    snapshot: SharedSnapshot,
    epoch: Instant,
    guard: OverheadGuard,
    overhead_budget: f64,
    last_cpu: Option<CpuTimes>,
    steal_ratio: f64,
    usage_prev: BTreeMap<String, (Instant, u64)>,
    /// Exits by kind, for `scx_slo_scheduler_exits_total`.
    pub exits: BTreeMap<String, u64>,
    advisory_bus: Option<String>,
    advisory_conn: Option<zbus::blocking::Connection>,
    advisory_last: Option<Instant>,
    advisory_hist: BTreeMap<String, Vec<u64>>,
    /// Recommended weights by unit.
    pub advisory_weights: BTreeMap<String, u32>,
    /// The probes' cumulative cost at the last scan.
    pub probe_cost: Option<scx_slo_bpf::ProbeCost>,
    cgroup_readings: BTreeMap<String, CgroupReading>,
    budget_util: BTreeMap<String, Option<f64>>,
    last_attribution: Option<Instant>,
}

impl Telemetry {
    /// State for a daemon; `advisory_bus` is systemd's bus address (None:
    /// the system bus).
    pub fn new(snapshot: SharedSnapshot, overhead_budget: f64, advisory_bus: Option<String>) -> Self {
        Telemetry {
            snapshot,
            epoch: Instant::now(),
            guard: OverheadGuard::new(overhead_budget),
            overhead_budget,
            last_cpu: None,
            steal_ratio: 0.0,
            usage_prev: BTreeMap::new(),
            // Each ejection kind is exported from the start at 0, so an alert
            // on `increase()` sees the first ejection (a counter that first
            // appears at 1 shows no increase).
            exits: scx_slo_bpf::scheduler::ejection_kinds().map(|k| (k.to_string(), 0)).collect(),
            advisory_bus,
            advisory_conn: None,
            advisory_last: None,
            advisory_hist: BTreeMap::new(),
            advisory_weights: BTreeMap::new(),
            probe_cost: None,
            cgroup_readings: BTreeMap::new(),
            budget_util: BTreeMap::new(),
            last_attribution: None,
        }
    }

    /// The latest published snapshot (what the next scrape shows).
    pub fn latest(&self) -> MetricsSnapshot {
        self.lock_latest().clone()
    }

    /// The last scan's snapshot, held: the periodic status file takes each
    /// unit's statistics from it instead of reading the maps a second time
    /// each second (with 1,000 targets, 1,000 per-CPU lookups).
    pub fn lock_latest(&self) -> std::sync::MutexGuard<'_, MetricsSnapshot> {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new probe session starts at full sampling.
    pub fn session_started(&mut self, budget: f64) {
        self.overhead_budget = budget;
        self.guard = OverheadGuard::new(budget);
        self.advisory_hist.clear();
        self.advisory_last = None;
        self.probe_cost = None;
    }

    /// The probes' last measured overhead and divisor, for the status.
    pub fn probe_overhead(&self) -> (f64, u32, f64) {
        (self.guard.ratio(), self.guard.sample_every(), self.overhead_budget)
    }

    /// One scan: numbers in, metrics out.
    /// `limit` is the host-wide limit on automatic changes: advisory takes
    /// one per CPUWeight it sets, and leaves a unit as it is when the limit
    /// is reached (its next interval decides again).
    pub fn scan(&mut self, input: &ScanInput, mut sched: Option<&mut dyn Backend>, limit: &mut ChangeLimiter) {
        let now = Instant::now();
        if let Some(cpu) = attribution::read_cpu_times() {
            if let Some(prev) = self.last_cpu {
                self.steal_ratio = attribution::steal_ratio(prev, cpu);
            }
            self.last_cpu = Some(cpu);
        }
        let mut probe = None;
        let live_global = sched.as_deref().and_then(|s| s.global_stats().ok()).unwrap_or_default();
        let global = input.carried.global_total(&live_global);
        if let Some(s) = sched.as_deref_mut().filter(|s| s.measures_probe_cost()) {
            let at = self.epoch.elapsed();
            let mut changed = None;
            // Read every scan for the status file; it grows only while the
            // statistics are on.
            self.probe_cost = s.probe_cost();
            match self.guard.phase(at) {
                crate::overhead::Phase::Wait => {}
                crate::overhead::Phase::Begin => match s.set_cost_measuring(true).ok().and_then(|()| s.probe_cost()) {
                    Some(cost) => self.guard.begin(at, cost),
                    None => {
                        let _ = s.set_cost_measuring(false);
                        self.guard.skip(at);
                    }
                },
                crate::overhead::Phase::End => {
                    let cost = s.probe_cost();
                    if let Err(e) = s.set_cost_measuring(false) {
                        warn!("turning the kernel's BPF statistics off: {e:#}");
                    }
                    match cost {
                        Some(cost) => {
                            self.probe_cost = Some(cost);
                            changed = self.guard.end(at, cost);
                        }
                        None => self.guard.skip(at),
                    }
                }
            }
            if let Some(n) = changed {
                match s.set_sample_every(n) {
                    Ok(()) => warn!(
                        event = "probe_sampling",
                        sample_every = n,
                        overhead = format!("{:.4}", self.guard.ratio()),
                        budget = self.overhead_budget,
                        "observe probes now measure one wakeup in {n}"
                    ),
                    Err(e) => warn!("setting the probes' sampling: {e:#}"),
                }
            }
            probe = Some((self.guard.ratio(), self.guard.sample_every()));
        }
        let advise = input.mode == Some(ActiveMode::Advisory)
            && self.advisory_last.is_none_or(|t| t.elapsed() >= Duration::from_nanos(input.config.advisory.interval.as_ns()));
        if advise {
            self.advisory_last = Some(now);
        }

        let attribute = self.last_attribution.is_none_or(|t| t.elapsed() >= ATTRIBUTION_EVERY);
        if attribute {
            self.last_attribution = Some(now);
        }
        let mut units = Vec::with_capacity(input.config.targets.len());
        for t in &input.config.targets {
            let r = input.resolved.get(&t.key);
            let live: Option<TargetStats> = match (r, sched.as_deref(), input.slots.get(&t.key)) {
                (Some(_), Some(s), Some(slot)) => s.target_stats(slot).ok(),
                _ => None,
            };
            let stats = input.carried.total(&t.key, live);
            let (cgroup, budget_utilization) = match r {
                Some(r) if attribute => {
                    let c = attribution::read_cgroup(input.cgroup_root, &r.dir);
                    let u = self.budget_utilization(t, now, c.usage_usec);
                    self.cgroup_readings.insert(t.key.clone(), c);
                    self.budget_util.insert(t.key.clone(), u);
                    (c, u)
                }
                Some(_) => (
                    self.cgroup_readings.get(&t.key).copied().unwrap_or_default(),
                    self.budget_util.get(&t.key).copied().flatten(),
                ),
                None => (CgroupReading::default(), None),
            };
            if advise {
                if let Some(st) = &stats {
                    self.advise(input, t, st, limit);
                }
            }
            units.push(UnitMetrics {
                unit: t.key.clone(),
                resolved: r.is_some(),
                stats,
                budget_utilization,
                cgroup,
                advisory_weight: self.advisory_weights.get(&t.key).copied(),
                adaptive: input.adaptive.get(&t.key).cloned(),
                scrape: input.scrapes.get(&t.key).cloned(),
            });
        }
        let snap = MetricsSnapshot {
            mode: input.mode,
            state: input.state,
            capabilities: input.capabilities.clone(),
            generation: input.generation,
            exits: self.exits.clone(),
            probe_overhead_ratio: probe.map(|p| p.0),
            probe_sample_every: probe.map(|p| p.1),
            steal_ratio: self.steal_ratio,
            units,
            audit_appends: input.audit.0,
            audit_failures: input.audit.1,
            audit_open: input.audit.2,
            bpf_objects: input.bpf_objects.clone(),
            map_bytes: input.maps.0.clone(),
            target_slots: input.maps.1,
            probe_overhead_budget: probe.map(|_| self.overhead_budget),
            health: input.health,
            global,
            canary: input.canary.clone(),
        };
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snap;
        }
    }

    fn budget_utilization(&mut self, t: &scx_slo_model::Target, now: Instant, usage_usec: Option<u64>) -> Option<f64> {
        let usage = usage_usec?;
        let prev = self.usage_prev.insert(t.key.clone(), (now, usage));
        let budget = t.budget?;
        let (then, before) = prev?;
        let wall_us = now.duration_since(then).as_secs_f64() * 1e6;
        let share = budget.runtime.as_ns() as f64 / budget.period.as_ns().max(1) as f64;
        (wall_us > 0.0 && share > 0.0).then(|| usage.saturating_sub(before) as f64 / (wall_us * share))
    }

    /// The advisory controller for one unit: p99 queue delay over the last
    /// interval (histogram delta) → recommended weight → systemd.
    fn advise(&mut self, input: &ScanInput, t: &scx_slo_model::Target, stats: &TargetStats, limit: &mut ChangeLimiter) {
        // Only systemd units have a CPUWeight to set; a bare cgroup path has none.
        if t.class != Class::Latency || t.key.starts_with('/') {
            return;
        }
        let Some(deadline) = t.deadline else { return };
        let prev = self.advisory_hist.insert(t.key.clone(), stats.rq_delay_hist.clone());
        let Some(prev) = prev else { return };
        let delta = histogram::delta(&prev, &stats.rq_delay_hist);
        // The bucket's upper bound, not an interpolation: the formula's dead
        // band (a factor of 4) is wider than a bucket (a factor of 2), so the
        // bound cannot make the weight flap, and erring high gives a unit
        // that waits its weight sooner.
        let p99 = histogram::log2_quantile_le_ns(&delta, 0.99);
        let settings = &input.config.advisory;
        let current = self.advisory_weights.get(&t.key).copied().unwrap_or(t.weight.max(settings.min_weight));
        let Some(next) = advisory::recommend(settings, current, p99, deadline.as_ns()) else { return };
        if settings.dry_run {
            info!(event = "advisory", unit = %t.key, from = current, to = next, p99_queue_ns = p99, dry_run = true,
                "advisory (dry run): would set CPUWeight={next} on {} (was {current})", t.key);
            self.advisory_weights.insert(t.key.clone(), next);
            return;
        }
        if self.advisory_conn.is_none() {
            match advisory::connect(self.advisory_bus.as_deref()) {
                Ok(c) => self.advisory_conn = Some(c),
                Err(e) => return warn!("advisory: connecting to systemd's bus: {e:#}"),
            }
        }
        let Some(conn) = &self.advisory_conn else { return };
        if !limit.take(Instant::now()) {
            let (changes, window) = limit.limit();
            return info!(event = "advisory_rate_limited", unit = %t.key, from = current, to = next,
                "advisory: CPUWeight={next} on {} held back: the host-wide limit of {changes} automatic changes per {} s is reached", t.key, window.as_secs());
        }
        match advisory::set_cpu_weight(conn, &t.key, next) {
            Ok(()) => {
                info!(event = "advisory", unit = %t.key, from = current, to = next, p99_queue_ns = p99,
                    "advisory: set CPUWeight={next} on {} (was {current}; runtime only)", t.key);
                self.advisory_weights.insert(t.key.clone(), next);
            }
            Err(e) => {
                warn!(event = "advisory_failed", unit = %t.key, "advisory: {e:#}");
                self.advisory_conn = None;
            }
        }
    }

    /// Records a scheduler exit by kind.
    pub fn count_exit(&mut self, kind: &str) {
        *self.exits.entry(kind.to_string()).or_default() += 1;
    }
}
