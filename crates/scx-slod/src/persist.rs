// SPDX-License-Identifier: GPL-2.0-only
//! State that survives restarts, in `/var/lib/scx-slo/state.json`: an
//! operator's disable, the breaker, budget overrides. Written atomically
//! (temp file, fsync, rename, fsync of the directory); a corrupt file is moved
//! aside with a clear error, never silently dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A budget set at runtime with SetBudget, overriding the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetOverride {
    /// Runtime per period, µs.
    pub runtime_us: u64,
    /// Period, µs.
    pub period_us: u64,
}

/// The persisted state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistentState {
    /// Why an operator disabled scx-slo; it stays disabled until Enable.
    pub operator_disabled: Option<String>,
    /// The breaker was open when the daemon stopped.
    pub breaker_open: bool,
    /// Budget overrides by target key.
    pub budget_overrides: BTreeMap<String, BudgetOverride>,
}

/// The outcome of loading.
#[derive(Debug)]
pub struct Loaded {
    /// What to use.
    pub state: PersistentState,
    /// Set when the file was corrupt: where it was moved and why.
    pub quarantined: Option<String>,
}

/// Reads the state; a missing file is the default state.
pub fn load(path: &Path) -> std::io::Result<Loaded> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Loaded { state: PersistentState::default(), quarantined: None })
        }
        Err(e) => return Err(e),
    };
    match serde_json::from_str(&text) {
        Ok(state) => Ok(Loaded { state, quarantined: None }),
        Err(e) => {
            let aside = corrupt_name(path);
            std::fs::rename(path, &aside)?;
            Ok(Loaded {
                state: PersistentState::default(),
                quarantined: Some(format!(
                    "{} was corrupt ({e}); kept as {} and starting from defaults",
                    path.display(),
                    aside.display()
                )),
            })
        }
    }
}

fn corrupt_name(path: &Path) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    path.with_extension(format!("json.corrupt-{stamp}"))
}

/// Writes `value` to `path` atomically and durably (persistent state).
pub fn save_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    write_json(path, value, true)
}

/// Replaces `path` with `value` atomically, without waiting for the disk:
/// for the status file, rewritten every second and stale after a crash
/// anyway (two fsyncs per write were most of an idle daemon's CPU time on
/// a disk-backed path, measured with perf).
pub fn replace_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    write_json(path, value, false)
}

fn write_json(path: &Path, value: &impl Serialize, durable: bool) -> std::io::Result<()> {
    // A bare file name has the empty path as parent: that is the current directory.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    {
        // Buffered: serde writes token by token, and an unbuffered file made
        // a 1,000-target status a syscall per token (38% of a CPU, measured).
        let mut f = std::io::BufWriter::with_capacity(64 * 1024, std::fs::File::create(&tmp)?);
        serde_json::to_writer_pretty(&mut f, value)?;
        f.write_all(b"\n")?;
        let f = f.into_inner().map_err(|e| e.into_error())?;
        if durable {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
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
}
