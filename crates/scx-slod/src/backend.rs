// SPDX-License-Identifier: GPL-2.0-only
//! What the engine needs from a loaded scheduler. The real one is
//! `scx_slo_bpf::Scheduler`; the simulated one keeps maps in memory so the
//! control plane can be tested on any host (`scx-slod --backend simulated`,
//! used by the D-Bus integration tests; never in production).

use scx_slo_bpf::map_memory::MapMemory;
use scx_slo_bpf::{ExitInfo, MapTarget, Observer, ProbeCost, Scheduler, TargetStats};

/// A loaded scheduler, attached or not.
pub trait Backend {
    /// Attaches: from here the kernel (or the simulation) schedules.
    fn attach(&mut self) -> scx_slo_bpf::Result<()>;
    /// Writes a whole target set as one generation.
    fn apply(&mut self, targets: &[MapTarget]) -> scx_slo_bpf::Result<()>;
    /// Detaches; idempotent.
    fn detach(&mut self);
    /// Why it exited, once it has.
    fn exit_info(&self) -> Option<ExitInfo>;
    /// A target's statistics.
    fn target_stats(&self, index: u32) -> scx_slo_bpf::Result<TargetStats>;
    /// Whole-scheduler counters.
    fn global_stats(&self) -> scx_slo_bpf::Result<Vec<(&'static str, u64)>>;
    /// The events ring buffer, when there is one.
    fn events_map(&self) -> Option<scx_slo_bpf::events::EventsMap>;
    /// Target slots the per-target maps were sized for at load.
    fn target_capacity(&self) -> u32;
    /// The maps and the kernel's count of their memory (none simulated).
    fn map_memory(&self) -> scx_slo_bpf::Result<Vec<MapMemory>> {
        Ok(Vec::new())
    }
    /// Whether the probes' run time can be measured (observe probes, with
    /// the kernel's permission for BPF_ENABLE_STATS).
    fn measures_probe_cost(&self) -> bool {
        false
    }
    /// Turns the kernel's BPF run-time statistics on or off (a measurement
    /// window of the overhead guard).
    fn set_cost_measuring(&mut self, _on: bool) -> scx_slo_bpf::Result<()> {
        Ok(())
    }
    /// The probes' cumulative run time, counted while the statistics are
    /// on (observe probes only).
    fn probe_cost(&self) -> Option<ProbeCost> {
        None
    }
    /// Measure one wakeup in `n` (observe probes only).
    fn set_sample_every(&mut self, _n: u32) -> scx_slo_bpf::Result<()> {
        Ok(())
    }
}

impl Backend for Scheduler<'_> {
    fn attach(&mut self) -> scx_slo_bpf::Result<()> {
        Scheduler::attach(self)
    }
    fn apply(&mut self, targets: &[MapTarget]) -> scx_slo_bpf::Result<()> {
        Scheduler::apply(self, targets)
    }
    fn detach(&mut self) {
        Scheduler::detach(self)
    }
    fn exit_info(&self) -> Option<ExitInfo> {
        Scheduler::exit_info(self)
    }
    fn target_stats(&self, index: u32) -> scx_slo_bpf::Result<TargetStats> {
        Scheduler::target_stats(self, index)
    }
    fn global_stats(&self) -> scx_slo_bpf::Result<Vec<(&'static str, u64)>> {
        Scheduler::global_stats(self)
    }
    fn events_map(&self) -> Option<scx_slo_bpf::events::EventsMap> {
        Scheduler::events_map(self).ok()
    }
    fn target_capacity(&self) -> u32 {
        Scheduler::target_capacity(self)
    }
    fn map_memory(&self) -> scx_slo_bpf::Result<Vec<MapMemory>> {
        Scheduler::map_memory(self)
    }
}

impl Backend for Observer<'_> {
    fn attach(&mut self) -> scx_slo_bpf::Result<()> {
        Observer::attach(self)
    }
    fn apply(&mut self, targets: &[MapTarget]) -> scx_slo_bpf::Result<()> {
        Observer::apply(self, targets)
    }
    fn detach(&mut self) {
        Observer::detach(self)
    }
    fn exit_info(&self) -> Option<ExitInfo> {
        // Tracepoint links are not ejected by the kernel.
        None
    }
    fn target_stats(&self, index: u32) -> scx_slo_bpf::Result<TargetStats> {
        Observer::target_stats(self, index)
    }
    fn global_stats(&self) -> scx_slo_bpf::Result<Vec<(&'static str, u64)>> {
        let c = self.counters()?;
        Ok(vec![
            ("wakeups_seen", c.wakeups_seen),
            ("wakeups_sampled_out", c.wakeups_sampled_out),
            ("cgroup_walks", c.cgroup_walks),
            ("jobs_untracked", c.jobs_untracked),
            ("sample_every", u64::from(self.sample_every())),
        ])
    }
    fn events_map(&self) -> Option<scx_slo_bpf::events::EventsMap> {
        None
    }
    fn target_capacity(&self) -> u32 {
        Observer::target_capacity(self)
    }
    fn map_memory(&self) -> scx_slo_bpf::Result<Vec<MapMemory>> {
        Observer::map_memory(self)
    }
    fn measures_probe_cost(&self) -> bool {
        self.measures_cost()
    }
    fn set_cost_measuring(&mut self, on: bool) -> scx_slo_bpf::Result<()> {
        self.set_measuring(on)
    }
    fn probe_cost(&self) -> Option<ProbeCost> {
        if !self.measures_cost() {
            return None;
        }
        self.cost().ok()
    }
    fn set_sample_every(&mut self, n: u32) -> scx_slo_bpf::Result<()> {
        Observer::set_sample_every(self, n)
    }
}

/// In-memory stand-in: records what was applied, never exits by itself.
pub struct Simulated {
    attached: bool,
    applied: Vec<MapTarget>,
    capacity: u32,
}

impl Simulated {
    /// Holds `capacity` target slots, as a loaded scheduler would.
    pub fn new(capacity: u32) -> Self {
        Simulated { attached: false, applied: Vec::new(), capacity }
    }
}

impl Backend for Simulated {
    fn attach(&mut self) -> scx_slo_bpf::Result<()> {
        self.attached = true;
        Ok(())
    }
    fn apply(&mut self, targets: &[MapTarget]) -> scx_slo_bpf::Result<()> {
        let capacity = self.capacity;
        scx_slo_bpf::ensure!(targets.iter().all(|t| t.index < capacity), "a target slot is past the {capacity} slots");
        self.applied = targets.to_vec();
        Ok(())
    }
    fn detach(&mut self) {
        self.attached = false;
    }
    fn exit_info(&self) -> Option<ExitInfo> {
        None
    }
    fn target_stats(&self, index: u32) -> scx_slo_bpf::Result<TargetStats> {
        scx_slo_bpf::ensure!(self.applied.iter().any(|t| t.index == index), "no target at index {index}");
        Ok(scx_slo_bpf::maps::sum_target_stats(&[]))
    }
    fn global_stats(&self) -> scx_slo_bpf::Result<Vec<(&'static str, u64)>> {
        Ok(Vec::new())
    }
    fn events_map(&self) -> Option<scx_slo_bpf::events::EventsMap> {
        None
    }
    fn target_capacity(&self) -> u32 {
        self.capacity
    }
}
