// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo check-config` as the NixOS build runs it: exit codes, messages
//! with JSON paths, and the --json report.

use std::process::Command;

fn check(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scx-slo"))
        .arg("check-config")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("running scx-slo");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn examples_are_valid() {
    for file in ["examples/enforce.json", "examples/minimal.json"] {
        let (code, stdout, stderr) = check(&[file]);
        assert_eq!(code, Some(0), "{file}: {stdout}{stderr}");
        assert!(stdout.contains("valid"), "{stdout}");
    }
}

#[test]
fn inadmissible_config_exits_1_with_the_sum() {
    let (code, _, stderr) = check(&["examples/inadmissible.json"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("targets: latency budgets reserve 1.200 CPUs"), "{stderr}");
}

#[test]
fn auto_capacity_is_checked_against_cpus_when_given() {
    let (code, _, stderr) = check(&["examples/minimal.json", "--cpus", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn unreadable_file_exits_2() {
    let (code, _, stderr) = check(&["/nonexistent.json"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn json_report_lists_problems_with_paths() {
    let path = std::env::temp_dir().join(format!("scx-slo-check-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"version":1,"mode":"fast","targets":{"x.service":{"class":"batch","weight":0}}}"#).unwrap();
    let (code, stdout, _) = check(&["--json", path.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["valid"], false);
    let paths: Vec<&str> = report["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"mode") && paths.contains(&r#"targets."x.service".weight"#), "{paths:?}");
}
