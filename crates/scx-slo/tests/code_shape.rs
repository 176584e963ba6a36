// SPDX-License-Identifier: GPL-2.0-only
//! The shape the code keeps (docs/architecture.md, Kept by tests), checked on the sources:
//! - no import circle between a crate's top-level modules, nor between the
//!   sibling modules of a directory module (the engine's owners), the
//!   directory's own file included (`mod.rs`, or `dir.rs` beside the
//!   directory): an owner that imports the engine
//!   from `mod.rs` while `mod.rs` imports the owner is a circle;
//! - the daemon's `Engine` holds at most 20 fields (its owners: new state
//!   joins the owner it belongs to, docs/architecture.md);
//! - no source file over 600 lines without the reason written at its top
//!   (a line starting `//! Over 600 lines:` in its first 20 lines);
//! - no source or doc file points at an issue number: the tracker is not in
//!   the repository, so a comment states the fact (and the docs section)
//!   instead of "issue" and a number (STYLE.md, Comments).
//!
//! The crate layering (model <- api <- bpf <- daemon; the CLI on api and the
//! model only) is Cargo's to enforce: a dependency pointing upward would be a
//! cycle, which Cargo refuses, and the CLI's manifest names no daemon crate
//! (`cargo tree -p scx-slo` shows it; docs/architecture.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;
const MAX_ENGINE_FIELDS: usize = 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file: without comments (doc links included, they are not
/// imports) and without an inline `#[cfg(test)] mod ... {`, whose
/// `super::` is the file itself, not its parent.
fn code_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod ") && w[1].trim_end().ends_with('{'))
        .unwrap_or(lines.len());
    lines[..end].join("\n")
}

/// The module names after each `prefix` (`crate::` or `super::`) in the
/// code of `text`, including `prefix{a, b::c}` groups.
fn referenced(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = named_after(text, prefix);
    names.retain(|n| n.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    names
}

/// Every name after `prefix` in the code of `text`: modules and items
/// (`super::Engine`) alike.
fn named_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let code = code_of(text);
    let text = code.as_str();
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        let rest = &text[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(0)];
            names.extend(inner.split(',').map(|p| p.trim().split("::").next().unwrap_or("").to_string()));
        } else {
            names.insert(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
        }
    }
    names.retain(|n| !n.is_empty() && !["super", "self", "crate"].contains(&n.as_str()));
    names
}

/// Whether the code of `text` (a directory module's own file) uses its
/// child `module`: `module::` (or `self::module::`) not preceded by
/// another path (`scx_slo_model::canary::` is not the child `canary`).
fn uses_child(text: &str, module: &str) -> bool {
    let code = code_of(text);
    let pat = format!("{module}::");
    code.match_indices(&pat).any(|(i, _)| {
        let before = &code[..i];
        before.ends_with("self::") || !before.chars().last().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    })
}

/// A directory module's own file: `dir/mod.rs`, or `dir.rs` beside the
/// directory (scx-slo-api's `scrape.rs` for `scrape/`). Either is the
/// children's `super`, so either is a node of their import graph.
fn parent_file(dir: &Path) -> Option<PathBuf> {
    [dir.join("mod.rs"), dir.with_extension("rs")].into_iter().find(|p| p.is_file())
}

/// The import graph of one directory module's files: each sibling by its
/// stem, the directory's own file (`mod.rs` or `dir.rs`) as `mod.rs`. A sibling's `super::Name`
/// that is no sibling module is an item of the own file (the engine, a
/// type it defines or re-exports): an edge to `mod.rs`.
fn directory_graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    const PARENT: &str = "mod.rs";
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "mod.rs") {
            files.push(path);
        }
    }
    let stem = |f: &Path| f.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let siblings: BTreeSet<String> = files.iter().map(|f| stem(f)).collect();
    let is_module = |n: &str| siblings.contains(n) || dir.join(n).is_dir();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("source");
        let me = stem(f);
        for n in named_after(&text, "super::") {
            if n == me {
                continue;
            }
            let to = if is_module(&n) { n } else { PARENT.to_string() };
            graph.entry(me.clone()).or_default().insert(to);
        }
    }
    if let Some(parent) = parent_file(dir) {
        let text = std::fs::read_to_string(&parent).expect("source");
        let used: BTreeSet<String> = siblings.iter().filter(|m| uses_child(&text, m)).cloned().collect();
        graph.entry(PARENT.to_string()).or_default().extend(used);
    }
    graph
}

