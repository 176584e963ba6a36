// SPDX-License-Identifier: GPL-2.0-only
//! Which modes this host can run, and which one a config gets.
//!
//! enforce: sched_ext with its BTF (Linux 6.12+). advisory: systemd manages
//! a unified cgroup2 tree (CPUWeight goes to cgroup v2's cpu.weight).
//! observe: BTF for the CO-RE probes. `auto` takes the highest available;
//! an explicit mode that the host lacks is an error naming what is missing.

use std::path::Path;

use scx_slo_bpf::KernelFeatures;

pub use scx_slo_api::{ActiveMode, Capabilities};

/// Probes the running host.
pub fn probe(kernel: &KernelFeatures, cgroup2_root: Option<&Path>) -> Capabilities {
    Capabilities {
        sched_ext: kernel.enforce_unavailable().is_none(),
        btf: kernel.btf,
        cgroup2: cgroup2_root.is_some(),
        cgroup2_unified: cgroup2_root == Some(Path::new("/sys/fs/cgroup")),
        systemd: Path::new("/run/systemd/system").is_dir(),
        enforce_unavailable: kernel.enforce_unavailable(),
    }
}
