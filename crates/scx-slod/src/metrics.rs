// SPDX-License-Identifier: GPL-2.0-only
//! The Prometheus endpoint: the engine publishes a [`MetricsSnapshot`] every
//! scan, and a prometheus-client collector encodes the latest one on each
//! scrape, served by [`crate::http`] on its own thread. The numbers are the same
//! in every mode: enforce reads the scheduler's maps, observe and advisory
//! the probes' maps (same layout), and cgroup files are read in all modes.
//!
//! Every metric is described once: the daemon's own in [`METRICS`], the
//! scheduler's counters (per target and whole-scheduler) in the counter
//! tables of `scx_slo_api::counters` (their `metric` name and help text);
//! [`metrics`] lists all, and docs/metrics.md is checked against that list
//! by a test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use scx_slo_bpf::{Counter, GlobalCounter, TargetStats};

use crate::attribution::CgroupReading;
use crate::modes::ActiveMode;
use scx_slo_api::documents::{CanaryState, Verdict};
use scx_slo_api::State;

/// One metric family: name (as exposed, counters with `_total`), kind, help.
#[derive(Clone, Copy, Debug)]
pub struct MetricDesc {
    /// Full name.
    pub name: &'static str,
    /// Prometheus type.
    pub kind: &'static str,
    /// Labels besides none.
    pub labels: &'static str,
    /// HELP text.
    pub help: &'static str,
}

macro_rules! metrics_table {
    ($($name:literal, $kind:literal, $labels:literal, $help:literal;)*) => {
        /// The metrics that are not scheduler counters.
        pub const METRICS: &[MetricDesc] = &[$(MetricDesc { name: $name, kind: $kind, labels: $labels, help: $help },)*];
    };
}

/// Every metric scx-slod exports: [`METRICS`] and the exported counters of
/// the counter tables.
pub fn metrics() -> impl Iterator<Item = MetricDesc> {
    let counters = Counter::ALL
        .into_iter()
        .map(Counter::describe)
        .filter_map(|c| c.metric.map(|name| MetricDesc { name, kind: "counter", labels: "unit", help: c.help }));
    let global = GlobalCounter::ALL
        .into_iter()
        .map(GlobalCounter::describe)
        .filter_map(|c| c.metric.map(|name| MetricDesc { name, kind: "counter", labels: "", help: c.help }));
    METRICS.iter().copied().chain(counters).chain(global)
}

