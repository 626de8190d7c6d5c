//! Parsers of delimited lines: `ltsv`, `csv` and `tsv`, and Kubernetes' CRI log lines.

use super::record::{FieldType, Record};
use super::{ParseError, TimeSpec};
use ferry_config::Section;
use ferry_proto::time::EventTime;

/// Writes one named field, or reads it as the time when it is the time key.
fn field(
    rec: &mut Record,
    spec: &TimeSpec,
    types: &[(String, FieldType)],
    name: &str,
    value: &[u8],
    time: &mut Option<EventTime>,
) -> Result<(), ParseError> {
    if spec.key.as_deref() == Some(name) {
        *time = Some(spec.read(value)?);
        if !spec.keep {
            return Ok(());
        }
    }
    let ty = types
        .iter()
        .find(|(k, _)| k == name)
        .map_or(FieldType::String, |(_, t)| *t);
    rec.typed(name, value, ty);
    Ok(())
}

fn one_byte(s: &Section<'_>, key: &str, default: u8) -> u8 {
    match s.str(key) {
        None => default,
        Some(v) => {
            let v = match v.as_str() {
                "\\t" => "\t",
                other => other,
            };
            match v.as_bytes() {
                [b] => *b,
                _ => {
                    s.error(Some(key), format!("{key} must be a single character"));
                    default
                }
            }
        }
    }
}

/// `@type ltsv`: `label:value` pairs separated by tabs.
#[derive(Debug, Clone)]
pub struct Ltsv {
    delimiter: u8,
    label_delimiter: u8,
    time: TimeSpec,
    types: Vec<(String, FieldType)>,
}

impl Ltsv {
    pub fn from_section(s: &Section<'_>, time: TimeSpec, types: Vec<(String, FieldType)>) -> Self {
        Self {
            delimiter: one_byte(s, "delimiter", b'\t'),
            label_delimiter: one_byte(s, "label_delimiter", b':'),
            time,
            types,
        }
    }

    pub fn parse(&self, line: &[u8], rec: &mut Record) -> Result<Option<EventTime>, ParseError> {
        let mut time = None;
        for pair in line.split(|b| *b == self.delimiter) {
            if pair.is_empty() {
                continue;
            }
            let Some(at) = pair.iter().position(|b| *b == self.label_delimiter) else {
                return Err(ParseError::NoMatch);
            };
            let label = String::from_utf8_lossy(&pair[..at]);
            field(
                rec,
                &self.time,
                &self.types,
                &label,
                &pair[at + 1..],
                &mut time,
            )?;
        }
        Ok(time)
    }
}

/// `@type csv` (RFC 4180 quoting) and `@type tsv` (plain split): `keys` name the fields in
/// order; fields past the keys are dropped.
#[derive(Debug, Clone)]
pub struct Csv {
    keys: Vec<String>,
    delimiter: u8,
    quoted: bool,
    time: TimeSpec,
    types: Vec<(String, FieldType)>,
}

impl Csv {
    pub fn from_section(
        s: &Section<'_>,
        default_delimiter: u8,
        time: TimeSpec,
        types: Vec<(String, FieldType)>,
    ) -> Self {
        let keys = match s.array("keys") {
            Some(k) if !k.is_empty() => k,
            _ => {
                s.error(None, "missing required parameter 'keys' in <parse>");
                Vec::new()
            }
        };
        let _ = s.str("parser_type");
        let _ = s.str("parser_engine");
        s.no_effect("parser_type", "ferry has one CSV reader");
        s.no_effect("parser_engine", "ferry has one CSV reader");
        Self {
            keys,
            delimiter: one_byte(s, "delimiter", default_delimiter),
            quoted: default_delimiter == b',',
            time,
            types,
        }
    }

    pub fn parse(&self, line: &[u8], rec: &mut Record) -> Result<Option<EventTime>, ParseError> {
        let mut time = None;
        if self.quoted {
            let mut fields = CsvFields::new(line, self.delimiter);
            for key in &self.keys {
                let Some(value) = fields.next_field()? else {
                    break;
                };
                field(rec, &self.time, &self.types, key, &value, &mut time)?;
            }
        } else {
            for (key, value) in self.keys.iter().zip(line.split(|b| *b == self.delimiter)) {
                field(rec, &self.time, &self.types, key, value, &mut time)?;
            }
        }
        Ok(time)
    }
}

/// Splits one CSV line; quoted fields may hold the delimiter and `""` for a quote.
struct CsvFields<'a> {
    line: &'a [u8],
    pos: usize,
    done: bool,
    delimiter: u8,
}

impl<'a> CsvFields<'a> {
    fn new(line: &'a [u8], delimiter: u8) -> Self {
        Self {
            line,
            pos: 0,
            done: false,
            delimiter,
        }
    }

    fn next_field(&mut self) -> Result<Option<std::borrow::Cow<'a, [u8]>>, ParseError> {
        if self.done {
            return Ok(None);
        }
        let rest = self.line.get(self.pos..).unwrap_or_default();
        if rest.first() == Some(&b'"') {
            let mut value = Vec::new();
            let mut i = 1;
            loop {
                match rest.get(i) {
                    None => return Err(ParseError::NoMatch), // unclosed quote
                    Some(b'"') if rest.get(i + 1) == Some(&b'"') => {
                        value.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b) => {
                        value.push(*b);
                        i += 1;
                    }
                }
            }
            match rest.get(i) {
                None => self.done = true,
                Some(b) if *b == self.delimiter => self.pos += i + 1,
                Some(_) => return Err(ParseError::NoMatch),
            }
            return Ok(Some(value.into()));
        }
        match rest.iter().position(|b| *b == self.delimiter) {
            Some(end) => {
                self.pos += end + 1;
                Ok(Some(rest[..end].into()))
            }
            None => {
                self.done = true;
                Ok(Some(rest.into()))
            }
        }
    }
}

/// `@type cri`: `<RFC 3339 time> <stream> <logtag> <message>` as containerd and CRI-O write
/// them. `P` lines (a long line split by the runtime) are records of their own, as with
/// Fluentd's cri parser.
#[derive(Debug, Clone)]
pub struct Cri {
    message_key: String,
    merge_cri_fields: bool,
    time: TimeSpec,
}

impl Cri {
    pub fn from_section(s: &Section<'_>, mut time: TimeSpec) -> Self {
        if !matches!(time.parse, super::TimeParse::Format(Some(_))) {
            time.parse = super::TimeParse::Format(None);
        }
        Self {
            message_key: s.str_or("message_key", "message"),
            merge_cri_fields: s.bool_or("merge_cri_fields", true),
            time,
        }
    }

    pub fn parse(&self, line: &[u8], rec: &mut Record) -> Result<Option<EventTime>, ParseError> {
        let Some(l) = super::partial::CriLine::split(line) else {
            return Err(ParseError::NoMatch);
        };
        let t = self.time.read(l.time)?;
        if self.merge_cri_fields {
            rec.str("stream", l.stream);
            rec.str("logtag", l.logtag);
        }
        rec.str(&self.message_key, l.message);
        Ok(Some(t))
    }
}
