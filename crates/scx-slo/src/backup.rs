// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo backup` and `scx-slo restore` (docs/operations.md, Backup and
//! restore): what the daemon knows (state.json: learned budgets, overrides,
//! the breaker, an operator's disable, a decided canary) and the audit trail,
//! as one archive ([`crate::archive`]), and back.
//!
//! Backup reads files only, so it runs while the daemon runs: the state
//! file is replaced by rename (a read sees one whole version) and the trail
//! is append-only (whole lines are copied). The copy is consistent when
//! nothing changed while it was taken; otherwise it is taken again.
//!
//! Restore refuses while the daemon runs: the daemon holds the state in
//! memory and writes it back at its next change, and appends to the trail,
//! so a restore under it would be overwritten or fork the chain. It refuses
//! an archive whose config is not the config in force (naming what differs),
//! and continues the trail: the restore is an entry chained to the trail's
//! last one.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use scx_slo_api::audit::{seal, trail_files, unseal, verify, verify_with, AuditEntry, Caller};
use scx_slo_api::exit::cli;

use crate::archive::{self, FileSum, Head, Manifest};

/// Attempts at a copy nothing changed under.
const ATTEMPTS: usize = 5;
/// Largest state file read (the daemon's own bound).
const MAX_STATE_BYTES: u64 = 1 << 20;
/// The state a daemon that never saved one starts from, as it writes it
/// (its reader requires these fields: `{}` would be quarantined as corrupt).
pub const DEFAULT_STATE: &str = r#"{"operator_disabled":null,"breaker_open":false,"budget_overrides":{}}"#;
/// Most archives `--retain` keeps.
pub const MAX_RETAIN: usize = 1000;
/// A status file written this recently by a daemon that did not say
/// `stopped` means it runs.
const RUNNING_IF_WRITTEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the daemon's files are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `--config`.
    pub config: PathBuf,
    /// `--state-file`.
    pub state: PathBuf,
    /// `--audit-dir`.
    pub audit: PathBuf,
    /// `--status-file` (restore's check that the daemon is stopped).
    pub status: PathBuf,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Reads a regular file of at most `max` bytes; a missing one is `None`.
fn read_file(path: &Path, max: u64) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let file = match archive::open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e} (only a regular file is read)", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!("{}: larger than {max} bytes", path.display()));
    }
    Ok(Some(bytes))
}

/// The whole lines of a trail file (a line being written is left out).
fn whole_lines(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = read_file(path, archive::MAX_AUDIT_FILE_BYTES)?.ok_or_else(|| format!("{}: vanished", path.display()))?;
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(keep);
    Ok(bytes)
}

/// One copy of the state and the trail: (state, [(archive name, bytes)], head).
type Copy = (Vec<u8>, Vec<(String, Vec<u8>)>, Option<Head>);

fn copy_once(paths: &Paths) -> Result<Copy, String> {
    let state = read_file(&paths.state, MAX_STATE_BYTES)?.unwrap_or_else(|| DEFAULT_STATE.as_bytes().to_vec());
    let mut files = Vec::new();
    let listed = match trail_files(&paths.audit) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", paths.audit.display())),
    };
    if listed.len() > archive::MAX_ENTRIES - 4 {
        return Err(format!("{}: {} trail files, more than an archive holds", paths.audit.display(), listed.len()));
    }
    // Before anything is read: a trail whose files alone make an archive
    // over restore's bound is refused by their sizes on disk.
    let on_disk = listed.iter().map(|(_, p)| std::fs::symlink_metadata(p).map_or(0, |m| m.len()));
    archive::fits(archive::archive_bytes(on_disk.chain([state.len() as u64]))).map_err(|e| format!("{}: {e}", paths.audit.display()))?;
    for (_, path) in listed {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        files.push((format!("audit/{name}"), whole_lines(&path)?));
    }
    let last_line = files.iter().rev().find_map(|(_, b)| b[..b.len().saturating_sub(1)].split(|c| *c == b'\n').next_back().filter(|l| !l.is_empty()));
    let head = match last_line {
        Some(line) => {
            let (entry, _, hash) = unseal(&String::from_utf8_lossy(line)).map_err(|e| format!("the trail's newest entry: {e}"))?;
            Some(Head { seq: entry.seq, hash })
        }
        None => None,
    };
    Ok((state, files, head))
}

/// A consistent copy: taken again while the daemon changed something.
fn consistent_copy(paths: &Paths) -> Result<Copy, String> {
    let mut copy = copy_once(paths)?;
    for _ in 0..ATTEMPTS {
        let again = copy_once(paths)?;
        if again == copy {
            return Ok(copy);
        }
        copy = again;
    }
    Err(format!("the state or the audit trail changed during each of {ATTEMPTS} copies; try again when the daemon is quieter"))
}

