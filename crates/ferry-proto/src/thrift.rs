//! Thrift's binary protocol, as much as Scribe and fb303 need: calls cut from a stream (framed
//! or unframed transport, strict or old-style message headers), the `Log` call's entries, the
//! replies, and the client side of `Log`.
//!
//! Bounded: a frame or an unframed message larger than the limit is an error before it is held;
//! list, map and string lengths are checked against the bytes that are there; nesting is
//! limited. Never panics on any input (fuzzed: `fuzz/fuzz_targets/thrift.rs`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Thrift field and element types.
pub mod ttype {
    pub const STOP: u8 = 0;
    pub const VOID: u8 = 1;
    pub const BOOL: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const I16: u8 = 6;
    pub const I32: u8 = 8;
    pub const I64: u8 = 10;
    pub const STRING: u8 = 11;
    pub const STRUCT: u8 = 12;
    pub const MAP: u8 = 13;
    pub const SET: u8 = 14;
    pub const LIST: u8 = 15;
}

/// Message types.
pub const CALL: u8 = 1;
pub const REPLY: u8 = 2;
pub const EXCEPTION: u8 = 3;
pub const ONEWAY: u8 = 4;

/// `TApplicationException` types.
pub const UNKNOWN_METHOD: i32 = 1;
pub const PROTOCOL_ERROR: i32 = 7;

const VERSION_1: u32 = 0x8001_0000;
const MAX_DEPTH: usize = 64;

/// Why bytes are not a Thrift message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThriftError {
    #[error("a frame of {size} bytes is over the limit of {limit}")]
    FrameTooLarge { size: u64, limit: usize },
    #[error("a message of over {limit} bytes (unframed)")]
    MessageTooLarge { limit: usize },
    #[error("the frame ends inside the message")]
    Truncated,
    #[error("bad message header: {0}")]
    Header(String),
    #[error("unknown thrift type {0}")]
    UnknownType(u8),
    #[error("a length of {0} is more than the bytes left")]
    Length(i64),
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("field {field} has type {found}, expected {expected}")]
    WrongType { field: i16, found: u8, expected: u8 },
    #[error("{0} bytes after the message in its frame")]
    Trailing(usize),
}

/// How calls are cut from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Each message after a 4-byte big-endian length (scribed's default).
    Framed,
    /// Messages one after another.
    Unframed,
}

/// One message: its header and its argument (or result) struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub name: Bytes,
    pub kind: u8,
    pub seqid: i32,
    /// The header was strict (versioned); a reply uses the same form.
    pub strict: bool,
    /// The struct after the header, whole.
    pub body: Bytes,
}

/// Cuts messages from one connection's bytes.
#[derive(Debug, Clone)]
pub struct Decoder {
    transport: Transport,
    limit: usize,
}

impl Decoder {
    /// `limit` bounds a frame (framed) or a message (unframed).
    pub fn new(transport: Transport, limit: usize) -> Self {
        Self { transport, limit }
    }

    /// The next whole message at the front of `buf` (taken off it), `None` until one is there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ThriftError> {
        match self.transport {
            Transport::Framed => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if buf[0] == 0x80 && buf[1] == 0x01 {
                    return Err(ThriftError::Header(
                        "an unframed message on a framed transport (set is_framed false)".into(),
                    ));
                }
                if size as usize > self.limit || size & 0x8000_0000 != 0 {
                    return Err(ThriftError::FrameTooLarge {
                        size: u64::from(size),
                        limit: self.limit,
                    });
                }
                let size = size as usize;
                if buf.len() < 4 + size {
                    buf.reserve(4 + size - buf.len());
                    return Ok(None);
                }
                buf.advance(4);
                let frame = buf.split_to(size).freeze();
                let (msg, used) = parse_message(&frame, true)?.ok_or(ThriftError::Truncated)?;
                if used != frame.len() {
                    return Err(ThriftError::Trailing(frame.len() - used));
                }
                Ok(Some(msg))
            }
            Transport::Unframed => match parse_message(buf, false)? {
                Some((_, used)) => {
                    let bytes = buf.split_to(used).freeze();
                    // Parsed again from the owned bytes so that the body is a slice of them.
                    let (msg, _) = parse_message(&bytes, true)?.ok_or(ThriftError::Truncated)?;
                    Ok(Some(msg))
                }
                None if buf.len() > self.limit => {
                    Err(ThriftError::MessageTooLarge { limit: self.limit })
                }
                None => Ok(None),
            },
        }
    }
}

