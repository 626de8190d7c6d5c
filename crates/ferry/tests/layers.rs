//! The layers of `docs/design.md#layers`, checked on the source: a module may import only from
//! the layers below it, and the three libraries stay independent of each other.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `path` (or `path` itself), with its code lines (comments dropped).
fn code(path: &Path) -> Vec<(PathBuf, Vec<(usize, String)>)> {
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            let lines = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim_start().starts_with("//"))
                .map(|(n, l)| (n + 1, l.to_string()))
                .collect();
            files.push((p, lines));
        }
    }
    files
}

/// Lines under `module` of `src/` that name any of `forbidden` (`crate::output`, ...).
fn violations(module: &str, forbidden: &[&str]) -> Vec<String> {
    violations_in(&src().join(module), forbidden)
}

fn violations_in(root: &Path, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, lines) in code(root) {
        for (n, line) in lines {
            for f in forbidden {
                let bare = f.trim_start_matches("crate::");
                let hit = line.contains(&format!("{f}::"))
                    || line.contains(&format!("{f};"))
                    || line.contains(&format!("{f}}}"))
                    || line.contains(&format!("use crate::{{{bare}"))
                    || line.contains(&format!("super::super::{bare}::"));
                if hit {
                    found.push(format!("{}:{n}: {}", path.display(), line.trim()));
                }
            }
        }
    }
    found
}

const PLUGINS: &[&str] = &["crate::input", "crate::output", "crate::filter"];
const UPPER: &[&str] = &[
    "crate::input",
    "crate::output",
    "crate::filter",
    "crate::router",
    "crate::pipeline",
    "crate::app",
    "crate::admin",
    "crate::metrics",
    "crate::status",
];

