// SPDX-License-Identifier: GPL-2.0-only
//! What the engine is started with: the command line's settings, and what
//! probing the machine found.

use std::path::PathBuf;
use std::time::Duration;

use scx_slo_api::{Capabilities, KernelFeatures};
use scx_slo_bpf::Topology;

use scx_slo_model::Config;

use super::generation::ConfigFile;
use crate::breaker::BreakerConfig;
use crate::persist::PersistentState;

/// Which scheduler the engine drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The scx_slo BPF scheduler (needs sched_ext).
    Bpf,
    /// An in-memory stand-in for control-plane tests on any host.
    Simulated,
}

/// Everything the engine is started with.
pub struct EngineOptions {
    /// The config file.
    pub config_path: PathBuf,
    /// Where the status document goes.
    pub status_path: PathBuf,
    /// Where persistent state goes.
    pub state_path: PathBuf,
    /// The audit trail's directory.
    pub audit_dir: PathBuf,
    /// The trail's size cap, bytes (retention: the oldest files go first).
    pub audit_retain_bytes: u64,
    /// Scan period (partial switching, exit checks).
    pub tick: Duration,
    /// Period of the slower work: re-resolving targets, reading cgroup
    /// files and maps for metrics, the overhead guard and advisory.
    pub telemetry_every: Duration,
    /// Status file period.
    pub status_every: Duration,
    /// Backend.
    pub backend: BackendKind,
    /// Breaker settings.
    pub breaker: BreakerConfig,
    /// The host-wide limit on automatic changes (adaptive budget steps and
    /// advisory weights together): at most this many in any window.
    pub auto_change_limit: (usize, Duration),
    /// systemd's bus for advisory mode (None: the system bus). Tests point it
    /// at a private bus, which also stands in for systemd's presence.
    pub systemd_bus: Option<String>,
}

/// What the engine found on the machine before it started.
pub struct Probed {
    /// The config file as read at start.
    pub file: ConfigFile,
    /// Its validated config.
    pub config: Config,
    /// The kernel's features.
    pub features: KernelFeatures,
    /// What the host offers.
    pub caps: Capabilities,
    /// The CPUs and their nodes.
    pub topology: Topology,
    /// The persistent state as loaded.
    pub persistent: PersistentState,
}

