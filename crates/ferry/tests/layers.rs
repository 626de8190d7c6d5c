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
        "time.rs",
        "tls.rs",
        "logging.rs",
        "record.rs",
        "event.rs",
        "task.rs",
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
