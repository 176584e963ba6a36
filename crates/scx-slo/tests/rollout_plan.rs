// SPDX-License-Identifier: GPL-2.0-only
//! Plans that `scx-slo rollout --dry-run` must accept: the one the flake's
//! `lib.rolloutPlan` makes from its deploy-rs nodes (evaluated by
//! `nix-instantiate`; skipped without it outside CI, a failure in CI), and
//! the example in docs/operations.md. And a rollout whose Prometheus does
//! not answer: the canary is rolled back, nothing else is deployed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `scx-slo rollout --dry-run` of `text`: exit code and stdout.
fn dry_run(name: &str, text: &str) -> (Option<i32>, String, String) {
    let path = std::env::temp_dir().join(format!("scx-slo-plan-{}-{name}.json", std::process::id()));
    std::fs::write(&path, text).expect("plan");
    let out = Command::new(env!("CARGO_BIN_EXE_scx-slo")).args(["rollout", "--dry-run"]).arg(&path).output().expect("scx-slo");
    let _ = std::fs::remove_file(&path);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_flakes_plan_from_its_deploy_nodes_is_accepted() {
    if Command::new("nix-instantiate").arg("--version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must evaluate the flake's rollout plan");
        eprintln!("skipped: no nix-instantiate");
        return;
    }
    // Only the deploy nodes' hostnames are forced: no nixpkgs is needed.
    let expr = r#"let self = (import ./flake.nix).outputs { inherit self; nixpkgs = { lib = { }; legacyPackages = { }; }; deploy-rs = { }; };
        in self.lib.rolloutPlan {
          stages = [ { name = "canary"; nodes = [ "canary" ]; soak = "1h"; } { name = "rest"; rest = true; soak = "30m"; } ];
          flake = "."; rollbackFlake = "github:example/fleet/9b07d13";
          prometheus = { url = "http://prometheus.internal:9090"; };
        }"#;
    let out = Command::new("nix-instantiate").args(["--eval", "--strict", "--json", "-E", expr]).current_dir(repo()).output().expect("nix-instantiate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text: String = serde_json::from_slice(&out.stdout).expect("a JSON string");
    let (code, stdout, stderr) = dry_run("flake", &text);
    assert_eq!(code, Some(0), "{stderr}\n{text}");
    for needed in ["deploy   deploy .#canary", "rollback deploy github:example/fleet/9b07d13#fleet-1", r#"instance=~"canary\\.example\\.internal:9638""#] {
        assert!(stdout.contains(needed), "{needed}:\n{stdout}");
    }
}

#[test]
fn the_documented_plan_is_accepted() {
    let doc = std::fs::read_to_string(repo().join("docs/operations.md")).expect("docs/operations.md");
    let section = doc.split_once("### The plan").expect("the plan's section").1;
    let block = section.split_once("```json\n").and_then(|(_, rest)| rest.split_once("```")).expect("a json block").0;
    let (code, stdout, stderr) = dry_run("docs", block);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("stage 3 \"rest\": 1 node(s)"), "{stdout}");
    // And a broken one is refused naming the field.
    let (code, _, stderr) = dry_run("docs-bad", &block.replace(r#""soak": "1h""#, r#""soak": "9d""#));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("stages[0].soak"), "{stderr}");
}

#[test]
fn a_stage_whose_gates_cannot_be_read_is_not_deployed() {
    let dir = std::env::temp_dir().join(format!("scx-slo-rollout-noprom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let ran = dir.join("ran");
    let cmd = |what: &str| format!(r#"["sh","-c","echo {what} {{node}} >> {}"]"#, ran.display());
    let plan = format!(
        r#"{{"version":1,"name":"noprom","flake":"new","rollback_flake":"old","deploy":{},"rollback":{},
            "prometheus":{{"url":"http://127.0.0.1:{closed}","timeout":"1s","step":"1s"}},"poll":"1s",
            "nodes":{{"canary":"c:1","other":"o:1"}},
            "stages":[{{"name":"canary","nodes":["canary"],"soak":"2s"}},{{"name":"rest","rest":true,"soak":"2s"}}]}}"#,
        cmd("deploy"),
        cmd("rollback")
    );
    let path = dir.join("plan.json");
    std::fs::write(&path, plan).expect("plan");
    let out = Command::new(env!("CARGO_BIN_EXE_scx-slo")).arg("rollout").arg(&path).output().expect("scx-slo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("could not be read") && stdout.contains("stopped at stage canary"), "{stdout}");
    // The baseline is asked before the deploy: nothing ran, nothing to roll back.
    assert!(!ran.exists(), "{:?}", std::fs::read_to_string(&ran));
    let _ = std::fs::remove_dir_all(&dir);
}
