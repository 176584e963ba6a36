// SPDX-License-Identifier: GPL-2.0-only
//! The backup archive's format and its bounded reader (docs/operations.md,
//! Backup and restore). A plain tar (readable with tar(1)) holding, in this
//! order:
//!
//! - `manifest.json`: [`Manifest`]: format name and version, when, the
//!   config's SHA-256, the audit trail's head (last entry and hash), and
//!   every other file's name, size and SHA-256, in archive order;
//! - `config.json`, `state.json`, then `audit/audit-<12 digits>.jsonl`;
//! - `manifest.sha256`: the SHA-256 of `manifest.json`'s bytes, last.
//!
//! Reading trusts nothing: the archive's size, its number of entries and
//! each entry's size are bounded; only regular files with exactly these
//! names are accepted (no links, directories, devices, absolute paths or
//! `..`); the version, every file's checksum and the manifest's are checked.
//! Entries are read raw: a GNU long-name or long-link entry or a pax header
//! (which the archive never holds, its names being short) is refused by its
//! type, unread, instead of being read whole and applied to the next entry.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The `format` field of every manifest.
pub const FORMAT: &str = "scx-slo-backup";
/// The one version this build writes and reads.
pub const VERSION: u32 = 1;
/// Largest archive read: the audit trail is capped at 256 MiB by default
/// (`audit.retainMiB`), this leaves room for a larger cap.
pub const MAX_ARCHIVE_BYTES: u64 = 1 << 30;
/// Most entries read: at 8 MiB a file, 1 GiB of trail is 128 files.
pub const MAX_ENTRIES: usize = 1024;
/// Largest audit file: the daemon rotates at 8 MiB (plus one entry).
pub const MAX_AUDIT_FILE_BYTES: u64 = 64 << 20;
/// Largest manifest, state or config: the daemon reads at most 1 MiB of
/// state and 4 MiB of config.
pub const MAX_SMALL_BYTES: u64 = 4 << 20;
/// A tar block: every header is one, every file's data is padded to them.
const BLOCK: u64 = 512;

/// The size of the archive [`write`] makes of files of these sizes (the
/// manifest and `manifest.sha256` included): a header block per file, its
/// data padded to whole blocks, and two zero blocks at the end.
pub fn archive_bytes(sizes: impl IntoIterator<Item = u64>) -> u64 {
    sizes.into_iter().map(|s| BLOCK + s.div_ceil(BLOCK) * BLOCK).sum::<u64>() + 2 * BLOCK
}

/// The size of the archive [`write`] makes of `manifest` and `files`.
pub fn written_bytes(manifest: &Manifest, files: &[(String, Vec<u8>)]) -> u64 {
    let manifest = serde_json::to_vec_pretty(manifest).map_or(0, |t| t.len() as u64);
    // manifest.sha256: 64 hex digits and a newline.
    archive_bytes([manifest, 65].into_iter().chain(files.iter().map(|f| f.1.len() as u64)))
}

/// `Ok` when an archive of `bytes` is one [`open`] reads, else why not,
/// naming the bound: a backup that restore would refuse is not made.
pub fn fits(bytes: u64) -> Result<(), String> {
    if bytes <= MAX_ARCHIVE_BYTES {
        return Ok(());
    }
    Err(format!(
        "the archive would be {} MiB, over the {} MiB (MAX_ARCHIVE_BYTES) that scx-slo restore reads, so it could never be restored; no backup was made. Lower audit.retainMiB, or move the oldest trail files aside (keep them: they are evidence)",
        bytes.div_ceil(1 << 20),
        MAX_ARCHIVE_BYTES >> 20
    ))
}

/// The audit trail's newest entry at the time of the backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// One file of the archive, as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSum {
    /// Its name inside the archive.
    pub name: String,
    /// Its size, bytes.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written by this build.
    pub version: u32,
    /// When the backup was taken, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// The SHA-256 of the config the state belongs to (`config.json`).
    pub config_sha256: String,
    /// The trail's newest entry (None: the trail was empty).
    pub audit_head: Option<Head>,
    /// Every file after the manifest, in archive order.
    pub files: Vec<FileSum>,
}

/// A name the archive may hold after the manifest, and where a file of
/// that name may be as small or as large.
fn allowed(name: &str) -> Option<u64> {
    match name {
        "config.json" | "state.json" => Some(MAX_SMALL_BYTES),
        _ => audit_file_name(name).map(|_| MAX_AUDIT_FILE_BYTES),
    }
}

