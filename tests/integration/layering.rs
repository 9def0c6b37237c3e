//! The module layering, checked as an ordinary test (as rust-analyzer's `tidy`
//! checks its repository's rules): each top-level module of `src/` may use only
//! modules of lower layers, and the pure modules do no process, file or network
//! I/O. The sources are read as text; no build step, no syn.
//!
//! When this fails, it names the file, the line and the two modules. A new
//! top-level module needs a deliberate place in [`LAYERS`]. The allow-lists of
//! today's exceptions ([`KNOWN_TODAY`], [`IMPURE_TODAY`], [`NOT_YET`]) may only
//! shrink: each entry must still be true, so whoever removes an edge deletes its
//! entry.

use std::path::{Path, PathBuf};

/// Lowest first. A module may use only modules of lower layers; modules of one
/// layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &[
        "environment",
        "exit",
        "diagnostic",
        "file_error",
        "graph",
        "par",
        "testutil",
    ],
    &["spec"],
    &["validate"],
    &["context"],
    &["engine"],
    &["registry"],
    &["plan"],
    &["events"],
    &["exec"],
    &["report"],
    &["ci", "doctor", "init"],
    &["error"],
    &["cli"],
];

/// What code lines of a pure module may not name: process, file and network I/O.
const IO: &[&str] = &[
    "std::process",
    "std::fs",
    "duct",
    "libc::",
    "std::net",
    "ureq",
];

/// Modules that must stay pure, and what each may not name besides [`IO`].
/// Unit tests (after `#[cfg(test)]`) are exempt.
const PURE: &[(&str, &[&str])] = &[
    ("engine", &[]),
    ("plan", &["crate::registry::http"]),
    ("events", &[]),
];

/// Edges (from, to) that break the layering. Empty since issue 13: spec → validate
/// went with `Spec::load` moving to validate/load.rs, and the layers' edges to
/// `error` with their own errors (LoadError, ContextError, PlanError, InitError, …)
/// under `crate::Error`. Keep it empty.
const KNOWN_TODAY: &[(&str, &str)] = &[];

/// (file under src/, banned name) of the pure modules that still do I/O.
const IMPURE_TODAY: &[(&str, &str)] = &[];

/// Modules of [`LAYERS`] that do not exist yet; each is deleted here when it is
/// added to lib.rs.
const NOT_YET: &[&str] = &[];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn layer(m: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&m))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `exec` for exec/runner/build.rs, `doctor` for doctor.rs.
fn top_module(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The code of each line: comment lines dropped, a trailing `// …` cut when no
/// string could hold it, `use … ;` joined into one logical line (numbered by its
/// first line).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.starts_with("//") {
            continue;
        }
        let code = match t.find("//") {
            Some(p) if !t[..p].contains('"') => t[..p].trim_end(),
            _ => t,
        };
        if let Some((n, mut acc)) = pending.take() {
            acc.push(' ');
            acc.push_str(code);
            if code.contains(';') {
                out.push((n, acc));
            } else {
                pending = Some((n, acc));
            }
            continue;
        }
        let is_use = code.starts_with("use ")
            || code.starts_with("pub use ")
            || code.starts_with("pub(crate) use ");
        if is_use && !code.contains(';') {
            pending = Some((i + 1, code.to_string()));
        } else {
            out.push((i + 1, code.to_string()));
        }
    }
    out.extend(pending);
    out
}

/// The top-level modules a line names: the first segment after every `crate::`
/// (each item's at brace depth 1 for `crate::{a, b::c}`), and after `super::` in
/// a file directly under src/ where `super` is the crate.
fn crate_paths(line: &str, super_is_crate: bool) -> Vec<String> {
    let mut found = Vec::new();
    let mut prefixes = vec!["crate::"];
    if super_is_crate {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        let mut from = 0;
        while let Some(p) = line[from..].find(prefix) {
            let at = from + p;
            from = at + prefix.len();
            let before = line[..at].chars().last();
            if before.is_some_and(|c| c == '$' || c == '_' || c.is_alphanumeric() || c == ':') {
                continue;
            }
            let rest = &line[from..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 1;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 1 => break,
                        '}' => depth -= 1,
                        ',' if depth == 1 => {
                            found.extend(first_segment(&item));
                            item.clear();
                        }
                        // Only the start of each item matters.
                        c if depth == 1 => item.push(c),
                        _ => {}
                    }
                }
                found.extend(first_segment(&item));
            } else {
                found.extend(first_segment(rest));
            }
        }
    }
    if super_is_crate {
        // `super::X` in an inline module (`mod tests`) is the file's own item:
        // only names of top-level modules count.
        found.retain(|m| layer(m).is_some() || !line.contains(&format!("super::{m}")));
    }
    found
}

fn first_segment(s: &str) -> Option<String> {
    let s = s.trim();
    let name: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name != "self" && name != "super").then_some(name)
}

/// Every (file, line, from, to) edge between top-level modules, and every banned
/// name in a pure module's code.
struct Scan {
    edges: Vec<(String, usize, String, String)>,
    impure: Vec<(String, usize, String)>,
}

