// SPDX-License-Identifier: GPL-2.0-only
//! The kernel's own view, read by the VM scenarios: sysfs, the scheduling
//! policy syscall, /proc/PID/sched, and BPF maps dumped by bpftool. None of it
//! comes from scx-slod.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

/// `/sys/kernel/sched_ext/state` (`enabled`, `disabled`, ...), or `missing`.
pub fn sched_ext_state() -> String {
    std::fs::read_to_string("/sys/kernel/sched_ext/state").map_or_else(|_| "missing".into(), |s| s.trim().into())
}

/// `/sys/kernel/sched_ext/root/ops`: the loaded scheduler's name, or empty.
pub fn root_ops() -> String {
    std::fs::read_to_string("/sys/kernel/sched_ext/root/ops").map_or_else(|_| String::new(), |s| s.trim().into())
}

/// `/sys/kernel/sched_ext/enable_seq`: how many times a BPF scheduler was
/// enabled since boot (6.12+); 0 when the file is missing.
pub fn enable_seq() -> u64 {
    std::fs::read_to_string("/sys/kernel/sched_ext/enable_seq").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// The kernel log's lines that say a BPF scheduler was disabled, with the
/// reason the kernel gives (`... disabled (runnable task stall)`) and the
/// line after it (which task, how long).
pub fn ejection_lines() -> Vec<String> {
    let out = Command::new("dmesg").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = out.lines().collect();
    let mut found = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        // "sched_ext: BPF scheduler "scx_slo" disabled (runnable task stall)";
        // a clean unload says "(unregistered from user space)".
        if l.contains("sched_ext:") && l.contains("disabled (") && !l.contains("unregistered from") {
            let next = lines.get(i + 1).filter(|n| n.contains("sched_ext:")).map_or(String::new(), |n| format!(" / {}", n.trim()));
            found.push(format!("{}{next}", l.trim()));
        }
    }
    found
}

/// Watches one measurement window for ejections: the scheduler `ops` is
/// attached when the window opens, and an ejection shows as a state that
/// is no longer `enabled`, another ops, or a kernel that enabled a
/// scheduler again meanwhile (the daemon re-attached after an ejection).
#[derive(Debug)]
pub struct AttachWatch {
    ops: String,
    seq: u64,
    kernel_lines: usize,
}

/// What an [`AttachWatch`] saw.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Attachment {
    /// The scheduler stayed attached for the whole window.
    pub attached: bool,
    /// What the kernel said, for every ejection in the window.
    pub ejections: Vec<String>,
}

impl AttachWatch {
    /// Starts watching; `ops` is the scheduler that must stay attached.
    /// The kernel bumps `enable_seq` just after the state reads `enabled`,
    /// so a watch opened right after an attach waits (at most 1 s) until two
    /// reads 20 ms apart agree: the CI hunt once read the count before the
    /// bump and called a healthy run ejected.
    pub fn start(ops: &str) -> Self {
        let mut seq = enable_seq();
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let again = enable_seq();
            if again == seq {
                break;
            }
            seq = again;
        }
        AttachWatch { ops: ops.into(), seq, kernel_lines: ejection_lines().len() }
    }

    /// Ends the window.
    pub fn finish(&self) -> Attachment {
        let ejections: Vec<String> = ejection_lines().into_iter().skip(self.kernel_lines).collect();
        let attached =
            ejections.is_empty() && enable_seq() == self.seq && sched_ext_state() == "enabled" && root_ops() == self.ops;
        Attachment { attached, ejections }
    }
}

/// Policy of a thread (7 = SCHED_EXT), or -1 if it is gone.
pub fn policy(tid: i32) -> i32 {
    // SAFETY: no pointers.
    unsafe { libc::sched_getscheduler(tid) }
}

/// `ext.enabled` from /proc/PID/sched: whether sched_ext runs the task now;
/// `None` when the kernel does not print it.
pub fn ext_enabled(pid: i32) -> Option<bool> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/sched")).ok()?;
    text.lines()
        .find(|l| l.trim_start().starts_with("ext.enabled"))
        .and_then(|l| l.rsplit(':').next())
        .map(|v| v.trim() == "1")
}

