// SPDX-License-Identifier: GPL-2.0-only
//! scx-slod in the guest: its config and status files, and a handle on the
//! process (start, signal, wait, the log).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::harness::{wait_until, Env};
use crate::kernel;

/// The config file every guest scenario writes.
pub(crate) const CONFIG_PATH: &str = scx_slo_api::paths::CONFIG;
/// The status file scx-slod writes.
pub(crate) const STATUS_PATH: &str = scx_slo_api::paths::STATUS_FILE;

/// Writes the guest's config file.
pub fn write_config(value: &Value) -> Result<()> {
    std::fs::create_dir_all(scx_slo_api::paths::CONFIG_DIR)?;
    std::fs::write(CONFIG_PATH, serde_json::to_vec_pretty(value)?).context("writing the config")
}

/// A running scx-slod, killed when dropped.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(env: &Env, tag: &str) -> Result<Daemon> {
        Self::start_with(env, tag, &[])
    }

    pub(crate) fn start_with(env: &Env, tag: &str, extra: &[&str]) -> Result<Daemon> {
        let log = PathBuf::from(format!("/tmp/scx-slod-{tag}.log"));
        let child = Command::new(env.exe("scx-slod"))
            .args(["--config", CONFIG_PATH, "--status-file", STATUS_PATH])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting scx-slod")?;
        Ok(Daemon { child, log })
    }

    pub(crate) fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().or(Some(-1));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// Waits for sched_ext to be enabled; gives up early if the daemon exits.
    pub(crate) fn wait_enabled(&mut self, timeout: Duration) -> Option<Duration> {
        let found = wait_until(timeout, || {
            kernel::sched_ext_state() == "enabled" || matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if kernel::sched_ext_state() == "enabled" {
            found
        } else {
            eprintln!("--- scx-slod log ({}) ---\n{}", self.log.display(), std::fs::read_to_string(&self.log).unwrap_or_default());
            None
        }
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(6)..].join(" | ")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The daemon's status file, when there is one and it is a Status document.
pub(crate) fn daemon_status() -> Option<scx_slo_api::Status> {
    scx_slo_api::documents::read_status_file(std::path::Path::new(STATUS_PATH)).ok()
}

/// The daemon's lifecycle state from its status file, or "".
pub(crate) fn daemon_state() -> String {
    daemon_status().map(|s| s.state.to_string()).unwrap_or_default()
}

