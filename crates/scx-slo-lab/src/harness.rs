// SPDX-License-Identifier: GPL-2.0-only
//! What every guest scenario shares: where things are ([`Env`]), the report
//! it prints ([`Report`] of [`Check`]s), polling and timing helpers, the
//! metrics endpoint, and emitting the report on the results port.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

/// Where the guest keeps things.
pub struct Env {
    /// Directory with scx-slod, scx-slo, scx-slo-lab and bpftool.
    pub bin: PathBuf,
    /// cgroup2 mount.
    pub cgroot: PathBuf,
    /// Seconds each measurement runs.
    pub seconds: u64,
}

impl Env {
    pub(crate) fn exe(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
    pub(crate) fn cg(&self, rel: &str) -> PathBuf {
        self.cgroot.join(rel)
    }
}

/// One check: what was expected, whether the kernel showed it, and what it showed.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What is checked, named after the behaviour.
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// The observed values.
    pub detail: String,
}

/// The report a scenario prints.
#[derive(Debug, Serialize, Default)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Every check passed.
    pub ok: bool,
    /// `uname -r` of the guest.
    pub kernel: String,
    /// CPUs in the guest.
    pub cpus: usize,
    /// Checks in order.
    pub checks: Vec<Check>,
    /// Numbers worth keeping (per mode).
    pub facts: BTreeMap<String, Value>,
}

impl Report {
    /// An empty report for a scenario on this guest.
    pub fn new(scenario: &str) -> Self {
        Report { scenario: scenario.into(), kernel: uname(), cpus: num_cpus(), ..Default::default() }
    }

    /// Records a check (and prints it on the console).
    pub fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        let (name, detail) = (name.into(), detail.into());
        eprintln!("[{}] {name}: {detail}", if ok { "PASS" } else { "FAIL" });
        self.checks.push(Check { name, ok, detail });
    }
}

/// Polls `f` every 2 ms (fine enough to time a disable) until it holds;
/// returns how long that took.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// GET /metrics from scx-slod's default endpoint (`paths::METRICS_LISTEN`),
/// through the same bounded client as the daemon's scrapes.
pub fn scrape_metrics() -> Result<String> {
    use scx_slo_api::{paths, scrape::fetch};
    let addr: std::net::SocketAddr = paths::METRICS_LISTEN.parse().context("the default metrics address")?;
    let t = fetch::Timeouts { io: Duration::from_secs(5), total: Duration::from_secs(30) };
    fetch::get_text(addr, paths::METRICS_LISTEN, "/metrics", t, "scx-slo-lab", 64 << 20).context("scraping scx-slod's metrics endpoint")
}

/// The value of one exposed sample (`name{labels}`), if present.
pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &str) -> Result<T> {
    serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {path}"))?)
        .with_context(|| format!("parsing {path}"))
}

pub(crate) fn uname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string()
}

/// The enforce-mode acceptance scenario: partial and all in one boot.
pub(crate) fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A kB field of /proc/PID/status (`VmRSS`, `VmHWM`).
pub(crate) fn proc_status_kb(field: &str, pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    value.split_whitespace().next()?.parse().ok()
}

/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A share of one CPU from two [`cpu_ticks`] readings `elapsed` apart
/// (USER_HZ is 100 on x86-64); `None` when either reading failed.
pub(crate) fn cpu_share(before: Option<u64>, after: Option<u64>, elapsed: std::time::Duration) -> Option<f64> {
    Some(after?.saturating_sub(before?) as f64 / 100.0 / elapsed.as_secs_f64())
}

/// Prints the report between markers the host harness looks for.
pub fn emit(report: &Report, out: &Path) -> Result<()> {
    let text = format!(
        "\nSCX_SLO_REPORT_BEGIN\n{}\nSCX_SLO_REPORT_END\n",
        serde_json::to_string(report)?
    );
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(out)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .with_context(|| format!("writing the report to {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_fields_are_read_by_their_whole_name() {
        let me = std::process::id();
        assert!(proc_status_kb("VmRSS", me).is_some_and(|kb| kb > 0));
        assert!(proc_status_kb("VmHWM", me).is_some_and(|kb| kb > 0));
        assert_eq!(proc_status_kb("VmRS", me), None, "a prefix of a field is not the field");
        assert!(cpu_ticks(me).is_some());
    }

    #[test]
    fn cpu_share_is_ticks_per_second_over_usr_hz_and_none_without_a_reading() {
        let two_s = std::time::Duration::from_secs(2);
        assert_eq!(cpu_share(Some(100), Some(150), two_s), Some(0.25));
        assert_eq!(cpu_share(None, Some(150), two_s), None);
        assert_eq!(cpu_share(Some(100), None, two_s), None);
    }
}
