// SPDX-License-Identifier: GPL-2.0-only
//! The daemon's lifecycle states and running modes, as the bus, the metrics
//! and the documents name them. The rules for moving between states live in
//! the daemon's lifecycle module; these are the names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where the daemon is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No scheduler loaded; either never enabled or disabled by an operator.
    #[default]
    Disabled,
    /// Loading and attaching the scheduler (or the probes); also on the
    /// way from one mode to another (Enable with another mode).
    Starting,
    /// The scheduler is attached and the config applied.
    Running,
    /// The scheduler failed or was ejected; retrying with backoff.
    Degraded,
    /// The circuit breaker is open: no more retries until an operator resets it.
    Failed,
    /// Only in the status file written as the daemon stops from running:
    /// never a lifecycle state, so a stale file never reads "running".
    Stopped,
}

impl State {
    /// The states the lifecycle moves through (not [`State::Stopped`]).
    pub const LIFECYCLE: [State; 5] = [State::Disabled, State::Starting, State::Running, State::Degraded, State::Failed];

    /// The name on D-Bus, in metrics and in the status document.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Disabled => "disabled",
            State::Starting => "starting",
            State::Running => "running",
            State::Degraded => "degraded",
            State::Failed => "failed",
            State::Stopped => "stopped",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode the daemon actually runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActiveMode {
    /// Probes only (the default: the mode that changes nothing).
    #[default]
    Observe,
    /// Probes plus CPUWeight through systemd.
    Advisory,
    /// The scx_slo scheduler.
    Enforce,
}

impl ActiveMode {
    /// Every mode, lowest first.
    pub const ALL: [ActiveMode; 3] = [ActiveMode::Observe, ActiveMode::Advisory, ActiveMode::Enforce];

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

    /// The `mode` property and status field: the mode running, or `none`.
    pub fn name_of(mode: Option<ActiveMode>) -> &'static str {
        mode.map_or("none", ActiveMode::as_str)
    }
}
