// SPDX-License-Identifier: GPL-2.0-only
//! Typed views of the structs in bpf/intf.h: the one place where model
//! durations become `_ns` map fields, and where map bytes become Rust values.



use crate::error::{Context, Result};
use libbpf_rs::{MapCore, MapFlags};
use scx_slo_model::{Class, Preemption, Target};

use crate::intf;

/// Writes a whole target set into the maps both BPF objects share by
/// layout: policies first (and zeroed stats for every written index), then
/// the cgroup map, then stale cgroups out. `mapped` is the cgroup set the map
/// held before and holds after.
pub(crate) fn write_targets(
    cfg_map: &impl MapCore,
    stats_map: &impl MapCore,
    cgroup_map: &impl MapCore,
    targets: &[MapTarget],
    mapped: &mut Vec<u64>,
) -> Result<()> {
    // Every check before the first write: a refused set leaves the maps
    // as they were. The maps hold the slots they were sized for at load.
    let max = cfg_map.max_entries();
    crate::ensure!(
        targets.len() <= max as usize,
        "{} targets do not fit the {max} slots the maps were sized for when they loaded",
        targets.len()
    );
    if let Some(t) = targets.iter().find(|t| t.index >= max) {
        return Err(crate::error::Error::Invalid(format!(
            "target slot {} is past the {max} slots the maps were sized for when they loaded",
            t.index
        )));
    }
    let cpus = libbpf_rs::num_possible_cpus().context("counting possible CPUs")?;
    let zero_stats = vec![vec![0u8; std::mem::size_of::<intf::slo_target_stats>()]; cpus];
    for t in targets {
        let key = t.index.to_ne_bytes();
        cfg_map
            .update(&key, pod_bytes(&t.cfg), MapFlags::ANY)
            .with_context(|| format!("writing target_cfg[{}]", t.index))?;
        if t.fresh {
            stats_map
                .update_percpu(&key, &zero_stats, MapFlags::ANY)
                .with_context(|| format!("zeroing target_stats[{}]", t.index))?;
        }
    }
    let mut now_mapped = Vec::with_capacity(targets.len());
    for t in targets {
        cgroup_map
            .update(&t.cgroup_id.to_ne_bytes(), &t.index.to_ne_bytes(), MapFlags::ANY)
            .with_context(|| format!("writing cgroup_targets[{}]", t.cgroup_id))?;
        now_mapped.push(t.cgroup_id);
    }
    for stale in mapped.iter().filter(|id| !now_mapped.contains(id)) {
        cgroup_map
            .delete(&stale.to_ne_bytes())
            .with_context(|| format!("removing stale cgroup_targets[{stale}]"))?;
    }
    *mapped = now_mapped;
    Ok(())
}

/// The per-CPU copies of a one-entry per-CPU array of intf.h structs.
pub(crate) fn read_percpu<T: Copy>(map: &impl MapCore, name: &str) -> Result<Vec<T>> {
    let per_cpu = map
        .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
        .with_context(|| format!("reading {name}"))?
        .unwrap_or_default();
    Ok(per_cpu.iter().filter_map(|b| pod_from_bytes(b)).collect())
}

/// A target's statistics from a `target_stats` map, summed over CPUs.
pub(crate) fn read_target_stats(stats_map: &impl MapCore, index: u32) -> Result<TargetStats> {
    let per_cpu = stats_map
        .lookup_percpu(&index.to_ne_bytes(), MapFlags::ANY)
        .with_context(|| format!("reading target_stats[{index}]"))?
        .unwrap_or_default();
    let parsed: Vec<intf::slo_target_stats> = per_cpu.iter().filter_map(|b| pod_from_bytes(b)).collect();
    Ok(sum_target_stats(&parsed))
}

/// One target as the maps hold it.
#[derive(Clone, Debug)]
pub struct MapTarget {
    /// Index into `target_cfg`/`target_stats`.
    pub index: u32,
    /// cgroup v2 id (the directory's inode number).
    pub cgroup_id: u64,
    /// Policy.
    pub cfg: intf::slo_target_cfg,
    /// The slot is new to this target: zero its counters. A target keeps its
    /// slot, and its counters keep counting, across applies (reloads,
    /// SetBudget, a unit restart that changes its cgroup), so Prometheus
    /// never sees a counter go backwards while the daemon runs.
    pub fresh: bool,
}

