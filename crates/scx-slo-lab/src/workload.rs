// SPDX-License-Identifier: GPL-2.0-only
//! Workloads: a periodic latency probe, a CPU hog and an idle task. Each can
//! move itself into a cgroup and wait for the SCHED_EXT policy first, so a
//! measurement never mixes schedulers.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

/// SCHED_EXT from include/uapi/linux/sched.h.
pub const SCHED_EXT: libc::c_int = 7;

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

fn sleep_until(deadline_ns: u64) {
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
fn burn(work: Duration) {
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
        let rank = |q: f64| {
            let i = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i] as f64 / 1e3
        };
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
}

/// Runs a periodic latency probe: every `period`, wake up and burn `work`.
pub fn probe(period: Duration, work: Duration, duration: Duration, deadline: Duration) -> ProbeResult {
    let period_ns = period.as_nanos() as u64;
    let start = mono_ns() + period_ns;
    let end = start + duration.as_nanos() as u64;
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
        next += period_ns;
        if next < done {
            let skipped = (done - next) / period_ns + 1;
            overruns += skipped as usize;
            next += skipped * period_ns;
        }
    }
    let deadline_ns = deadline.as_nanos() as u64;
    let over_deadline = done_at.iter().filter(|d| **d > deadline_ns).count();
    ProbeResult {
        wake_delay_us: Percentiles::of_ns(&mut wake),
        completion_us: Percentiles::of_ns(&mut done_at),
        over_deadline,
        overruns,
        ext_wait_ms: None,
    }
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
}

/// Spins for `duration`, counting work units of 4096 multiply-adds.
pub fn hog(duration: Duration) -> HogResult {
    let start = mono_ns();
    let cpu_start = thread_cpu_ns();
    let end = start + duration.as_nanos() as u64;
    let mut iterations = 0u64;
    let mut x = 1u64;
    while mono_ns() < end {
        for _ in 0..4096 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        iterations += 1;
    }
    let wall = (mono_ns() - start) as f64;
    HogResult {
        iterations,
        seconds: wall / 1e9,
        cpu_share: (thread_cpu_ns() - cpu_start) as f64 / wall,
        ext_wait_ms: None,
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
        let r = probe(Duration::from_millis(5), Duration::from_micros(200), Duration::from_millis(100), Duration::from_millis(5));
        assert!(r.completion_us.n >= 10, "{r:?}");
        assert!(r.completion_us.p50 >= 200.0, "completion includes the 200us of work: {r:?}");
    }

    #[test]
    fn hog_counts_work() {
        let r = hog(Duration::from_millis(50));
        assert!(r.iterations > 0 && r.cpu_share > 0.0, "{r:?}");
    }
}
