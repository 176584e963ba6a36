// SPDX-License-Identifier: GPL-2.0-only
//! Shared by the integration tests: a private dbus-daemon.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn tools_present() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["dbus-daemon", "busctl", "setpriv"]
        .iter()
        .all(|t| Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success()));
    if !(root && tools) {
        assert!(std::env::var_os("CI").is_none(), "CI must run the D-Bus tests: root={root}, tools={tools}");
        eprintln!("skipped: needs root, dbus-daemon, busctl and setpriv");
    }
    root && tools
}

pub struct Bus {
    pub dir: PathBuf,
    pub address: String,
    daemon: Child,
}

impl Bus {
    /// A private system-type bus. With `policy`, the project's policy file is
    /// included; without it, everything is allowed and only the daemon's own
    /// check stands between a caller and the mutating methods.
    pub fn start(name: &str, policy: bool) -> Bus {
        let dir = std::env::temp_dir().join(format!("scx-slo-dbus-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("system.d")).unwrap();
        // nobody must reach the socket.
        std::process::Command::new("chmod").args(["755", dir.to_str().unwrap()]).status().unwrap();
        if policy {
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/org.scxslo1.conf"),
                dir.join("system.d/org.scxslo1.conf"),
            )
            .unwrap();
        }
        let socket = dir.join("bus");
        let config = scx_slod::dbus::private_bus_config(
            socket.to_str().unwrap(),
            dir.join("system.d").to_str().unwrap(),
        );
        std::fs::write(dir.join("bus.conf"), config).unwrap();
        let daemon = Command::new("dbus-daemon")
            .args(["--nofork", "--nopidfile", "--config-file"])
            .arg(dir.join("bus.conf"))
            .stdout(Stdio::null())
            .spawn()
            .expect("starting dbus-daemon");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(socket.exists(), "dbus-daemon did not create {}", socket.display());
        Bus { address: format!("unix:path={}", socket.display()), dir, daemon }
    }

    /// A connection to the private bus. A connect can fail once on a loaded
    /// host (seen once in a full `cargo test` run, not reproduced in 16
    /// more); the bus is not what these tests check, so three tries, and
    /// the last error is shown when all fail.
    pub fn connection(&self) -> zbus::blocking::Connection {
        let mut last = None;
        for _ in 0..3 {
            match zbus::blocking::connection::Builder::address(self.address.as_str()).unwrap().build() {
                Ok(c) => return c,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("connecting to the private bus {}: {:?}", self.address, last)
    }

    /// Stops the bus daemon, as a crash or a restart of dbus-daemon would.
    pub fn kill_daemon(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }

    pub fn busctl(&self, as_nobody: bool, args: &[&str]) -> (bool, String) {
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "busctl"]);
            c
        } else {
            Command::new("busctl")
        };
        let out = cmd.arg(format!("--address={}", self.address)).args(args).output().expect("running busctl");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

