// SPDX-License-Identifier: GPL-2.0-only
//! The scheduler's own part of a latency probe's wake delay, measured in the
//! kernel (bench and demo), and the probe protocol that bounds it.

use std::process::Child;

use anyhow::{Context, Result};

use crate::harness::Env;

/// The latency probes' deadline, for misses counted from the wakeup.
pub(crate) const DEADLINE_NS: u64 = 5_000_000;

/// The latency units' wakeup-to-run delays and response times, measured in
/// the kernel the same way under every scheduler: scx-slo's observe probes
/// (raw tracepoints sched_waking and sched_switch, real clock) with raw
/// samples on. The probe's own "wake" (timer expiry → running) also holds
/// the timer interrupt's lateness, which under TCG reaches milliseconds at
/// p99 whatever the scheduler (docs/benchmarks.md); this is the scheduler's
/// part alone.
pub(crate) struct WakeSampler<'obj> {
    observer: scx_slo_bpf::Observer<'obj>,
}

impl<'obj> WakeSampler<'obj> {
    /// Loads and attaches the probes for `cgroups` (relative to the cgroup
    /// root), target index = position.
    pub(crate) fn start(env: &Env, cgroups: &[String], object: &'obj mut std::mem::MaybeUninit<libbpf_rs::OpenObject>) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let capacity = scx_slo_model::target_capacity(cgroups.len()) as u32;
        let mut observer = scx_slo_bpf::Observer::load(object, capacity)?;
        let cfg = scx_slo_bpf::intf::slo_target_cfg {
            runtime_ns: 1_000_000,
            period_ns: 10_000_000,
            deadline_ns: DEADLINE_NS,
            weight: 100,
            priority: 0,
            class: scx_slo_bpf::intf::slo_class_SLO_CLASS_LATENCY as u8,
            preempt: 0,
        };
        let targets = cgroups
            .iter()
            .enumerate()
            .map(|(i, cg)| {
                let dir = env.cg(cg);
                let ino = std::fs::metadata(&dir).with_context(|| format!("{}", dir.display()))?.ino();
                Ok(scx_slo_bpf::MapTarget { index: i as u32, cgroup_id: ino, cfg, fresh: true })
            })
            .collect::<Result<Vec<_>>>()?;
        observer.apply(&targets)?;
        observer.set_emit_samples(true)?;
        observer.attach()?;
        Ok(WakeSampler { observer })
    }

    /// Queue delays and response times (ns) since the last call, and the
    /// samples lost so far to a full ring buffer.
    pub(crate) fn take(&self) -> Result<(Vec<u64>, Vec<u64>, u64)> {
        let samples = self.observer.drain_samples()?;
        let of = |k| samples.iter().filter(|s| s.kind == k).map(|s| s.ns).collect::<Vec<_>>();
        let dropped = self.observer.counters().map(|c| c.samples_dropped).unwrap_or(0);
        Ok((of(scx_slo_bpf::SampleKind::Queue), of(scx_slo_bpf::SampleKind::Response), dropped))
    }
}

/// The kernel-side samples end where the probes' measurements end: each
/// probe says `measured` and blocks on stdin (which closes its last job)
/// until the samples are taken; what it does after (writing its result,
/// exiting) is not a request. Returns the samples; the probes have exited.
pub(crate) fn finish_held_probes(probes: &mut [Child], sampler: &WakeSampler) -> Result<(Vec<u64>, Vec<u64>, u64)> {
    for p in probes.iter_mut() {
        let mut line = String::new();
        if let Some(out) = p.stdout.take() {
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)?;
        }
        anyhow::ensure!(line.trim() == "measured", "a latency probe ended early (said {line:?})");
    }
    let samples = sampler.take()?;
    for p in probes.iter_mut() {
        drop(p.stdin.take());
        p.wait()?;
    }
    Ok(samples)
}
