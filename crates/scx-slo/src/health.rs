// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo health`: the deploy gate. Healthy means the daemon is running
//! (its status file is fresh and says so), when it runs enforce mode the
//! kernel shows scx_slo attached, and, with `--expect-config`, the running
//! generation came from the deployed file (the same SHA-256): a deploy whose
//! reload the daemon refused is not healthy, though the old generation runs.
//! It reads the status file (no bus needed, so it works from activation
//! scripts); the kernel facts come from sysfs, not the daemon.
//!
//! A first deploy of enforce mode onto a host still running a kernel without
//! sched_ext cannot pass: a switch does not change the running kernel, and
//! the unit is skipped (`ConditionPathIsDirectory=/sys/kernel/sched_ext`)
//! until the host boots the deployed one. The gate recognises that case (the
//! booted kernel lacks sched_ext and is not the kernel the deployed system
//! boots), says so, and passes only with `--pending-reboot pass`, the
//! operator's word that the host runs without scx-slo until its reboot
//! (docs/operations.md, "First deploy onto a kernel without sched_ext").

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use scx_slo_api::documents::{read_status_file, CanaryState};
use scx_slo_api::{ActiveMode, State};

/// With `--canary`: healthy only once the A/B canary of the running config
/// promoted it, so a rollout gates on the SLI, not only on "running".
fn canary_gate(status: &scx_slo_api::Status) -> Result<String, String> {
    let Some(c) = &status.canary else {
        return Err("--canary: the running config has no canary block (docs/config.md#canary)".into());
    };
    if c.config_sha256 != status.config_sha256 {
        return Err("--canary: the canary has not begun for the running generation yet".into());
    }
    let verdicts = if c.verdicts.is_empty() { "none yet".to_string() } else { c.verdicts.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ") };
    match c.state {
        CanaryState::Promoted => Ok(format!("canary promoted after {} windows ({verdicts})", c.windows)),
        CanaryState::Running => Err(format!(
            "canary running: {} windows judged ({verdicts}), {} good in a row, {} arm now",
            c.windows,
            c.streak,
            c.arm.map_or("no", |a| a.as_str())
        )),
        other @ (CanaryState::RolledBack | CanaryState::Expired) => Err(format!("canary {other}: {}", c.outcome.as_deref().unwrap_or("no reason recorded"))),
    }
}

/// Why the host is not healthy, or `Ok` with a one-line summary.
pub fn probe(status_file: &Path, max_age: Duration, expect_config: Option<&Path>, canary: bool) -> Result<String, String> {
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
    let status = read_status_file(status_file)?;
    let canary = if canary { Some(canary_gate(&status)?) } else { None };
    if status.state != State::Running {
        return Err(format!("daemon state is \"{}\", not \"running\"", status.state));
    }
    if status.mode == ActiveMode::Enforce.as_str() {
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
    if let Some(path) = expect_config {
        let text = scx_slo_model::read_config_text(path).map_err(|e| format!("--expect-config {}: {e}", path.display()))?;
        let expected = scx_slo_model::config_digest(&text);
        let running = status.config_sha256.as_str();
        if running != expected {
            return Err(format!(
                "the daemon runs generation {} from config sha256 {}, but {} is sha256 {}: the deployed config is not applied{}",
                status.generation,
                running.get(..12).unwrap_or(running),
                path.display(),
                &expected[..12],
                status.last_reload_error.as_ref().map(|e| format!(" (last reload refused: {e})")).unwrap_or_default()
            ));
        }
    }
    let pending: Vec<&str> = status.targets.iter().filter(|t| t.cgroup_id.is_none()).map(|t| t.key.as_str()).collect();
    Ok(format!(
        "healthy: state running, mode {}, generation {}, {} targets{}{}",
        status.mode,
        status.generation,
        status.targets.len(),
        if pending.is_empty() { String::new() } else { format!(" ({} not resolved yet: {})", pending.len(), pending.join(", ")) },
        canary.map(|c| format!("; {c}")).unwrap_or_default()
    ))
}

/// What the gate does when the deployed enforce config waits for a reboot
/// into its kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PendingReboot {
    /// Unhealthy: the deploy fails (and deploy-rs rolls back).
    Fail,
    /// Healthy, saying so: the host runs without scx-slo until it reboots.
    Pass,
}

/// Where the gate reads the kernel facts: the real paths by default, a
/// made-up host in tests.
pub struct Host {
    /// sched_ext's sysfs directory: present when the running kernel has it.
    pub sched_ext: PathBuf,
    /// The system the host booted (NixOS: /run/booted-system, whose
    /// `kernel` links to the booted image).
    pub booted_system: PathBuf,
    /// The system just deployed (deploy-rs: $PROFILE; else
    /// /run/current-system).
    pub system: PathBuf,
}

impl Host {
    pub fn real(system: Option<&Path>) -> Host {
        Host {
            sched_ext: "/sys/kernel/sched_ext".into(),
            booted_system: "/run/booted-system".into(),
            system: system.map(Path::to_path_buf).unwrap_or_else(|| "/run/current-system".into()),
        }
    }
}

/// Why the deployed config cannot run before a reboot, when that is so: its
/// mode is enforce, the running kernel has no sched_ext, and the deployed
/// system boots another kernel than the one running. None in every other
/// case (the usual checks then say what is wrong), including a booted kernel
/// that is the configured one and lacks sched_ext: a reboot would not help.
pub fn pending_reboot(host: &Host, config: &Path) -> Option<String> {
    let text = scx_slo_model::read_config_text(config).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    if value.get("mode").and_then(|m| m.as_str()) != Some("enforce") || host.sched_ext.is_dir() {
        return None;
    }
    let booted = std::fs::canonicalize(host.booted_system.join("kernel")).ok()?;
    let deployed = std::fs::canonicalize(host.system.join("kernel")).ok()?;
    if booted == deployed {
        return None;
    }
    Some(format!(
        "the booted kernel {} has no sched_ext (no {}), and the deployed system boots another one, {}: \
         scx-slod (enforce, {}) is skipped until the host reboots into it",
        booted.display(),
        host.sched_ext.display(),
        deployed.display(),
        config.display()
    ))
}

/// The gate with the first-deploy case: `pending` decides it when it
/// applies (it cannot change before a reboot, so there is no waiting);
/// otherwise polls until healthy or `wait` has passed. Returns the exit code.
#[allow(clippy::too_many_arguments)]
pub fn run_gate(
    status_file: &Path,
    wait: Duration,
    max_age: Duration,
    expect_config: Option<&Path>,
    canary: bool,
    host: &Host,
    pending: PendingReboot,
) -> u8 {
    let config = expect_config.unwrap_or(Path::new(scx_slo_api::paths::CONFIG));
    match (pending_reboot(host, config), pending) {
        (Some(why), PendingReboot::Pass) => {
            outln!("pending reboot (--pending-reboot pass): {why}; reboot to finish the deploy");
            scx_slo_api::exit::cli::OK
        }
        (Some(why), PendingReboot::Fail) => {
            eprintln!(
                "unhealthy: {why}. Deploy with `deploy --boot` and reboot, or let this gate pass with \
                 --pending-reboot pass and reboot (docs/operations.md)"
            );
            scx_slo_api::exit::cli::REFUSED
        }
        (None, _) => run(status_file, wait, max_age, expect_config, canary),
    }
}

/// Polls until healthy or `wait` has passed; returns the exit code.
pub fn run(status_file: &Path, wait: Duration, max_age: Duration, expect_config: Option<&Path>, canary: bool) -> u8 {
    let start = Instant::now();
    loop {
        match probe(status_file, max_age, expect_config, canary) {
            Ok(summary) => {
                outln!("{summary}");
                return scx_slo_api::exit::cli::OK;
            }
            Err(why) if start.elapsed() >= wait => {
                eprintln!("unhealthy: {why}");
                return scx_slo_api::exit::cli::REFUSED;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[cfg(test)]
mod tests {
    use scx_slo_api::{Status, TargetStatus};
    use scx_slo_model::Class;

    use super::*;

    fn status_file(name: &str, status: &Status) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("scx-slo-health-{}-{name}.json", std::process::id()));
        std::fs::write(&p, serde_json::to_string(status).unwrap()).unwrap();
        p
    }

    fn status(state: State, mode: &str) -> Status {
        Status { state, mode: mode.into(), ..Default::default() }
    }

    fn target(key: &str, cgroup_id: Option<u64>) -> TargetStatus {
        TargetStatus {
            key: key.into(),
            class: Class::Latency,
            index: None,
            cgroup: None,
            cgroup_id,
            rq_delay_p50_le_ns: None,
            rq_delay_p99_le_ns: None,
            stats: None,
        }
    }

    #[test]
    fn missing_file_names_the_daemon() {
        let e = probe(Path::new("/nonexistent/status.json"), Duration::from_secs(5), None, false).unwrap_err();
        assert!(e.contains("is scx-slod running"), "{e}");
    }

    #[test]
    fn stopped_daemon_is_unhealthy() {
        let p = status_file("stopped", &status(State::Stopped, "enforce"));
        assert!(probe(&p, Duration::from_secs(60), None, false).unwrap_err().contains("\"stopped\""));
    }

    #[test]
    fn a_file_that_is_not_a_status_document_is_named() {
        let p = std::env::temp_dir().join(format!("scx-slo-health-{}-foreign.json", std::process::id()));
        std::fs::write(&p, r#"{"state":"running"}"#).unwrap();
        let e = probe(&p, Duration::from_secs(60), None, false).unwrap_err();
        assert!(e.contains("foreign.json") && e.contains("document version 1"), "{e}");
    }

    #[test]
    fn stale_file_is_unhealthy() {
        let p = status_file("stale", &status(State::Running, "observe"));
        std::thread::sleep(Duration::from_millis(30));
        assert!(probe(&p, Duration::from_millis(1), None, false).unwrap_err().contains("not updating"));
    }

    #[test]
    fn running_non_enforce_daemon_is_healthy_and_lists_pending_targets() {
        let mut s = status(State::Running, "observe");
        s.generation = 3;
        s.targets = vec![target("a.service", Some(1)), target("b.service", None)];
        let s = probe(&status_file("ok", &s), Duration::from_secs(60), None, false).unwrap();
        assert!(s.contains("generation 3") && s.contains("b.service"), "{s}");
    }

    #[test]
    fn expect_config_compares_the_running_digest_with_the_file() {
        let deployed = std::env::temp_dir().join(format!("scx-slo-health-{}-deployed-config.json", std::process::id()));
        std::fs::write(&deployed, r#"{"version":1}"#).unwrap();
        let mut ok = status(State::Running, "observe");
        ok.generation = 4;
        ok.config_sha256 = scx_slo_model::config_digest(r#"{"version":1}"#);
        let running = status_file("expect-ok", &ok);
        assert!(probe(&running, Duration::from_secs(60), Some(&deployed), false).is_ok());
        // A refused reload: the old generation runs, the new file is on disk.
        let mut old = status(State::Running, "observe");
        old.generation = 3;
        old.config_sha256 = "0123456789abcdef".into();
        old.last_reload_error = Some("invalid config: x".into());
        let e = probe(&status_file("expect-stale", &old), Duration::from_secs(60), Some(&deployed), false).unwrap_err();
        assert!(e.contains("generation 3") && e.contains("not applied") && e.contains("last reload refused: invalid config: x"), "{e}");
        let e = probe(&running, Duration::from_secs(60), Some(Path::new("/nonexistent/config.json")), false).unwrap_err();
        assert!(e.contains("--expect-config /nonexistent/config.json"), "{e}");
    }

    /// A made-up NixOS host: sysfs with or without sched_ext, the booted
    /// and the deployed system each with a `kernel` link, and a config.
    fn host(name: &str, sched_ext: bool, booted_kernel: &str, deployed_kernel: &str, mode: &str) -> (Host, PathBuf) {
        let dir = std::env::temp_dir().join(format!("scx-slo-health-{}-host-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for k in [booted_kernel, deployed_kernel] {
            std::fs::create_dir_all(dir.join("store").join(k)).unwrap();
            std::fs::write(dir.join("store").join(k).join("bzImage"), k).unwrap();
        }
        for (system, k) in [("booted", booted_kernel), ("deployed", deployed_kernel)] {
            std::fs::create_dir_all(dir.join(system)).unwrap();
            std::os::unix::fs::symlink(dir.join("store").join(k).join("bzImage"), dir.join(system).join("kernel")).unwrap();
        }
        std::fs::create_dir_all(dir.join("sys")).unwrap();
        if sched_ext {
            std::fs::create_dir_all(dir.join("sys/sched_ext")).unwrap();
        }
        let config = dir.join("config.json");
        std::fs::write(&config, format!(r#"{{"version":1,"mode":"{mode}"}}"#)).unwrap();
        (Host { sched_ext: dir.join("sys/sched_ext"), booted_system: dir.join("booted"), system: dir.join("deployed") }, config)
    }

    #[test]
    fn a_first_deploy_onto_a_kernel_without_sched_ext_is_recognised_and_passes_only_when_allowed() {
        let (h, config) = host("first", false, "linux-6.6.60", "linux-6.12.60", "enforce");
        let why = pending_reboot(&h, &config).expect("the first deploy is recognised");
        assert!(why.contains("linux-6.6.60") && why.contains("linux-6.12.60") && why.contains("no sched_ext"), "{why}");
        // No status file at all (the unit was skipped): the gate decides on
        // the kernel alone, without waiting.
        let missing = Path::new("/nonexistent/status.json");
        let wait = Duration::from_secs(30);
        let started = Instant::now();
        assert_eq!(run_gate(missing, wait, wait, Some(&config), false, &h, PendingReboot::Fail), scx_slo_api::exit::cli::REFUSED);
        assert_eq!(run_gate(missing, wait, wait, Some(&config), false, &h, PendingReboot::Pass), scx_slo_api::exit::cli::OK);
        assert!(started.elapsed() < Duration::from_secs(5), "the pending-reboot case must not wait");
    }

    #[test]
    fn the_pending_reboot_case_is_only_that_case() {
        // The kernel runs sched_ext: the usual gate.
        let (h, c) = host("has-ext", true, "linux-6.6.60", "linux-6.12.60", "enforce");
        assert_eq!(pending_reboot(&h, &c), None);
        // The booted kernel is the deployed one and lacks sched_ext: a reboot
        // would not help, so it stays a failure even with --pending-reboot pass.
        let (h, c) = host("same", false, "linux-6.6.60", "linux-6.6.60", "enforce");
        assert_eq!(pending_reboot(&h, &c), None);
        let missing = Path::new("/nonexistent/status.json");
        let z = Duration::ZERO;
        assert_eq!(run_gate(missing, z, z, Some(&c), false, &h, PendingReboot::Pass), scx_slo_api::exit::cli::REFUSED);
        // Observe runs on any kernel: the daemon must be up, as always.
        let (h, c) = host("observe", false, "linux-6.6.60", "linux-6.12.60", "observe");
        assert_eq!(pending_reboot(&h, &c), None);
    }

    #[test]
    fn canary_gate_passes_only_once_the_running_configs_canary_promoted() {
        let mut s = status(State::Running, "observe");
        s.config_sha256 = "aa".into();
        let e = probe(&status_file("canary-none", &s), Duration::from_secs(60), None, true).unwrap_err();
        assert!(e.contains("no canary block"), "{e}");
        let canary = |state: &str, sha: &str| scx_slo_api::documents::CanaryReport {
            state: serde_json::from_value(serde_json::json!(state)).unwrap(),
            config_sha256: sha.into(),
            windows: 2,
            verdicts: vec![scx_slo_api::documents::Verdict::Same, scx_slo_api::documents::Verdict::Better],
            outcome: Some("canary rolled back after 2 windows: worse: p99 ratio 3.1".into()),
            ..Default::default()
        };
        for (state, sha, want) in [
            ("running", "aa", "canary running: 2 windows judged (same, better)"),
            ("running", "bb", "has not begun for the running generation"),
            ("rolled-back", "aa", "canary rolled-back: canary rolled back after 2 windows"),
            ("expired", "aa", "canary expired"),
        ] {
            s.canary = Some(canary(state, sha));
            let e = probe(&status_file(&format!("canary-{state}-{sha}"), &s), Duration::from_secs(60), None, true).unwrap_err();
            assert!(e.contains(want), "{state}: {e}");
        }
        s.canary = Some(canary("promoted", "aa"));
        let ok = probe(&status_file("canary-promoted", &s), Duration::from_secs(60), None, true).unwrap();
        assert!(ok.ends_with("; canary promoted after 2 windows (same, better)"), "{ok}");
        // Without --canary the canary's state does not matter.
        s.canary = Some(canary("running", "aa"));
        assert!(probe(&status_file("canary-ignored", &s), Duration::from_secs(60), None, false).is_ok());
    }
}
