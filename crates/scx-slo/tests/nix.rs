// SPDX-License-Identifier: GPL-2.0-only
//! The Nix side, offline (no nixpkgs): every .nix file parses; the config
//! generator (nix/config.nix, shared with the NixOS module) turns option
//! values into JSON that the Rust schema accepts field for field; the example
//! hosts' configs pass `scx-slo check-config`; bad options fail it.
//!
//! And the module itself, evaluated by nixpkgs' real module system
//! (checks/nix/eval-module.nix with the vendored lib 25.05) for every host
//! and every NixOS test node: assertions, warnings, read-only pkgs, the
//! generated config through the real checker, the unit NixOS would write,
//! what a config change does to it (reload or restart), the example batch
//! job, and the deploy-rs activation run for its three paths.
//!
//! Needs Debian's nix-bin (scripts/setup installs it) and nixpkgs' lib
//! (../shared/vendor/nixpkgs-lib, or <nixpkgs/lib>). Without them the tests
//! are skipped on a developer machine and fail under CI=true.
#![allow(clippy::unwrap_used)] // a test's helpers unwrap too: a failure is a failed test with its line

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

#[test]
fn an_empty_canary_block_survives_so_the_canary_runs_with_its_defaults() {
    if !have_nix() {
        return;
    }
    let on = nix_eval_json(r#"import ./nix/config.nix { mode = "enforce"; settings.canary = { }; targets."a.service" = { class = "latency"; budget = { runtime = "1ms"; period = "10ms"; }; deadline = "5ms"; }; }"#);
    assert_eq!(on["canary"], serde_json::json!({}), "{on}");
    let config = scx_slo_model::load_str(&on.to_string(), None).unwrap();
    assert_eq!(config.canary.map(|c| c.window), Some(scx_slo_model::Duration::from_secs(30)));
    let off = nix_eval_json(r#"import ./nix/config.nix { settings.canary = null; }"#);
    assert!(off.get("canary").is_none(), "{off}");
}

/// The module is not in the package's fileset (the Nix build runs these
/// tests), so this lives with the other Nix-file tests.
#[test]
fn the_daemon_down_alert_watches_the_job_the_nixos_module_scrapes() {
    if !have_nix() {
        return;
    }
    let module = std::fs::read_to_string(repo().join("modules/scx-slo.nix")).unwrap();
    let job = scx_slo_model::rules::SCRAPE_JOB;
    assert!(module.contains(&format!("job_name = \"{job}\";")), "modules/scx-slo.nix must name its scrape job {job}");
}

/// nixpkgs' lib of one release for the module evaluation
/// (scripts/lib/nixpkgs-lib.sh), or None when the machine has none (skipped;
/// a failure in CI).
fn nixpkgs_lib_of(release: &str) -> Option<String> {
    if !have_nix() {
        return None;
    }
    let out = Command::new(repo().join("scripts/lib/nixpkgs-lib.sh")).arg(release).output().unwrap();
    if !out.status.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no nixpkgs lib {release} in CI: ../shared/vendor/nixpkgs-lib (25.05) and ../shared/vendor/nixpkgs-lib-26.05"
        );
        eprintln!("skipped: no nixpkgs lib {release} (../shared/vendor)");
        return None;
    }
    Some(String::from_utf8(out.stdout).unwrap().trim().to_string())
}

/// The 25.05 lib alone: what the fileset check and the Rust-only checks use.
fn nixpkgs_lib() -> Option<String> {
    nixpkgs_lib_of("25.05")
}

/// Runs `check` with each lib the module is evaluated with: 25.05 (what the
/// checks began on) and 26.05 (the release flake.lock pins). Both must be
/// there in CI.
fn for_each_lib(check: impl Fn(&str, &str)) {
    let libs: Vec<(&str, String)> = ["25.05", "26.05"]
        .into_iter()
        .filter_map(|release| nixpkgs_lib_of(release).map(|lib| (release, lib)))
        .collect();
    for (release, lib) in &libs {
        eprintln!("evaluating with nixpkgs lib {release} ({lib})");
        check(release, lib);
    }
}

