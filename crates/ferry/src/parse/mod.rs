//! Parsers: one log line → a msgpack record and an event time, as Fluentd's `<parse>` section
//! describes them. The one home of parsing: the tail input, the `parser` filter and every input
//! that reads text use [`ParseSetup`].
//!
//! | `@type` | record | time |
//! |---|---|---|
//! | `none` | `{message_key: line}` | now |
//! | `json` | the object (nested values kept, key order kept) | `time_key` (default `time`) |
//! | `regexp` | named captures of `expression` | `time_key` (default `time`) |
//! | `apache2` | host, user, method, path, code, size, referer, agent | `[time]` |
//! | `nginx` | remote, host, user, method, path, code, size, referer, agent, http_x_forwarded_for | `[time]` |
//! | `syslog` | RFC 3164 (pri, host, ident, pid, message) or RFC 5424 (+ msgid, extradata) | header |
//! | `ltsv` | `label:value` pairs split on tabs | `time_key` if set |
//! | `csv` / `tsv` | `keys` zipped with the fields | `time_key` if set |
//! | `cri` | stream, logtag, message | the leading RFC 3339 time |
//! | `docker` | Docker's json-file object (`log`, `stream`) | its RFC 3339 `time` |
//! | `multiline` | `format1..N` joined into one expression, matched on the joined lines | as regexp |
//!
//! Docker's `json-file` lines (`{"log":..,"stream":..,"time":..}`) are `@type docker`, or
//! `@type json`: the RFC 3339 `time` is read without a `time_format`.
//!
//! Where the caller can join lines (the tail input), `cri` and `docker` join the parts a
//! container runtime split a long line into ([`partial`]); `join_partial_lines false` turns it
//! off, and `@type json` turns it on with `join_partial_lines true`.
//!
//! Every parser also takes `types`, `null_value_pattern`, `null_empty_string`,
//! `estimate_current_event`, and the time parameters (`time_key`, `time_format`, `time_type`,
//! `keep_time_key`, `timezone`).
//!
//! Parsers never panic on any input: lines are bytes (not necessarily UTF-8), a line that does
//! not match is a [`ParseError`], which the caller counts (or emits as `unmatched_line`).

mod delimited;
pub mod json;
pub mod partial;
pub mod record;
mod regexp;
pub mod rfc3339;
mod spec;
pub mod time;

use ferry_config::Section;
use ferry_proto::time::EventTime;
pub use record::{FieldType, Record};
use regexp::{RegexParser, with_flags};
pub use regexp::{compile_regex, strip_slashes};
use spec::time_for_preset;
pub use spec::{TimeParse, TimeSpec, default_time_spec, read_time_spec};

/// Why a line did not become a record. Every variant concerns one line only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("pattern not matched")]
    NoMatch,
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("JSON value is not an object")]
    NotAnObject,
    #[error("invalid time format: value = {0}")]
    Time(String),
    #[error("no time in the line, and estimate_current_event is false")]
    NoTime,
    #[error("invalid syslog message: no <PRI> at its start")]
    NoPriority,
}

/// The key of lines that did not parse, where an input keeps them (`emit_unmatched_lines`, as
/// Fluentd names it).
pub const UNMATCHED_KEY: &str = "unmatched_line";

impl ParseError {
    /// Parsing goes on with the next line whatever the error.
    pub fn can_continue(&self) -> bool {
        true
    }
}

/// A compiled parser.
#[derive(Debug, Clone)]
pub enum Parser {
    None { key: String },
    Json(json::JsonParser),
    Regex(RegexParser),
    Ltsv(delimited::Ltsv),
    Csv(delimited::Csv),
    Cri(delimited::Cri),
}

/// A plugin's defaults for its `<parse>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseDefaults {
    /// `@type` when the section has none.
    pub type_name: Option<&'static str>,
    /// `with_priority` of the syslog parser when not written.
    pub with_priority: Option<bool>,
    /// The caller joins the parts of split lines (`join_partial_lines` is read).
    pub joins_partials: bool,
}

impl Parser {
    /// Whether a regexp-family parser captures `name` (for syslog, `pri`: it reads the
    /// priority itself).
    pub fn has_capture(&self, name: &str) -> bool {
        matches!(self, Self::Regex(r) if r.has_capture(name))
    }

    /// Leaves the capture `name` out of the records of a regexp-family parser (others have
    /// no captures).
    pub fn drop_capture(&mut self, name: &str) {
        if let Self::Regex(r) = self {
            r.drop_capture(name);
        }
    }
}

