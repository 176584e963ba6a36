// SPDX-License-Identifier: GPL-2.0-only
//! Facts about the host the daemon reports: what the kernel offers, which
//! modes can run, and why a scheduler stopped. The daemon probes them (the
//! BPF crate reads sysfs and BTF); the rules that decide a mode from them are
//! pure and live here, next to the data, so the CLI and tests share them.

use scx_slo_model::Mode;
use serde::{Deserialize, Serialize};

use crate::state::ActiveMode;

/// The scheduling policy `SCHED_EXT` (include/uapi/linux/sched.h; not in
/// libc yet): a thread with it runs on the sched_ext scheduler.
pub const SCHED_EXT: i32 = 7;

/// sysfs directory that exists when the kernel has CONFIG_SCHED_CLASS_EXT.
pub const SCHED_EXT_DIR: &str = "/sys/kernel/sched_ext";

/// The kernel's scheduling capabilities.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

impl KernelFeatures {
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

/// What the host offers, as probed at start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// sched_ext present with BTF for its ops (enforce).
    pub sched_ext: bool,
    /// `/sys/kernel/btf/vmlinux` (observe's CO-RE probes).
    pub btf: bool,
    /// A cgroup2 hierarchy is mounted somewhere.
    pub cgroup2: bool,
    /// cgroup2 is the only hierarchy (`/sys/fs/cgroup` is cgroup2), so
    /// systemd's CPUWeight lands in cpu.weight.
    pub cgroup2_unified: bool,
    /// systemd is PID 1 (`/run/systemd/system` exists, as sd_booted checks).
    pub systemd: bool,
    /// Why enforce is unavailable, when it is.
    pub enforce_unavailable: Option<String>,
}

impl Capabilities {
    /// Each mode and whether it is available, for Status and the
    /// `scx_slo_capability` metric.
    pub fn modes(&self) -> [(ActiveMode, bool); 3] {
        [
            (ActiveMode::Enforce, self.sched_ext && self.cgroup2),
            (ActiveMode::Advisory, self.advisory_unavailable().is_none()),
            (ActiveMode::Observe, self.observe_unavailable().is_none()),
        ]
    }

    fn observe_unavailable(&self) -> Option<String> {
        if !self.btf {
            return Some("the kernel has no BTF (/sys/kernel/btf/vmlinux): observe mode's probes need CONFIG_DEBUG_INFO_BTF=y".into());
        }
        if !self.cgroup2 {
            return Some("no cgroup2 hierarchy is mounted: targets are matched by their cgroup v2 id".into());
        }
        None
    }

    fn advisory_unavailable(&self) -> Option<String> {
        if let Some(why) = self.observe_unavailable() {
            return Some(format!("advisory measures as observe does, and {why}"));
        }
        if !self.systemd {
            return Some("systemd is not running (/run/systemd/system is missing): advisory mode sets CPUWeight through systemd".into());
        }
        if !self.cgroup2_unified {
            return Some("/sys/fs/cgroup is not a unified cgroup2 hierarchy: systemd's CPUWeight needs cgroup v2's cpu controller".into());
        }
        None
    }

    /// Whether observe can stand in while enforce backs off.
    pub fn can_observe(&self) -> bool {
        self.observe_unavailable().is_none()
    }

    /// The mode a config asks for, on this host.
    pub fn select(&self, requested: Mode) -> Result<ActiveMode, String> {
        let enforce_why = || {
            self.enforce_unavailable.clone().unwrap_or_else(|| "no cgroup2 hierarchy is mounted".to_string())
        };
        match requested {
            Mode::Enforce if self.sched_ext && self.cgroup2 => Ok(ActiveMode::Enforce),
            Mode::Enforce => Err(enforce_why()),
            Mode::Advisory => self.advisory_unavailable().map_or(Ok(ActiveMode::Advisory), Err),
            Mode::Observe => self.observe_unavailable().map_or(Ok(ActiveMode::Observe), Err),
            Mode::Auto => self.modes().iter().find(|(_, ok)| *ok).map(|(m, _)| *m).ok_or_else(|| {
                format!(
                    "no mode is available on this host: enforce: {}; advisory: {}; observe: {}",
                    enforce_why(),
                    self.advisory_unavailable().unwrap_or_default(),
                    self.observe_unavailable().unwrap_or_default()
                )
            }),
        }
    }
}


/// Why the scheduler stopped, read from its user_exit_info.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// `enum scx_exit_kind` value.
    pub kind: i32,
    /// Its name (`error_stall`, `sysrq`, ...).
    pub kind_name: String,
    /// Exit code (scx_bpf_exit / restart requests).
    pub exit_code: i64,
    /// The kernel's reason text.
    pub reason: String,
    /// The scheduler's or kernel's message.
    pub msg: String,
}

impl ExitInfo {
    /// True for exits caused by a failure (stall, BPF error), not by an
    /// unload or an operator's SysRq.
    pub fn is_error(&self) -> bool {
        self.kind >= 1024
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn caps(sched_ext: bool, btf: bool, unified: bool, systemd: bool) -> Capabilities {
        Capabilities {
            sched_ext,
            btf,
            cgroup2: true,
            cgroup2_unified: unified,
            systemd,
            enforce_unavailable: (!sched_ext).then(|| "kernel x has no sched_ext".to_string()),
        }
    }

    #[test]
    fn auto_takes_the_highest_available_mode() {
        assert_eq!(caps(true, true, true, true).select(Mode::Auto), Ok(ActiveMode::Enforce));
        assert_eq!(caps(false, true, true, true).select(Mode::Auto), Ok(ActiveMode::Advisory));
        // A hybrid host (these machines): no advisory, observe.
        assert_eq!(caps(false, true, false, true).select(Mode::Auto), Ok(ActiveMode::Observe));
        assert_eq!(caps(false, true, true, false).select(Mode::Auto), Ok(ActiveMode::Observe));
        let none = caps(false, false, true, true).select(Mode::Auto).unwrap_err();
        assert!(none.contains("no sched_ext") && none.contains("BTF"), "{none}");
    }

    #[test]
    fn an_explicit_mode_the_host_lacks_names_what_is_missing() {
        let hybrid = caps(false, true, false, true);
        assert!(hybrid.select(Mode::Enforce).unwrap_err().contains("no sched_ext"));
        assert!(hybrid.select(Mode::Advisory).unwrap_err().contains("unified cgroup2"));
        assert!(caps(false, true, true, false).select(Mode::Advisory).unwrap_err().contains("systemd is not running"));
        assert_eq!(hybrid.select(Mode::Observe), Ok(ActiveMode::Observe));
        // An explicit lower mode is honoured on a host that could enforce.
        assert_eq!(caps(true, true, true, true).select(Mode::Observe), Ok(ActiveMode::Observe));
    }

    #[test]
    fn mode_gauge_values_are_ordered() {
        assert_eq!(ActiveMode::metric_value(None), 0);
        assert!(ActiveMode::metric_value(Some(ActiveMode::Enforce)) > ActiveMode::metric_value(Some(ActiveMode::Advisory)));
    }
}
