//! The module order of ARCHITECTURE.md, kept by reading the source: every `crate::`, `super::`
//! and `self::` path in `src/` (tests excluded) is resolved to the file it names, and
//!
//! - an import between two top-level modules goes down the order, never up or sideways;
//! - no two entries of one folder (files, or sub-folders taken whole) import each other in a
//!   circle; a folder's `mod.rs` is the folder's face and may use its own entries;
//! - no file holds more than [`MAX_LINES`] lines before its tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines a file may hold before its `#[cfg(test)]` tests.
const MAX_LINES: usize = 600;

/// The order, top first. Modules of one rank do not import each other.
const ORDER: &[&[&str]] = &[
    &["main", "cli"],
    &["server", "client"],
    &["service"],
    &["pipeline", "governance"],
    &["quality"],
    &["engine"],
    &["catalog"],
    &["storage"],
    &["spec"],
    // Shared by all: errors, sizes and durations for people, the generated protocol messages.
    &["error", "human", "proto"],
];

fn rank(module: &str) -> Option<usize> {
    ORDER.iter().position(|r| r.contains(&module))
}

/// A file's module path: `engine/guard.rs` is `engine::guard`, `engine/mod.rs` is `engine`.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The text that counts: up to the tests, without comment lines.
fn code_of(source: &str) -> String {
    let end = source
        .find("#[cfg(test)]\nmod tests")
        .unwrap_or(source.len());
    source[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a path expression names, its `{a, b::{c, d}}` groups expanded.
fn expand(prefix: &[String], rest: &str, out: &mut Vec<Vec<String>>) {
    let rest = rest.trim();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        let mut end = inner.len();
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    end = i;
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(prefix, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(prefix, &inner[start..end], out);
        return;
    }
    let mut path = prefix.to_vec();
    let mut tail = rest;
    loop {
        if tail.starts_with('{') {
            expand(&path, tail, out);
            return;
        }
        let len = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if len == 0 {
            break;
        }
        path.push(tail[..len].to_string());
        match tail[len..].strip_prefix("::") {
            Some(next) => tail = next,
            None => break,
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// The end of the `{...}` group or plain path starting at `text`.
fn path_end(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':' || c == '{') => {
                return i;
            }
            _ => {}
        }
    }
    text.len()
}

/// The module paths `code` (of the module `me`) refers to.
fn references(me: &[String], code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for base in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(base).map(|i| i + from) {
            from = i + base.len();
            let before = if i == 0 { b' ' } else { bytes[i - 1] };
            if before.is_ascii_alphanumeric() || before == b'_' || before == b'$' || before == b':'
            {
                continue;
            }
            let mut prefix: Vec<String> = match base {
                "crate::" => Vec::new(),
                _ => me.to_vec(),
            };
            let mut rest = &code[from..];
            if base == "super::" {
                prefix.pop();
                while let Some(r) = rest.strip_prefix("super::") {
                    prefix.pop();
                    rest = r;
                }
            }
            expand(&prefix, &rest[..path_end(rest)], &mut out);
        }
    }
    out
}

/// The sources under `root`, by path relative to it (`/`-separated).
fn sources(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The file a module path names: the longest prefix that is a file.
fn file_of(path: &[String], files: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len()).rev().find_map(|n| {
        let stem = path[..n].join("/");
        [format!("{stem}.rs"), format!("{stem}/mod.rs")]
            .into_iter()
            .find(|f| files.contains_key(f))
    })
}

/// Where `file` sits within `folder` ("" is `src/` itself): the entry of `folder` holding it.
fn entry_of<'a>(folder: &str, file: &'a str) -> Option<&'a str> {
    let rest = if folder.is_empty() {
        file
    } else {
        file.strip_prefix(folder)?.strip_prefix('/')?
    };
    let entry = rest.split('/').next()?;
    (entry != "mod.rs").then_some(entry.trim_end_matches(".rs"))
}

/// Whether `edges` holds a circle; returns one, if so.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut found = stack[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if !done.insert(node.to_string()) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut done, &mut Vec::new()))
}

