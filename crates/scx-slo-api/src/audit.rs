// SPDX-License-Identifier: GPL-2.0-only
//! The audit trail's format and its verification (docs/security.md, The audit trail), shared by the
//! daemon that writes it and `scx-slo audit` that reads it.
//!
//! Append-only JSON lines in `/var/lib/scx-slo/audit/audit-<first seq>.jsonl`.
//! Each line is an [`AuditEntry`] followed by its `hash`: the SHA-256 of the
//! previous entry's hash, a newline, and the line's own text without the
//! hash. So the entries form a chain: editing an entry changes its hash;
//! deleting or reordering one breaks the sequence numbers and the `prev`
//! link; a rotated file starts with the last hash of the one before it.
//!
//! What the chain cannot show on its own: the newest entries cut off the
//! end (the last sequence number and hash are in Status and the journal to
//! compare with), and files rotated away (verification says where the
//! trail it could check starts).
//!
//! Reading is bounded: files are opened without following symlinks or
//! blocking on FIFOs, and read a line at a time.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `prev` of the very first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Largest line read back (an entry with a reload's whole target list is a
/// few hundred KiB at 1,024 targets).
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Who made a call, from the bus's credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The caller's uid.
    pub uid: Option<u32>,
    /// Its pid.
    pub pid: Option<u32>,
    /// Its systemd unit (from /proc/PID/cgroup), when there is one.
    pub unit: Option<String>,
    /// `dbus` for a bus call, `signal` for SIGHUP/SIGTERM, `daemon` for the
    /// daemon's own decisions.
    pub via: String,
}

/// One entry, as written (without its `hash`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3, ... across files.
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The previous entry's hash ([`GENESIS`] for the first).
    pub prev: String,
    /// `call` (a control request), `call_result`, `generation`,
    /// `scheduler` (load, unload, ejection), `breaker`, `adaptive`, `start`,
    /// and `restore` (written by `scx-slo restore` while the daemon is stopped).
    pub kind: String,
    /// Who, for calls.
    pub caller: Option<Caller>,
    /// The request or event, e.g. `SetBudget`, `attached`, `ejected`.
    pub action: String,
    /// Whatever else the kind records: arguments, result, generations
    /// before and after, digests, the kernel's exit reason.
    pub detail: serde_json::Value,
    /// The D-Bus call or automatic action the entry belongs to: every entry
    /// of one call (its `call`, `generation` and `call_result`) or of one
    /// adaptive pass, canary decision or scheduler failure carries the same
    /// id, as do its journal lines (`SCX_SLO_CORRELATION_ID`). Absent on
    /// entries outside any (the daemon's start) and on older entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// The hash of an entry's text given the previous hash.
pub fn entry_hash(prev: &str, body: &str) -> String {
    let mut text = String::with_capacity(prev.len() + 1 + body.len());
    text.push_str(prev);
    text.push('\n');
    text.push_str(body);
    scx_slo_model::sha256_hex(text.as_bytes())
}

/// The line for `entry` (its JSON with the hash as the last field) and that
/// hash.
pub fn seal(entry: &AuditEntry) -> Result<(String, String), String> {
    let body = serde_json::to_string(entry).map_err(|e| format!("encoding an audit entry: {e}"))?;
    let hash = entry_hash(&entry.prev, &body);
    let open = body.strip_suffix('}').ok_or("an audit entry is not a JSON object")?;
    Ok((format!("{open},\"hash\":\"{hash}\"}}"), hash))
}

/// Splits a line into the entry's text and its hash, and parses the entry.
pub fn unseal(line: &str) -> Result<(AuditEntry, String, String), String> {
    const SUFFIX_LEN: usize = ",\"hash\":\"\"}".len() + 64;
    if line.len() < SUFFIX_LEN || !line.is_char_boundary(line.len() - SUFFIX_LEN) {
        return Err("not a sealed audit entry (no hash at its end)".into());
    }
    let (open, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let hash = suffix
        .strip_prefix(",\"hash\":\"")
        .and_then(|h| h.strip_suffix("\"}"))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .ok_or("not a sealed audit entry (no hash at its end)")?;
    let body = format!("{open}}}");
    // serde quotes a mistyped value whole: only its first 200 characters.
    let entry: AuditEntry = serde_json::from_str(&body).map_err(|e| format!("not an audit entry: {}", e.to_string().chars().take(200).collect::<String>()))?;
    Ok((entry, body, hash.to_string()))
}

/// The trail's files, oldest first: `audit-<first seq, 12 digits>.jsonl`.
pub fn trail_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(seq) = name.strip_prefix("audit-").and_then(|n| n.strip_suffix(".jsonl")).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        files.push((seq, e.path()));
    }
    files.sort();
    Ok(files)
}