#[test]
fn filters_import_no_output_and_no_input() {
    let v = violations("filter", &["crate::output", "crate::input"]);
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn the_network_layer_imports_no_plugin() {
    let v = violations(
        "input/net",
        &[
            "crate::input::forward",
            "crate::input::tail",
            "crate::output",
            "crate::filter",
            "crate::router",
        ],
    );
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn metrics_import_no_plugin() {
    let mut forbidden = PLUGINS.to_vec();
    forbidden.push("crate::router");
    let v = violations("metrics", &forbidden);
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn the_shared_bottom_layer_imports_nothing_above_it() {
    for module in [
        "parse",
        "format",
        "time.rs",
        "time",
        "tls.rs",
        "tls",
        "logging.rs",
        "record.rs",
        "event.rs",
        "task.rs",
        "http",
    ] {
        let v = violations(module, UPPER);
        assert!(v.is_empty(), "{module}: {v:#?}");
    }
}

#[test]
fn the_three_libraries_do_not_depend_on_each_other() {
    for lib in ["ferry-proto", "ferry-buffer", "ferry-config"] {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(lib)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let deps = text
            .split("[dependencies]")
            .nth(1)
            .map(|rest| rest.split("\n[").next().unwrap_or(""))
            .unwrap_or("");
        for other in ["ferry-proto", "ferry-buffer", "ferry-config", "ferry ="] {
            assert!(
                !deps.contains(other),
                "{lib} depends on {other}: {}",
                manifest.display()
            );
        }
    }
}

#[test]
fn the_check_sees_a_forbidden_import_in_any_form_but_not_in_a_comment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.rs"),
        "// crate::output::Output in a comment is fine\n\
         use crate::output::Output;\n\
         use crate::{output, parse};\n\
         let x = super::super::output::format::Strftime::parse(\"%Y\");\n\
         use crate::parse::ParseSetup;\n",
    )
    .unwrap();
    let found = violations_in(dir.path(), &["crate::output"]);
    assert_eq!(found.len(), 3, "{found:#?}");
}

/// The modules of the crate at `root` (`src/`) and, for each, the modules its code names
/// (`crate::a::b`, `super::x`, `super::{x, y}`), test code left out.
fn module_graph(
    root: &Path,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let name_of = |p: &Path| -> String {
        let rel = p.strip_prefix(root).unwrap().with_extension("");
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let parts: Vec<&str> = parts
            .iter()
            .map(String::as_str)
            .filter(|s| *s != "mod" && *s != "lib")
            .collect();
        parts.join("::")
    };
    let mut files = Vec::new();
    for (path, lines) in code(root) {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if file == "tests.rs" || file.ends_with("_tests.rs") {
            continue;
        }
        let mut text = String::new();
        for (_, l) in lines {
            if l.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            text.push_str(&l);
            text.push('\n');
        }
        files.push((name_of(&path), text));
    }
    let known: std::collections::BTreeSet<String> = files.iter().map(|f| f.0.clone()).collect();
    let ident = |s: &str| -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut graph = std::collections::BTreeMap::new();
    for (module, text) in &files {
        let here: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let mut refs: Vec<Vec<String>> = Vec::new();
        for head in ["crate::", "super::", "self::"] {
            for (at, _) in text.match_indices(head) {
                if at > 0 {
                    let before = text.as_bytes()[at - 1];
                    if before.is_ascii_alphanumeric() || before == b'_' || before == b':' {
                        continue;
                    }
                }
                let mut base: Vec<String> = match head {
                    "crate::" => Vec::new(),
                    _ => here.iter().map(|s| s.to_string()).collect(),
                };
                let mut rest = &text[at + head.len()..];
                if head == "super::" {
                    // A file `a/b.rs` is module a::b, its `super` is a; `a/mod.rs` is a, its
                    // `super` is a's parent. Both drop one segment.
                    base.pop();
                    while let Some(r) = rest.strip_prefix("super::") {
                        base.pop();
                        rest = r;
                    }
                }
                let mut path = base.clone();
                loop {
                    if let Some(r) = rest.strip_prefix('{') {
                        let end = r.find('}').unwrap_or(r.len());
                        for item in r[..end].split(',') {
                            let item = item.trim().split(" as ").next().unwrap_or("").trim();
                            let mut p = path.clone();
                            if item != "self" {
                                p.extend(
                                    item.split("::")
                                        .filter(|s| !s.is_empty())
                                        .map(str::to_string),
                                );
                            }
                            refs.push(p);
                        }
                        path.clear();
                        break;
                    }
                    let n = ident(rest);
                    if n == 0 {
                        break;
                    }
                    path.push(rest[..n].to_string());
                    rest = &rest[n..];
                    match rest.strip_prefix("::") {
                        Some(r) => rest = r,
                        None => break,
                    }
                }
                if !path.is_empty() {
                    refs.push(path);
                }
            }
        }
        let mut edges = std::collections::BTreeSet::new();
        for r in refs {
            for k in (1..=r.len()).rev() {
                let candidate = r[..k].join("::");
                if known.contains(&candidate) {
                    if &candidate != module {
                        edges.insert(candidate);
                    }
                    break;
                }
            }
        }
        graph.insert(module.clone(), edges);
    }
    graph
}

/// The cycles of `graph` (one per strongly connected component of two or more modules).
fn cycles(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Vec<Vec<String>> {
    // Kosaraju: order by finish time, then collect components on the reversed graph.
    let mut order = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for start in graph.keys() {
        if seen.contains(start) {
            continue;
        }
        let mut stack = vec![(start.clone(), false)];
        while let Some((v, done)) = stack.pop() {
            if done {
                order.push(v);
                continue;
            }
            if !seen.insert(v.clone()) {
                continue;
            }
            stack.push((v.clone(), true));
            for w in &graph[&v] {
                if !seen.contains(w) {
                    stack.push((w.clone(), false));
                }
            }
        }
    }
    let mut reverse: std::collections::BTreeMap<&String, Vec<&String>> =
        std::collections::BTreeMap::new();
    for (v, ws) in graph {
        for w in ws {
            reverse.entry(w).or_default().push(v);
        }
    }
    let mut assigned = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for v in order.iter().rev() {
        if assigned.contains(v) {
            continue;
        }
        let mut comp = Vec::new();
        let mut stack = vec![v];
        while let Some(x) = stack.pop() {
            if !assigned.insert(x.clone()) {
                continue;
            }
            comp.push(x.clone());
            for y in reverse.get(x).into_iter().flatten() {
                if !assigned.contains(*y) {
                    stack.push(y);
                }
            }
        }
        if comp.len() > 1 {
            comp.sort();
            out.push(comp);
        }
    }
    out
}

#[test]
fn no_modules_import_each_other_in_a_cycle() {
    for krate in ["ferry", "ferry-buffer", "ferry-proto", "ferry-config"] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(krate)
            .join("src");
        let graph = module_graph(&root);
        assert!(
            graph.len() > 5,
            "{krate}: only {} modules read",
            graph.len()
        );
        let found = cycles(&graph);
        let shown: Vec<String> = found
            .iter()
            .map(|c| {
                let edges: Vec<String> = c
                    .iter()
                    .map(|m| {
                        let inside: Vec<&String> =
                            graph[m].iter().filter(|w| c.contains(w)).collect();
                        format!("{m} -> {inside:?}")
                    })
                    .collect();
                edges.join("; ")
            })
            .collect();
        assert!(
            found.is_empty(),
            "{krate}: import cycles:\n{}",
            shown.join("\n")
        );
    }
}

#[test]
fn the_cycle_check_finds_a_cycle_through_super_and_braces() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("out")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod out;\n").unwrap();
    std::fs::write(
        src.join("out/mod.rs"),
        "pub mod a;\npub mod b;\npub mod c;\n",
    )
    .unwrap();
    std::fs::write(src.join("out/a.rs"), "use super::{b::Thing, c};\n").unwrap();
    std::fs::write(src.join("out/b.rs"), "use crate::out::a::Other;\n").unwrap();
    std::fs::write(
        src.join("out/c.rs"),
        "// super::a in a comment\n#[cfg(test)]\nmod tests { use super::super::a; }\n",
    )
    .unwrap();
    let graph = module_graph(src);
    assert_eq!(
        cycles(&graph),
        vec![vec!["out::a".to_string(), "out::b".to_string()]]
    );
    assert!(graph["out::c"].is_empty(), "{graph:?}");
}
