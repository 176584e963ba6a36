// SPDX-License-Identifier: GPL-2.0-only
//! Enforce mode: opens, configures, loads and attaches scx_slo, writes its
//! maps, reads its statistics and exit info, and detaches on drop.

use std::mem::MaybeUninit;

use crate::error::{Context, Result};
use libbpf_rs::{MapCore, MapFlags, OpenObject};
use scx_slo_model::{Config, SwitchMode};

use crate::intf;
use crate::map_memory;
use crate::maps::{self, MapTarget, TargetStats};
use crate::skel::BpfSkel;
use crate::topology::Topology;

/// The name the kernel shows in /sys/kernel/sched_ext/root/ops.
pub const OPS_NAME: &str = "scx_slo";

/// Load-time settings: everything that becomes rodata or struct_ops flags.
#[derive(Clone, Debug)]
pub struct LoadParams {
    /// From the config's `scheduler`, `numa` and `early_warning` sections.
    pub config: Config,
    /// Machine shape.
    pub topology: Topology,
    /// Slots of the per-target maps (`scx_slo_model::target_capacity`).
    pub target_capacity: u32,
}

pub use scx_slo_api::host::ExitInfo;

/// The kernel's `enum scx_exit_kind` values, their names, and whether the
/// kernel ejected the scheduler (rather than the daemon unloading it). The
/// one list of them: the exit report and the daemon's exit counters (each
/// ejection kind exported from 0) both read it.
const EXIT_KINDS: [(i32, &str, bool); 9] = [
    (0, "none", false),
    (1, "done", false),
    (64, "unreg", false),
    (65, "unreg_bpf", true),
    (66, "unreg_kern", true),
    (67, "sysrq", true),
    (1024, "error", true),
    (1025, "error_bpf", true),
    (1026, "error_stall", true),
];

/// The name of an exit kind the kernel reports; "unknown" for any other.
fn exit_kind_name(kind: i32) -> &'static str {
    EXIT_KINDS.iter().find(|(k, _, _)| *k == kind).map_or("unknown", |(_, name, _)| name)
}

/// The exit kinds that mean the kernel ejected the scheduler, and
/// "unknown" (a kind this list does not know is counted as one).
pub fn ejection_kinds() -> impl Iterator<Item = &'static str> {
    EXIT_KINDS.iter().filter(|(_, _, ejected)| *ejected).map(|(_, name, _)| *name).chain(["unknown"])
}

fn c_string(bytes: &[std::os::raw::c_char]) -> String {
    let bytes: Vec<u8> = bytes.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The loaded scx_slo scheduler.
pub struct Scheduler<'obj> {
    skel: BpfSkel<'obj>,
    link: Option<libbpf_rs::Link>,
    /// cgroup ids currently in `cgroup_targets`, to delete stale ones.
    mapped_cgroups: Vec<u64>,
}

impl<'obj> Scheduler<'obj> {
    /// Opens the object, fills rodata and struct_ops flags, and loads it
    /// (the verifier runs here). Not yet attached.
    pub fn load(open_object: &'obj mut MaybeUninit<OpenObject>, params: &LoadParams) -> Result<Self> {
        let mut skel = scx_loader::open(open_object).context("opening the scx_slo BPF object")?;

        let cfg = &params.config;
        let rodata = skel
            .maps
            .rodata_data
            .as_mut()
            .context("the scx_slo object has no .rodata section")?;
        rodata.slice_max_ns = cfg.scheduler.slice_max.as_ns();
        rodata.slice_min_ns = cfg.scheduler.slice_min.as_ns();
        rodata.max_wait_ns = cfg.scheduler.max_wait.as_ns();
        rodata.numa_migration_threshold = cfg.numa.migration_threshold;
        rodata.slack_warn_ns = cfg.early_warning.slack_threshold.as_ns();
        rodata.warn_interval_ns = cfg.early_warning.min_interval.as_ns();
        rodata.switch_partial = cfg.switch == SwitchMode::Partial;
        rodata.nr_nodes = params.topology.nr_nodes;
        rodata.nr_cpus = params.topology.nr_cpus;
        for (cpu, node) in params.topology.cpu_to_node.iter().enumerate() {
            if let Some(slot) = rodata.cpu_to_node.get_mut(cpu) {
                *slot = *node;
            }
        }
        let (node_cpus, node_start) = params.topology.node_cpus();
        for (slot, cpu) in rodata.node_cpus.iter_mut().zip(node_cpus) {
            *slot = cpu;
        }
        for (slot, start) in rodata.node_cpu_start.iter_mut().zip(node_start) {
            *slot = start;
        }

        let ops = skel.struct_ops.slo_ops_mut();
        // scx_ops_open! appends a build suffix to the name; operators and
        // tests read /sys/kernel/sched_ext/root/ops, so keep it "scx_slo"
        // (the version is in the daemon's status).
        ops.name.fill(0);
        for (dst, src) in ops.name.iter_mut().zip(OPS_NAME.bytes()) {
            *dst = src as _;
        }
        ops.flags = match cfg.switch {
            SwitchMode::Partial => *scx_utils::compat::SCX_OPS_SWITCH_PARTIAL,
            SwitchMode::All => 0,
        };

        let maps = &mut skel.maps;
        map_memory::size_target_maps(
            &mut [&mut maps.target_cfg, &mut maps.target_stats, &mut maps.budget_state, &mut maps.target_vtime, &mut maps.cgroup_targets],
            params.target_capacity,
        )?;

        let skel = scx_loader::load(skel).context("loading scx_slo (BPF verifier)")?;
        Ok(Scheduler { skel, link: None, mapped_cgroups: Vec::new() })
    }

