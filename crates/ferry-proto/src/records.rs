//! The records of a JSON, ndjson or msgpack document, as the http input takes them: each record
//! is handed over as one msgpack map (JSON transcoded by [`crate::json`]).
//!
//! - `Json`: an object (one record) or an array of objects.
//! - `Ndjson`: one object (or array of objects) per line; blank lines and `\r\n` allowed.
//! - `Msgpack`: a map or an array of maps; several values one after another are all taken.
//!
//! Anything else (a scalar, an array holding a scalar, broken input) is an error that says
//! where. Never panics, whatever the input (fuzzed: `fuzz/fuzz_targets/records.rs`).

use crate::msgpack::{Head, MsgpackError, Reader};
use bytes::BytesMut;
use std::fmt;

/// How a document's records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Msgpack,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Msgpack => "msgpack",
        }
    }
}

/// Where a record is: its line (ndjson) and its place in an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct At {
    pub line: Option<usize>,
    pub element: Option<u32>,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}")?,
            None => f.write_str("the body")?,
        }
        if let Some(e) = self.element {
            write!(f, ", element {e}")?;
        }
        Ok(())
    }
}

/// Why a document's records were not all taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError<E: fmt::Display> {
    #[error("invalid {format}: {error}")]
    Invalid { format: &'static str, error: String },
    #[error("{at} is not an object but {found}")]
    NotAnObject { at: At, found: &'static str },
    /// The caller refused a record.
    #[error("{0}")]
    Record(E),
}

/// Calls `record` with each record of `doc` (a whole msgpack map) and where it is; returns how
/// many there were. Stops at the first error.
pub fn for_each<E: fmt::Display>(
    format: Format,
    doc: &[u8],
    mut record: impl FnMut(At, &[u8]) -> Result<(), E>,
) -> Result<u64, RecordsError<E>> {
    let invalid = |error: String| RecordsError::Invalid {
        format: format.name(),
        error,
    };
    let mut n = 0;
    match format {
        Format::Json => {
            let mut packed = BytesMut::with_capacity(doc.len());
            crate::json::to_msgpack(doc, &mut packed).map_err(|e| invalid(e.0))?;
            values(&packed, None, format, &mut n, &mut record)?;
        }
        Format::Ndjson => {
            let mut packed = BytesMut::new();
            for (i, line) in doc.split(|b| *b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.trim_ascii().is_empty() {
                    continue;
                }
                packed.clear();
                crate::json::to_msgpack(line, &mut packed)
                    .map_err(|e| invalid(format!("line {}: {}", i + 1, e.0)))?;
                values(&packed, Some(i + 1), format, &mut n, &mut record)?;
            }
        }
        Format::Msgpack => {
            if doc.is_empty() {
                return Err(invalid("the body is empty".into()));
            }
            values(doc, None, format, &mut n, &mut record)?;
        }
    }
    Ok(n)
}

fn values<E: fmt::Display>(
    buf: &[u8],
    line: Option<usize>,
    format: Format,
    n: &mut u64,
    record: &mut impl FnMut(At, &[u8]) -> Result<(), E>,
) -> Result<(), RecordsError<E>> {
    let bad = |e: MsgpackError| RecordsError::Invalid {
        format: format.name(),
        error: e.to_string(),
    };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.peek().map_err(bad)? {
            Head::Map(_) => {
                let map = r.raw_value().map_err(bad)?;
                record(
                    At {
                        line,
                        element: None,
                    },
                    map,
                )
                .map_err(RecordsError::Record)?;
                *n += 1;
            }
            Head::Array(count) => {
                r.head().map_err(bad)?;
                for i in 0..count {
                    let at = At {
                        line,
                        element: Some(i),
                    };
                    match r.peek().map_err(bad)? {
                        Head::Map(_) => {
                            let map = r.raw_value().map_err(bad)?;
                            record(at, map).map_err(RecordsError::Record)?;
                            *n += 1;
                        }
                        other => {
                            return Err(RecordsError::NotAnObject {
                                at,
                                found: other.type_name(),
                            });
                        }
                    }
                }
            }
            other => {
                return Err(RecordsError::NotAnObject {
                    at: At {
                        line,
                        element: None,
                    },
                    found: other.type_name(),
                });
            }
        }
    }
    Ok(())
}

/// One key and its value, each as raw msgpack.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// The key/value pairs of a msgpack map (as [`for_each`] hands it over), each raw.
pub fn pairs(map: &[u8]) -> Result<Vec<Pair<'_>>, MsgpackError> {
    let mut r = Reader::new(map);
    let count = r.map_len()?;
    let mut out = Vec::with_capacity((count as usize).min(map.len() / 2));
    for _ in 0..count {
        let k = r.raw_value()?;
        let v = r.raw_value()?;
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(format: Format, doc: &[u8]) -> Result<u64, RecordsError<String>> {
        for_each(format, doc, |_, map| {
            pairs(map).map(|_| ()).map_err(|e| e.to_string())
        })
    }

    #[test]
    fn objects_arrays_lines_and_concatenated_values_are_records() {
        assert_eq!(count(Format::Json, br#"{"a":1}"#), Ok(1));
        assert_eq!(count(Format::Json, br#"[{"a":1},{"b":2}]"#), Ok(2));
        assert_eq!(
            count(Format::Ndjson, b"{\"a\":1}\r\n\n[{\"a\":2},{}]\n"),
            Ok(3)
        );
        assert_eq!(count(Format::Msgpack, b"\x81\xa1a\x01\x92\x80\x80"), Ok(3));
    }

    #[test]
    fn errors_say_where() {
        let e = count(Format::Json, br#"[{"a":1}, 2]"#)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "the body, element 1 is not an object but int");
        let e = count(Format::Ndjson, b"{}\n\"x\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "line 2 is not an object but str");
        let e = count(Format::Ndjson, b"{}\n{oops\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid ndjson: line 2: "), "{e}");
        let e = count(Format::Msgpack, b"\x81\xa1a")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid msgpack: "), "{e}");
    }
}
