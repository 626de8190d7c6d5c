//! The parsed tree: [`Element`]s holding [`Param`]s and child elements, each with its
//! [`Span`], in the order written. `Display` prints an element back in Fluentd syntax, quoting
//! only where needed; parsing that text gives the same tree.

use std::fmt;

use crate::error::Span;

/// One `key value` line. `value` is final: unquoted, unescaped, `"#{...}"` evaluated, JSON
/// arrays and hashes in compact form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The key, `@` included for `@type`, `@id`, `@label`, `@log_level`.
    pub key: String,
    /// The value; empty when the key stands alone, and when `unset` is set.
    pub value: String,
    /// Set when the value evaluated to Fluentd's `use_default` or `use_nil`: the parameter is
    /// written (so a misspelt or repeated key is still reported) but has no value, and
    /// [`Element::value`] and every [`Section`](crate::Section) reader treat it as absent.
    pub unset: Option<Unset>,
    /// Where the key was written.
    pub span: Span,
}

/// Fluentd's `use_default` and `use_nil`: a parameter written so that it counts as not
/// written, typically `"#{ENV['X'] || use_default}"` to fall back to the plugin's default when
/// a variable is unset.
///
/// Both make the parameter absent to its reader, so it takes the default the reader gives it,
/// and a required parameter is reported missing. Fluentd refuses `use_nil` for a parameter
/// whose default is not `nil`; ferry's readers have no `nil`, so there `use_nil` also gives the
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unset {
    /// `use_default`: the parameter takes its default, as if it were not written.
    Default,
    /// `use_nil`: the parameter has no value.
    Nil,
}

impl Unset {
    /// The Ruby name that produces it.
    pub fn name(self) -> &'static str {
        match self {
            Unset::Default => "use_default",
            Unset::Nil => "use_nil",
        }
    }
}