/// Threads of a cgroup (not descendants).
pub fn cgroup_threads(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.threads"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// cgroup v2 id of a directory.
pub fn cgroup_id(dir: &Path) -> Result<u64> {
    Ok(std::fs::metadata(dir).with_context(|| format!("stat {}", dir.display()))?.ino())
}

/// The verifier's instruction count (`verified_insns`) of each loaded
/// scx_slo program, by name: the struct_ops callbacks and the tp_btf
/// programs (every one is named `slo_*`). What a new kernel's verifier
/// costs, and how close a program is to its limit, kernel by kernel.
///
/// bookworm's bpftool (7.1) does not print `verified_insns`, so the count
/// comes from the kernel itself: the fdinfo of every open BPF program fd
/// (`prog_id:` and `verified_insns:`, since 5.16), joined by id with the
/// names bpftool lists.
pub fn verified_insns(bpftool: &Path) -> Result<BTreeMap<String, u64>> {
    let out = Command::new(bpftool)
        .args(["-j", "prog", "show"])
        .output()
        .with_context(|| format!("running {} prog show", bpftool.display()))?;
    anyhow::ensure!(out.status.success(), "bpftool prog show: {}", String::from_utf8_lossy(&out.stderr).trim());
    let progs: Vec<Value> = serde_json::from_slice(&out.stdout).context("parsing bpftool prog show JSON")?;
    let names: BTreeMap<u64, String> = progs
        .iter()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let id = p.get("id")?.as_u64()?;
            name.starts_with("slo_").then(|| (id, name.to_string()))
        })
        .collect();
    anyhow::ensure!(!names.is_empty(), "bpftool lists no slo_* program");
    let counts = prog_fdinfo_insns();
    let found: BTreeMap<String, u64> =
        names.iter().filter_map(|(id, name)| counts.get(id).map(|n| (name.clone(), *n))).collect();
    anyhow::ensure!(!found.is_empty(), "no open fd of the {} slo_* programs shows verified_insns in its fdinfo", names.len());
    Ok(found)
}

/// `prog_id → verified_insns` from the fdinfo of every BPF program fd open
/// in any process.
fn prog_fdinfo_insns() -> BTreeMap<u64, u64> {
    let mut counts = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return counts };
    for proc_dir in procs.flatten() {
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let is_prog = std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf-prog");
            if !is_prog {
                continue;
            }
            let info = proc_dir.path().join("fdinfo").join(fd.file_name());
            if let Some((id, insns)) = std::fs::read_to_string(info).ok().and_then(|t| parse_prog_fdinfo(&t)) {
                counts.insert(id, insns);
            }
        }
    }
    counts
}

/// `(prog_id, verified_insns)` from a BPF program's fdinfo text.
fn parse_prog_fdinfo(text: &str) -> Option<(u64, u64)> {
    let field = |key: &str| {
        text.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(':')).and_then(|v| v.trim().parse::<u64>().ok()))
    };
    Some((field("prog_id")?, field("verified_insns")?))
}

/// The runtime budget (ns) the scheduler's maps hold for the target whose
/// cgroup id is `cgroup_id`: what the kernel enforces, whatever the daemon
/// reports.
pub fn target_runtime_ns(bpftool: &Path, cgroup_id: u64) -> Result<Option<u64>> {
    let index = bpftool_dump(bpftool, "cgroup_targets")?
        .iter()
        .find(|e| e.get("key").and_then(Value::as_u64) == Some(cgroup_id))
        .and_then(|e| e.get("value")?.as_u64());
    let Some(index) = index else { return Ok(None) };
    Ok(bpftool_dump(bpftool, "target_cfg")?
        .iter()
        .find(|e| e.get("key").and_then(Value::as_u64) == Some(index))
        .and_then(|e| e.get("value")?.get("runtime_ns")?.as_u64()))
}

