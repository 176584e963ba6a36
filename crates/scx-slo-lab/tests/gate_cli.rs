// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo-lab gate`'s exit codes, as CI (scripts/test) relies on them:
//! 0 when no gated metric regressed, 1 when one did, 2 on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn baseline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../checks/vm/baselines/bench-quick.json")
}

fn gate(baseline: &Path, candidate: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scx-slo-lab"))
        .args(["gate", "--baseline"])
        .arg(baseline)
        .arg("--candidate")
        .arg(candidate)
        .output()
        .expect("running scx-slo-lab gate")
}

#[test]
fn exit_codes_say_pass_regressed_and_bad_input() {
    let dir = std::env::temp_dir().join(format!("scx-slo-gate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");

    let same = gate(&baseline(), &baseline());
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));
    assert!(String::from_utf8_lossy(&same.stdout).contains("gate: PASS"));

    // scx_slo-all's wakeups 10× slower: a regression of a gated metric.
    let mut report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(baseline()).expect("baseline")).expect("json");
    for r in report["facts"]["results"].as_array_mut().expect("results") {
        if r["scheduler"] == "scx_slo-all" {
            for round in r["queue_ns_per_round"].as_array_mut().expect("rounds") {
                for x in round.as_array_mut().expect("samples") {
                    *x = serde_json::json!(x.as_u64().expect("ns") * 10);
                }
            }
        }
    }
    let slower = dir.join("slower.json");
    std::fs::write(&slower, report.to_string()).expect("write");
    let out = gate(&baseline(), &slower);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("gate: FAIL (regressed: queue p99 on oversub-2x / scx_slo-all)"), "{text}");

    let missing = gate(&baseline(), &dir.join("none.json"));
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("scx-slo-lab gate: candidate") && err.contains("none.json: cannot open"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
