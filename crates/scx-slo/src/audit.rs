// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo audit verify` and `scx-slo audit show`: the daemon's
//! hash-chained audit trail, checked and read (scx_slo_api::audit).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use scx_slo_api::audit::{verify, verify_with, AuditEntry};
use scx_slo_api::exit::cli;

/// `audit verify`: 0 when every entry verifies, 1 naming the first bad one.
pub fn verify_cmd(dir: &Path, json: bool) -> u8 {
    match verify(dir) {
        Ok(v) => {
            if json {
                outln!("{}", serde_json::json!({ "ok": true, "verified": v }));
            } else {
                let start = if v.first_seq > 1 { format!(" (from entry {}: older files were rotated away)", v.first_seq) } else { String::new() };
                outln!("{}: {} entries in {} files verify{start}; last entry {} hash {}", dir.display(), v.entries, v.files, v.last_seq, v.last_hash);
                outln!("compare the last entry with `scx-slo status` (audit.last_seq, audit.last_hash): a trail cut at its end verifies, but ends earlier");
            }
            cli::OK
        }
        Err(bad) => {
            if json {
                outln!("{}", serde_json::json!({ "ok": false, "bad_entry": bad }));
            } else {
                eprintln!("scx-slo audit verify: {bad}");
            }
            cli::REFUSED
        }
    }
}

/// Whether an entry is about `unit` (its arguments or its detail).
fn about(e: &AuditEntry, unit: &str) -> bool {
    let d = &e.detail;
    d["args"]["unit"] == unit || d["unit"] == unit || d.get("budgets_us").is_some_and(|b| b.get(unit).is_some())
}

/// Which entries `audit show` prints.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    /// Only entries newer than this long ago.
    pub since: Option<scx_slo_model::Duration>,
    /// Only entries about this unit.
    pub unit: Option<&'a str>,
    /// Only entries of this D-Bus call or automatic action.
    pub correlation: Option<&'a str>,
}

/// `audit show`: the entries (verified as they are read) that pass
/// `filter`, as text or JSON lines.
pub fn show_cmd(dir: &Path, filter: &Filter<'_>, json: bool) -> u8 {
    let Filter { since, unit, correlation } = *filter;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let from_ms = since.map_or(0, |s| now_ms.saturating_sub(s.as_ns() / 1_000_000));
    let mut shown = 0u64;
    let result = verify_with(dir, |e| {
        if e.at_unix_ms < from_ms || unit.is_some_and(|u| !about(e, u)) || correlation.is_some_and(|c| e.correlation_id.as_deref() != Some(c)) {
            return;
        }
        shown += 1;
        if json {
            outln!("{}", serde_json::to_string(e).unwrap_or_default());
            return;
        }
        let who = e.caller.as_ref().map_or(String::new(), |c| {
            let uid = c.uid.map_or("?".into(), |u| u.to_string());
            let pid = c.pid.map_or("?".into(), |p| p.to_string());
            format!(" by uid {uid} pid {pid}{} via {}", c.unit.as_deref().map_or(String::new(), |u| format!(" ({u})")), c.via)
        });
        let id = e.correlation_id.as_deref().map_or(String::new(), |c| format!(" [{c}]"));
        outln!("#{} {} {} {}{who}{id}: {}", e.seq, e.at_unix_ms / 1000, e.kind, e.action, e.detail);
    });
    match result {
        Ok(_) => {
            if !json && shown == 0 {
                outln!("no entries match");
            }
            cli::OK
        }
        Err(bad) => {
            eprintln!("scx-slo audit show: the trail does not verify past this point: {bad}");
            cli::REFUSED
        }
    }
}
