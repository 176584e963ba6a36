// SPDX-License-Identifier: GPL-2.0-only
//! State that survives restarts, in `/var/lib/scx-slo/state.json`: an
//! operator's disable, the breaker, budget overrides (an operator's, or an
//! adaptive target's learned budget), why the controller set the latter, and
//! a canary's decision on the config it judged. Written atomically
//! (temp file, fsync, rename, fsync of the directory); a corrupt file is moved
//! aside with a clear error, never silently dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use scx_slo_api::BudgetOverride;

/// The persisted state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistentState {
    /// Why an operator disabled scx-slo; it stays disabled until Enable.
    pub operator_disabled: Option<String>,
    /// The breaker was open when the daemon stopped.
    pub breaker_open: bool,
    /// Budget overrides by target key.
    pub budget_overrides: BTreeMap<String, BudgetOverride>,
    /// The last change each adaptive target's controller applied: the
    /// learned budget itself is its budget override; this says why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub adaptive_changes: BTreeMap<String, scx_slo_api::AdaptiveDecision>,
    /// A canary that ended promoted or expired, with the config it judged:
    /// a restart with the same config does not run it again. (A rollback
    /// persists as the open breaker.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<scx_slo_api::documents::CanaryReport>,
}

/// The outcome of loading.
#[derive(Debug)]
pub struct Loaded {
    /// What to use.
    pub state: PersistentState,
    /// Set when the file was corrupt: where it was moved and why.
    pub quarantined: Option<String>,
}

/// Largest state file read: 1,024 overrides of a few dozen bytes each fit
/// many times over. A larger one is corrupt, not a reason to fill memory.
pub const MAX_STATE_BYTES: u64 = 1 << 20;

/// The state in the file, or why its content cannot be used (it is then
/// quarantined).
fn read_state(path: &Path) -> std::io::Result<Result<PersistentState, String>> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Ok(Err("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(MAX_STATE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Ok(Err(format!("larger than {MAX_STATE_BYTES} bytes")));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return Ok(Err(format!("not UTF-8 text (first bad byte at offset {})", e.utf8_error().valid_up_to()))),
    };
    Ok(serde_json::from_str(&text).map_err(|e| e.to_string()))
}

/// Reads the state; a missing file is the default state. Anything else that
/// is not a valid state (not JSON, not UTF-8, too large, not a regular file)
/// is moved aside under a name of its own and the defaults are used: a
/// corrupt file must never keep the daemon from starting.
pub fn load(path: &Path) -> std::io::Result<Loaded> {
    remove_stale_temps(path);
    let why = match read_state(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Loaded { state: PersistentState::default(), quarantined: None })
        }
        Err(e) => return Err(e),
        Ok(Ok(state)) => return Ok(Loaded { state, quarantined: None }),
        Ok(Err(why)) => why,
    };
    let aside = quarantine(path)?;
    Ok(Loaded {
        state: PersistentState::default(),
        quarantined: Some(format!("{} was corrupt ({why}); kept as {} and starting from defaults", path.display(), aside.display())),
    })
}

/// Removes the temp files a killed writer of `path` left
/// (`<name>.tmp-<pid>-<n>`): those of processes that no longer run. The
/// rename that would have replaced `path` never happened, so they hold
/// nothing the file does not.
pub fn remove_stale_temps(path: &Path) -> usize {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return 0 };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!("{}.tmp-", name.to_string_lossy());
    let mut removed = 0;
    // Bounded: a state directory holds a handful of files.
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten().take(10_000) {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(&prefix).and_then(|r| r.split_once('-')).and_then(|(p, _)| p.parse::<u32>().ok()) else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if e.file_type().is_ok_and(|t| !t.is_dir()) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Moves `path` aside to a name no earlier quarantine has: the time to the
/// nanosecond, then a counter if that exists too (a second corruption in
/// the same second overwrote the first).
fn quarantine(path: &Path) -> std::io::Result<PathBuf> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let stem = format!("json.corrupt-{}.{:09}", now.as_secs(), now.subsec_nanos());
    for n in 0..1000u32 {
        let aside = path.with_extension(if n == 0 { stem.clone() } else { format!("{stem}-{n}") });
        // A hard link fails if the name exists, so nothing is overwritten.
        // A directory cannot be hard-linked: it is renamed to a name seen
        // free (the state directory is the daemon's own, so nothing races
        // for that name).
        let moved = if std::fs::symlink_metadata(path)?.is_dir() {
            if std::fs::symlink_metadata(&aside).is_ok() {
                continue;
            }
            std::fs::rename(path, &aside)
        } else {
            std::fs::hard_link(path, &aside).and_then(|()| std::fs::remove_file(path))
        };
        match moved {
            Ok(()) => return Ok(aside),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!("no free quarantine name next to {}", path.display())))
}

/// Writes `value` to `path` atomically and durably (persistent state).
pub fn save_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    write_json(path, value, true)
}

/// Replaces `path` with `value` atomically, without waiting for the disk:
/// for the status file, rewritten every second and stale after a crash
/// anyway (two fsyncs per write were most of an idle daemon's CPU time on
/// a disk-backed path, measured with perf). Compact, not pretty: with
/// 1,000 targets the pretty file was 1.43 MB a second, the compact one is
/// under half of it; `jq . FILE` or `scx-slo status` shows it to people.
pub fn replace_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    write_json(path, value, false)
}

