//! Entry points for the fuzz targets and the no-panic property tests.

use crate::directives::directives;
use crate::error::Errors;
use crate::section::Section;
use crate::{Lookup, ParseOptions, parse_str_with};

/// The options of every fuzzed parse: nothing outside the input is read.
fn options() -> ParseOptions {
    ParseOptions::new()
        .without_includes()
        .with_lookup(|q| match q {
            Lookup::Env(name) => (name == "FERRY_FUZZ").then(|| "value".to_string()),
            Lookup::Hostname => Some("fuzz-host".to_string()),
            Lookup::Pwd => Some("/fuzz".to_string()),
            Lookup::Pid => Some("4242".to_string()),
        })
}

/// Parses arbitrary bytes (lossily decoded as UTF-8) with includes disabled and a fixed lookup
/// (only `FERRY_FUZZ` is set; host, directory and pid are constants). When the text parses,
/// checks that printing the tree and parsing the print gives the same tree, then runs every
/// typed reader over every parameter. Panics only when one of those properties breaks.
pub fn parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(root) = parse_str_with(&text, "fuzz.conf", &options()) else {
        return;
    };
    let printed = root.to_string();
    match parse_str_with(&printed, "printed.conf", &options()) {
        Ok(again) => assert!(
            root.same_content(&again),
            "printing changed the tree:\n{printed}"
        ),
        Err(e) => panic!("printed tree does not parse: {e}\n{printed}"),
    }
    let errors = Errors::new();
    let d = directives(&root, &errors);
    let sections = d
        .system
        .into_iter()
        .chain(d.sources)
        .chain(d.filters)
        .chain(d.matches)
        .chain(
            d.labels
                .into_iter()
                .flat_map(|l| l.filters.into_iter().chain(l.matches)),
        );
    for s in sections {
        read_everything(s);
    }
    let _ = errors.into_result(());
}

/// `data` as the embedded code of a parameter value, `k "#{data}"` inside a `<source>`, then
/// as [`parse`]: every input reaches the evaluator of `"#{...}"`.
pub fn embedded(data: &[u8]) {
    let mut text = b"<source>\n  k \"#{".to_vec();
    text.extend_from_slice(data);
    text.extend_from_slice(b"}\"\n</source>\n");
    parse(&text);
}

fn read_everything(s: Section<'_>) {
    let _ = (s.plugin_type(), s.id(), s.label(), s.log_level());
    for p in s.element().params.iter().take(64) {
        let k = p.key.as_str();
        let _ = (s.opt_bool(k), s.opt_u64(k), s.opt_i64(k), s.opt_f64(k));
        let _ = (s.opt_size(k), s.opt_duration(k), s.array(k), s.hash(k));
        let _ = s.enum_or(k, &["a", "b"], "a");
    }
    let mut names: Vec<&str> = s
        .element()
        .children
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let _ = s.child(name);
        for c in s.children(name) {
            read_everything(c);
        }
    }
    s.finish();
}
