//! Entry points for the fuzz targets and the no-panic property tests.

use crate::directives::directives;
use crate::error::Errors;
use crate::section::Section;
use crate::{ParseOptions, parse_str_with};

/// Parses arbitrary bytes (lossily decoded as UTF-8) with includes disabled and a fixed
/// environment. When the text parses, checks that printing the tree and parsing the print gives
/// the same tree, then runs every typed reader over every parameter. Panics only when one of
/// those properties breaks.
pub fn parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let opts = || {
        ParseOptions::new()
            .without_includes()
            .with_env(|name| (name == "FERRY_FUZZ").then(|| "value".to_string()))
    };
    let Ok(root) = parse_str_with(&text, "fuzz.conf", &opts()) else {
        return;
    };
    let printed = root.to_string();
    match parse_str_with(&printed, "printed.conf", &opts()) {
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