static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn write_json(path: &Path, value: &impl Serialize, durable: bool) -> std::io::Result<()> {
    // A bare file name has the empty path as parent: that is the current directory.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // A name of this write's own, created exclusively (O_EXCL never follows
    // a symlink planted there) and readable by the owner only.
    let tmp = path.with_extension(format!("json.tmp-{}-{}", std::process::id(), TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&tmp)?;
        // Buffered: serde writes token by token, and an unbuffered file made
        // a 1,000-target status a syscall per token (38% of a CPU, measured).
        let mut f = std::io::BufWriter::with_capacity(64 * 1024, file);
        // The persistent state is small and read by people; the status
        // file is large and read by programs.
        if durable {
            serde_json::to_writer_pretty(&mut f, value)?;
        } else {
            serde_json::to_writer(&mut f, value)?;
        }
        f.write_all(b"\n")?;
        let f = f.into_inner().map_err(|e| e.into_error())?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if !durable {
        return Ok(());
    }
    // The rename is durable only once the directory is.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("scx-slo-persist-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trips_and_defaults_when_missing() {
        let d = dir("rt");
        let path = d.join("state.json");
        assert_eq!(load(&path).unwrap().state, PersistentState::default());
        let mut s = PersistentState { operator_disabled: Some("incident 42".into()), ..Default::default() };
        s.budget_overrides.insert("api.service".into(), BudgetOverride { runtime_us: 2000, period_us: 10000 });
        save_json(&path, &s).unwrap();
        assert_eq!(load(&path).unwrap().state, s);
    }

    #[test]
    fn corrupt_file_is_kept_aside_with_an_error() {
        let d = dir("corrupt");
        let path = d.join("state.json");
        std::fs::write(&path, "{ not json").unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.state, PersistentState::default());
        let msg = loaded.quarantined.unwrap();
        assert!(msg.contains("was corrupt") && msg.contains("corrupt-"), "{msg}");
        assert!(!path.exists());
        let kept: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(std::fs::read_to_string(kept[0].path()).unwrap(), "{ not json");
    }

    #[test]
    fn non_utf8_utf16_and_fifo_state_files_are_quarantined_each_under_its_own_name() {
        let d = dir("hostile");
        let path = d.join("state.json");
        // UTF-16 (with BOM), bare invalid bytes, and a FIFO: each one moved
        // aside, the daemon starts from defaults, nothing overwritten.
        let utf16: Vec<u8> = "\u{feff}{}".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        for (i, bytes) in [utf16, vec![0xff, 0xfe, 0x00, b'{']].into_iter().enumerate() {
            std::fs::write(&path, &bytes).unwrap();
            let loaded = load(&path).unwrap();
            assert_eq!(loaded.state, PersistentState::default(), "case {i}");
            assert!(loaded.quarantined.unwrap().contains("UTF-8"), "case {i}");
        }
        std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        let loaded = load(&path).unwrap();
        assert!(loaded.quarantined.unwrap().contains("not a regular file"));
        let kept = std::fs::read_dir(&d).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains("corrupt-")).count();
        assert_eq!(kept, 3, "three quarantines, three files");
    }

    #[test]
    fn a_directory_at_the_state_path_is_quarantined_not_fatal() {
        let d = dir("directory");
        let path = d.join("state.json");
        std::fs::create_dir_all(path.join("inside")).unwrap();
        let loaded = load(&path).expect("a directory there does not stop the start");
        assert_eq!(loaded.state, PersistentState::default());
        assert!(loaded.quarantined.unwrap().contains("not a regular file"));
        assert!(!path.exists());
        let aside: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains("corrupt-")).collect();
        assert!(aside.len() == 1 && aside[0].path().join("inside").is_dir(), "kept whole");
        save_json(&path, &PersistentState::default()).unwrap();
    }

    #[test]
    fn temp_files_a_killed_writer_left_are_removed_at_start() {
        let d = dir("stale");
        let path = d.join("state.json");
        save_json(&path, &PersistentState::default()).unwrap();
        // pid 0 never runs a writer; our own pid's are in flight.
        let stale = d.join("state.json.tmp-0-3");
        let ours = d.join(format!("state.json.tmp-{}-99", std::process::id()));
        let other = d.join("status.json.tmp-0-1");
        for f in [&stale, &ours, &other] {
            std::fs::write(f, "{").unwrap();
        }
        load(&path).unwrap();
        assert!(!stale.exists() && ours.exists() && other.exists());
    }

    #[test]
    fn writes_never_follow_a_planted_symlink_and_leave_no_temp_file() {
        let d = dir("symlink");
        let path = d.join("state.json");
        let victim = d.join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        // Whatever temp name an attacker guesses, the old fixed one included.
        std::os::unix::fs::symlink(&victim, d.join("state.json.tmp")).unwrap();
        save_json(&path, &PersistentState::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(load(&path).unwrap().state, PersistentState::default());
        let leftovers = std::fs::read_dir(&d).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains("tmp-")).count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn a_failed_write_is_an_error_not_a_silent_success() {
        let d = dir("readonly");
        let path = d.join("sub/state.json");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        // A file where the directory should be: the write cannot succeed, as
        // root too (a read-only mode would not stop root).
        std::fs::remove_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub"), "").unwrap();
        assert!(save_json(&path, &PersistentState::default()).is_err());
    }
}
