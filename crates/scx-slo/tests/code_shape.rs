// SPDX-License-Identifier: GPL-2.0-only
//! The shape the code keeps (docs/architecture.md, Kept by tests), checked on the sources:
//! - no import circle between a crate's top-level modules, nor between the
//!   sibling modules of a directory module (the engine's owners);
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

/// The module names after each `prefix` (`crate::` or `super::`) in the
/// code of `text` (comments, doc links included, are not imports),
/// including `prefix{a, b::c}` groups.
fn referenced(text: &str, prefix: &str) -> BTreeSet<String> {
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
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
    names.retain(|n| !n.is_empty() && n.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    names
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
        let mut siblings: BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for f in &files {
            let text = std::fs::read_to_string(f).expect("source");
            let m = top_module(&src, f);
            if m == "main" || m == "lib" {
                continue;
            }
            let to: Vec<String> = referenced(&text, "crate::").into_iter().filter(|n| *n != m && modules.contains(n)).collect();
            graph.entry(m).or_default().extend(to);
            // Siblings inside a directory module (engine/generation.rs ...).
            let dir = f.parent().unwrap_or(&src).to_path_buf();
            if dir != src && f.file_name().is_some_and(|n| n != "mod.rs") {
                let me = f.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                let to: Vec<String> =
                    referenced(&text, "super::").into_iter().filter(|n| *n != me && dir.join(format!("{n}.rs")).exists()).collect();
                siblings.entry(dir).or_default().entry(me).or_default().extend(to);
            }
        }
        if let Some(c) = circle(&graph) {
            problems.push(format!("{}: {}", krate.file_name().to_string_lossy(), c.join(" -> ")));
        }
        for (dir, g) in &siblings {
            if let Some(c) = circle(g) {
                problems.push(format!("{}: {}", dir.display(), c.join(" -> ")));
            }
        }
    }
    assert!(problems.is_empty(), "import circles:\n{}", problems.join("\n"));
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
