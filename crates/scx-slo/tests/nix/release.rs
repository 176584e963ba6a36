// SPDX-License-Identifier: GPL-2.0-only
//! What the first `nix flake check` on the pinned release would find,
//! checked offline: the pinned nixpkgs' rustc against every rust-version in
//! the workspace and Cargo.lock, kernel selection that composes with other
//! modules, aarch64-linux outputs, every testScript under pyflakes and a dry
//! run against a stand-in of the NixOS test driver, and deploy-rs's
//! rollback matrix. A submodule of tests/nix.rs, whose helpers it uses.

use super::*;

/// `cargo metadata`'s packages: the workspace and everything Cargo.lock pins.
fn cargo_metadata() -> serde_json::Value {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let mut out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(repo())
        .output()
        .unwrap();
    if !out.status.success() {
        // Offline lacks the manifests of crates no build here downloaded
        // (other targets' dependencies): let cargo fetch them.
        out = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked"])
            .current_dir(repo())
            .output()
            .unwrap();
    }
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn version_parts(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// nix/package.nix builds with the pinned nixpkgs' rustPlatform: its rustc
/// must be at least every `rust-version` the workspace and Cargo.lock declare
/// (cargo refuses the build otherwise, and every host, test and deploy
/// depends on the package). nix/pinned-rustc.json records that rustc and the
/// nixpkgs rev it was read at; moving flake.lock without re-reading it fails.
#[test]
fn the_pinned_nixpkgs_rustc_is_new_enough_for_the_workspace_and_cargo_lock() {
    let read = |p: &str| std::fs::read_to_string(repo().join(p)).unwrap();
    let pinned: serde_json::Value = serde_json::from_str(&read("nix/pinned-rustc.json")).unwrap();
    let lock: serde_json::Value = serde_json::from_str(&read("flake.lock")).unwrap();
    let nixpkgs = &lock["nodes"]["nixpkgs"];
    assert_eq!(
        nixpkgs["locked"]["rev"], pinned["nixpkgs"]["rev"],
        "flake.lock's nixpkgs is not the rev nix/pinned-rustc.json was read at: read that rev's rustc (pkgs/development/compilers/rust/) into it"
    );
    let branch = pinned["nixpkgs"]["ref"].as_str().unwrap();
    assert_eq!(nixpkgs["original"]["ref"], branch);
    assert!(
        read("flake.nix").contains(&format!("\"github:NixOS/nixpkgs/{branch}\"")),
        "flake.nix does not follow {branch}"
    );
    for key in ["narHash", "lastModified"] {
        assert!(!nixpkgs["locked"][key].is_null(), "flake.lock's nixpkgs has no {key}");
    }
    // deploy-rs builds with the same nixpkgs (inputs.nixpkgs.follows).
    assert_eq!(
        lock["nodes"]["deploy-rs"]["inputs"]["nixpkgs"],
        serde_json::json!(["nixpkgs"]),
        "deploy-rs must follow our nixpkgs"
    );
    let rustc = pinned["rustc"].as_str().unwrap();
    let meta = cargo_metadata();
    let mut needs: Vec<(String, String)> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            Some((
                p["rust_version"].as_str()?.to_string(),
                format!("{} {}", p["name"].as_str()?, p["version"].as_str()?),
            ))
        })
        .collect();
    assert!(needs.len() > 5, "cargo metadata lists no rust_version: {needs:?}");
    needs.sort_by_key(|(v, _)| version_parts(v));
    let (highest, who) = needs.last().unwrap();
    let too_new: Vec<String> = needs
        .iter()
        .filter(|(v, _)| version_parts(v) > version_parts(rustc))
        .map(|(v, w)| format!("{w} needs {v}"))
        .collect();
    assert!(
        too_new.is_empty(),
        "the pinned nixpkgs ({branch}) has rustc {rustc}, older than Cargo.lock and the workspace need: {}",
        too_new.join(", ")
    );
    eprintln!("pinned rustc {rustc} >= the highest rust-version, {highest} ({who})");
}

