//! The architecture, checked from the source: the pure core imports nothing from the edges, a run or a command, and
//! no module imports, through any chain, the module it is imported by, and the crates that speak to an outside party
//! (the CA, name servers) are named only by that party's edge. Read from the `use` paths and the
//! `crate::...` paths of every file under src/ (inline test modules left out: a test may reach anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// What the pure core may not name: the outside parties, a run, and the commands that join them.
const FORBIDDEN_IN_CORE: [&str; 12] = [
    "crate::edge",
    "crate::renew",
    "crate::check",
    "crate::notify",
    "crate::daemon",
    "crate::import",
    "crate::cli",
    "crate::status",
    "crate::metrics",
    "crate::account",
    "crate::fanout",
    "crate::fleet",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/core/config/mod.rs` is `core::config`, `src/edge/probe.rs` is `edge::probe`.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The file's text before its inline test module, without comments; test-only files (`tests.rs`, `testing.rs`) are
/// left out entirely.
fn code_of(file: &Path) -> Option<String> {
    let name = file.file_name().unwrap().to_string_lossy();
    if name == "tests.rs" || name == "testing.rs" {
        return None;
    }
    let text = fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    Some(
        code.lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Every path the code names that starts at `crate`, `super` or `self`, made absolute from `module`. A `use` list
/// (`use crate::a::{b, c::d}`) names each of its members.
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let root = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|r| rest.starts_with(r));
        if let (true, Some(root)) = (starts_word, root) {
            let mut end = i;
            let mut depth = 0;
            while end < bytes.len() {
                let c = bytes[end];
                if c == '{' {
                    depth += 1;
                } else if c == '}' {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                } else if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') {
                    break;
                }
                end += 1;
            }
            let text: String = bytes[i..end].iter().collect();
            for path in expand(&text) {
                let mut segments: Vec<String> = path.split("::").map(str::to_owned).collect();
                let mut absolute = match root {
                    "crate::" => Vec::new(),
                    "super::" => module[..module.len().saturating_sub(1)].to_vec(),
                    _ => module.to_vec(),
                };
                segments.remove(0);
                while segments.first().is_some_and(|s| s == "super") {
                    absolute.pop();
                    segments.remove(0);
                }
                absolute.extend(segments.into_iter().filter(|s| !s.is_empty() && s != "self"));
                paths.push(absolute);
            }
            i = end;
        }
        i += 1;
    }
    paths
}

/// `crate::a::{b, c::{d, e}}` as `crate::a::b`, `crate::a::c::d`, `crate::a::c::e`.
fn expand(text: &str) -> Vec<String> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = text.find('{') else {
        return vec![text];
    };
    let (prefix, inner) = (&text[..open], &text[open + 1..text.len() - 1]);
    let mut members = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (at, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                members.push(&inner[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    members.push(&inner[start..]);
    members
        .into_iter()
        .filter(|m| !m.is_empty())
        .flat_map(|m| expand(&format!("{prefix}{m}")))
        .collect()
}

struct Graph {
    /// Module path to the modules it names, each by the longest prefix of a path that is a module.
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    /// Module path to the `crate::...` paths its code names, as written.
    named: BTreeMap<Vec<String>, Vec<String>>,
}

fn graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut edges = BTreeMap::new();
    let mut named = BTreeMap::new();
    for file in &files {
        let Some(code) = code_of(file) else { continue };
        let module = module_of(file);
        let mut targets = BTreeSet::new();
        let mut written = Vec::new();
        for path in named_paths(&code, &module) {
            written.push(format!("crate::{}", path.join("::")));
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p));
            // A module naming itself or what it contains (a folder's `mod.rs` and its children) is no dependency.
            if let Some(target) = target.filter(|t| !t.starts_with(&module)) {
                targets.insert(target);
            }
        }
        edges.insert(module.clone(), targets);
        named.insert(module, written);
    }
    Graph { edges, named }
}

#[test]
fn the_pure_core_imports_nothing_from_the_edges_a_run_or_a_command() {
    let graph = graph();
    let mut offences = Vec::new();
    for (module, paths) in &graph.named {
        if module.first().map(String::as_str) != Some("core") {
            continue;
        }
        for path in paths {
            if let Some(prefix) = FORBIDDEN_IN_CORE.iter().find(|p| path.starts_with(*p)) {
                offences.push(format!(
                    "{} names {path} ({prefix} is outside the pure core)",
                    module.join("::")
                ));
            }
        }
    }
    assert!(
        graph
            .named
            .keys()
            .filter(|m| m.first().map(String::as_str) == Some("core"))
            .count()
            > 10
    );
    assert!(
        offences.is_empty(),
        "the pure core must not reach out:\n{}",
        offences.join("\n")
    );
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let graph = graph();
    // Depth-first, keeping the path: a module met again on its own path closes a cycle.
    fn visit(
        module: &Vec<String>,
        graph: &Graph,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|m| m == module) {
            let cycle: Vec<String> = path[at..].iter().chain([module]).map(|m| m.join("::")).collect();
            cycles.push(cycle.join(" -> "));
            return;
        }
        if !done.insert(module.clone()) {
            return;
        }
        path.push(module.clone());
        for next in graph.edges.get(module).into_iter().flatten() {
            visit(next, graph, path, done, cycles);
        }
        path.pop();
    }
    let (mut done, mut cycles) = (BTreeSet::new(), Vec::new());
    for module in graph.edges.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    let edges: usize = graph.edges.values().map(BTreeSet::len).sum();
    assert!(edges > 100, "the graph was read: {edges} edges");
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_reader_sees_use_lists_and_relative_paths() {
    let module = vec!["renew".to_owned(), "issue".to_owned()];
    let paths = named_paths(
        "use super::challenge::ChallengeSide;\nuse crate::core::{ari, config::{Config, KeyType}};\nlet x = self::y::z;",
        &module,
    );
    let shown: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        shown,
        [
            "renew::challenge::ChallengeSide",
            "core::ari",
            "core::config::Config",
            "core::config::KeyType",
            "renew::issue::y::z"
        ]
    );
}

/// Where a macro is called in `code`: `name!(` not preceded by a letter, digit or `_` (so `println!` is not `eprintln!`).
fn calls(code: &str, name: &str) -> usize {
    let call = format!("{name}!(");
    code.match_indices(&call)
        .filter(|(at, _)| {
            !code[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .count()
}

#[test]
fn results_reach_stdout_only_through_the_output_module() {
    // `print!` panics when the reader has gone away; `output::out!` stops writing and keeps the exit code.
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let offences: Vec<String> = files
        .iter()
        .filter(|file| module_of(file) != ["output"])
        .filter_map(|file| {
            let code = code_of(file)?;
            let found = calls(&code, "println") + calls(&code, "print");
            (found > 0).then(|| format!("{}: {found} print!/println!", file.display()))
        })
        .collect();
    assert_eq!(calls("eprintln!(\"x\"); println!(\"y\"); print!(\"z\")", "println"), 1);
    assert!(
        offences.is_empty(),
        "use output::{{out, outln}} instead:\n{}",
        offences.join("\n")
    );
}

#[test]
fn each_outside_partys_crate_is_named_by_its_edge_alone() {
    // (crate, the module that owns the party). Log filters name a crate as a string, which is no use of it.
    let owners = [("instant_acme", "edge/acme/"), ("hickory_proto", "edge/dns/")];
    let mut strays = Vec::new();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
        let Some(code) = code_of(&file) else { continue };
        let relative = file.strip_prefix(src()).unwrap().to_string_lossy().into_owned();
        for (krate, owner) in owners {
            let named = code
                .lines()
                .any(|line| line.contains(&format!("{krate}::")) && !line.contains('"'));
            if named && !relative.starts_with(owner) {
                strays.push(format!("{relative} names {krate}, which only {owner} may"));
            }
        }
    }
    assert!(strays.is_empty(), "{strays:#?}");
}
