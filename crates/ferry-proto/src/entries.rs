//! Walking a PackedForward entry stream without building records.
//!
//! An entry stream is the concatenation of msgpack entries, each `[time, record]`:
//!
//! ```text
//! 92 | d7 00 SSSSSSSS NNNNNNNN | 8n <record pairs> | 92 | ...        (fixarray, EventTime, fixmap)
//! ```
//!
//! What ferry accepts as an entry (the same for every mode: [`crate::request`] normalises Message
//! and Forward modes into this stream):
//! - an array of exactly 2 elements (any array header width: Fluent Bit sends `array32[2]`);
//! - `time`: an integer in `0..=u32::MAX` (seconds; `int_time`), an EventTime extension (type 0,
//!   8 bytes, fixext8 or ext8), or Fluent Bit's `[time, metadata-map]` with either time form;
//! - `record`: a map, every nested value well-formed msgpack.
//!
//! Two kinds of failure:
//! - an **invalid event** (float, str, nil or out-of-range time, a record that is not a map, an
//!   entry that is not a 2-array) is well-formed msgpack: it is counted and skipped, the rest of
//!   the stream is still walked (Fluentd's in_forward skips invalid events and still acks);
//! - **structural breakage** (truncated value, marker 0xc1, nesting deeper than
//!   [`crate::msgpack::MAX_DEPTH`]) ends the walk: the stream cannot be trusted after it.
//!
//! A time of 0 is kept as is (Fluentd replaces it with "now"; that is the receiver's choice).
//! Nanoseconds are not range-checked: the bytes pass through unchanged.

use bytes::{Bytes, BytesMut};

use crate::msgpack::{Head, MsgpackError, read_head, skip_values};
use crate::time::EventTime;

/// One valid entry, borrowed from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub time: EventTime,
    /// The time was an integer (seconds) rather than an EventTime extension.
    pub int_time: bool,
    /// Raw msgpack map from a `[time, metadata]` time element (Fluent Bit).
    pub metadata: Option<&'a [u8]>,
    /// Raw msgpack bytes of the record map.
    pub record: &'a [u8],
    /// Raw msgpack bytes of the whole entry.
    pub raw: &'a [u8],
}

/// Why a well-formed value is not a usable event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// The entry is not an array of two elements.
    NotAnEntry,
    /// The time is of a type that is not a time (float, str, nil, ...).
    BadTimeType(&'static str),
    /// An integer time outside `0..=u32::MAX`.
    TimeOutOfRange,
    /// The `[time, metadata]` form with metadata that is not a map.
    MetadataNotMap(&'static str),
    /// The record is not a map.
    RecordNotMap(&'static str),
}

impl std::fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvalidReason::NotAnEntry => write!(f, "entry is not a [time, record] array"),
            InvalidReason::BadTimeType(t) => write!(f, "time is a {t}"),
            InvalidReason::TimeOutOfRange => write!(f, "integer time out of range"),
            InvalidReason::MetadataNotMap(t) => write!(f, "metadata is a {t}, not a map"),
            InvalidReason::RecordNotMap(t) => write!(f, "record is a {t}, not a map"),
        }
    }
}

/// A problem with one entry. Offsets are from the start of the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Broken msgpack: the walk stops here.
    #[error("malformed entry at offset {offset}: {source}")]
    Malformed {
        offset: usize,
        #[source]
        source: MsgpackError,
    },
    /// A well-formed but unusable event: skipped, the walk goes on.
    #[error("invalid event at offset {offset}: {reason}")]
    Invalid {
        offset: usize,
        reason: InvalidReason,
    },
}

impl EntryError {
    /// True for broken msgpack (nothing after it can be trusted); false for an invalid event.
    pub fn is_structural(&self) -> bool {
        matches!(self, EntryError::Malformed { .. })
    }

    /// Offset of the entry in the stream.
    pub fn offset(&self) -> usize {
        match self {
            EntryError::Malformed { offset, .. } | EntryError::Invalid { offset, .. } => *offset,
        }
    }
}

/// Counts and time range of a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Valid events.
    pub count: u64,
    /// Invalid events (skipped).
    pub invalid: u64,
    pub min_time: Option<EventTime>,
    pub max_time: Option<EventTime>,
}

impl Summary {
    fn add(&mut self, t: EventTime) {
        self.count += 1;
        self.min_time = Some(self.min_time.map_or(t, |m| m.min(t)));
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
    }
}

type Parsed<'a> = (Result<EntryRef<'a>, InvalidReason>, usize);
type TimeParsed<'a> = (
    Result<(EventTime, bool, Option<&'a [u8]>), InvalidReason>,
    usize,
);

