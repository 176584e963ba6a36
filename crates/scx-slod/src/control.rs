// SPDX-License-Identifier: GPL-2.0-only
//! The requests the engine takes, its replies and errors, and the handle the
//! D-Bus service and signal handlers use to reach it. Wire types live here so
//! that the service, the proxy and the CLI share one definition.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use scx_slo_api::State;

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
    /// Apply the config file as one generation. The caller read it, off
    /// the engine thread ([`EngineHandle::read_config`]): the text, or why it
    /// could not be read.
    Reload {
        /// The file's text, or what went wrong reading it.
        text: Result<String, String>,
    },
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
    /// Remove a budget override: the config file's budget applies again.
    ClearBudget {
        /// Target key.
        unit: String,
    },
    /// Close an open circuit breaker.
    ResetBreaker,
    /// Stop the daemon (signals).
    Shutdown,
}

pub use scx_slo_api::{ControlError, Reply};

/// A request with the way back.
pub struct Envelope {
    /// What to do.
    pub request: Request,
    /// Where the result goes (None for fire-and-forget, e.g. signals).
    pub reply: Option<tokio::sync::oneshot::Sender<Reply>>,
    /// Who asked (the audit trail records it for mutating requests).
    pub caller: Caller,
    /// When the request was queued for the engine: Disable's reply says
    /// how long it waited, apart from the detach itself.
    pub queued_at: std::time::Instant,
}

impl Envelope {
    /// A request queued now.
    pub fn new(request: Request, reply: Option<tokio::sync::oneshot::Sender<Reply>>, caller: Caller) -> Envelope {
        Envelope { request, reply, caller, queued_at: std::time::Instant::now() }
    }
}

pub use scx_slo_api::audit::Caller;

impl Request {
    /// Whether the request changes something (and is audited).
    pub fn is_mutating(&self) -> bool {
        !matches!(self, Request::Status | Request::ListTargets | Request::Explain { .. })
    }

    /// The request's name, as the D-Bus method's.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "Status",
            Request::ListTargets => "ListTargets",
            Request::Explain { .. } => "Explain",
            Request::Enable { .. } => "Enable",
            Request::Disable { .. } => "Disable",
            Request::Reload { .. } => "Reload",
            Request::SetBudget { .. } => "SetBudget",
            Request::ClearBudget { .. } => "ClearBudget",
            Request::ResetBreaker => "ResetBreaker",
            Request::Shutdown => "Shutdown",
        }
    }

    /// The arguments the audit trail records (a reload's file by digest and
    /// size, not its text).
    pub fn audit_args(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Request::Status | Request::ListTargets | Request::ResetBreaker | Request::Shutdown => json!({}),
            Request::Explain { unit } | Request::ClearBudget { unit } => json!({ "unit": unit }),
            Request::Enable { mode } => json!({ "mode": mode }),
            Request::Disable { reason } => json!({ "reason": reason }),
            Request::Reload { text: Ok(text) } => json!({ "config_sha256": scx_slo_model::config_digest(text), "config_bytes": text.len() }),
            Request::Reload { text: Err(why) } => json!({ "config_unreadable": why }),
            Request::SetBudget { unit, runtime_us, period_us, key } => {
                json!({ "unit": unit, "runtime_us": runtime_us, "period_us": period_us, "idempotency_key": key })
            }
        }
    }
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
    /// Read slots: see [`ENGINE_QUEUE`] and [`READ_SLOTS`].
    pub(crate) reads: Arc<tokio::sync::Semaphore>,
    /// The operators' own read slots ([`OPERATOR_READ_SLOTS`]): reads that
    /// came through the operator socket, which only root and group
    /// `scx-slo` can reach, so no other sender can take them.
    pub(crate) operator_reads: Arc<tokio::sync::Semaphore>,
    /// The config file, read for Reload here and not on the engine thread.
    pub(crate) config_path: Arc<std::path::PathBuf>,
}

/// How long reading the config file for a reload may take. The read is off
/// the engine thread (a hung file system never delays a Disable); past this
/// the reload is refused with the reason.
pub const CONFIG_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Requests the engine queues at most.
pub const ENGINE_QUEUE: usize = 64;
/// Reads (Status, ListTargets, Explain) queued or being answered at most.
/// Any local user may read, so reads alone must never fill the queue or the
/// daemon's memory (before this limit, 800 large Explain calls as `nobody` made
/// root's calls wait 8.4 s or get Busy, and RSS went from 10 MB to 1.47 GB):
/// past this a read is told Busy at once, and at least
/// `ENGINE_QUEUE - READ_SLOTS` places stay for mutations, so Disable waits
/// behind at most `READ_SLOTS` reads.
pub const READ_SLOTS: usize = 4;
/// Reads from the operator socket queued at most, apart from
/// [`READ_SLOTS`]: with 200 connections of nobody reading, root's Status
/// used to be told Busy 11 times in 20.
pub const OPERATOR_READ_SLOTS: usize = 2;

impl Request {
    /// Whether any local user may send it (it changes nothing).
    pub fn is_read(&self) -> bool {
        matches!(self, Request::Status | Request::ListTargets | Request::Explain { .. })
    }
}

impl EngineHandle {
    /// Sends a read and waits for its result.
    pub async fn call(&self, request: Request) -> Reply {
        self.call_as(request, Caller::default()).await
    }

