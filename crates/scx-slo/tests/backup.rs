// SPDX-License-Identifier: GPL-2.0-only
//! `scx-slo backup` and `scx-slo restore` on files laid out as the daemon
//! writes them: a round trip keeps the audit chain verifiable with the
//! restore as its newest entry; a changed, cut, mislabelled or hostile
//! archive, another config, another trail or a running daemon is refused
//! with what is wrong, and nothing changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use scx_slo_api::audit::{seal, verify, AuditEntry, Caller, GENESIS};

const CONFIG: &str = r#"{"mode":"observe","targets":{"api.service":{"class":"latency","budget":{"runtime":"2ms","period":"10ms"},"deadline":"5ms"}}}"#;
const STATE: &str = r#"{"operator_disabled":null,"breaker_open":true,"budget_overrides":{"api.service":{"runtime_us":3000,"period_us":10000}}}"#;

struct Host {
    root: PathBuf,
}

impl Host {
    fn new(name: &str) -> Host {
        let root = std::env::temp_dir().join(format!("scx-slo-cli-backup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("audit")).unwrap();
        std::fs::write(root.join("config.json"), CONFIG).unwrap();
        std::fs::write(root.join("state.json"), STATE).unwrap();
        Host { root }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Appends `n` entries to the trail (a new chain when `start` is GENESIS).
    fn entries(&self, n: u64, tag: &str) {
        let audit = self.p("audit");
        let v = verify(&audit).unwrap();
        let (mut seq, mut prev) = if v.entries == 0 { (1, GENESIS.to_string()) } else { (v.last_seq + 1, v.last_hash) };
        let mut text = String::new();
        for _ in 0..n {
            let caller = Caller { uid: Some(0), pid: Some(1), unit: None, via: "dbus".into() };
            let e = AuditEntry { seq, at_unix_ms: 1, prev: prev.clone(), kind: "call".into(), caller: Some(caller), action: tag.into(), detail: serde_json::json!({}), correlation_id: None };
            let (line, hash) = seal(&e).unwrap();
            text.push_str(&line);
            text.push('\n');
            prev = hash;
            seq += 1;
        }
        let file = audit.join("audit-000000000001.jsonl");
        let mut old = std::fs::read_to_string(&file).unwrap_or_default();
        old.push_str(&text);
        std::fs::write(file, old).unwrap();
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let files = [
            "--config",
            &self.p("config.json").display().to_string(),
            "--state-file",
            &self.p("state.json").display().to_string(),
            "--audit-dir",
            &self.p("audit").display().to_string(),
            "--status-file",
            &self.p("status.json").display().to_string(),
        ]
        .map(str::to_string);
        let out = Command::new(env!("CARGO_BIN_EXE_scx-slo")).args(args).args(files).output().unwrap();
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    fn backup(&self) -> PathBuf {
        let out = self.p("b.tar");
        let _ = std::fs::remove_file(&out);
        let (code, text) = self.run(&["backup", "--output", &out.display().to_string()]);
        assert_eq!(code, Some(0), "{text}");
        out
    }

    fn restore(&self, archive: &Path) -> (Option<i32>, String) {
        self.run(&["restore", &archive.display().to_string()])
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn a_round_trip_restores_the_state_and_the_restore_is_the_trails_newest_entry() {
    let h = Host::new("round");
    h.entries(3, "SetBudget");
    let archive = h.backup();
    // After the backup: the state changes and the trail grows.
    std::fs::write(h.p("state.json"), "{\"breaker_open\":false,\"budget_overrides\":{}}").unwrap();
    h.entries(2, "ClearBudget");
    let (code, text) = h.restore(&archive);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("audit entry 6") && text.contains("kept"), "{text}");
    assert_eq!(std::fs::read_to_string(h.p("state.json")).unwrap(), STATE);
    let v = verify(&h.p("audit")).expect("the chain verifies across the restore");
    assert_eq!(v.last_seq, 6);
    let trail = std::fs::read_to_string(h.p("audit/audit-000000000001.jsonl")).unwrap();
    let last = trail.lines().last().unwrap();
    assert!(last.contains("\"kind\":\"restore\"") && last.contains("\"seq\":3"), "records the backup's head: {last}");
}

#[test]
fn onto_an_empty_trail_the_archives_trail_is_installed_and_continued() {
    let h = Host::new("install");
    h.entries(4, "SetBudget");
    let archive = h.backup();
    std::fs::remove_dir_all(h.p("audit")).unwrap();
    std::fs::remove_file(h.p("state.json")).unwrap();
    let (code, text) = h.restore(&archive);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("installed"), "{text}");
    assert_eq!(verify(&h.p("audit")).unwrap().last_seq, 5);
    assert_eq!(std::fs::read_to_string(h.p("state.json")).unwrap(), STATE);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(h.p("audit/audit-000000000001.jsonl")), 0o600, "staged trail files are private");
    assert_eq!(mode(h.p("state.json")), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(&h.root).unwrap().flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().starts_with('.')).collect();
    assert!(leftovers.is_empty(), "no staging or temp files left: {leftovers:?}");
}

#[test]
fn another_config_is_refused_naming_what_differs_and_nothing_changes() {
    let h = Host::new("config");
    h.entries(1, "SetBudget");
    let archive = h.backup();
    let other = CONFIG.replace("2ms", "4ms").replace("observe", "enforce");
    std::fs::write(h.p("config.json"), other).unwrap();
    std::fs::write(h.p("state.json"), "{}").unwrap();
    let (code, text) = h.restore(&archive);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("targets.api.service") && text.contains("mode: the archive's \"observe\" vs now \"enforce\""), "{text}");
    assert_eq!(std::fs::read_to_string(h.p("state.json")).unwrap(), "{}");
    assert_eq!(verify(&h.p("audit")).unwrap().last_seq, 1, "no entry for a refused restore");
}

#[test]
fn a_running_daemon_or_a_trail_with_another_history_is_refused() {
    let h = Host::new("running");
    h.entries(2, "SetBudget");
    let archive = h.backup();
    std::fs::write(h.p("status.json"), "{\"state\":\"running\"}").unwrap();
    let (code, text) = h.restore(&archive);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("scx-slod runs") && text.contains("systemctl stop scx-slod"), "{text}");
    // Stale but not stopped (a stalled or killed daemon), or unreadable:
    // it may still run, so the restore fails closed.
    let status = std::fs::OpenOptions::new().write(true).open(h.p("status.json")).unwrap();
    status.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(120)).unwrap();
    drop(status);
    let (code, text) = h.restore(&archive);
    assert!(code == Some(1) && text.contains("may still run") && text.contains("written 120 s ago"), "{text}");
    std::fs::write(h.p("status.json"), "{\"sta").unwrap();
    let (code, text) = h.restore(&archive);
    assert!(code == Some(1) && text.contains("cannot tell whether scx-slod runs"), "{text}");
    // Stopped: the daemon's last status says so.
    std::fs::write(h.p("status.json"), "{\"state\":\"stopped\"}").unwrap();
    // Another history: a new chain with the same sequence numbers.
    std::fs::remove_file(h.p("audit/audit-000000000001.jsonl")).unwrap();
    h.entries(3, "Reload");
    let (code, text) = h.restore(&archive);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("another history") && text.contains("move it aside"), "{text}");
}