/// A cursor over bytes that may end early: `None` from a read means "more bytes needed".
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The buffer is the whole message (a frame): a length past its end is an error, not a
    /// wait for more bytes.
    whole: bool,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// In a whole message, `n` items of at least `each` bytes must fit in what is left.
    fn fits(&self, n: i64, each: i64) -> Result<(), ThriftError> {
        if self.whole && n.saturating_mul(each) > self.left() as i64 {
            return Err(ThriftError::Length(n));
        }
        Ok(())
    }
}

/// Parses a message at the front of `buf`: `Ok(None)` when it is not whole yet. Lengths are
/// checked against what the message could hold only once the bytes are there, so a prefix is
/// never an error unless it is already wrong.
fn parse_message(buf: &[u8], whole: bool) -> Result<Option<(Message, usize)>, ThriftError> {
    let mut c = Cursor { buf, pos: 0, whole };
    let Some(first) = c.i32() else {
        return Ok(None);
    };
    let (name, kind, strict) = if first < 0 {
        let word = first as u32;
        if word & 0xffff_0000 != VERSION_1 {
            return Err(ThriftError::Header(format!(
                "version {:#x} is not 1",
                word & 0xffff_0000
            )));
        }
        let Some(len) = c.i32() else {
            return Ok(None);
        };
        let Some(name) = name_of(&mut c, len)? else {
            return Ok(None);
        };
        (name, (word & 0xff) as u8, true)
    } else {
        let Some(name) = name_of(&mut c, first)? else {
            return Ok(None);
        };
        let Some(kind) = c.u8() else {
            return Ok(None);
        };
        (name, kind, false)
    };
    if !(CALL..=ONEWAY).contains(&kind) {
        return Err(ThriftError::Header(format!("message type {kind}")));
    }
    let Some(seqid) = c.i32() else {
        return Ok(None);
    };
    let body_start = c.pos;
    match skip(&mut c, ttype::STRUCT, 0)? {
        Some(()) => {}
        None => return Ok(None),
    }
    let msg = Message {
        name: Bytes::copy_from_slice(name),
        kind,
        seqid,
        strict,
        body: Bytes::copy_from_slice(&buf[body_start..c.pos]),
    };
    Ok(Some((msg, c.pos)))
}

fn name_of<'a>(c: &mut Cursor<'a>, len: i32) -> Result<Option<&'a [u8]>, ThriftError> {
    if !(0..=256).contains(&len) {
        return Err(ThriftError::Header(format!("method name of {len} bytes")));
    }
    Ok(c.take(len as usize))
}

