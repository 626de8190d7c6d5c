//! Every parameter ferry accepts has its effect, is refused unless it asks for what ferry does,
//! or has no effect in ferry and says so: one warning at start with its file:line
//! (`Section::no_effect`), and a row in docs/design.md "Parameters accepted with no effect".
//! No parameter is accepted and silently ignored.
//!
//! The parameters are not listed by hand: [`scan`] reads ferry's sources for every key asked
//! of a `Section`, so a parameter added later is in the list at once. Each one must be
//!
//! - in [`table::EFFECTS`], with a test that writes the key in configuration text (or sets the
//!   field it is read into, after the family's test in [`table::READING_TESTS`] reads the key
//!   into that field) and asserts a behaviour that depends on it;
//! - in [`table::REFUSED`], with a test showing the refusal of any other value;
//! - read by `no_effect` / `no_effect_unless`, and in the design table (checked both ways);
//! - or in [`table::KNOWN_GAPS`], with its reason.
//!
//! The main test prints the counts of each class.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "parameters/evidence.rs"]
mod evidence;
#[path = "parameters/scan.rs"]
mod scan;
#[path = "parameters/table.rs"]
mod table;

use scan::{Read, ReadKind, Scan, ScanConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CONFIG: ScanConfig<'static> = ScanConfig {
    families: table::FAMILIES,
    helpers: table::KEY_HELPERS,
};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scan_ferry() -> Scan {
    let fields: Vec<PathBuf> = vec![manifest().join("../ferry-config/src/directives.rs")];
    scan::scan_crate(
        &manifest().join("src"),
        &["lib.rs", "main.rs"],
        &fields,
        CONFIG,
    )
}

/// Every `(family, key)` read, with where and how.
fn keys(scan: &Scan) -> BTreeMap<(String, String), Vec<&Read>> {
    let mut out: BTreeMap<(String, String), Vec<&Read>> = BTreeMap::new();
    for r in &scan.reads {
        out.entry((r.family.clone(), r.key.clone()))
            .or_default()
            .push(r);
    }
    out
}

/// The parameters of the design table, each with its row's "where" cell.
fn design_table() -> Vec<(String, String)> {
    let design = std::fs::read_to_string(manifest().join("../../docs/design.md")).unwrap();
    let section = design
        .split("### Parameters accepted with no effect")
        .nth(1)
        .expect("docs/design.md has the section");
    let mut rows = Vec::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (place, params) = (cells[1], cells[2]);
        if place == "where" || place.starts_with("---") {
            continue;
        }
        rows.extend(
            leading_code_spans(params)
                .into_iter()
                .map(|p| (p, place.replace('`', ""))),
        );
    }
    rows
}

/// The first word of each `code` span at the start of `cell`, separated by `,` or `/`:
/// "`localtime true` / `utc false` without `timezone`" → localtime, utc.
fn leading_code_spans(cell: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = cell.trim_start();
    while let Some(body) = rest.strip_prefix('`') {
        let Some(end) = body.find('`') else { break };
        let word = body[..end].split_whitespace().next().unwrap_or_default();
        out.push(word.to_string());
        rest = body[end + 1..].trim_start();
        match rest.strip_prefix([',', '/']) {
            Some(r) => rest = r.trim_start(),
            None => break,
        }
    }
    out
}

#[test]
fn the_scanner_knows_every_method_of_section() {
    let methods = scan::section_methods(&manifest().join("../ferry-config/src/section.rs"));
    let mut known: BTreeSet<String> = scan::KEY_GETTERS.iter().map(|s| s.to_string()).collect();
    known.extend(scan::FIXED_GETTERS.iter().map(|(n, _)| n.to_string()));
    known.insert(scan::ALL_GETTER.to_string());
    known.extend(scan::NOT_READING.iter().map(|s| s.to_string()));
    let unknown: Vec<_> = methods.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "Section has methods the scanner does not know; say in scan.rs whether each reads a key: {unknown:?}"
    );
    let gone: Vec<_> = known.difference(&methods).collect();
    assert!(
        gone.is_empty(),
        "scan.rs lists methods Section no longer has: {gone:?}"
    );
}

