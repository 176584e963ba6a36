// SPDX-License-Identifier: GPL-2.0-only
//! A multi-threaded latency workload: one process whose threads wake on
//! absolute timers with their own periods and burn their own work, while the
//! main thread wakes now and then to check on them (the shape of cyclictest
//! and of most real services: workers plus a supervising thread). The whole
//! process joins its cgroup before any thread starts, so every thread is
//! in the target from its first wakeup.
//!
//! It reports, per thread, how late its wakeups were and the longest gap
//! between two of its runs, which is what a starved thread shows first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::workload::{burn, mono_ns, sleep_until, Percentiles};

/// One thread of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadSpec {
    /// Wake period.
    pub period: Duration,
    /// CPU time burnt per wakeup.
    pub work: Duration,
}

impl ThreadSpec {
    /// Parses `PERIOD/WORK` with model durations, e.g. `1ms/50us`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (p, w) = text.split_once('/').ok_or_else(|| {
            anyhow::anyhow!("thread spec {text:?}: expected PERIOD/WORK, e.g. 1ms/50us")
        })?;
        let period: scx_slo_model::Duration =
            p.parse().map_err(|e| anyhow::anyhow!("thread spec {text:?}: period: {e}"))?;
        let work: scx_slo_model::Duration =
            w.parse().map_err(|e| anyhow::anyhow!("thread spec {text:?}: work: {e}"))?;
        anyhow::ensure!(period.as_ns() > 0, "thread spec {text:?}: period must be positive");
        Ok(ThreadSpec {
            period: Duration::from_nanos(period.as_ns()),
            work: Duration::from_nanos(work.as_ns()),
        })
    }

    /// The `PERIOD/WORK` form [`ThreadSpec::parse`] reads.
    pub fn arg(&self) -> String {
        format!("{}us/{}us", self.period.as_micros(), self.work.as_micros())
    }
}

/// What one thread saw.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ThreadResult {
    /// `main` or `worker-N`.
    pub name: String,
    /// Linux thread id.
    pub tid: i32,
    /// Wakeups completed.
    pub wakeups: u64,
    /// Timer expiry -> running, in microseconds.
    pub wake_delay_us: Percentiles,
    /// Longest time between the ends of two consecutive wakeups, minus the
    /// period, in ms: how long the thread went without a CPU beyond its
    /// sleep (a starved thread shows it here first).
    pub longest_gap_ms: f64,
}

/// The whole process's result.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ThreadsResult {
    /// Every thread, the main thread first.
    pub threads: Vec<ThreadResult>,
    /// Wall time of the run, ms.
    pub duration_ms: f64,
    /// Set by the placement: how long the wait for SCHED_EXT took.
    pub ext_wait_ms: Option<f64>,
}

fn gettid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::gettid() }
}

/// One periodic loop until `stop`; the main thread runs it too.
fn periodic(
    name: String,
    spec: ThreadSpec,
    start_ns: u64,
    stop: &AtomicBool,
    heartbeat: Option<&AtomicU64>,
) -> ThreadResult {
    let period = spec.period.as_nanos() as u64;
    let mut next = start_ns + period;
    let mut delays = Vec::new();
    let (mut last_end, mut longest_gap) = (mono_ns(), 0u64);
    while !stop.load(Ordering::Relaxed) {
        sleep_until(next);
        let woke = mono_ns();
        delays.push(woke.saturating_sub(next));
        burn(spec.work);
        if let Some(h) = heartbeat {
            h.fetch_add(1, Ordering::Relaxed);
        }
        let end = mono_ns();
        longest_gap = longest_gap.max(end.saturating_sub(last_end).saturating_sub(period));
        last_end = end;
        // A late thread skips the wakeups it missed instead of bursting.
        next += period;
        if next < end {
            next = end + period - (end - next) % period;
        }
    }
    ThreadResult {
        name,
        tid: gettid(),
        wakeups: delays.len() as u64,
        wake_delay_us: Percentiles::of_ns(&mut delays),
        longest_gap_ms: longest_gap as f64 / 1e6,
    }
}

/// Runs the workers and the main thread's own loop for `duration`.
pub fn run(workers: &[ThreadSpec], main: ThreadSpec, duration: Duration) -> ThreadsResult {
    let stop = Arc::new(AtomicBool::new(false));
    let beats: Arc<Vec<AtomicU64>> = Arc::new(workers.iter().map(|_| AtomicU64::new(0)).collect());
    let start = mono_ns();
    let handles: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let (stop, beats, spec) = (stop.clone(), beats.clone(), *spec);
            std::thread::spawn(move || {
                periodic(format!("worker-{i}"), spec, start, &stop, beats.get(i))
            })
        })
        .collect();
    // The main thread supervises: it wakes on its own period until the end
    // (a scoped helper only sleeps until then and raises the flag).
    let main_stop = AtomicBool::new(false);
    let end = start + duration.as_nanos() as u64;
    let main_result = std::thread::scope(|s| {
        let h = s.spawn(|| {
            sleep_until(end);
            main_stop.store(true, Ordering::Relaxed);
        });
        let r = periodic("main".into(), main, start, &main_stop, None);
        let _ = h.join();
        r
    });
    stop.store(true, Ordering::Relaxed);
    let mut threads = vec![main_result];
    threads.extend(handles.into_iter().filter_map(|h| h.join().ok()));
    ThreadsResult { threads, duration_ms: (mono_ns() - start) as f64 / 1e6, ext_wait_ms: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_thread_specs() {
        let s = ThreadSpec::parse("1ms/50us").unwrap();
        assert_eq!(
            s,
            ThreadSpec { period: Duration::from_millis(1), work: Duration::from_micros(50) }
        );
        assert_eq!(ThreadSpec::parse(&s.arg()).unwrap(), s);
        assert!(ThreadSpec::parse("1ms").unwrap_err().to_string().contains("PERIOD/WORK"));
        assert!(ThreadSpec::parse("0ms/1us").is_err());
    }

    #[test]
    fn every_thread_reports_its_wakeups() {
        let workers =
            [ThreadSpec::parse("2ms/10us").unwrap(), ThreadSpec::parse("3ms/10us").unwrap()];
        let r = run(&workers, ThreadSpec::parse("20ms/10us").unwrap(), Duration::from_millis(200));
        assert_eq!(r.threads.len(), 3);
        assert_eq!(r.threads[0].name, "main");
        assert_eq!(
            r.threads[0].tid,
            gettid(),
            "the main loop runs on the calling thread (the process's main thread in the CLI)"
        );
        assert!(r.threads[0].wakeups >= 3, "main woke {} times", r.threads[0].wakeups);
        assert!(r.threads[1].wakeups >= 20, "worker-0 woke {} times", r.threads[1].wakeups);
        assert!(r.threads[1..].iter().all(|t| t.tid != gettid()));
    }
}
