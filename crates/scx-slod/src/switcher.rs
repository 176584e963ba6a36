// SPDX-License-Identifier: GPL-2.0-only
//! Partial switch: gives the threads of targeted cgroups the SCHED_EXT policy.
//!
//! With SCX_OPS_SWITCH_PARTIAL only SCHED_EXT tasks run on scx_slo. Children
//! inherit the policy at fork, so a scan only has to catch threads that were
//! there before the scheduler started or that moved in later. Threads that
//! leave every targeted cgroup go back to SCHED_OTHER, and so does every
//! switched thread when the switcher is dropped. Real-time, deadline and idle
//! threads are never touched.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

pub use scx_slo_api::host::SCHED_EXT;

/// Current policy of a thread, or `None` if it is gone.
pub fn policy_of(tid: i32) -> Option<libc::c_int> {
    // SAFETY: sched_getscheduler only reads the tid argument.
    let p = unsafe { libc::sched_getscheduler(tid) };
    (p >= 0).then_some(p)
}

fn set_policy(tid: i32, policy: libc::c_int) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: param is a valid sched_param for the duration of the call.
    let rc = unsafe { libc::sched_setscheduler(tid, policy, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What giving a thread SCHED_EXT did.
enum ToExt {
    /// It was SCHED_OTHER or SCHED_BATCH and is SCHED_EXT now.
    Switched,
    /// It already was SCHED_EXT (inherited at fork from a switched parent).
    Already,
    /// Its policy could not be changed: the errno (EPERM: a seccomp filter
    /// such as systemd's RestrictRealtime=, or a missing CAP_SYS_NICE;
    /// ESRCH: the thread is gone).
    Failed(i32),
    /// Real-time, deadline or idle: never touched.
    Untouched,
}

fn to_ext(tid: i32) -> ToExt {
    match policy_of(tid) {
        Some(libc::SCHED_OTHER) | Some(libc::SCHED_BATCH) => match set_policy(tid, SCHED_EXT) {
            Ok(()) => ToExt::Switched,
            Err(e) => ToExt::Failed(e.raw_os_error().unwrap_or(0)),
        },
        Some(SCHED_EXT) => ToExt::Already,
        _ => ToExt::Untouched,
    }
}

/// Returns a thread we switched to SCHED_OTHER; false if it is gone or no
/// longer SCHED_EXT (someone else changed it: leave it alone).
fn restore(tid: i32) -> bool {
    policy_of(tid) == Some(SCHED_EXT) && set_policy(tid, libc::SCHED_OTHER).is_ok()
}

/// Threads of a cgroup and all its descendants.
fn threads_below(dir: &Path, out: &mut BTreeSet<i32>) {
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.threads")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                threads_below(&entry.path(), out);
            }
        }
    }
}

/// Switches a task the scheduler reported as new in a target (and, for a
/// whole process, each of its threads) to SCHED_EXT at once; returns the
/// tids now SCHED_EXT, for `Switcher::adopt`. Runs on the events thread.
pub fn switch_reported(tid: i32, whole_process: bool) -> Vec<i32> {
    let mut tids = vec![tid];
    if whole_process {
        if let Ok(entries) = fs::read_dir(format!("/proc/{tid}/task")) {
            tids.extend(entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()).filter(|t| *t != tid));
        }
    }
    tids.retain(|t| matches!(to_ext(*t), ToExt::Switched | ToExt::Already));
    tids
}

/// Outcome of one scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Threads newly given SCHED_EXT.
    pub switched: usize,
    /// Threads returned to SCHED_OTHER because they left the targets.
    pub restored: usize,
    /// Threads whose policy could not be changed (permission, gone).
    pub failed: usize,
    /// The last errno of a refused change other than ESRCH (a thread that
    /// exited is not a problem; a refusal is).
    pub refused_errno: Option<i32>,
}

/// Keeps the threads of targeted cgroups on SCHED_EXT.
#[derive(Default)]
pub struct Switcher {
    switched: BTreeSet<i32>,
}

impl Switcher {
    /// Scans the given cgroup directories once.
    pub fn scan(&mut self, dirs: &[PathBuf]) -> ScanReport {
        let mut report = ScanReport::default();
        let mut present = BTreeSet::new();
        for dir in dirs {
            threads_below(dir, &mut present);
        }
        // Only threads not seen before cost a syscall: in steady state a scan
        // is a few reads of cgroup.threads.
        let new: Vec<i32> = present.difference(&self.switched).copied().collect();
        for tid in new {
            match to_ext(tid) {
                ToExt::Switched => {
                    self.switched.insert(tid);
                    report.switched += 1;
                }
                // Inherited at fork from a switched parent; undo it on exit too.
                ToExt::Already => {
                    self.switched.insert(tid);
                }
                ToExt::Failed(errno) => {
                    report.failed += 1;
                    if errno != libc::ESRCH {
                        report.refused_errno = Some(errno);
                    }
                }
                ToExt::Untouched => {}
            }
        }
        let left: Vec<i32> = self.switched.difference(&present).copied().collect();
        for tid in left {
            self.switched.remove(&tid);
            if restore(tid) {
                report.restored += 1;
            }
        }
        report
    }

    /// Takes over tids switched outside a scan (`switch_reported`), so the
    /// next scan restores them when they leave the targets.
    pub fn adopt(&mut self, tids: impl IntoIterator<Item = i32>) {
        self.switched.extend(tids);
    }

    /// Threads currently switched.
    pub fn switched(&self) -> usize {
        self.switched.len()
    }

    /// Returns every switched thread to SCHED_OTHER.
    pub fn restore_all(&mut self) -> usize {
        let mut restored = 0;
        for tid in std::mem::take(&mut self.switched) {
            if restore(tid) {
                restored += 1;
            }
        }
        restored
    }
}

impl Drop for Switcher {
    fn drop(&mut self) {
        self.restore_all();
    }
}
