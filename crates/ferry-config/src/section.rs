//! [`Section`]: the typed reader a plugin uses over its element.
//!
//! Every accessor records the key it asked for. A value that does not parse is reported at the
//! parameter's line and the accessor falls back to its default, so reading goes on and every
//! mistake is collected. [`Section::finish`] then reports, at their lines, the parameters and
//! sections nobody asked for (with a suggestion among the keys that were asked for) and keys
//! written twice.
//!
//! A parameter whose value is Fluentd's `use_default` or `use_nil` ([`Unset`]) is absent to
//! every reader: it takes the reader's default, and a required one is reported missing. It is
//! still a written key, so a misspelt or repeated one is reported.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::error::{Errors, Span};
use crate::suggest;
use crate::tree::{Element, Param, Unset};
use crate::units::{self, ByteSize};

/// A typed reader over one [`Element`], reporting into a shared [`Errors`] sink.
#[derive(Debug)]
pub struct Section<'a> {
    elem: &'a Element,
    errors: Errors,
    read_keys: RefCell<BTreeSet<String>>,
    read_children: RefCell<BTreeSet<String>>,
    /// v0.12 names read in place of `@type` and `@id` (a deprecation warning at `finish`).
    aliases: RefCell<BTreeSet<(&'static str, &'static str)>>,
}

/// Records `name`; true when it was not recorded before.
fn remember(set: &RefCell<BTreeSet<String>>, name: &str) -> bool {
    let mut set = set.borrow_mut();
    !set.contains(name) && set.insert(name.to_string())
}

impl<'a> Section<'a> {
    /// A reader over `elem` reporting into `errors`.
    pub fn new(elem: &'a Element, errors: &Errors) -> Self {
        Section {
            elem,
            errors: errors.clone(),
            read_keys: RefCell::new(BTreeSet::new()),
            read_children: RefCell::new(BTreeSet::new()),
            aliases: RefCell::new(BTreeSet::new()),
        }
    }

    /// The section name (`match`, `buffer`, ...).
    pub fn name(&self) -> &str {
        &self.elem.name
    }

    /// The section argument (tag pattern, label name, chunk keys); empty when absent.
    pub fn arg(&self) -> &str {
        &self.elem.arg
    }

    /// Where the section was opened.
    pub fn span(&self) -> &Span {
        &self.elem.span
    }