/// Builds the archive's manifest and files from a copy and the config.
pub fn assemble(config: &str, (state, trail, head): Copy, created_unix_ms: u64) -> (Manifest, Vec<(String, Vec<u8>)>) {
    let mut files = vec![("config.json".to_string(), config.as_bytes().to_vec()), ("state.json".to_string(), state)];
    files.extend(trail);
    let sums = files.iter().map(|(name, b)| FileSum { name: name.clone(), bytes: b.len() as u64, sha256: scx_slo_model::sha256_hex(b) }).collect();
    let manifest = Manifest {
        format: archive::FORMAT.into(),
        version: archive::VERSION,
        created_unix_ms,
        config_sha256: scx_slo_model::sha256_hex(config.as_bytes()),
        audit_head: head,
        files: sums,
    };
    (manifest, files)
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync,
/// rename, fsync of the directory. `mode` is the new file's.
fn write_atomic(path: &Path, mode: u32, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<(), String> {
    let tmp = temp_beside(path);
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| format!("writing {}: {e}", path.display()))
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{}", std::process::id(), now_ms()))
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// `scx-slo backup`: to `output`, or a new `scx-slo-backup-<ms>.tar` in
/// `dir` keeping the newest `retain`.
pub fn backup_cmd(paths: &Paths, output: Option<&Path>, dir: Option<&Path>, retain: usize) -> u8 {
    match backup(paths, output, dir, retain) {
        Ok(msg) => {
            outln!("{msg}");
            cli::OK
        }
        Err(e) => {
            eprintln!("scx-slo backup: {e}");
            cli::USAGE
        }
    }
}

fn backup(paths: &Paths, output: Option<&Path>, dir: Option<&Path>, retain: usize) -> Result<String, String> {
    if !(1..=MAX_RETAIN).contains(&retain) {
        return Err(format!("--retain {retain}: keep 1 to {MAX_RETAIN} archives"));
    }
    let config = scx_slo_model::read_config_text(&paths.config).map_err(|e| format!("{}: {e}", paths.config.display()))?;
    let created = now_ms();
    let target = match (output, dir) {
        (Some(out), None) if out.exists() => return Err(format!("{}: exists; a backup never overwrites a file", out.display())),
        (Some(out), None) => out.to_path_buf(),
        (None, Some(dir)) => dir.join(format!("scx-slo-backup-{created:015}.tar")),
        _ => return Err("give --output FILE or --dir DIR".into()),
    };
    if let Some(dir) = dir {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        // Retention removes files here: anyone who may write here could
        // plant names that sort after the real archives.
        let mode = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(format!("{}: writable by group or others (mode {:o}); a backup directory must not be, since retention removes files in it (chmod 0700)", dir.display(), mode & 0o777));
        }
    }
    let (manifest, files) = assemble(&config, consistent_copy(paths)?, created);
    archive::fits(archive::written_bytes(&manifest, &files))?;
    write_atomic(&target, 0o600, |f| archive::write(std::io::BufWriter::new(f), &manifest, &files))?;
    let pruned = match dir {
        Some(dir) => prune(dir, retain, &target).map_err(|e| format!("{} written; then {e}", target.display()))?,
        None => 0,
    };
    let head = manifest.audit_head.as_ref().map_or("an empty audit trail".into(), |h| format!("audit trail to entry {} ({})", h.seq, h.hash));
    let pruned = if pruned > 0 { format!("; {pruned} older archives removed") } else { String::new() };
    Ok(format!("{}: state and {head}, {} files{pruned}", target.display(), manifest.files.len()))
}

/// Whether `name` is one `--dir` writes: `scx-slo-backup-<15 digits>.tar`.
/// Any other name (an operator's `scx-slo-backup-before-upgrade.tar`)
/// would sort after every dated one and outlive them all.
fn is_dated_archive(name: &str) -> bool {
    name.strip_prefix("scx-slo-backup-").and_then(|r| r.strip_suffix(".tar")).is_some_and(|d| d.len() == 15 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the oldest dated archives in `dir` past the newest `retain`,
/// never `written`, the one this run made.
fn prune(dir: &Path, retain: usize, written: &Path) -> Result<usize, String> {
    let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .take(100_000)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| is_dated_archive(&n.to_string_lossy())))
        .collect();
    archives.sort();
    let excess = archives.len().saturating_sub(retain);
    let mut removed = 0;
    for old in archives[..excess].iter().filter(|p| p.as_path() != written) {
        std::fs::remove_file(old).map_err(|e| format!("removing {}: {e}", old.display()))?;
        removed += 1;
    }
    Ok(removed)
}

/// Why a restore may not go on because scx-slod runs, or may: it fails
/// closed. No status file: the daemon never ran here. One that says
/// `stopped`: it stopped. A fresh one that does not: it runs. A stale one
/// that does not (a daemon stalled on a frozen file system or with a long
/// status interval, or one that was killed), or one that cannot be read:
/// it may still run, and the operator decides.
fn daemon_running(status: &Path) -> Option<String> {
    let shown = status.display();
    let meta = match std::fs::symlink_metadata(status) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("cannot tell whether scx-slod runs: {shown}: {e}")),
        Ok(m) if !m.is_file() => return Some(format!("cannot tell whether scx-slod runs: {shown} is not a regular file")),
        Ok(m) => m,
    };
    let age = meta.modified().ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
    let state = match read_file(status, 64 << 20) {
        Ok(Some(bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| v["state"].as_str().map(str::to_string)),
        _ => None,
    };
    let Some(state) = state else {
        return Some(format!("cannot tell whether scx-slod runs: {shown} names no state; stop scx-slod (systemctl stop scx-slod), or remove the file if it does not run"));
    };
    if state == "stopped" {
        return None;
    }
    if age < RUNNING_IF_WRITTEN_WITHIN {
        return Some(format!("scx-slod runs ({shown} written {:.0} s ago, state {state}): stop it first (systemctl stop scx-slod)", age.as_secs_f64()));
    }
    Some(format!(
        "scx-slod may still run: {shown} says {state}, written {:.0} s ago (a stalled or killed daemon leaves it so); stop it (systemctl stop scx-slod) so it says stopped, or remove the file if it does not run",
        age.as_secs_f64()
    ))
}