impl fmt::Display for Unset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A section: `<name arg>` ... `</name>`. The root of a file is named `ROOT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// `source`, `match`, `buffer`, ...
    pub name: String,
    /// The text between the name and `>` (the tag pattern of `<match>`, the label of
    /// `<label>`, chunk keys of `<buffer>`); empty when absent.
    pub arg: String,
    /// Parameters in the order written.
    pub params: Vec<Param>,
    /// Nested sections in the order written.
    pub children: Vec<Element>,
    /// Where the open tag was written.
    pub span: Span,
}

/// Name of the element that holds a whole file.
pub const ROOT: &str = "ROOT";

impl Element {
    /// An empty element.
    pub fn new(name: impl Into<String>, arg: impl Into<String>, span: Span) -> Self {
        Element {
            name: name.into(),
            arg: arg.into(),
            params: Vec::new(),
            children: Vec::new(),
            span,
        }
    }

    /// The last parameter named `key` (as in Fluentd, a later line overrides an earlier one),
    /// including one written with `use_default` or `use_nil` (see [`Param::unset`]).
    pub fn param(&self, key: &str) -> Option<&Param> {
        self.params.iter().rev().find(|p| p.key == key)
    }

    /// The value of the last parameter named `key`; `None` when it is not written or is
    /// [`Unset`].
    pub fn value(&self, key: &str) -> Option<&str> {
        self.param(key)
            .filter(|p| p.unset.is_none())
            .map(|p| p.value.as_str())
    }

    /// The first child section named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child section named `name`, in order.
    pub fn children_named<'e, 'n>(
        &'e self,
        name: &'n str,
    ) -> impl Iterator<Item = &'e Element> + use<'e, 'n> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// True when both trees have the same names, arguments, parameters and children in the
    /// same order, wherever they were written (spans are ignored). A reload whose tree has
    /// the same content changes nothing.
    pub fn same_content(&self, other: &Element) -> bool {
        self.name == other.name
            && self.arg == other.arg
            && self.params.len() == other.params.len()
            && self
                .params
                .iter()
                .zip(&other.params)
                .all(|(a, b)| a.key == b.key && a.value == b.value && a.unset == b.unset)
            && self.children.len() == other.children.len()
            && self
                .children
                .iter()
                .zip(&other.children)
                .all(|(a, b)| a.same_content(b))
    }

    fn print(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let indent = "  ".repeat(depth);
        for p in &self.params {
            let value = match p.unset {
                Some(unset) => format!("\"#{{{unset}}}\""),
                None => value_text(&p.value),
            };
            writeln!(f, "{indent}{} {value}", key_text(&p.key))?;
        }
        for c in &self.children {
            if c.arg.is_empty() {
                writeln!(f, "{indent}<{}>", c.name)?;
            } else {
                writeln!(f, "{indent}<{} {}>", c.name, arg_text(&c.arg))?;
            }
            c.print(f, depth + 1)?;
            writeln!(f, "{indent}</{}>", c.name)?;
        }
        Ok(())
    }
}

impl fmt::Display for Element {
    /// The element in Fluentd syntax: the root prints its content, any other element prints
    /// itself with its tags.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == ROOT {
            self.print(f, 0)
        } else {
            let wrapper = Element {
                name: ROOT.to_string(),
                arg: String::new(),
                params: Vec::new(),
                children: vec![self.clone()],
                span: self.span.clone(),
            };
            wrapper.print(f, 0)
        }
    }
}

/// `s` as a double-quoted Fluentd string that reads back as `s`.
pub fn double_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '#' => out.push_str("\\#"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '\u{8}' => out.push_str("\\b"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

fn blank_edges(s: &str) -> bool {
    s.starts_with([' ', '\t']) || s.ends_with([' ', '\t'])
}

fn key_text(key: &str) -> String {
    let plain = !key.is_empty()
        && !key.contains([' ', '\t', '\r', '\n'])
        && !key.starts_with(['"', '\'', '<', '#']);
    if plain {
        key.to_string()
    } else {
        double_quote(key)
    }
}

fn value_text(value: &str) -> String {
    let plain = !value.is_empty()
        && !has_line_break(value)
        && !blank_edges(value)
        && !value.starts_with(['"', '\'', '[', '{'])
        && !value.contains(" #")
        && !value.contains("\t#");
    if plain {
        value.to_string()
    } else {
        double_quote(value)
    }
}

fn arg_text(arg: &str) -> String {
    let plain = !has_line_break(arg)
        && !blank_edges(arg)
        && !arg.contains('>')
        && !arg.starts_with(['"', '\'']);
    if plain {
        arg.to_string()
    } else {
        double_quote(arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn span() -> Span {
        Span::new(Arc::new(PathBuf::from("t.conf")), 1)
    }

    fn param(key: &str, value: &str) -> Param {
        Param {
            key: key.into(),
            value: value.into(),
            unset: None,
            span: span(),
        }
    }

    #[test]
    fn printing_quotes_only_what_needs_it() {
        let mut m = Element::new("match", "a.** b", span());
        m.params.push(param("@type", "forward"));
        m.params.push(param("path", "/var/log/a#b"));
        m.params.push(param("note", "x #y"));
        m.params.push(param("empty", ""));
        m.params.push(param("json", "[1]"));
        m.params.push(param("multi", "l1\nl2"));
        m.params.push(param("my key", "v"));
        let mut b = Element::new("buffer", "", span());
        b.params.push(param("chunk_limit_size", "8m"));
        m.children.push(b);
        let text = m.to_string();
        assert_eq!(
            text,
            "<match a.** b>\n  @type forward\n  path /var/log/a#b\n  note \"x \\#y\"\n  \
             empty \"\"\n  json \"[1]\"\n  multi \"l1\\nl2\"\n  \"my key\" v\n  <buffer>\n    \
             chunk_limit_size 8m\n  </buffer>\n</match>\n"
        );
    }

    #[test]
    fn lookups_use_the_last_param_and_first_child() {
        let mut e = Element::new("source", "", span());
        e.params.push(param("port", "1"));
        e.params.push(param("port", "2"));
        e.children.push(Element::new("server", "a", span()));
        e.children.push(Element::new("server", "b", span()));
        assert_eq!(e.value("port"), Some("2"));
        assert_eq!(e.child("server").map(|c| c.arg.as_str()), Some("a"));
        assert_eq!(e.children_named("server").count(), 2);
    }

    #[test]
    fn same_content_ignores_spans_but_not_values() {
        let mut a = Element::new("source", "", span());
        a.params.push(param("port", "1"));
        let mut b = a.clone();
        b.span.line = 9;
        b.params[0].span.line = 10;
        assert!(a.same_content(&b));
        b.params[0].value = "2".into();
        assert!(!a.same_content(&b));
    }
}