    /// The element being read.
    pub fn element(&self) -> &'a Element {
        self.elem
    }

    /// The sink this reader reports into.
    pub fn errors(&self) -> &Errors {
        &self.errors
    }

    /// The last parameter named `key` when it has a value (is not [`Unset`]); records `key`.
    fn lookup(&self, key: &str) -> Option<&'a Param> {
        remember(&self.read_keys, key);
        self.elem.param(key).filter(|p| p.unset.is_none())
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.lookup(key).map(|p| p.value.as_str())
    }

    /// True when `key` is written with a value (not [`Unset`]).
    pub fn has(&self, key: &str) -> bool {
        self.lookup(key).is_some()
    }

    /// `@type`, or Fluentd's older alias `type`.
    pub fn plugin_type(&self) -> Option<&'a str> {
        self.aliased("@type", "type")
    }

    /// `new`, else `old` (remembered for the deprecation warning).
    fn aliased(&self, new: &'static str, old: &'static str) -> Option<&'a str> {
        if let Some(v) = self.get(new) {
            return Some(v);
        }
        let v = self.get(old)?;
        self.aliases.borrow_mut().insert((old, new));
        Some(v)
    }

    /// `@id`, or Fluentd's older alias `id`.
    pub fn id(&self) -> Option<&'a str> {
        self.aliased("@id", "id")
    }

    /// `@label`.
    pub fn label(&self) -> Option<&'a str> {
        self.get("@label")
    }

    /// `@log_level`.
    pub fn log_level(&self) -> Option<&'a str> {
        self.get("@log_level")
    }

    /// Every parameter that has a value, in the order written, all keys recorded as known (an
    /// [`Unset`] one too): for free-form sections such as record_transformer's `<record>`,
    /// whose keys are data.
    pub fn params(&self) -> impl Iterator<Item = &'a Param> + use<'a> {
        for p in &self.elem.params {
            remember(&self.read_keys, &p.key);
        }
        self.elem.params.iter().filter(|p| p.unset.is_none())
    }

    /// The value of `key` as a string.
    pub fn str(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_string)
    }

    /// The value of `key`; when absent, reports "missing required parameter" (at the
    /// parameter's line when it is written as [`Unset`]).
    pub fn required_str(&self, key: &str) -> Option<String> {
        let v = self.str(key);
        if v.is_none() {
            let name = self.name();
            let unset: Option<(Unset, &Span)> =
                self.elem.param(key).and_then(|p| Some((p.unset?, &p.span)));
            match unset {
                Some((unset, span)) => {
                    let msg = format!(
                        "missing required parameter '{key}' in <{name}>: {unset} gives it no value"
                    );
                    self.errors.push(Some(span.clone()), msg);
                }
                None => {
                    let msg = format!("missing required parameter '{key}' in <{name}>");
                    self.errors.push(Some(self.elem.span.clone()), msg);
                }
            }
        }
        v
    }

    /// The value of `key`, or `default`.
    pub fn str_or(&self, key: &str, default: &str) -> String {
        self.str(key).unwrap_or_else(|| default.to_string())
    }

    fn typed<T>(&self, key: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let p = self.lookup(key)?;
        match parse(&p.value) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = format!("invalid value for '{key}' in <{}>: {e}", self.name());
                self.errors.push(Some(p.span.clone()), msg);
                None
            }
        }
    }

    /// `key` as a boolean (`true`/`yes`/`false`/`no`; the key alone is true).
    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        self.typed(key, units::parse_bool)
    }

    /// `key` as a boolean, or `default`.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        self.opt_bool(key).unwrap_or(default)
    }

    /// `key` as a non-negative integer.
    pub fn opt_u64(&self, key: &str) -> Option<u64> {
        self.typed(key, |v| {
            v.trim()
                .parse()
                .map_err(|_| format!("'{v}' is not a non-negative integer"))
        })
    }

    /// `key` as a non-negative integer, or `default`.
    pub fn u64_or(&self, key: &str, default: u64) -> u64 {
        self.opt_u64(key).unwrap_or(default)
    }

    /// `key` as a port number (at most 65535), or `default`.
    pub fn port_or(&self, key: &str, default: u16) -> u16 {
        u16::try_from(self.u64_or(key, u64::from(default))).unwrap_or_else(|_| {
            self.error(Some(key), "a port is at most 65535");
            default
        })
    }

    /// `key` as an integer.
    pub fn opt_i64(&self, key: &str) -> Option<i64> {
        self.typed(key, |v| {
            v.trim()
                .parse()
                .map_err(|_| format!("'{v}' is not an integer"))
        })
    }

    /// `key` as an integer, or `default`.
    pub fn i64_or(&self, key: &str, default: i64) -> i64 {
        self.opt_i64(key).unwrap_or(default)
    }

    /// `key` as a finite number.
    pub fn opt_f64(&self, key: &str) -> Option<f64> {
        self.typed(key, |v| match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            _ => Err(format!("'{v}' is not a number")),
        })
    }

    /// `key` as a finite number, or `default`.
    pub fn f64_or(&self, key: &str, default: f64) -> f64 {
        self.opt_f64(key).unwrap_or(default)
    }

    /// `key` as a size (`8m`, `1g`, ...).
    pub fn opt_size(&self, key: &str) -> Option<ByteSize> {
        self.typed(key, units::parse_size)
    }

    /// `key` as a size, or `default`.
    pub fn size_or(&self, key: &str, default: ByteSize) -> ByteSize {
        self.opt_size(key).unwrap_or(default)
    }

    /// `key` as a duration (`60`, `1.5`, `10s`, `5m`, `1h`, `2d`, `500ms`).
    pub fn opt_duration(&self, key: &str) -> Option<Duration> {
        // Fluentd reads a duration that is not a number as a float, and Ruby's `"nil".to_f` is
        // 0: its own examples write `expire_dns_cache nil`. Read the same way, and said.
        if let Some(p) = self.lookup(key)
            && p.value == "nil"
        {
            self.errors.note(
                Some(p.span.clone()),
                format!("'{key} nil' is read as 0, as Fluentd reads it; write 0, or remove the line for the default"),
            );
            return Some(Duration::ZERO);
        }
        self.typed(key, units::parse_duration)
    }

    /// `key` as a duration, or `default`.
    pub fn duration_or(&self, key: &str, default: Duration) -> Duration {
        self.opt_duration(key).unwrap_or(default)
    }

    /// `key` as one of `allowed`, or `default` when absent; another value is reported with
    /// the allowed list and a suggestion.
    pub fn enum_or<'k>(&self, key: &str, allowed: &[&'k str], default: &'k str) -> &'k str {
        self.opt_enum(key, allowed).unwrap_or(default)
    }

    /// `key` as one of `allowed`.
    pub fn opt_enum<'k>(&self, key: &str, allowed: &[&'k str]) -> Option<&'k str> {
        self.typed(key, |v| match allowed.iter().find(|a| **a == v) {
            Some(a) => Ok(*a),
            None => Err(format!(
                "'{v}' is not one of {}{}",
                allowed.join(", "),
                suggest::hint(v, allowed.iter().copied())
            )),
        })
    }

    /// `key` as an array: a JSON array or a comma-separated list.
    pub fn array(&self, key: &str) -> Option<Vec<String>> {
        self.typed(key, units::parse_array)
    }

    /// `key` as a hash: a JSON object or `k1:v1,k2:v2`, in the order written.
    pub fn hash(&self, key: &str) -> Option<Vec<(String, String)>> {
        self.typed(key, units::parse_hash)
    }

    /// Where `key` is written, or the section's span when it is absent.
    pub fn param_span(&self, key: &str) -> Span {
        match self.elem.param(key) {
            Some(p) => p.span.clone(),
            None => self.elem.span.clone(),
        }
    }

    /// Reports `msg` at the line of `key` (or of the section).
    pub fn error(&self, key: Option<&str>, msg: impl Into<String>) {
        let span = match key {
            Some(key) => self.param_span(key),
            None => self.elem.span.clone(),
        };
        self.errors.push(Some(span), msg);
    }

    /// A Fluentd parameter that ferry accepts so that configurations load, but that has no
    /// effect in ferry: when `key` is set, it is marked read and a note at its line says so
    /// and what ferry does `instead`.
    pub fn no_effect(&self, key: &str, instead: &str) {
        if self.get(key).is_some() {
            let span = self.param_span(key);
            self.errors.note(
                Some(span),
                format!("'{key}' has no effect in ferry: {instead}"),
            );
        }
    }

    /// A warning about what `key`, when written, makes ferry do: printed with its file:line at
    /// start and by `--dry-run`, as the notes of [`Section::no_effect`] are.
    pub fn warn(&self, key: &str, message: &str) {
        if self.get(key).is_some() {
            let span = self.param_span(key);
            self.errors.note(Some(span), message);
        }
    }

    /// A Fluentd switch ferry accepts where ferry always behaves as `ferry_does`: noted (see
    /// [`Section::no_effect`]) only when it is set to the other value.
    pub fn no_effect_unless(&self, key: &str, ferry_does: bool, instead: &str) {
        if self.opt_bool(key).is_some_and(|v| v != ferry_does) {
            self.no_effect(key, instead);
        }
    }

    /// The child section `name`; a second one is reported.
    pub fn child(&self, name: &str) -> Option<Section<'a>> {
        let first_read = remember(&self.read_children, name);
        let mut found = self.elem.children_named(name);
        let first = found.next()?;
        if first_read {
            for extra in found {
                let msg = format!(
                    "only one <{name}> section is allowed in <{}> (first at {})",
                    self.name(),
                    first.span
                );
                self.errors.push(Some(extra.span.clone()), msg);
            }
        }
        Some(Section::new(first, &self.errors))
    }

    /// Every child section `name`, in order.
    pub fn children(&self, name: &str) -> Vec<Section<'a>> {
        remember(&self.read_children, name);
        self.elem
            .children_named(name)
            .map(|c| Section::new(c, &self.errors))
            .collect()
    }

    /// Ends reading without reporting unread parameters: for a section whose plugin type is
    /// itself an error, where "unknown parameter" lines would only repeat that one mistake.
    pub fn abandon(self) {}

    /// Reports every parameter and child section nobody read, and keys written twice.
    pub fn finish(self) {
        // Fluentd v1 still reads the v0.12 names, with its own deprecation warning.
        for (old, new) in self.aliases.borrow().iter() {
            self.errors.note(
                Some(self.param_span(old)),
                format!("'{old}' is deprecated parameter name. use '{new}' instead."),
            );
        }
        let keys = self.read_keys.borrow();
        let known = || keys.iter().map(String::as_str);
        let mut first_seen: HashMap<&str, &Span> = HashMap::new();
        for p in &self.elem.params {
            if !keys.contains(&p.key) {
                let msg = format!(
                    "unknown parameter '{}' in <{}>{}",
                    p.key,
                    self.name(),
                    suggest::hint(&p.key, known())
                );
                self.errors.push(Some(p.span.clone()), msg);
            } else if let Some(first) = first_seen.get(p.key.as_str()) {
                let msg = format!(
                    "parameter '{}' is written twice in <{}> (first at {first})",
                    p.key,
                    self.name(),
                );
                self.errors.push(Some(p.span.clone()), msg);
            } else {
                first_seen.insert(&p.key, &p.span);
            }
        }
        let sections = self.read_children.borrow();
        for c in &self.elem.children {
            if !sections.contains(&c.name) {
                let msg = format!(
                    "unknown section <{}> in <{}>{}",
                    c.name,
                    self.name(),
                    suggest::hint(&c.name, sections.iter().map(String::as_str))
                );
                self.errors.push(Some(c.span.clone()), msg);
            }
        }
    }
}