fn scan() -> Scan {
    let src = src();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut s = Scan {
        edges: Vec::new(),
        impure: Vec::new(),
    };
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = top_module(rel);
        if matches!(top.as_str(), "lib" | "main") {
            continue;
        }
        let depth_one = rel.components().count() == 1 || rel == Path::new(&top).join("mod.rs");
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = format!("src/{}", rel.display());
        let banned: Option<Vec<&str>> = PURE
            .iter()
            .find(|(m, _)| *m == top)
            .map(|(_, extra)| IO.iter().chain(extra.iter()).copied().collect());
        let mut in_tests = false;
        for (n, line) in code_lines(&text) {
            for used in crate_paths(&line, depth_one) {
                if used != top {
                    s.edges.push((shown.clone(), n, top.clone(), used));
                }
            }
            in_tests |= line.starts_with("#[cfg(test)]");
            if let (Some(banned), false) = (&banned, in_tests) {
                for b in banned.iter().filter(|b| line.contains(*b)) {
                    s.impure.push((shown.clone(), n, b.to_string()));
                }
            }
        }
    }
    s
}

#[test]
fn modules_import_only_lower_layers() {
    let mut bad = Vec::new();
    for (file, n, from, to) in scan().edges {
        let Some(me) = layer(&from) else {
            bad.push(format!("{file}: module `{from}` is in no layer"));
            continue;
        };
        match layer(&to) {
            Some(l) if l < me => {}
            _ if KNOWN_TODAY.contains(&(from.as_str(), to.as_str())) => {}
            Some(_) => bad.push(format!(
                "{file}:{n}: `{from}` uses `{to}`, which is not below it"
            )),
            None => bad.push(format!("{file}:{n}: `{to}` is in no layer")),
        }
    }
    bad.dedup();
    assert!(
        bad.is_empty(),
        "layering violations (see the LAYERS table in tests/integration/layering.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn pure_modules_do_no_io() {
    let bad: Vec<String> = scan()
        .impure
        .into_iter()
        .filter(|(file, _, b)| {
            !IMPURE_TODAY.contains(&(file.trim_start_matches("src/"), b.as_str()))
        })
        .map(|(file, n, b)| format!("{file}:{n}: a pure module names `{b}`"))
        .collect();
    assert!(
        bad.is_empty(),
        "I/O in a pure module (see PURE in tests/integration/layering.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_module_is_placed() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: Vec<String> = code_lines(&lib)
        .into_iter()
        .filter_map(|(_, l)| {
            let l = l.strip_prefix("pub ").unwrap_or(&l).to_string();
            let name = l
                .strip_prefix("mod ")?
                .strip_suffix(';')?
                .trim()
                .to_string();
            Some(name)
        })
        .collect();
    let mut bad = Vec::new();
    for m in &declared {
        if layer(m).is_none() {
            bad.push(format!("src/lib.rs: `mod {m}` is in no layer of LAYERS"));
        }
        if NOT_YET.contains(&m.as_str()) {
            bad.push(format!("`{m}` exists now: delete it from NOT_YET"));
        }
    }
    for m in LAYERS.iter().flat_map(|l| l.iter()) {
        if !declared.iter().any(|d| d == m) && !NOT_YET.contains(m) {
            bad.push(format!("`{m}` is in LAYERS but not a module of src/lib.rs"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_lists_of_todays_exceptions_only_shrink() {
    let s = scan();
    let mut stale = Vec::new();
    for (from, to) in KNOWN_TODAY {
        if !s.edges.iter().any(|(_, _, f, t)| f == from && t == to) {
            stale.push(format!(
                "KNOWN_TODAY: `{from}` no longer uses `{to}`: delete the entry"
            ));
        }
        if layer(to).is_some_and(|t| layer(from).is_some_and(|f| t < f)) {
            stale.push(format!(
                "KNOWN_TODAY: `{from}` → `{to}` is allowed anyway: delete the entry"
            ));
        }
    }
    for (file, b) in IMPURE_TODAY {
        if !s
            .impure
            .iter()
            .any(|(f, _, x)| f.trim_start_matches("src/") == *file && x == b)
        {
            stale.push(format!(
                "IMPURE_TODAY: src/{file} no longer names `{b}`: delete the entry"
            ));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}

#[test]
fn the_scanner_reads_paths_as_the_compiler_does() {
    let lines = code_lines(
        "//! names crate::validate in a doc comment\nuse crate::{\n    plan::{Plan, Step},\n    spec,\n};\nlet x = crate::engine::runner::missing(h); // crate::cli\nuse crate::report::{self, Reporter};\n",
    );
    let found: Vec<(usize, Vec<String>)> = lines
        .iter()
        .map(|(n, l)| (*n, crate_paths(l, false)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    assert_eq!(
        found,
        [
            (2, vec!["plan".to_string(), "spec".to_string()]),
            (6, vec!["engine".to_string()]),
            (7, vec!["report".to_string()]),
        ]
    );
    assert_eq!(crate_paths("use super::exec::x;", true), ["exec"]);
    assert!(crate_paths("use super::*;", true).is_empty());
    assert!(crate_paths("$crate::plan::x", false).is_empty());
}
