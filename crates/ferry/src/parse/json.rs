//! `@type json`: one JSON object per line, transcoded straight to msgpack by
//! [`ferry_proto::json`] (no intermediate tree), the time key taken out.

use super::record::Record;
use super::{ParseError, TimeSpec};
use bytes::BytesMut;
use ferry_proto::json::{KeySeed, Scalar, ValueSeed, flat_object, write_tree};
use ferry_proto::msgpack::write_str;
use ferry_proto::time::EventTime;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::fmt;

#[derive(Debug, Clone)]
pub struct JsonParser {
    pub time: TimeSpec,
}

impl JsonParser {
    pub fn parse(&self, line: &[u8], rec: &mut Record) -> Result<Option<EventTime>, ParseError> {
        // Most lines are flat objects of plain values: read in one pass. Any other line is
        // read by serde_json, from the same start.
        let mark = rec.mark();
        if let Some(time) = self.flat(line, rec) {
            return Ok(time);
        }
        rec.back_to(mark);
        self.parse_full(line, rec)
    }

    /// Any line, by serde_json.
    fn parse_full(&self, line: &[u8], rec: &mut Record) -> Result<Option<EventTime>, ParseError> {
        if line.trim_ascii_start().first() != Some(&b'{') {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
                    Ok(_) => ParseError::NotAnObject,
                    Err(e) => ParseError::Json(e.to_string()),
                },
            );
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        let top = TopLevel {
            rec,
            spec: &self.time,
        };
        let time = de
            .deserialize_map(top)
            .map_err(|e| ParseError::Json(e.to_string()))?;
        de.end().map_err(|e| ParseError::Json(e.to_string()))?;
        time
    }
}

impl JsonParser {
    /// A flat object ([`flat_object`]) into `rec`; `None` for any other line, and for a time
    /// key whose value is not a plain string or that does not parse (the full parser reads it
    /// and reports what is wrong).
    fn flat(&self, line: &[u8], rec: &mut Record) -> Option<Option<EventTime>> {
        let spec = &self.time;
        let time_key = spec.key.as_deref().map(str::as_bytes);
        let mut time = None;
        flat_object(line, |key, value| {
            if Some(key) == time_key {
                let Scalar::Str(text) = value else {
                    return false;
                };
                match spec.read(text) {
                    Ok(t) => time = Some(t),
                    Err(_) => return false,
                }
                if !spec.keep {
                    return true;
                }
            }
            write_str(rec.buf(), key);
            value.write(rec.buf());
            rec.add_field();
            true
        })?;
        Some(time)
    }
}

/// Any JSON document as msgpack, appended to `out` ([`ferry_proto::json::to_msgpack`]).
pub fn to_msgpack(json: &[u8], out: &mut BytesMut) -> Result<(), ParseError> {
    ferry_proto::json::to_msgpack(json, out).map_err(|e| ParseError::Json(e.0))
}

/// Any JSON document as a msgpack [`ferry_proto::msgpack::Value`].
pub fn to_value(json: &[u8]) -> Result<ferry_proto::msgpack::Value, ParseError> {
    ferry_proto::json::to_value(json).map_err(|e| ParseError::Json(e.0))
}

/// The top-level object: fields go into the record, the time key is taken out.
struct TopLevel<'a> {
    rec: &'a mut Record,
    spec: &'a TimeSpec,
}

// The per-line path: `#[inline]` keeps the visitors inlined into `JsonParser::parse` now that
// `to_msgpack` instantiates the same `ValueSeed` (without it the tail's JSON rate fell ~10 %).
impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Result<Option<EventTime>, ParseError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut time = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if self.spec.key.as_deref() == Some(key.as_str()) {
                let value: serde_json::Value = map.next_value()?;
                let parsed = match &value {
                    serde_json::Value::String(s) => self.spec.read(s.as_bytes()),
                    serde_json::Value::Number(n) => n
                        .as_f64()
                        .and_then(|f| self.spec.from_number(f))
                        .ok_or_else(|| ParseError::Time(n.to_string())),
                    other => Err(ParseError::Time(other.to_string())),
                };
                match parsed {
                    Ok(t) => time = Some(t),
                    Err(e) => return Ok(Err(e)),
                }
                if self.spec.keep {
                    write_str(self.rec.buf(), key.as_str().as_bytes());
                    write_tree(self.rec.buf(), &value);
                    self.rec.add_field();
                }
                continue;
            }
            write_str(self.rec.buf(), key.as_str().as_bytes());
            map.next_value_seed(ValueSeed {
                out: self.rec.buf(),
            })?;
            self.rec.add_field();
        }
        Ok(Ok(time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Parser;
    use crate::parse::tests::setup;
    use proptest::prelude::*;

    fn json_parser(conf: &str) -> JsonParser {
        match setup(conf).parser {
            Parser::Json(p) => p,
            _ => unreachable!("a json parser"),
        }
    }

    /// A JSON value's text, plain or not: what log lines hold, and what the one-pass read
    /// must leave to serde_json.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,24}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            "[a-z]{0,8}".prop_map(|s| format!("\"{s}\"")),
            "\\PC{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap_or_default()),
            Just("-0".to_string()),
            Just("18446744073709551616".to_string()),
            Just("-9223372036854775808".to_string()),
            Just("01".to_string()),
            Just("1e3".to_string()),
            Just("1.50".to_string()),
            Just("-0.0".to_string()),
            Just("1E+5".to_string()),
            Just("123.456e-7".to_string()),
            Just("0.30000000000000004".to_string()),
            Just("3.14159265358979323846264338327950288419716939937510".to_string()),
            Just("2.2250738585072011e-308".to_string()),
            Just("1e400".to_string()),
            Just("1.".to_string()),
            "[0-9]{1,25}\\.[0-9]{1,25}(e-?[0-9]{1,3})?",
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            Just("{\"n\":[1,\"x\"]}".to_string()),
            Just("\"tab\there\"".to_string()),
            Just("\"2026-12-07T10:00:00Z\"".to_string()),
            Just("\"not a time\"".to_string()),
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("time".to_string()),
            "[a-z]{1,6}",
            Just("k\\\"q".to_string())
        ];
        let ws = prop_oneof![Just(""), Just(" "), Just("\t"), Just(" \r")];
        (
            proptest::collection::vec((key, value(), ws.clone()), 0..6),
            ws,
            any::<bool>(),
        )
            .prop_map(|(pairs, pad, broken)| {
                let body: Vec<String> = pairs
                    .iter()
                    .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                    .collect();
                let tail = if broken { "," } else { "" };
                format!("{pad}{{{}{tail}}}{pad}", body.join(","))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn the_one_pass_read_gives_what_serde_json_gives(line in line(), keep in any::<bool>()) {
            let conf = if keep {
                "@type json\ntime_format %Y-%m-%dT%H:%M:%SZ\nkeep_time_key true"
            } else {
                "@type json\ntime_format %Y-%m-%dT%H:%M:%SZ"
            };
            let p = json_parser(conf);
            let (mut fast, mut full) = (Record::new(), Record::new());
            let a = p.parse(line.as_bytes(), &mut fast);
            let b = p.parse_full(line.as_bytes(), &mut full);
            prop_assert_eq!(format!("{a:?}"), format!("{b:?}"), "{}", line);
            if a.is_ok() {
                let (mut x, mut y) = (BytesMut::new(), BytesMut::new());
                fast.write_map(&mut x);
                full.write_map(&mut y);
                prop_assert_eq!(&x[..], &y[..], "{}", line);
            }
        }
    }
}
