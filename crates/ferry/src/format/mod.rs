//! Turning events into bytes: Fluentd's `<format>` and `<inject>` for the outputs that print,
//! archive or send records (`stdout`, `file`, `http`).
//!
//! | `@type` | one event becomes |
//! |---|---|
//! | `out_file` | `2026-11-21T15:19:13+0000<TAB>tag<TAB>{"k":"v"}` + newline (out_file's default) |
//! | `json` | `{"k":"v"}` + newline |
//! | `stdout` | `2026-11-21 15:19:13.123456789 +0000 tag: {"k":"v"}` + newline (stdout's default) |
//! | `ltsv` | `k:v<TAB>k2:v2` + newline |
//! | `csv` | the `fields`, quoted as Ruby's CSV does + newline |
//! | `single_value` | the text of `message_key` + newline |
//! | `msgpack` | the record as msgpack (no time, no tag, as Fluentd's) |
//!
//! The JSON-based formats transcode msgpack to JSON straight from the bytes ([`json`]); the
//! others decode the record. Times are written as Fluentd writes them ([`crate::time`]): in the
//! host's zone, unless out_file's or `<inject>`'s `utc true`, `localtime false` or `timezone`
//! says otherwise; the stdout format always writes the host's zone.

pub mod inject;
pub mod json;
pub mod text;

pub use crate::time::{Strftime, Zone, utc_fields, write_rfc3339, write_stdout_time};
use ferry_config::Section;
use ferry_proto::entries::{self, EntryRef};
use ferry_proto::msgpack::{MsgpackError, Value};
use inject::{InjectConfig, read_time_format};
use json::Extra;
use std::io::Write as _;

/// `<format> @type ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    Stdout,
    Json,
    OutFile,
    Ltsv,
    Csv,
    SingleValue,
    Msgpack,
}

const FORMAT_TYPES: &[&str] = &[
    "out_file",
    "json",
    "stdout",
    "ltsv",
    "csv",
    "single_value",
    "msgpack",
];

/// How out_file writes the time column (`time_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnTime {
    String,
    Unixtime,
    Float,
}

/// The parameters of every format; each format reads only its own.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatOptions {
    /// The stdout format's `output_type`: how the record after `time tag: ` is written.
    pub stdout_type: StdoutType,
    pub add_newline: bool,
    pub output_time: bool,
    pub output_tag: bool,
    pub delimiter: String,
    pub label_delimiter: String,
    pub replacement: String,
    pub column_time: ColumnTime,
    pub time_format: Strftime,
    /// The zone times are written in.
    pub zone: Zone,
    pub fields: Vec<String>,
    pub force_quotes: bool,
    pub message_key: String,
}

/// `output_type` of the stdout format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StdoutType {
    /// `{"k":"v"}`
    #[default]
    Json,
    /// `k:v` pairs, tab-separated.
    Ltsv,
    /// Ruby's `Hash#inspect`: `{"k"=>"v"}`.
    Hash,
}

impl Default for FormatOptions {
    fn default() -> Self {
        Self {
            stdout_type: StdoutType::Json,
            add_newline: true,
            output_time: true,
            output_tag: true,
            delimiter: "\t".into(),
            label_delimiter: ":".into(),
            replacement: " ".into(),
            column_time: ColumnTime::String,
            time_format: out_file_time(),
            zone: Zone::host(),
            fields: Vec::new(),
            force_quotes: true,
            message_key: "message".into(),
        }
    }
}

fn out_file_time() -> Strftime {
    Strftime::parse("%Y-%m-%dT%H:%M:%S%z").expect("a constant, valid format")
}

#[derive(Debug, Clone, PartialEq)]
pub struct FormatConfig {
    pub kind: FormatKind,
    pub options: FormatOptions,
    pub inject: InjectConfig,
}

impl FormatConfig {
    /// Reads the `<format>` and `<inject>` children of an output section; `default` is the
    /// output's own format.
    pub fn from_section(section: &Section<'_>, default: FormatKind) -> Self {
        let inject = InjectConfig::from_parent(section);
        let Some(s) = section.child("format") else {
            return Self {
                kind: default,
                options: FormatOptions::default(),
                inject,
            };
        };
        let kind = match s.plugin_type() {
            None => default,
            Some(name) => match FORMAT_TYPES.iter().position(|t| *t == name) {
                Some(0) => FormatKind::OutFile,
                Some(1) => FormatKind::Json,
                Some(2) => FormatKind::Stdout,
                Some(3) => FormatKind::Ltsv,
                Some(4) => FormatKind::Csv,
                Some(5) => FormatKind::SingleValue,
                Some(_) => FormatKind::Msgpack,
                None => {
                    let hint = ferry_config::did_you_mean(name, FORMAT_TYPES.iter().copied())
                        .map(|c| format!(" (did you mean '{c}'?)"))
                        .unwrap_or_default();
                    s.error(
                        Some("@type"),
                        format!(
                            "unknown format '{name}'{hint}; formats: {}",
                            FORMAT_TYPES.join(", ")
                        ),
                    );
                    default
                }
            },
        };
        let options = read_options(&s, kind);
        s.finish();
        Self {
            kind,
            options,
            inject,
        }
    }

