// SPDX-License-Identifier: GPL-2.0-only
//! The daemon's status document, written to the status file. The D-Bus
//! `Status` method will return the same document.

use std::io::Write;
use std::path::Path;

use scx_slo_bpf::{ExitInfo, KernelFeatures, TargetStats};
use serde::Serialize;

/// One target's status.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// Key in the config.
    pub key: String,
    /// latency or batch.
    pub class: scx_slo_model::Class,
    /// Map index.
    pub index: u32,
    /// cgroup directory, when resolved.
    pub cgroup: Option<String>,
    /// cgroup id, when resolved.
    pub cgroup_id: Option<u64>,
    /// Counters and histograms from the kernel.
    pub stats: Option<TargetStats>,
    /// Upper bound of the bucket holding the median run-queue delay, ns.
    pub rq_delay_p50_le_ns: Option<u64>,
    /// Same for the 99th percentile.
    pub rq_delay_p99_le_ns: Option<u64>,
}

/// The whole status.
#[derive(Debug, Serialize)]
pub struct Status {
    /// running, stopped, ejected.
    pub state: &'static str,
    /// enforce (other modes come with their issues).
    pub mode: &'static str,
    /// partial or all.
    pub switch: scx_slo_model::SwitchMode,
    /// Applied config generation, 1 at start, +1 per reload.
    pub generation: u64,
    /// The config file.
    pub config_path: String,
    /// What the kernel offers.
    pub kernel: KernelFeatures,
    /// Time to open and load (verify) the BPF object, ms.
    pub load_ms: f64,
    /// Time to attach, ms.
    pub attach_ms: f64,
    /// Time the last apply of maps took, µs.
    pub last_apply_us: f64,
    /// Threads switched to SCHED_EXT (partial mode).
    pub switched_threads: usize,
    /// Ring-buffer events received.
    pub events_received: u64,
    /// The last rejected reload, if any.
    pub last_reload_error: Option<String>,
    /// Targets.
    pub targets: Vec<TargetStatus>,
    /// Whole-scheduler counters.
    pub global: std::collections::BTreeMap<&'static str, u64>,
    /// Why the scheduler exited, once it has.
    pub exit: Option<ExitInfo>,
}

/// Writes `value` as JSON to `path` atomically: temp file, fsync, rename.
pub fn write_atomic(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, value)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