/// Skips one value of type `t`; `Ok(None)` when the bytes end first.
fn skip(c: &mut Cursor<'_>, t: u8, depth: usize) -> Result<Option<()>, ThriftError> {
    if depth > MAX_DEPTH {
        return Err(ThriftError::TooDeep);
    }
    let fixed = match t {
        ttype::BOOL | ttype::BYTE => Some(1),
        ttype::I16 => Some(2),
        ttype::I32 => Some(4),
        ttype::DOUBLE | ttype::I64 => Some(8),
        _ => None,
    };
    if let Some(n) = fixed {
        return Ok(c.take(n).map(|_| ()));
    }
    match t {
        ttype::STRING => {
            let Some(len) = c.i32() else { return Ok(None) };
            if len < 0 {
                return Err(ThriftError::Length(i64::from(len)));
            }
            c.fits(i64::from(len), 1)?;
            Ok(c.take(len as usize).map(|_| ()))
        }
        ttype::STRUCT => loop {
            let Some(ft) = c.u8() else { return Ok(None) };
            if ft == ttype::STOP {
                return Ok(Some(()));
            }
            if c.i16().is_none() {
                return Ok(None);
            }
            if skip(c, ft, depth + 1)?.is_none() {
                return Ok(None);
            }
        },
        ttype::LIST | ttype::SET => {
            let (Some(et), Some(n)) = (c.u8(), c.i32()) else {
                return Ok(None);
            };
            check_type(et)?;
            if n < 0 {
                return Err(ThriftError::Length(i64::from(n)));
            }
            c.fits(i64::from(n), 1)?;
            for _ in 0..n {
                if skip(c, et, depth + 1)?.is_none() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        }
        ttype::MAP => {
            let (Some(kt), Some(vt), Some(n)) = (c.u8(), c.u8(), c.i32()) else {
                return Ok(None);
            };
            if n < 0 {
                return Err(ThriftError::Length(i64::from(n)));
            }
            c.fits(i64::from(n), 2)?;
            if n > 0 {
                check_type(kt)?;
                check_type(vt)?;
            }
            for _ in 0..n {
                if skip(c, kt, depth + 1)?.is_none() || skip(c, vt, depth + 1)?.is_none() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        }
        other => Err(ThriftError::UnknownType(other)),
    }
}

fn check_type(t: u8) -> Result<(), ThriftError> {
    match t {
        ttype::BOOL
        | ttype::BYTE
        | ttype::DOUBLE
        | ttype::I16
        | ttype::I32
        | ttype::I64
        | ttype::STRING
        | ttype::STRUCT
        | ttype::MAP
        | ttype::SET
        | ttype::LIST => Ok(()),
        other => Err(ThriftError::UnknownType(other)),
    }
}

/// Skips a whole value known to be there (the message was already skipped once).
fn skip_whole(c: &mut Cursor<'_>, t: u8) -> Result<(), ThriftError> {
    skip(c, t, 0)?.ok_or(ThriftError::Truncated)
}

/// One Scribe entry: (category, message).
pub type LogEntry<'a> = (&'a [u8], &'a [u8]);

/// The entries of a `Log(1: list<LogEntry{1: category, 2: message}> messages)` call's argument
/// struct, in order: `(category, message)`. Unknown fields are skipped; a missing field is
/// empty.
pub fn log_entries(args: &[u8]) -> Result<Vec<LogEntry<'_>>, ThriftError> {
    let mut c = Cursor {
        buf: args,
        pos: 0,
        whole: true,
    };
    let mut out = Vec::new();
    loop {
        let ft = c.u8().ok_or(ThriftError::Truncated)?;
        if ft == ttype::STOP {
            return Ok(out);
        }
        let id = c.i16().ok_or(ThriftError::Truncated)?;
        if id != 1 {
            skip_whole(&mut c, ft)?;
            continue;
        }
        if ft != ttype::LIST {
            return Err(ThriftError::WrongType {
                field: id,
                found: ft,
                expected: ttype::LIST,
            });
        }
        let et = c.u8().ok_or(ThriftError::Truncated)?;
        let n = c.i32().ok_or(ThriftError::Truncated)?;
        // Each entry takes at least one byte (its stop).
        if n < 0 || n as usize > c.left() {
            return Err(ThriftError::Length(i64::from(n)));
        }
        if et != ttype::STRUCT {
            return Err(ThriftError::WrongType {
                field: id,
                found: et,
                expected: ttype::STRUCT,
            });
        }
        out.reserve(n as usize);
        for _ in 0..n {
            out.push(log_entry(&mut c)?);
        }
    }
}

fn log_entry<'a>(c: &mut Cursor<'a>) -> Result<LogEntry<'a>, ThriftError> {
    let (mut category, mut message): (&[u8], &[u8]) = (b"", b"");
    loop {
        let ft = c.u8().ok_or(ThriftError::Truncated)?;
        if ft == ttype::STOP {
            return Ok((category, message));
        }
        let id = c.i16().ok_or(ThriftError::Truncated)?;
        if id == 1 || id == 2 {
            if ft != ttype::STRING {
                return Err(ThriftError::WrongType {
                    field: id,
                    found: ft,
                    expected: ttype::STRING,
                });
            }
            let len = c.i32().ok_or(ThriftError::Truncated)?;
            if len < 0 || len as usize > c.left() {
                return Err(ThriftError::Length(i64::from(len)));
            }
            let s = c.take(len as usize).ok_or(ThriftError::Truncated)?;
            if id == 1 {
                category = s;
            } else {
                message = s;
            }
        } else {
            skip_whole(c, ft)?;
        }
    }
}

