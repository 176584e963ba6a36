// SPDX-License-Identifier: GPL-2.0-only
//! One source for the config's schema: data/config.schema.json is exactly
//! what `scx-slo schema` prints (the NixOS module reads it, so a stale copy
//! would let Nix accept what the daemon refuses), and docs/config.md states
//! every default, range and enum value the schema has.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema_output() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scx-slo")).arg("schema").output().expect("scx-slo schema");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn the_committed_schema_is_what_scx_slo_schema_prints() {
    let committed = std::fs::read_to_string(repo().join("data/config.schema.json")).expect("data/config.schema.json");
    assert!(
        committed == schema_output(),
        "data/config.schema.json is stale: run `cargo run -p scx-slo -- schema > data/config.schema.json` and commit it"
    );
}

/// The text of a docs section: from its heading to the next heading.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc.find(heading).unwrap_or_else(|| panic!("docs/config.md has no section {heading:?}"));
    let rest = &doc[start + heading.len()..];
    let end = rest.find("\n#").unwrap_or(rest.len());
    &rest[..end]
}

/// What a schema field must show in the docs: its default, range and enum
/// values, each as text.
fn expectations(field: &Value) -> Vec<String> {
    let mut want = Vec::new();
    match &field["default"] {
        Value::Null => {}
        Value::String(s) => want.push(s.clone()),
        other => want.push(other.to_string()),
    }
    if let Some(range) = field["x-range"].as_str() {
        want.push(range.to_string());
    }
    for v in field["enum"].as_array().into_iter().flatten() {
        want.push(format!("`{}`", v.as_str().unwrap_or_default()));
    }
    want
}

/// Checks one field: in its table row when the section has one, else
/// anywhere in the section (budget and slo keys are described in prose).
fn check(errors: &mut Vec<String>, text: &str, where_: &str, key: &str, field: &Value) {
    let row = text.lines().find(|l| l.starts_with(&format!("| `{key}` |")));
    let scope = row.unwrap_or(text);
    for want in expectations(field) {
        if !scope.contains(&want) {
            errors.push(format!("{where_}: `{key}` should show {want:?} (schema), docs say: {}", row.unwrap_or("(no table row)")));
        }
    }
}

#[test]
fn docs_config_md_states_the_schemas_defaults_ranges_and_enums() {
    let schema: Value = serde_json::from_str(&schema_output()).expect("JSON");
    let doc = std::fs::read_to_string(repo().join("docs/config.md")).expect("docs/config.md");
    let mut errors = Vec::new();
    let top = section(&doc, "## Top level");
    for (key, field) in schema["properties"].as_object().expect("properties") {
        if let Some(children) = field["properties"].as_object() {
            let heading = format!("### `{key}`");
            let text = section(&doc, &heading);
            for (child, f) in children {
                check(&mut errors, text, &heading, child, f);
            }
        } else {
            check(&mut errors, top, "## Top level", key, field);
        }
    }
    let targets = section(&doc, "## Targets");
    let target = &schema["$defs"]["target"]["properties"];
    for (key, field) in target.as_object().expect("target properties") {
        check(&mut errors, targets, "## Targets", key, field);
        for (child, f) in field["properties"].as_object().into_iter().flatten() {
            check(&mut errors, targets, &format!("## Targets, {key}"), child, f);
        }
    }
    assert!(errors.is_empty(), "docs/config.md disagrees with the schema:\n{}", errors.join("\n"));
}