/// `audit/audit-<12 digits>.jsonl` → the file's name in the audit directory.
pub fn audit_file_name(name: &str) -> Option<&str> {
    let file = name.strip_prefix("audit/")?;
    let digits = file.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    (digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(file)
}

/// What a valid archive holds: the small files in memory, the audit files
/// written into `staging` as they were read.
#[derive(Debug)]
pub struct Opened {
    /// The manifest.
    pub manifest: Manifest,
    /// The manifest's SHA-256 (the archive's checksum).
    pub manifest_sha256: String,
    /// `config.json`.
    pub config: String,
    /// `state.json`.
    pub state: String,
}

fn short(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Reads one entry of at most `max` bytes.
fn read_bounded(entry: &mut impl Read, size: u64, max: u64, name: &str) -> Result<Vec<u8>, String> {
    if size > max {
        return Err(format!("{name}: {size} bytes, more than the {max} allowed"));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.take(max + 1).read_to_end(&mut bytes).map_err(|e| format!("reading {name}: {e}"))?;
    if bytes.len() as u64 != size {
        return Err(format!("{name}: {} bytes where its header says {size}", bytes.len()));
    }
    Ok(bytes)
}

/// Opens and checks the archive at `path`, writing its audit files into the
/// existing empty directory `staging`. Any `Err` names what is wrong; the
/// caller removes `staging` then.
pub fn open(path: &Path, staging: &Path) -> Result<Opened, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(format!("{}: not a regular file (a symlink, directory or device is refused)", path.display()));
    }
    if meta.len() > MAX_ARCHIVE_BYTES {
        return Err(format!("{}: {} bytes, more than the {MAX_ARCHIVE_BYTES} an archive may have", path.display(), meta.len()));
    }
    let file = open_nofollow(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut archive = tar::Archive::new(file.take(MAX_ARCHIVE_BYTES));
    let entries = archive.entries().map_err(|e| format!("{}: not a tar archive: {e}", path.display()))?.raw(true);
    let mut manifest: Option<(Manifest, String)> = None;
    let (mut config, mut state, mut seen) = (None, None, Vec::<String>::new());
    let mut sealed = false;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        let mut entry = entry.map_err(|e| format!("entry {}: not a valid tar entry: {e}", i + 1))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = short(&raw);
        // The type first: a long-name or pax entry is refused as what it is.
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            return Err(format!("entry {name:?}: a {kind:?} entry; only regular files are accepted"));
        }
        if raw.starts_with('/') || raw.split('/').any(|c| c == ".." || c == ".") {
            return Err(format!("entry {name:?}: an absolute path or one with . or .. is refused"));
        }
        if sealed {
            return Err(format!("entry {name:?} after manifest.sha256, which must be last"));
        }
        let size = entry.size();
        match (i, raw.as_str()) {
            (0, "manifest.json") => {
                let bytes = read_bounded(&mut entry, size, MAX_SMALL_BYTES, "manifest.json")?;
                manifest = Some((parse_manifest(&bytes)?, scx_slo_model::sha256_hex(&bytes)));
                continue;
            }
            (0, _) => return Err(format!("the first entry is {name:?}, not manifest.json: not an scx-slo backup")),
            (_, "manifest.sha256") => {
                let bytes = read_bounded(&mut entry, size, 128, "manifest.sha256")?;
                let (_, sum) = manifest.as_ref().ok_or("no manifest")?;
                if String::from_utf8_lossy(&bytes).trim() != sum {
                    return Err("manifest.json does not match manifest.sha256: the archive was changed or damaged".into());
                }
                sealed = true;
                continue;
            }
            _ => {}
        }
        let Some(max) = allowed(&raw) else {
            return Err(format!("entry {name:?}: not a file an scx-slo backup holds"));
        };
        let (m, _) = manifest.as_ref().ok_or("no manifest")?;
        let Some(listed) = m.files.get(seen.len()).filter(|f| f.name == raw) else {
            return Err(format!("entry {name:?}: not the next file the manifest lists"));
        };
        let bytes = read_bounded(&mut entry, size, max, &name)?;
        if bytes.len() as u64 != listed.bytes || scx_slo_model::sha256_hex(&bytes) != listed.sha256 {
            return Err(format!("{name}: its checksum does not match the manifest: the archive was changed or damaged"));
        }
        seen.push(raw.clone());
        let text = || String::from_utf8(bytes.clone()).map_err(|_| format!("{name}: not UTF-8 text"));
        match raw.as_str() {
            "config.json" => config = Some(text()?),
            "state.json" => state = Some(text()?),
            _ => {
                let file = audit_file_name(&raw).ok_or("not an audit file")?;
                let to = staging.join(file);
                write_synced(&to, &bytes).map_err(|e| format!("staging {}: {e}", to.display()))?;
            }
        }
    }
    let (manifest, manifest_sha256) = manifest.ok_or("an empty archive: not an scx-slo backup")?;
    if !sealed {
        return Err("no manifest.sha256 at the end: the archive is cut short".into());
    }
    if seen.len() != manifest.files.len() {
        return Err(format!("the manifest lists {} files, the archive holds {}: it is cut short", manifest.files.len(), seen.len()));
    }
    let config = config.ok_or("no config.json")?;
    let state = state.ok_or("no state.json")?;
    if scx_slo_model::sha256_hex(config.as_bytes()) != manifest.config_sha256 {
        return Err("config.json does not match the manifest's config_sha256".into());
    }
    Ok(Opened { manifest, manifest_sha256, config, state })
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("manifest.json: not JSON: {}", short(&e.to_string())))?;
    if value["format"] != FORMAT {
        return Err(format!("manifest.json: format {}, not {FORMAT:?}: not an scx-slo backup", short(&value["format"].to_string())));
    }
    if value["version"] != VERSION {
        return Err(format!("manifest.json: version {}; this scx-slo reads version {VERSION} only", short(&value["version"].to_string())));
    }
    let manifest: Manifest = serde_json::from_value(value).map_err(|e| format!("manifest.json: {}", short(&e.to_string())))?;
    if manifest.files.len() > MAX_ENTRIES {
        return Err(format!("manifest.json lists {} files, more than {MAX_ENTRIES}", manifest.files.len()));
    }
    Ok(manifest)
}

