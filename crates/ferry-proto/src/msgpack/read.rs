//! Header decoding and a typed cursor over a complete msgpack buffer.

use super::{MsgpackError, skip_value};

/// The decoded header of one msgpack value. For `Str`, `Bin` and `Ext` the payload (of the given
/// length) follows the header; for `Array` and `Map` the elements follow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Head {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(u32),
    Bin(u32),
    Array(u32),
    Map(u32),
    /// Extension: type, payload length.
    Ext(i8, u32),
}

impl Head {
    /// Bytes of payload that follow the header (str, bin and ext data); 0 for everything else.
    pub fn payload_len(&self) -> usize {
        match *self {
            Head::Str(n) | Head::Bin(n) | Head::Ext(_, n) => n as usize,
            _ => 0,
        }
    }

    /// A short name of the type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Head::Nil => "nil",
            Head::Bool(_) => "bool",
            Head::UInt(_) | Head::Int(_) => "int",
            Head::F32(_) | Head::F64(_) => "float",
            Head::Str(_) => "str",
            Head::Bin(_) => "bin",
            Head::Array(_) => "array",
            Head::Map(_) => "map",
            Head::Ext(..) => "ext",
        }
    }
}

/// Length of the header that starts with marker `first` (marker included), or `None` for the
/// never-valid marker 0xc1. The header is everything needed to know the payload length.
#[inline]
pub fn header_len(first: u8) -> Option<usize> {
    Some(match first {
        0xc1 => return None,
        0xc4 | 0xcc | 0xd0 | 0xd4..=0xd9 => 2,
        0xc5 | 0xc7 | 0xcd | 0xd1 | 0xda | 0xdc | 0xde => 3,
        0xc8 => 4,
        0xc6 | 0xca | 0xce | 0xd2 | 0xdb | 0xdd | 0xdf => 5,
        0xc9 => 6,
        0xcb | 0xcf | 0xd3 => 9,
        _ => 1,
    })
}

/// Bytes `buf[at..at + N]`, or `Truncated` reported at `offset`.
#[inline]
fn take<const N: usize>(buf: &[u8], at: usize, offset: usize) -> Result<[u8; N], MsgpackError> {
    buf.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(MsgpackError::Truncated { offset })
}

