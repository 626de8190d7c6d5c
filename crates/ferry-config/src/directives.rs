//! The top level of a configuration: `<system>`, `<source>`, `<filter>`, `<match>` and
//! `<label @NAME>` (which holds filters and matches), split into [`Section`] readers.

use std::collections::HashMap;

use crate::error::{Errors, Span};
use crate::section::Section;
use crate::suggest;
use crate::tree::Element;

/// Directives allowed at the top level.
pub const TOP_LEVEL: [&str; 5] = ["system", "source", "filter", "match", "label"];
/// Directives allowed inside `<label>`.
pub const IN_LABEL: [&str; 2] = ["filter", "match"];

/// The top-level directives of a configuration, in the order written.
#[derive(Debug)]
pub struct Directives<'a> {
    /// `<system>`, at most one.
    pub system: Option<Section<'a>>,
    /// `<source>` sections.
    pub sources: Vec<Section<'a>>,
    /// Top-level `<filter>` sections.
    pub filters: Vec<Section<'a>>,
    /// Top-level `<match>` sections.
    pub matches: Vec<Section<'a>>,
    /// `<label>` sections.
    pub labels: Vec<Label<'a>>,
}

/// One `<label @NAME>`: its own routing table.
#[derive(Debug)]
pub struct Label<'a> {
    /// The name, `@` included (`@ERROR`).
    pub name: String,
    /// Where the label was opened.
    pub span: Span,
    /// Its `<filter>` sections.
    pub filters: Vec<Section<'a>>,
    /// Its `<match>` sections.
    pub matches: Vec<Section<'a>>,
}

/// Splits the root into directives, reporting unknown directives (with a suggestion), a
/// second `<system>`, parameters outside any section, labels without an `@NAME` or defined
/// twice, and anything but `<filter>` and `<match>` inside a label.
pub fn directives<'a>(root: &'a Element, errors: &Errors) -> Directives<'a> {
    for p in &root.params {
        let msg = format!(
            "parameter '{}' is outside any section{}",
            p.key,
            suggest::hint(&p.key, ["@include"])
        );
        errors.push(Some(p.span.clone()), msg);
    }
    let mut d = Directives {
        system: None,
        sources: Vec::new(),
        filters: Vec::new(),
        matches: Vec::new(),
        labels: Vec::new(),
    };
    let mut label_spans: HashMap<&str, &Span> = HashMap::new();
    for elem in &root.children {
        match elem.name.as_str() {
            "system" => match &d.system {
                Some(first) => {
                    let msg = format!(
                        "only one <system> section is allowed (first at {})",
                        first.span()
                    );
                    errors.push(Some(elem.span.clone()), msg);
                }
                None => d.system = Some(Section::new(elem, errors)),
            },
            "source" => d.sources.push(Section::new(elem, errors)),
            "filter" => d.filters.push(Section::new(elem, errors)),
            "match" => d.matches.push(Section::new(elem, errors)),
            "label" => {
                if let Some(label) = label(elem, errors) {
                    if let Some(first) = label_spans.get(elem.arg.as_str()) {
                        let msg = format!("label {} is defined twice (first at {first})", elem.arg);
                        errors.push(Some(elem.span.clone()), msg);
                    } else {
                        label_spans.insert(&elem.arg, &elem.span);
                    }
                    d.labels.push(label);
                }
            }
            "worker" => errors.push(
                Some(elem.span.clone()),
                "<worker> is not supported: ferry runs one process; remove the <worker> wrapper",
            ),
            other => {
                let msg = format!(
                    "unknown directive <{other}>{}",
                    suggest::hint(other, TOP_LEVEL)
                );
                errors.push(Some(elem.span.clone()), msg);
            }
        }
    }
    d
}

fn label<'a>(elem: &'a Element, errors: &Errors) -> Option<Label<'a>> {
    let name = elem.arg.as_str();
    // Fluentd's names start with '@' by convention only: `<label error_log>` is a label too.
    if name.is_empty() || name == "@" || name.contains([' ', '\t']) {
        let msg = if name.is_empty() {
            "<label> needs a name: <label @NAME>".to_string()
        } else {
            format!("label name '{name}' must be a name without blanks")
        };
        errors.push(Some(elem.span.clone()), msg);
        return None;
    }
    for p in &elem.params {
        let msg = format!(
            "parameter '{}' is not allowed in <label>: only <filter> and <match> are",
            p.key
        );
        errors.push(Some(p.span.clone()), msg);
    }
    let mut label = Label {
        name: name.to_string(),
        span: elem.span.clone(),
        filters: Vec::new(),
        matches: Vec::new(),
    };
    for child in &elem.children {
        match child.name.as_str() {
            "filter" => label.filters.push(Section::new(child, errors)),
            "match" => label.matches.push(Section::new(child, errors)),
            other => {
                let msg = format!(
                    "<{other}> is not allowed in <label {name}>: only <filter> and <match> are{}",
                    suggest::hint(other, IN_LABEL)
                );
                errors.push(Some(child.span.clone()), msg);
            }
        }
    }
    Some(label)
}
