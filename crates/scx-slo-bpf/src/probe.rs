// SPDX-License-Identifier: GPL-2.0-only
//! What the running kernel offers scx-slo, read from sysfs and BTF (never uname).

use std::fs;
use std::path::Path;

pub use scx_slo_api::host::{KernelFeatures, SCHED_EXT_DIR};

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Probes the running kernel.
pub fn probe() -> KernelFeatures {
    let sched_ext = Path::new(SCHED_EXT_DIR).is_dir();
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    let sched_ext_btf = btf && scx_utils::compat::struct_has_field("sched_ext_ops", "dispatch").unwrap_or(false);
    KernelFeatures {
        release: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
        sched_ext,
        sched_ext_btf,
        btf,
        sched_ext_state: read_trimmed(format!("{SCHED_EXT_DIR}/state")),
        root_ops: read_trimmed(format!("{SCHED_EXT_DIR}/root/ops")).filter(|s| !s.is_empty()),
    }
}
