// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo audit verify` and `audit show` on a trail written in the
//! daemon's format: exit 0 on an intact trail, 1 naming the first edited,
//! deleted or reordered entry.
#![allow(clippy::unwrap_used)] // a test's helpers unwrap too: a failure is a failed test with its line

use std::path::{Path, PathBuf};
use std::process::Command;

use scx_slo_api::audit::{seal, AuditEntry, Caller, GENESIS};

fn write_trail(dir: &Path, units: &[&str]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut prev = GENESIS.to_string();
    let mut text = String::new();
    for (i, unit) in units.iter().enumerate() {
        let e = AuditEntry {
            seq: i as u64 + 1,
            at_unix_ms: 1_700_000_000_000,
            prev: prev.clone(),
            kind: "call".into(),
            caller: Some(Caller { uid: Some(1000), pid: Some(77), unit: Some("deploy.service".into()), via: "dbus".into() }),
            action: "SetBudget".into(),
            detail: serde_json::json!({ "args": { "unit": unit, "runtime_us": 2000 } }),
            correlation_id: Some(format!("call-{i}")),
        };
        let (line, hash) = seal(&e).unwrap();
        text.push_str(&line);
        text.push('\n');
        prev = hash;
    }
    std::fs::write(dir.join("audit-000000000001.jsonl"), text).unwrap();
}

fn audit(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scx-slo")).arg("audit").args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("scx-slo-cli-audit-{name}-{}", std::process::id()))
}

#[test]
fn verify_passes_an_intact_trail_and_names_the_first_tampered_entry() {
    let dir = tmp("verify");
    let d = dir.to_str().unwrap();
    write_trail(&dir, &["a.service", "b.service", "a.service", "c.service"]);
    let (code, out, err) = audit(&["verify", "--dir", d]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("4 entries in 1 files verify; last entry 4"), "{out}");

    let file = dir.join("audit-000000000001.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&file).unwrap().lines().map(str::to_string).collect();
    let write = |l: &[String]| std::fs::write(&file, l.iter().map(|x| format!("{x}\n")).collect::<String>()).unwrap();
    // Edited.
    let mut edited = lines.clone();
    edited[1] = edited[1].replace("\"runtime_us\":2000", "\"runtime_us\":1");
    write(&edited);
    let (code, _, err) = audit(&["verify", "--dir", d]);
    assert_eq!(code, Some(1));
    assert!(err.contains(":2 (entry 2)") && err.contains("edited"), "{err}");
    // Deleted.
    let mut deleted = lines.clone();
    deleted.remove(2);
    write(&deleted);
    let (code, _, err) = audit(&["verify", "--dir", d]);
    assert_eq!(code, Some(1));
    assert!(err.contains("entry 4 follows 2"), "{err}");
    // Reordered.
    let mut reordered = lines.clone();
    reordered.swap(0, 1);
    write(&reordered);
    let (code, out, _) = audit(&["verify", "--dir", d, "--json"]);
    assert_eq!(code, Some(1));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((doc["ok"].as_bool(), doc["bad_entry"]["line"].as_u64()), (Some(false), Some(1)), "{doc}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn show_filters_by_unit_and_says_who() {
    let dir = tmp("show");
    let d = dir.to_str().unwrap();
    write_trail(&dir, &["a.service", "b.service", "a.service"]);
    let (code, out, err) = audit(&["show", "--dir", d, "--unit", "a.service"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("#1 ") && lines[0].contains("by uid 1000 pid 77 (deploy.service) via dbus"), "{out}");
    let (_, out, _) = audit(&["show", "--dir", d, "--json", "--since", "1h"]);
    assert!(out.is_empty(), "entries from 2023 are older than an hour: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn show_picks_one_correlation_and_refuses_a_malformed_id() {
    let dir = tmp("correlation");
    let d = dir.to_str().unwrap();
    write_trail(&dir, &["a.service", "b.service", "a.service"]);
    let (code, out, err) = audit(&["show", "--dir", d, "--correlation", "call-1"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("#2 ") && lines[0].contains("[call-1]") && lines[0].contains("b.service"), "{out}");
    let (code, out, _) = audit(&["show", "--dir", d, "--correlation", "call-9"]);
    assert_eq!((code, out.trim()), (Some(0), "no entries match"));
    let (code, _, err) = audit(&["show", "--dir", d, "--correlation", "x;rm -rf"]);
    assert!(code == Some(2) && err.contains("1 to 64 letters, digits and -"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
