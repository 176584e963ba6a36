// SPDX-License-Identifier: GPL-2.0-only
//! Process exit codes, of the daemon and of the CLI, in one place
//! (docs/operations.md lists them for operators).

/// scx-slod's exit codes.
pub mod daemon {
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

/// scx-slo's (the CLI's) exit codes.
pub mod cli {
    /// Success: a valid config, a healthy host, a call done.
    pub const OK: u8 = 0;
    /// The config is invalid, the host unhealthy, or the daemon refused the
    /// call (the D-Bus error is printed).
    pub const REFUSED: u8 = 1;
    /// A file could not be read or written, or the command line is wrong.
    pub const USAGE: u8 = 2;
    /// The daemon cannot be reached.
    pub const UNREACHABLE: u8 = 3;
}
