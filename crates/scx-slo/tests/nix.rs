// SPDX-License-Identifier: GPL-2.0-only
//! The Nix side, offline (no nixpkgs): every .nix file parses; the config
//! generator (nix/config.nix, shared with the NixOS module) turns option
//! values into JSON that the Rust schema accepts field for field; the example
//! hosts' configs pass `scx-slo check-config`; bad options fail it.
//!
//! Needs Debian's nix-bin (scripts/setup installs it). Without it the tests
//! are skipped on a developer machine and fail under CI=true.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn have_nix() -> bool {
    let found = Command::new("nix-instantiate").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "nix-instantiate is missing in CI: scripts/setup installs nix-bin");
        eprintln!("skipped: nix-instantiate not installed");
    }
    found
}

fn nix_eval_json(expr: &str) -> serde_json::Value {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", expr])
        .current_dir(repo())
        .output()
        .expect("running nix-instantiate");
    assert!(out.status.success(), "{expr}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("nix-instantiate printed JSON")
}

fn generated(options_file: &str) -> serde_json::Value {
    nix_eval_json(&format!("import ./nix/config.nix (import ./{options_file})"))
}

fn check_config(value: &serde_json::Value, name: &str) -> (Option<i32>, String) {
    let path = std::env::temp_dir().join(format!("scx-slo-nix-{}-{name}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scx-slo")).arg("check-config").arg(&path).output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() && !name.starts_with('.') && name != "target" && name != "out" {
            nix_files(&path, out);
        } else if name.ends_with(".nix") {
            out.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    if !have_nix() {
        return;
    }
    let mut files = Vec::new();
    nix_files(&repo(), &mut files);
    assert!(files.len() >= 10, "found only {files:?}");
    for f in files {
        let out = Command::new("nix-instantiate").arg("--parse").arg(&f).output().unwrap();
        assert!(out.status.success(), "{}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn nix_options_and_the_rust_schema_agree_on_every_field() {
    if !have_nix() {
        return;
    }
    // nix/tests/full-options.nix sets every field of the schema; it must
    // generate examples/enforce.json exactly, and that file must be valid.
    let from_nix = generated("nix/tests/full-options.nix");
    let example: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("examples/enforce.json")).unwrap()).unwrap();
    assert_eq!(from_nix, example, "Nix generated:\n{from_nix:#}");
    let (code, out) = check_config(&from_nix, "full");
    assert_eq!(code, Some(0), "{out}");
    // And the Rust side reads back every value the options set.
    let config = scx_slo_model::load_str(&from_nix.to_string(), None).unwrap();
    let api = config.targets.iter().find(|t| t.key == "api.service").unwrap();
    assert_eq!((api.priority, api.weight), (800, 200));
    assert_eq!((config.advisory.max_step, config.advisory.min_weight, config.advisory.max_weight), (1.5, 100, 1000));
    assert_eq!(config.observe.overhead_budget, 0.01);
    assert_eq!(api.slo.unwrap().error_budget_window, scx_slo_model::Duration::from_secs(30 * 86400));
    assert_eq!(config.scheduler.max_wait, scx_slo_model::Duration::from_ms(50));
    assert_eq!(config.early_warning.min_interval, scx_slo_model::Duration::from_ms(100));
}

#[test]
fn example_hosts_generate_valid_configs() {
    if !have_nix() {
        return;
    }
    for host in ["canary", "fleet", "test-vm"] {
        let value = generated(&format!("hosts/{host}/scx-slo.nix"));
        let (code, out) = check_config(&value, host);
        assert_eq!(code, Some(0), "hosts/{host}: {out}");
    }
}

#[test]
fn bad_options_fail_the_check_naming_the_fields() {
    if !have_nix() {
        return;
    }
    let (code, out) = check_config(&generated("nix/tests/bad-options.nix"), "bad");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(r#"targets."api.service".budget.runtime: 12ms exceeds period 10ms"#), "{out}");
}

#[test]
fn nulls_are_dropped_so_rust_defaults_apply() {
    if !have_nix() {
        return;
    }
    let value = nix_eval_json(
        r#"import ./nix/config.nix { targets."x.service" = { class = "batch"; weight = null; slo = null; budget = null; }; }"#,
    );
    assert_eq!(value, serde_json::json!({ "version": 1, "targets": { "x.service": { "class": "batch" } } }));
}
