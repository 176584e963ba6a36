// SPDX-License-Identifier: GPL-2.0-only
//! scx-slod as a library: the engine that owns the scheduler, the D-Bus
//! service (its wire, the proxy and documents, is scx-slo-api), and the pure
//! pieces (lifecycle, breaker, idempotency, persistence).

pub mod advisory;
pub mod attribution;
pub mod audit;
pub mod backend;
pub mod breaker;
pub mod bus_callers;
pub mod carry;
pub mod change_limit;
pub mod control;
pub mod disable_marker;
// zbus's #[interface] generates undocumented property-change helpers.
#[allow(missing_docs)]
pub mod dbus;
pub mod disk_writer;
pub mod engine;
pub mod http;
pub mod idempotency;
pub mod lifecycle;
pub mod metrics;
pub mod modes;
pub mod operator_socket;
pub mod overhead;
pub mod persist;
pub mod priority;
pub mod resolver;
pub mod scrape_owner;
pub mod scraper;
pub mod slots;
pub mod switcher;
pub mod telemetry;

/// Process exit codes of scx-slod (docs/operations.md).
pub use scx_slo_api::exit::daemon as exit;
