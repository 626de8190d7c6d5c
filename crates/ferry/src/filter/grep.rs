//! `@type grep`: keep or drop events by regular expressions over their fields.
//!
//! Sections, as in Fluentd:
//! - `<regexp> key K pattern /re/ </regexp>`: the event is kept only if every `<regexp>`
//!   matches (AND);
//! - `<exclude> key K pattern /re/ </exclude>`: the event is dropped if any `<exclude>`
//!   matches (OR);
//! - `<and>` holding `<regexp>`s (all must match) or `<exclude>`s (dropped when all match);
//! - `<or>` holding `<regexp>`s (one must match) or `<exclude>`s (dropped when one matches);
//! - the older `regexpN "key pattern"` / `excludeN "key pattern"` parameters (N = 1..20).
//!
//! A field is matched as text (numbers in Ruby's `to_s` form, maps and arrays as JSON); a
//! missing field is the empty string. `key` may be a record accessor (`$.a.b`). A key used
//! twice in the same kind of condition is an error, as in Fluentd.
//!
//! Fields are read in place ([`super::raw`]): a str field is matched on its own bytes (when they
//! are UTF-8), and nothing else of the record is decoded.

use super::Outcome;
use super::accessor::Accessor;
use super::raw::RawRecord;
use ferry_config::Section;

#[derive(Debug, Clone)]
pub struct Expr {
    pub key: Accessor,
    pub pattern: super::Pattern,
}

