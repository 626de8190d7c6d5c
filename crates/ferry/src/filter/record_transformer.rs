//! `@type record_transformer`: add and rewrite fields from a `<record>` section, remove or
//! keep keys.
//!
//! Values in `<record>` (and keys) may hold placeholders, Fluentd's non-Ruby set:
//!
//! | placeholder | value |
//! |---|---|
//! | `${tag}` | the tag |
//! | `${tag_parts[N]}` | the Nth part of the tag split on `.` (negative N counts from the end) |
//! | `${tag_prefix[N]}` / `${tag_suffix[N]}` | parts 0..=N joined / parts N.. joined |
//! | `${hostname}` | the host name |
//! | `${time}` | the event time, `2026-11-21 15:19:13 +0900` (Ruby's `Time#to_s`, in the host's zone) |
//! | `${record["key"]}` | a field of the incoming record |
//!
//! A placeholder whose value is missing (a part beyond the tag, an absent field) expands to
//! the empty string (to nil with `auto_typecast` when it is the whole value). A value starting
//! with `{` or `[` is JSON whose strings are templates. Any other `${...}` is a configuration
//! error, and so is `enable_ruby true`: ferry evaluates no code.
//!
//! Order per event, as in Fluentd: start from the record (or an empty one with
//! `renew_record`, keeping `keep_keys`), merge the expanded `<record>`, take the time from
//! `renew_time_key`, then delete `remove_keys` (record accessors allowed).
//!
//! The record is edited in place ([`super::raw`]): `<record>` values are expanded straight into
//! msgpack (a `${record["k"]}` field is copied as its bytes, or read as text without decoding a
//! str), then set into the record's overlay; nothing else of the record is decoded.

use super::accessor::Accessor;
use super::raw::{RawRecord, RawValue};
use super::{Event, Outcome, TagContext};
use crate::record::text;
use crate::time::{Strftime, Zone};
use bytes::BytesMut;
use ferry_config::Section;
use ferry_proto::msgpack::{self, Head, Value};
use ferry_proto::time::EventTime;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
enum Placeholder {
    Tag,
    TagPart(i64),
    TagPrefix(i64),
    TagSuffix(i64),
    Hostname,
    Time,
    Field(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Ph(Placeholder),
}

/// A string with placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Piece>);

/// A `<record>` value: a template, or JSON holding templates.
#[derive(Debug, Clone, PartialEq)]
enum TValue {
    Text(Template),
    Array(Vec<TValue>),
    Map(Vec<(Template, TValue)>),
    Scalar(Value),
}

#[derive(Debug, Clone)]
pub struct RecordTransformer {
    fields: Vec<(Template, TValue)>,
    remove_keys: Vec<Accessor>,
    keep_keys: Vec<String>,
    renew_record: bool,
    renew_time_key: Option<String>,
    auto_typecast: bool,
    /// `${time}` is Ruby's `Time#to_s`: the host's zone.
    time_text: (Strftime, Zone),
}

impl RecordTransformer {
    pub fn from_section(s: &Section<'_>) -> Option<Self> {
        if s.bool_or("enable_ruby", false) {
            s.error(
                Some("enable_ruby"),
                "enable_ruby is not supported: ferry evaluates no code; use the placeholders",
            );
        }
        let renew_record = s.bool_or("renew_record", false);
        let keep_keys = list(s, "keep_keys");
        if !keep_keys.is_empty() && !renew_record {
            s.error(
                Some("keep_keys"),
                "`renew_record` must be true to use `keep_keys`",
            );
        }
        let remove_keys = list(s, "remove_keys")
            .iter()
            .filter_map(|k| {
                Accessor::parse(k)
                    .map_err(|e| s.error(Some("remove_keys"), e))
                    .ok()
            })
            .collect();
        let mut fields = Vec::new();
        if let Some(rec) = s.child("record") {
            for p in rec.params() {
                let key = Template::parse(&p.key);
                let value = parse_value(&p.value);
                match (key, value) {
                    (Ok(k), Ok(v)) => fields.push((k, v)),
                    (Err(e), _) | (_, Err(e)) => {
                        rec.error(Some(&p.key), format!("in <record> '{}': {e}", p.key))
                    }
                }
            }
            rec.finish();
        }
        Some(Self {
            fields,
            remove_keys,
            keep_keys,
            renew_record,
            renew_time_key: s.str("renew_time_key"),
            auto_typecast: s.bool_or("auto_typecast", false),
            time_text: (
                Strftime::parse("%Y-%m-%d %H:%M:%S %z").expect("a constant, valid format"),
                Zone::host(),
            ),
        })
    }