metrics_table! {
    "scx_slo_mode", "gauge", "mode", "1 for the mode scx-slod runs in (enforce, advisory, observe, none), 0 for the others.";
    "scx_slo_state", "gauge", "state", "1 for the daemon's lifecycle state, 0 for the others.";
    "scx_slo_capability", "gauge", "mode", "1 when this host can run the mode, else 0 (probed at start).";
    "scx_slo_config_generation", "gauge", "", "Generation of the applied config; bumps on every reload or budget change.";
    "scx_slo_scheduler_exits_total", "counter", "reason", "Times the kernel ejected or unloaded the scheduler, by exit kind.";
    "scx_slo_probe_overhead_ratio", "gauge", "", "CPU the observe probes used over the last window, as a fraction of one CPU.";
    "scx_slo_probe_sample_every", "gauge", "", "The probes measure one wakeup in this many (1 = all); raised when over the overhead budget.";
    "scx_slo_cpu_steal_ratio", "gauge", "", "Share of host CPU time stolen by the hypervisor over the last scan (/proc/stat).";
    "scx_slo_target_resolved", "gauge", "unit", "1 when the target's cgroup was found, else 0.";
    "scx_slo_queue_latency_seconds", "histogram", "unit", "Run-queue delay from wakeup to first run.";
    "scx_slo_slack_seconds", "histogram", "unit", "Time left before the deadline when a job completed in time.";
    "scx_slo_max_wait_seconds", "gauge", "unit", "Longest time any task of the unit waited runnable for a CPU since the scheduler loaded (enforce mode; the no-starvation bound is checked on it).";
    "scx_slo_budget_utilization", "gauge", "unit", "CPU used over the last scan divided by the unit's budget (runtime/period); latency units.";
    "scx_slo_cpu_usage_seconds_total", "counter", "unit", "CPU time of the unit's cgroup (cpu.stat usage_usec).";
    "scx_slo_throttled_periods_total", "counter", "unit", "CFS bandwidth periods in which the unit's cgroup was throttled.";
    "scx_slo_throttled_seconds_total", "counter", "unit", "Time the unit's cgroup spent throttled by CFS bandwidth control.";
    "scx_slo_cpu_pressure_seconds_total", "counter", "unit", "Time some task of the unit waited for a CPU (cpu.pressure some total).";
    "scx_slo_advisory_cpu_weight", "gauge", "unit", "CPUWeight advisory mode recommends (and, unless dry-run, applied) for the unit.";
    "scx_slo_adaptive_runtime_seconds", "gauge", "unit", "Runtime budget per period the adaptive controller holds in force for the unit (enforce mode, targets with an adaptive block).";
    "scx_slo_adaptive_p99_seconds", "gauge", "unit", "p99 of the unit's SLI (adaptive.sli: response, queue delay or its own histogram) over its last adaptive interval, the controller's input.";
    "scx_slo_adaptive_changes_total", "counter", "unit", "Runtime budget changes the adaptive controller applied since scx-slod started.";
    "scx_slo_adaptive_refused_total", "counter", "unit", "Runtime budget steps admission refused (logged, never forced) since scx-slod started.";
    "scx_slo_scrapes_total", "counter", "unit,outcome", "Readings of the unit's own latency histogram (its scrape block) since scx-slod started, by outcome (ok, failed).";
    "scx_slo_audit_appends_total", "counter", "", "Entries appended to the audit trail since scx-slod started.";
    "scx_slo_audit_append_failures_total", "counter", "", "Audit trail appends that failed since scx-slod started (the mutating call they belonged to was refused).";
    "scx_slo_audit_open", "gauge", "", "1 while the audit trail can be written; 0 while it cannot (mutating calls but Disable are refused).";
    "scx_slo_bpf_object_info", "gauge", "object,sha256", "1 for each embedded BPF object, labelled with its SHA-256 (verified against the build's record at start).";
    "scx_slo_map_bytes", "gauge", "map", "Kernel memory of each BPF map of the loaded scheduler or probes (memlock from its fdinfo); the per-target maps are sized for scx_slo_target_slots.";
    "scx_slo_target_slots", "gauge", "", "Target slots the loaded per-target maps hold (twice the config's targets, 32 to 1024); a reload with more targets is refused until a restart.";
    "scx_slo_probe_overhead_budget_ratio", "gauge", "", "The observe probes' overhead budget (fraction of one CPU) that sampling keeps them under; exported while probes run.";
    "scx_slo_breaker_open", "gauge", "", "1 while the circuit breaker is open (the scheduler stays off until `scx-slo reset-breaker`), else 0.";
    "scx_slo_breaker_recent_failures", "gauge", "", "Scheduler failures inside the breaker's window; it opens at its max_failures.";
    "scx_slo_budget_overrides", "gauge", "", "SetBudget overrides in force (each replaces a target's budget from the config file).";
    "scx_slo_reload_failures_total", "counter", "", "Reloads refused since scx-slod started (the running generation stayed).";
    "scx_slo_idempotency_replays_total", "counter", "", "Mutating calls answered from the idempotency store (a retry with the same key and arguments; nothing done twice).";
    "scx_slo_idempotency_conflicts_total", "counter", "", "Mutating calls refused because their idempotency key was used with other arguments.";
    "scx_slo_canary_state", "gauge", "state", "1 for the A/B canary's state (running, promoted, rolled-back, expired), 0 for the others; absent without a canary.";
    "scx_slo_canary_windows", "gauge", "", "Pairs of canary windows (scx-slo, then the default scheduler) judged so far.";
    "scx_slo_canary_verdicts", "gauge", "verdict", "The current canary's windows judged better, same, worse or not-enough-data.";
    "scx_slo_canary_p99_ratio", "gauge", "", "The last canary window's run-queue delay p99 under scx-slo over the default scheduler's (below 1: scx-slo is better).";
}