/// `<parse>` with the settings of `@type multiline`.
#[derive(Debug, Clone)]
pub struct ParseSetup {
    pub parser: Parser,
    pub multiline: Option<MultilineSetup>,
    /// Parts of split lines are joined before parsing (`cri`, `docker`).
    pub partials: Option<partial::PartialFormat>,
    /// `null_value_pattern`, `null_empty_string`: applied to every parser's string values.
    pub values: ValueRules,
    /// `estimate_current_event` (default true): a text without a time gets the current time.
    /// False: the caller keeps the time it had (the parser filter keeps the event's time).
    pub estimate_current_event: bool,
}

impl ParseSetup {
    /// A setup with `parser` alone (no multiline, no value rules).
    pub fn plain(parser: Parser) -> Self {
        Self {
            parser,
            multiline: None,
            partials: None,
            values: ValueRules::default(),
            estimate_current_event: true,
        }
    }

    /// Parses one text: the parser, then the value rules.
    pub fn parse(&self, line: &[u8], rec: &mut Record) -> Result<Option<EventTime>, ParseError> {
        let time = self.parser.parse(line, rec)?;
        self.values.apply(rec);
        Ok(time)
    }
}

/// Which string values become nil: `null_value_pattern` (the whole value matches) and
/// `null_empty_string`, as Fluentd applies them after any parser.
#[derive(Debug, Clone, Default)]
pub struct ValueRules {
    pub null_pattern: Option<regex::bytes::Regex>,
    pub null_empty_string: bool,
}

impl ValueRules {
    pub fn is_empty(&self) -> bool {
        self.null_pattern.is_none() && !self.null_empty_string
    }

    /// Rewrites the matching string values of `rec` as nil.
    pub fn apply(&self, rec: &mut Record) {
        if self.is_empty() {
            return;
        }
        rec.map_values(|v| match v {
            ferry_proto::msgpack::Value::Str(s)
                if (self.null_empty_string && s.is_empty())
                    || self.null_pattern.as_ref().is_some_and(|p| {
                        p.find(s)
                            .is_some_and(|m| m.start() == 0 && m.end() == s.len())
                    }) =>
            {
                Some(ferry_proto::msgpack::Value::Nil)
            }
            _ => None,
        });
    }
}

/// `format_firstline`: lines are joined (with `\n`) from one line matching `firstline` up to
/// the next; the joined text goes to the parser.
#[derive(Debug, Clone)]
pub struct MultilineSetup {
    pub firstline: regex::bytes::Regex,
}

/// The parser types `<parse> @type` accepts.
pub const PARSER_TYPES: &[&str] = &[
    "none",
    "json",
    "regexp",
    "apache2",
    "nginx",
    "syslog",
    "ltsv",
    "csv",
    "tsv",
    "cri",
    "docker",
    "multiline",
];

impl Parser {
    /// Parses one line (without its newline) into `rec` (cleared first). Returns the event time,
    /// or `None` when the line carries none (the caller uses the current time).
    pub fn parse(&self, line: &[u8], rec: &mut Record) -> Result<Option<EventTime>, ParseError> {
        rec.clear();
        match self {
            Self::None { key } => {
                rec.str(key, line);
                Ok(None)
            }
            Self::Json(p) => p.parse(line, rec),
            Self::Regex(p) => p.parse(line, rec),
            Self::Ltsv(p) => p.parse(line, rec),
            Self::Csv(p) => p.parse(line, rec),
            Self::Cri(p) => p.parse(line, rec),
        }
    }

    /// `Some(message_key)` for `@type none`, which the tail input encodes without a parser.
    pub fn none_key(&self) -> Option<&str> {
        match self {
            Self::None { key } => Some(key),
            _ => None,
        }
    }
}

impl ParseSetup {
    /// A `<parse>` built into a plugin, given as the section's lines (`@type ltsv`): an input's
    /// default when its configuration has none. The texts are constants of ferry, each read by
    /// a test; one that did not read would give `@type none`.
    pub fn built_in(lines: &str) -> Self {
        let text = format!("<parse>\n{lines}\n</parse>\n");
        let root = ferry_config::parse_str(&text, "<built-in parse section>").ok();
        let errors = ferry_config::Errors::new();
        match root.as_ref().and_then(|r| r.children.first()) {
            Some(e) => Self::from_section(&Section::new(e, &errors)),
            None => Self::plain(Parser::None {
                key: "message".into(),
            }),
        }
    }

    /// Reads a `<parse>` section; errors go to the section's sink, and the caller finishes it.
    pub fn from_section(s: &Section<'_>) -> Self {
        Self::from_section_with(s, &ParseDefaults::default())
    }