    /// Sends a request on behalf of `caller` and waits for its result.
    pub async fn call_as(&self, request: Request, caller: Caller) -> Reply {
        self.call_in(request, caller, &self.reads, READ_SLOTS).await
    }

    /// The same, for a caller on the operator socket: its reads use the
    /// operators' own slots.
    pub async fn call_as_operator(&self, request: Request, caller: Caller) -> Reply {
        self.call_in(request, caller, &self.operator_reads, OPERATOR_READ_SLOTS).await
    }

    async fn call_in(&self, request: Request, caller: Caller, reads: &Arc<tokio::sync::Semaphore>, slots: usize) -> Reply {
        // Held until the reply arrives, so a read's place counts while the
        // engine works on it too.
        let _slot = if request.is_read() {
            match reads.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => return Err(ControlError::Busy(format!("{slots} reads are already waiting for the engine"))),
            }
        } else {
            None
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Envelope::new(request, Some(tx), caller)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ControlError::Busy(format!("the engine has {ENGINE_QUEUE} requests queued")))
            }
            Err(TrySendError::Disconnected(_)) => return Err(ControlError::Failed("the engine has stopped".into())),
        }
        rx.await.unwrap_or_else(|_| Err(ControlError::Failed("the engine stopped before replying".into())))
    }

    /// Reads the config file on a blocking thread, bounded in time (and, by
    /// `read_config_text`, in size and file type): its text, or why not.
    pub async fn read_config(&self) -> Result<String, String> {
        let path = Arc::clone(&self.config_path);
        let read = tokio::task::spawn_blocking(move || scx_slo_model::read_config_text(&path).map_err(|e| format!("reading {}: {e}", path.display())));
        match tokio::time::timeout(CONFIG_READ_TIMEOUT, read).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("reading {}: {e}", self.config_path.display())),
            Err(_) => Err(format!("reading {} took over {} s", self.config_path.display(), CONFIG_READ_TIMEOUT.as_secs())),
        }
    }

    /// Reads the config file and applies it (Reload) on behalf of `caller`.
    pub async fn reload(&self, caller: Caller) -> Reply {
        let text = self.read_config().await;
        self.call_as(Request::Reload { text }, caller).await
    }

    /// Sends a request without waiting (signal handlers).
    pub fn post(&self, request: Request) -> bool {
        // The sender of a signal is not known here (tokio's signal streams
        // do not carry siginfo): recorded as a signal, without a pid.
        let caller = Caller { via: "signal".into(), ..Default::default() };
        self.tx.try_send(Envelope::new(request, None, caller)).is_ok()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config is read off the engine thread, and a FIFO (which
    /// would block a reader until a writer comes) is refused by name.
    #[tokio::test]
    async fn reload_reads_the_file_off_the_engine_thread_and_refuses_a_fifo() {
        let dir = std::env::temp_dir().join(format!("scx-slod-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("config.json");
        let _ = std::fs::remove_file(&fifo);
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        let handle = EngineHandle {
            tx,
            snapshot: Arc::default(),
            reads: Arc::new(tokio::sync::Semaphore::new(READ_SLOTS)),
            operator_reads: Arc::new(tokio::sync::Semaphore::new(OPERATOR_READ_SLOTS)),
            config_path: Arc::new(fifo.clone()),
        };
        let e = handle.read_config().await.unwrap_err();
        assert!(e.contains("not a regular file") && e.contains("config.json"), "{e}");
        std::fs::write(dir.join("ok.json"), "{}").unwrap();
        let handle = EngineHandle { config_path: Arc::new(dir.join("ok.json")), ..handle };
        assert_eq!(handle.read_config().await.as_deref(), Ok("{}"));
    }

    /// Reads cannot fill the engine's queue; a Disable behind any
    /// number of read attempts is still queued (an engine that never
    /// answers stands in for one that is busy).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_never_take_the_emergency_lane() {
        let (tx, rx) = std::sync::mpsc::sync_channel(ENGINE_QUEUE);
        let handle = EngineHandle {
            tx,
            snapshot: Arc::default(),
            reads: Arc::new(tokio::sync::Semaphore::new(READ_SLOTS)),
            operator_reads: Arc::new(tokio::sync::Semaphore::new(OPERATOR_READ_SLOTS)),
            config_path: Arc::new("/nonexistent/config.json".into()),
        };
        let mut waiting = Vec::new();
        for _ in 0..READ_SLOTS {
            let h = handle.clone();
            waiting.push(tokio::spawn(async move { h.call(Request::Explain { unit: "api.service".into() }).await }));
        }
        while handle.reads.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            let busy = handle.call(Request::Status).await;
            assert!(matches!(busy, Err(ControlError::Busy(_))), "{busy:?}");
        }
        let h = handle.clone();
        let disable = tokio::spawn(async move { h.call(Request::Disable { reason: "incident".into() }).await });
        // The engine sees the reads, then the Disable: nothing was dropped.
        let mut seen = Vec::new();
        while seen.len() < READ_SLOTS + 1 {
            let envelope = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("queued");
            seen.push(envelope.request.is_read());
            if let Some(reply) = envelope.reply {
                let _ = reply.send(Ok("done".into()));
            }
        }
        assert_eq!(seen.iter().filter(|r| !**r).count(), 1, "the Disable was queued: {seen:?}");
        assert_eq!(disable.await.expect("join").expect("reply"), "done");
        for w in waiting {
            assert!(w.await.expect("join").is_ok());
        }
    }
}
