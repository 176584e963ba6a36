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

/// A copy of scx-slod whose embedded scheduler object has one
/// byte changed refuses to start (exit 4), naming the object and both
/// digests, before it touches the kernel.
#[test]
fn a_tampered_bpf_object_is_refused_before_anything_loads() {
    let original = std::fs::read(env!("CARGO_BIN_EXE_scx-slod")).expect("reading scx-slod");
    // The embedded objects are whole ELF files: EM_BPF (247) at offset 18.
    let is_bpf_elf = |i: usize| original[i..].starts_with(b"\x7fELF\x02\x01\x01") && original.get(i + 18) == Some(&247);
    let start = (1..original.len().saturating_sub(64)).find(|&i| is_bpf_elf(i)).expect("an embedded BPF object");
    let mut tampered = original.clone();
    tampered[start + 4096] ^= 0x01;
    let copy = std::env::temp_dir().join(format!("scx-slod-tampered-{}", std::process::id()));
    std::fs::write(&copy, &tampered).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&copy).status().unwrap();
    let config = temp_config("tampered", include_str!("../../../examples/minimal.json"));
    let out = Command::new(&copy)
        .args(["--config"])
        .arg(&config)
        .args(["--status-file", "/nonexistent-dir/status.json", "--dbus", "off", "--metrics-listen", "off"])
        .arg("--audit-dir")
        .arg(std::env::temp_dir().join(format!("scx-slod-tampered-audit-{}", std::process::id())))
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&copy);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("BPF object") && stderr.contains("refusing to load it"), "{stderr}");
}

/// The digests the Nix package installs: both objects, 64 hex digits each.
#[test]
fn bpf_digests_prints_what_the_build_recorded() {
    let out = Command::new(env!("CARGO_BIN_EXE_scx-slod")).arg("--bpf-digests").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for object in ["scx_slo", "observe"] {
        let d = doc[object].as_str().unwrap_or_default();
        assert!(d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()), "{object}: {doc}");
    }
}
