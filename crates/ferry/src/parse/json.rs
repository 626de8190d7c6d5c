//! `@type json`: one JSON object per line, transcoded straight to msgpack by
//! [`ferry_proto::json`] (no intermediate tree), the time key taken out.

use super::record::Record;
use super::{ParseError, TimeSpec};
use bytes::BytesMut;
use ferry_proto::json::{KeySeed, ValueSeed, write_tree};
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