/// Dumps a BPF map by name with bpftool; returns BTF-formatted entries.
pub fn bpftool_dump(bpftool: &Path, map: &str) -> Result<Vec<Value>> {
    let out = Command::new(bpftool)
        .args(["-j", "map", "dump", "name", map])
        .output()
        .with_context(|| format!("running {} map dump name {map}", bpftool.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "bpftool map dump name {map}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let entries: Vec<Value> = serde_json::from_slice(&out.stdout).context("parsing bpftool JSON")?;
    Ok(entries
        .into_iter()
        .map(|e| e.get("formatted").cloned().unwrap_or(e))
        .collect())
}

/// A target's counters summed over CPUs, read from `target_stats` through
/// `cgroup_targets`, keyed by counter position (see bpf/intf.h).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct KernelTargetStats {
    /// Map index found for the cgroup.
    pub index: u64,
    /// `cnt[]` summed over CPUs.
    pub cnt: Vec<u64>,
    /// `rq_delay_hist[]` summed over CPUs.
    pub rq_delay_hist: Vec<u64>,
    /// `max_wait_ns`, the maximum over CPUs.
    pub max_wait_ns: u64,
}

fn as_u64_vec(v: &Value) -> Vec<u64> {
    v.as_array().map(|a| a.iter().map(|x| x.as_u64().unwrap_or(0)).collect()).unwrap_or_default()
}

/// Reads the kernel's per-target statistics for the given cgroup ids.
pub fn target_stats_by_cgroup(bpftool: &Path, cgroup_ids: &[u64]) -> Result<BTreeMap<u64, KernelTargetStats>> {
    let mapping: BTreeMap<u64, u64> = bpftool_dump(bpftool, "cgroup_targets")?
        .iter()
        .filter_map(|e| Some((e.get("key")?.as_u64()?, e.get("value")?.as_u64()?)))
        .collect();
    let stats = bpftool_dump(bpftool, "target_stats")?;
    let mut out = BTreeMap::new();
    for id in cgroup_ids {
        let Some(index) = mapping.get(id) else { continue };
        let Some(entry) = stats.iter().find(|e| e.get("key").and_then(Value::as_u64) == Some(*index)) else {
            continue;
        };
        let mut sum = KernelTargetStats { index: *index, ..Default::default() };
        for cpu in entry.get("values").and_then(Value::as_array).into_iter().flatten() {
            let value = cpu.get("value").cloned().unwrap_or(Value::Null);
            sum.max_wait_ns = sum.max_wait_ns.max(value["max_wait_ns"].as_u64().unwrap_or(0));
            for (field, acc) in [("cnt", &mut sum.cnt), ("rq_delay_hist", &mut sum.rq_delay_hist)] {
                let v = as_u64_vec(&value[field]);
                if acc.len() < v.len() {
                    acc.resize(v.len(), 0);
                }
                for (a, x) in acc.iter_mut().zip(v) {
                    *a += x;
                }
            }
        }
        out.insert(*id, sum);
    }
    Ok(out)
}

/// The scheduler's `global_stats`, read once: counters summed over CPUs and
/// the longest runnable wait of any task (the maximum over CPUs).
#[derive(Debug, Default, Clone)]
pub struct GlobalStats {
    /// `cnt[]` summed over CPUs, indexed by `enum slo_gstat_id`.
    pub cnt: Vec<u64>,
    /// Longest runnable wait, ns.
    pub max_wait_ns: u64,
    /// The tid that waited it.
    pub max_wait_tid: u64,
}

impl GlobalStats {
    /// A counter by its `enum slo_gstat_id` value; 0 when absent.
    pub fn counter(&self, id: u32) -> u64 {
        self.cnt.get(id as usize).copied().unwrap_or(0)
    }
}

/// Reads `global_stats` with bpftool.
pub fn global_stats(bpftool: &Path) -> Result<GlobalStats> {
    let entries = bpftool_dump(bpftool, "global_stats")?;
    let mut out = GlobalStats::default();
    for cpu in entries.iter().flat_map(|e| e.get("values").and_then(Value::as_array).cloned().unwrap_or_default()) {
        let v = &cpu["value"];
        let cnt = as_u64_vec(&v["cnt"]);
        if out.cnt.len() < cnt.len() {
            out.cnt.resize(cnt.len(), 0);
        }
        for (a, x) in out.cnt.iter_mut().zip(cnt) {
            *a += x;
        }
        let wait = v["max_wait_ns"].as_u64().unwrap_or(0);
        if wait > out.max_wait_ns {
            out.max_wait_ns = wait;
            out.max_wait_tid = v["max_wait_pid"].as_u64().unwrap_or(0);
        }
    }
    Ok(out)
}

/// `target_cfg` entries in use, as JSON, to compare before and after a reload.
pub fn target_cfg_snapshot(bpftool: &Path) -> Result<Vec<Value>> {
    Ok(bpftool_dump(bpftool, "target_cfg")?
        .into_iter()
        .filter(|e| e.get("value").and_then(|v| v.get("period_ns")).and_then(Value::as_u64).unwrap_or(0) > 0
            || e.get("value").and_then(|v| v.get("weight")).and_then(Value::as_u64).unwrap_or(0) > 0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::parse_prog_fdinfo;

    #[test]
    fn fdinfo_of_a_program_gives_its_id_and_verified_instructions() {
        // As 6.17 prints it for a struct_ops program.
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nprog_type:\t27\nprog_jited:\t1\n\
                    prog_tag:\t8f2e4c3b9a1d0e57\nmemlock:\t8192\nprog_id:\t42\nrun_time_ns:\t0\nrun_cnt:\t0\n\
                    recursion_misses:\t0\nverified_insns:\t1234\n";
        assert_eq!(parse_prog_fdinfo(text), Some((42, 1234)));
    }

    #[test]
    fn fdinfo_without_the_count_is_skipped() {
        // A kernel before 5.16, or a map's fdinfo.
        assert_eq!(parse_prog_fdinfo("prog_type:\t27\nprog_id:\t42\n"), None);
        assert_eq!(parse_prog_fdinfo("map_type:\t2\nmap_id:\t7\n"), None);
        assert_eq!(parse_prog_fdinfo("prog_id:\tx\nverified_insns:\t1\n"), None);
    }
}