/// One attribute of checks/nix/eval-module.nix, as JSON.
fn eval_module(lib: &str, attr: &str) -> serde_json::Value {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "checks/nix/eval-module.nix", "--arg", "lib"])
        .arg(format!("import {lib}"))
        .args(["-A", attr])
        .current_dir(repo())
        .output()
        .expect("running nix-instantiate");
    assert!(out.status.success(), "evaluating {attr}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("nix-instantiate printed JSON")
}

/// Every evaluated configuration with its name: hosts, test nodes, and
/// their specialisations.
fn evaluated(lib: &str) -> Vec<(String, serde_json::Value)> {
    fn walk(name: String, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        for (spec, s) in v["specialisations"].as_object().into_iter().flatten() {
            walk(format!("{name} specialisation {spec}"), s, out);
        }
        out.push((name, v.clone()));
    }
    let mut all = Vec::new();
    for (host, v) in eval_module(lib, "hosts").as_object().unwrap() {
        walk(format!("hosts.{host}"), v, &mut all);
    }
    for (test, nodes) in eval_module(lib, "nodes").as_object().unwrap() {
        for (node, v) in nodes.as_object().unwrap() {
            walk(format!("checks/nixos/{test}.nix node {node}"), v, &mut all);
        }
    }
    all
}

fn check_config_cpus(value: &serde_json::Value, name: &str, cpus: Option<u64>) -> (Option<i32>, String) {
    let path = std::env::temp_dir().join(format!("scx-slo-nix-{}-{}.json", std::process::id(), name.replace(['/', ' ', '.'], "-")));
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scx-slo"));
    cmd.arg("check-config");
    if let Some(n) = cpus {
        cmd.arg("--cpus").arg(n.to_string());
    }
    let out = cmd.arg(&path).output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_module_evaluates_for_every_host_and_test_node() {
    for_each_lib(|_release, lib| {
        let all = evaluated(lib);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        for expected in ["hosts.canary", "hosts.fleet", "hosts.test-vm", "checks/nixos/enforce.nix node machine", "checks/nixos/systemd.nix node machine", "checks/nixos/closed-loop.nix node machine"] {
            assert!(names.contains(&expected), "{expected} was not evaluated: {names:?}");
        }
        for (name, v) in &all {
            let bad = name.starts_with("hosts.bad-config");
            assert_eq!(v["failedAssertions"], serde_json::json!([]), "{name}");
            // The bad host names a unit no configuration defines: the module's warning.
            let warnings = if bad {
                serde_json::json!([r#"services.scxSlo.targets."db.service": no systemd.services.db in this configuration; fine if a package provides it, otherwise the target never resolves."#])
            } else {
                serde_json::json!([])
            };
            assert_eq!(v["warnings"], warnings, "{name}");
            if v["enabled"] != true {
                continue;
            }
            // The build-time check runs the packaged checker on the generated file.
            let script = v["checkScript"].as_str().unwrap_or_else(|| panic!("{name}: checkConfig is off"));
            assert!(script.contains(&format!("{}/bin/scx-slo check-config", v["package"].as_str().unwrap())) || script.starts_with("scx-slo check-config"), "{name}: {script}");
            if let Some(cpus) = v["cpus"].as_u64() {
                assert!(script.contains(&format!("--cpus {cpus}")), "{name}: {script}");
            }
            let (code, out) = check_config_cpus(&v["config"], name, v["cpus"].as_u64());
            assert_eq!(code, Some(if bad { 1 } else { 0 }), "{name}: {out}");
            // The unit NixOS writes has every key the module declares.
            let unit = v["unit"].as_str().unwrap();
            for (key, value) in v["service"]["serviceConfig"].as_object().unwrap() {
                assert!(unit.contains(&format!("\n{key}=")), "{name}: the unit lacks {key} ({value}):\n{unit}");
            }
            assert!(unit.contains(&format!("ExecStart={}/bin/scx-slod --config /etc/scx-slo/config.json", v["package"].as_str().unwrap())), "{unit}");
            // The audit trail's cap reaches the daemon (the module's default).
            assert!(unit.contains(" --audit-retain-mib 256 "), "{name}: {unit}");
            assert!(unit.contains("\nX-Reload-Triggers=/nix/store/") && unit.contains("\nX-Restart-Triggers=/nix/store/"), "{unit}");
            assert_eq!(v["groups"], serde_json::json!(["scx-slo"]), "{name}");
            assert_eq!(v["dbusPackages"], serde_json::json!([v["package"]]), "{name}");
        }
    });
}

#[test]
fn the_bad_config_host_fails_with_the_lines_the_flake_check_greps_for() {
    for_each_lib(|_release, lib| {
        let host = eval_module(lib, "hosts.bad-config");
        let (code, out) = check_config_cpus(&host["config"], "bad-config-host", host["cpus"].as_u64());
        assert_eq!(code, Some(1), "{out}");
        let expected = std::fs::read_to_string(repo().join("checks/nixos/bad-config.expected")).unwrap();
        let lines: Vec<&str> = expected.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        assert!(lines.len() >= 2, "{lines:?}");
        for line in lines {
            assert!(out.contains(line), "check-config no longer prints {line:?}; it printed:\n{out}");
        }
    });
}

/// switch-to-configuration's rule, shared with the lab's systemd guest.
#[path = "../../scx-slo-lab/src/switch_action.rs"]
mod switch_action;
use switch_action::switch_action;

#[test]
fn budget_changes_reload_and_load_time_changes_restart() {
    for_each_lib(|_release, lib| {
        let node = eval_module(lib, "nodes.reload.machine");
        let base = node["unit"].as_str().unwrap();
        let specs = node["specialisations"].as_object().unwrap();
        let mut seen = Vec::new();
        for (name, spec) in specs {
            let expected = if name.starts_with("reload-") {
                "reload"
            } else if name.starts_with("restart-") {
                "restart"
            } else {
                panic!("specialisation {name}: name it reload-* or restart-* after what a switch must do")
            };
            assert_eq!(switch_action(base, spec["unit"].as_str().unwrap()), expected, "specialisation {name}");
            seen.push(name.clone());
        }
        // One of each kind of section the daemon refuses on reload, and a budget.
        for needed in [
            "reload-bigger-budget",
            "restart-scheduler",
            "restart-switch",
            "restart-numa",
            "restart-early-warning",
            "restart-mode",
            "reload-another-target",
            "restart-more-targets-than-slots",
        ] {
            assert!(seen.iter().any(|s| s == needed), "checks/nixos/reload.nix lacks specialisation {needed}: {seen:?}");
        }
    });
}

/// The module restarts the unit when the map slots change (the daemon
/// refuses a reload past them): its rule must be the daemon's.
#[test]
fn the_modules_slot_rule_is_the_daemons() {
    if !have_nix() {
        return;
    }
    let nix = nix_eval_json(&format!("builtins.genList (import ./nix/capacity.nix) {}", scx_slo_model::MAX_TARGETS + 1));
    let rust: Vec<usize> = (0..=scx_slo_model::MAX_TARGETS).map(scx_slo_model::target_capacity).collect();
    assert_eq!(nix, serde_json::json!(rust));
}

#[test]
fn a_scrape_block_gives_the_unit_loopback_and_nothing_else() {
    for_each_lib(|_release, lib| {
        let node = eval_module(lib, "nodes.closed-loop.machine");
        let lines = |unit: &str, key: &str| unit.lines().filter(|l| l.starts_with(&format!("{key}="))).map(str::to_string).collect::<Vec<_>>().join(" ");
        // Without scrapes and without the metrics endpoint: no network at all.
        let base = node["unit"].as_str().unwrap();
        assert_eq!(lines(base, "PrivateNetwork"), "PrivateNetwork=true", "{base}");
        assert!(!lines(base, "RestrictAddressFamilies").contains("AF_INET"), "{base}");
        // A scrape block: the host's loopback (a private namespace has its own,
        // where the service is not), and only that.
        let spec = &node["specialisations"]["scrape-service"];
        let unit = spec["unit"].as_str().unwrap();
        assert_eq!(spec["config"]["targets"]["api.service"]["scrape"]["histogram"], "http_request_duration_seconds");
        assert_eq!(lines(unit, "PrivateNetwork"), "PrivateNetwork=false", "{unit}");
        assert!(lines(unit, "RestrictAddressFamilies").contains("AF_INET"), "{unit}");
        assert_eq!((lines(unit, "IPAddressDeny"), lines(unit, "IPAddressAllow")), ("IPAddressDeny=any".into(), "IPAddressAllow=localhost".into()), "{unit}");
    });
}

#[test]
fn the_example_batch_job_runs_and_no_exec_start_relies_on_a_glob() {
    for_each_lib(|_release, lib| {
        for (name, v) in evaluated(lib) {
            for (unit, exec) in v["execStarts"].as_object().unwrap() {
                // systemd does not expand globs: a `*` reaches the program as is.
                assert!(!exec.as_str().unwrap().contains('*'), "{name}: systemd.services.{unit}.serviceConfig.ExecStart has a glob: {exec}");
            }
        }
        let canary = eval_module(lib, "hosts.canary");
        let script = canary["scripts"]["reindex"].as_str().expect("hosts/common.nix's reindex job is a script");
        let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "the reindex job exits {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    });
}

#[test]
fn deploy_activation_switches_boots_and_dry_activates_with_the_health_gate() {
    let Some(_lib) = nixpkgs_lib() else { return };
    let dir = std::env::temp_dir().join(format!("scx-slo-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("profile/bin")).unwrap();
    std::fs::create_dir_all(dir.join("scx-slo/bin")).unwrap();
    let log = dir.join("log");
    let fake = |path: std::path::PathBuf, name: &str| {
        std::fs::write(&path, format!("#!/bin/sh\necho \"{name} $*\" >> {}\n", log.display())).unwrap();
        Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    };
    fake(dir.join("profile/bin/switch-to-configuration"), "switch-to-configuration");
    fake(dir.join("scx-slo/bin/scx-slo"), "scx-slo");
    let script = nix_eval_json(&format!("import ./checks/nix/deploy-activation.nix {{ scxSlo = \"{}\"; }}", dir.join("scx-slo").display()));
    let run = |env: &[(&str, &str)]| {
        let _ = std::fs::remove_file(&log);
        let out = Command::new("bash").arg("-c").arg(script.as_str().unwrap()).env("PROFILE", dir.join("profile")).envs(env.iter().copied()).output().unwrap();
        assert!(out.status.success(), "{env:?}: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(&log).unwrap_or_default()
    };
    let switch = run(&[]);
    assert_eq!(
        switch,
        format!(
            "switch-to-configuration switch\nscx-slo health --wait 30s --expect-config {p}/etc/scx-slo/config.json --system {p} --pending-reboot fail\n",
            p = dir.join("profile").display()
        )
    );
    assert_eq!(run(&[("BOOT", "1")]), "switch-to-configuration boot\n", "deploy --boot must install the boot entry");
    assert_eq!(run(&[("DRY_ACTIVATE", "1")]), "switch-to-configuration dry-activate\n");
}

#[test]
fn the_flake_evaluates_offline_with_every_check_and_gated_deploys() {
    for_each_lib(|_release, lib| {
        let out = Command::new("nix-instantiate")
            .args(["--eval", "--strict", "--json", "checks/nix/eval-flake.nix", "--arg", "lib"])
            .arg(format!("import {lib}"))
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let flake: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let tests = nix_eval_json("builtins.attrNames (import ./checks/nixos/tests.nix)");
        for system in ["x86_64-linux", "aarch64-linux"] {
            let checks: Vec<&str> = flake["checks"][system].as_array().unwrap().iter().filter_map(|c| c.as_str()).collect();
            let deploy = if system == "x86_64-linux" { &["deploy-schema", "deploy-activate"][..] } else { &[] };
            for name in tests.as_array().unwrap().iter().filter_map(|t| t.as_str()).chain(["bad-config", "package"]).chain(deploy.iter().copied()) {
                assert!(checks.contains(&name), "checks.{system} lacks {name}: {checks:?}");
            }
            let packages = flake["packages"][system].to_string();
            for name in ["scx-slo", "default", "kernel"] {
                assert!(packages.contains(&format!("\"{name}\"")), "packages.{system} lacks {name}: {packages}");
            }
            // Each system's outputs build that system's package.
            let package = flake["packagePaths"][system].as_str().unwrap();
            assert!(package.contains(system), "packages.{system}.scx-slo is {package}");
            assert_eq!(flake["checkPaths"][system]["package"], package, "checks.{system}.package");
            assert!(flake["devShells"][system].is_string() && flake["formatter"][system].is_string(), "{system}: devShells, formatter");
        }
        for (name, host) in flake["nixosConfigurations"].as_object().unwrap() {
            assert_eq!(host["failedAssertions"], serde_json::json!([]), "nixosConfigurations.{name}");
        }
        let nodes = flake["deploy"].as_object().unwrap();
        assert!(!nodes.is_empty());
        for (name, node) in nodes {
            let activation = node["activation"].as_str().unwrap();
            for needed in ["switch-to-configuration switch", "switch-to-configuration boot", "switch-to-configuration dry-activate", "health --wait 30s --expect-config"] {
                assert!(activation.contains(needed), "deploy.nodes.{name}: the activation lacks {needed:?}:\n{activation}");
            }
            // A failed gate is undone by autoRollback alone (the rollback matrix).
            assert_eq!((&node["autoRollback"], &node["magicRollback"]), (&serde_json::json!(true), &serde_json::json!(true)), "deploy.nodes.{name}");
        }
    });
}

/// The release checks: the pinned nixpkgs' rustc, kernel composition and
/// aarch64, the testScripts under pyflakes and the driver stand-in, and
/// deploy-rs's rollback matrix.
/// `services.scxSlo.backup`: a timer runs `scx-slo backup` into the
/// directory keeping `retain` archives; off by default; the types refuse a
/// retain of 0 and a directory the command line would split.
#[test]
fn the_backup_option_makes_a_timer_and_its_types_refuse_bad_values() {
    for_each_lib(|_release, lib| {
        let on = eval_module(lib, "backups.on");
        assert_eq!(on["failedAssertions"], serde_json::json!([]));
        let exec = on["execStarts"]["scx-slo-backup"].as_str().unwrap();
        assert!(exec.ends_with("/bin/scx-slo backup --dir /var/backup/scx-slo --retain 3"), "{exec}");
        let timer = &on["timers"]["scx-slo-backup"];
        assert_eq!(timer["timerConfig"]["OnCalendar"], "hourly", "{timer}");
        assert_eq!(timer["timerConfig"]["Persistent"], true, "{timer}");
        assert_eq!(timer["wantedBy"], serde_json::json!(["timers.target"]));
        for (name, v) in evaluated(lib) {
            assert_eq!(v["timers"], serde_json::json!({}), "{name}: backups are off unless enabled");
        }
        for (attr, option) in [("backups.retainZero", "services.scxSlo.backup.retain"), ("backups.spaceInDirectory", "services.scxSlo.backup.directory")] {
            let out = Command::new("nix-instantiate")
                .args(["--eval", "--strict", "--json", "checks/nix/eval-module.nix", "--arg", "lib"])
                .arg(format!("import {lib}"))
                .args(["-A", attr])
                .current_dir(repo())
                .output()
                .expect("running nix-instantiate");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && err.contains(&format!("option `{option}' is not of type")), "{attr}: {err}");
        }
    });
}

#[path = "nix/release.rs"]
mod release;