/// What a verification that passed covered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Files read.
    pub files: usize,
    /// Entries checked.
    pub entries: u64,
    /// The first entry's sequence number (above 1: older files were
    /// rotated away and the chain is checked from there).
    pub first_seq: u64,
    /// The last entry's.
    pub last_seq: u64,
    /// The last entry's hash (compare with Status, the journal or a copy).
    pub last_hash: String,
}

/// The first entry that does not verify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadEntry {
    /// Its file.
    pub file: PathBuf,
    /// Its line, from 1.
    pub line: usize,
    /// Its sequence number, when it has one.
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for BadEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (entry {seq})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Opens one of the trail's files to read: never through a symlink, never
/// blocking on a FIFO, and only a regular file.
pub fn open_trail_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(f)
}

/// Reads every entry of the trail in order, checking the chain; `each` sees
/// every verified entry. Stops at the first bad one. Files are streamed a
/// line at a time (at most [`MAX_LINE_BYTES`] each), so a trail of any size
/// costs one line of memory.
pub fn verify_with(dir: &Path, mut each: impl FnMut(&AuditEntry)) -> Result<Verified, BadEntry> {
    use std::io::{BufRead, Read};
    let bad = |file: &Path, line: usize, seq: Option<u64>, problem: String| BadEntry { file: file.to_path_buf(), line, seq, problem };
    let files = trail_files(dir).map_err(|e| bad(dir, 0, None, format!("reading the audit directory: {e}")))?;
    let mut v = Verified { files: files.len(), ..Default::default() };
    let mut expect: Option<(Option<u64>, String)> = None;
    let mut buf = Vec::new();
    for (i, (named_seq, path)) in files.iter().enumerate() {
        let file = open_trail_file(path).map_err(|e| bad(path, 0, None, format!("unreadable: {e}")))?;
        let len = file.metadata().map_err(|e| bad(path, 0, None, format!("unreadable: {e}")))?.len();
        let last_file = i + 1 == files.len();
        if len == 0 && !last_file {
            return Err(bad(path, 0, None, "empty, but a newer file follows: its entries were deleted".into()));
        }
        let mut reader = std::io::BufReader::with_capacity(64 << 10, file);
        let mut line_no = 0;
        loop {
            buf.clear();
            let n = Read::take(&mut reader, MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf).map_err(|e| bad(path, line_no + 1, None, format!("unreadable: {e}")))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if buf.pop() != Some(b'\n') {
                let problem = if n > MAX_LINE_BYTES {
                    format!("a line over {MAX_LINE_BYTES} bytes")
                } else {
                    "the last entry is incomplete (a crash or a full disk while writing, or a cut)".into()
                };
                return Err(bad(path, line_no, None, problem));
            }
            let line = std::str::from_utf8(&buf).map_err(|e| bad(path, line_no, None, format!("not UTF-8 text (first bad byte at offset {})", e.valid_up_to())))?;
            let (entry, body, hash) = unseal(line).map_err(|p| bad(path, line_no, None, p))?;
            let seq = Some(entry.seq);
            if line_no == 1 && entry.seq != *named_seq {
                return Err(bad(path, line_no, seq, format!("the file is named for entry {named_seq} but starts with {}", entry.seq)));
            }
            match &expect {
                None if entry.seq == 1 && entry.prev != GENESIS => {
                    return Err(bad(path, line_no, seq, "the first entry does not start the chain".into()));
                }
                None => v.first_seq = entry.seq,
                Some((Some(want), _)) if entry.seq != *want => {
                    return Err(bad(path, line_no, seq, format!("entry {} follows {}: entries were deleted, added or reordered", entry.seq, want - 1)));
                }
                Some((None, _)) => {
                    return Err(bad(path, line_no, seq, format!("entry {} follows entry {}, the last sequence number", entry.seq, u64::MAX)));
                }
                Some((_, prev)) if entry.prev != *prev => {
                    return Err(bad(path, line_no, seq, "its prev is not the previous entry's hash: the chain is broken here".into()));
                }
                Some(_) => {}
            }
            if entry_hash(&entry.prev, &body) != hash {
                return Err(bad(path, line_no, seq, "its hash does not match its text: the entry was edited".into()));
            }
            each(&entry);
            v.entries += 1;
            v.last_seq = entry.seq;
            v.last_hash = hash.clone();
            // The last sequence number has no successor: nothing may follow.
            expect = Some((entry.seq.checked_add(1), hash));
        }
    }
    Ok(v)
}

