// SPDX-License-Identifier: GPL-2.0-only
//! An operator's Disable, kept in the runtime directory (`/run/scx-slo/
//! disabled`, tmpfs) as well as in state.json. state.json is written on the
//! disk writer's thread, and Disable never waits for it: on a frozen or
//! full state disk the save stays queued, and a daemon stopped before it
//! lands would forget the Disable and load the scheduler again at its next
//! start. The marker is written at once, on a file system that needs no
//! disk, so a restart in the same boot stays off. A reboot clears /run:
//! from then on state.json alone decides, and the Disable's reply said
//! whether it holds it.
//!
//! Enable removes the marker. The marker only ever adds a Disable: it
//! never turns the scheduler on.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The marker's file name, beside the status file in the runtime directory.
pub const FILE_NAME: &str = "disabled";

/// Largest marker read: a reason is at most a few KiB (the D-Bus argument
/// limit); anything larger was not written by the daemon.
pub const MAX_BYTES: u64 = 16 * 1024;

/// The marker's content.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Marker {
    operator_disabled: String,
}

/// Where the marker lives: beside the status file (the runtime directory).
pub fn path_beside(status_path: &Path) -> PathBuf {
    status_path.with_file_name(FILE_NAME)
}

/// Writes the marker with the operator's reason (a temp file renamed over
/// it: a reader never sees half of it).
pub fn write(path: &Path, reason: &str) -> Result<(), String> {
    // Where a marker would be ignored at start, none is written: the reply
    // must not say a restart keeps the Disable.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && d.exists()) {
        trusted_dir(dir)?;
    }
    crate::persist::replace_json(path, &Marker { operator_disabled: reason.to_string() }).map_err(|e| format!("{}: {e}", path.display()))
}

/// Removes the marker, or whatever stands at its path (a file, a symlink,
/// a FIFO, an empty directory: each keeps the scheduler off at start); a
/// missing one is fine.
pub fn clear(path: &Path) -> Result<(), String> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e} (remove it by hand: a restart in this boot stays off while it is there)", path.display())),
    }
}

/// Whether a marker in `dir` can be trusted: only the daemon's own user
/// may write there. With `--status-file` in a directory others can write
/// (say /tmp), anyone could plant a marker and keep the scheduler off.
fn trusted_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not the daemon's own directory (owner uid {}, mode {:o}): a Disable marker there is ignored; put the status file in a directory only the daemon's user may write (the default is /run/scx-slo)",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The reason in the marker: `Ok(None)` when there is none, `Err` when
/// something is there that the daemon did not write (not a regular file,
/// too large, not its JSON). Never follows a symlink.
pub fn read(path: &Path) -> Result<Option<String>, String> {
    let shown = path.display();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(why) = trusted_dir(dir) {
            if dir.exists() {
                tracing::warn!("{why}");
            }
            return Ok(None);
        }
    }
    // The audit trail's open: no symlink followed, no FIFO waited on, a
    // regular file only ("not a regular file" otherwise).
    let file = match scx_slo_api::audit::open_trail_file(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("{shown}: {e}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("{shown}: larger than {MAX_BYTES} bytes"));
    }
    let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| format!("{shown}: not the daemon's marker ({e})"))?;
    Ok(Some(marker.operator_disabled))
}

/// The operator's Disable to start with: state.json's when it has one,
/// else the marker's (a Disable the state disk had not taken before the
/// daemon stopped). A marker that cannot be read also keeps the scheduler
/// off: something stands where only a Disable is written, and loading the
/// scheduler over an operator's stop is the worse mistake.
pub fn merge(saved: Option<String>, marker: Result<Option<String>, String>) -> Option<String> {
    if saved.is_some() {
        return saved;
    }
    match marker {
        Ok(None) => None,
        Ok(Some(reason)) => Some(format!("{reason} (kept by the runtime marker: the state disk had not taken this Disable before scx-slod stopped)")),
        Err(why) => Some(format!("the runtime Disable marker cannot be read ({why}); staying off until Enable")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory of the test's own.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("scx-slod-marker-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        // The daemon's own directory whatever the umask (trusted_dir).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn a_written_marker_reads_back_and_clear_removes_it() {
        let dir = scratch("roundtrip");
        let path = path_beside(&dir.join("status.json"));
        assert_eq!(path, dir.join(FILE_NAME));
        assert_eq!(read(&path), Ok(None));
        write(&path, "incident 42").unwrap();
        assert_eq!(read(&path), Ok(Some("incident 42".into())));
        clear(&path).unwrap();
        clear(&path).unwrap();
        assert_eq!(read(&path), Ok(None));
    }

    #[test]
    fn what_the_daemon_did_not_write_is_an_error_by_name() {
        let dir = scratch("hostile");
        let path = dir.join(FILE_NAME);
        // A symlink to a valid marker: refused all the same (never followed).
        let real = dir.join("real");
        write(&real, "planted").unwrap();
        assert_eq!(read(&real), Ok(Some("planted".into())));
        std::os::unix::fs::symlink(&real, &path).unwrap();
        assert!(read(&path).is_err_and(|e| e.contains(FILE_NAME) && !e.contains("planted")), "a symlink is not followed");
        clear(&path).unwrap();
        assert!(real.is_file(), "clearing a symlink removes the link, not its target");
        std::fs::create_dir(&path).unwrap();
        assert!(read(&path).is_err_and(|e| e.contains("not a regular file")));
        clear(&path).unwrap();
        assert_eq!(read(&path), Ok(None), "clear removes an empty directory too");
        std::fs::write(&path, vec![b' '; MAX_BYTES as usize + 1]).unwrap();
        assert!(read(&path).is_err_and(|e| e.contains("larger than")));
        std::fs::write(&path, "{\"operator_disabled\": 1}").unwrap();
        assert!(read(&path).is_err_and(|e| e.contains("not the daemon's marker")));
        mkfifo(&dir.join("fifo"));
        assert!(read(&dir.join("fifo")).is_err_and(|e| e.contains("not a regular file")), "a FIFO is not waited on");
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_marker_in_a_directory_others_may_write_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("open");
        let path = dir.join(FILE_NAME);
        write(&path, "planted by anyone").unwrap();
        assert_eq!(read(&path), Ok(Some("planted by anyone".into())));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(read(&path), Ok(None), "a world-writable directory is not the daemon's own");
        assert!(write(&path, "x").is_err_and(|e| e.contains("not the daemon's own directory")), "and none is written there");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn the_saved_disable_wins_and_the_marker_only_ever_adds_one() {
        assert_eq!(merge(Some("saved".into()), Ok(Some("marker".into()))).as_deref(), Some("saved"));
        assert_eq!(merge(None, Ok(None)), None);
        assert!(merge(None, Ok(Some("incident 42".into()))).is_some_and(|r| r.starts_with("incident 42 (kept by the runtime marker")));
        assert!(merge(None, Err("x: not a regular file".into())).is_some_and(|r| r.contains("cannot be read (x: not a regular file)")));
    }
}