/// Parse the time element at `pos`; `nested` is true inside `[time, metadata]`.
#[inline(always)]
fn parse_time<'a>(
    s: &'a [u8],
    pos: usize,
    nested: bool,
    stack: &mut Vec<u64>,
) -> Result<TimeParsed<'a>, MsgpackError> {
    if let Some(&[0xd7, 0x00, a, b, c, d, e, f, g, h]) = s.get(pos..pos + 10) {
        let t = EventTime::from_ext_payload([a, b, c, d, e, f, g, h]);
        return Ok((Ok((t, false, None)), pos + 10));
    }
    let (head, hlen) = read_head(s, pos)?;
    let body = pos + hlen;
    let int_time = |v: Option<u32>| match v {
        Some(sec) => Ok((EventTime::new(sec, 0), true, None)),
        None => Err(InvalidReason::TimeOutOfRange),
    };
    match head {
        Head::UInt(v) => Ok((int_time(u32::try_from(v).ok()), body)),
        Head::Int(v) => Ok((int_time(u32::try_from(v).ok()), body)),
        Head::Ext(0, 8) => match s.get(body..body + 8) {
            Some(&[a, b, c, d, e, f, g, h]) => {
                let t = EventTime::from_ext_payload([a, b, c, d, e, f, g, h]);
                Ok((Ok((t, false, None)), body + 8))
            }
            _ => Err(MsgpackError::Truncated { offset: pos }),
        },
        Head::Array(2) if !nested => {
            let (inner, after_time) = parse_time(s, body, true, stack)?;
            let meta_start = after_time;
            let (meta_head, _) = read_head(s, meta_start)?;
            let end = skip_values(s, meta_start, 1, 2, stack)?;
            let result = match (inner, meta_head) {
                (Err(reason), _) => Err(reason),
                (Ok((t, int, _)), Head::Map(_)) => Ok((t, int, Some(&s[meta_start..end]))),
                (Ok(_), other) => Err(InvalidReason::MetadataNotMap(other.type_name())),
            };
            Ok((result, end))
        }
        other => {
            let end = skip_values(s, pos, 1, 1, stack)?;
            Ok((Err(InvalidReason::BadTimeType(other.type_name())), end))
        }
    }
}

/// Parse the entry starting at `start`; returns it (or why it is invalid) and where it ends.
#[inline(always)]
fn parse_entry<'a>(
    s: &'a [u8],
    start: usize,
    stack: &mut Vec<u64>,
) -> Result<Parsed<'a>, MsgpackError> {
    let (n, pos) = match s.get(start) {
        Some(&0x92) => (2, start + 1),
        _ => match read_head(s, start)? {
            (Head::Array(n), hlen) => (n, start + hlen),
            _ => {
                let end = skip_values(s, start, 1, 0, stack)?;
                return Ok((Err(InvalidReason::NotAnEntry), end));
            }
        },
    };
    if n != 2 {
        let end = skip_values(s, pos, u64::from(n), 1, stack)?;
        return Ok((Err(InvalidReason::NotAnEntry), end));
    }
    let (time, record_start) = parse_time(s, pos, false, stack)?;
    let (pairs, body) = match s.get(record_start) {
        Some(&b @ 0x80..=0x8f) => (u64::from(b & 0x0f), record_start + 1),
        _ => match read_head(s, record_start)? {
            (Head::Map(n), hlen) => (u64::from(n), record_start + hlen),
            (other, _) => {
                let end = skip_values(s, record_start, 1, 1, stack)?;
                let reason = time
                    .err()
                    .unwrap_or(InvalidReason::RecordNotMap(other.type_name()));
                return Ok((Err(reason), end));
            }
        },
    };
    let end = skip_values(s, body, 2 * pairs, 2, stack)?;
    let entry = time.map(|(time, int_time, metadata)| EntryRef {
        time,
        int_time,
        metadata,
        record: &s[record_start..end],
        raw: &s[start..end],
    });
    Ok((entry, end))
}

/// Iterator over the entries of a stream. Yields invalid events as [`EntryError::Invalid`] and
/// goes on; after an [`EntryError::Malformed`] it yields nothing more.
#[derive(Debug)]
pub struct Entries<'a> {
    stream: &'a [u8],
    pos: usize,
    stack: Vec<u64>,
    failed: bool,
}

/// Walk the entries of `stream`.
pub fn iter(stream: &[u8]) -> Entries<'_> {
    Entries {
        stream,
        pos: 0,
        stack: Vec::new(),
        failed: false,
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<EntryRef<'a>, EntryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.stream.len() {
            return None;
        }
        let offset = self.pos;
        match parse_entry(self.stream, offset, &mut self.stack) {
            Ok((entry, end)) => {
                self.pos = end;
                Some(entry.map_err(|reason| EntryError::Invalid { offset, reason }))
            }
            Err(source) => {
                self.failed = true;
                Some(Err(EntryError::Malformed { offset, source }))
            }
        }
    }
}

/// Validate every entry of `stream` (see the module doc). Invalid events are counted in
/// [`Summary::invalid`]; structural breakage is an error.
pub fn validate(stream: &[u8]) -> Result<Summary, EntryError> {
    let mut summary = Summary::default();
    let mut stack = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        let (entry, end) =
            parse_entry(stream, pos, &mut stack).map_err(|source| EntryError::Malformed {
                offset: pos,
                source,
            })?;
        match entry {
            Ok(e) => summary.add(e.time),
            Err(_) => summary.invalid += 1,
        }
        pos = end;
    }
    Ok(summary)
}

/// Validate `stream` and drop invalid events: the stream itself (zero copy) when every event is
/// valid, else a new stream holding only the valid entries' bytes. Structural breakage is an error.
pub fn sanitize(stream: Bytes) -> Result<(Bytes, Summary), EntryError> {
    let summary = validate(&stream)?;
    if summary.invalid == 0 {
        return Ok((stream, summary));
    }
    let mut out = BytesMut::with_capacity(stream.len());
    for entry in iter(&stream) {
        match entry {
            Ok(e) => out.extend_from_slice(e.raw),
            Err(e) if e.is_structural() => return Err(e),
            Err(_) => {}
        }
    }
    Ok((out.freeze(), summary))
}
