// SPDX-License-Identifier: GPL-2.0-only
//! The audit trail's writer (the format and its verification are
//! `scx_slo_api::audit`). One appender, the engine thread; every entry is
//! written whole with one `write` and made durable with `fdatasync` before
//! the call it records goes on, so a kill -9 loses at most the entry being
//! written (which the next start truncates and records).
//!
//! The trail's own filesystem may be hostile or broken, and the daemon must
//! neither hang on it nor continue a chain it cannot vouch for:
//! - files are opened `O_NOFOLLOW|O_NONBLOCK` and must be regular files (a
//!   FIFO would block the open, a symlink would write elsewhere);
//! - a write that failed (a full disk: a short write, or a failed
//!   `fdatasync`) may have left part of an entry: the file is cut back to
//!   its last whole entry before the next append, and the cut is recorded;
//! - the newest entry must verify (its hash, and its link to the one before
//!   it) and the newest file must be named for the entry it would receive;
//! - a file deleted or replaced while open is not written into: the next
//!   entry starts a new file, and says so;
//! - a sequence number never wraps.
//!
//! Files rotate at [`MAX_FILE_BYTES`]; the chain continues across them.
//! Retention: after a rotation the oldest files are removed while the
//! trail holds more than its cap ([`DEFAULT_RETAIN_BYTES`], at least
//! [`MIN_RETAIN_BYTES`]), and the removal is itself an entry (`pruned`,
//! naming the first entry kept). Whole files only, so the first kept file
//! starts with the hash of the last removed entry and `audit verify` checks
//! the chain from there.
//! Every entry is also logged (target `audit`), so journald holds a copy
//! with structured fields.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use scx_slo_api::audit::{entry_hash, seal, trail_files, unseal, AuditEntry, Caller, GENESIS, MAX_LINE_BYTES};
use tracing::{info, warn};

/// A file is closed and a new one started past this size.
pub const MAX_FILE_BYTES: u64 = 8 << 20;
/// The trail's default size cap: 32 files, about 650,000 entries (40,000
/// root calls made 52 MB), so a year of an ordinary host's changes and
/// bounded under a flood of them.
pub const DEFAULT_RETAIN_BYTES: u64 = 256 << 20;
/// The smallest cap: the file being written and the one before it, so a
/// rotation never removes the entries it just chained from.
pub const MIN_RETAIN_BYTES: u64 = 2 * MAX_FILE_BYTES;
/// Bytes read back from the end of the newest file to find its last two
/// entries.
const TAIL_BYTES: u64 = 2 * (MAX_LINE_BYTES as u64 + 1);

/// The file being appended to.
#[derive(Debug)]
struct Current {
    file: File,
    path: PathBuf,
    /// Its length after the last whole entry.
    good_len: u64,
    /// Its device and inode, to notice it deleted or replaced.
    id: (u64, u64),
}

/// The open trail.
#[derive(Debug)]
pub struct AuditTrail {
    dir: PathBuf,
    current: Option<Current>,
    next_seq: u64,
    prev: String,
    /// A write failed after the last whole entry: the file may end in part
    /// of one, to be cut before the next append.
    dirty: bool,
    /// Entries appended since start.
    pub appends: u64,
    /// Their total time (write and fdatasync), ns.
    pub append_ns: u64,
    /// Appends that failed since start.
    pub failures: u64,
    /// The trail's size cap (bytes over all its files).
    retain_bytes: u64,
    /// The size a file rotates at ([`MAX_FILE_BYTES`]; smaller in tests).
    rotate_bytes: u64,
    /// The last append started a new file: the next step is retention.
    rotated: bool,
    /// The correlation id the next entries carry (the engine sets it for
    /// each D-Bus call and automatic action, and clears it after).
    pub correlation: Option<String>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Opens an existing file of the trail, or creates one to append to: never
/// through a symlink, never blocking on a FIFO, and only a regular file.
fn open_regular(path: &Path, how: &mut OpenOptions) -> Result<File, String> {
    let f = how.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            format!("{} is a symlink; the trail's files must be regular files", path.display())
        } else {
            format!("opening {}: {e}", path.display())
        }
    })?;
    let meta = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(format!("{} is not a regular file; move it aside", path.display()));
    }
    Ok(f)
}

fn open_append(path: &Path) -> Result<Current, String> {
    let file = open_regular(path, OpenOptions::new().append(true).create(true).mode(0o640))?;
    let meta = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Current { file, path: path.to_path_buf(), good_len: meta.len(), id: (meta.dev(), meta.ino()) })
}

