// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo restore ARCHIVE` (docs/operations.md, Backup and restore): every
//! check first, then the changes, each atomic.
//!
//! 1. The daemon is stopped (its status file says `stopped`, or is stale).
//! 2. The archive is valid ([`crate::archive::open`]): bounds, file types,
//!    names, version, checksums; its audit files are staged beside the
//!    trail and must verify up to the manifest's head.
//! 3. Its config is the config in force, or the restore is refused with
//!    what differs: learned budgets and overrides belong to one config.
//! 4. The trail on disk either is empty (the archive's trail is installed
//!    by one rename) or holds the archive's head entry (it continues the
//!    backup's history and is kept). A trail with another history is
//!    refused: it is evidence, moved aside only by an operator.
//! 5. The new state is written to a temp file and synced; the restore is
//!    appended to the trail (a restore the trail cannot record is not
//!    made); then the temp file is renamed over state.json.
//!
//! Every staged file (the state, the archive's trail files) is written 0600
//! and synced, and the staging directory too, before its rename: a crash
//! after a rename never leaves a restored name over missing data.

use std::path::Path;

use scx_slo_api::audit::verify;
use scx_slo_api::exit::cli;

use crate::archive;
use crate::backup::{append_entry, config_differences, has_entries, hash_at, refuse_while_running, Paths};

type Failed = (u8, String);

fn refused(why: impl Into<String>) -> Failed {
    (cli::REFUSED, why.into())
}

/// `scx-slo restore ARCHIVE`: 0 when restored, 1 refused, 2 a file could
/// not be written.
pub fn restore_cmd(paths: &Paths, archive_path: &Path) -> u8 {
    match restore(paths, archive_path) {
        Ok(msg) => {
            outln!("{msg}");
            cli::OK
        }
        Err((code, e)) => {
            eprintln!("scx-slo restore: {e}");
            code
        }
    }
}

