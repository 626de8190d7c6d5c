//! `@type parser`: parse one field of each record (`key_name`) with a `<parse>` section and
//! replace the record (or merge into it, `reserve_data`) with the fields found.
//!
//! Parameters are Fluentd's: `key_name` (a field name or record accessor), `reserve_data`,
//! `reserve_time`, `remove_key_name_field` (only when parsing succeeded), `inject_key_prefix`,
//! `hash_value_field`, `emit_invalid_record_to_error` (default true), and
//! `replace_invalid_sequence` (accepted: invalid UTF-8 is always replaced).
//!
//! What happens to an event, as in Fluentd:
//!
//! | the field | event | copy to `@ERROR` |
//! |---|---|---|
//! | parsed | fields (merged with the record when `reserve_data`); time from the text unless `reserve_time` | no |
//! | missing | kept unchanged with `reserve_data`, else dropped | yes |
//! | text that does not match (regexp) | kept unchanged with `reserve_data`, else dropped | yes |
//! | unreadable (bad JSON, bad time, not a string) | dropped | yes |
//!
//! "Copy to `@ERROR`" applies when `emit_invalid_record_to_error` is true (the default); the
//! copy is the record as this filter received it.
//!
//! The parsers are a small set kept in this module ([`text`]: `json`, `regexp`, `ltsv`,
//! `none`), with Fluentd's common `<parse>` parameters. The tail input has its own, fuller set
//! of parsers; this filter reads `<parse>` through [`TextParser`] alone, so moving it onto
//! that set later changes only [`text`].

pub mod json;
pub mod text;
pub mod time;

use super::accessor::Accessor;
use super::{Outcome, Verdict};
use crate::record::{self, str_value};
use ferry_config::Section;
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;
pub use text::{Parsed, TextParser};

#[derive(Debug, Clone)]
pub struct ParserFilter {
    pub key_name: Accessor,
    pub reserve_data: bool,
    pub reserve_time: bool,
    pub remove_key_name_field: bool,
    pub inject_key_prefix: Option<String>,
    pub hash_value_field: Option<String>,
    pub emit_invalid_record_to_error: bool,
    pub parser: TextParser,
}

impl ParserFilter {
    pub fn from_section(s: &Section<'_>) -> Option<Self> {
        let key_name = s.required_str("key_name").and_then(|k| {
            Accessor::parse(&k)
                .map_err(|e| s.error(Some("key_name"), e))
                .ok()
        });
        let reserve_data = s.bool_or("reserve_data", false);
        let reserve_time = s.bool_or("reserve_time", false);
        let remove_key_name_field = s.bool_or("remove_key_name_field", false);
        let inject_key_prefix = s.str("inject_key_prefix");
        let hash_value_field = s.str("hash_value_field");
        let emit_invalid_record_to_error = s.bool_or("emit_invalid_record_to_error", true);
        let _ = s.opt_bool("replace_invalid_sequence");
        let parser = match s.child("parse") {
            Some(p) => {
                let parser = TextParser::from_section(&p);
                match parser {
                    Some(_) => p.finish(),
                    None => p.abandon(),
                }
                parser
            }
            None => {
                s.error(None, "the parser filter needs a <parse> section");
                None
            }
        };
        Some(Self {
            key_name: key_name?,
            reserve_data,
            reserve_time,
            remove_key_name_field,
            inject_key_prefix,
            hash_value_field,
            emit_invalid_record_to_error,
            parser: parser?,
        })
    }

    pub fn apply(&self, time: &mut EventTime, rec: &mut Vec<(Value, Value)>) -> Outcome {
        let failed = |reason: String, keep: bool| Outcome {
            verdict: if keep { Verdict::Keep } else { Verdict::Drop },
            modified: false,
            error: self.emit_invalid_record_to_error.then_some(reason),
        };
        let raw = match self.key_name.get(rec) {
            None => {
                let reason = format!("{} does not exist", self.key_name.source());
                if self.reserve_data && self.hash_value_field.is_some() {
                    let mut out = failed(reason, true);
                    out.modified = self.merge(rec, Vec::new());
                    return out;
                }
                return failed(reason, self.reserve_data);
            }
            Some(Value::Str(s)) => String::from_utf8_lossy(s).into_owned(),
            Some(other) => {
                let reason = format!(
                    "parse failed: value of {} is not a string: {}",
                    self.key_name.source(),
                    other.to_json_string()
                );
                return failed(reason, false);
            }
        };
        match self.parser.parse(&raw) {
            Ok(Parsed::Record {
                time: parsed_time,
                record: values,
            }) => {
                if !self.reserve_time
                    && let Some(t) = parsed_time
                {
                    *time = t;
                }
                if self.reserve_data && self.remove_key_name_field {
                    self.key_name.delete(rec);
                }
                self.merge(rec, values);
                Outcome::modified()
            }
            Ok(Parsed::NoMatch) => {
                let reason = format!("pattern not matched with data '{raw}'");
                let mut out = failed(reason, self.reserve_data);
                if self.reserve_data && self.hash_value_field.is_some() {
                    out.modified = self.merge(rec, Vec::new());
                }
                out
            }
            Err(e) => failed(format!("parse failed {e}"), false),
        }
    }

    /// Fluentd's `handle_parsed`: prefix, wrap, then replace or merge. Returns true.
    fn merge(&self, rec: &mut Vec<(Value, Value)>, values: Vec<(Value, Value)>) -> bool {
        let mut values = values;
        if let Some(prefix) = &self.inject_key_prefix {
            for (k, _) in values.iter_mut() {
                let key = format!("{prefix}{}", record::text(k));
                *k = str_value(&key);
            }
        }
        if let Some(field) = &self.hash_value_field {
            values = vec![(str_value(field), Value::Map(values))];
        }
        if self.reserve_data {
            for (k, v) in values {
                let key = record::text(&k).into_owned();
                record::set(rec, &key, v);
            }
        } else {
            *rec = values;
        }
        true
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
