// SPDX-License-Identifier: GPL-2.0-only
//! Workloads: a periodic latency probe, a CPU hog and an idle task. Each can
//! move itself into a cgroup and wait for the SCHED_EXT policy first, so a
//! measurement never mixes schedulers.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

pub use scx_slo_api::host::SCHED_EXT;

fn now_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Monotonic clock, ns.
pub fn mono_ns() -> u64 {
    now_ns(libc::CLOCK_MONOTONIC)
}

fn thread_cpu_ns() -> u64 {
    now_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

pub(crate) fn sleep_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: ts is valid; a null remainder is allowed with TIMER_ABSTIME.
    while unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut()) }
        == libc::EINTR
    {}
}

/// Burns `work` of this thread's CPU time (not wall time), so the work is
/// the same whatever the scheduler does.
pub(crate) fn burn(work: Duration) {
    let until = thread_cpu_ns() + work.as_nanos() as u64;
    let mut x = 0u64;
    while thread_cpu_ns() < until {
        for _ in 0..64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

/// Moves this process into a cgroup (before it starts threads).
pub fn join_cgroup(dir: &Path) -> Result<()> {
    std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
        .with_context(|| format!("moving pid {} into {}", std::process::id(), dir.display()))
}

/// Waits until the scheduler gave this thread SCHED_EXT; returns the wait.
pub fn wait_for_ext(timeout: Duration) -> Result<Duration> {
    let start = mono_ns();
    loop {
        // SAFETY: no pointers involved.
        if unsafe { libc::sched_getscheduler(0) } == SCHED_EXT {
            return Ok(Duration::from_nanos(mono_ns() - start));
        }
        anyhow::ensure!(
            Duration::from_nanos(mono_ns() - start) < timeout,
            "not switched to SCHED_EXT within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Percentiles of a sample set, in microseconds.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of ns samples, reported in µs.
    pub fn of_ns(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let rank = |q: f64| scx_slo_model::stats::nearest_rank(samples, q).map_or(f64::NAN, |ns| ns as f64 / 1e3);
        Percentiles {
            n: samples.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            p999: rank(0.999),
            max: samples[samples.len() - 1] as f64 / 1e3,
        }
    }
}

/// What a probe measured.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct ProbeResult {
    /// Timer expiry → running again.
    pub wake_delay_us: Percentiles,
    /// Timer expiry → work done.
    pub completion_us: Percentiles,
    /// Requests whose completion exceeded `deadline`.
    pub over_deadline: usize,
    /// Periods skipped because the previous request overran.
    pub overruns: usize,
    /// Time waited for SCHED_EXT before measuring, ms.
    pub ext_wait_ms: Option<f64>,
    /// Raw wake delays, ns (with `--samples`, for significance tests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wake_ns: Vec<u64>,
    /// Raw completion times, ns (with `--samples`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completion_ns: Vec<u64>,
}

/// When requests arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrival {
    /// Every period.
    Periodic,
    /// A Poisson process with the period as mean gap (seeded, reproducible).
    Poisson,
}

/// Runs a latency probe: at each arrival, wake up and burn `work`. Each
/// request's wake delay (arrival → running) and completion (arrival → work
/// done) are recorded; `keep_samples` keeps the raw values.
pub fn probe_with(period: Duration, work: Duration, duration: Duration, deadline: Duration, arrival: Arrival, keep_samples: bool) -> ProbeResult {
    let period_ns = period.as_nanos() as u64;
    let start = mono_ns() + period_ns;
    let end = start + duration.as_nanos() as u64;
    let mut rng = scx_slo_model::stats::Rng::new(u64::from(std::process::id()) ^ 0x005c_7510);
    let mut gap = || match arrival {
        Arrival::Periodic => period_ns,
        Arrival::Poisson => {
            // Exponential with mean period: -ln(U) * mean, U in (0, 1].
            let u = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            ((-u.ln()) * period_ns as f64) as u64
        }
    };
    let mut next = start;
    let (mut wake, mut done_at) = (Vec::new(), Vec::new());
    let mut overruns = 0;
    while next < end {
        sleep_until(next);
        let woke = mono_ns();
        burn(work);
        let done = mono_ns();
        wake.push(woke.saturating_sub(next));
        done_at.push(done.saturating_sub(next));
        crate::served::observe(done.saturating_sub(next));
        next += gap();
        if next < done {
            // The previous request overran the next arrival: count and skip.
            while next < done {
                overruns += 1;
                next += gap().max(1);
            }
        }
    }
    let deadline_ns = deadline.as_nanos() as u64;
    let over_deadline = done_at.iter().filter(|d| **d > deadline_ns).count();
    let (wake_raw, done_raw) = if keep_samples { (wake.clone(), done_at.clone()) } else { (Vec::new(), Vec::new()) };
    ProbeResult {
        wake_delay_us: Percentiles::of_ns(&mut wake),
        completion_us: Percentiles::of_ns(&mut done_at),
        over_deadline,
        overruns,
        ext_wait_ms: None,
        wake_ns: wake_raw,
        completion_ns: done_raw,
    }
}

/// A noisy neighbour: `threads` threads that burst for `burst`, then sleep
/// for `burst`, for `duration`; returns work units done.
pub fn noisy(threads: usize, burst: Duration, duration: Duration) -> HogResult {
    let start = mono_ns();
    let end = start + duration.as_nanos() as u64;
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            std::thread::spawn(move || {
                let mut iterations = 0u64;
                while mono_ns() < end {
                    let stop = mono_ns() + burst.as_nanos() as u64;
                    while mono_ns() < stop {
                        burn(Duration::from_micros(50));
                        iterations += 1;
                    }
                    std::thread::sleep(burst);
                }
                iterations
            })
        })
        .collect();
    let iterations = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    HogResult { iterations, seconds: (mono_ns() - start) as f64 / 1e9, cpu_share: 0.0, ext_wait_ms: None, policy: None, per_cpu: Default::default() }
}