/// Restores `archive_path` into `paths`; the message says what was done.
pub fn restore(paths: &Paths, archive_path: &Path) -> Result<String, Failed> {
    refuse_while_running(paths).map_err(refused)?;
    let current = scx_slo_model::read_config_text(&paths.config).map_err(|e| (cli::USAGE, format!("{}: {e}", paths.config.display())))?;
    let parent = paths.audit.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let staging = parent.join(format!(".scx-slo-restore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(&staging).map_err(|e| (cli::USAGE, format!("staging in {}: {e}", staging.display())))?;
    }
    let result = staged(paths, archive_path, &current, &staging);
    // Installed, the staging directory became the trail; otherwise it goes.
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// How the trail on disk relates to the archive's.
#[derive(Debug, PartialEq, Eq)]
enum Trail {
    /// None on disk: the archive's is installed.
    Install,
    /// The one on disk holds the archive's head: it is kept.
    Continue,
}

fn staged(paths: &Paths, archive_path: &Path, current: &str, staging: &Path) -> Result<String, Failed> {
    let opened = archive::open(archive_path, staging).map_err(|e| refused(format!("{}: {e}; nothing was changed", archive_path.display())))?;
    let m = &opened.manifest;
    if scx_slo_model::sha256_hex(current.as_bytes()) != m.config_sha256 {
        let diffs = config_differences(&opened.config, current);
        return Err(refused(format!(
            "the archive was taken under another config than {} (the learned budgets and overrides belong to that one); nothing was changed. What differs:\n  {}",
            paths.config.display(),
            diffs.join("\n  ")
        )));
    }
    if !serde_json::from_str::<serde_json::Value>(&opened.state).is_ok_and(|v| v.is_object()) {
        return Err(refused("the archive's state.json is not a JSON object; nothing was changed"));
    }
    match (&m.audit_head, verify(staging)) {
        (_, Err(bad)) => return Err(refused(format!("the archive's audit trail does not verify ({bad}); nothing was changed"))),
        (Some(h), Ok(v)) if v.last_seq == h.seq && v.last_hash == h.hash => {}
        (None, Ok(v)) if v.entries == 0 => {}
        (_, Ok(v)) => return Err(refused(format!("the archive's audit trail ends at entry {}, not at the manifest's head; nothing was changed", v.last_seq))),
    }
    let trail = if !has_entries(&paths.audit) {
        Trail::Install
    } else {
        match &m.audit_head {
            None => Trail::Continue,
            Some(h) if hash_at(&paths.audit, h.seq).as_deref() == Some(h.hash.as_str()) => Trail::Continue,
            Some(h) => {
                return Err(refused(format!(
                    "the audit trail in {} does not verify or does not hold the archive's newest entry ({}, hash {}): it is another history. Keep it (it is evidence): move it aside, then restore again; nothing was changed",
                    paths.audit.display(),
                    h.seq,
                    h.hash
                )))
            }
        }
    };
    commit(paths, archive_path, &opened, trail, staging)
}

fn commit(paths: &Paths, archive_path: &Path, opened: &archive::Opened, trail: Trail, staging: &Path) -> Result<String, Failed> {
    let failed = |what: String| (cli::USAGE, what);
    let tmp = paths.state.with_file_name(format!(".state.json.restore-{}", std::process::id()));
    archive::write_synced(&tmp, opened.state.as_bytes()).map_err(|e| failed(format!("writing {}: {e}; nothing was changed", tmp.display())))?;
    let undo = || {
        let _ = std::fs::remove_file(&tmp);
    };
    if trail == Trail::Install {
        if let Err(e) = install(staging, &paths.audit) {
            undo();
            return Err(failed(format!("installing the archive's audit trail as {}: {e}; nothing was changed", paths.audit.display())));
        }
    }
    let how = match trail {
        Trail::Install => "installed from the archive",
        Trail::Continue => "kept (it holds the archive's history)",
    };
    let m = &opened.manifest;
    let detail = serde_json::json!({
        "archive": archive_path.display().to_string(),
        "archive_sha256": opened.manifest_sha256,
        "created_unix_ms": m.created_unix_ms,
        "backup_head": m.audit_head,
        "config_sha256": m.config_sha256,
        "state_file": paths.state.display().to_string(),
        "trail": how,
    });
    // One restore is one correlation: its entry and a `restore failed` after it.
    let correlation = format!("restore-{:x}-{}", m.created_unix_ms, std::process::id());
    let seq = match append_entry(&paths.audit, "restored", &correlation, detail.clone()) {
        Ok(seq) => seq,
        Err(e) => {
            undo();
            let installed = if trail == Trail::Install { "the archive's audit trail was installed, but " } else { "" };
            return Err(failed(format!("{installed}the restore cannot be recorded in the audit trail ({e}), so the state was NOT restored")));
        }
    };
    if let Err(e) = std::fs::rename(&tmp, &paths.state).and_then(|()| sync_parent(&paths.state)) {
        undo();
        let _ = append_entry(&paths.audit, "restore failed", &correlation, serde_json::json!({ "after_entry": seq, "error": e.to_string() }));
        return Err(failed(format!("replacing {}: {e}; the state was NOT restored (audit entry {seq} records the attempt)", paths.state.display())));
    }
    let head = m.audit_head.as_ref().map_or("an empty trail".to_string(), |h| format!("entry {}", h.seq));
    Ok(format!(
        "restored {} from {} (taken at {} ms, trail to {head}); audit trail {how}; the restore is audit entry {seq}. Start scx-slod: it applies the restored state at start",
        paths.state.display(),
        archive_path.display(),
        m.created_unix_ms
    ))
}

/// The staged trail becomes `audit` by one rename (its files and its
/// entries synced first); an existing `audit` without entries (an empty
/// directory) is removed first.
fn install(staging: &Path, audit: &Path) -> std::io::Result<()> {
    std::fs::File::open(staging)?.sync_all()?;
    match std::fs::symlink_metadata(audit) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir(audit)?,
        Ok(_) => return Err(std::io::Error::other("exists and is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::rename(staging, audit)?;
    sync_parent(audit)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}