/// Verifies the whole trail.
pub fn verify(dir: &Path) -> Result<Verified, BadEntry> {
    verify_with(dir, |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, prev: &str, action: &str) -> AuditEntry {
        AuditEntry {
            seq,
            at_unix_ms: 1_700_000_000_000u64.wrapping_add(seq),
            prev: prev.into(),
            kind: "call".into(),
            caller: Some(Caller { uid: Some(0), pid: Some(42), unit: None, via: "dbus".into() }),
            action: action.into(),
            detail: serde_json::json!({ "unit": "api.service", "runtime_us": 2000 }),
            correlation_id: None,
        }
    }

    #[test]
    fn a_correlation_id_is_sealed_with_the_entry_and_an_entry_without_one_still_reads() {
        let mut e = entry(1, GENESIS, "SetBudget");
        let (plain, _) = seal(&e).unwrap();
        assert!(!plain.contains("correlation_id"), "absent, not null: older readers see the same text");
        e.correlation_id = Some("call-18c-7".into());
        let (line, hash) = seal(&e).unwrap();
        let (back, body, got) = unseal(&line).unwrap();
        assert_eq!((back, got), (e, hash.clone()));
        assert_eq!(entry_hash(GENESIS, &body), hash, "the id is inside what the hash covers");
        assert_eq!(unseal(&plain).unwrap().0.correlation_id, None);
    }

    /// A trail of `n` entries in files of `per_file`, returned as lines.
    fn write_trail(dir: &Path, n: u64, per_file: u64) -> Vec<String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let mut prev = GENESIS.to_string();
        let mut lines = Vec::new();
        for seq in 1..=n {
            let (line, hash) = seal(&entry(seq, &prev, "SetBudget")).unwrap();
            lines.push(line);
            prev = hash;
        }
        for (i, chunk) in lines.chunks(per_file as usize).enumerate() {
            let first = i as u64 * per_file + 1;
            let text: String = chunk.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(dir.join(format!("audit-{first:012}.jsonl")), text).unwrap();
        }
        lines
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("scx-slo-audit-{name}-{}", std::process::id()))
    }

    fn file_lines(dir: &Path, first: u64) -> (PathBuf, Vec<String>) {
        let path = dir.join(format!("audit-{first:012}.jsonl"));
        let lines = std::fs::read_to_string(&path).unwrap().lines().map(str::to_string).collect();
        (path, lines)
    }

    fn rewrite(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }

    #[test]
    fn a_sealed_line_unseals_to_the_same_entry() {
        let e = entry(1, GENESIS, "Disable");
        let (line, hash) = seal(&e).unwrap();
        assert!(line.ends_with(&format!(",\"hash\":\"{hash}\"}}")));
        let (back, body, h) = unseal(&line).unwrap();
        assert_eq!((back, h.as_str()), (e, hash.as_str()));
        assert_eq!(entry_hash(GENESIS, &body), hash);
    }

    #[test]
    fn an_intact_trail_verifies_across_files() {
        let dir = tmp("intact");
        write_trail(&dir, 25, 10);
        let v = verify(&dir).unwrap();
        assert_eq!((v.files, v.entries, v.first_seq, v.last_seq), (3, 25, 1, 25));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_edited_entry_is_named() {
        let dir = tmp("edited");
        write_trail(&dir, 25, 10);
        let (path, mut lines) = file_lines(&dir, 11);
        lines[3] = lines[3].replace("\"runtime_us\":2000", "\"runtime_us\":9000");
        rewrite(&path, &lines);
        let bad = verify(&dir).unwrap_err();
        assert_eq!((bad.line, bad.seq), (4, Some(14)), "{bad}");
        assert!(bad.problem.contains("edited"), "{bad}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_deleted_entry_is_named() {
        let dir = tmp("deleted");
        write_trail(&dir, 25, 10);
        let (path, mut lines) = file_lines(&dir, 11);
        lines.remove(5);
        rewrite(&path, &lines);
        let bad = verify(&dir).unwrap_err();
        assert_eq!(bad.seq, Some(17), "{bad}");
        assert!(bad.problem.contains("follows 15"), "{bad}");
        // A whole file deleted from the middle.
        write_trail(&dir, 25, 10);
        std::fs::remove_file(dir.join("audit-000000000011.jsonl")).unwrap();
        let bad = verify(&dir).unwrap_err();
        assert!(bad.problem.contains("entry 21 follows 10"), "{bad}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reordered_entries_are_named() {
        let dir = tmp("reordered");
        write_trail(&dir, 25, 10);
        let (path, mut lines) = file_lines(&dir, 1);
        lines.swap(2, 3);
        rewrite(&path, &lines);
        let bad = verify(&dir).unwrap_err();
        assert_eq!((bad.line, bad.seq), (3, Some(4)), "{bad}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_forged_entry_with_a_fresh_hash_still_breaks_the_chain() {
        // Editing an entry and recomputing its hash breaks the next link.
        let dir = tmp("forged");
        let lines = write_trail(&dir, 5, 10);
        let (mut e, _, _) = unseal(&lines[1]).unwrap();
        e.detail = serde_json::json!({ "unit": "api.service", "runtime_us": 9000 });
        let (forged, _) = seal(&e).unwrap();
        let (path, mut file) = file_lines(&dir, 1);
        file[1] = forged;
        rewrite(&path, &file);
        let bad = verify(&dir).unwrap_err();
        assert_eq!(bad.seq, Some(3), "{bad}");
        assert!(bad.problem.contains("chain is broken"), "{bad}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fifos_and_symlinks_in_the_trail_are_refused_without_waiting() {
        let dir = tmp("fifo");
        write_trail(&dir, 3, 10);
        let c = std::ffi::CString::new(dir.join("audit-000000000004.jsonl").as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let d = dir.clone();
        std::thread::spawn(move || tx.send(verify(&d)));
        let bad = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("verify hung on a FIFO").unwrap_err();
        assert!(bad.problem.contains("not a regular file"), "{bad}");
        write_trail(&dir, 3, 10);
        std::os::unix::fs::symlink(dir.join("audit-000000000001.jsonl"), dir.join("audit-000000000004.jsonl")).unwrap();
        let bad = verify(&dir).unwrap_err();
        assert!(bad.problem.contains("unreadable"), "{bad}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_last_sequence_number_is_not_followed_and_does_not_overflow() {
        let dir = tmp("maxseq");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (l1, h1) = seal(&entry(u64::MAX - 1, GENESIS, "a")).unwrap();
        let (l2, h2) = seal(&entry(u64::MAX, &h1, "b")).unwrap();
        let (l3, _) = seal(&entry(0, &h2, "c")).unwrap();
        std::fs::write(dir.join(format!("audit-{:012}.jsonl", u64::MAX - 1)), format!("{l1}\n{l2}\n")).unwrap();
        assert_eq!(verify(&dir).unwrap().last_seq, u64::MAX);
        std::fs::write(dir.join(format!("audit-{:012}.jsonl", u64::MAX - 1)), format!("{l1}\n{l2}\n{l3}\n")).unwrap();
        assert!(verify(&dir).unwrap_err().problem.contains("the last sequence number"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_huge_line_is_refused_after_its_limit_not_read_whole() {
        let dir = tmp("hugeline");
        write_trail(&dir, 2, 10);
        let path = dir.join("audit-000000000001.jsonl");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, &vec![b'x'; MAX_LINE_BYTES + 10]).unwrap();
        let bad = verify(&dir).unwrap_err();
        assert_eq!(bad.line, 3, "{bad}");
        assert!(bad.problem.contains("over"), "{bad}");
        // A mistyped value is quoted by its prefix only.
        let long = format!("{{\"seq\":\"{}\",\"hash\":\"{}\"}}", "y".repeat(5000), "0".repeat(64));
        assert!(unseal(&long).unwrap_err().len() < 300);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cut_last_line_and_a_rotated_away_start_are_told_apart() {
        let dir = tmp("cut");
        write_trail(&dir, 5, 10);
        let path = dir.join("audit-000000000001.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 20]).unwrap();
        assert!(verify(&dir).unwrap_err().problem.contains("incomplete"));
        // The oldest file rotated away: checked from where it starts.
        write_trail(&dir, 25, 10);
        std::fs::remove_file(dir.join("audit-000000000001.jsonl")).unwrap();
        let v = verify(&dir).unwrap();
        assert_eq!((v.first_seq, v.last_seq), (11, 25));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
