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
//! | `${time}` | the event time, `2026-11-21 15:19:13 +0000` (Ruby's `Time#to_s`, in UTC) |
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

use super::accessor::Accessor;
use super::{Outcome, TagContext};
use crate::record::{self, str_value, text};
use crate::time::utc_fields;
use ferry_config::Section;
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;

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
        })
    }

    pub fn apply(
        &self,
        ctx: &TagContext,
        time: &mut EventTime,
        rec: &mut Vec<(Value, Value)>,
    ) -> Outcome {
        let input = Input {
            ctx,
            time: *time,
            record: rec.as_slice(),
        };
        let expanded: Vec<(String, Value)> = self
            .fields
            .iter()
            .map(|(k, v)| (k.expand_text(&input), v.expand(&input, self.auto_typecast)))
            .collect();
        if self.renew_record {
            let old = std::mem::take(rec);
            for k in &self.keep_keys {
                if let Some(v) = record::get(&old, k) {
                    rec.push((str_value(k), v.clone()));
                }
            }
        }
        for (k, v) in expanded {
            record::set(rec, &k, v);
        }
        if let Some(key) = &self.renew_time_key
            && let Some(v) = record::get(rec, key)
        {
            let secs = match v {
                Value::UInt(u) => *u as f64,
                Value::Int(i) => *i as f64,
                Value::F64(f) => *f,
                Value::F32(f) => f64::from(*f),
                other => leading_float(&text(other)),
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

struct Input<'a> {
    ctx: &'a TagContext,
    time: EventTime,
    record: &'a [(Value, Value)],
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

    fn expand_text(&self, input: &Input<'_>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Lit(l) => out.push_str(l),
                Piece::Ph(p) => {
                    if let Some(v) = resolve(p, input) {
                        out.push_str(&text(&v));
                    }
                }
            }
        }
        out
    }
}

impl TValue {
    fn expand(&self, input: &Input<'_>, typecast: bool) -> Value {
        match self {
            TValue::Text(t) => match t.0.as_slice() {
                [Piece::Ph(p)] if typecast => resolve(p, input).unwrap_or(Value::Nil),
                _ => str_value(&t.expand_text(input)),
            },
            TValue::Array(items) => {
                Value::Array(items.iter().map(|v| v.expand(input, typecast)).collect())
            }
            TValue::Map(pairs) => Value::Map(
                pairs
                    .iter()
                    .map(|(k, v)| (str_value(&k.expand_text(input)), v.expand(input, typecast)))
                    .collect(),
            ),
            TValue::Scalar(v) => v.clone(),
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

fn resolve(p: &Placeholder, input: &Input<'_>) -> Option<Value> {
    let parts = &input.ctx.parts;
    let index = |n: i64| -> Option<usize> {
        let len = i64::try_from(parts.len()).ok()?;
        let i = if n < 0 { len + n } else { n };
        usize::try_from(i).ok().filter(|i| *i < parts.len())
    };
    match p {
        Placeholder::Tag => Some(str_value(&input.ctx.tag)),
        Placeholder::Hostname => Some(str_value(&input.ctx.hostname)),
        Placeholder::TagPart(n) => index(*n).map(|i| str_value(&parts[i])),
        Placeholder::TagPrefix(n) => index(*n).map(|i| str_value(&parts[..=i].join("."))),
        Placeholder::TagSuffix(n) => index(*n).map(|i| str_value(&parts[i..].join("."))),
        Placeholder::Time => {
            let (y, mo, d, h, mi, s) = utc_fields(input.time.sec);
            Some(str_value(&format!(
                "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000"
            )))
        }
        Placeholder::Field(k) => record::get(input.record, k).cloned(),
    }
}

#[cfg(test)]
#[path = "record_transformer_tests.rs"]
mod tests;