/// The daemon's own health, beside the kernel's numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DaemonHealth {
    /// The circuit breaker is open.
    pub breaker_open: bool,
    /// Failures inside the breaker's window.
    pub breaker_failures: usize,
    /// SetBudget overrides in force.
    pub budget_overrides: usize,
    /// Counted by the engine since start.
    pub counts: DaemonCounts,
}

/// What the engine counts since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaemonCounts {
    /// Refused reloads.
    pub reload_failures: u64,
    /// Calls answered from the idempotency store.
    pub idempotency_replays: u64,
    /// Calls refused for a key used with other arguments.
    pub idempotency_conflicts: u64,
}

/// One target's numbers.
#[derive(Clone, Debug, Default)]
pub struct UnitMetrics {
    /// The target key (`unit` label).
    pub unit: String,
    /// Whether its cgroup is known.
    pub resolved: bool,
    /// Kernel statistics, when a backend runs.
    pub stats: Option<TargetStats>,
    /// Budget use over the last scan.
    pub budget_utilization: Option<f64>,
    /// cgroup files.
    pub cgroup: CgroupReading,
    /// Advisory recommendation.
    pub advisory_weight: Option<u32>,
    /// The adaptive controller, when the target has one.
    pub adaptive: Option<scx_slo_api::AdaptiveReport>,
    /// Its own histogram's endpoint, when it has a `scrape` block.
    pub scrape: Option<scx_slo_api::documents::ScrapeReport>,
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// The running mode, if any.
    pub mode: Option<ActiveMode>,
    /// Lifecycle state name.
    pub state: &'static str,
    /// Mode availability.
    pub capabilities: Vec<(ActiveMode, bool)>,
    /// Config generation.
    pub generation: u64,
    /// Exits by kind.
    pub exits: BTreeMap<String, u64>,
    /// Probe overhead.
    pub probe_overhead_ratio: Option<f64>,
    /// Probe sampling divisor.
    pub probe_sample_every: Option<u32>,
    /// Steal.
    pub steal_ratio: f64,
    /// Per target.
    pub units: Vec<UnitMetrics>,
    /// Audit entries appended since start.
    pub audit_appends: u64,
    /// Audit appends that failed since start.
    pub audit_failures: u64,
    /// Whether the audit trail is open (mutating calls but Disable are
    /// refused while it is not).
    pub audit_open: bool,
    /// The embedded BPF objects' digests.
    pub bpf_objects: BTreeMap<String, String>,
    /// The loaded maps' kernel memory by name, bytes (empty: none loaded).
    pub map_bytes: BTreeMap<String, u64>,
    /// Target slots of the loaded maps (0: none loaded).
    pub target_slots: u32,
    /// The probes' overhead budget, while probes run.
    pub probe_overhead_budget: Option<f64>,
    /// Breaker, overrides and the engine's counts.
    pub health: DaemonHealth,
    /// Whole-scheduler counters for the daemon's lifetime (enforce mode).
    pub global: BTreeMap<&'static str, u64>,
    /// The A/B canary, when the config has one.
    pub canary: Option<scx_slo_api::documents::CanaryReport>,
}

/// The latest snapshot, shared between the engine and the HTTP thread.
pub type SharedSnapshot = Arc<Mutex<MetricsSnapshot>>;

#[derive(Debug)]
struct SnapshotCollector(SharedSnapshot);

fn desc(name: &str) -> MetricDesc {
    metrics().find(|m| m.name == name).unwrap_or(METRICS[0])
}

