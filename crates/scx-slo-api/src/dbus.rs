// SPDX-License-Identifier: GPL-2.0-only
//! `org.scxslo1.Manager`: its names, the bounds on its arguments, and the
//! client proxy (async and blocking) every client uses. The daemon serves the
//! interface (scx-slod's dbus module) with the same names and bounds.

use crate::error::ControlError;

/// Bus name.
pub const BUS_NAME: &str = "org.scxslo1";
/// Object path.
pub const OBJECT_PATH: &str = "/org/scxslo1";
/// Interface name.
pub const INTERFACE: &str = "org.scxslo1.Manager";
/// Operators' group.
pub const OPERATOR_GROUP: &str = "scx-slo";

/// Longest string argument each member takes, in bytes: checked first, and
/// an error never echoes the argument (before, a 7 MB unit name given to
/// Explain came back `{:?}`-escaped in the error, about 35 MB, over the bus's
/// message limit; dbus-daemon dropped the daemon's connection and with it
/// the name `org.scxslo1`, so no Disable was possible until a restart).
pub mod arg_limits {
    /// A unit name (systemd's own limit) or cgroup path key.
    pub const UNIT: usize = 255;
    /// A mode name.
    pub const MODE: usize = 16;
    /// An operator's reason for Disable.
    pub const REASON: usize = 1024;
    /// An idempotency key.
    pub const KEY: usize = 128;
}

/// `value` when it is at most `max` bytes without control characters. The
/// error names the argument and its size, never echoes it (a 7 MB reply once
/// knocked the daemon off the bus). Public for the fuzz target.
pub fn bounded(arg: &str, value: String, max: usize) -> Result<String, ControlError> {
    if value.len() > max {
        return Err(ControlError::InvalidArgument(format!("{arg} is {} bytes; at most {max}", value.len())));
    }
    if value.chars().any(char::is_control) {
        return Err(ControlError::InvalidArgument(format!("{arg} contains a control character")));
    }
    Ok(value)
}

/// The client side, for the CLI and tests.
#[zbus::proxy(interface = "org.scxslo1.Manager", default_service = "org.scxslo1", default_path = "/org/scxslo1")]
pub trait Manager {
    /// See the service.
    fn status(&self) -> zbus::Result<String>;
    /// See the service.
    fn list_targets(&self) -> zbus::Result<String>;
    /// See the service.
    fn explain(&self, unit: &str) -> zbus::Result<String>;
    /// See the service.
    fn enable(&self, mode: &str) -> zbus::Result<String>;
    /// See the service.
    fn disable(&self, reason: &str) -> zbus::Result<String>;
    /// See the service.
    fn reload(&self) -> zbus::Result<String>;
    /// See the service.
    fn set_budget(&self, unit: &str, runtime_us: u64, period_us: u64, idempotency_key: &str) -> zbus::Result<String>;
    /// See the service.
    fn clear_budget(&self, unit: &str) -> zbus::Result<String>;
    /// See the service.
    fn reset_breaker(&self) -> zbus::Result<String>;
    /// See the service.
    #[zbus(property)]
    fn mode(&self) -> zbus::Result<String>;
    /// See the service.
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    /// See the service.
    #[zbus(property)]
    fn config_generation(&self) -> zbus::Result<u64>;
}

/// A dbus-daemon config for a private system-type bus listening on `socket`
/// that allows everything and then includes the policy files in `includedir`
/// (so a test decides whether the project's policy applies). For the D-Bus
/// tests and the VM scenarios; production uses the distribution's bus.
pub fn private_bus_config(socket: &str, includedir: &str) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  <includedir>{includedir}</includedir>
</busconfig>"#
    )
}

