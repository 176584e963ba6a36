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

/// A readable file that is not UTF-8 is an invalid config (exit 1),
/// not an unreadable one; a FIFO or a device is refused at once (exit 2)
/// instead of hanging check-config or reading until memory runs out.
#[test]
fn non_text_and_non_files_are_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("scx-slo-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let utf16 = dir.join("utf16.json");
    std::fs::write(&utf16, [0xff, 0xfe, b'{', 0, b'}', 0]).expect("write");
    let (code, _, stderr) = check(&[utf16.to_str().expect("utf-8 path")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not UTF-8"), "{stderr}");

    let fifo = dir.join("fifo.json");
    let _ = std::fs::remove_file(&fifo);
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    // Before the fix this call never returned (open(2) waits for a writer).
    let (code, _, stderr) = check(&[fifo.to_str().expect("utf-8 path")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("a FIFO"), "{stderr}");

    let (code, _, stderr) = check(&["/dev/zero"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