    /// Appends every event of `stream`. Entries that fail to decode are counted in the result
    /// and skipped (their partial output removed): inputs validated them, so this means a bug,
    /// not bad input, and it must not stop the output.
    pub fn write_stream(&self, tag: &str, stream: &[u8], out: &mut Vec<u8>) -> u64 {
        self.write_stream_separated(tag, stream, b"", &mut true, out)
    }

    /// [`Self::write_stream`] with `separator` between events, across calls: `first` is true
    /// until an event was written (the elements of out_http's JSON array).
    pub fn write_stream_separated(
        &self,
        tag: &str,
        stream: &[u8],
        separator: &[u8],
        first: &mut bool,
        out: &mut Vec<u8>,
    ) -> u64 {
        let mut broken = 0;
        let mut scratch = Scratch::default();
        for entry in entries::iter(stream) {
            let Ok(entry) = entry else {
                broken += 1;
                continue;
            };
            let before = out.len();
            if !*first {
                out.extend_from_slice(separator);
            }
            if self.write_event(tag, &entry, out, &mut scratch).is_err() {
                out.truncate(before);
                broken += 1;
            } else {
                *first = false;
            }
        }
        broken
    }

    fn write_event<'s>(
        &'s self,
        tag: &str,
        entry: &EntryRef<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Scratch<'s>,
    ) -> Result<(), MsgpackError> {
        let o = &self.options;
        self.inject.extras(tag, entry.time, &mut scratch.extras);
        let newline = match self.kind {
            FormatKind::Stdout => {
                let mut t = String::new();
                write_stdout_time(entry.time, &o.zone, &mut t);
                let _ = write!(out, "{t} {tag}: ");
                match o.stdout_type {
                    StdoutType::Json => {
                        json::write_record(entry.record, &scratch.extras, out)?;
                    }
                    StdoutType::Ltsv => {
                        let record = decoded(entry, scratch)?;
                        text::write_ltsv(map_pairs(&record), "\t", ":", " ", out);
                    }
                    StdoutType::Hash => {
                        let record = decoded(entry, scratch)?;
                        text::write_ruby_inspect(&record, out);
                    }
                }
                true
            }
            FormatKind::Json => {
                json::write_record(entry.record, &scratch.extras, out)?;
                o.add_newline
            }
            FormatKind::OutFile => {
                if o.output_time {
                    match o.column_time {
                        ColumnTime::String => {
                            scratch.time_text(&o.time_format, &o.zone, entry, out);
                        }
                        ColumnTime::Unixtime => json::write_int(entry.time.sec, out),
                        ColumnTime::Float => {
                            let f = f64::from(entry.time.sec) + f64::from(entry.time.nsec) / 1e9;
                            out.extend_from_slice(crate::record::float_text(f).as_bytes());
                        }
                    }
                    out.extend_from_slice(o.delimiter.as_bytes());
                }
                if o.output_tag {
                    out.extend_from_slice(tag.as_bytes());
                    out.extend_from_slice(o.delimiter.as_bytes());
                }
                json::write_record(entry.record, &scratch.extras, out)?;
                true
            }
            FormatKind::Msgpack if scratch.extras.is_empty() => {
                out.extend_from_slice(entry.record);
                false
            }
            FormatKind::Msgpack | FormatKind::Ltsv | FormatKind::Csv | FormatKind::SingleValue => {
                let record = decoded(entry, scratch)?;
                let pairs = map_pairs(&record);
                match self.kind {
                    FormatKind::Msgpack => {
                        let mut buf = bytes::BytesMut::new();
                        record.encode(&mut buf);
                        out.extend_from_slice(&buf);
                        false
                    }
                    FormatKind::Ltsv => {
                        let d = (&o.delimiter, &o.label_delimiter, &o.replacement);
                        text::write_ltsv(pairs, d.0, d.1, d.2, out);
                        o.add_newline
                    }
                    FormatKind::Csv => {
                        text::write_csv(pairs, &o.fields, &o.delimiter, o.force_quotes, out);
                        o.add_newline
                    }
                    _ => {
                        text::write_single_value(pairs, &o.message_key, out);
                        o.add_newline
                    }
                }
            }
        };
        if newline {
            out.push(b'\n');
        }
        Ok(())
    }
}