    pub fn apply(&self, ctx: &TagContext, event: &mut Event<'_>) -> Outcome {
        let Event {
            time,
            record: rec,
            scratch,
        } = event;
        // Every value is expanded from the record as it came in, before any edit.
        let staged = &mut scratch.bytes;
        staged.clear();
        msgpack::write_map_len(staged, self.fields.len());
        let input = Input {
            ctx,
            time: *time,
            record: rec,
            time_text: &self.time_text,
        };
        for (k, v) in &self.fields {
            let text = &mut scratch.text;
            text.clear();
            k.expand_text(&input, text);
            msgpack::write_str(staged, text.as_bytes());
            v.expand(&input, self.auto_typecast, text, staged);
        }
        if self.renew_record {
            rec.renew_keeping(&self.keep_keys);
        }
        let staged = RawValue::written(&staged[..]);
        for (k, v) in staged.map_pairs() {
            rec.set_raw(k.str_bytes().unwrap_or_default(), v.bytes());
        }
        if let Some(key) = &self.renew_time_key
            && let Some(v) = rec.get(key)
        {
            let secs = match v.head() {
                Some((Head::UInt(u), _)) => u as f64,
                Some((Head::Int(i), _)) => i as f64,
                Some((Head::F64(f), _)) => f,
                Some((Head::F32(f), _)) => f64::from(f),
                _ => leading_float(&v.text()),
            };
            let secs = secs.clamp(0.0, f64::from(u32::MAX));
            *time = EventTime {
                sec: secs.trunc() as u32,
                nsec: ((secs - secs.trunc()) * 1e9) as u32,
            };
        }
        for k in &self.remove_keys {
            k.delete(rec);
        }
        Outcome::modified()
    }
}

struct Input<'a, 'r> {
    ctx: &'a TagContext,
    time: EventTime,
    record: &'a RawRecord<'r>,
    time_text: &'a (Strftime, Zone),
}

fn list(s: &Section<'_>, key: &str) -> Vec<String> {
    s.str(key)
        .map(|v| {
            v.split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Ruby's `to_f`: the number at the start of the text (at most 64 characters are looked at).
fn leading_float(t: &str) -> f64 {
    let t = t.trim();
    let end = t.char_indices().nth(64).map_or(t.len(), |(i, _)| i);
    let t = &t[..end];
    (0..=t.len())
        .rev()
        .filter(|&n| t.is_char_boundary(n))
        .find_map(|n| t[..n].parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn parse_value(raw: &str) -> Result<TValue, String> {
    if raw.starts_with(['{', '[']) {
        if let Ok(v) = crate::parse::json::to_value(raw.as_bytes()) {
            return from_json(v);
        }
    }
    Template::parse(raw).map(TValue::Text)
}

fn from_json(v: Value) -> Result<TValue, String> {
    Ok(match v {
        Value::Str(s) => TValue::Text(Template::parse(&String::from_utf8_lossy(&s))?),
        Value::Array(items) => {
            TValue::Array(items.into_iter().map(from_json).collect::<Result<_, _>>()?)
        }
        Value::Map(pairs) => TValue::Map(
            pairs
                .into_iter()
                .map(|(k, v)| Ok((Template::parse(&text(&k))?, from_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => TValue::Scalar(other),
    })
}

impl Template {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            if start > 0 {
                pieces.push(Piece::Lit(rest[..start].to_string()));
            }
            let inner = &rest[start + 2..start + len];
            pieces.push(Piece::Ph(placeholder(inner)?));
            rest = &rest[start + len + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_string()));
        }
        Ok(Self(pieces))
    }

    /// Appends the expanded text to `out`.
    fn expand_text(&self, input: &Input<'_, '_>, out: &mut String) {
        for piece in &self.0 {
            match piece {
                Piece::Lit(l) => out.push_str(l),
                Piece::Ph(p) => match resolve(p, input) {
                    Some(Resolved::Text(t)) => out.push_str(&t),
                    Some(Resolved::Field(v)) => out.push_str(&v.text()),
                    None => {}
                },
            }
        }
    }
}

impl TValue {
    /// Appends the expanded value to `out` as msgpack; `text` is scratch.
    fn expand(&self, input: &Input<'_, '_>, typecast: bool, text: &mut String, out: &mut BytesMut) {
        match self {
            TValue::Text(t) => match t.0.as_slice() {
                [Piece::Ph(p)] if typecast => match resolve(p, input) {
                    Some(Resolved::Text(t)) => msgpack::write_str(out, t.as_bytes()),
                    Some(Resolved::Field(v)) => out.extend_from_slice(v.bytes()),
                    None => msgpack::write_nil(out),
                },
                _ => {
                    text.clear();
                    t.expand_text(input, text);
                    msgpack::write_str(out, text.as_bytes());
                }
            },
            TValue::Array(items) => {
                msgpack::write_array_len(out, items.len());
                for v in items {
                    v.expand(input, typecast, text, out);
                }
            }
            TValue::Map(pairs) => {
                msgpack::write_map_len(out, pairs.len());
                for (k, v) in pairs {
                    text.clear();
                    k.expand_text(input, text);
                    msgpack::write_str(out, text.as_bytes());
                    v.expand(input, typecast, text, out);
                }
            }
            TValue::Scalar(v) => v.encode(out),
        }
    }
}

fn placeholder(inner: &str) -> Result<Placeholder, String> {
    let indexed = |name: &str| -> Option<Result<i64, String>> {
        let n = inner
            .strip_prefix(name)?
            .strip_prefix('[')?
            .strip_suffix(']')?;
        Some(
            n.trim()
                .parse()
                .map_err(|_| format!("bad index in '${{{inner}}}'")),
        )
    };
    if let Some(field) = inner
        .strip_prefix("record[\"")
        .and_then(|r| r.strip_suffix("\"]"))
    {
        return Ok(Placeholder::Field(field.to_string()));
    }
    match inner {
        "tag" => return Ok(Placeholder::Tag),
        "hostname" => return Ok(Placeholder::Hostname),
        "time" => return Ok(Placeholder::Time),
        _ => {}
    }
    if let Some(n) = indexed("tag_parts") {
        return n.map(Placeholder::TagPart);
    }
    if let Some(n) = indexed("tag_prefix") {
        return n.map(Placeholder::TagPrefix);
    }
    if let Some(n) = indexed("tag_suffix") {
        return n.map(Placeholder::TagSuffix);
    }
    Err(format!(
        "unknown placeholder '${{{inner}}}' (tag, tag_parts[N], tag_prefix[N], tag_suffix[N], \
         hostname, time, record[\"key\"]; a field is written ${{record[\"{inner}\"]}})"
    ))
}

/// What a placeholder stands for: text, or a field of the record (kept as it is).
enum Resolved<'i> {
    Text(Cow<'i, str>),
    Field(RawValue<'i>),
}

fn resolve<'i>(p: &Placeholder, input: &Input<'i, '_>) -> Option<Resolved<'i>> {
    let parts = &input.ctx.parts;
    let index = |n: i64| -> Option<usize> {
        let len = i64::try_from(parts.len()).ok()?;
        let i = if n < 0 { len + n } else { n };
        usize::try_from(i).ok().filter(|i| *i < parts.len())
    };
    let text = |t: &'i str| Some(Resolved::Text(Cow::Borrowed(t)));
    match p {
        Placeholder::Tag => text(input.ctx.tag.as_ref()),
        Placeholder::Hostname => text(input.ctx.hostname.as_ref()),
        Placeholder::TagPart(n) => index(*n).and_then(|i| text(parts[i].as_str())),
        Placeholder::TagPrefix(n) => {
            index(*n).map(|i| Resolved::Text(parts[..=i].join(".").into()))
        }
        Placeholder::TagSuffix(n) => index(*n).map(|i| Resolved::Text(parts[i..].join(".").into())),
        Placeholder::Time => {
            let (format, zone) = input.time_text;
            Some(Resolved::Text(format.format(input.time, zone).into()))
        }
        Placeholder::Field(k) => input.record.get(k).map(Resolved::Field),
    }
}

#[cfg(test)]
#[path = "record_transformer_tests.rs"]
mod tests;
