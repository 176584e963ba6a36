// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo health`: the deploy gate. Healthy means the daemon is running
//! (its status file is fresh and says so) and, when it runs enforce mode,
//! the kernel shows scx_slo attached. Until the D-Bus control plane lands it
//! reads the status file; the kernel facts come from sysfs, not the daemon.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Why the host is not healthy, or `Ok` with a one-line summary.
pub fn probe(status_file: &Path, max_age: Duration) -> Result<String, String> {
    let meta = std::fs::metadata(status_file)
        .map_err(|e| format!("{}: {e} (is scx-slod running?)", status_file.display()))?;
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if age > max_age {
        return Err(format!(
            "{} is {:.1}s old (limit {:.1}s): the daemon is not updating it",
            status_file.display(),
            age.as_secs_f64(),
            max_age.as_secs_f64()
        ));
    }
    let text = std::fs::read_to_string(status_file).map_err(|e| format!("{}: {e}", status_file.display()))?;
    let status: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a status document: {e}", status_file.display()))?;
    let state = status["state"].as_str().unwrap_or("unknown");
    if state != "running" {
        return Err(format!("daemon state is {state:?}, not \"running\""));
    }
    if status["mode"] == "enforce" {
        let kernel_state = std::fs::read_to_string("/sys/kernel/sched_ext/state").unwrap_or_default();
        let ops = std::fs::read_to_string("/sys/kernel/sched_ext/root/ops").unwrap_or_default();
        if kernel_state.trim() != "enabled" || ops.trim() != "scx_slo" {
            return Err(format!(
                "kernel shows sched_ext state {:?} with ops {:?}, expected enabled with scx_slo",
                kernel_state.trim(),
                ops.trim()
            ));
        }
    }
    let pending: Vec<&str> = status["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["cgroup_id"].is_null())
        .filter_map(|t| t["key"].as_str())
        .collect();
    Ok(format!(
        "healthy: state running, mode {}, generation {}, {} targets{}",
        status["mode"].as_str().unwrap_or("?"),
        status["generation"],
        status["targets"].as_array().map_or(0, Vec::len),
        if pending.is_empty() { String::new() } else { format!(" ({} not resolved yet: {})", pending.len(), pending.join(", ")) }
    ))
}

/// Polls until healthy or `wait` has passed; returns the exit code.
pub fn run(status_file: &Path, wait: Duration, max_age: Duration) -> u8 {
    let start = Instant::now();
    loop {
        match probe(status_file, max_age) {
            Ok(summary) => {
                println!("{summary}");
                return 0;
            }
            Err(why) if start.elapsed() >= wait => {
                eprintln!("unhealthy: {why}");
                return 1;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_file(name: &str, body: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("scx-slo-health-{}-{name}.json", std::process::id()));
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn missing_file_names_the_daemon() {
        let e = probe(Path::new("/nonexistent/status.json"), Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("is scx-slod running"), "{e}");
    }

    #[test]
    fn stopped_daemon_is_unhealthy() {
        let p = status_file("stopped", r#"{"state":"stopped","mode":"enforce","targets":[]}"#);
        assert!(probe(&p, Duration::from_secs(60)).unwrap_err().contains("\"stopped\""));
    }

    #[test]
    fn stale_file_is_unhealthy() {
        let p = status_file("stale", r#"{"state":"running","mode":"observe","targets":[]}"#);
        std::thread::sleep(Duration::from_millis(30));
        assert!(probe(&p, Duration::from_millis(1)).unwrap_err().contains("not updating"));
    }

    #[test]
    fn running_non_enforce_daemon_is_healthy_and_lists_pending_targets() {
        let p = status_file(
            "ok",
            r#"{"state":"running","mode":"observe","generation":3,"targets":[{"key":"a.service","cgroup_id":1},{"key":"b.service","cgroup_id":null}]}"#,
        );
        let s = probe(&p, Duration::from_secs(60)).unwrap();
        assert!(s.contains("generation 3") && s.contains("b.service"), "{s}");
    }
}