/// Fork/exec-heavy load: runs `/bin/true` back to back for `duration`;
/// returns the number of completed spawns.
pub fn forkexec(duration: Duration) -> HogResult {
    let start = mono_ns();
    let end = start + duration.as_nanos() as u64;
    let mut iterations = 0u64;
    while mono_ns() < end {
        if std::process::Command::new("/bin/true").status().is_ok() {
            iterations += 1;
        }
    }
    HogResult { iterations, seconds: (mono_ns() - start) as f64 / 1e9, cpu_share: 0.0, ext_wait_ms: None, policy: None, per_cpu: Default::default() }
}

/// What a hog did.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct HogResult {
    /// Work units done.
    pub iterations: u64,
    /// Wall time, s.
    pub seconds: f64,
    /// CPU time / wall time.
    pub cpu_share: f64,
    /// Time waited for SCHED_EXT before measuring, ms.
    pub ext_wait_ms: Option<f64>,
    /// The scheduling policy when the spinning began and when it ended
    /// (`sched_getscheduler`: 0 other, 7 ext): a hog that left sched_ext
    /// mid-run would outrank every scx task in partial mode.
    #[serde(default)]
    pub policy: Option<(i32, i32)>,
    /// Work units done on each CPU (`sched_getcpu` per unit): where a hog
    /// ran, to tell a task stranded behind another CPU's work.
    #[serde(default)]
    pub per_cpu: std::collections::BTreeMap<i32, u64>,
}

/// Spins for `duration`, counting work units of 4096 multiply-adds.
pub fn hog(duration: Duration) -> HogResult {
    let start = mono_ns();
    let cpu_start = thread_cpu_ns();
    let end = start + duration.as_nanos() as u64;
    let mut iterations = 0u64;
    let mut x = 1u64;
    let mut per_cpu = std::collections::BTreeMap::new();
    while mono_ns() < end {
        for _ in 0..4096 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        iterations += 1;
        // SAFETY: sched_getcpu has no preconditions.
        *per_cpu.entry(unsafe { libc::sched_getcpu() }).or_insert(0) += 1;
    }
    let wall = (mono_ns() - start) as f64;
    HogResult {
        iterations,
        seconds: wall / 1e9,
        cpu_share: (thread_cpu_ns() - cpu_start) as f64 / wall,
        ext_wait_ms: None,
        policy: None,
        per_cpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        let p = Percentiles::of_ns(&mut v);
        assert_eq!((p.n, p.p50, p.p99, p.p999, p.max), (1000, 500.0, 990.0, 999.0, 1000.0));
        assert_eq!(Percentiles::of_ns(&mut []), Percentiles::default());
    }

    #[test]
    fn probe_measures_its_own_requests() {
        let r = probe_with(Duration::from_millis(5), Duration::from_micros(200), Duration::from_millis(100), Duration::from_millis(5), Arrival::Periodic, false);
        assert!(r.completion_us.n >= 10, "{r:?}");
        assert!(r.completion_us.p50 >= 200.0, "completion includes the 200us of work: {r:?}");
    }

    #[test]
    fn poisson_arrivals_keep_their_mean_and_samples() {
        let r = probe_with(Duration::from_millis(2), Duration::from_micros(50), Duration::from_millis(400), Duration::from_millis(5), Arrival::Poisson, true);
        // About 200 requests at a 2 ms mean gap; a Poisson count is within 50% of it.
        assert!(r.completion_us.n > 100 && r.completion_us.n < 300, "{}", r.completion_us.n);
        assert_eq!(r.wake_ns.len(), r.completion_us.n);
        assert!(r.completion_ns.iter().zip(&r.wake_ns).all(|(c, w)| c >= w));
    }

    #[test]
    fn hog_counts_work() {
        let r = hog(Duration::from_millis(50));
        assert!(r.iterations > 0 && r.cpu_share > 0.0, "{r:?}");
    }
}
