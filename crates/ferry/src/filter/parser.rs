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
//!
//! The field is read in place and the record edited in place ([`super::raw`]): the parsed fields
//! are msgpack already, and are copied into the record as they are.

use super::accessor::Accessor;
use super::raw::{RawRecord, RawValue};
use super::{Event, Outcome, Verdict};
use crate::parse::{ParseError, ParseSetup, Record};
use bytes::{BufMut, BytesMut};
use ferry_config::Section;
use ferry_proto::msgpack;
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

    pub fn apply(&self, event: &mut Event<'_>) -> Outcome {
        let Event {
            time,
            record: rec,
            scratch,
        } = event;
        let failed = |reason: String, keep: bool| Outcome {
            verdict: if keep { Verdict::Keep } else { Verdict::Drop },
            modified: false,
            error: self.emit_invalid_record_to_error.then_some(reason),
        };
        let parsed = &mut scratch.parsed;
        let result = match self.key_name.get(rec) {
            None => {
                let reason = format!("{} does not exist", self.key_name.source());
                if self.reserve_data && self.hash_value_field.is_some() {
                    let mut out = failed(reason, true);
                    out.modified = self.merge(rec, None, &mut scratch.bytes, &mut scratch.text);
                    return out;
                }
                return failed(reason, self.reserve_data);
            }
            Some(field) => match field.str_bytes() {
                Some(raw) => self.parser.parse(raw, parsed).map_err(|e| match e {
                    ParseError::NoMatch => {
                        let raw = String::from_utf8_lossy(raw);
                        (true, format!("pattern not matched with data '{raw}'"))
                    }
                    e => (false, format!("parse failed {e}")),
                }),
                None => {
                    let reason = format!(
                        "parse failed: value of {} is not a string: {}",
                        self.key_name.source(),
                        field.to_value().to_json_string()
                    );
                    return failed(reason, false);
                }
            },
        };
        match result {
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
                self.merge(
                    rec,
                    Some(&scratch.parsed),
                    &mut scratch.bytes,
                    &mut scratch.text,
                );
                Outcome::modified()
            }
            Err((true, reason)) => {
                let mut out = failed(reason, self.reserve_data);
                if self.reserve_data && self.hash_value_field.is_some() {
                    out.modified = self.merge(rec, None, &mut scratch.bytes, &mut scratch.text);
                }
                out
            }
            Err((false, reason)) => failed(reason, false),
        }
    }

    /// Fluentd's `handle_parsed`: prefix, wrap, then replace or merge. `staged` and `key` are
    /// scratch. Returns true.
    fn merge(
        &self,
        rec: &mut RawRecord<'_>,
        parsed: Option<&Record>,
        staged: &mut BytesMut,
        key: &mut String,
    ) -> bool {
        staged.clear();
        match parsed {
            Some(p) => p.write_map(staged),
            None => msgpack::write_map_len(staged, 0),
        }
        let values = RawValue::written(&staged[..]);
        let prefixed = |k: RawValue<'_>, key: &mut String| -> bool {
            let Some(prefix) = &self.inject_key_prefix else {
                return false;
            };
            key.clear();
            key.push_str(prefix);
            key.push_str(&k.text());
            true
        };
        if let Some(field) = &self.hash_value_field {
            let write = |out: &mut BytesMut| {
                msgpack::write_map_len(out, values.map_pairs().count());
                for (k, v) in values.map_pairs() {
                    if prefixed(k, key) {
                        msgpack::write_str(out, key.as_bytes());
                    } else {
                        out.put_slice(k.bytes());
                    }
                    out.put_slice(v.bytes());
                }
            };
            if self.reserve_data {
                rec.set_with(field.as_bytes(), write);
            } else {
                rec.renew();
                rec.push_with(field.as_bytes(), write);
            }
        } else if self.reserve_data {
            for (k, v) in values.map_pairs() {
                if prefixed(k, key) {
                    rec.set_raw(key.as_bytes(), v.bytes());
                } else {
                    rec.set_raw(k.text().as_bytes(), v.bytes());
                }
            }
        } else {
            rec.renew();
            for (k, v) in values.map_pairs() {
                if prefixed(k, key) {
                    rec.push_with(key.as_bytes(), |out| out.put_slice(v.bytes()));
                } else {
                    rec.push_raw(k.bytes(), v.bytes());
                }
            }
        }
        true
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