/// An entry's record as a map, with the injected pairs set in it.
fn decoded(entry: &EntryRef<'_>, scratch: &mut Scratch<'_>) -> Result<Value, MsgpackError> {
    let (mut record, _) = Value::decode(entry.record)?;
    let Value::Map(pairs) = &mut record else {
        return Err(MsgpackError::Unexpected {
            offset: 0,
            expected: "a map",
            found: "another type",
        });
    };
    for (k, v) in scratch.extras.drain(..) {
        let v = match v {
            Extra::Str(s) => crate::record::str_value(&s),
            Extra::UInt(u) => Value::UInt(u),
            Extra::F64(f) => Value::F64(f),
        };
        crate::record::set(pairs, k, v);
    }
    Ok(record)
}

fn map_pairs(v: &Value) -> &[(Value, Value)] {
    match v {
        Value::Map(p) => p,
        _ => &[],
    }
}

/// Per-stream reuse: the injected pairs and the last formatted time column.
#[derive(Default)]
struct Scratch<'s> {
    extras: Vec<(&'s str, Extra)>,
    time: Option<(u32, u32)>,
    time_text: String,
}

impl Scratch<'_> {
    fn time_text(
        &mut self,
        format: &Strftime,
        zone: &Zone,
        entry: &EntryRef<'_>,
        out: &mut Vec<u8>,
    ) {
        let key = (
            entry.time.sec,
            if format.uses_fraction() {
                entry.time.nsec
            } else {
                0
            },
        );
        if self.time != Some(key) {
            self.time_text.clear();
            format.write(entry.time, zone, &mut self.time_text);
            self.time = Some(key);
        }
        out.extend_from_slice(self.time_text.as_bytes());
    }
}

fn read_options(s: &Section<'_>, kind: FormatKind) -> FormatOptions {
    let mut o = FormatOptions::default();
    match kind {
        FormatKind::Stdout => {
            // Fluentd's stdout formatter writes the record with another formatter.
            o.stdout_type = match s.enum_or("output_type", &["json", "ltsv", "hash"], "json") {
                "ltsv" => StdoutType::Ltsv,
                "hash" => StdoutType::Hash,
                _ => StdoutType::Json,
            };
            // Fluentd's stdout format takes the time zone parameters and writes the host's zone
            // whatever they say.
            if crate::time::zone::from_section(s) != Zone::host() {
                let host = "the stdout format writes the host's zone, as Fluentd's does";
                s.no_effect("localtime", host);
                s.no_effect("utc", host);
                s.no_effect("timezone", host);
            }
        }
        FormatKind::Json => {
            o.add_newline = s.bool_or("add_newline", true);
            // Fluentd picks a JSON library; ferry has one.
            let _ = s.opt_enum("json_parser", &["oj", "yajl", "json"]);
            s.no_effect("json_parser", "ferry has one JSON writer");
        }
        FormatKind::OutFile => {
            o.output_time = s.bool_or("output_time", true);
            o.output_tag = s.bool_or("output_tag", true);
            o.delimiter = match s.str("delimiter").map(|d| d.to_ascii_uppercase()) {
                Some(d) if d == "SPACE" || d == " " => " ".into(),
                Some(d) if d == "COMMA" || d == "," => ",".into(),
                _ => "\t".into(),
            };
            let epoch = s.bool_or("time_as_epoch", false);
            o.column_time = match s.enum_or("time_type", &["string", "unixtime", "float"], "string")
            {
                _ if epoch => ColumnTime::Unixtime,
                "unixtime" => ColumnTime::Unixtime,
                "float" => ColumnTime::Float,
                _ => ColumnTime::String,
            };
            if let Some(f) = read_time_format(s, "time_format") {
                o.time_format = f;
            }
            o.zone = crate::time::zone::from_section(s);
        }
        FormatKind::Ltsv => {
            o.delimiter = s.str_or("delimiter", "\t");
            o.label_delimiter = s.str_or("label_delimiter", ":");
            o.replacement = s.str_or("replacement", " ");
            o.add_newline = s.bool_or("add_newline", true);
            if o.delimiter.is_empty() {
                s.error(Some("delimiter"), "delimiter must not be empty");
                o.delimiter = "\t".into();
            }
        }
        FormatKind::Csv => {
            o.delimiter = match s.str_or("delimiter", ",").as_str() {
                "\\t" | "TAB" => "\t".into(),
                d => d.to_string(),
            };
            o.force_quotes = s.bool_or("force_quotes", true);
            o.add_newline = s.bool_or("add_newline", true);
            o.fields = match s.array("fields") {
                Some(f) if !f.is_empty() => f,
                _ => {
                    s.error(None, "the csv format needs 'fields'");
                    Vec::new()
                }
            };
        }
        FormatKind::SingleValue => {
            o.message_key = s.str_or("message_key", "message");
            o.add_newline = s.bool_or("add_newline", true);
        }
        FormatKind::Msgpack => {}
    }
    o
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