/// Decode the header of the value at `buf[pos..]`. Returns the header and its length in bytes
/// (marker included; payload excluded). Only the header has to be present.
#[inline]
pub fn read_head(buf: &[u8], pos: usize) -> Result<(Head, usize), MsgpackError> {
    let Some(&b) = buf.get(pos) else {
        return Err(MsgpackError::Truncated { offset: pos });
    };
    let p = pos + 1;
    let head = match b {
        0x00..=0x7f => (Head::UInt(u64::from(b)), 1),
        0x80..=0x8f => (Head::Map(u32::from(b & 0x0f)), 1),
        0x90..=0x9f => (Head::Array(u32::from(b & 0x0f)), 1),
        0xa0..=0xbf => (Head::Str(u32::from(b & 0x1f)), 1),
        0xc0 => (Head::Nil, 1),
        0xc1 => {
            return Err(MsgpackError::InvalidMarker {
                offset: pos,
                byte: b,
            });
        }
        0xc2 => (Head::Bool(false), 1),
        0xc3 => (Head::Bool(true), 1),
        0xc4 => (Head::Bin(u32::from(take::<1>(buf, p, pos)?[0])), 2),
        0xc5 => (
            Head::Bin(u32::from(u16::from_be_bytes(take(buf, p, pos)?))),
            3,
        ),
        0xc6 => (Head::Bin(u32::from_be_bytes(take(buf, p, pos)?)), 5),
        0xc7 => {
            let [len, ty] = take::<2>(buf, p, pos)?;
            (Head::Ext(ty as i8, u32::from(len)), 3)
        }
        0xc8 => {
            let [a, b2, ty] = take::<3>(buf, p, pos)?;
            (
                Head::Ext(ty as i8, u32::from(u16::from_be_bytes([a, b2]))),
                4,
            )
        }
        0xc9 => {
            let [a, b2, c, d, ty] = take::<5>(buf, p, pos)?;
            (Head::Ext(ty as i8, u32::from_be_bytes([a, b2, c, d])), 6)
        }
        0xca => (Head::F32(f32::from_be_bytes(take(buf, p, pos)?)), 5),
        0xcb => (Head::F64(f64::from_be_bytes(take(buf, p, pos)?)), 9),
        0xcc => (Head::UInt(u64::from(take::<1>(buf, p, pos)?[0])), 2),
        0xcd => (
            Head::UInt(u64::from(u16::from_be_bytes(take(buf, p, pos)?))),
            3,
        ),
        0xce => (
            Head::UInt(u64::from(u32::from_be_bytes(take(buf, p, pos)?))),
            5,
        ),
        0xcf => (Head::UInt(u64::from_be_bytes(take(buf, p, pos)?)), 9),
        0xd0 => (Head::Int(i64::from(take::<1>(buf, p, pos)?[0] as i8)), 2),
        0xd1 => (
            Head::Int(i64::from(i16::from_be_bytes(take(buf, p, pos)?))),
            3,
        ),
        0xd2 => (
            Head::Int(i64::from(i32::from_be_bytes(take(buf, p, pos)?))),
            5,
        ),
        0xd3 => (Head::Int(i64::from_be_bytes(take(buf, p, pos)?)), 9),
        0xd4..=0xd8 => {
            let ty = take::<1>(buf, p, pos)?[0] as i8;
            (Head::Ext(ty, 1u32 << (b - 0xd4)), 2)
        }
        0xd9 => (Head::Str(u32::from(take::<1>(buf, p, pos)?[0])), 2),
        0xda => (
            Head::Str(u32::from(u16::from_be_bytes(take(buf, p, pos)?))),
            3,
        ),
        0xdb => (Head::Str(u32::from_be_bytes(take(buf, p, pos)?)), 5),
        0xdc => (
            Head::Array(u32::from(u16::from_be_bytes(take(buf, p, pos)?))),
            3,
        ),
        0xdd => (Head::Array(u32::from_be_bytes(take(buf, p, pos)?)), 5),
        0xde => (
            Head::Map(u32::from(u16::from_be_bytes(take(buf, p, pos)?))),
            3,
        ),
        0xdf => (Head::Map(u32::from_be_bytes(take(buf, p, pos)?)), 5),
        0xe0..=0xff => (Head::Int(i64::from(b as i8)), 1),
    };
    Ok(head)
}

