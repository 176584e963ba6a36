// SPDX-License-Identifier: GPL-2.0-only
//! Shared by the integration tests: a private dbus-daemon.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use scx_slod::dbus::ManagerProxyBlocking;

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
        // nobody must reach the socket, and only this user may write the
        // directory (the daemon trusts a Disable marker beside its status
        // file only there).
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


/// scx-slod on a private bus, with the simulated backend.
pub struct Daemon {
    pub child: Child,
}

impl Daemon {
    /// Starts scx-slod (simulated backend) on the bus without waiting.
    pub fn spawn(bus: &Bus, config: &Path) -> Daemon {
        Self::spawn_with_state(bus, config, &bus.dir)
    }

    /// The same, with state.json and the audit trail in `state`.
    pub fn spawn_with_state(bus: &Bus, config: &Path, state: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_scx-slod"))
            .args(["--backend", "simulated", "--dbus", "required", "--config"])
            .arg(config)
            .arg("--status-file")
            .arg(bus.dir.join("status.json"))
            .arg("--state-file")
            .arg(state.join("state.json"))
            .arg("--audit-dir")
            .arg(state.join("audit"))
            .arg("--control-socket")
            .arg(bus.dir.join("control.sock"))
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .stderr(std::fs::File::create(bus.dir.join("scx-slod.log")).unwrap())
            .spawn()
            .expect("starting scx-slod");
        Daemon { child }
    }

    /// Starts scx-slod and waits until it runs.
    pub fn start(bus: &Bus, config: &Path) -> Daemon {
        Self::wait_running(bus, Self::spawn(bus, config))
    }

    /// Waits until `d` runs.
    pub fn wait_running(bus: &Bus, d: Daemon) -> Daemon {
        let conn = bus.connection();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let proxy = manager(&conn);
            if proxy.state().is_ok_and(|s| s == "running") {
                break;
            }
            assert!(Instant::now() < deadline, "scx-slod did not come up: {}", std::fs::read_to_string(bus.dir.join("scx-slod.log")).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn stop(mut self) -> Option<i32> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Daemon {
    /// A failed assertion must not leave a daemon behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn config_file(bus: &Bus) -> PathBuf {
    let path = bus.dir.join("config.json");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/enforce.json"), &path).unwrap();
    path
}

/// A proxy that asks the daemon every time (no property cache), so a
/// restarted daemon is seen as it is.
pub fn manager(conn: &zbus::blocking::Connection) -> ManagerProxyBlocking<'static> {
    ManagerProxyBlocking::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .expect("building the proxy")
}


/// A peer-to-peer connection to the daemon's operator socket (in the
/// bus's directory, where [`Daemon::spawn`] puts it).
pub fn operator_connection(bus: &Bus) -> zbus::blocking::Connection {
    let path = bus.dir.join("control.sock");
    scx_slo_api::operator::connect(&path).unwrap_or_else(|e| panic!("connecting to {}: {e}", path.display()))
}