impl Expr {
    fn matches(&self, record: &RawRecord<'_>) -> bool {
        match self.key.get(record) {
            Some(v) => self.pattern.is_match(&v.text()),
            None => self.pattern.is_match(""),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Grep {
    pub regexp_and: Vec<Expr>,
    pub regexp_or: Vec<Expr>,
    pub exclude_and: Vec<Expr>,
    pub exclude_or: Vec<Expr>,
}

/// How many `regexpN` / `excludeN` parameters Fluentd reads.
const LEGACY_MAX: usize = 20;

impl Grep {
    pub fn from_section(s: &Section<'_>) -> Option<Self> {
        let mut g = Self::default();
        let mut ok = true;
        for i in 1..=LEGACY_MAX {
            let (r, x) = (format!("regexp{i}"), format!("exclude{i}"));
            if let Some(v) = s.str(&r) {
                ok &= push(&mut g.regexp_and, legacy(s, &r, &v), s);
            }
            if let Some(v) = s.str(&x) {
                ok &= push(&mut g.exclude_or, legacy(s, &x, &v), s);
            }
        }
        for r in s.children("regexp") {
            ok &= push(&mut g.regexp_and, expr(&r), &r);
            r.finish();
        }
        for x in s.children("exclude") {
            ok &= push(&mut g.exclude_or, expr(&x), &x);
            x.finish();
        }
        let ands = s.children("and");
        let ors = s.children("or");
        if !ands.is_empty() && !ors.is_empty() {
            s.error(None, "do not specify both <and> and <or>");
            ok = false;
        }
        let groups = ands.into_iter().map(|a| (a, true));
        for (group, is_and) in groups.chain(ors.into_iter().map(|o| (o, false))) {
            let regexps = group.children("regexp");
            let excludes = group.children("exclude");
            if !regexps.is_empty() && !excludes.is_empty() {
                let name = if is_and { "and" } else { "or" };
                group.error(
                    None,
                    format!("do not specify both <regexp> and <exclude> in <{name}>"),
                );
                ok = false;
            }
            for r in regexps {
                let list = if is_and {
                    &mut g.regexp_and
                } else {
                    &mut g.regexp_or
                };
                ok &= push(list, expr(&r), &r);
                r.finish();
            }
            for x in excludes {
                let list = if is_and {
                    &mut g.exclude_and
                } else {
                    &mut g.exclude_or
                };
                ok &= push(list, expr(&x), &x);
                x.finish();
            }
            group.finish();
        }
        ok.then_some(g)
    }

    pub fn apply(&self, record: &RawRecord<'_>) -> Outcome {
        if self.keeps(record) {
            Outcome::keep()
        } else {
            Outcome::drop()
        }
    }

    fn keeps(&self, record: &RawRecord<'_>) -> bool {
        let hit = |e: &Expr| e.matches(record);
        if !self.regexp_and.iter().all(hit) {
            return false;
        }
        if !self.regexp_or.is_empty() && !self.regexp_or.iter().any(hit) {
            return false;
        }
        if !self.exclude_and.is_empty() && self.exclude_and.iter().all(hit) {
            return false;
        }
        !self.exclude_or.iter().any(hit)
    }
}

/// Adds `e` unless its key is already in `list`; false when `e` is missing or a duplicate.
fn push(list: &mut Vec<Expr>, e: Option<Expr>, s: &Section<'_>) -> bool {
    match e {
        Some(e) if list.iter().any(|x| x.key.source() == e.key.source()) => {
            s.error(None, format!("duplicate key: {}", e.key.source()));
            false
        }
        Some(e) => {
            list.push(e);
            true
        }
        None => false,
    }
}

/// A `<regexp>` or `<exclude>` section.
fn expr(s: &Section<'_>) -> Option<Expr> {
    let key = s.required_str("key");
    let pattern = s.required_str("pattern");
    build(s, "key", &key?, "pattern", &pattern?)
}

fn legacy(s: &Section<'_>, param: &str, value: &str) -> Option<Expr> {
    match value.split_once(' ') {
        Some((k, p)) => build(s, param, k, param, p.trim()),
        None => {
            s.error(Some(param), format!("{param} must be \"KEY PATTERN\""));
            None
        }
    }
}

fn build(
    s: &Section<'_>,
    key_param: &str,
    key: &str,
    pat_param: &str,
    pattern: &str,
) -> Option<Expr> {
    let key = Accessor::parse(key)
        .map_err(|e| s.error(Some(key_param), e))
        .ok()?;
    let pattern = super::ruby_regex(pattern, false, false)
        .map_err(|e| s.error(Some(pat_param), e))
        .ok()?;
    Some(Expr {
        key,
        pattern: super::Pattern::new(pattern),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::read_section;
    use crate::record::str_value;
    use ferry_proto::msgpack::Value;

    fn grep(conf: &str) -> Grep {
        read_section(conf, Grep::from_section).unwrap().unwrap()
    }

    fn rec(pairs: &[(&str, &str)]) -> Vec<(Value, Value)> {
        pairs
            .iter()
            .map(|(k, v)| (str_value(k), str_value(v)))
            .collect()
    }

    fn verdict(g: &Grep, pairs: Vec<(Value, Value)>) -> super::super::Verdict {
        let bytes = Value::Map(pairs).to_bytes();
        let mut record = RawRecord::new();
        record.load(&bytes).unwrap();
        g.apply(&record).verdict
    }

    fn kept(g: &Grep, pairs: &[(&str, &str)]) -> bool {
        verdict(g, rec(pairs)) == super::super::Verdict::Keep
    }

    #[test]
    fn regexp_sections_must_all_match_and_any_exclude_drops() {
        let g = grep(
            "<filter>\n<regexp>\nkey level\npattern /^(warn|error)$/\n</regexp>\n\
             <regexp>\nkey $.host\npattern web\n</regexp>\n\
             <exclude>\nkey path\npattern /health/\n</exclude>\n</filter>",
        );
        assert!(kept(
            &g,
            &[("level", "warn"), ("host", "web1"), ("path", "/a")]
        ));
        assert!(!kept(&g, &[("level", "info"), ("host", "web1")]));
        assert!(!kept(&g, &[("level", "error"), ("host", "db1")]));
        assert!(!kept(
            &g,
            &[("level", "error"), ("host", "web1"), ("path", "/healthz")]
        ));
    }

    #[test]
    fn and_excludes_drop_only_when_all_match_and_or_regexps_need_one() {
        let and = grep(
            "<filter>\n<and>\n<exclude>\nkey a\npattern x\n</exclude>\n\
             <exclude>\nkey b\npattern y\n</exclude>\n</and>\n</filter>",
        );
        assert!(kept(&and, &[("a", "x"), ("b", "n")]));
        assert!(!kept(&and, &[("a", "x"), ("b", "y")]));
        let or = grep(
            "<filter>\n<or>\n<regexp>\nkey a\npattern x\n</regexp>\n\
             <regexp>\nkey b\npattern y\n</regexp>\n</or>\n</filter>",
        );
        assert!(kept(&or, &[("a", "n"), ("b", "y")]));
        assert!(!kept(&or, &[("a", "n"), ("b", "n")]));
    }

    #[test]
    fn missing_fields_match_as_empty_text_and_numbers_as_their_text() {
        let g = grep("<filter>\n<regexp>\nkey code\npattern ^$\n</regexp>\n</filter>");
        assert!(kept(&g, &[("other", "1")]));
        let g = grep("<filter>\nregexp1 code ^5\\d\\d$\n</filter>");
        assert!(
            verdict(&g, vec![(str_value("code"), Value::UInt(503))]) == super::super::Verdict::Keep
        );
        assert!(
            verdict(&g, vec![(str_value("code"), Value::UInt(200))]) == super::super::Verdict::Drop
        );
    }

    #[test]
    fn legacy_exclude_parameters_drop_matching_events() {
        let g = grep("<filter>\nexclude1 path ^/health\nexclude2 level debug\n</filter>");
        assert!(kept(&g, &[("path", "/api"), ("level", "info")]));
        assert!(!kept(&g, &[("path", "/healthz"), ("level", "info")]));
        assert!(!kept(&g, &[("path", "/api"), ("level", "debug")]));
    }

    #[test]
    fn contradictory_or_invalid_conditions_are_configuration_errors() {
        let bad = |conf: &str| read_section(conf, Grep::from_section).is_err();
        assert!(bad(
            "<filter>\n<regexp>\nkey a\npattern (\n</regexp>\n</filter>"
        ));
        assert!(bad(
            "<filter>\n<regexp>\nkey a\npattern x\n</regexp>\n<regexp>\nkey a\npattern y\n</regexp>\n</filter>"
        ));
        assert!(bad(
            "<filter>\n<and>\n<regexp>\nkey a\npattern x\n</regexp>\n</and>\n<or>\n<regexp>\nkey b\npattern x\n</regexp>\n</or>\n</filter>"
        ));
        assert!(bad(
            "<filter>\n<and>\n<regexp>\nkey a\npattern x\n</regexp>\n<exclude>\nkey b\npattern x\n</exclude>\n</and>\n</filter>"
        ));
        assert!(bad("<filter>\n<regexp>\nkey a\n</regexp>\n</filter>"));
    }
}
