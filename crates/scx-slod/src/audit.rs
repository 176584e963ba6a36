// SPDX-License-Identifier: GPL-2.0-only
//! The audit trail's writer (issue 17; the format and its verification are
//! `scx_slo_api::audit`). One appender, the engine thread; every entry is
//! written whole with one `write` and made durable with `fdatasync` before
//! the call it records goes on, so a kill -9 loses at most the entry being
//! written (which the next start truncates and records).
//!
//! Files rotate at [`MAX_FILE_BYTES`]; the chain continues across them.
//! Every entry is also logged (target `audit`), so journald holds a copy
//! with structured fields.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use scx_slo_api::audit::{seal, trail_files, unseal, AuditEntry, Caller, GENESIS, MAX_LINE_BYTES};
use tracing::{info, warn};

/// A file is closed and a new one started past this size.
pub const MAX_FILE_BYTES: u64 = 8 << 20;
/// Bytes read back from the end of the newest file to find its last entry.
const TAIL_BYTES: u64 = MAX_LINE_BYTES as u64 + 1;

/// The open trail.
#[derive(Debug)]
pub struct AuditTrail {
    dir: PathBuf,
    file: Option<File>,
    file_bytes: u64,
    next_seq: u64,
    prev: String,
    /// Entries appended since start.
    pub appends: u64,
    /// Their total time (write and fdatasync), ns.
    pub append_ns: u64,
    /// Appends that failed since start.
    pub failures: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl AuditTrail {
    /// Opens (or starts) the trail in `dir` and records the start. A newest
    /// entry cut by a crash is truncated and the cut recorded; a newest
    /// entry that does not unseal is an error (the chain would continue
    /// from an unknown hash): mutating calls are refused until an operator
    /// moves the trail aside.
    pub fn open(dir: &Path) -> Result<AuditTrail, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750));
        let files = trail_files(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let mut trail = AuditTrail { dir: dir.to_path_buf(), file: None, file_bytes: 0, next_seq: 1, prev: GENESIS.into(), appends: 0, append_ns: 0, failures: 0 };
        let mut cut = None;
        if let Some((_, path)) = files.last() {
            let (last, cut_bytes, len) = last_entry(path)?;
            if let Some((entry, hash)) = last {
                trail.next_seq = entry.seq + 1;
                trail.prev = hash;
            } else if let Some((seq, prev_path)) = files.iter().rev().nth(1) {
                // An empty newest file: the chain ends in the one before.
                let (before, _, _) = last_entry(prev_path)?;
                let (entry, hash) = before.ok_or_else(|| format!("{}: no entry to continue the chain from (file {seq})", prev_path.display()))?;
                trail.next_seq = entry.seq + 1;
                trail.prev = hash;
            }
            if cut_bytes > 0 {
                let f = OpenOptions::new().write(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
                f.set_len(len - cut_bytes).and_then(|()| f.sync_data()).map_err(|e| format!("truncating {}: {e}", path.display()))?;
                cut = Some(cut_bytes);
            }
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if size < MAX_FILE_BYTES {
                trail.file = Some(open_append(path)?);
                trail.file_bytes = size;
            }
        }
        let detail = serde_json::json!({ "pid": std::process::id(), "version": env!("CARGO_PKG_VERSION"), "cut_partial_entry_bytes": cut });
        trail.append("start", None, "daemon_started", detail)?;
        Ok(trail)
    }

    /// The sequence number and hash of the last entry (Status shows them:
    /// a cut-off end is seen by comparing with them).
    pub fn head(&self) -> (u64, &str) {
        (self.next_seq - 1, &self.prev)
    }

    /// Appends one entry; Ok only once it is on disk.
    pub fn append(&mut self, kind: &str, caller: Option<Caller>, action: &str, detail: serde_json::Value) -> Result<u64, String> {
        let t = Instant::now();
        let result = self.append_inner(kind, caller, action, detail);
        match &result {
            Ok(_) => {
                self.appends += 1;
                self.append_ns += t.elapsed().as_nanos() as u64;
            }
            Err(e) => {
                self.failures += 1;
                warn!(event = "audit_append_failed", error = %e, "audit trail append failed");
            }
        }
        result
    }

    fn append_inner(&mut self, kind: &str, caller: Option<Caller>, action: &str, detail: serde_json::Value) -> Result<u64, String> {
        let entry = AuditEntry { seq: self.next_seq, at_unix_ms: now_ms(), prev: self.prev.clone(), kind: kind.into(), caller, action: action.into(), detail };
        let (mut line, hash) = seal(&entry)?;
        if line.len() > MAX_LINE_BYTES {
            return Err(format!("an audit entry of {} bytes is over {MAX_LINE_BYTES}", line.len()));
        }
        line.push('\n');
        if self.file.is_none() || self.file_bytes + line.len() as u64 > MAX_FILE_BYTES && self.file_bytes > 0 {
            let path = self.dir.join(format!("audit-{:012}.jsonl", entry.seq));
            self.file = Some(open_append(&path)?);
            self.file_bytes = 0;
        }
        let file = self.file.as_mut().ok_or("no audit file")?;
        file.write_all(line.as_bytes()).and_then(|()| file.sync_data()).map_err(|e| format!("writing the audit trail in {}: {e}", self.dir.display()))?;
        self.file_bytes += line.len() as u64;
        self.next_seq += 1;
        self.prev = hash.clone();
        let caller = entry.caller.as_ref();
        info!(
            target: "audit",
            event = "audit",
            seq = entry.seq,
            kind,
            action,
            caller_uid = ?caller.and_then(|c| c.uid),
            caller_pid = ?caller.and_then(|c| c.pid),
            hash = %hash,
            "audit {kind} {action}"
        );
        Ok(entry.seq)
    }
}