/// `struct slo_target_cfg` from a validated target.
pub fn target_cfg(target: &Target) -> intf::slo_target_cfg {
    let (runtime_ns, period_ns) = target
        .budget
        .map_or((0, 0), |b| (b.runtime.as_ns(), b.period.as_ns()));
    intf::slo_target_cfg {
        runtime_ns,
        period_ns,
        deadline_ns: target.deadline.map_or(0, |d| d.as_ns()),
        weight: target.weight,
        priority: target.priority,
        class: match target.class {
            Class::Latency => intf::slo_class_SLO_CLASS_LATENCY as u8,
            Class::Batch => intf::slo_class_SLO_CLASS_BATCH as u8,
        },
        preempt: match target.preemption {
            Preemption::Never => intf::slo_preempt_SLO_PREEMPT_NEVER as u8,
            Preemption::LowerPriority => intf::slo_preempt_SLO_PREEMPT_LOWER_PRIO as u8,
        },
    }
}

/// The bytes of a plain-old-data struct from intf.h.
///
/// Only for the bindgen structs of intf.h, whose layouts have no padding
/// (intf.h asserts their sizes), so every byte is initialised.
pub(crate) fn pod_bytes<T: Copy>(value: &T) -> &[u8] {
    // SAFETY: T is Copy plain data without padding (see above); the slice
    // borrows `value` and has exactly its size.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// A struct from intf.h read out of map bytes; `None` when too short.
pub(crate) fn pod_from_bytes<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: the length was checked; intf.h structs are valid for any bit
    // pattern (integers and arrays of integers); read_unaligned needs no alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub use scx_slo_api::counters::{Counter, GlobalCounter};
pub use scx_slo_api::TargetStats;

/// Sums a target's per-CPU copies.
pub fn sum_target_stats(per_cpu: &[intf::slo_target_stats]) -> TargetStats {
    let mut stats = TargetStats {
        counters: Default::default(),
        rq_delay_hist: vec![0; intf::slo_consts_SLO_HIST_BUCKETS as usize],
        slack_hist: vec![0; intf::slo_consts_SLO_HIST_BUCKETS as usize],
        max_wait_ns: 0,
    };
    for cpu in per_cpu {
        stats.max_wait_ns = stats.max_wait_ns.max(cpu.max_wait_ns);
        // The scheduler counts a job before its miss, so misses <= jobs in
        // each CPU's copy; a copy read between the two adds could show
        // one more miss than jobs, and no reader may see misses > jobs.
        let jobs = cpu.cnt[Counter::Jobs.index()];
        for c in Counter::ALL {
            let v = cpu.cnt[c.index()];
            let v = if c == Counter::DeadlineMisses { v.min(jobs) } else { v };
            stats.counters.set(c, stats.counters.get(c).wrapping_add(v));
        }
        for (sum, v) in stats.rq_delay_hist.iter_mut().zip(cpu.rq_delay_hist.iter()) {
            *sum = sum.wrapping_add(*v);
        }
        for (sum, v) in stats.slack_hist.iter_mut().zip(cpu.slack_hist.iter()) {
            *sum = sum.wrapping_add(*v);
        }
    }
    stats
}

// The counter tables are intf.h's enums in order: one index per variant
// into the per-CPU `cnt` arrays.
const _: () = assert!(scx_slo_api::counters::NR_COUNTERS == intf::slo_tstat_id_NR_SLO_TSTATS as usize);
const _: () = assert!(scx_slo_api::counters::NR_GLOBAL_COUNTERS == intf::slo_gstat_id_NR_SLO_GSTATS as usize);

#[cfg(test)]
mod tests {
    use super::*;
    use scx_slo_model::load_str;

    #[test]
    fn limits_agree_with_the_model() {
        assert_eq!(intf::slo_consts_SLO_MAX_TARGETS as usize, scx_slo_model::MAX_TARGETS);
        // The constants the model and the scheduler share (intf.h is the
        // scheduler's side; a change on one side only fails here).
        assert_eq!(intf::slo_consts_SLO_DEFAULT_WEIGHT, scx_slo_model::DEFAULT_WEIGHT);
        assert_eq!(u64::from(intf::slo_consts_SLO_MIN_SLICE_NS), scx_slo_model::limits::SLICE_RANGE.0.as_ns());
        let watchdog = scx_slo_model::Duration::from_ms(u64::from(intf::slo_consts_SLO_WATCHDOG_TIMEOUT_MS));
        assert!(scx_slo_model::limits::MAX_WAIT_RANGE.1 < watchdog, "max_wait's bound must stay under the watchdog");
        assert_eq!(std::mem::size_of::<intf::slo_target_cfg>(), 32);
        // The log2 histograms' buckets, which the model reads.
        assert_eq!(intf::slo_consts_SLO_HIST_SHIFT, scx_slo_model::histogram::SHIFT);
        assert_eq!(intf::slo_consts_SLO_HIST_BUCKETS as usize, scx_slo_model::histogram::BUCKETS);
        let floor = scx_slo_model::validate::limits::SLICE_RANGE.0;
        assert_eq!(u64::from(intf::slo_consts_SLO_MIN_SLICE_NS), floor.as_ns(), "the BPF slice floor is the model's");
    }

    /// The enumerators of `enum <name>` in bpf/intf.h, in order, without
    /// the `NR_` sentinel.
    fn intf_enum(name: &str) -> Vec<String> {
        let h = include_str!("../../../bpf/intf.h");
        let body = &h[h.find(&format!("enum {name} {{")).expect("the enum") ..];
        let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
        body.lines()
            .filter_map(|l| l.trim().split(',').next().filter(|w| !w.is_empty() && !w.starts_with("/*")).map(str::to_string))
            .filter(|w| !w.starts_with("NR_"))
            .collect()
    }

    #[test]
    fn the_counter_tables_are_intf_h_in_order() {
        let target: Vec<String> = Counter::ALL.iter().map(|c| format!("SLO_TSTAT_{}", c.name().to_uppercase())).collect();
        assert_eq!(intf_enum("slo_tstat_id"), target);
        let global: Vec<String> = GlobalCounter::ALL.iter().map(|c| format!("SLO_GSTAT_{}", c.name().to_uppercase())).collect();
        assert_eq!(intf_enum("slo_gstat_id"), global);
        assert_eq!(Counter::Jobs.index(), intf::slo_tstat_id_SLO_TSTAT_JOBS as usize);
        assert_eq!(GlobalCounter::SliceClamps.index(), intf::slo_gstat_id_SLO_GSTAT_SLICE_CLAMPS as usize);
    }

    #[test]
    fn converts_durations_to_ns_once() {
        let config = load_str(include_str!("../../../examples/enforce.json"), None).unwrap();
        let api = config.targets.iter().find(|t| t.key == "api.service").unwrap();
        let cfg = target_cfg(api);
        assert_eq!(cfg.runtime_ns, 3_000_000);
        assert_eq!(cfg.period_ns, 10_000_000);
        assert_eq!(cfg.deadline_ns, 5_000_000);
        assert_eq!(cfg.priority, 800);
        assert_eq!(cfg.class, intf::slo_class_SLO_CLASS_LATENCY as u8);
        let batch = config.targets.iter().find(|t| t.key == "batch.slice").unwrap();
        let cfg = target_cfg(batch);
        assert_eq!((cfg.runtime_ns, cfg.class, cfg.weight), (0, 0, 50));
        let back: intf::slo_target_cfg = pod_from_bytes(pod_bytes(&cfg)).unwrap();
        assert_eq!(back.weight, 50);
    }

    #[test]
    fn sums_cpus_and_reads_quantiles() {
        let zero = vec![0u8; std::mem::size_of::<intf::slo_target_stats>()];
        let mut a: intf::slo_target_stats = pod_from_bytes(&zero).unwrap();
        let mut b = a;
        a.cnt[intf::slo_tstat_id_SLO_TSTAT_WAKEUPS as usize] = 3;
        b.cnt[intf::slo_tstat_id_SLO_TSTAT_WAKEUPS as usize] = 4;
        a.rq_delay_hist[0] = 98;
        b.rq_delay_hist[5] = 2;
        a.max_wait_ns = 5_000;
        b.max_wait_ns = 7_000;
        let s = sum_target_stats(&[a, b]);
        assert_eq!(s.get(Counter::Wakeups), 7);
        assert_eq!(s.max_wait_ns, 7_000, "a maximum over CPUs, not a sum");
        let le = scx_slo_model::histogram::log2_quantile_le_ns;
        assert_eq!(le(&s.rq_delay_hist, 0.5), Some(1024));
        assert_eq!(le(&s.rq_delay_hist, 0.99), Some(32 * 1024));
    }
}
