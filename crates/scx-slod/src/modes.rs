// SPDX-License-Identifier: GPL-2.0-only
//! Which modes this host can run, and which one a config gets.
//!
//! enforce: sched_ext with its BTF (Linux 6.12+). advisory: systemd manages
//! a unified cgroup2 tree (CPUWeight goes to cgroup v2's cpu.weight).
//! observe: BTF for the CO-RE probes. `auto` takes the highest available;
//! an explicit mode that the host lacks is an error naming what is missing.

use std::path::Path;

use scx_slo_bpf::KernelFeatures;
use scx_slo_model::Mode;
use serde::Serialize;

/// A mode the daemon actually runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActiveMode {
    /// Probes only.
    Observe,
    /// Probes plus CPUWeight through systemd.
    Advisory,
    /// The scx_slo scheduler.
    Enforce,
}

impl ActiveMode {
    /// The name on D-Bus, in metrics and in the status document.
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveMode::Observe => "observe",
            ActiveMode::Advisory => "advisory",
            ActiveMode::Enforce => "enforce",
        }
    }

    /// The value of the `scx_slo_mode` gauge: 0 none, 1 observe, 2 advisory, 3 enforce.
    pub fn metric_value(mode: Option<ActiveMode>) -> i64 {
        match mode {
            None => 0,
            Some(ActiveMode::Observe) => 1,
            Some(ActiveMode::Advisory) => 2,
            Some(ActiveMode::Enforce) => 3,
        }
    }
}

/// What the host offers, as probed at start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
    /// Probes the running host.
    pub fn probe(kernel: &KernelFeatures, cgroup2_root: Option<&Path>) -> Self {
        Capabilities {
            sched_ext: kernel.enforce_unavailable().is_none(),
            btf: kernel.btf,
            cgroup2: cgroup2_root.is_some(),
            cgroup2_unified: cgroup2_root == Some(Path::new("/sys/fs/cgroup")),
            systemd: Path::new("/run/systemd/system").is_dir(),
            enforce_unavailable: kernel.enforce_unavailable(),
        }
    }

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
