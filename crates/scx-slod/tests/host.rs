// SPDX-License-Identifier: GPL-2.0-only
//! The daemon on the host (no VM): bad input is refused before anything
//! touches the kernel, and a kernel without sched_ext gets a message that
//! says so and names observe mode.

use std::path::Path;
use std::process::Command;

fn daemon(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scx-slod"))
        .args(["--config"])
        .arg(config)
        .args(["--status-file", "/nonexistent-dir/status.json"])
        .arg("--audit-dir")
        .arg(std::env::temp_dir().join(format!("scx-slod-host-audit-{}", std::process::id())))
        .env("SCX_SLO_LOG", "info")
        .output()
        .expect("running scx-slod");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("scx-slod-test-{}-{name}.json", std::process::id()));
    std::fs::write(&path, text).expect("writing temp config");
    path
}

#[test]
fn invalid_config_exits_1_naming_the_field() {
    let path = temp_config(
        "invalid",
        r#"{"version":1,"targets":{"api.service":{"class":"latency","budget":{"runtime":"12ms","period":"10ms"},"deadline":"10ms"}}}"#,
    );
    let (code, stderr) = daemon(&path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(r#"targets."api.service".budget.runtime: 12ms exceeds period 10ms"#), "{stderr}");
}

#[test]
fn unreadable_config_exits_2() {
    let (code, stderr) = daemon(Path::new("/nonexistent/config.json"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/config.json"), "{stderr}");
}

#[test]
fn a_kernel_without_sched_ext_is_named_and_observe_is_suggested() {
    if Path::new("/sys/kernel/sched_ext").exists() {
        eprintln!("skipped: this kernel has sched_ext (the VM scenario covers it)");
        return;
    }
    let path = temp_config("enforce", include_str!("../../../examples/enforce.json"));
    let (code, stderr) = daemon(&path);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("has no sched_ext") && stderr.contains("observe"), "{stderr}");
}