    /// [`Self::from_section`] with a plugin's own defaults for its `<parse>` (Fluentd's
    /// `config_set_default` in a plugin's parse section).
    pub fn from_section_with(s: &Section<'_>, defaults: &ParseDefaults) -> Self {
        let kind = match (s.plugin_type(), defaults.type_name) {
            (None, Some(default)) => default,
            _ => crate::plugin::plugin_type(s, "parser", PARSER_TYPES, &[]).unwrap_or("none"),
        };
        let time_default =
            matches!(kind, "json" | "docker" | "regexp" | "multiline").then_some("time");
        let time = read_time_spec(s, time_default);
        let types = read_types(s);
        let mut multiline = None;
        let parser = match kind {
            "json" => {
                // Fluentd's choice of JSON library; ferry has one.
                let _ = s.opt_enum("json_parser", &["oj", "yajl", "json"]);
                s.no_effect("json_parser", "ferry has one JSON parser");
                Parser::Json(json::JsonParser { time })
            }
            "docker" => Parser::Json(json::JsonParser { time }),
            "regexp" => match s.required_str("expression") {
                Some(e) => match compile_regex(s, "expression", &with_flags(s, &e)) {
                    Some(re) => Parser::Regex(RegexParser::new(re, time, &types)),
                    None => none_parser(),
                },
                None => none_parser(),
            },
            "apache2" => Parser::Regex(regexp::apache2(time_for_preset(s, time))),
            "nginx" => Parser::Regex(regexp::nginx(time_for_preset(s, time))),
            "syslog" => Parser::Regex(regexp::syslog(s, time, defaults.with_priority)),
            "ltsv" => Parser::Ltsv(delimited::Ltsv::from_section(s, time, types)),
            "csv" => Parser::Csv(delimited::Csv::from_section(s, b',', time, types)),
            "tsv" => Parser::Csv(delimited::Csv::from_section(s, b'\t', time, types)),
            "cri" => Parser::Cri(delimited::Cri::from_section(s, time)),
            "multiline" => {
                let (parser, setup) = read_multiline(s, time, &types);
                multiline = setup;
                parser
            }
            _ => Parser::None {
                key: s.str_or("message_key", "message"),
            },
        };
        let partials = read_partials(s, kind, defaults);
        let null_pattern = s
            .str("null_value_pattern")
            .and_then(|e| compile_regex(s, "null_value_pattern", &e));
        let values = ValueRules {
            null_pattern,
            null_empty_string: s.bool_or("null_empty_string", false),
        };
        Self {
            parser,
            multiline,
            partials,
            values,
            estimate_current_event: s.bool_or("estimate_current_event", true),
        }
    }
}

/// `join_partial_lines`: on by default for `cri` and `docker`, off for `json`, where the caller
/// joins lines; refused where it cannot.
fn read_partials(
    s: &Section<'_>,
    kind: &str,
    defaults: &ParseDefaults,
) -> Option<partial::PartialFormat> {
    let (format, default) = match kind {
        "cri" => (partial::PartialFormat::Cri, true),
        "docker" => (partial::PartialFormat::Docker, true),
        "json" => (partial::PartialFormat::Docker, false),
        _ => {
            if s.get("join_partial_lines").is_some() {
                s.error(
                    Some("join_partial_lines"),
                    "join_partial_lines applies to @type cri, docker and json only",
                );
            }
            return None;
        }
    };
    if !defaults.joins_partials {
        if s.get("join_partial_lines").is_some() {
            s.error(
                Some("join_partial_lines"),
                "only the tail input joins the parts of split lines; here each line is parsed alone",
            );
        }
        return None;
    }
    s.bool_or("join_partial_lines", default).then_some(format)
}

fn none_parser() -> Parser {
    Parser::None {
        key: "message".into(),
    }
}

fn read_types(s: &Section<'_>) -> Vec<(String, FieldType)> {
    let Some(pairs) = s.hash("types") else {
        return Vec::new();
    };
    pairs
        .into_iter()
        .filter_map(|(k, v)| match FieldType::parse(&v) {
            Some(t) => Some((k, t)),
            None => {
                s.error(
                    Some("types"),
                    format!("type '{v}' of '{k}' is not one of string, integer, float, bool"),
                );
                None
            }
        })
        .collect()
}

fn read_multiline(
    s: &Section<'_>,
    time: TimeSpec,
    types: &[(String, FieldType)],
) -> (Parser, Option<MultilineSetup>) {
    let firstline = s
        .required_str("format_firstline")
        .and_then(|e| compile_regex(s, "format_firstline", &e));
    let mut body = String::new();
    for n in 1..=20 {
        match s.str(&format!("format{n}")) {
            Some(f) => body.push_str(&strip_slashes(&f)),
            None => break,
        }
    }
    if body.is_empty() {
        s.error(None, "@type multiline needs format1 (and format2..formatN)");
        return (none_parser(), None);
    }
    let parser = match compile_regex(s, "format1", &format!("(?s){body}")) {
        Some(re) => Parser::Regex(RegexParser::new(re, time, types)),
        None => none_parser(),
    };
    let setup = firstline.map(|firstline| MultilineSetup { firstline });
    (parser, setup)
}

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
