// SPDX-License-Identifier: GPL-2.0-only
//! Target → cgroup directory → cgroup id.
//!
//! A slice's path follows from its name (`a-b.slice` lives at
//! `/a.slice/a-b.slice`); a service or scope is looked up in the tree, the
//! shallowest match winning; an explicit `cgroup` path is taken as given.
//! The cgroup id the kernel reports (`kn->id`) is the directory's inode number.
//! Units that are not running yet stay pending and are retried every tick.
//! (The D-Bus control plane will ask systemd for `ControlGroup` instead.)

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use scx_slo_model::{Config, Selector, Target};

/// Where the cgroup2 hierarchy is mounted: `/sys/fs/cgroup` on unified
/// hosts, `/sys/fs/cgroup/unified` on hybrid (v1 + v2) hosts.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    cgroup2_root_from_mountinfo(&mountinfo)
}

/// Parses mountinfo for the first cgroup2 mount point.
pub fn cgroup2_root_from_mountinfo(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        (fstype == "cgroup2").then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// The cgroup path systemd gives a slice: `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`.
pub fn slice_path(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".slice")?;
    if stem == "-" {
        return Some("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for (i, part) in stem.split('-').enumerate() {
        if part.is_empty() {
            return None;
        }
        if i > 0 {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Some(path)
}

/// A resolved target.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Resolved {
    /// cgroup directory, absolute.
    pub dir: PathBuf,
    /// cgroup v2 id.
    pub cgroup_id: u64,
}

/// How deep below the root a unit is searched for (system.slice/x.service
/// is level 2; user.slice/user-1000.slice/user@1000.service/app.slice/x is 5).
const SEARCH_DEPTH: usize = 6;

/// Finds each of `names` below `root` in one breadth-first walk, at most
/// `max_depth` levels deep: the shallowest match wins (the first in
/// directory order within a level). One walk serves every unit still
/// missing, where a walk per unit cost 1,000 tree walks a second with 1,000
/// stopped units configured.
fn find_dirs(root: &Path, names: &[&str], max_depth: usize) -> BTreeMap<String, PathBuf> {
    let names: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    let mut found = BTreeMap::new();
    let mut level = vec![root.to_path_buf()];
    for _ in 0..max_depth {
        let mut next = Vec::new();
        for dir in &level {
            let Ok(entries) = fs::read_dir(dir) else { continue };
            for entry in entries.flatten() {
                if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    continue;
                }
                let name = entry.file_name();
                if let Some(name) = name.to_str().filter(|n| names.contains(n)) {
                    found.entry(name.to_string()).or_insert_with(|| entry.path());
                }
                next.push(entry.path());
            }
        }
        if next.is_empty() || found.len() == names.len() {
            break;
        }
        level = next;
    }
    found
}

/// Where a target's cgroup is when its path follows from its name (a
/// bare path, an explicit cgroup, a slice, a service in system.slice); a
/// service or scope elsewhere is searched for.
fn direct_path(root: &Path, target: &Target) -> Option<PathBuf> {
    let relative = match &target.selector {
        Selector::Cgroup { path } => path.clone(),
        Selector::Unit { cgroup: Some(path), .. } => path.clone(),
        Selector::Unit { name, cgroup: None } if name.ends_with(".slice") => slice_path(name)?,
        Selector::Unit { name, cgroup: None } => return Some(root.join("system.slice").join(name)),
    };
    Some(root.join(relative.trim_start_matches('/')))
}

/// The directory's cgroup id when it is a directory: one `statx` per
/// target per scan (is_dir and then metadata made it two).
fn cgroup_dir(dir: PathBuf) -> Option<Resolved> {
    let meta = fs::metadata(&dir).ok()?;
    meta.is_dir().then(|| Resolved { cgroup_id: meta.ino(), dir })
}

/// Resolves every target; the map holds those found, keyed by target key.
pub fn resolve_all(root: &Path, config: &Config) -> BTreeMap<String, Resolved> {
    let mut out = BTreeMap::new();
    let mut search: Vec<(&str, &str)> = Vec::new();
    for t in &config.targets {
        if let Some(r) = direct_path(root, t).and_then(cgroup_dir) {
            out.insert(t.key.clone(), r);
        } else if let Selector::Unit { name, cgroup: None } = &t.selector {
            if !name.ends_with(".slice") {
                search.push((t.key.as_str(), name.as_str()));
            }
        }
    }
    if !search.is_empty() {
        let names: Vec<&str> = search.iter().map(|(_, n)| *n).collect();
        let dirs = find_dirs(root, &names, SEARCH_DEPTH);
        for (key, name) in search {
            if let Some(r) = dirs.get(name).cloned().and_then(cgroup_dir) {
                out.insert(key.to_string(), r);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_paths_follow_systemd() {
        assert_eq!(slice_path("batch.slice").as_deref(), Some("/batch.slice"));
        assert_eq!(slice_path("a-b-c.slice").as_deref(), Some("/a.slice/a-b.slice/a-b-c.slice"));
        assert_eq!(slice_path("-.slice").as_deref(), Some("/"));
        assert_eq!(slice_path("a--b.slice"), None);
        assert_eq!(slice_path("x.service"), None);
    }

    #[test]
    fn finds_cgroup2_on_unified_and_hybrid_hosts() {
        let unified = "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup2_root_from_mountinfo(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        let hybrid = "30 24 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n\
                      31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n\
                      32 30 0:28 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup2_root_from_mountinfo(hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(cgroup2_root_from_mountinfo("1 2 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }

    #[test]
    fn locates_units_slices_and_paths_in_a_tree() {
        let root = std::env::temp_dir().join(format!("scx-slo-resolver-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in ["system.slice/api.service", "batch.slice/hog.service", "user.slice/user-1000.slice/app.scope", "legacy/jobs"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let config = scx_slo_model::load_str(
            r#"{"version":1,"targets":{
                "api.service":{"class":"batch"},
                "batch.slice":{"class":"batch"},
                "app.scope":{"class":"batch"},
                "/legacy/jobs":{"class":"batch"},
                "gone.service":{"class":"batch"}}}"#,
            None,
        )
        .unwrap();
        let resolved = resolve_all(&root, &config);
        assert_eq!(resolved["api.service"].dir, root.join("system.slice/api.service"));
        assert_eq!(resolved["batch.slice"].dir, root.join("batch.slice"));
        assert_eq!(resolved["app.scope"].dir, root.join("user.slice/user-1000.slice/app.scope"));
        assert_eq!(resolved["/legacy/jobs"].dir, root.join("legacy/jobs"));
        assert!(!resolved.contains_key("gone.service"));
        assert_eq!(
            resolved["api.service"].cgroup_id,
            fs::metadata(root.join("system.slice/api.service")).unwrap().ino()
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn one_walk_finds_every_missing_unit_at_its_shallowest() {
        let root = std::env::temp_dir().join(format!("scx-slo-resolver-walk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in ["a.slice/b.slice/deep.service", "z.slice/deep.service", "u.slice/v.slice/w.slice/x.slice/y.slice/z.slice/tooDeep.scope"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        // A file of a unit's name is not its cgroup.
        fs::write(root.join("z.slice/file.service"), "").unwrap();
        let config = scx_slo_model::load_str(
            r#"{"version":1,"targets":{
                "deep.service":{"class":"batch"},
                "tooDeep.scope":{"class":"batch"},
                "file.service":{"class":"batch"}}}"#,
            None,
        )
        .unwrap();
        let resolved = resolve_all(&root, &config);
        assert_eq!(resolved["deep.service"].dir, root.join("z.slice/deep.service"));
        assert!(!resolved.contains_key("tooDeep.scope"), "level 7 is below the search depth");
        assert!(!resolved.contains_key("file.service"));
        fs::remove_dir_all(&root).unwrap();
    }
}