/// Another module's kernel (a nixos-hardware profile mkDefaults one) composes
/// with the module's pinned kernel, enforce mode still refuses one without
/// sched_ext, and the module resolves its package on aarch64-linux.
#[test]
fn kernel_selection_composes_with_other_modules_and_aarch64_linux_evaluates() {
    for_each_lib(|_release, lib| {
        let c = eval_module(lib, "compositions");
        let profile = &c["enforce-with-a-hardware-profile"];
        assert_eq!(profile["failedAssertions"], serde_json::json!([]), "{profile}");
        assert_eq!(profile["kernel"], "6.18.38", "the profile's kernel must win over the pinned one");
        let old = &c["enforce-with-an-old-hardware-kernel"];
        let failed = old["failedAssertions"].to_string();
        assert!(failed.contains("boot.kernelPackages is 6.6.60"), "{failed}");
        let arm = &c["aarch64-linux"];
        assert_eq!(arm["failedAssertions"], serde_json::json!([]));
        let package = arm["package"].as_str().unwrap();
        assert!(package.ends_with("-aarch64-linux"), "aarch64-linux got {package}");
        assert!(
            arm["unit"].as_str().unwrap().contains(&format!("ExecStart={package}/bin/scx-slod")),
            "{}",
            arm["unit"]
        );
    });
}

/// The Python that runs the dry-run driver: Debian's (python3-pyflakes, from
/// scripts/setup) when it is there.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// What checks/nix/test-driver gets: each test's script and, per node, what
/// the driver's model needs from the evaluation (the unit's start limit, the
/// mode and kernel, and what a switch to each specialisation does to
/// scx-slod, by switch-to-configuration's rule on the rendered units).
fn test_driver_input(lib: &str) -> serde_json::Value {
    let scripts = eval_module(lib, "testScripts");
    let nodes = eval_module(lib, "nodes");
    let mut input = serde_json::Map::new();
    for (test, t) in scripts.as_object().unwrap() {
        let mut infos = serde_json::Map::new();
        for (node, n) in t["nodes"].as_object().unwrap() {
            let v = &nodes[test][node];
            let base = v["unit"].as_str().unwrap_or("");
            let specs: serde_json::Map<String, serde_json::Value> = v["specialisations"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, s)| (name.clone(), serde_json::json!(switch_action(base, s["unit"].as_str().unwrap_or("")))))
                .collect();
            infos.insert(
                node.clone(),
                serde_json::json!({
                    "toplevel": n["toplevel"],
                    "startLimitBurst": v["service"]["startLimitBurst"],
                    "startLimitIntervalSec": v["service"]["startLimitIntervalSec"],
                    "mode": v["config"]["mode"].as_str().unwrap_or("auto"),
                    "kernel": v["kernel"],
                    "specialisations": specs,
                }),
            );
        }
        input.insert(test.clone(), serde_json::json!({ "script": t["script"], "nodes": infos }));
    }
    serde_json::Value::Object(input)
}

fn test_driver(mode: &str, input: &serde_json::Value) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(repo().join("checks/nix/test-driver"))
        .arg(mode)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// runNixOSTest lints every testScript with pyflakes before any VM boots
