// SPDX-License-Identifier: GPL-2.0-only
//! The daemon with its state directory (state.json and the audit trail) on
//! a real file system that is frozen (`fsfreeze`): Disable and Status must
//! answer while every write to it blocks, say what is not yet saved, and
//! the writes must land, in a trail that verifies, once it thaws.
//!
//! Needs root, a loop device, mkfs.ext4 and fsfreeze (besides the bus
//! tools); skipped without them outside CI, a failure in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{config_file, manager, operator_connection, tools_present, Bus, Daemon};

/// A 64 MiB ext4 image mounted at `mount`, unfrozen, unmounted and
/// detached when dropped (also when a check fails: a file system left
/// frozen would hang the host's next writer).
struct Loopback {
    mount: PathBuf,
    image: PathBuf,
}

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success())
}

impl Loopback {
    fn new(dir: &Path) -> Option<Loopback> {
        let image = dir.join("state.img");
        let mount = dir.join("state");
        std::fs::create_dir_all(&mount).ok()?;
        let ok = run("truncate", &["-s", "64M", image.to_str()?])
            && run("mkfs.ext4", &["-q", "-F", image.to_str()?])
            && run("mount", &["-o", "loop", image.to_str()?, mount.to_str()?]);
        ok.then_some(Loopback { mount, image })
    }

    fn freeze(&self, on: bool) -> bool {
        run("fsfreeze", &[if on { "-f" } else { "-u" }, self.mount.to_str().unwrap()])
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let _ = self.freeze(false);
        let _ = run("umount", &[self.mount.to_str().unwrap()]);
        let _ = std::fs::remove_file(&self.image);
    }
}

#[test]
fn disable_and_status_answer_while_the_state_disk_is_frozen() {
    if !tools_present() {
        return;
    }
    let have = ["mkfs.ext4", "fsfreeze", "losetup", "mount"].iter().all(|t| run("sh", &["-c", &format!("command -v {t}")]));
    let bus = Bus::start("frozen", true);
    let disk = if have { Loopback::new(&bus.dir) } else { None };
    let Some(disk) = disk else {
        assert!(std::env::var_os("CI").is_none(), "CI must run the frozen-disk test: tools {have}, loop mount failed otherwise");
        eprintln!("skipped: no loop device or tools");
        return;
    };
    let config = config_file(&bus);
    let daemon = Daemon::wait_running(&bus, Daemon::spawn_with_state(&bus, &config, &disk.mount));
    let m = manager(&operator_connection(&bus));

    assert!(disk.freeze(true), "fsfreeze -f");
    let t = Instant::now();
    let reply = m.disable("frozen disk");
    let disable_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let status = m.status();
    let status_ms = t.elapsed().as_secs_f64() * 1e3;
    // Writes block for as long as the freeze; hold it a while, then thaw.
    std::thread::sleep(Duration::from_secs(2));
    let thawed = disk.freeze(false);
    eprintln!("frozen state disk: Disable {disable_ms:.1} ms, Status {status_ms:.1} ms; reply {reply:?}");
    let reply = reply.expect("Disable answered");
    assert!(thawed, "fsfreeze -u");
    assert!(reply.contains("disabled in") && reply.contains("NOT yet saved"), "{reply}");
    assert!(!reply.contains("stays off across restarts"), "{reply}");
    assert!(disable_ms < 1000.0, "Disable waited {disable_ms:.0} ms on the frozen disk");
    assert!(status.is_ok() && status_ms < 1000.0, "Status waited {status_ms:.0} ms: {status:?}");

    // After the thaw the writes land: the state says disabled, and the
    // trail verifies with the Disable in it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let saved = std::fs::read_to_string(disk.mount.join("state.json")).unwrap_or_default();
        if saved.contains("frozen disk") {
            break;
        }
        assert!(Instant::now() < deadline, "the save never landed: {saved}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut actions = Vec::new();
    scx_slo_api::audit::verify_with(&disk.mount.join("audit"), |e| actions.push(format!("{} {}", e.kind, e.action))).expect("the trail verifies");
    assert!(actions.iter().any(|a| a == "call Disable"), "{actions:?}");
    assert_eq!(daemon.stop(), Some(0));
}