/// The first circle in `graph`, as a path, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == n) {
            let mut c = stack[at..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

/// Module name of a file below `src`: `a.rs` and `a/...` are module `a`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn no_import_circles_between_modules() {
    let mut problems = Vec::new();
    for krate in std::fs::read_dir(repo().join("crates")).expect("crates/").flatten() {
        let src = krate.path().join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<String> = files.iter().map(|f| top_module(&src, f)).collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for f in &files {
            let text = std::fs::read_to_string(f).expect("source");
            let m = top_module(&src, f);
            if m == "main" || m == "lib" {
                continue;
            }
            let to: Vec<String> = referenced(&text, "crate::").into_iter().filter(|n| *n != m && modules.contains(n)).collect();
            graph.entry(m).or_default().extend(to);
            // Directory modules (engine/generation.rs ... and engine/mod.rs).
            let dir = f.parent().unwrap_or(&src).to_path_buf();
            if dir != src {
                dirs.insert(dir);
            }
        }
        if let Some(c) = circle(&graph) {
            problems.push(format!("{}: {}", krate.file_name().to_string_lossy(), c.join(" -> ")));
        }
        for dir in &dirs {
            if let Some(c) = circle(&directory_graph(dir)) {
                problems.push(format!("{}: {}", dir.display(), c.join(" -> ")));
            }
        }
    }
    assert!(problems.is_empty(), "import circles:\n{}", problems.join("\n"));
}

/// The fields of `pub struct Engine { ... }` in `text`: the lines at the
/// struct's first brace level that declare a field.
fn engine_fields(text: &str) -> Vec<String> {
    let code = code_of(text);
    let Some(start) = code.find("pub struct Engine {") else { return Vec::new() };
    let mut depth = 0usize;
    let mut fields = Vec::new();
    for line in code[start..].lines() {
        let t = line.trim();
        if depth == 1 && !t.starts_with('#') {
            let t = ["pub(crate) ", "pub(super) ", "pub "].iter().find_map(|p| t.strip_prefix(p)).unwrap_or(t);
            let name: String = t.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let rest = t[name.len()..].trim_start();
            if !name.is_empty() && rest.starts_with(':') && !rest.starts_with("::") {
                fields.push(name);
            }
        }
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
        if depth == 0 && line.contains('}') {
            break;
        }
    }
    fields
}

#[test]
fn the_engine_holds_at_most_20_owners() {
    let path = repo().join("crates/scx-slod/src/engine/mod.rs");
    let fields = engine_fields(&std::fs::read_to_string(&path).expect("engine/mod.rs"));
    assert!(!fields.is_empty(), "no `pub struct Engine {{` with fields found in {}", path.display());
    assert!(
        fields.len() <= MAX_ENGINE_FIELDS,
        "`Engine` has {} fields (at most {MAX_ENGINE_FIELDS}): group new state under the owner it belongs to (docs/architecture.md):\n{}",
        fields.len(),
        fields.join(", ")
    );
}

#[test]
fn no_file_over_600_lines_without_a_reason() {
    let mut files = Vec::new();
    rust_files(&repo().join("crates"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            let lines = text.lines().count();
            let reason = text.lines().take(20).any(|l| l.starts_with("//! Over 600 lines:"));
            (lines > MAX_LINES && !reason).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines with no `//! Over 600 lines:` reason at the top:\n{}", long.join("\n"));
}

#[test]
fn the_circle_check_finds_a_circle() {
    let g: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "c"), ("c", "a")].iter().map(|(x, y)| (x.to_string(), [y.to_string()].into())).collect();
    assert_eq!(circle(&g).map(|c| c.len()), Some(4));
    assert_eq!(
        referenced("//! see [`crate::daemon`]\nuse crate::{kernel, harness::Env};\nlet x = crate::spawn::go();", "crate::"),
        ["harness", "kernel", "spawn"].map(String::from).into()
    );
    // A directory module's own file uses a child by its bare path, not by
    // another crate's module of the same name; an inline test module's
    // `super::` is its own file.
    assert!(uses_child("use canary::CanaryOwner;", "canary"));
    assert!(uses_child("let x = self::canary::f();", "canary"));
    assert!(!uses_child("use scx_slo_model::canary::Verdict;\nmod canary;", "canary"));
    assert_eq!(named_after("use super::{Engine, host::Host};\n#[cfg(test)]\nmod tests {\n    use super::Thing;\n}", "super::"), ["Engine", "host"].map(String::from).into());
    // A `dir.rs` beside its directory is the children's parent like a
    // `dir/mod.rs`: its circle with a child is found.
    for parent in ["mod.rs", "../p.rs"] {
        let root = std::env::temp_dir().join(format!("code-shape-{}-{}", std::process::id(), parent.len()));
        let dir = root.join("p");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(parent), "pub mod c;\npub use c::read;\npub struct Shared;\n").unwrap();
        std::fs::write(dir.join("c.rs"), "use super::Shared;\npub fn read() -> Shared { Shared }\n").unwrap();
        let found = circle(&directory_graph(&dir));
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(found.map(|c| c.len()), Some(3), "{parent}");
    }
    let fields = engine_fields("/// The engine.\npub struct Engine {\n    /// Why.\n    opts: Options,\n    #[allow(dead_code)]\n    pub host: Box<dyn Host>,\n    map: BTreeMap<String, Vec<u8>>,\n}\nstruct Other {\n    x: u8,\n}");
    assert_eq!(fields, ["opts", "host", "map"]);
}