/// A cursor over a complete msgpack buffer with typed reads. Every method either advances past
/// what it read or returns an error and leaves the position unchanged.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Offset of the next value.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// True when every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The header of the next value, without consuming anything.
    pub fn peek(&self) -> Result<Head, MsgpackError> {
        read_head(self.buf, self.pos).map(|(h, _)| h)
    }

    fn unexpected(&self, expected: &'static str, head: Head) -> MsgpackError {
        MsgpackError::Unexpected {
            offset: self.pos,
            expected,
            found: head.type_name(),
        }
    }

    /// Consume one header (not its payload or elements).
    pub fn head(&mut self) -> Result<Head, MsgpackError> {
        let (h, n) = read_head(self.buf, self.pos)?;
        self.pos += n;
        Ok(h)
    }

    /// Consume a whole value (header, payload, nested elements) and return its bytes.
    pub fn raw_value(&mut self) -> Result<&'a [u8], MsgpackError> {
        let start = self.pos;
        let end = skip_value(self.buf, start)?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    /// Consume a str or bin value and return its payload and whether it was a str.
    pub fn str_or_bin(&mut self) -> Result<(&'a [u8], bool), MsgpackError> {
        let (h, n) = read_head(self.buf, self.pos)?;
        let is_str = match h {
            Head::Str(_) => true,
            Head::Bin(_) => false,
            other => return Err(self.unexpected("str or bin", other)),
        };
        let start = self.pos + n;
        let data = self
            .buf
            .get(start..start + h.payload_len())
            .ok_or(MsgpackError::Truncated { offset: self.pos })?;
        self.pos = start + h.payload_len();
        Ok((data, is_str))
    }

    /// Consume a str value and return its payload bytes (not checked for UTF-8).
    pub fn str(&mut self) -> Result<&'a [u8], MsgpackError> {
        match self.peek()? {
            Head::Str(_) => self.str_or_bin().map(|(s, _)| s),
            other => Err(self.unexpected("str", other)),
        }
    }

    /// Consume an array header and return its element count.
    pub fn array_len(&mut self) -> Result<u32, MsgpackError> {
        match self.peek()? {
            Head::Array(n) => self.head().map(|_| n),
            other => Err(self.unexpected("array", other)),
        }
    }

    /// Consume a map header and return its pair count.
    pub fn map_len(&mut self) -> Result<u32, MsgpackError> {
        match self.peek()? {
            Head::Map(n) => self.head().map(|_| n),
            other => Err(self.unexpected("map", other)),
        }
    }

    /// Consume a bool.
    pub fn bool(&mut self) -> Result<bool, MsgpackError> {
        match self.peek()? {
            Head::Bool(b) => self.head().map(|_| b),
            other => Err(self.unexpected("bool", other)),
        }
    }

    /// Consume a non-negative integer.
    pub fn uint(&mut self) -> Result<u64, MsgpackError> {
        match self.peek()? {
            Head::UInt(v) => self.head().map(|_| v),
            Head::Int(v) if v >= 0 => self.head().map(|_| v as u64),
            other => Err(self.unexpected("non-negative int", other)),
        }
    }

    /// Consume an integer that fits in i64.
    pub fn int(&mut self) -> Result<i64, MsgpackError> {
        match self.peek()? {
            Head::Int(v) => self.head().map(|_| v),
            Head::UInt(v) => match i64::try_from(v) {
                Ok(v) => self.head().map(|_| v),
                Err(_) => Err(self.unexpected("int in i64 range", Head::UInt(v))),
            },
            other => Err(self.unexpected("int", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_decodes_or_reports_truncation_without_panicking() {
        for b in 0u8..=255 {
            let r = read_head(&[b], 0);
            match r {
                Ok((_, n)) => assert_eq!(n, 1, "marker {b:02x}"),
                Err(MsgpackError::Truncated { offset: 0 }) => {}
                Err(MsgpackError::InvalidMarker { byte: 0xc1, .. }) => assert_eq!(b, 0xc1),
                Err(e) => panic!("marker {b:02x}: {e}"),
            }
        }
    }

    #[test]
    fn header_len_agrees_with_read_head_for_every_marker() {
        for b in 0u8..=255 {
            let buf = [b, 1, 0, 0, 0, 0, 0, 0, 0, 0];
            match (header_len(b), read_head(&buf, 0)) {
                (Some(n), Ok((_, m))) => assert_eq!(n, m, "marker {b:02x}"),
                (None, Err(_)) => assert_eq!(b, 0xc1),
                (h, r) => panic!("marker {b:02x}: {h:?} vs {r:?}"),
            }
            if let Some(n) = header_len(b) {
                assert!(read_head(&buf[..n - 1], 0).is_err(), "marker {b:02x}");
            }
        }
    }

    #[test]
    fn ext8_and_fixext8_headers_carry_type_and_length() {
        assert_eq!(read_head(&[0xd7, 0x00], 0).unwrap(), (Head::Ext(0, 8), 2));
        assert_eq!(
            read_head(&[0xc7, 0x08, 0x00], 0).unwrap(),
            (Head::Ext(0, 8), 3)
        );
        assert_eq!(
            read_head(&[0xc7, 0x08], 0),
            Err(MsgpackError::Truncated { offset: 0 })
        );
    }

    #[test]
    fn reader_rejects_a_str_whose_payload_is_missing() {
        let mut r = Reader::new(&[0xa5, b'a', b'b']);
        assert_eq!(r.str(), Err(MsgpackError::Truncated { offset: 0 }));
        assert_eq!(r.pos(), 0);
    }
}
