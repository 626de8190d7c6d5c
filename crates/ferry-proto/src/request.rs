//! Parsing one complete frame into a request: `nil` or a batch of events.
//!
//! Grammar (Forward protocol v1; the type of element 2 picks the mode):
//!
//! | mode | shape | element 2 |
//! |---|---|---|
//! | Message | `[tag, time, record, options?]` | anything but array, str, bin |
//! | Forward | `[tag, [[time, record], ...], options?]` | array |
//! | PackedForward | `[tag, payload, options?]` | str or bin holding an entry stream |
//! | CompressedPackedForward | `[tag, payload, {"compressed": "gzip"/"zstd", ...}]` | str or bin |
//!
//! Every mode is normalised to one uncompressed entry stream ([`EventBatch::entries`]), the
//! format [`crate::entries`] walks:
//! - Forward: the bytes of the entries array after its header (a zero-copy slice of the frame);
//! - PackedForward: the payload (a zero-copy slice);
//! - Message: a new small buffer `92 <time> <record>`;
//! - CompressedPackedForward: the payload decompressed under [`Limits`].
//!
//! `parse` checks the request's envelope only; the entries are validated by
//! [`crate::entries::validate`] / [`crate::entries::sanitize`] (a Message-mode event with a float
//! time or a non-map record still produces a batch, and `sanitize` drops it: in_forward skips
//! invalid events but acks the request). A `compressed` option on a Message or Forward request
//! is ignored, as in_forward ignores it there.
//!
//! Recovery: [`RequestError::can_continue`] says whether the connection may go on. It is true
//! for every refusal of a complete frame (the next frame starts right after it) and false only
//! when the bytes handed in are not exactly one msgpack value.

use bytes::{BufMut, Bytes, BytesMut};

use crate::compress::{self, CompressError};
use crate::msgpack::{Head, MsgpackError, Reader};
use crate::options::{Compression, Options, OptionsError};

/// The Forward event mode of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Message,
    Forward,
    PackedForward,
    CompressedPackedForward,
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest decompressed payload accepted (Fluentd's `decompression_size_limit`).
    pub max_decompressed_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: 256 * 1024 * 1024,
        }
    }
}

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A msgpack nil: a legal no-op (TCP keepalive).
    Nil,
    Events(EventBatch),
}

/// The events of one request, as an entry stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBatch {
    pub tag: String,
    pub mode: Mode,
    /// The uncompressed entry stream (see the module doc).
    pub entries: Bytes,
    pub options: Options,
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request is a {found}, not an array")]
    NotArray { found: &'static str },
    #[error("request array has {len} elements")]
    BadArity { len: u32 },
    #[error("tag is a {found}, not a str")]
    TagNotStr { found: &'static str },
    #[error("tag is not valid UTF-8")]
    TagNotUtf8,
    #[error("bad options: {0}")]
    Options(#[from] OptionsError),
    #[error("cannot decompress payload: {0}")]
    Decompress(#[from] CompressError),
    #[error("request is not one complete msgpack value: {0}")]
    Malformed(MsgpackError),
    #[error("{extra} bytes after the request value")]
    TrailingBytes { extra: usize },
}

impl RequestError {
    /// True when the request was skipped but the stream is still in sync (go on reading);
    /// false when the bytes were not one msgpack value (close the connection).
    pub fn can_continue(&self) -> bool {
        !matches!(
            self,
            RequestError::Malformed(_) | RequestError::TrailingBytes { .. }
        )
    }

    /// The opposite of [`RequestError::can_continue`].
    pub fn is_fatal(&self) -> bool {
        !self.can_continue()
    }
}

impl Request {
    /// Parse one complete frame (as split by [`crate::frame::FrameDecoder`]).
    pub fn parse(frame: Bytes, limits: &Limits) -> Result<Request, RequestError> {
        let mut r = Reader::new(&frame);
        let len = match r.peek().map_err(RequestError::Malformed)? {
            Head::Nil => {
                r.head().map_err(RequestError::Malformed)?;
                finish(&r, &frame)?;
                return Ok(Request::Nil);
            }
            Head::Array(n) => {
                r.head().map_err(RequestError::Malformed)?;
                n
            }
            other => {
                check_one_value(&frame)?;
                return Err(RequestError::NotArray {
                    found: other.type_name(),
                });
            }
        };
        let arity_error = || {
            check_one_value(&frame)?;
            Err(RequestError::BadArity { len })
        };
        if !(2..=4).contains(&len) {
            return arity_error();
        }
        let tag = match r.peek().map_err(RequestError::Malformed)? {
            Head::Str(_) => r.str().map_err(RequestError::Malformed)?,
            other => {
                check_one_value(&frame)?;
                return Err(RequestError::TagNotStr {
                    found: other.type_name(),
                });
            }
        };
        let tag = std::str::from_utf8(tag).map_err(|_| RequestError::TagNotUtf8);
        let second = r.peek().map_err(RequestError::Malformed)?;
        let (mode, entries, options_left) = match second {
            Head::Array(n) => {
                if len > 3 {
                    return arity_error();
                }
                r.head().map_err(RequestError::Malformed)?;
                let start = r.pos();
                for _ in 0..n {
                    r.raw_value().map_err(RequestError::Malformed)?;
                }
                (Mode::Forward, frame.slice(start..r.pos()), len - 2)
            }
            Head::Str(_) | Head::Bin(_) => {
                if len > 3 {
                    return arity_error();
                }
                let (payload, _) = r.str_or_bin().map_err(RequestError::Malformed)?;
                (Mode::PackedForward, frame.slice_ref(payload), len - 2)
            }
            _ => {
                if len < 3 {
                    return arity_error();
                }
                let time = r.raw_value().map_err(RequestError::Malformed)?;
                let record = r.raw_value().map_err(RequestError::Malformed)?;
                let mut e = BytesMut::with_capacity(1 + time.len() + record.len());
                e.put_u8(0x92);
                e.put_slice(time);
                e.put_slice(record);
                (Mode::Message, e.freeze(), len - 3)
            }
        };
        let options_raw = if options_left > 0 {
            Some(r.raw_value().map_err(RequestError::Malformed)?)
        } else {
            None
        };
        finish(&r, &frame)?;
        let tag = tag?.to_owned();
        let options = match options_raw {
            Some(raw) => Options::decode(&frame.slice_ref(raw))?,
            None => Options::default(),
        };
        let (mode, entries) = match options.compressed {
            Some(kind @ (Compression::Gzip | Compression::Zstd)) if mode == Mode::PackedForward => {
                let data = compress::decompress(kind, &entries, limits.max_decompressed_bytes)?;
                (Mode::CompressedPackedForward, Bytes::from(data))
            }
            _ => (mode, entries),
        };
        Ok(Request::Events(EventBatch {
            tag,
            mode,
            entries,
            options,
        }))
    }
}

/// Every byte of the frame must have been consumed.
fn finish(r: &Reader<'_>, frame: &[u8]) -> Result<(), RequestError> {
    if r.pos() == frame.len() {
        Ok(())
    } else {
        Err(RequestError::TrailingBytes {
            extra: frame.len() - r.pos(),
        })
    }
}

/// A refused request is only skippable if the frame is exactly one value.
fn check_one_value(frame: &[u8]) -> Result<(), RequestError> {
    let end = crate::msgpack::skip_value(frame, 0).map_err(RequestError::Malformed)?;
    if end == frame.len() {
        Ok(())
    } else {
        Err(RequestError::TrailingBytes {
            extra: frame.len() - end,
        })
    }
}