/// Where the repository's sources and docs live (the fuzz corpus is input,
/// not text anyone reads; `target` is build output).
const TEXT_ROOTS: [&str; 11] = ["crates", "bpf", "checks", "nix", "modules", "fuzz", "scripts", "docs", "hosts", "data", "examples"];
const TEXT_FILES: [&str; 3] = ["README.md", "Cargo.toml", "flake.nix"];

fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !["target", ".git", "corpus"].iter().any(|skip| name == *skip) {
                text_files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// The 1-based lines of `text` where "issue" or "issues" (any case, a word
/// of its own) is followed by a number, optionally after `#`, also when the
/// number starts the next line of the comment (`//!`, `#`, ` * `).
fn issue_numbers(text: &str) -> Vec<usize> {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut lines = Vec::new();
    for (at, _) in lower.match_indices("issue") {
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let mut i = at + "issue".len();
        if bytes.get(i) == Some(&b's') {
            i += 1;
        }
        if !bytes.get(i).is_some_and(|b| b.is_ascii_whitespace() || *b == b'#') {
            continue;
        }
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace() || b"#/!*".contains(b)) {
            i += 1;
        }
        if bytes.get(i).is_some_and(u8::is_ascii_digit) {
            lines.push(lower[..at].matches('\n').count() + 1);
        }
    }
    lines
}

#[test]
fn no_source_or_doc_file_points_at_an_issue_number() {
    let mut files: Vec<PathBuf> = TEXT_FILES.iter().map(|f| repo().join(f)).collect();
    for root in TEXT_ROOTS {
        text_files(&repo().join(root), &mut files);
    }
    let mut read = 0;
    let mut found = Vec::new();
    for f in &files {
        // Binary files (none are sources or docs) are not read.
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        read += 1;
        for line in issue_numbers(&text) {
            let shown = text.lines().nth(line - 1).unwrap_or_default().trim();
            found.push(format!("{}:{line}: {}", f.strip_prefix(repo()).unwrap_or(f).display(), shown.chars().take(100).collect::<String>()));
        }
    }
    assert!(read > 200, "read only {read} text files: are the roots still {TEXT_ROOTS:?}?");
    assert!(
        found.is_empty(),
        "{} references to an issue number; write the fact it stands for (what and why), or link the docs section:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn the_issue_check_finds_what_it_should_and_nothing_else() {
    let word = "issue";
    let found = [
        format!("// the scale ({word} 18)"),
        format!("//! the hunt ({word}\n//! 19)"),
        format!("# {}s 7 and 18", word.to_uppercase()),
        format!("see {word} #14"),
        format!("\t * jobs ({word}\n\t * 15)."),
    ];
    for text in &found {
        assert_eq!(issue_numbers(text).len(), 1, "{text:?}");
    }
    assert_eq!(issue_numbers(&format!("a\n// ({word}\n// 19)")), vec![2]);
    let kept = ["fn issue_15_x() {}", "the D-Bus and systemd issues need a VM", "issue-19-all", "tissue 5", "issue(5)"];
    for text in kept {
        assert!(issue_numbers(text).is_empty(), "{text:?}");
    }
}
