// SPDX-License-Identifier: GPL-2.0-only
//! Observe mode: loads bpf/observe.bpf.c (raw tracepoints only), writes its
//! target maps, reads the same per-target statistics enforce mode keeps, and
//! measures the probes' own cost so the daemon can shed load by sampling.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, OpenObject};

use crate::intf;
use crate::maps::{self, TargetStats};
use crate::observe_skel::{ObserveSkel, ObserveSkelBuilder};
use crate::maps::MapTarget;

/// Cumulative run time of the probes, from the kernel's bpf_stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProbeCost {
    /// Sum of `run_time_ns` over the probe programs.
    pub run_time_ns: u64,
    /// Sum of `run_cnt`.
    pub run_count: u64,
}

/// The probes' own counters (enum slo_ostat_id), summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ObserveCounters {
    /// Wakeups the probe ran for.
    pub wakeups_seen: u64,
    /// Wakeups skipped by sampling.
    pub wakeups_sampled_out: u64,
    /// cgroup-tree walks (verdict cache misses).
    pub cgroup_walks: u64,
    /// Jobs not measured because the job table was full.
    pub jobs_untracked: u64,
    /// Raw samples lost to a full ring buffer.
    pub samples_dropped: u64,
}

/// What a raw sample measured (enum slo_sample_kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SampleKind {
    /// Wakeup → the job's first run.
    Queue,
    /// Wakeup → the task sleeps again.
    Response,
}

/// One raw measurement of a targeted task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// Target index.
    pub target: u32,
    /// What was measured.
    pub kind: SampleKind,
    /// The measurement, ns.
    pub ns: u64,
}

fn parse_sample(bytes: &[u8]) -> Option<Sample> {
    if bytes.len() < std::mem::size_of::<intf::slo_sample>() {
        return None;
    }
    // SAFETY: length checked; slo_sample is plain old data, read unaligned.
    let raw: intf::slo_sample = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let kind = match raw.kind {
        k if k == intf::slo_sample_kind_SLO_SAMPLE_QUEUE => SampleKind::Queue,
        k if k == intf::slo_sample_kind_SLO_SAMPLE_RESPONSE => SampleKind::Response,
        _ => return None,
    };
    Some(Sample { target: raw.target, kind, ns: raw.ns })
}

/// The loaded observe probes.
pub struct Observer<'obj> {
    skel: ObserveSkel<'obj>,
    links: Vec<libbpf_rs::Link>,
    mapped_cgroups: Vec<u64>,
    /// Keeps the kernel's bpf_stats on while we hold it (BPF_ENABLE_STATS):
    /// only during the overhead guard's measurement windows, since while
    /// stats are on every BPF program run on the host pays two clock reads
    /// (about 71 ns per probe run measured on this host, a third of the
    /// probes' cost; docs/observe.md).
    stats_fd: Option<OwnedFd>,
    /// Whether the kernel allowed BPF_ENABLE_STATS when the probes loaded;
    /// without it the cost reads 0.
    can_measure: bool,
}

/// Turns the kernel's bpf_stats on for as long as the returned fd is held.
fn enable_stats() -> std::result::Result<OwnedFd, i32> {
    // SAFETY: plain syscall wrapper; a non-negative return is a new fd we own.
    let fd = unsafe { libbpf_rs::libbpf_sys::bpf_enable_stats(libbpf_rs::libbpf_sys::BPF_STATS_RUN_TIME) };
    // SAFETY: fd >= 0 is a fresh descriptor owned by nobody else.
    if fd >= 0 { Ok(unsafe { OwnedFd::from_raw_fd(fd) }) } else { Err(-fd) }
}

impl<'obj> Observer<'obj> {
    /// Opens and loads the probes (the verifier runs here); not attached.
    /// The per-target maps hold `target_capacity` slots
    /// (`scx_slo_model::target_capacity`).
    pub fn load(open_object: &'obj mut MaybeUninit<OpenObject>, target_capacity: u32) -> Result<Self> {
        let mut open = ObserveSkelBuilder::default().open(open_object).context("opening the observe BPF object")?;
        let maps = &mut open.maps;
        crate::map_memory::size_target_maps(
            &mut [&mut maps.target_cfg, &mut maps.target_stats, &mut maps.cgroup_targets],
            target_capacity,
        )?;
        let skel = open.load().context("loading the observe probes (BPF verifier)")?;
        // Asked once here, and let go at once: stats are on only while the
        // overhead guard measures (`set_measuring`).
        let can_measure = match enable_stats() {
            Ok(_fd) => true,
            Err(errno) => {
                tracing::warn!("the kernel refused BPF_ENABLE_STATS (errno {errno}); probe overhead reads 0");
                false
            }
        };
        Ok(Observer { skel, links: Vec::new(), mapped_cgroups: Vec::new(), stats_fd: None, can_measure })
    }

    /// Turns the kernel's run-time statistics on (a measurement window
    /// begins) or off; idempotent.
    pub fn set_measuring(&mut self, on: bool) -> Result<()> {
        match (on, self.stats_fd.is_some()) {
            (true, false) => {
                let fd = enable_stats().map_err(|errno| crate::error::Error::Invalid(format!("BPF_ENABLE_STATS: errno {errno}")))?;
                self.stats_fd = Some(fd);
            }
            (false, true) => self.stats_fd = None,
            _ => {}
        }
        Ok(())
    }

    /// Whether a measurement window is open (bpf_stats on through us).
    pub fn measuring(&self) -> bool {
        self.stats_fd.is_some()
    }

