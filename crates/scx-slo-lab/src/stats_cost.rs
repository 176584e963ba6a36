// SPDX-License-Identifier: GPL-2.0-only
//! What the observe probes cost per run with the kernel's BPF statistics on
//! and off (docs/observe.md). bpf_stats can only count the probes while it is on,
//! and being on costs every run two clock reads, so the cost with it off is
//! measured from the outside: two threads pinned to one CPU ping-pong a
//! byte through pipes (each round trip: two wakeups and two switches, the
//! probes' three tracepoints), timed in blocks, alternately with the probes
//! detached, attached with the statistics off, and attached with them on.
//! The three variants of a block run back to back, so the median over
//! blocks of their differences is the probes' cost and the statistics' cost
//! per round trip, the host's drift between blocks cancelling out; the
//! statistics' own run count gives the probe runs per trip.
//! The probes watch no cgroup (the common case: the host's other tasks).

use std::io::{Read, Write};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// The result, ns.
#[derive(Debug, Serialize)]
pub struct StatsCost {
    /// Blocks per variant.
    pub blocks: usize,
    /// Round trips per block.
    pub trips: usize,
    /// Median ns per round trip: probes detached.
    pub trip_detached_ns: f64,
    /// Attached, statistics off (the daemon 18 s in 20).
    pub trip_off_ns: f64,
    /// Attached, statistics on.
    pub trip_on_ns: f64,
    /// Probe runs per round trip (counted with the statistics on).
    pub runs_per_trip: f64,
    /// The probes' cost per run as the kernel counts it (statistics on).
    pub counted_ns_per_run: f64,
    /// Per run, statistics off: the median over blocks of (off - detached)
    /// / runs.
    pub probe_ns_per_run_off: f64,
    /// Per run, statistics on: likewise (on - detached) / runs.
    pub probe_ns_per_run_on: f64,
    /// What the statistics add per run: likewise (on - off) / runs.
    pub stats_ns_per_run: f64,
}

fn pin_to_cpu0() -> Result<()> {
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A pinned partner that echoes every byte; ends when its input closes.
struct Partner {
    to: std::fs::File,
    from: std::fs::File,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn pipe() -> Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills two fds we then own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors owned by nobody else.
    Ok(unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) })
}

impl Partner {
    fn start() -> Result<Partner> {
        let (mut a_read, a_write) = pipe()?;
        let (b_read, mut b_write) = pipe()?;
        let thread = std::thread::spawn(move || {
            if pin_to_cpu0().is_err() {
                return;
            }
            let mut byte = [0u8; 1];
            while a_read.read_exact(&mut byte).is_ok() {
                if b_write.write_all(&byte).is_err() {
                    return;
                }
            }
        });
        Ok(Partner { to: a_write, from: b_read, thread: Some(thread) })
    }

    /// ns per round trip over `trips`.
    fn time(&mut self, trips: usize) -> Result<f64> {
        let mut byte = [1u8; 1];
        let start = Instant::now();
        for _ in 0..trips {
            self.to.write_all(&byte)?;
            self.from.read_exact(&mut byte)?;
        }
        Ok(start.elapsed().as_nanos() as f64 / trips as f64)
    }
}

impl Drop for Partner {
    fn drop(&mut self) {
        // Closing our end ends the partner's loop.
        let (_, w) = pipe().expect("pipe");
        self.to = w;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the measurement: `blocks` blocks of `trips` round trips per variant.
pub fn run(blocks: usize, trips: usize) -> Result<StatsCost> {
    pin_to_cpu0()?;
    let mut object = std::mem::MaybeUninit::uninit();
    let mut obs = scx_slo_bpf::Observer::load(&mut object, scx_slo_model::MIN_TARGET_CAPACITY as u32).context("loading the observe probes")?;
    if !obs.measures_cost() {
        bail!("the kernel refused BPF_ENABLE_STATS: the probes' runs cannot be counted");
    }
    let mut partner = Partner::start()?;
    partner.time(trips / 10 + 1)?; // warm-up
    let (mut detached, mut off, mut on, mut runs, mut counted) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for b in 0..blocks {
        // Rotate the order so a drift favours no variant.
        for v in (0..3).map(|i| (i + b) % 3) {
            match v {
                0 => {
                    obs.detach();
                    detached.push(partner.time(trips)?);
                }
                1 => {
                    obs.attach()?;
                    obs.set_measuring(false)?;
                    off.push(partner.time(trips)?);
                }
                _ => {
                    obs.attach()?;
                    obs.set_measuring(true)?;
                    let before = obs.cost()?;
                    on.push(partner.time(trips)?);
                    let after = obs.cost()?;
                    obs.set_measuring(false)?;
                    let n = after.run_count.saturating_sub(before.run_count) as f64;
                    runs.push(n / trips as f64);
                    counted.push(after.run_time_ns.saturating_sub(before.run_time_ns) as f64 / n.max(1.0));
                }
            }
        }
    }
    obs.detach();
    let runs_per_trip = median(runs.clone());
    // The differences are taken inside each block (its three variants ran
    // back to back) and then their median: the host's drift between blocks
    // cancels out.
    let per_block = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| (x - y) / runs_per_trip).collect());
    Ok(StatsCost {
        blocks,
        trips,
        trip_detached_ns: median(detached.clone()),
        trip_off_ns: median(off.clone()),
        trip_on_ns: median(on.clone()),
        runs_per_trip,
        counted_ns_per_run: median(counted),
        probe_ns_per_run_off: per_block(&off, &detached),
        probe_ns_per_run_on: per_block(&on, &detached),
        stats_ns_per_run: per_block(&on, &off),
    })
}
