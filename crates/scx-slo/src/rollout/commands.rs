// SPDX-License-Identifier: GPL-2.0-only
//! Running a deploy or rollback command for one node: its output goes to
//! this program's stderr (stdout stays the rollout's own report), it gets
//! the rollout's correlation id in `SCX_SLO_ROLLOUT_ID`, and it is killed
//! at the plan's `command_timeout`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::journal::Ran;

/// Runs `argv` for `node`, waiting at most `timeout`.
pub fn run(node: &str, argv: &[String], rollout_id: &str, timeout: Duration) -> Ran {
    let start = Instant::now();
    let done = |outcome: &str, exit_code: Option<i32>| Ran {
        node: node.to_string(),
        argv: argv.to_vec(),
        outcome: outcome.to_string(),
        exit_code,
        seconds: start.elapsed().as_secs_f64(),
    };
    let Some((program, args)) = argv.split_first() else { return done("not started", None) };
    let stdout = std::io::stderr().as_fd_stdio();
    // Its own process group, so a timeout stops what it started too
    // (deploy-rs runs nix and ssh: killing deploy alone left the remote
    // activation running while the rollback began).
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(program).args(args).env("SCX_SLO_ROLLOUT_ID", rollout_id).stdin(Stdio::null()).stdout(stdout).process_group(0).spawn()
    };
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scx-slo rollout: {node}: cannot run {program}: {e}");
            return done("not started", None);
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return done(if status.success() { "ok" } else { "failed" }, status.code()),
            Ok(None) if start.elapsed() >= timeout => {
                kill_group(&mut child);
                return done("timed out", None);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                eprintln!("scx-slo rollout: {node}: waiting for {program}: {e}");
                kill_group(&mut child);
                return done("failed", None);
            }
        }
    }
}

/// Kills the command's whole process group (it leads one), then reaps it.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group;
        // no memory is shared.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A `Stdio` writing to this process's stderr.
trait AsFdStdio {
    fn as_fd_stdio(&self) -> Stdio;
}

impl AsFdStdio for std::io::Stderr {
    fn as_fd_stdio(&self) -> Stdio {
        use std::os::fd::AsFd;
        match self.as_fd().try_clone_to_owned() {
            Ok(fd) => Stdio::from(fd),
            Err(_) => Stdio::null(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_what_happened() {
        let sh = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
        assert_eq!(run("n", &sh("test \"$SCX_SLO_ROLLOUT_ID\" = ro-1"), "ro-1", Duration::from_secs(5)).outcome, "ok");
        let r = run("n", &sh("exit 3"), "ro-1", Duration::from_secs(5));
        assert_eq!((r.outcome.as_str(), r.exit_code), ("failed", Some(3)));
        let r = run("n", &sh("sleep 5"), "ro-1", Duration::from_millis(200));
        assert_eq!((r.outcome.as_str(), r.exit_code), ("timed out", None));
        assert!(r.seconds < 2.0);
        assert_eq!(run("n", &["/nonexistent/deploy".to_string()], "ro-1", Duration::from_secs(1)).outcome, "not started");
    }

    #[test]
    fn a_timeout_stops_what_the_command_started() {
        let mark = std::env::temp_dir().join(format!("scx-slo-rollout-orphan-{}", std::process::id()));
        let _ = std::fs::remove_file(&mark);
        let script = format!("(sleep 1 && touch {}) & sleep 5", mark.display());
        let r = run("n", &["sh".to_string(), "-c".to_string(), script], "ro-1", Duration::from_millis(200));
        assert_eq!(r.outcome, "timed out");
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!mark.exists(), "the command's child outlived its timeout");
    }
}
