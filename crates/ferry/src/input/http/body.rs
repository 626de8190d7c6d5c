//! A request's events: the body (JSON, ndjson or msgpack, or a `<parse>`) and the query
//! parameters, as Fluentd's in_http reads them, into entries of one batch. A request is taken
//! whole or refused whole: nothing of a request with one bad record is committed.
//!
//! - `json`: an object (one event) or an array of objects (one event each).
//! - `ndjson`: one JSON object (or array of objects) per line; blank lines are skipped.
//! - `msgpack`: a map or an array of maps; several values one after another are all taken
//!   (Fluentd keeps only the first and drops the rest unsaid).
//! - The event time: the `time` query parameter (seconds, a fraction allowed; 0 is now), else the
//!   record's `time_key` (`time`; removed unless `keep_time_key`), read as `<parse>` says (a
//!   number is seconds since the epoch; a string is RFC 3339 or a number, or `time_format`),
//!   else now.

use crate::parse::{ParseError, ParseSetup, Record, TimeSpec};
use bytes::{BufMut, BytesMut};
use ferry_proto::msgpack::{Reader, Value};
use ferry_proto::records::{self, At, RecordsError};
use ferry_proto::time::EventTime;

pub use ferry_proto::records::Format;

/// Why a request's events were refused (answered 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("{0}")]
    Records(#[from] RecordsError<TimeError>),
    #[error("the time parameter {0:?} is not a number of seconds")]
    TimeParameter(String),
    #[error("'json', 'ndjson' or 'msgpack' parameter is required")]
    NoEvents,
    #[error("the <parse> did not read the body: {0}")]
    Parse(ParseError),
}

/// A record's time that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: invalid time in {key:?}: {error}")]
pub struct TimeError {
    at: At,
    key: String,
    error: String,
}

/// What every event of a request gets besides its record.
#[derive(Debug)]
pub struct Common<'a> {
    /// The time of every event (the `time` query parameter), when given.
    pub time: Option<EventTime>,
    /// When an event has no time.
    pub now: EventTime,
    /// Fields added to every record (`HTTP_*`, `QUERY_*`, `REMOTE_ADDR`).
    pub fields: &'a [(String, String)],
}

/// The `time` query parameter: seconds since the epoch; 0 means now.
pub fn time_parameter(text: &str, now: EventTime) -> Result<EventTime, BodyError> {
    let bad = || BodyError::TimeParameter(text.to_string());
    let text = text.trim();
    let secs: f64 = text.parse().map_err(|_| bad())?;
    if secs == 0.0 {
        return Ok(now);
    }
    if !(0.0..4.3e9).contains(&secs) {
        return Err(bad());
    }
    // `seconds.fraction` is read exactly; other forms (exponents) through the float.
    let exact = text
        .split_once('.')
        .map_or(Some((text, "")), Some)
        .and_then(|(s, f)| {
            let s: u128 = s.parse().ok()?;
            if f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let frac: u128 = if f.is_empty() {
                0
            } else {
                format!("{f:0<9}").parse().ok()?
            };
            Some(s * 1_000_000_000 + frac)
        });
    EventTime::from_unix_nanos(exact.unwrap_or((secs * 1e9) as u128)).ok_or_else(bad)
}

/// Entries of one request.
#[derive(Debug, Default)]
pub struct Events {
    pub entries: BytesMut,
    pub records: u64,
}

/// Reads `body` in `format` with the in_http parser's `time` rules, appending to `out`.
pub fn decode(
    format: Format,
    body: &[u8],
    time: &TimeSpec,
    common: &Common<'_>,
    out: &mut Events,
) -> Result<(), BodyError> {
    let mut rec = Record::new();
    let n = records::for_each(format, body, |at, map| {
        event(map, at, time, common, &mut rec, &mut out.entries)
    })?;
    out.records += n;
    Ok(())
}

/// A `<parse>` reads the whole body as one text: one event.
pub fn decode_parsed(
    parse: &ParseSetup,
    body: &[u8],
    common: &Common<'_>,
    out: &mut Events,
) -> Result<(), BodyError> {
    let mut rec = Record::new();
    let parsed = parse.parse(body, &mut rec).map_err(BodyError::Parse)?;
    for (k, v) in common.fields {
        rec.str(k, v.as_bytes());
    }
    rec.write_entry(
        &mut out.entries,
        common.time.or(parsed).unwrap_or(common.now),
    );
    out.records += 1;
    Ok(())
}

/// One record (a whole msgpack map) as an event.
fn event(
    map: &[u8],
    at: At,
    spec: &TimeSpec,
    common: &Common<'_>,
    rec: &mut Record,
    out: &mut BytesMut,
) -> Result<(), TimeError> {
    rec.clear();
    let mut time = None;
    // A map handed over by `records::for_each` is whole: its pairs always read.
    for (key, value) in records::pairs(map).unwrap_or_default() {
        if let Some(time_key) = spec.key.as_deref()
            && key_is(key, time_key)
        {
            if common.time.is_none() {
                time = Some(read_time(value, spec).map_err(|error| TimeError {
                    at,
                    key: time_key.to_string(),
                    error,
                })?);
            }
            if !spec.keep {
                continue;
            }
        }
        rec.buf().put_slice(key);
        rec.buf().put_slice(value);
        rec.add_field();
    }
    for (k, v) in common.fields {
        rec.str(k, v.as_bytes());
    }
    rec.write_entry(out, common.time.or(time).unwrap_or(common.now));
    Ok(())
}

fn key_is(raw: &[u8], name: &str) -> bool {
    let mut r = Reader::new(raw);
    r.str_or_bin().is_ok_and(|(k, _)| k == name.as_bytes())
}

/// A record's time value: a number of seconds, a string as the time rules read it, or an
/// EventTime.
fn read_time(raw: &[u8], spec: &TimeSpec) -> Result<EventTime, String> {
    let (v, _) = Value::decode(raw).map_err(|e| e.to_string())?;
    let number = |secs: f64| {
        spec.from_number(secs)
            .ok_or_else(|| format!("{secs} is not a time"))
    };
    match v {
        Value::UInt(n) => number(n as f64),
        Value::Int(n) => number(n as f64),
        Value::F64(f) => number(f),
        Value::F32(f) => number(f64::from(f)),
        Value::Str(s) => spec.read(&s).map_err(|e| e.to_string()),
        Value::Ext(0, p) if p.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&p);
            Ok(EventTime::from_ext_payload(b))
        }
        other => Err(format!("a time is a number or a string, not {other:?}")),
    }
}

#[cfg(test)]
mod tests;