/// Starts a family: the descriptor from [`METRICS`]. prometheus-client adds
/// `_total` to counters itself, so the base name goes in.
fn family<'a>(encoder: &'a mut DescriptorEncoder, name: &str) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    let d = desc(name);
    let (base, kind) = match d.kind {
        "counter" => (d.name.strip_suffix("_total").unwrap_or(d.name), MetricType::Counter),
        "histogram" => (d.name, MetricType::Histogram),
        _ => (d.name, MetricType::Gauge),
    };
    encoder.encode_descriptor(base, d.help, None, kind)
}

fn counter(e: &mut MetricEncoder, label: (&str, &str), v: u64) -> Result<(), std::fmt::Error> {
    let labels = [label];
    e.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

fn gauge_f(e: &mut MetricEncoder, label: Option<(&str, &str)>, v: f64) -> Result<(), std::fmt::Error> {
    match label {
        Some(l) => {
            let labels = [l];
            e.encode_family(&labels)?.encode_gauge(&v)
        }
        None => e.encode_gauge(&v),
    }
}

/// A log2 histogram from intf.h as prometheus-client wants it: each bucket's
/// own count with its upper bound `le` in seconds. The encoder accumulates, so
/// the counts here must not be cumulative; and it writes `le="+Inf"` only for
/// `f64::MAX` (its own histograms' last bound), `f64::INFINITY` would come out
/// as `le="inf"`, which OpenMetrics parsers refuse.
pub fn histogram_buckets(hist: &[u64]) -> Vec<(f64, u64)> {
    hist.iter()
        .enumerate()
        .map(|(i, n)| {
            let upper = scx_slo_model::histogram::upper_ns(i);
            (if upper == u64::MAX { f64::MAX } else { upper as f64 / 1e9 }, *n)
        })
        .collect()
}

fn histogram(e: &mut MetricEncoder, unit: &str, hist: &[u64], sum_ns: u64) -> Result<(), std::fmt::Error> {
    let labels = [("unit", unit)];
    let count = hist.iter().sum();
    e.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum_ns as f64 / 1e9, count, &histogram_buckets(hist), None)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = match self.0.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let current_mode = s.mode.map_or("none", ActiveMode::as_str);
        let mut e = family(&mut encoder, "scx_slo_mode")?;
        for m in ActiveMode::ALL.iter().rev().map(|m| m.as_str()).chain(["none"]) {
            gauge_f(&mut e, Some(("mode", m)), f64::from(u8::from(m == current_mode)))?;
        }
        let mut e = family(&mut encoder, "scx_slo_state")?;
        for st in State::LIFECYCLE.map(State::as_str) {
            gauge_f(&mut e, Some(("state", st)), f64::from(u8::from(st == s.state)))?;
        }
        let mut e = family(&mut encoder, "scx_slo_capability")?;
        for (m, ok) in &s.capabilities {
            gauge_f(&mut e, Some(("mode", m.as_str())), f64::from(u8::from(*ok)))?;
        }
        family(&mut encoder, "scx_slo_config_generation")?.encode_gauge(&(s.generation as i64))?;
        let mut e = family(&mut encoder, "scx_slo_scheduler_exits_total")?;
        for (reason, n) in &s.exits {
            counter(&mut e, ("reason", reason), *n)?;
        }
        if let Some(r) = s.probe_overhead_ratio {
            family(&mut encoder, "scx_slo_probe_overhead_ratio")?.encode_gauge(&r)?;
        }
        if let Some(n) = s.probe_sample_every {
            family(&mut encoder, "scx_slo_probe_sample_every")?.encode_gauge(&i64::from(n))?;
        }
        family(&mut encoder, "scx_slo_cpu_steal_ratio")?.encode_gauge(&s.steal_ratio)?;

        let mut e = family(&mut encoder, "scx_slo_target_resolved")?;
        for u in &s.units {
            gauge_f(&mut e, Some(("unit", &u.unit)), f64::from(u8::from(u.resolved)))?;
        }
        let with_stats: Vec<(&UnitMetrics, &TargetStats)> = s.units.iter().filter_map(|u| u.stats.as_ref().map(|st| (u, st))).collect();
        for c in Counter::ALL {
            let Some(name) = c.describe().metric else { continue };
            let mut e = family(&mut encoder, name)?;
            for (u, st) in &with_stats {
                counter(&mut e, ("unit", &u.unit), st.get(c))?;
            }
        }
        let mut e = family(&mut encoder, "scx_slo_queue_latency_seconds")?;
        for (u, st) in &with_stats {
            histogram(&mut e, &u.unit, &st.rq_delay_hist, st.get(Counter::RqDelaySumNs))?;
        }
        let mut e = family(&mut encoder, "scx_slo_slack_seconds")?;
        for (u, st) in &with_stats {
            histogram(&mut e, &u.unit, &st.slack_hist, st.get(Counter::SlackSumNs))?;
        }
        let mut e = family(&mut encoder, "scx_slo_max_wait_seconds")?;
        for (u, st) in &with_stats {
            // Only the enforce scheduler measures it; observe leaves 0.
            if st.max_wait_ns > 0 {
                gauge_f(&mut e, Some(("unit", &u.unit)), st.max_wait_ns as f64 / 1e9)?;
            }
        }
        let mut e = family(&mut encoder, "scx_slo_budget_utilization")?;
        for u in &s.units {
            if let Some(v) = u.budget_utilization {
                gauge_f(&mut e, Some(("unit", &u.unit)), v)?;
            }
        }
        let usec = |v: Option<u64>| v.map(|us| us as f64 / 1e6);
        for (name, pick) in [
            ("scx_slo_cpu_usage_seconds_total", (|c: &CgroupReading| c.usage_usec) as fn(&CgroupReading) -> Option<u64>),
            ("scx_slo_throttled_seconds_total", |c| c.throttled_usec),
            ("scx_slo_cpu_pressure_seconds_total", |c| c.pressure_some_usec),
        ] {
            let mut e = family(&mut encoder, name)?;
            for u in &s.units {
                if let Some(v) = usec(pick(&u.cgroup)) {
                    let labels = [("unit", u.unit.as_str())];
                    e.encode_family(&labels)?.encode_counter::<NoLabelSet, f64, f64>(&v, None)?;
                }
            }
        }
        let mut e = family(&mut encoder, "scx_slo_throttled_periods_total")?;
        for u in &s.units {
            if let Some(v) = u.cgroup.nr_throttled {
                counter(&mut e, ("unit", &u.unit), v)?;
            }
        }
        let mut e = family(&mut encoder, "scx_slo_advisory_cpu_weight")?;
        for u in &s.units {
            if let Some(w) = u.advisory_weight {
                gauge_f(&mut e, Some(("unit", &u.unit)), f64::from(w))?;
            }
        }
        family(&mut encoder, "scx_slo_audit_appends_total")?.encode_counter::<NoLabelSet, u64, u64>(&s.audit_appends, None)?;
        family(&mut encoder, "scx_slo_audit_append_failures_total")?.encode_counter::<NoLabelSet, u64, u64>(&s.audit_failures, None)?;
        family(&mut encoder, "scx_slo_audit_open")?.encode_gauge(&i64::from(u8::from(s.audit_open)))?;
        let mut e = family(&mut encoder, "scx_slo_bpf_object_info")?;
        for (object, sha) in &s.bpf_objects {
            let labels = [("object", object.as_str()), ("sha256", sha.as_str())];
            e.encode_family(&labels)?.encode_gauge(&1i64)?;
        }
        if !s.map_bytes.is_empty() {
            let mut e = family(&mut encoder, "scx_slo_map_bytes")?;
            for (map, bytes) in &s.map_bytes {
                e.encode_family(&[("map", map.as_str())])?.encode_gauge(&(*bytes as i64))?;
            }
            family(&mut encoder, "scx_slo_target_slots")?.encode_gauge(&i64::from(s.target_slots))?;
        }
        if let Some(b) = s.probe_overhead_budget {
            family(&mut encoder, "scx_slo_probe_overhead_budget_ratio")?.encode_gauge(&b)?;
        }
        let h = &s.health;
        family(&mut encoder, "scx_slo_breaker_open")?.encode_gauge(&i64::from(u8::from(h.breaker_open)))?;
        family(&mut encoder, "scx_slo_breaker_recent_failures")?.encode_gauge(&(h.breaker_failures as i64))?;
        family(&mut encoder, "scx_slo_budget_overrides")?.encode_gauge(&(h.budget_overrides as i64))?;
        for (name, v) in [
            ("scx_slo_reload_failures_total", h.counts.reload_failures),
            ("scx_slo_idempotency_replays_total", h.counts.idempotency_replays),
            ("scx_slo_idempotency_conflicts_total", h.counts.idempotency_conflicts),
        ] {
            family(&mut encoder, name)?.encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
        }
        // Only a running or ended enforce session has these; observe has no
        // whole-scheduler counters, and a 0 there would claim a measurement.
        for c in GlobalCounter::ALL.map(GlobalCounter::describe) {
            let (Some(name), Some(v)) = (c.metric, s.global.get(c.name)) else { continue };
            let mut e = family(&mut encoder, name)?;
            // A count of ns is exported in seconds, Prometheus's base unit.
            match c.name.ends_with("_ns") {
                true => e.encode_counter::<NoLabelSet, f64, f64>(&(*v as f64 / 1e9), None)?,
                false => e.encode_counter::<NoLabelSet, u64, u64>(v, None)?,
            }
        }
        if let Some(c) = &s.canary {
            let mut e = family(&mut encoder, "scx_slo_canary_state")?;
            for st in CanaryState::ALL {
                gauge_f(&mut e, Some(("state", st.as_str())), f64::from(u8::from(c.state == st)))?;
            }
            family(&mut encoder, "scx_slo_canary_windows")?.encode_gauge(&i64::from(c.windows))?;
            let mut e = family(&mut encoder, "scx_slo_canary_verdicts")?;
            for v in Verdict::ALL {
                gauge_f(&mut e, Some(("verdict", v.as_str())), c.verdicts.iter().filter(|x| **x == v).count() as f64)?;
            }
            if let Some(r) = c.last.as_ref().and_then(|l| l.p99_ratio) {
                family(&mut encoder, "scx_slo_canary_p99_ratio")?.encode_gauge(&r)?;
            }
        }
        let adaptive: Vec<(&str, &scx_slo_api::AdaptiveReport)> = s.units.iter().filter_map(|u| u.adaptive.as_ref().map(|a| (u.unit.as_str(), a))).collect();
        let mut e = family(&mut encoder, "scx_slo_adaptive_runtime_seconds")?;
        for (unit, a) in &adaptive {
            gauge_f(&mut e, Some(("unit", unit)), a.runtime_us as f64 / 1e6)?;
        }
        let mut e = family(&mut encoder, "scx_slo_adaptive_p99_seconds")?;
        for (unit, a) in &adaptive {
            if let Some(p99) = a.last.as_ref().and_then(|d| d.p99_us) {
                gauge_f(&mut e, Some(("unit", unit)), p99 as f64 / 1e6)?;
            }
        }
        let mut e = family(&mut encoder, "scx_slo_adaptive_changes_total")?;
        for (unit, a) in &adaptive {
            counter(&mut e, ("unit", unit), a.changes)?;
        }
        let mut e = family(&mut encoder, "scx_slo_adaptive_refused_total")?;
        for (unit, a) in &adaptive {
            counter(&mut e, ("unit", unit), a.refused)?;
        }
        let mut e = family(&mut encoder, "scx_slo_scrapes_total")?;
        for u in &s.units {
            if let Some(r) = &u.scrape {
                for (outcome, n) in [("ok", r.ok), ("failed", r.failed)] {
                    let labels = [("unit", u.unit.as_str()), ("outcome", outcome)];
                    e.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(&n, None)?;
                }
            }
        }
        Ok(())
    }
}