impl AuditTrail {
    /// Opens (or starts) the trail in `dir` and records the start. A newest
    /// entry cut by a crash is truncated and the cut recorded; a newest
    /// entry that does not verify, a newest file not named for the next
    /// entry, or anything in the trail that is not a regular file is an
    /// error (the chain would continue from an unknown point): mutating
    /// calls are refused until an operator moves the trail aside and sends
    /// SIGHUP (or restarts the daemon).
    pub fn open(dir: &Path, retain_bytes: u64) -> Result<AuditTrail, String> {
        if retain_bytes < MIN_RETAIN_BYTES {
            return Err(format!("the audit trail's size cap of {retain_bytes} bytes is under {MIN_RETAIN_BYTES} (two files of {MAX_FILE_BYTES})"));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750));
        let files = trail_files(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let mut trail = AuditTrail { dir: dir.to_path_buf(), current: None, next_seq: 1, prev: GENESIS.into(), dirty: false, appends: 0, append_ns: 0, failures: 0, retain_bytes, rotate_bytes: MAX_FILE_BYTES, rotated: false, correlation: None };
        let mut cut = None;
        if let Some((named, path)) = files.last() {
            let tail = last_entry(path)?;
            if let Some((entry, hash)) = tail.last {
                trail.next_seq = next(entry.seq)?;
                trail.prev = hash;
            } else {
                if let Some((seq, prev_path)) = files.iter().rev().nth(1) {
                    // An empty newest file: the chain ends in the one before.
                    let before = last_entry(prev_path)?;
                    let (entry, hash) = before.last.ok_or_else(|| format!("{}: no entry to continue the chain from (file {seq})", prev_path.display()))?;
                    trail.next_seq = next(entry.seq)?;
                    trail.prev = hash;
                }
                // A rotation cut short by a crash leaves the next entry's
                // file empty; any other empty file is out of place.
                if *named != trail.next_seq {
                    return Err(format!(
                        "{} is empty and named for entry {named}, but the chain's next entry is {}: move it aside",
                        path.display(),
                        trail.next_seq
                    ));
                }
            }
            if tail.cut_bytes > 0 {
                let f = open_regular(path, OpenOptions::new().write(true))?;
                f.set_len(tail.len - tail.cut_bytes).and_then(|()| f.sync_data()).map_err(|e| format!("truncating {}: {e}", path.display()))?;
                cut = Some(tail.cut_bytes);
            }
            if tail.len - tail.cut_bytes < MAX_FILE_BYTES {
                trail.current = Some(open_append(path)?);
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
        let result = self.repair().and_then(|()| self.append_inner(kind, caller, action, detail));
        if result.is_ok() && std::mem::take(&mut self.rotated) {
            self.retain();
        }
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

    /// After a rotation: removes the oldest whole files while the trail is
    /// over its cap, never the newest two, and records what went (a failed
    /// removal is logged and recorded; the trail goes on).
    fn retain(&mut self) {
        let Ok(files) = trail_files(&self.dir) else { return };
        let sizes: Vec<(u64, PathBuf, u64)> =
            files.into_iter().map(|(seq, p)| { let len = std::fs::symlink_metadata(&p).map_or(0, |m| m.len()); (seq, p, len) }).collect();
        let mut total: u64 = sizes.iter().map(|f| f.2).sum();
        let (mut removed, mut removed_bytes, mut errors) = (Vec::new(), 0u64, Vec::new());
        for (seq, path, len) in sizes.iter().take(sizes.len().saturating_sub(2)) {
            if total <= self.retain_bytes {
                break;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {
                    total -= len;
                    removed_bytes += len;
                    removed.push(*seq);
                }
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            }
        }
        if removed.is_empty() && errors.is_empty() {
            return;
        }
        let first_kept = sizes.iter().map(|f| f.0).find(|seq| !removed.contains(seq));
        let detail = serde_json::json!({
            "removed_files_from_entry": removed, "removed_bytes": removed_bytes, "first_kept_entry": first_kept,
            "trail_bytes": total, "retain_bytes": self.retain_bytes, "errors": errors,
        });
        info!(event = "audit_pruned", removed_bytes, first_kept = ?first_kept, "audit trail pruned to its size cap");
        if let Err(e) = self.append_inner("audit", None, "pruned", detail) {
            warn!(event = "audit_append_failed", error = %e, "recording the audit trail's pruning failed");
        }
    }

    /// Before an append: cuts what a failed write left after the last whole
    /// entry and records the cut; leaves a file deleted or replaced under
    /// the daemon for a new one, and records that.
    fn repair(&mut self) -> Result<(), String> {
        let mut note = None;
        if let Some(c) = &self.current {
            let here = std::fs::symlink_metadata(&c.path).ok().map(|m| (m.dev(), m.ino()));
            if here != Some(c.id) {
                note = Some(("file_replaced", serde_json::json!({ "file": c.path.display().to_string(), "next_file_starts_at": self.next_seq })));
                self.current = None;
                self.dirty = false;
            }
        }
        if self.dirty {
            let c = self.current.as_mut().ok_or("no audit file")?;
            let len = c.file.metadata().map_err(|e| format!("{}: {e}", c.path.display()))?.len();
            if len > c.good_len {
                c.file.set_len(c.good_len).and_then(|()| c.file.sync_data()).map_err(|e| format!("cutting a partial entry off {}: {e}", c.path.display()))?;
                note = Some(("partial_entry_cut", serde_json::json!({ "file": c.path.display().to_string(), "cut_bytes": len - c.good_len })));
            }
            self.dirty = false;
        }
        if let Some((action, detail)) = note {
            warn!(event = "audit_repaired", action, "audit trail repaired: {detail}");
            self.append_inner("audit", None, action, detail)?;
        }
        Ok(())
    }

    fn append_inner(&mut self, kind: &str, caller: Option<Caller>, action: &str, detail: serde_json::Value) -> Result<u64, String> {
        let after = next(self.next_seq)?;
        let correlation_id = self.correlation.clone();
        let entry = AuditEntry { seq: self.next_seq, at_unix_ms: now_ms(), prev: self.prev.clone(), kind: kind.into(), caller, action: action.into(), detail, correlation_id };
        let (mut line, hash) = seal(&entry)?;
        if line.len() > MAX_LINE_BYTES {
            return Err(format!("an audit entry of {} bytes is over {MAX_LINE_BYTES}", line.len()));
        }
        line.push('\n');
        let rotate = self.current.as_ref().is_none_or(|c| c.good_len > 0 && c.good_len + line.len() as u64 > self.rotate_bytes);
        if rotate {
            self.rotated = self.current.is_some();
            self.current = Some(open_append(&self.dir.join(format!("audit-{:012}.jsonl", entry.seq)))?);
        }
        let c = self.current.as_mut().ok_or("no audit file")?;
        if let Err(e) = c.file.write_all(line.as_bytes()).and_then(|()| c.file.sync_data()) {
            self.dirty = true;
            return Err(format!("writing the audit trail in {}: {e}", self.dir.display()));
        }
        c.good_len += line.len() as u64;
        self.next_seq = after;
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

/// The sequence number after `seq`; the trail ends rather than wrap to 0.
fn next(seq: u64) -> Result<u64, String> {
    seq.checked_add(1).ok_or_else(|| format!("the trail's sequence numbers are exhausted (entry {seq}); move the trail aside to start a new one"))
}

/// What the end of the newest file holds.
struct Tail {
    /// Its last whole entry and that entry's hash.
    last: Option<(AuditEntry, String)>,
    /// Bytes of a cut entry after it.
    cut_bytes: u64,
    /// The file's length.
    len: u64,
}

/// The newest complete entry of a file, checked: its hash matches its
/// text, and its `prev` is the hash of the entry before it (when that one
/// is in the same file).
fn last_entry(path: &Path) -> Result<Tail, String> {
    let mut f = open_regular(path, OpenOptions::new().read(true))?;
    let len = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start)).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tail = Vec::new();
    f.take(TAIL_BYTES).read_to_end(&mut tail).map_err(|e| format!("{}: {e}", path.display()))?;
    let complete = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let cut_bytes = (tail.len() - complete) as u64;
    let text = String::from_utf8_lossy(&tail[..complete]);
    let mut lines = text.lines().rev();
    let Some(line) = lines.next() else { return Ok(Tail { last: None, cut_bytes, len }) };
    let refuse = |why: String| format!("{}: the newest entry does not verify ({why}); run `scx-slo audit verify` and move the trail aside to start a new one", path.display());
    let (entry, body, hash) = unseal(line).map_err(refuse)?;
    if entry_hash(&entry.prev, &body) != hash {
        return Err(refuse("its hash does not match its text: it was edited".into()));
    }
    // The line before is whole only if the tail did not start inside it.
    let before = lines.next().filter(|_| start == 0 || text.lines().count() > 2);
    if let Some(Ok((_, _, prev_hash))) = before.map(unseal) {
        if entry.prev != prev_hash {
            return Err(refuse("its prev is not the previous entry's hash".into()));
        }
    }
    Ok(Tail { last: Some((entry, hash)), cut_bytes, len })
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
        let mut t = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap();
        t.append("call", Some(Caller { uid: Some(0), pid: Some(7), unit: None, via: "dbus".into() }), "Disable", serde_json::json!({ "reason": "x" })).unwrap();
        drop(t);
        let mut t = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap();
        assert_eq!(t.head().0, 3, "start, Disable, start");
        t.append("call", None, "Enable", serde_json::json!({})).unwrap();
        let v = scx_slo_api::audit::verify(&dir).unwrap();
        assert_eq!((v.entries, v.last_seq, v.last_hash.as_str()), (4, 4, t.head().1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_entry_cut_by_a_crash_is_truncated_and_recorded() {
        let dir = tmp("cut");
        let mut t = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap();
        t.append("call", None, "Reload", serde_json::json!({})).unwrap();
        drop(t);
        let path = dir.join("audit-000000000001.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":3,\"at_unix_ms\":1,\"pr").unwrap();
        drop(f);
        assert!(scx_slo_api::audit::verify(&dir).is_err());
        let t = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap();
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
        drop(AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap());
        let path = dir.join("audit-000000000001.jsonl");
        let text = std::fs::read_to_string(&path).unwrap().replace("\"hash\":\"", "\"hash\":\"x");
        std::fs::write(&path, text).unwrap();
        let e = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap_err();
        assert!(e.contains("does not verify") && e.contains("scx-slo audit verify"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_rotate_and_the_chain_goes_on() {
        let dir = tmp("rotate");
        let mut t = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap();
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

    #[test]
    fn the_trail_is_pruned_to_its_cap_in_whole_files_and_verifies_from_the_first_kept_entry() {
        let dir = tmp("retain");
        let mut t = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap();
        // Small files and cap, so the test writes kilobytes, not 16 MiB.
        (t.rotate_bytes, t.retain_bytes) = (4096, 3 * 4096);
        let pad = "x".repeat(900);
        for i in 0..200 {
            t.append("generation", None, "applied", serde_json::json!({ "n": i, "padding": pad })).unwrap();
        }
        let files = trail_files(&dir).unwrap();
        let total: u64 = files.iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).sum();
        // Pruned after each rotation: the cap plus the file begun since.
        assert!(total <= 4 * 4096, "{total} bytes in {} files", files.len());
        let v = scx_slo_api::audit::verify(&dir).unwrap();
        assert!(v.first_seq > 1 && v.last_seq == t.head().0, "{v:?}");
        // The last pruning names the first entry it kept, which is where verify starts.
        let newest = std::fs::read_to_string(&files.last().unwrap().1).unwrap();
        let all: String = files.iter().map(|(_, p)| std::fs::read_to_string(p).unwrap()).collect();
        let pruned: Vec<serde_json::Value> = all
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["action"] == "pruned")
            .collect();
        assert!(!pruned.is_empty(), "no pruned entry in the kept files:\n{newest}");
        let kept_from = pruned.last().unwrap()["detail"]["first_kept_entry"].as_u64().unwrap();
        assert!(kept_from <= v.first_seq, "pruned says {kept_from}, verify starts at {}", v.first_seq);
        assert!(pruned.last().unwrap()["detail"]["removed_bytes"].as_u64().unwrap() > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cap_under_two_files_is_refused() {
        let dir = tmp("small-cap");
        let e = AuditTrail::open(&dir, MIN_RETAIN_BYTES - 1).unwrap_err();
        assert!(e.contains("size cap") && e.contains(&MIN_RETAIN_BYTES.to_string()), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    /// `AuditTrail::open` on a thread, failing the test instead of hanging it.
    fn open_within(dir: &Path) -> Result<Box<AuditTrail>, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let d = dir.to_path_buf();
        std::thread::spawn(move || tx.send(AuditTrail::open(&d, DEFAULT_RETAIN_BYTES).map(Box::new)));
        rx.recv_timeout(std::time::Duration::from_secs(5)).expect("opening the trail hung")
    }

    #[test]
    fn a_fifo_or_a_symlink_named_like_the_newest_file_is_refused_without_waiting() {
        let dir = tmp("fifo");
        drop(AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap());
        mkfifo(&dir.join("audit-000000000002.jsonl"));
        let e = open_within(&dir).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(dir.join("audit-000000000002.jsonl")).unwrap();
        // A symlink planted where the next file goes is not followed.
        let target = dir.join("elsewhere");
        std::fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("audit-000000000002.jsonl")).unwrap();
        let e = open_within(&dir).unwrap_err();
        assert!(e.contains("symlink"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "", "nothing was written through the link");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_partial_entry_left_by_a_failed_write_is_cut_before_the_next_and_recorded() {
        let dir = tmp("partial");
        let mut t = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap();
        // What a short write on a full disk leaves: part of an entry, and
        // the trail knowing its write failed.
        let path = dir.join("audit-000000000001.jsonl");
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"seq\":2,\"at_un").unwrap();
        t.dirty = true;
        t.append("call", None, "Enable", serde_json::json!({})).unwrap();
        let mut entries = Vec::new();
        let v = scx_slo_api::audit::verify_with(&dir, |e| entries.push(e.clone())).expect("the trail verifies after the cut");
        assert_eq!(v.entries, 3);
        assert_eq!((entries[1].kind.as_str(), entries[1].action.as_str()), ("audit", "partial_entry_cut"));
        assert_eq!(entries[1].detail["cut_bytes"], 15);
        assert_eq!(entries[2].action, "Enable");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_edited_newest_entry_or_an_out_of_place_empty_file_is_not_continued() {
        let dir = tmp("edited-newest");
        let mut t = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap();
        t.append("call", None, "Enable", serde_json::json!({ "mode": "enforce" })).unwrap();
        drop(t);
        let path = dir.join("audit-000000000001.jsonl");
        let text = std::fs::read_to_string(&path).unwrap().replace("\"mode\":\"enforce\"", "\"mode\":\"observe\"");
        std::fs::write(&path, &text).unwrap();
        let e = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap_err();
        assert!(e.contains("does not verify") && e.contains("edited"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        // An empty file named far past the chain's end.
        drop(AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap());
        std::fs::write(dir.join("audit-000000000100.jsonl"), "").unwrap();
        let e = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap_err();
        assert!(e.contains("empty and named for entry 100"), "{e}");
        // The empty file a rotation cut short leaves is the next one's: used.
        std::fs::remove_file(dir.join("audit-000000000100.jsonl")).unwrap();
        std::fs::write(dir.join("audit-000000000002.jsonl"), "").unwrap();
        drop(AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap());
        assert_eq!(scx_slo_api::audit::verify(&dir).unwrap().entries, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_last_sequence_number_ends_the_trail_instead_of_wrapping() {
        let dir = tmp("maxseq");
        std::fs::create_dir_all(&dir).unwrap();
        let entry = AuditEntry { seq: u64::MAX, at_unix_ms: 1, prev: GENESIS.into(), kind: "start".into(), caller: None, action: "x".into(), detail: serde_json::json!({}), correlation_id: None };
        let (line, _) = seal(&entry).unwrap();
        std::fs::write(dir.join(format!("audit-{:012}.jsonl", u64::MAX)), format!("{line}\n")).unwrap();
        let e = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap_err();
        assert!(e.contains("exhausted"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_deleted_under_the_daemon_is_not_written_into() {
        let dir = tmp("deleted");
        let mut t = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap();
        std::fs::remove_file(dir.join("audit-000000000001.jsonl")).unwrap();
        t.append("call", None, "Enable", serde_json::json!({})).unwrap();
        let mut entries = Vec::new();
        let v = scx_slo_api::audit::verify_with(&dir, |e| entries.push(e.clone())).unwrap();
        assert_eq!((v.first_seq, v.entries), (2, 2), "a new file from entry 2: {v:?}");
        assert_eq!(entries[0].action, "file_replaced");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The cost the closing note and docs/operations.md give: 1,000 call
    /// entries (SetBudget-shaped) in a row, with fdatasync each.
    /// `cargo test -p scx-slod --release -- --ignored audit_append_cost --nocapture`
    #[test]
    #[ignore]
    fn audit_append_cost() {
        let dir = tmp("cost");
        let mut t = AuditTrail::open(&dir, DEFAULT_RETAIN_BYTES).unwrap();
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