    /// Attaches the struct_ops: from here on the kernel schedules with scx_slo.
    pub fn attach(&mut self) -> Result<()> {
        let link = scx_loader::attach(&mut self.skel).context("attaching scx_slo")?;
        self.link = Some(link);
        Ok(())
    }

    /// Writes a whole target set: policies first, then the cgroup map, then
    /// stale cgroups are removed and the generation is bumped so every task
    /// re-resolves. Stats of re-used indices are zeroed.
    pub fn apply(&mut self, targets: &[MapTarget]) -> Result<()> {
        let maps = &self.skel.maps;
        maps::write_targets(&maps.target_cfg, &maps.target_stats, &maps.cgroup_targets, targets, &mut self.mapped_cgroups)?;
        let zero_budget = vec![0u8; std::mem::size_of::<intf::slo_budget_state>()];
        for t in targets {
            maps.budget_state
                .update(&t.index.to_ne_bytes(), &zero_budget, MapFlags::ANY)
                .with_context(|| format!("resetting budget_state[{}]", t.index))?;
            // A slot given to a new target starts its shared virtual time
            // from zero, which the scheduler raises to the node's clock
            // less one slice at the target's first wakeup: a sleeper's
            // credit, not another target's history. A target that keeps
            // its slot keeps its clock: reloads, SetBudget and every
            // adaptive step apply, and zeroing there would forgive a
            // target's lead each time.
            if t.fresh {
                maps.target_vtime
                    .update(&t.index.to_ne_bytes(), &0u64.to_ne_bytes(), MapFlags::ANY)
                    .with_context(|| format!("resetting target_vtime[{}]", t.index))?;
            }
        }

        // Roll periods twice per shortest period, but not more than once per ms.
        let shortest = targets.iter().map(|t| t.cfg.period_ns).filter(|p| *p > 0).min();
        let bss = self.skel.maps.bss_data.as_mut().context("the scx_slo object has no .bss")?;
        bss.nr_targets = targets.iter().map(|t| t.index + 1).max().unwrap_or(0);
        bss.nr_waiting_latency_targets = targets
            .iter()
            .filter(|t| t.cfg.class == intf::slo_class_SLO_CLASS_LATENCY as u8 && t.cfg.preempt == intf::slo_preempt_SLO_PREEMPT_NEVER as u8)
            .count() as u32;
        bss.cfg_gen = bss.cfg_gen.wrapping_add(1);
        let data = self.skel.maps.data_data.as_mut().context("the scx_slo object has no .data")?;
        let (default, min) = (u64::from(intf::slo_consts_SLO_LEND_INTERVAL_NS), u64::from(intf::slo_consts_SLO_LEND_INTERVAL_MIN_NS));
        data.lend_interval_ns = shortest.map_or(default, |p| (p / 2).max(min));
        Ok(())
    }

    /// A target's statistics summed over CPUs.
    pub fn target_stats(&self, index: u32) -> Result<TargetStats> {
        maps::read_target_stats(&self.skel.maps.target_stats, index)
    }

    /// Target slots the maps were sized for at load.
    pub fn target_capacity(&self) -> u32 {
        self.skel.maps.target_cfg.max_entries()
    }

