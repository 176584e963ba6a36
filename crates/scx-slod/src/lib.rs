// SPDX-License-Identifier: GPL-2.0-only
//! scx-slod as a library: the engine that owns the scheduler, the D-Bus
//! service with its proxy and wire types (shared with the `scx-slo` CLI), and
//! the pure pieces (lifecycle, breaker, idempotency, persistence).

pub mod advisory;
pub mod attribution;
pub mod backend;
pub mod breaker;
pub mod control;
// zbus's #[interface] generates undocumented property-change helpers.
#[allow(missing_docs)]
pub mod dbus;
pub mod engine;
pub mod http;
pub mod idempotency;
pub mod lifecycle;
pub mod metrics;
pub mod modes;
pub mod overhead;
pub mod persist;
pub mod resolver;
pub mod slots;
pub mod switcher;
pub mod telemetry;

/// Process exit codes of scx-slod (docs/operations.md).
pub mod exit {
    /// Clean stop.
    pub const OK: i32 = 0;
    /// Invalid config at start.
    pub const INVALID_CONFIG: i32 = 1;
    /// Unreadable config at start.
    pub const UNREADABLE_CONFIG: i32 = 2;
    /// The mode is not available on this kernel.
    pub const MODE_UNAVAILABLE: i32 = 3;
    /// Could not start (topology, state file, D-Bus when required).
    pub const LOAD_FAILED: i32 = 4;
    /// The system bus connection or the name org.scxslo1 was lost while
    /// running: the daemon stops cleanly so that systemd restarts it onto
    /// the bus (Restart=on-failure), instead of running on unreachable.
    pub const BUS_LOST: i32 = 5;
}
