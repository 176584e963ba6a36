// SPDX-License-Identifier: GPL-2.0-only
//! Where latency comes from besides the scheduler: CPU steal (the
//! hypervisor), CFS bandwidth throttling and CPU pressure of a target's
//! cgroup, and the cgroup's CPU time (for budget utilization in observe mode).
//!
//! cgroup2 files live in the target's directory. On hybrid hosts (cgroup v1
//! controllers with cgroup2 at /sys/fs/cgroup/unified) the cpu controller is
//! a v1 hierarchy, so throttling is read from the same relative path under
//! /sys/fs/cgroup/cpu (its `throttled_time` is in ns, v2's in us).

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Host-wide CPU time from /proc/stat's `cpu` line, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// All fields summed.
    pub total: u64,
    /// The `steal` field.
    pub steal: u64,
}

/// Parses /proc/stat's aggregate `cpu` line.
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal guest guest_nice; guest
    // time is already inside user and nice, so it is not added again.
    let total = fields.iter().take(8).sum();
    Some(CpuTimes { total, steal: fields.get(7).copied().unwrap_or(0) })
}

/// Reads /proc/stat.
pub fn read_cpu_times() -> Option<CpuTimes> {
    parse_proc_stat(&fs::read_to_string("/proc/stat").ok()?)
}

/// Steal between two readings, as a share of all CPU time.
pub fn steal_ratio(before: CpuTimes, after: CpuTimes) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    after.steal.saturating_sub(before.steal) as f64 / total as f64
}

/// What a target's cgroup says, cumulative since the cgroup was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CgroupReading {
    /// CPU time used (cgroup2 cpu.stat `usage_usec`).
    pub usage_usec: Option<u64>,
    /// Periods throttled by CFS bandwidth control.
    pub nr_throttled: Option<u64>,
    /// Time throttled, in microseconds.
    pub throttled_usec: Option<u64>,
    /// cpu.pressure `some` total, in microseconds.
    pub pressure_some_usec: Option<u64>,
}

/// `key value` lines (cpu.stat) → the value of `key`.
pub fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// cpu.pressure → the `some` line's `total=` (us).
pub fn pressure_some_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace().find_map(|f| f.strip_prefix("total=")?.parse().ok())
}

/// Reads a target's cgroup; `dir` is its cgroup2 directory, `root` the
/// cgroup2 mount point.
pub fn read_cgroup(root: &Path, dir: &Path) -> CgroupReading {
    let read = |p: PathBuf| fs::read_to_string(p).ok();
    let v2_stat = read(dir.join("cpu.stat"));
    let mut r = CgroupReading {
        usage_usec: v2_stat.as_deref().and_then(|t| flat_keyed(t, "usage_usec")),
        nr_throttled: v2_stat.as_deref().and_then(|t| flat_keyed(t, "nr_throttled")),
        throttled_usec: v2_stat.as_deref().and_then(|t| flat_keyed(t, "throttled_usec")),
        pressure_some_usec: read(dir.join("cpu.pressure")).as_deref().and_then(pressure_some_total),
    };
    if r.nr_throttled.is_none() {
        if let Some(v1) = v1_cpu_dir(root, dir) {
            if let Some(t) = read(v1.join("cpu.stat")) {
                r.nr_throttled = flat_keyed(&t, "nr_throttled");
                r.throttled_usec = flat_keyed(&t, "throttled_time").map(|ns| ns / 1000);
            }
        }
    }
    r
}

/// The v1 cpu controller's directory for the same relative cgroup path, on
/// hybrid hosts.
fn v1_cpu_dir(root: &Path, dir: &Path) -> Option<PathBuf> {
    if root == Path::new("/sys/fs/cgroup") {
        return None;
    }
    let rel = dir.strip_prefix(root).ok()?;
    ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
        .iter()
        .map(|base| Path::new(base).join(rel))
        .find(|p| p.join("cpu.stat").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_from_proc_stat() {
        let a = parse_proc_stat("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!(a, CpuTimes { total: 1000, steal: 40 });
        let b = parse_proc_stat("cpu  200 0 100 1600 20 0 0 80 30 0\n").unwrap();
        assert!((steal_ratio(a, b) - 0.04).abs() < 1e-12);
        assert_eq!(steal_ratio(a, a), 0.0);
        assert_eq!(parse_proc_stat("intr 1 2"), None);
    }

    #[test]
    fn cpu_stat_and_pressure() {
        let stat = "usage_usec 48069120\nuser_usec 26073326\nnr_periods 10\nnr_throttled 3\nthrottled_usec 1500\n";
        assert_eq!(flat_keyed(stat, "usage_usec"), Some(48_069_120));
        assert_eq!(flat_keyed(stat, "nr_throttled"), Some(3));
        assert_eq!(flat_keyed(stat, "usage"), None);
        let psi = "some avg10=3.36 avg60=3.64 avg300=1.05 total=5890622\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(pressure_some_total(psi), Some(5_890_622));
    }

    #[test]
    fn reads_a_real_cgroup_when_there_is_one() {
        // The cgroup2 root always has cpu.stat's usage_usec on 5.x+ kernels.
        let Some(root) = crate::resolver::cgroup2_root() else { return };
        let r = read_cgroup(&root, &root);
        assert!(r.usage_usec.is_some(), "{r:?}");
    }
}
