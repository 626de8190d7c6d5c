//! The `<parse>` section of the parser filter: a small set of text parsers (`json`, `regexp`,
//! `ltsv`, `none`) with Fluentd's common parameters (`time_key`, `time_format`, `time_type`,
//! `keep_time_key`, `types`, `null_value_pattern`, `null_empty_string`,
//! `estimate_current_event`).

use super::json;
use super::time::{self, TimeParse};
use crate::record::{self, str_value};
use ferry_config::Section;
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;

/// Parser types this filter provides.
pub const PARSE_TYPES: &[&str] = &["json", "regexp", "ltsv", "none"];

#[derive(Debug, Clone)]
pub enum ParseKind {
    Json,
    Regexp(regex::Regex),
    Ltsv {
        delimiter: String,
        label_delimiter: String,
    },
    None {
        message_key: String,
    },
}

/// `types` conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Integer,
    Float,
    Bool,
}

/// A configured `<parse>`.
#[derive(Debug, Clone)]
pub struct TextParser {
    pub kind: ParseKind,
    pub time_key: Option<String>,
    pub keep_time_key: bool,
    pub time: TimeParse,
    pub types: Vec<(String, FieldType)>,
    pub null_value_pattern: Option<regex::Regex>,
    pub null_empty_string: bool,
    pub estimate_current_event: bool,
}

/// What one text gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// The fields, and the time when the text held one (or `estimate_current_event` set now).
    Record {
        time: Option<EventTime>,
        record: Vec<(Value, Value)>,
    },
    /// The text does not match the pattern (regexp).
    NoMatch,
}

impl TextParser {
    /// Reads a `<parse>` section; reports a type outside the small set.
    pub fn from_section(s: &Section<'_>) -> Option<Self> {
        let Some(name) = s.plugin_type() else {
            s.error(
                None,
                format!("<parse> needs '@type' ({})", PARSE_TYPES.join(", ")),
            );
            return None;
        };
        let kind = match name {
            "json" => {
                let _ = s.opt_enum("json_parser", &["oj", "yajl", "json"]);
                ParseKind::Json
            }
            "regexp" => {
                let expr = s.required_str("expression")?;
                let ignorecase = s.bool_or("ignorecase", false);
                let multiline = s.bool_or("multiline", false);
                match super::super::ruby_regex(&expr, ignorecase, multiline) {
                    Ok(re) => ParseKind::Regexp(re),
                    Err(e) => {
                        s.error(Some("expression"), e);
                        return None;
                    }
                }
            }
            "ltsv" => ParseKind::Ltsv {
                delimiter: s.str_or("delimiter", "\t"),
                label_delimiter: s.str_or("label_delimiter", ":"),
            },
            "none" => ParseKind::None {
                message_key: s.str_or("message_key", "message"),
            },
            other => {
                s.error(
                    Some("@type"),
                    format!(
                        "parser '{other}' is not available in the parser filter (parsers: {})",
                        PARSE_TYPES.join(", ")
                    ),
                );
                return None;
            }
        };
        let default_key = (!matches!(kind, ParseKind::None { .. })).then(|| "time".to_string());
        let time_key = s.str("time_key").or(default_key);
        let time = match (
            s.str("time_format"),
            s.opt_enum("time_type", &["string", "unixtime", "float"]),
        ) {
            (Some(f), _) => time::compile(&f).unwrap_or_else(|e| {
                s.error(Some("time_format"), e);
                TimeParse::Auto
            }),
            (None, Some("unixtime")) => TimeParse::Unixtime,
            (None, Some("float")) => TimeParse::Float,
            _ => TimeParse::Auto,
        };
        crate::output::format::check_utc(s);
        let types = read_types(s);
        let null_value_pattern = s.str("null_value_pattern").and_then(|p| {
            super::super::ruby_regex(&p, false, false)
                .map_err(|e| s.error(Some("null_value_pattern"), e))
                .ok()
        });
        Some(Self {
            kind,
            time_key,
            keep_time_key: s.bool_or("keep_time_key", false),
            time,
            types,
            null_value_pattern,
            null_empty_string: s.bool_or("null_empty_string", false),
            estimate_current_event: s.bool_or("estimate_current_event", true),
        })
    }

