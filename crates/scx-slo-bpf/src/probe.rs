// SPDX-License-Identifier: GPL-2.0-only
//! What the running kernel offers scx-slo, read from sysfs and BTF (never uname).

use std::fs;
use std::path::Path;

use serde::Serialize;

/// sysfs directory that exists when the kernel has CONFIG_SCHED_CLASS_EXT.
pub const SCHED_EXT_DIR: &str = "/sys/kernel/sched_ext";

/// The kernel's scheduling capabilities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelFeatures {
    /// `/proc/sys/kernel/osrelease`, for messages only.
    pub release: String,
    /// `/sys/kernel/sched_ext` exists.
    pub sched_ext: bool,
    /// The kernel's BTF describes `struct sched_ext_ops` (needed to load).
    pub sched_ext_btf: bool,
    /// `/sys/kernel/btf/vmlinux` exists (CO-RE and observe mode need it).
    pub btf: bool,
    /// `/sys/kernel/sched_ext/state` (enabled, disabled, ...), if present.
    pub sched_ext_state: Option<String>,
    /// `/sys/kernel/sched_ext/root/ops`: the loaded scheduler's name, if any.
    pub root_ops: Option<String>,
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

impl KernelFeatures {
    /// Probes the running kernel.
    pub fn probe() -> Self {
        let sched_ext = Path::new(SCHED_EXT_DIR).is_dir();
        let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
        let sched_ext_btf = btf
            && scx_utils::compat::struct_has_field("sched_ext_ops", "dispatch").unwrap_or(false);
        KernelFeatures {
            release: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            sched_ext,
            sched_ext_btf,
            btf,
            sched_ext_state: read_trimmed(format!("{SCHED_EXT_DIR}/state")),
            root_ops: read_trimmed(format!("{SCHED_EXT_DIR}/root/ops")).filter(|s| !s.is_empty()),
        }
    }

    /// Why enforce mode cannot run here, or `None` when it can.
    pub fn enforce_unavailable(&self) -> Option<String> {
        if !self.sched_ext {
            return Some(format!(
                "kernel {} has no sched_ext ({SCHED_EXT_DIR} is missing): enforce mode needs \
                 CONFIG_SCHED_CLASS_EXT=y (Linux 6.12 or newer); run with mode \"observe\" on this host",
                self.release
            ));
        }
        if !self.sched_ext_btf {
            return Some(format!(
                "kernel {} has sched_ext but its BTF (/sys/kernel/btf/vmlinux) does not describe \
                 struct sched_ext_ops; enforce mode needs CONFIG_DEBUG_INFO_BTF=y",
                self.release
            ));
        }
        None
    }
}