/// The registry serving a shared snapshot.
pub fn registry(snapshot: SharedSnapshot) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    registry
}

/// Encodes the registry in the text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!("encoding metrics: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_list_every_metric() {
        let doc = include_str!("../../../docs/metrics.md");
        for m in metrics() {
            assert!(doc.contains(&format!("| `{}` | {} |", m.name, m.kind)), "docs/metrics.md lacks {}", m.name);
            assert!(doc.contains(m.help), "docs/metrics.md has another text for {}", m.name);
        }
    }

    #[test]
    fn buckets_keep_their_own_counts_and_end_at_the_encoders_infinity() {
        let mut hist = vec![0u64; 24];
        hist[0] = 2;
        hist[3] = 5;
        hist[23] = 1;
        let b = histogram_buckets(&hist);
        assert_eq!(b[0], (1024.0 / 1e9, 2));
        assert_eq!(b[3], (8192.0 / 1e9, 5));
        assert_eq!(b[23], (f64::MAX, 1));
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn renders_every_family_with_its_help() {
        let mut stats = scx_slo_bpf::maps::sum_target_stats(&[]);
        stats.counters.set(Counter::Jobs, 10);
        stats.counters.set(Counter::DeadlineMisses, 2);
        stats.counters.set(Counter::PreemptKicks, 8);
        stats.rq_delay_hist[4] = 7;
        stats.rq_delay_hist[6] = 3;
        stats.max_wait_ns = 12_500_000;
        let snap = MetricsSnapshot {
            mode: Some(ActiveMode::Observe),
            state: "running",
            capabilities: vec![(ActiveMode::Enforce, false), (ActiveMode::Observe, true)],
            generation: 3,
            exits: [("error_stall".to_string(), 1)].into(),
            probe_overhead_ratio: Some(0.002),
            probe_sample_every: Some(1),
            steal_ratio: 0.0,
            units: vec![UnitMetrics {
                unit: "api.service".into(),
                resolved: true,
                stats: Some(stats),
                budget_utilization: Some(0.5),
                cgroup: CgroupReading { usage_usec: Some(2_000_000), nr_throttled: Some(1), throttled_usec: Some(500), pressure_some_usec: Some(7) },
                advisory_weight: Some(150),
                scrape: Some(scx_slo_api::documents::ScrapeReport { ok: 40, failed: 2, ..Default::default() }),
                adaptive: Some(scx_slo_api::AdaptiveReport {
                    runtime_us: 2500,
                    changes: 3,
                    refused: 1,
                    last: Some(scx_slo_api::AdaptiveDecision {
                        at_unix_s: 0,
                        p99_us: Some(750),
                        samples: 900,
                        from_us: 2500,
                        to_us: 2500,
                        outcome: "on-target".into(),
                        why: String::new(),
                    }),
                    ..Default::default()
                }),
            }],
            audit_appends: 12,
            audit_failures: 1,
            audit_open: true,
            bpf_objects: [("scx_slo".to_string(), "ab".repeat(32))].into(),
            map_bytes: [("target_stats".to_string(), 32_824)].into(),
            target_slots: 32,
            probe_overhead_budget: Some(0.01),
            health: DaemonHealth {
                breaker_open: true,
                breaker_failures: 3,
                budget_overrides: 2,
                counts: DaemonCounts { reload_failures: 4, idempotency_replays: 5, idempotency_conflicts: 6 },
            },
            global: [("events_dropped", 9), ("credit_grants", 11), ("slice_clamps", 4), ("kept_running", 7), ("credit_lent_ns", 1_500_000_000)].into(),
            canary: Some(scx_slo_api::documents::CanaryReport {
                state: CanaryState::RolledBack,
                windows: 2,
                verdicts: vec![Verdict::Same, Verdict::Worse],
                last: Some(scx_slo_api::documents::CanaryWindow { p99_ratio: Some(3.5), ..Default::default() }),
                ..Default::default()
            }),
        };
        let text = render(&registry(Arc::new(Mutex::new(snap))));
        for m in metrics() {
            assert!(text.contains(&format!("# HELP {} {}", m.name.strip_suffix("_total").unwrap_or(m.name), m.help)), "{} missing:\n{text}", m.name);
        }
        assert!(text.contains("scx_slo_mode{mode=\"observe\"} 1"), "{text}");
        assert!(text.contains("scx_slo_deadline_misses_total{unit=\"api.service\"} 2"), "{text}");
        assert!(text.contains("scx_slo_preempt_kicks_total{unit=\"api.service\"} 8"), "{text}");
        assert!(text.contains("scx_slo_queue_latency_seconds_count{unit=\"api.service\"} 10"), "{text}");
        // Rendered buckets are cumulative exactly once: 0 below bucket 4, 7 up to bucket 6, then 10.
        let buckets: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("scx_slo_queue_latency_seconds_bucket{"))
            .map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()).expect("bucket value"))
            .collect();
        assert_eq!(buckets.len(), scx_slo_bpf::intf::slo_consts_SLO_HIST_BUCKETS as usize, "{text}");
        assert_eq!(&buckets[3..7], &[0, 7, 7, 10], "{text}");
        assert!(buckets[6..].iter().all(|&n| n == 10), "the +Inf bucket must equal the count:\n{text}");
        assert!(text.contains("scx_slo_queue_latency_seconds_bucket{le=\"+Inf\",unit=\"api.service\"} 10"), "{text}");
        assert!(text.contains("scx_slo_scheduler_exits_total{reason=\"error_stall\"} 1"), "{text}");
        assert!(text.contains("scx_slo_cpu_usage_seconds_total{unit=\"api.service\"} 2"), "{text}");
        assert!(text.contains("scx_slo_max_wait_seconds{unit=\"api.service\"} 0.0125"), "{text}");
        assert!(text.contains("scx_slo_adaptive_runtime_seconds{unit=\"api.service\"} 0.0025"), "{text}");
        assert!(text.contains("scx_slo_adaptive_p99_seconds{unit=\"api.service\"} 0.00075"), "{text}");
        assert!(text.contains("scx_slo_adaptive_changes_total{unit=\"api.service\"} 3"), "{text}");
        assert!(text.contains("scx_slo_adaptive_refused_total{unit=\"api.service\"} 1"), "{text}");
        assert!(text.contains("scx_slo_scrapes_total{unit=\"api.service\",outcome=\"ok\"} 40"), "{text}");
        assert!(text.contains("scx_slo_scrapes_total{unit=\"api.service\",outcome=\"failed\"} 2"), "{text}");
        assert!(text.contains("scx_slo_audit_appends_total 12") && text.contains("scx_slo_audit_append_failures_total 1"), "{text}");
        assert!(text.contains("scx_slo_audit_open 1"), "{text}");
        for line in [
            "scx_slo_probe_overhead_budget_ratio 0.01",
            "scx_slo_breaker_open 1",
            "scx_slo_breaker_recent_failures 3",
            "scx_slo_budget_overrides 2",
            "scx_slo_reload_failures_total 4",
            "scx_slo_idempotency_replays_total 5",
            "scx_slo_idempotency_conflicts_total 6",
            "scx_slo_events_dropped_total 9",
            "scx_slo_credit_grants_total 11",
            "scx_slo_slice_clamps_total 4",
            "scx_slo_kept_running_total 7",
            "scx_slo_credit_lent_seconds_total 1.5",
            "scx_slo_canary_state{state=\"rolled-back\"} 1.0",
            "scx_slo_canary_state{state=\"promoted\"} 0.0",
            "scx_slo_canary_windows 2",
            "scx_slo_canary_verdicts{verdict=\"worse\"} 1.0",
            "scx_slo_canary_verdicts{verdict=\"better\"} 0.0",
            "scx_slo_canary_p99_ratio 3.5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(text.contains(&format!("scx_slo_bpf_object_info{{object=\"scx_slo\",sha256=\"{}\"}} 1", "ab".repeat(32))), "{text}");
        assert!(text.contains("scx_slo_map_bytes{map=\"target_stats\"} 32824\n") && text.contains("scx_slo_target_slots 32\n"), "{text}");
    }
}