/// Every breach of the rules in the source tree at `root`.
fn breaches(root: &Path) -> Vec<String> {
    let files = sources(root);
    let mut found = Vec::new();
    let mut imports: BTreeSet<(String, String)> = BTreeSet::new();
    for (file, source) in &files {
        let code = code_of(source);
        let lines = source[..source
            .find("#[cfg(test)]\nmod tests")
            .unwrap_or(source.len())]
            .lines()
            .count();
        if lines > MAX_LINES {
            found.push(format!(
                "{file}: {lines} lines before its tests (at most {MAX_LINES})"
            ));
        }
        let me = module_of(file);
        for path in references(&me, &code) {
            if let Some(target) = file_of(&path, &files)
                && &target != file
            {
                imports.insert((file.clone(), target));
            }
        }
    }
    let top = |f: &str| -> String {
        let module = module_of(f);
        match module.first() {
            Some(m) => m.clone(),
            None if f == "main.rs" => "main".into(),
            None => "proto".into(), // lib.rs declares the modules and holds `proto`
        }
    };
    for (from, to) in &imports {
        let (a, b) = (top(from), top(to));
        if a == b || from == "lib.rs" {
            continue;
        }
        match (rank(&a), rank(&b)) {
            (Some(ra), Some(rb)) if rb > ra => {}
            (Some(_), Some(_)) => found.push(format!(
                "{from} imports {to}: `{a}` may not import `{b}` (ARCHITECTURE.md, module map)"
            )),
            _ => found.push(format!(
                "{from} imports {to}: `{a}` or `{b}` has no place in the module order"
            )),
        }
    }
    let folders: BTreeSet<String> = files
        .keys()
        .map(|f| {
            f.rsplit_once('/')
                .map_or(String::new(), |(d, _)| d.to_string())
        })
        .flat_map(|d| {
            let parts: Vec<&str> = d.split('/').collect();
            (0..=parts.len())
                .map(move |n| parts[..n].join("/"))
                .collect::<Vec<_>>()
        })
        .collect();
    for folder in folders {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in &imports {
            if let (Some(a), Some(b)) = (entry_of(&folder, from), entry_of(&folder, to))
                && a != b
            {
                edges
                    .entry(a.to_string())
                    .or_default()
                    .insert(b.to_string());
            }
        }
        if let Some(c) = circle(&edges) {
            let shown = if folder.is_empty() {
                "src".to_string()
            } else {
                format!("src/{folder}")
            };
            found.push(format!("{shown}: a circle of imports: {}", c.join(" → ")));
        }
    }
    found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn imports_follow_the_module_order_without_circles() {
    let found = breaches(&src());
    assert!(
        found.is_empty(),
        "the layering is broken:\n{}",
        found.join("\n")
    );
}

/// A copy of `src/` with `edit` applied to one file.
fn planted(file: &str, edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, source) in sources(&src()) {
        let to = dir.path().join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let text = if rel == file { edit(&source) } else { source };
        std::fs::write(to, text).unwrap();
    }
    dir
}

#[test]
fn an_upward_import_is_found() {
    let dir = planted("spec/yaml.rs", |s| {
        format!("use crate::server::FlightSql;\n{s}")
    });
    let found = breaches(dir.path());
    assert_eq!(
        found[0],
        "spec/yaml.rs imports server/mod.rs: `spec` may not import `server` (ARCHITECTURE.md, module map)"
    );
    // Everything imports `spec`, so it closes a circle of the top-level modules too.
    assert!(
        found[1].starts_with("src: a circle of imports: "),
        "{found:?}"
    );
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn a_circle_within_a_folder_is_found() {
    // The dialect is used by the guard; the dialect using the guard closes a circle.
    let dir = planted("engine/dialect.rs", |s| {
        format!("use super::guard::{{self, SqlLimits}};\n{s}")
    });
    let found = breaches(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("src/engine: a circle of imports: "),
        "{found:?}"
    );
    assert!(
        found[0].contains("dialect") && found[0].contains("guard"),
        "{found:?}"
    );
}

#[test]
fn grouped_and_relative_paths_are_read() {
    let me = vec!["service".to_string(), "query".to_string()];
    let refs = references(
        &me,
        "use super::{audit::AuditRecord, stream::{QueryStream, self}};\nuse crate::engine::Budget;\n\
         let x = super::super::spec::Action::Read;",
    );
    let shown: Vec<String> = refs.iter().map(|p| p.join("::")).collect();
    assert!(
        shown.contains(&"service::audit::AuditRecord".to_string()),
        "{shown:?}"
    );
    assert!(
        shown.contains(&"service::stream::QueryStream".to_string()),
        "{shown:?}"
    );
    assert!(shown.contains(&"engine::Budget".to_string()), "{shown:?}");
    assert!(
        shown.contains(&"spec::Action::Read".to_string()),
        "{shown:?}"
    );
}
