//! `@type parser`: parse one field of each record (`key_name`) with a `<parse>` section and
//! replace the record (or merge into it, `reserve_data`) with the fields found.
//!
//! Parameters are Fluentd's: `key_name` (a field name or record accessor), `reserve_data`,
//! `reserve_time`, `remove_key_name_field` (only when parsing succeeded), `inject_key_prefix`,
//! `hash_value_field`, `emit_invalid_record_to_error` (default true), and
//! `replace_invalid_sequence` (accepted with a warning: bytes that are not UTF-8 are parsed as
//! they are).
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
//! `<parse>` is read by [`crate::parse::ParseSetup`], the one parser set of ferry: every type
//! and parameter the tail input takes (json, regexp, apache2, nginx, syslog, ltsv, csv, tsv,
//! cri, none, multiline's `format1..N`; `types`, the time parameters, `null_value_pattern`,
//! `null_empty_string`, `estimate_current_event`).

use super::accessor::Accessor;
use super::{Outcome, Verdict};
use crate::parse::{ParseError, ParseSetup, Record};
use crate::record::{self, str_value};
use ferry_config::Section;
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;

#[derive(Debug, Clone)]
pub struct ParserFilter {
    pub key_name: Accessor,
    pub reserve_data: bool,
    pub reserve_time: bool,
    pub remove_key_name_field: bool,
    pub inject_key_prefix: Option<String>,
    pub hash_value_field: Option<String>,
    pub emit_invalid_record_to_error: bool,
    pub parser: ParseSetup,
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
        s.no_effect(
            "replace_invalid_sequence",
            "bytes that are not UTF-8 are parsed as they are: regexp-based parsers keep them, json refuses them",
        );
        let parser = match s.child("parse") {
            Some(p) => {
                let parser = ParseSetup::from_section(&p);
                p.finish();
                Some(parser)
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
            Some(Value::Str(s)) => s.clone(),
            Some(other) => {
                let reason = format!(
                    "parse failed: value of {} is not a string: {}",
                    self.key_name.source(),
                    other.to_json_string()
                );
                return failed(reason, false);
            }
        };
        let mut parsed = Record::new();
        match self.parser.parse(&raw, &mut parsed) {
            Ok(parsed_time) => {
                if !self.reserve_time {
                    match parsed_time {
                        Some(t) => *time = t,
                        None if self.parser.estimate_current_event => *time = EventTime::now(),
                        None => {}
                    }
                }
                if self.reserve_data && self.remove_key_name_field {
                    self.key_name.delete(rec);
                }
                self.merge(rec, parsed.pairs().collect());
                Outcome::modified()
            }
            Err(ParseError::NoMatch) => {
                let raw = String::from_utf8_lossy(&raw);
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
