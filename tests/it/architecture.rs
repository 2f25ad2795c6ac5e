//! The map is true: the modules of `src/` depend on each other without a cycle, and the
//! layout in `lib.rs` and in the book (`docs/src/code-layout.md`) names every module, each once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `callout/mod.rs` -> `callout`, `callout/decision.rs` ->
/// `callout::decision`.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its unit tests (`#[cfg(test)]` onwards) and comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths named after `prefix` (`crate::`, `super::`): `a` or `a::b`, identifiers only.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let ident = |s: &str| {
            s.chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .count()
        };
        let n = ident(rest);
        if n == 0 {
            continue;
        }
        let mut path = rest[..n].to_string();
        if rest[n..].starts_with("::") {
            let m = ident(&rest[n + 2..]);
            if m > 0 {
                path.push_str("::");
                path.push_str(&rest[n + 2..n + 2 + m]);
            }
        }
        out.push(path);
    }
    out
}

/// Module -> the modules it uses (file level; a module and its own parents or children
/// are not edges).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeMap<String, String> = files
        .iter()
        .map(|f| (module_of(f), code(&std::fs::read_to_string(f).unwrap())))
        .filter(|(m, _)| m != "lib" && m != "main")
        .collect();
    let resolve = |name: &str| {
        let mut cand = name.to_string();
        while !cand.is_empty() && !modules.contains_key(&cand) {
            cand = cand
                .rsplit_once("::")
                .map(|(a, _)| a.to_string())
                .unwrap_or_default();
        }
        cand
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, code) in &modules {
        let parent = m.rsplit_once("::").map(|(a, _)| a.to_string());
        let mut used: Vec<String> = paths_after(code, "crate::");
        for p in paths_after(code, "super::") {
            used.push(match &parent {
                Some(parent) => format!("{parent}::{p}"),
                None => p,
            });
        }
        for u in used {
            let target = resolve(&u);
            let related = target.is_empty()
                || target == *m
                || m.starts_with(&format!("{target}::"))
                || target.starts_with(&format!("{m}::"));
            if !related {
                edges.entry(m.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

/// A cycle through the graph, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let edges = graph();
    assert!(
        edges.contains_key("callout") && edges["callout"].contains("wire"),
        "the graph is read: {edges:?}"
    );
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn a_cycle_would_be_found() {
    let mut edges = graph();
    edges.entry("wire".into()).or_default().insert("callout".into());
    let cycle = find_cycle(&edges).expect("a cycle");
    assert!(cycle.contains(&"wire".to_string()), "{cycle:?}");
}

/// The top-level modules `lib.rs` declares.
fn declared_modules() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

#[test]
fn lib_and_the_book_name_every_module_once() {
    let modules = declared_modules();
    assert!(modules.len() > 10, "{modules:?}");
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let layout: Vec<&str> = lib.lines().filter(|l| l.starts_with("//! - ")).collect();
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/code-layout.md");
    let page = std::fs::read_to_string(page).unwrap();
    let section = page
        .strip_prefix("# How the code is laid out\n")
        .expect("docs/src/code-layout.md is the page \"How the code is laid out\"");
    let section = section.split("\n## ").next().unwrap();
    for m in &modules {
        let in_lib = layout
            .iter()
            // A link where rustdoc can resolve it; plain for a module behind a feature.
            .filter(|l| l.starts_with(&format!("//! - [`{m}`]")) || l.starts_with(&format!("//! - `{m}`:")))
            .count();
        assert_eq!(in_lib, 1, "lib.rs layout lines for {m}: {layout:#?}");
        let in_book = section
            .lines()
            .filter(|l| l.starts_with(&format!("- `{m}`")))
            .count();
        assert_eq!(in_book, 1, "docs/src/code-layout.md layout lines for {m}");
    }
    assert_eq!(
        layout.len(),
        modules.len(),
        "lib.rs lists a module that does not exist"
    );
    let listed = section.lines().filter(|l| l.starts_with("- `")).count();
    assert_eq!(
        listed,
        modules.len(),
        "docs/src/code-layout.md lists a module that does not exist"
    );
}

/// The modules in the order `lib.rs` lists them (its layout lines).
fn layout_order() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.strip_prefix("//! - "))
        .map(|l| {
            l.trim_start_matches("[`")
                .trim_start_matches('`')
                .split('`')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// `lib.rs` lists modules lower layers first: no module uses one listed after it.
#[test]
fn lib_lists_lower_layers_first() {
    let order = layout_order();
    let at = |m: &str| order.iter().position(|o| o == m);
    let top = |m: &str| m.split("::").next().unwrap().to_string();
    let mut upward = Vec::new();
    for (from, tos) in graph() {
        for to in tos {
            let (f, t) = (top(&from), top(&to));
            if f == t {
                continue;
            }
            let (Some(fi), Some(ti)) = (at(&f), at(&t)) else {
                panic!("{f} or {t} is not in lib.rs's layout: {order:?}");
            };
            if ti > fi {
                upward.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run up lib.rs's layout: {upward:#?}"
    );
}

/// The modules `lib.rs` declares are exactly the files and folders of `src/`.
#[test]
fn lib_declares_exactly_the_tree() {
    let mut tree: Vec<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "lib" && m != "main")
        .collect();
    tree.sort();
    let mut declared = declared_modules();
    declared.sort();
    assert_eq!(declared, tree);
}

/// A `//!` list of `- [`name`]` lines names each `mod` of the file once, and nothing else.
fn check_list(file: &Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let listed: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("//! - [`"))
        .map(|l| l.split('`').next().unwrap().to_string())
        .collect();
    let declared: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches("pub ").trim_start_matches("pub(crate) ");
            l.strip_prefix("mod ")
        })
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    assert_eq!(listed, declared, "the module list of {}", file.display());
}

#[test]
fn the_test_module_lists_name_every_module() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    check_list(&tests.join("main.rs"));
    check_list(&tests.join("support/mod.rs"));
    check_list(&tests.join("security/mod.rs"));
}
