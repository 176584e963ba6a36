// SPDX-License-Identifier: GPL-2.0-only
//! scx-slo's wire, shared by the daemon (which serves it) and everything that
//! talks to it (the CLI, the deploy gate, the lab): the D-Bus names, proxy and
//! error enum, the typed and versioned documents Status, ListTargets and
//! Explain return, the host facts they carry, and the process exit codes.
//!
//! It depends on the config model and serde/zbus only, so a client never
//! links libbpf or the daemon.

pub mod audit;
pub mod counters;
pub mod dbus;
pub mod documents;
pub mod error;
pub mod exit;
pub mod host;
pub mod operator;
pub mod paths;
pub mod scrape;
pub mod state;

pub use documents::{AdaptiveDecision, AdaptiveReport, BudgetOverride, Explain, Status, TargetEntry, TargetList, TargetStats, TargetStatus, DOCUMENT_VERSION};
pub use counters::{Counter, Counters, GlobalCounter};
pub use error::{ControlError, Reply};
pub use host::{Capabilities, ExitInfo, KernelFeatures};
pub use state::{ActiveMode, State};