/// Opens `path` for reading without following a symlink or waiting on a FIFO.
pub fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// Writes `bytes` to the new file `path` (an old one is removed first),
/// 0600, and syncs it: a restore's staged files are on disk, private,
/// before they are renamed into place.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes the archive: `manifest.json`, `files` in order, `manifest.sha256`.
pub fn write(out: impl std::io::Write, manifest: &Manifest, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(out);
    let mtime = manifest.created_unix_ms / 1000;
    let mut append = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        builder.append_data(&mut header, name, bytes)
    };
    let text = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    append("manifest.json", &text)?;
    for (name, bytes) in files {
        append(name, bytes)?;
    }
    append("manifest.sha256", format!("{}\n", scx_slo_model::sha256_hex(&text)).as_bytes())?;
    builder.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_trails_own_file_names_are_audit_files() {
        assert_eq!(audit_file_name("audit/audit-000000000001.jsonl"), Some("audit-000000000001.jsonl"));
        for bad in ["audit/audit-1.jsonl", "audit/../state.json", "audit/audit-00000000000a.jsonl", "audit-000000000001.jsonl", "x/audit/audit-000000000001.jsonl"] {
            assert_eq!(audit_file_name(bad), None, "{bad}");
        }
        assert_eq!(allowed("state.json"), Some(MAX_SMALL_BYTES));
        assert_eq!(allowed("etc/passwd"), None);
    }

    #[test]
    fn the_size_an_archive_will_have_is_the_size_written() {
        let manifest = Manifest { format: FORMAT.into(), version: VERSION, created_unix_ms: 1, config_sha256: "c".into(), audit_head: None, files: vec![] };
        let files: Vec<(String, Vec<u8>)> = [0usize, 1, 511, 512, 513, 5000].iter().map(|n| (format!("audit/audit-{n:012}.jsonl"), vec![b'x'; *n])).collect();
        let mut out = Vec::new();
        write(&mut out, &manifest, &files).unwrap();
        assert_eq!(written_bytes(&manifest, &files), out.len() as u64);
        assert!(fits(MAX_ARCHIVE_BYTES).is_ok());
        assert!(fits(MAX_ARCHIVE_BYTES + 1).unwrap_err().contains("over the 1024 MiB (MAX_ARCHIVE_BYTES) that scx-slo restore reads"));
    }
}
