// SPDX-License-Identifier: GPL-2.0-only
//! What the engine needs from the machine, behind a trait: reading the config
//! file, finding target cgroups, writing the state and status files, telling
//! systemd. The daemon uses [`SystemHost`]; the engine's unit tests use a
//! host in memory, so every request and transition is tested without root,
//! a bus or a kernel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use scx_slo_api::Status;
use scx_slo_bpf::Topology;
use scx_slo_model::Config;
use tracing::{debug, error};

use super::generation::ConfigFile;
use super::options::{BackendKind, EngineOptions, Probed};
use crate::persist::{self, PersistentState};
use crate::resolver::{self, Resolved};

/// Why a config file cannot be used: the exit code at start, and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigRefused {
    /// `exit::INVALID_CONFIG` or `exit::UNREADABLE_CONFIG`.
    pub code: i32,
    /// What is wrong, naming the file.
    pub message: String,
}

/// The machine, as the engine sees it. (The config file is read before the
/// engine starts, and for a reload by the caller, off the engine thread.)
pub trait Host: Send {
    /// CPUs admission counts when `cpu_capacity` is `auto`.
    fn online_cpus(&self) -> u32;
    /// The cgroup2 mount.
    fn cgroup_root(&self) -> &Path;
    /// Each target's cgroup, for those that exist now.
    fn resolve_all(&self, config: &Config) -> BTreeMap<String, Resolved>;
    /// What writes the persistent state durably (the error says where
    /// and why); it runs on the disk writer's thread
    /// ([`crate::disk_writer`]), so a hung disk never holds the engine.
    fn state_saver(&self) -> crate::disk_writer::Saver;
    /// Replaces the status file.
    fn write_status(&self, status: &Status) -> Result<(), String>;
    /// Tells systemd (READY, STATUS, WATCHDOG, STOPPING).
    fn notify(&self, states: &[sd_notify::NotifyState]);
    /// Keeps an operator's Disable (`Some(reason)`) in the runtime
    /// directory, or removes it (`None`): [`crate::disable_marker`].
    fn mark_disabled(&self, reason: Option<&str>) -> Result<(), String>;
}

/// Reads and validates a config file: the file and its config, or why not.
pub fn read_config(path: &Path, cpus: u32) -> Result<(ConfigFile, Config), ConfigRefused> {
    let text = scx_slo_model::read_config_text(path).map_err(|e| ConfigRefused {
        code: if e.is_invalid_content() { crate::exit::INVALID_CONFIG } else { crate::exit::UNREADABLE_CONFIG },
        message: format!("reading {}: {e}", path.display()),
    })?;
    parse_config(path, text, cpus)
}

/// Validates a config file's text (`path` names it in the message).
pub fn parse_config(path: &Path, text: String, cpus: u32) -> Result<(ConfigFile, Config), ConfigRefused> {
    let config = scx_slo_model::load_str(&text, Some(cpus))
        .map_err(|errors| ConfigRefused { code: crate::exit::INVALID_CONFIG, message: format!("{} is invalid:\n{errors}", path.display()) })?;
    Ok((ConfigFile::from_text(text), config))
}

/// The CPUs online now.
pub fn online_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Probes the machine for the engine: the config is valid, the mode it asks
/// for is available, cgroup2 is mounted, the topology and the persistent
/// state are readable. `Err` carries the process exit code and the message.
pub fn probe(opts: &EngineOptions) -> Result<(SystemHost, Probed), (i32, String)> {
    let (file, config) = read_config(&opts.config_path, online_cpus()).map_err(|r| (r.code, r.message))?;
    let features = scx_slo_bpf::probe::probe();
    let cgroup_root = resolver::cgroup2_root();
    let mut caps = crate::modes::probe(&features, cgroup_root.as_deref());
    if opts.systemd_bus.is_some() {
        // Test hook: a private bus plays systemd on a host without it.
        caps.systemd = true;
        caps.cgroup2_unified = caps.cgroup2;
    }
    if opts.backend == BackendKind::Simulated {
        caps.sched_ext = true;
        caps.enforce_unavailable = None;
    }
    // Checked here, before the cgroup mount and the topology, for the exit
    // code (the engine selects again from what is probed).
    select_mode(&caps, config.mode)?;
    let cgroup_root = cgroup_root.ok_or((
        crate::exit::MODE_UNAVAILABLE,
        "no cgroup2 hierarchy is mounted; scx-slo targets cgroups by their v2 id".to_string(),
    ))?;
    let topology = Topology::from_sysfs().map_err(|e| (crate::exit::LOAD_FAILED, format!("reading the CPU topology: {e:#}")))?;
    let loaded = persist::load(&opts.state_path)
        .map_err(|e| (crate::exit::LOAD_FAILED, format!("reading {}: {e}", opts.state_path.display())))?;
    if let Some(msg) = &loaded.quarantined {
        error!("{msg}");
    }
    let mut persistent = loaded.state;
    let marker = crate::disable_marker::read(&crate::disable_marker::path_beside(&opts.status_path));
    if let Err(why) = &marker {
        error!("{why}: staying off until Enable (Enable replaces it)");
    }
    persistent.operator_disabled = crate::disable_marker::merge(persistent.operator_disabled, marker);
    let host = SystemHost {
        config_path: opts.config_path.clone(),
        state_path: opts.state_path.clone(),
        status_path: opts.status_path.clone(),
        cgroup_root,
    };
    Ok((host, Probed { file, config, features, caps, topology, persistent }))
}

/// The mode `requested` gets on a host with `caps`, or the exit code and
/// why it is unavailable.
pub fn select_mode(caps: &scx_slo_api::Capabilities, requested: scx_slo_model::Mode) -> Result<scx_slo_api::ActiveMode, (i32, String)> {
    caps.select(requested).map_err(|why| {
        (crate::exit::MODE_UNAVAILABLE, format!("mode {}: {why}", serde_json::to_string(&requested).unwrap_or_default()))
    })
}

/// The real machine.
pub struct SystemHost {
    /// The config file.
    pub config_path: PathBuf,
    /// The persistent state file.
    pub state_path: PathBuf,
    /// The status file.
    pub status_path: PathBuf,
    /// The cgroup2 mount.
    pub cgroup_root: PathBuf,
}

impl Host for SystemHost {
    fn online_cpus(&self) -> u32 {
        online_cpus()
    }

    fn cgroup_root(&self) -> &Path {
        &self.cgroup_root
    }

    fn resolve_all(&self, config: &Config) -> BTreeMap<String, Resolved> {
        resolver::resolve_all(&self.cgroup_root, config)
    }

    fn state_saver(&self) -> crate::disk_writer::Saver {
        let path = self.state_path.clone();
        Box::new(move |state: &PersistentState| persist::save_json(&path, state).map_err(|e| format!("{}: {e}", path.display())))
    }

    fn write_status(&self, status: &Status) -> Result<(), String> {
        persist::replace_json(&self.status_path, status).map_err(|e| format!("{}: {e}", self.status_path.display()))
    }

    fn notify(&self, states: &[sd_notify::NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            debug!(error = %e, "sd_notify");
        }
    }

    fn mark_disabled(&self, reason: Option<&str>) -> Result<(), String> {
        let path = crate::disable_marker::path_beside(&self.status_path);
        match reason {
            Some(r) => crate::disable_marker::write(&path, r),
            None => crate::disable_marker::clear(&path),
        }
    }
}
