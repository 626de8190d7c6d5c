//! One value inside a raw record: read in place, decoded only when asked for all of it.

use bytes::{BufMut, BytesMut};
use ferry_proto::msgpack::{self, Head, MsgpackError, Value, read_head, skip_value};
use std::borrow::Cow;

/// One whole msgpack value, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawValue<'r>(pub(super) &'r [u8]);

/// A step into a container: the first pair of a map with a str key, or an array's item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'k> {
    Key(&'k str),
    Index(usize),
}

/// End of the value at `pos` inside bytes already checked to hold whole values (a loaded
/// record, a value of ours): a count of the values still to pass is all it needs. `None` only
/// if the bytes were not checked after all.
pub(super) fn skip(bytes: &[u8], mut pos: usize) -> Option<usize> {
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        // The common one-byte headers first: fixstr, fixint, nil, booleans.
        match *bytes.get(pos)? {
            b @ 0xa0..=0xbf => pos += 1 + usize::from(b & 0x1f),
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => pos += 1,
            _ => {
                let (head, hlen) = read_head(bytes, pos).ok()?;
                pos += hlen + head.payload_len();
                match head {
                    Head::Array(n) => pending += u64::from(n),
                    Head::Map(n) => pending += 2 * u64::from(n),
                    _ => {}
                }
            }
        }
    }
    (pos <= bytes.len()).then_some(pos)
}

fn is_str(key: &[u8], name: &[u8]) -> bool {
    match read_head(key, 0) {
        Ok((Head::Str(n), hlen)) => key.get(hlen..hlen + n as usize) == Some(name),
        _ => false,
    }
}

impl<'r> RawValue<'r> {
    /// The value at the start of `bytes`, which must hold exactly that value.
    pub fn new(bytes: &'r [u8]) -> Result<Self, MsgpackError> {
        match skip_value(bytes, 0)? {
            end if end == bytes.len() => Ok(Self(bytes)),
            end => Err(MsgpackError::Unexpected {
                offset: end,
                expected: "the end of the value",
                found: "more bytes",
            }),
        }
    }

    /// The value ferry wrote at the start of `bytes` (a `Value` encoded, a parser's record),
    /// taken as whole without a walk. Were it not, reads would find less, never panic.
    pub fn written(bytes: &'r [u8]) -> Self {
        debug_assert!(Self::new(bytes).is_ok(), "one whole value");
        Self(bytes)
    }