#[test]
fn every_accepted_parameter_has_its_effect_is_refused_or_is_documented_without_effect() {
    let scan = scan_ferry();
    assert!(
        scan.problems.is_empty(),
        "the scanner cannot account for these reads:\n{}",
        scan.problems.join("\n")
    );
    let tests = evidence::index(&manifest().join(".."), &["ferry/tests/parameters"]);
    let found = keys(&scan);
    let mut failures = Vec::new();

    // Every key is in exactly one class.
    let effects: BTreeMap<(&str, &str), &str> = table::EFFECTS
        .iter()
        .map(|(f, k, t)| ((*f, *k), *t))
        .collect();
    let refused: BTreeMap<(&str, &str), &str> = table::REFUSED
        .iter()
        .map(|(f, k, t)| ((*f, *k), *t))
        .collect();
    let gaps: BTreeSet<(&str, &str)> = table::KNOWN_GAPS.iter().map(|(f, k, _)| (*f, *k)).collect();
    assert_eq!(
        effects.len(),
        table::EFFECTS.len(),
        "a key is twice in EFFECTS"
    );
    assert_eq!(
        refused.len(),
        table::REFUSED.len(),
        "a key is twice in REFUSED"
    );
    let mut counts = [0usize; 4];
    for ((family, key), reads) in &found {
        let at: Vec<&str> = reads.iter().map(|r| r.at.as_str()).collect();
        let no_effect = reads.iter().any(|r| r.kind == ReadKind::NoEffect);
        let fk = (family.as_str(), key.as_str());
        let classes = [
            effects.contains_key(&fk),
            refused.contains_key(&fk),
            no_effect,
            gaps.contains(&fk),
        ];
        match classes.iter().filter(|c| **c).count() {
            1 => {
                if let Some(i) = classes.iter().position(|c| *c) {
                    counts[i] += 1;
                }
            }
            0 => failures.push(format!(
                "{family}: '{key}' (read at {at:?}) is accepted but has no test showing its effect, no refusal and no no_effect note"
            )),
            _ => failures.push(format!(
                "{family}: '{key}' (read at {at:?}) is in more than one class (effect, refused, no effect, known gap): {classes:?}"
            )),
        }
    }
    let families: BTreeSet<&String> = found.keys().map(|(f, _)| f).collect();
    eprintln!(
        "{} keys in {} families: {} with a test showing their effect, {} refused unless they ask for what ferry does, {} documented as without effect, {} known gaps",
        found.len(),
        families.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
    // Every table entry names a key that is read.
    for (family, key, _) in table::EFFECTS
        .iter()
        .chain(table::REFUSED)
        .chain(table::KNOWN_GAPS)
    {
        if !found.contains_key(&(family.to_string(), key.to_string())) {
            failures.push(format!(
                "{family}: '{key}' is in the tables but ferry does not read it"
            ));
        }
    }
    // Each named test exists and uses the key.
    let reading_tests = |family: &str| -> Vec<&evidence::TestFn> {
        table::READING_TESTS
            .iter()
            .filter(|(f, _)| family.starts_with(f))
            .filter_map(|(_, t)| tests.iter().find(|x| x.is(t)))
            .collect()
    };
    for (family, key, test) in table::EFFECTS.iter().chain(table::REFUSED) {
        let named: Vec<&evidence::TestFn> = tests.iter().filter(|t| t.is(test)).collect();
        let t = match named[..] {
            [t] => t,
            [] => {
                failures.push(format!("{family}: '{key}': no test {test}"));
                continue;
            }
            _ => {
                failures.push(format!(
                    "{family}: '{key}': {test} names more than one test"
                ));
                continue;
            }
        };
        if t.writes(key) {
            continue;
        }
        if !t.names(key) {
            failures.push(format!("{family}: '{key}': {test} does not use the key"));
        } else if !reading_tests(family).iter().any(|r| r.writes(key)) {
            failures.push(format!(
                "{family}: '{key}': {test} sets the field '{key}', but no test of READING_TESTS for {family} reads the key into it"
            ));
        }
    }
    for (family, test) in table::READING_TESTS {
        if !tests.iter().any(|t| t.is(test)) {
            failures.push(format!("reading test of {family}: no test {test}"));
        }
    }
    // Helpers and free-form sections are as listed.
    for (helper, _) in table::KEY_HELPERS {
        let name = helper.rsplit("::").next().unwrap_or(helper);
        if !scan.helpers_seen.contains(name) {
            failures.push(format!(
                "KEY_HELPERS lists {helper}, which passes no key to a getter"
            ));
        }
    }
    let free: BTreeSet<String> = scan
        .free_form
        .iter()
        .map(|f| f.split(" at ").next().unwrap_or_default().to_string())
        .collect();
    let listed: BTreeSet<String> = table::FREE_FORM.iter().map(|s| s.to_string()).collect();
    if free != listed {
        failures.push(format!(
            "sections accepting every key: found {free:?}, FREE_FORM lists {listed:?}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parameters_without_effect_are_exactly_those_of_the_design_table() {
    let scan = scan_ferry();
    let noted: BTreeMap<&str, BTreeSet<&str>> = scan
        .reads
        .iter()
        .filter(|r| r.kind == ReadKind::NoEffect)
        .fold(BTreeMap::new(), |mut m, r| {
            m.entry(r.key.as_str())
                .or_default()
                .insert(r.family.as_str());
            m
        });
    let rows = design_table();
    let documented: BTreeSet<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    let mut failures = Vec::new();
    for (key, families) in &noted {
        if !documented.contains(key) {
            failures.push(format!(
                "'{key}' ({families:?}) has no effect but no row of docs/design.md says so"
            ));
        }
    }
    for (key, place) in &rows {
        match noted.get(key.as_str()) {
            None => failures.push(format!(
                "docs/design.md lists '{key}' ({place}) as without effect, but ferry reads it with no no_effect note"
            )),
            Some(families) => {
                let named = families.iter().any(|f| {
                    let base = f.split(" <").next().unwrap_or(f);
                    place.contains(base) || place.contains(f) || f.contains(place.as_str())
                });
                if !named {
                    failures.push(format!(
                        "docs/design.md puts '{key}' under '{place}', ferry notes it in {families:?}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_design_table_reader_takes_the_leading_code_spans() {
    assert_eq!(
        leading_code_spans("`localtime true` / `utc false` without `timezone`"),
        ["localtime", "utc"]
    );
    assert_eq!(
        leading_code_spans("`json_parser`, `parser_type`, `parser_engine`"),
        ["json_parser", "parser_type", "parser_engine"]
    );
    assert!(leading_code_spans("every store").is_empty());
}

/// The scanner's own test: keys through a helper, a loop over a constant, a local chosen by
/// `if`, a child section and `format!`; and the reads it refuses to guess.
mod scanner {
    use super::scan::{self, ReadKind, ScanConfig};

    const SAMPLE: &str = r#"
        const REFUSED: &[&str] = &["old_a", "old_b"];

        fn read_time(s: &Section<'_>, key: &str) -> Option<String> {
            s.str(key)
        }

        pub fn from_section(section: &Section<'_>) -> Config {
            let port = section.u64_or("port", 24224);
            let format = read_time(section, "time_format");
            for key in REFUSED {
                if section.has(key) {
                    section.error(Some(key), "refused");
                }
            }
            let which = if section.has("localtime") { "localtime" } else { "utc" };
            section.no_effect(which, "always UTC");
            let tls = section.child("transport").map(|t| t.bool_or("insecure", false));
            for n in 1..=3 {
                let _ = section.str(&format!("format{n}"));
            }
            let rec = Record::new();
            rec.str("not_a_key", b"value");
            Config { port, format, tls }
        }
    "#;

    const FAMILIES: &[(&str, &str)] = &[("sample.rs", "sample input")];

    fn config(helpers: &'static [(&'static str, usize)]) -> ScanConfig<'static> {
        ScanConfig {
            families: FAMILIES,
            helpers,
        }
    }

    #[test]
    fn keys_are_found_through_helpers_constants_locals_children_and_format() {
        let s = scan::scan_source("sample.rs", SAMPLE, config(&[("read_time", 1)]));
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        let found: Vec<(String, String, ReadKind)> = s
            .reads
            .iter()
            .map(|r| (r.family.clone(), r.key.clone(), r.kind))
            .collect();
        let family = |k: &str| ("sample input".to_string(), k.to_string(), ReadKind::Read);
        for want in [
            family("port"),
            family("time_format"),
            family("old_a"),
            family("old_b"),
            family("localtime"),
            family("formatN"),
            (
                "sample input <transport>".into(),
                "insecure".into(),
                ReadKind::Read,
            ),
            ("sample input".into(), "utc".into(), ReadKind::NoEffect),
            (
                "sample input".into(),
                "localtime".into(),
                ReadKind::NoEffect,
            ),
        ] {
            assert!(found.contains(&want), "{want:?} not in {found:?}");
        }
        assert!(!found.iter().any(|(_, k, _)| k == "not_a_key"), "{found:?}");
        assert!(s.reads.iter().all(|r| r.at.starts_with("sample.rs:")));
        assert!(s.helpers_seen.contains("read_time"));
    }

    #[test]
    fn a_key_passed_to_an_unlisted_helper_is_a_failure() {
        let s = scan::scan_source("sample.rs", SAMPLE, config(&[]));
        assert!(
            s.problems
                .iter()
                .any(|p| p.contains("argument 1 of 'read_time'") && p.contains("KEY_HELPERS")),
            "{:?}",
            s.problems
        );
    }

    #[test]
    fn a_key_that_is_not_a_literal_is_a_failure() {
        let text = "fn read(s: &Section<'_>, cfg: &Cfg) { let _ = s.bool_or(cfg.name(), true); }";
        let s = scan::scan_source("sample.rs", text, config(&[]));
        assert!(
            s.problems
                .iter()
                .any(|p| p.contains("does not resolve to string literals")),
            "{:?}",
            s.problems
        );
    }

    #[test]
    fn a_getter_on_a_receiver_not_known_as_a_section_is_a_failure() {
        let text = "fn read(holder: &Holder) { let _ = holder.inner().duration_or(\"flush_interval\", D); }";
        let s = scan::scan_source("sample.rs", text, config(&[]));
        assert!(
            s.problems
                .iter()
                .any(|p| p.contains("does not know to be a Section")),
            "{:?}",
            s.problems
        );
    }

    #[test]
    fn a_getter_inside_a_macro_the_scanner_cannot_read_is_a_failure() {
        let text =
            "fn read(s: &Section<'_>) { tracing::info!(port = %s.u64_or(\"port\", 1), \"x\"); }";
        let s = scan::scan_source("sample.rs", text, config(&[]));
        assert!(
            s.problems
                .iter()
                .any(|p| p.contains("take the value out of the macro")),
            "{:?}",
            s.problems
        );
    }
}