    /// Parses one text. An error is a text that matched but could not be read (bad JSON, bad
    /// time): Fluentd's `ParserError`.
    pub fn parse(&self, text: &str) -> Result<Parsed, String> {
        let mut record = match &self.kind {
            ParseKind::Json => match json::parse(text)? {
                Value::Map(pairs) => pairs,
                _ => return Err("parsed JSON is not an object".into()),
            },
            ParseKind::Regexp(re) => {
                let Some(caps) = re.captures(text) else {
                    return Ok(Parsed::NoMatch);
                };
                re.capture_names()
                    .flatten()
                    .filter_map(|name| {
                        caps.name(name)
                            .map(|m| (str_value(name), str_value(m.as_str())))
                    })
                    .collect()
            }
            ParseKind::Ltsv {
                delimiter,
                label_delimiter,
            } => text
                .split(delimiter.as_str())
                .filter(|f| !f.is_empty())
                .map(|field| match field.split_once(label_delimiter.as_str()) {
                    Some((k, v)) => (str_value(k), str_value(v)),
                    None => (str_value(field), Value::Nil),
                })
                .collect(),
            ParseKind::None { message_key } => vec![(str_value(message_key), str_value(text))],
        };
        self.convert(&mut record);
        let mut time = None;
        if let Some(key) = &self.time_key
            && let Some(v) = record::get(&record, key).cloned()
        {
            time = Some(time::parse(&v, &self.time)?);
            if !self.keep_time_key {
                record::remove(&mut record, key);
            }
        }
        if time.is_none() && self.estimate_current_event {
            time = Some(EventTime::now());
        }
        Ok(Parsed::Record { time, record })
    }

    fn convert(&self, record: &mut [(Value, Value)]) {
        for (k, v) in record.iter_mut() {
            if let Value::Str(s) = v {
                let text = String::from_utf8_lossy(s);
                let null = (self.null_empty_string && text.is_empty())
                    || self
                        .null_value_pattern
                        .as_ref()
                        .is_some_and(|p| p.is_match(&text));
                if null {
                    *v = Value::Nil;
                    continue;
                }
            }
            let Some(ty) = self
                .types
                .iter()
                .find(|(name, _)| matches!(k, Value::Str(s) if s.as_ref() == name.as_bytes()))
                .map(|(_, t)| *t)
            else {
                continue;
            };
            let text = record::text(v).into_owned();
            *v = match ty {
                FieldType::String => str_value(&text),
                FieldType::Integer => Value::Int(leading_number(&text) as i64),
                FieldType::Float => Value::F64(leading_number(&text)),
                FieldType::Bool => Value::Bool(matches!(text.as_str(), "true" | "yes" | "1")),
            };
            if let Value::Int(i) = v
                && *i >= 0
            {
                *v = Value::UInt(*i as u64);
            }
        }
    }
}

/// Ruby's `to_i` / `to_f`: the number at the start of the text, 0 when there is none (at
/// most 64 characters are looked at).
fn leading_number(text: &str) -> f64 {
    let t = text.trim_start();
    let t = &t[..t.char_indices().nth(64).map_or(t.len(), |(i, _)| i)];
    let mut end = 0;
    for (i, c) in t.char_indices() {
        let ok = c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+')) || c == '.';
        if !ok {
            break;
        }
        end = i + c.len_utf8();
    }
    let mut candidate = &t[..end];
    while !candidate.is_empty() {
        if let Ok(n) = candidate.parse::<f64>() {
            return n;
        }
        candidate = &candidate[..candidate.len() - 1];
    }
    0.0
}

fn read_types(s: &Section<'_>) -> Vec<(String, FieldType)> {
    let Some(pairs) = s.hash("types") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in pairs {
        let ty = match v.as_str() {
            "string" => FieldType::String,
            "integer" => FieldType::Integer,
            "float" => FieldType::Float,
            "bool" => FieldType::Bool,
            other => {
                s.error(
                    Some("types"),
                    format!(
                        "type '{other}' of '{k}' is not supported (string, integer, float, bool)"
                    ),
                );
                continue;
            }
        };
        out.push((k, ty));
    }
    out
}