    /// Attaches the tracepoints: from here the probes measure.
    pub fn attach(&mut self) -> Result<()> {
        if !self.links.is_empty() {
            return Ok(());
        }
        let progs = &self.skel.progs;
        let mut links = Vec::with_capacity(3);
        for (name, prog) in [
            ("sched_waking", &progs.observe_waking),
            ("sched_wakeup_new", &progs.observe_wakeup_new),
            ("sched_switch", &progs.observe_switch),
        ] {
            links.push(prog.attach().with_context(|| format!("attaching the {name} raw tracepoint"))?);
        }
        self.links = links;
        Ok(())
    }

    /// Detaches every probe; idempotent.
    pub fn detach(&mut self) {
        self.links.clear();
    }

    /// Writes a whole target set and makes every cgroup verdict stale.
    pub fn apply(&mut self, targets: &[MapTarget]) -> Result<()> {
        let maps = &self.skel.maps;
        maps::write_targets(&maps.target_cfg, &maps.target_stats, &maps.cgroup_targets, targets, &mut self.mapped_cgroups)?;
        let bss = self.skel.maps.bss_data.as_mut().context("the observe object has no .bss")?;
        bss.cfg_gen = bss.cfg_gen.wrapping_add(1);
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

    /// The per-target maps, with the kernel's count of each.
    pub fn map_memory(&self) -> Result<Vec<crate::map_memory::MapMemory>> {
        let m = &self.skel.maps;
        use crate::map_memory::loaded;
        [loaded(&m.target_stats), loaded(&m.target_cfg), loaded(&m.cgroup_targets)].into_iter().collect()
    }

    /// Measure one wakeup in `n` per CPU (1 = all).
    pub fn set_sample_every(&mut self, n: u32) -> Result<()> {
        let data = self.skel.maps.data_data.as_mut().context("the observe object has no .data")?;
        data.sample_every = n.max(1);
        Ok(())
    }

    /// The current sampling divisor.
    pub fn sample_every(&self) -> u32 {
        self.skel.maps.data_data.as_ref().map_or(1, |d| d.sample_every.max(1))
    }

    /// The probes' own counters.
    pub fn counters(&self) -> Result<ObserveCounters> {
        let parsed: Vec<intf::slo_observe_stats> = maps::read_percpu(&self.skel.maps.observe_stats, "observe_stats")?;
        let sum = |id: u32| parsed.iter().map(|s| s.cnt[id as usize]).sum();
        Ok(ObserveCounters {
            wakeups_seen: sum(intf::slo_ostat_id_SLO_OSTAT_WAKEUPS_SEEN),
            wakeups_sampled_out: sum(intf::slo_ostat_id_SLO_OSTAT_WAKEUPS_SAMPLED_OUT),
            cgroup_walks: sum(intf::slo_ostat_id_SLO_OSTAT_CGROUP_WALKS),
            jobs_untracked: sum(intf::slo_ostat_id_SLO_OSTAT_JOBS_UNTRACKED),
            samples_dropped: sum(intf::slo_ostat_id_SLO_OSTAT_SAMPLES_DROPPED),
        })
    }

    /// Raw samples on or off (the benchmark lab; the daemon keeps them off).
    /// The ring buffer holds 1 MiB (65,536 samples): drain it before it fills.
    pub fn set_emit_samples(&mut self, on: bool) -> Result<()> {
        let bss = self.skel.maps.bss_data.as_mut().context("the observe object has no .bss")?;
        bss.emit_samples = u32::from(on);
        Ok(())
    }

    /// Takes every raw sample queued so far.
    pub fn drain_samples(&self) -> Result<Vec<Sample>> {
        let out = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let sink = out.clone();
        let mut builder = libbpf_rs::RingBufferBuilder::new();
        builder
            .add(&self.skel.maps.samples, move |bytes: &[u8]| {
                if let Some(s) = parse_sample(bytes) {
                    sink.borrow_mut().push(s);
                }
                0
            })
            .context("opening the samples ring buffer")?;
        let ring = builder.build().context("mapping the samples ring buffer")?;
        ring.consume().context("reading the samples ring buffer")?;
        drop(ring);
        Ok(std::rc::Rc::try_unwrap(out).map(|c| c.into_inner()).unwrap_or_default())
    }

    /// Whether the kernel lets the probes' run time be measured.
    pub fn measures_cost(&self) -> bool {
        self.can_measure
    }

    /// The probes' cumulative run time: it grows only while bpf_stats are
    /// on (our measurement windows, or anyone else holding them).
    pub fn cost(&self) -> Result<ProbeCost> {
        let progs = &self.skel.progs;
        let mut total = ProbeCost::default();
        for prog in [&progs.observe_waking, &progs.observe_wakeup_new, &progs.observe_switch] {
            let (ns, cnt) = prog_run_stats(prog.as_fd().as_raw_fd())?;
            total.run_time_ns += ns;
            total.run_count += cnt;
        }
        Ok(total)
    }
}

/// `run_time_ns` and `run_cnt` of one program.
fn prog_run_stats(fd: i32) -> Result<(u64, u64)> {
    let mut info = libbpf_rs::libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: info is a properly sized, zeroed bpf_prog_info; len is its size.
    let rc = unsafe { libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) };
    crate::ensure!(rc == 0, "reading BPF program info: errno {}", -rc);
    Ok((info.run_time_ns, info.run_cnt))
}

impl Drop for Observer<'_> {
    fn drop(&mut self) {
        self.detach();
    }
}