    /// Its msgpack bytes.
    pub fn bytes(self) -> &'r [u8] {
        self.0
    }

    /// Its header and the header's length.
    pub fn head(self) -> Option<(Head, usize)> {
        read_head(self.0, 0).ok()
    }

    /// The payload of a str.
    pub fn str_bytes(self) -> Option<&'r [u8]> {
        match self.head()? {
            (Head::Str(n), hlen) => self.0.get(hlen..hlen + n as usize),
            _ => None,
        }
    }

    /// The value as [`crate::record::text`] renders it. A str or bin that is valid UTF-8 is
    /// borrowed; other values are decoded (only this one).
    pub fn text(self) -> Cow<'r, str> {
        match self.head() {
            Some((Head::Str(n) | Head::Bin(n), hlen)) => {
                let payload = self.0.get(hlen..hlen + n as usize).unwrap_or_default();
                // The check alone is faster than the lossy walk, and nearly every text is UTF-8.
                match std::str::from_utf8(payload) {
                    Ok(text) => Cow::Borrowed(text),
                    Err(_) => String::from_utf8_lossy(payload),
                }
            }
            Some((Head::Nil, _)) => Cow::Borrowed(""),
            _ => Cow::Owned(crate::record::text(&self.to_value()).into_owned()),
        }
    }

    /// The value decoded.
    pub fn to_value(self) -> Value {
        Value::decode(self.0).map_or(Value::Nil, |(v, _)| v)
    }

    /// Where `member` lies in this value (a range of its bytes), if this is a container that
    /// has it.
    fn member(self, member: Member<'_>) -> Option<(usize, usize)> {
        let b = self.0;
        match (member, self.head()?) {
            (Member::Key(k), (Head::Map(n), hlen)) => {
                let mut pos = hlen;
                for _ in 0..n {
                    let key_end = skip(b, pos)?;
                    let end = skip(b, key_end)?;
                    if is_str(&b[pos..key_end], k.as_bytes()) {
                        return Some((key_end, end));
                    }
                    pos = end;
                }
                None
            }
            (Member::Index(i), (Head::Array(n), hlen)) if i < n as usize => {
                let mut pos = hlen;
                for _ in 0..i {
                    pos = skip(b, pos)?;
                }
                Some((pos, skip(b, pos)?))
            }
            _ => None,
        }
    }

    /// The value of the first pair of a map whose key is the str `key`.
    pub fn get(self, key: &str) -> Option<RawValue<'r>> {
        let (start, end) = self.member(Member::Key(key))?;
        Some(RawValue(&self.0[start..end]))
    }

    /// Item `i` of an array.
    pub fn index(self, i: usize) -> Option<RawValue<'r>> {
        let (start, end) = self.member(Member::Index(i))?;
        Some(RawValue(&self.0[start..end]))
    }

    /// The pairs of a map (nothing for any other value).
    pub fn map_pairs(self) -> MapPairs<'r> {
        let (left, pos) = match self.head() {
            Some((Head::Map(n), hlen)) => (n, hlen),
            _ => (0, self.0.len()),
        };
        MapPairs {
            bytes: self.0,
            pos,
            left,
        }
    }

    /// Writes this value with `member` rewritten by `edit` (which writes the new member and
    /// returns true, or returns false to change nothing). False, with nothing written, when
    /// there is no such member or `edit` declines.
    pub fn write_editing(
        self,
        member: Member<'_>,
        out: &mut BytesMut,
        edit: impl FnOnce(RawValue<'r>, &mut BytesMut) -> bool,
    ) -> bool {
        let Some((start, end)) = self.member(member) else {
            return false;
        };
        let mark = out.len();
        out.put_slice(&self.0[..start]);
        if !edit(RawValue(&self.0[start..end]), out) {
            out.truncate(mark);
            return false;
        }
        out.put_slice(&self.0[end..]);
        true
    }

    /// Writes this map without any pair whose key is the str `key`, as
    /// [`crate::record::remove`] does. False, with nothing written, when this is not a map or
    /// has no such pair.
    pub fn write_without_key(self, key: &str, out: &mut BytesMut) -> bool {
        let Some((Head::Map(n), _)) = self.head() else {
            return false;
        };
        let doomed = |k: &RawValue<'_>| is_str(k.0, key.as_bytes());
        let removed = self.map_pairs().filter(|(k, _)| doomed(k)).count();
        if removed == 0 {
            return false;
        }
        msgpack::write_map_len(out, n as usize - removed);
        let pairs = self.map_pairs();
        let mut pos = pairs.pos;
        let mut run = pos;
        for (k, v) in pairs {
            let end = pos + k.0.len() + v.0.len();
            if doomed(&k) {
                out.put_slice(&self.0[run..pos]);
                run = end;
            }
            pos = end;
        }
        out.put_slice(&self.0[run..pos]);
        true
    }

    /// Writes this array without item `i`. False, with nothing written, when this is not an
    /// array of more than `i` items.
    pub fn write_without_item(self, i: usize, out: &mut BytesMut) -> bool {
        let Some((Head::Array(n), _)) = self.head() else {
            return false;
        };
        let Some((start, end)) = self.member(Member::Index(i)) else {
            return false;
        };
        let hlen = self.head().map_or(0, |(_, hlen)| hlen);
        msgpack::write_array_len(out, n as usize - 1);
        out.put_slice(&self.0[hlen..start]);
        out.put_slice(&self.0[end..]);
        true
    }
}

/// The pairs of a map value, in order.
#[derive(Debug, Clone)]
pub struct MapPairs<'r> {
    bytes: &'r [u8],
    pos: usize,
    left: u32,
}

impl<'r> Iterator for MapPairs<'r> {
    type Item = (RawValue<'r>, RawValue<'r>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let key_end = skip(self.bytes, self.pos)?;
        let end = skip(self.bytes, key_end)?;
        let pair = (
            RawValue(&self.bytes[self.pos..key_end]),
            RawValue(&self.bytes[key_end..end]),
        );
        self.pos = end;
        self.left -= 1;
        Some(pair)
    }
}