/// (nixos/lib/testing/driver.nix); an unused import fails the build.
#[test]
fn every_test_script_passes_pyflakes_as_run_nixos_test_runs_it() {
    let pyflakes = Command::new(python())
        .args(["-m", "pyflakes", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pyflakes {
        assert!(
            std::env::var_os("CI").is_none(),
            "pyflakes is missing in CI: scripts/setup installs python3-pyflakes"
        );
        eprintln!("skipped: no pyflakes for {}", python());
        return;
    }
    for_each_lib(|_release, lib| {
        let (ok, out) = test_driver("lint", &test_driver_input(lib));
        assert!(ok, "pyflakes:\n{out}");
    });
}

/// Every testScript run by a stand-in of the NixOS test driver: the driver's
/// API and globals, scx-slod's starts against the unit's start limit, no
/// early-exiting reader after a pipe, no fail() over a path the node lacks
/// (checks/nix/test-driver says what it models and what it cannot).
#[test]
fn every_test_script_dry_runs_against_the_drivers_api() {
    for_each_lib(|_release, lib| {
        let (ok, out) = test_driver("run", &test_driver_input(lib));
        assert!(ok, "the testScripts' dry run:\n{out}");
        for test in ["enforce", "reload", "systemd", "observe", "closed-loop"] {
            assert!(out.contains(&format!("{test}: dry run passed")), "{test} did not run:\n{out}");
        }
    });
}

/// deploy-rs's rollback around the health gate, through a stand-in of
/// activate-rs (checks/nix/deploy-rs-stand-in.nix): which generation ends up
/// active, and whose switch-to-configuration ran, for a failing and a passing
/// gate with autoRollback on and off, magic rollback confirmed or not,
/// --boot and --dry-activate, and a previous generation from nixos-rebuild.
#[test]
fn deploy_rs_rolls_back_a_failed_gate_only_with_auto_rollback() {
    let Some(_lib) = nixpkgs_lib() else { return };
    let activate_rs = nix_eval_json("(import ./checks/nix/deploy-rs-stand-in.nix).activateRs");
    struct Case {
        name: &'static str,
        gate_passes: bool,
        auto: bool,
        magic: bool,
        confirmed: bool,
        boot: bool,
        dry: bool,
        previous_from_deploy_rs: bool,
        ok: bool,
        active: &'static str,
        log: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "failed gate, autoRollback on",
            gate_passes: false,
            auto: true,
            magic: true,
            confirmed: true,
            boot: false,
            dry: false,
            previous_from_deploy_rs: true,
            ok: false,
            active: "old",
            log: &[
                "new: switch-to-configuration switch",
                "new: scx-slo health",
                "deactivate",
                "old: switch-to-configuration switch",
                "old: scx-slo health",
            ],
        },
        Case {
            name: "failed gate, autoRollback off",
            gate_passes: false,
            auto: false,
            magic: true,
            confirmed: true,
            boot: false,
            dry: false,
            previous_from_deploy_rs: true,
            ok: false,
            active: "new",
            log: &["new: switch-to-configuration switch", "new: scx-slo health"],
        },
        Case {
            name: "failed gate, autoRollback on, previous generation from nixos-rebuild",
            gate_passes: false,
            auto: true,
            magic: true,
            confirmed: true,
            boot: false,
            dry: false,
            previous_from_deploy_rs: false,
            ok: false,
            active: "old",
            log: &[
                "new: switch-to-configuration switch",
                "new: scx-slo health",
                "deactivate",
                "re-activating the last generation failed",
            ],
        },
        Case {
            name: "passed gate, magic rollback unconfirmed",
            gate_passes: true,
            auto: true,
            magic: true,
            confirmed: false,
            boot: false,
            dry: false,
            previous_from_deploy_rs: true,
            ok: false,
            active: "old",
            log: &[
                "new: switch-to-configuration switch",
                "new: scx-slo health",
                "deactivate",
                "old: switch-to-configuration switch",
                "old: scx-slo health",
            ],
        },
        Case {
            name: "passed gate, confirmed",
            gate_passes: true,
            auto: true,
            magic: true,
            confirmed: true,
            boot: false,
            dry: false,
            previous_from_deploy_rs: true,
            ok: true,
            active: "new",
            log: &["new: switch-to-configuration switch", "new: scx-slo health"],
        },
        Case {
            name: "--boot, magic rollback unconfirmed",
            gate_passes: false,
            auto: true,
            magic: true,
            confirmed: false,
            boot: true,
            dry: false,
            previous_from_deploy_rs: true,
            ok: true,
            active: "new",
            log: &["new: switch-to-configuration boot"],
        },
        Case {
            name: "--dry-activate",
            gate_passes: false,
            auto: true,
            magic: true,
            confirmed: false,
            boot: false,
            dry: true,
            previous_from_deploy_rs: true,
            ok: true,
            active: "old",
            log: &["new: switch-to-configuration dry-activate"],
        },
    ];
    for c in cases {
        let dir = std::env::temp_dir().join(format!("scx-slo-rollback-{}-{}", std::process::id(), c.name.replace([' ', ',', '-'], "_")));
        let _ = std::fs::remove_dir_all(&dir);
        let log = dir.join("log");
        let fake = |path: PathBuf, text: String| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("#!/usr/bin/env bash\n{text}\n")).unwrap();
            Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        };
        // The health gate passes on the previous generation, and on the new
        // one as the case says.
        fake(
            dir.join("scx-slo/bin/scx-slo"),
            format!(
                "g=$(basename $(readlink -f $PROFILE)); echo \"$g: scx-slo health\" >> {}\n[ $g = old ] && exit 0; exit {}",
                log.display(),
                if c.gate_passes { 0 } else { 1 }
            ),
        );
        let activation = nix_eval_json(&format!(
            "import ./checks/nix/deploy-activation.nix {{ scxSlo = \"{}\"; }}",
            dir.join("scx-slo").display()
        ));
        for generation in ["old", "new"] {
            let g = dir.join(generation);
            fake(
                g.join("bin/switch-to-configuration"),
                format!("echo \"{generation}: switch-to-configuration $1\" >> {}", log.display()),
            );
            if generation == "new" || c.previous_from_deploy_rs {
                fake(g.join("deploy-rs-activate"), activation.as_str().unwrap().to_string());
            }
        }
        let profiles = dir.join("profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::write(profiles.join("generations"), format!("{}\n", dir.join("old").display())).unwrap();
        std::os::unix::fs::symlink(dir.join("old"), profiles.join("system")).unwrap();
        let flag = |b: bool| if b { "1" } else { "0" };
        let out = Command::new("bash")
            .arg("-c")
            .arg(activate_rs.as_str().unwrap())
            .env("PROFILES", &profiles)
            .env("CLOSURE", dir.join("new"))
            .env("LOG", &log)
            .envs([
                ("AUTO_ROLLBACK", flag(c.auto)),
                ("MAGIC_ROLLBACK", flag(c.magic)),
                ("BOOT", flag(c.boot)),
                ("DRY_ACTIVATE", flag(c.dry)),
                ("CONFIRMED", flag(c.confirmed)),
            ])
            .output()
            .unwrap();
        let ran = std::fs::read_to_string(&log).unwrap_or_default();
        let active = std::fs::read_link(profiles.join("system")).unwrap();
        assert_eq!(out.status.success(), c.ok, "{}: {ran}{}", c.name, String::from_utf8_lossy(&out.stderr));
        assert_eq!(active, dir.join(c.active), "{}: the profile ends on {}:\n{ran}", c.name, active.display());
        let lines: Vec<&str> = ran.lines().collect();
        assert_eq!(lines.len(), c.log.len(), "{}:\n{ran}", c.name);
        for (line, want) in lines.iter().zip(c.log) {
            assert!(line.starts_with(want), "{}: {line:?} where {want:?} was due:\n{ran}", c.name);
        }
    }
    // And what the activation and the docs say of it.
    let deploy = std::fs::read_to_string(repo().join("nix/deploy.nix")).unwrap();
    assert!(
        deploy.contains("*auto*-rollback") && deploy.contains("never runs with `--boot`"),
        "nix/deploy.nix must say which rollback undoes a failed gate"
    );
    let docs = std::fs::read_to_string(repo().join("docs/nixos.md")).unwrap();
    assert!(
        !docs.contains("deploy-rs rolls back (magic rollback"),
        "docs/nixos.md still credits magic rollback with undoing a failed gate"
    );
}