/// What differs between the archive's config and the one in force: the
/// top-level keys, and targets by key.
pub fn config_differences(archived: &str, current: &str) -> Vec<String> {
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap_or_default();
    let (a, c) = (parse(archived), parse(current));
    let mut out = Vec::new();
    let keys = |v: &serde_json::Value| v.as_object().map(|o| o.keys().cloned().collect::<std::collections::BTreeSet<_>>()).unwrap_or_default();
    for key in keys(&a).union(&keys(&c)) {
        if key == "targets" || a[key] == c[key] {
            continue;
        }
        out.push(format!("{key}: the archive's {} vs now {}", short_json(&a[key]), short_json(&c[key])));
    }
    for key in keys(&a["targets"]).union(&keys(&c["targets"])) {
        match (a["targets"].get(key), c["targets"].get(key)) {
            (Some(_), None) => out.push(format!("targets.{key}: in the archive, not in the config now")),
            (None, Some(_)) => out.push(format!("targets.{key}: new in the config")),
            (Some(x), Some(y)) if x != y => out.push(format!("targets.{key}: the archive's {} vs now {}", short_json(x), short_json(y))),
            _ => {}
        }
    }
    if out.is_empty() {
        out.push("the same settings, written differently (the files' SHA-256 differ)".into());
    }
    out.truncate(20);
    out
}

fn short_json(v: &serde_json::Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// The checks before a restore changes anything: the daemon is stopped.
pub fn refuse_while_running(paths: &Paths) -> Result<(), String> {
    daemon_running(&paths.status).map_or(Ok(()), Err)
}

/// Appends one entry to the trail in `dir` after its newest (which must
/// verify), as the daemon would: one write, then fdatasync. Returns its seq.
pub fn append_entry(dir: &Path, action: &str, correlation: &str, detail: serde_json::Value) -> Result<u64, String> {
    let verified = verify(dir).map_err(|bad| format!("the audit trail does not verify: {bad}"))?;
    let files = trail_files(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (seq, prev) = if verified.entries == 0 { (1, scx_slo_api::audit::GENESIS.to_string()) } else { (verified.last_seq + 1, verified.last_hash) };
    let path = files.last().map_or_else(|| dir.join(format!("audit-{seq:012}.jsonl")), |(_, p)| p.clone());
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).ok();
    let caller = Caller { uid, pid: Some(std::process::id()), unit: None, via: "cli".into() };
    let entry = AuditEntry { seq, at_unix_ms: now_ms(), prev, kind: "restore".into(), caller: Some(caller), action: action.into(), detail, correlation_id: Some(correlation.to_string()) };
    let (line, _) = seal(&entry)?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(format!("{line}\n").as_bytes()).and_then(|()| file.sync_data()).map_err(|e| format!("appending to {}: {e}", path.display()))?;
    Ok(seq)
}

/// The hash of entry `seq` of the trail in `dir` (the `prev` of the one
/// after it, or the last hash), when the trail verifies and holds it.
pub fn hash_at(dir: &Path, seq: u64) -> Option<String> {
    let mut next_prev = None;
    let v = verify_with(dir, |e| {
        if e.seq == seq + 1 {
            next_prev = Some(e.prev.clone());
        }
    })
    .ok()?;
    if v.entries == 0 || seq < v.first_seq || seq > v.last_seq {
        return None;
    }
    if seq == v.last_seq {
        Some(v.last_hash)
    } else {
        next_prev
    }
}

/// Whether a trail file reader sees at least one line (used to tell an
/// empty trail directory from one with entries).
pub fn has_entries(dir: &Path) -> bool {
    trail_files(dir).unwrap_or_default().iter().any(|(_, p)| {
        archive::open_nofollow(p).is_ok_and(|f| std::io::BufReader::new(f).lines().next().is_some())
    })
}