/// The string field `id` of an argument struct (`getCounter(1: key)`), if there.
pub fn string_field(args: &[u8], want: i16) -> Result<Option<&[u8]>, ThriftError> {
    let mut c = Cursor {
        buf: args,
        pos: 0,
        whole: true,
    };
    loop {
        let ft = c.u8().ok_or(ThriftError::Truncated)?;
        if ft == ttype::STOP {
            return Ok(None);
        }
        let id = c.i16().ok_or(ThriftError::Truncated)?;
        if id == want && ft == ttype::STRING {
            let len = c.i32().ok_or(ThriftError::Truncated)?;
            if len < 0 {
                return Err(ThriftError::Length(i64::from(len)));
            }
            return c.take(len as usize).map(Some).ok_or(ThriftError::Truncated);
        }
        skip_whole(&mut c, ft)?;
    }
}

/// A reply's value (field 0 of the result struct).
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Void,
    I32(i32),
    I64(i64),
    Str(&'a [u8]),
    StrI64Map(&'a [(String, i64)]),
    StrStrMap(&'a [(String, String)]),
}

fn header(out: &mut BytesMut, name: &[u8], kind: u8, seqid: i32, strict: bool) {
    if strict {
        out.put_u32(VERSION_1 | u32::from(kind));
        out.put_i32(name.len() as i32);
        out.put_slice(name);
    } else {
        out.put_i32(name.len() as i32);
        out.put_slice(name);
        out.put_u8(kind);
    }
    out.put_i32(seqid);
}

fn put_string(out: &mut BytesMut, s: &[u8]) {
    out.put_i32(s.len() as i32);
    out.put_slice(s);
}

/// Prefixes a frame's length when the transport is framed (`at` is where the message starts).
fn finish_frame(out: &mut BytesMut, at: usize, transport: Transport) {
    if transport == Transport::Framed {
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

fn start_frame(out: &mut BytesMut, transport: Transport) -> usize {
    let at = out.len();
    if transport == Transport::Framed {
        out.put_u32(0);
    }
    at
}

/// Appends the reply to `call` carrying `value`, in the header form the call used.
pub fn reply(out: &mut BytesMut, call: &Message, value: &Value<'_>, transport: Transport) {
    let at = start_frame(out, transport);
    header(out, &call.name, REPLY, call.seqid, call.strict);
    match value {
        Value::Void => {}
        Value::I32(v) => {
            out.put_u8(ttype::I32);
            out.put_i16(0);
            out.put_i32(*v);
        }
        Value::I64(v) => {
            out.put_u8(ttype::I64);
            out.put_i16(0);
            out.put_i64(*v);
        }
        Value::Str(s) => {
            out.put_u8(ttype::STRING);
            out.put_i16(0);
            put_string(out, s);
        }
        Value::StrI64Map(m) => {
            out.put_u8(ttype::MAP);
            out.put_i16(0);
            out.put_u8(ttype::STRING);
            out.put_u8(ttype::I64);
            out.put_i32(m.len() as i32);
            for (k, v) in *m {
                put_string(out, k.as_bytes());
                out.put_i64(*v);
            }
        }
        Value::StrStrMap(m) => {
            out.put_u8(ttype::MAP);
            out.put_i16(0);
            out.put_u8(ttype::STRING);
            out.put_u8(ttype::STRING);
            out.put_i32(m.len() as i32);
            for (k, v) in *m {
                put_string(out, k.as_bytes());
                put_string(out, v.as_bytes());
            }
        }
    }
    out.put_u8(ttype::STOP);
    finish_frame(out, at, transport);
}

/// Appends a `TApplicationException` answering `call` (or a message whose header could not be
/// read: `name` empty, `seqid` 0).
pub fn exception(
    out: &mut BytesMut,
    name: &[u8],
    seqid: i32,
    strict: bool,
    kind: i32,
    message: &str,
    transport: Transport,
) {
    let at = start_frame(out, transport);
    header(out, name, EXCEPTION, seqid, strict);
    out.put_u8(ttype::STRING);
    out.put_i16(1);
    put_string(out, message.as_bytes());
    out.put_u8(ttype::I32);
    out.put_i16(2);
    out.put_i32(kind);
    out.put_u8(ttype::STOP);
    finish_frame(out, at, transport);
}

/// Appends a `Log` call of `entries` (client side, old-style header as Scribe clients write it).
pub fn log_call<'a>(
    out: &mut BytesMut,
    seqid: i32,
    entries: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
    transport: Transport,
) {
    let at = start_frame(out, transport);
    header(out, b"Log", CALL, seqid, false);
    out.put_u8(ttype::LIST);
    out.put_i16(1);
    out.put_u8(ttype::STRUCT);
    out.put_i32(entries.len() as i32);
    for (category, message) in entries {
        out.put_u8(ttype::STRING);
        out.put_i16(1);
        put_string(out, category);
        out.put_u8(ttype::STRING);
        out.put_i16(2);
        put_string(out, message);
        out.put_u8(ttype::STOP);
    }
    out.put_u8(ttype::STOP);
    finish_frame(out, at, transport);
}

/// What a server answered to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The i32 result (Log's `ResultCode`: 0 OK, 1 TRY_LATER).
    I32(i32),
    /// A `TApplicationException`.
    Exception { kind: i32, message: String },
    /// A reply without an i32 result.
    Other,
}

/// Reads a reply message's answer.
pub fn answer(msg: &Message) -> Result<Answer, ThriftError> {
    let mut c = Cursor {
        buf: &msg.body,
        pos: 0,
        whole: true,
    };
    let mut result = Answer::Other;
    let (mut text, mut kind) = (String::new(), 0);
    loop {
        let ft = c.u8().ok_or(ThriftError::Truncated)?;
        if ft == ttype::STOP {
            break;
        }
        let id = c.i16().ok_or(ThriftError::Truncated)?;
        match (msg.kind, id, ft) {
            (REPLY, 0, ttype::I32) => {
                result = Answer::I32(c.i32().ok_or(ThriftError::Truncated)?);
            }
            (EXCEPTION, 1, ttype::STRING) => {
                let len = c.i32().ok_or(ThriftError::Truncated)?;
                if len < 0 {
                    return Err(ThriftError::Length(i64::from(len)));
                }
                let s = c.take(len as usize).ok_or(ThriftError::Truncated)?;
                text = String::from_utf8_lossy(s).into_owned();
            }
            (EXCEPTION, 2, ttype::I32) => kind = c.i32().ok_or(ThriftError::Truncated)?,
            _ => skip_whole(&mut c, ft)?,
        }
    }
    if msg.kind == EXCEPTION {
        return Ok(Answer::Exception {
            kind,
            message: text,
        });
    }
    Ok(result)
}

#[cfg(test)]
mod tests;