/// An archive's entry as a test writes it: name, type, bytes.
type Raw<'a> = (&'a str, tar::EntryType, &'a [u8]);
/// An archive's entries as read back: name, bytes.
type Files = Vec<(String, Vec<u8>)>;

/// A tar with these entries.
fn tar_of(path: &Path, entries: &[Raw<'_>]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, kind, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        // set_path refuses "..": write the name bytes as a hostile tool would.
        let field = &mut header.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        if *kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/shadow").unwrap();
        }
        header.set_cksum();
        b.append(&header, *bytes).unwrap();
    }
    b.into_inner().unwrap();
}

/// The archive's entries as (name, bytes).
fn entries_of(path: &Path) -> Files {
    use std::io::Read;
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (e.path().unwrap().display().to_string(), bytes)
        })
        .collect()
}

#[test]
fn changed_cut_or_hostile_archives_are_refused_with_what_is_wrong() {
    let h = Host::new("hostile");
    h.entries(2, "SetBudget");
    let good = entries_of(&h.backup());
    assert_eq!(good.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["manifest.json", "config.json", "state.json", "audit/audit-000000000001.jsonl", "manifest.sha256"]);
    let reg = tar::EntryType::Regular;
    let with = |i: usize, bytes: &[u8]| -> Files {
        let mut e = good.clone();
        e[i].1 = bytes.to_vec();
        e
    };
    let v2 = String::from_utf8(good[0].1.clone()).unwrap().replace("\"version\": 1", "\"version\": 2");
    let cases: Vec<(&str, Files, &str)> = vec![
        ("state", with(2, b"{\"breaker_open\":false}"), "state.json: its checksum does not match"),
        ("manifest", with(0, v2.as_bytes()), "version 2; this scx-slo reads version 1 only"),
        ("cut", good[..4].to_vec(), "no manifest.sha256 at the end"),
        ("foreign", vec![("etc/passwd".into(), b"x".to_vec())], "not manifest.json"),
    ];
    for (name, entries, want) in cases {
        let path = h.p(&format!("{name}.tar"));
        let list: Vec<Raw<'_>> = entries.iter().map(|(n, b)| (n.as_str(), reg, b.as_slice())).collect();
        tar_of(&path, &list);
        let (code, text) = h.restore(&path);
        assert_eq!(code, Some(1), "{name}: {text}");
        assert!(text.contains(want) && text.contains("nothing was changed"), "{name}: {text}");
    }
    let manifest = good[0].1.as_slice();
    let hostile: [(&str, &[Raw<'_>], &str); 3] = [
        ("dotdot", &[("manifest.json", reg, manifest), ("audit/../../x", reg, b"x")], "with . or .. is refused"),
        ("symlink", &[("manifest.json", reg, manifest), ("state.json", tar::EntryType::Symlink, b"")], "only regular files are accepted"),
        ("fifo", &[("manifest.json", reg, manifest), ("state.json", tar::EntryType::Fifo, b"")], "only regular files are accepted"),
    ];
    for (name, list, want) in hostile {
        let path = h.p(&format!("{name}.tar"));
        tar_of(&path, list);
        let (code, text) = h.restore(&path);
        assert_eq!(code, Some(1), "{name}: {text}");
        assert!(text.contains(want), "{name}: {text}");
    }
    // The archive itself behind a symlink.
    std::os::unix::fs::symlink(h.p("b.tar"), h.p("link.tar")).unwrap();
    let (code, text) = h.restore(&h.p("link.tar"));
    assert!(code == Some(1) && text.contains("not a regular file"), "{text}");
    assert_eq!(std::fs::read_to_string(h.p("state.json")).unwrap(), STATE);
    assert_eq!(verify(&h.p("audit")).unwrap().last_seq, 2, "refusals leave the trail as it was");
}

#[test]
fn long_name_and_pax_entries_are_refused_unread() {
    let h = Host::new("longname");
    h.entries(1, "SetBudget");
    let good = entries_of(&h.backup());
    let (manifest, config) = (good[0].1.as_slice(), good[1].1.as_slice());
    let reg = tar::EntryType::Regular;
    // A long name past the bound of every file (read whole, it would be
    // held in memory and become the next entry's name), and a pax header
    // that renames the next entry to a file the archive holds.
    let long = vec![b'a'; 5 << 20];
    let cases: [(&str, &[Raw<'_>], &str); 3] = [
        ("gnu-long-name", &[("manifest.json", reg, manifest), ("././@LongLink", tar::EntryType::GNULongName, &long), ("x", reg, config)], "GNULongName"),
        ("gnu-long-link", &[("manifest.json", reg, manifest), ("././@LongLink", tar::EntryType::GNULongLink, b"config.json\0"), ("config.json", reg, config)], "GNULongLink"),
        ("pax", &[("manifest.json", reg, manifest), ("PaxHeaders/x", tar::EntryType::XHeader, b"20 path=config.json\n"), ("x", reg, config)], "XHeader"),
    ];
    for (name, list, kind) in cases {
        let path = h.p(&format!("{name}.tar"));
        tar_of(&path, list);
        let (code, text) = h.restore(&path);
        assert_eq!(code, Some(1), "{name}: {text}");
        assert!(text.contains(&format!("a {kind} entry; only regular files are accepted")) && text.contains("nothing was changed"), "{name}: {text}");
    }
}

#[test]
fn a_trail_larger_than_restore_reads_is_not_backed_up() {
    let h = Host::new("huge");
    h.entries(2, "SetBudget");
    // 17 trail files at the daemon's largest, sparse: over 1 GiB on paper,
    // nothing on disk. An archive of them could never be restored.
    for n in 2..=18 {
        let f = std::fs::File::create(h.p(&format!("audit/audit-{n:012}.jsonl"))).unwrap();
        f.set_len(64 << 20).unwrap();
    }
    let out = h.p("huge.tar");
    let (code, text) = h.run(&["backup", "--output", &out.display().to_string()]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("over the 1024 MiB (MAX_ARCHIVE_BYTES) that scx-slo restore reads") && text.contains("no backup was made"), "{text}");
    assert!(!out.exists());
}

#[test]
fn without_a_state_file_the_archive_holds_the_state_a_fresh_daemon_reads() {
    let h = Host::new("nostate");
    std::fs::remove_file(h.p("state.json")).unwrap();
    let entries = entries_of(&h.backup());
    let state = &entries.iter().find(|e| e.0 == "state.json").unwrap().1;
    let value: serde_json::Value = serde_json::from_slice(state).unwrap();
    assert_eq!(value, serde_json::json!({ "operator_disabled": null, "breaker_open": false, "budget_overrides": {} }));
}

#[test]
fn backups_into_a_directory_keep_the_newest_retain() {
    let h = Host::new("retain");
    // Created (0700) by the first backup.
    let dir = h.p("backups");
    for _ in 0..4 {
        let (code, text) = h.run(&["backup", "--dir", &dir.display().to_string(), "--retain", "2"]);
        assert_eq!(code, Some(0), "{text}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    let (code, text) = h.run(&["backup", "--dir", &dir.display().to_string(), "--retain", "0"]);
    assert!(code == Some(2) && text.contains("--retain 0"), "{text}");
    // Names it did not date are not its archives: an operator's, or ones
    // planted to sort after every dated name, are never removed, and the
    // archive just written always stays.
    for planted in ["scx-slo-backup-before-upgrade.tar", "scx-slo-backup-z.tar"] {
        std::fs::write(dir.join(planted), "x").unwrap();
    }
    let (code, text) = h.run(&["backup", "--dir", &dir.display().to_string(), "--retain", "1"]);
    assert_eq!(code, Some(0), "{text}");
    let mut left: Vec<String> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    let dated = left.iter().filter(|n| n.len() == "scx-slo-backup-000000000000000.tar".len() && n[15..30].bytes().all(|b| b.is_ascii_digit())).count();
    assert!(left.len() == 3 && dated == 1 && left.contains(&"scx-slo-backup-before-upgrade.tar".to_string()) && left.contains(&"scx-slo-backup-z.tar".to_string()), "{left:?}");
    // A directory others may write to is refused before anything is written.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, text) = h.run(&["backup", "--dir", &dir.display().to_string(), "--retain", "1"]);
    assert!(code == Some(2) && text.contains("writable by group or others"), "{text}");
    let (code, text) = h.run(&["backup", "--output", &h.p("config.json").display().to_string()]);
    assert!(code == Some(2) && text.contains("never overwrites"), "{text}");
}
