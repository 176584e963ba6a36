// SPDX-License-Identifier: GPL-2.0-only
//! The requests the engine takes, its replies and errors, and the handle the
//! D-Bus service and signal handlers use to reach it. Wire types live here so
//! that the service, the proxy and the CLI share one definition.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::lifecycle::State;

/// A request to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The status document (JSON).
    Status,
    /// Targets and their resolution (JSON).
    ListTargets,
    /// Why a unit has its budget and priority now (JSON).
    Explain {
        /// Target key.
        unit: String,
    },
    /// Load the scheduler (and close the breaker).
    Enable {
        /// `enforce` or `auto`.
        mode: String,
    },
    /// Emergency stop: detach now; stays off across restarts until Enable.
    Disable {
        /// Recorded in the state file and the journal.
        reason: String,
    },
    /// Re-read and apply the config file as one generation.
    Reload,
    /// Override a latency target's budget (admission-checked).
    SetBudget {
        /// Target key.
        unit: String,
        /// Runtime per period, µs.
        runtime_us: u64,
        /// Period, µs.
        period_us: u64,
        /// Idempotency key; empty for none.
        key: String,
    },
    /// Close an open circuit breaker.
    ResetBreaker,
    /// Stop the daemon (signals).
    Shutdown,
}

/// Errors of control calls, as `org.scxslo1.Error.<Name>` on D-Bus.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControlError {
    /// The caller may not do this.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// An argument is wrong; the message names it.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The config (file or after an override) is invalid; nothing changed.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The circuit breaker is open.
    #[error("circuit breaker open: {0}")]
    BreakerOpen(String),
    /// Not available in this build or on this kernel.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The same idempotency key was used with other arguments.
    #[error("idempotency conflict: {0}")]
    Conflict(String),
    /// The engine's queue is full; try again.
    #[error("busy: {0}")]
    Busy(String),
    /// The work failed; the running state is unchanged unless said otherwise.
    #[error("failed: {0}")]
    Failed(String),
}

/// A reply: a JSON or text payload, or an error.
pub type Reply = Result<String, ControlError>;

/// A request with the way back.
pub struct Envelope {
    /// What to do.
    pub request: Request,
    /// Where the result goes (None for fire-and-forget, e.g. signals).
    pub reply: Option<tokio::sync::oneshot::Sender<Reply>>,
}

/// What D-Bus properties show; written only by the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Lifecycle state.
    pub state: State,
    /// Effective mode: `enforce` while the scheduler runs, else `none`.
    pub mode: String,
    /// Applied config generation.
    pub generation: u64,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot { state: State::Disabled, mode: "none".into(), generation: 0 }
    }
}

/// Events the engine publishes for D-Bus signals.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A lifecycle transition.
    StateChanged {
        /// New state.
        state: String,
        /// Effective mode.
        mode: String,
        /// Why.
        reason: String,
    },
    /// A deadline miss reported by the scheduler (rate limited in BPF).
    SloViolation {
        /// Target key.
        unit: String,
        /// `deadline_miss` or `low_slack`.
        kind: String,
        /// Slack at completion, ns (negative for a miss).
        slack_ns: i64,
    },
    /// Properties changed without a transition (a new generation).
    PropertiesChanged,
}

/// The way into the engine.
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) tx: SyncSender<Envelope>,
    pub(crate) snapshot: Arc<Mutex<Snapshot>>,
}

impl EngineHandle {
    /// Sends a request and waits for its result.
    pub async fn call(&self, request: Request) -> Reply {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Envelope { request, reply: Some(tx) }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ControlError::Busy("the engine has 64 requests queued".into())),
            Err(TrySendError::Disconnected(_)) => return Err(ControlError::Failed("the engine has stopped".into())),
        }
        rx.await.unwrap_or_else(|_| Err(ControlError::Failed("the engine stopped before replying".into())))
    }

    /// Sends a request without waiting (signal handlers).
    pub fn post(&self, request: Request) -> bool {
        self.tx.try_send(Envelope { request, reply: None }).is_ok()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