fn open_append(path: &Path) -> Result<File, String> {
    OpenOptions::new().append(true).create(true).mode(0o640).open(path).map_err(|e| format!("opening {}: {e}", path.display()))
}

/// The newest complete entry of a file and its hash, how many bytes of a
/// cut entry follow it, and the file's length.
fn last_entry(path: &Path) -> Result<(Option<(AuditEntry, String)>, u64, u64), String> {
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start)).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).map_err(|e| format!("{}: {e}", path.display()))?;
    let complete = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let cut = (tail.len() - complete) as u64;
    let text = String::from_utf8_lossy(&tail[..complete]);
    let Some(line) = text.lines().last() else { return Ok((None, cut, len)) };
    let (entry, _, hash) = unseal(line).map_err(|e| {
        format!("{}: the newest entry does not verify ({e}); run `scx-slo audit verify` and move the trail aside to start a new one", path.display())
    })?;
    Ok((Some((entry, hash)), cut, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("scx-slod-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn appends_chain_across_restarts_and_verify() {
        let dir = tmp("restart");
        let mut t = AuditTrail::open(&dir).unwrap();
        t.append("call", Some(Caller { uid: Some(0), pid: Some(7), unit: None, via: "dbus".into() }), "Disable", serde_json::json!({ "reason": "x" })).unwrap();
        drop(t);
        let mut t = AuditTrail::open(&dir).unwrap();
        assert_eq!(t.head().0, 3, "start, Disable, start");
        t.append("call", None, "Enable", serde_json::json!({})).unwrap();
        let v = scx_slo_api::audit::verify(&dir).unwrap();
        assert_eq!((v.entries, v.last_seq, v.last_hash.as_str()), (4, 4, t.head().1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_entry_cut_by_a_crash_is_truncated_and_recorded() {
        let dir = tmp("cut");
        let mut t = AuditTrail::open(&dir).unwrap();
        t.append("call", None, "Reload", serde_json::json!({})).unwrap();
        drop(t);
        let path = dir.join("audit-000000000001.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":3,\"at_unix_ms\":1,\"pr").unwrap();
        drop(f);
        assert!(scx_slo_api::audit::verify(&dir).is_err());
        let t = AuditTrail::open(&dir).unwrap();
        assert_eq!(t.head().0, 3);
        let mut cut = None;
        scx_slo_api::audit::verify_with(&dir, |e| {
            if e.seq == 3 {
                cut = e.detail["cut_partial_entry_bytes"].as_u64();
            }
        })
        .unwrap();
        assert_eq!(cut, Some(27));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_tampered_newest_entry_refuses_to_continue_the_chain() {
        let dir = tmp("tampered");
        drop(AuditTrail::open(&dir).unwrap());
        let path = dir.join("audit-000000000001.jsonl");
        let text = std::fs::read_to_string(&path).unwrap().replace("\"hash\":\"", "\"hash\":\"x");
        std::fs::write(&path, text).unwrap();
        let e = AuditTrail::open(&dir).unwrap_err();
        assert!(e.contains("does not verify") && e.contains("scx-slo audit verify"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_rotate_and_the_chain_goes_on() {
        let dir = tmp("rotate");
        let mut t = AuditTrail::open(&dir).unwrap();
        let big = "x".repeat(1 << 20);
        for _ in 0..10 {
            t.append("generation", None, "applied", serde_json::json!({ "padding": big })).unwrap();
        }
        let files = trail_files(&dir).unwrap();
        assert!(files.len() >= 2, "{files:?}");
        assert!(files.iter().all(|(_, p)| std::fs::metadata(p).unwrap().len() <= MAX_FILE_BYTES));
        assert_eq!(scx_slo_api::audit::verify(&dir).unwrap().entries, 11);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The cost the closing note and docs/operations.md give: 1,000 call
    /// entries (SetBudget-shaped) in a row, with fdatasync each.
    /// `cargo test -p scx-slod --release -- --ignored audit_append_cost --nocapture`
    #[test]
    #[ignore]
    fn audit_append_cost() {
        let dir = tmp("cost");
        let mut t = AuditTrail::open(&dir).unwrap();
        let caller = Caller { uid: Some(1000), pid: Some(4242), unit: Some("deploy.service".into()), via: "dbus".into() };
        let args = serde_json::json!({ "args": { "unit": "api.service", "runtime_us": 2000, "period_us": 10000, "idempotency_key": "deploy-42" } });
        let start = Instant::now();
        for _ in 0..1000 {
            t.append("call", Some(caller.clone()), "SetBudget", args.clone()).unwrap();
        }
        let total = start.elapsed();
        let bytes: u64 = trail_files(&dir).unwrap().iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).sum();
        println!("1000 appends: {:.1} us each (write + fdatasync), {} bytes per 1,000 entries", total.as_secs_f64() * 1e6 / 1000.0, bytes);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