    /// Every map [`map_memory::rule`] names, with the kernel's count of it.
    pub fn map_memory(&self) -> Result<Vec<map_memory::MapMemory>> {
        let m = &self.skel.maps;
        [
            map_memory::loaded(&m.target_stats),
            map_memory::loaded(&m.target_cfg),
            map_memory::loaded(&m.budget_state),
            map_memory::loaded(&m.target_vtime),
            map_memory::loaded(&m.cgroup_targets),
            map_memory::loaded(&m.global_stats),
            map_memory::loaded(&m.cpu_ctxs),
            map_memory::loaded(&m.node_ctxs),
            map_memory::loaded(&m.events),
        ]
        .into_iter()
        .collect()
    }

    /// Whole-scheduler counters by name, summed over CPUs, then
    /// `max_wait_ns` (the longest runnable wait of any task, the maximum over
    /// CPUs) and `max_wait_pid` (the tid that waited it).
    pub fn global_stats(&self) -> Result<Vec<(&'static str, u64)>> {
        let parsed: Vec<intf::slo_global_stats> = maps::read_percpu(&self.skel.maps.global_stats, "global_stats")?;
        let mut out: Vec<(&'static str, u64)> = maps::GlobalCounter::ALL
            .iter()
            .map(|c| (c.name(), parsed.iter().map(|s| s.cnt[c.index()]).sum()))
            .collect();
        let longest = parsed.iter().max_by_key(|s| s.max_wait_ns);
        out.push(("max_wait_ns", longest.map_or(0, |s| s.max_wait_ns)));
        out.push(("max_wait_pid", longest.map_or(0, |s| s.max_wait_pid)));
        Ok(out)
    }

    /// The exit info once the scheduler has exited (ejected, unloaded, error).
    pub fn exit_info(&self) -> Option<ExitInfo> {
        let data = self.skel.maps.data_data.as_ref()?;
        // SAFETY: the .data section is mmapped and written by BPF concurrently;
        // a volatile read of the aligned i32 sees the latest kind.
        let kind = unsafe { std::ptr::read_volatile(&data.uei.kind) };
        if kind == 0 {
            return None;
        }
        Some(ExitInfo {
            kind,
            kind_name: exit_kind_name(kind).to_string(),
            exit_code: data.uei.exit_code,
            reason: c_string(&data.uei.reason),
            msg: c_string(&data.uei.msg),
        })
    }

    /// An owned handle on the `events` ring buffer, for a reader thread.
    pub fn events_map(&self) -> Result<crate::events::EventsMap> {
        libbpf_rs::MapHandle::try_from(&self.skel.maps.events)
            .map(crate::events::EventsMap)
            .context("opening the events ring buffer")
    }

    /// Detaches the struct_ops; the kernel returns every task to the
    /// default scheduler. Idempotent.
    pub fn detach(&mut self) {
        self.link.take();
    }
}

impl Drop for Scheduler<'_> {
    fn drop(&mut self) {
        self.detach();
    }
}

/// scx_utils' loader macros call anyhow's `context` on libbpf's results
/// themselves: they expand here, where this crate's [`crate::error::Context`]
/// is not in scope to make those calls ambiguous.
mod scx_loader {
    use std::mem::MaybeUninit;

    use libbpf_rs::OpenObject;
    use scx_utils::{scx_ops_attach, scx_ops_load, scx_ops_open};

    use crate::skel::{BpfSkel, BpfSkelBuilder, OpenBpfSkel};

    pub(super) fn open(open_object: &mut MaybeUninit<OpenObject>) -> anyhow::Result<OpenBpfSkel<'_>> {
        let builder = BpfSkelBuilder::default();
        let open_opts: Option<libbpf_rs::libbpf_sys::bpf_object_open_opts> = None;
        scx_ops_open!(builder, open_object, slo_ops, open_opts)
    }

    pub(super) fn load(mut skel: OpenBpfSkel<'_>) -> anyhow::Result<BpfSkel<'_>> {
        scx_ops_load!(skel, slo_ops, uei)
    }

    pub(super) fn attach(skel: &mut BpfSkel<'_>) -> anyhow::Result<libbpf_rs::Link> {
        scx_ops_attach!(skel, slo_ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_kinds_are_named_once_and_only_the_kernels_are_ejections() {
        assert_eq!((exit_kind_name(1026), exit_kind_name(64), exit_kind_name(5)), ("error_stall", "unreg", "unknown"));
        let ejections: Vec<&str> = ejection_kinds().collect();
        assert_eq!(ejections, ["unreg_bpf", "unreg_kern", "sysrq", "error", "error_bpf", "error_stall", "unknown"]);
    }
}
