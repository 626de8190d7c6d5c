//! Records read where they lie: [`RawRecord`] is a view over one record's msgpack map with an
//! overlay of edits, [`RawValue`] one value in it, decoded only when a filter asks.
//!
//! **Index.** A record is indexed by walking its map once, reading headers and lengths only,
//! into a list of pairs: where each key and each value lies, and for a str key where its name
//! lies. The list is one `Vec` reused from record to record; nothing is allocated per pair.
//! [`RawRecord::load`] indexes at once (and so checks the bytes); [`RawRecord::load_walked`],
//! for a record `entries::iter` already walked, indexes at the first edit, and until then a
//! read walks the map only up to the pair it wants.
//!
//! **Overlay.** The list *is* the record's current pairs, in order. Edits behave as
//! [`crate::record::set`] and [`crate::record::remove`] do on decoded pairs, which behave as a
//! Ruby hash does:
//! - `set` replaces the value of the first pair with that name, where it stands, or appends a
//!   pair;
//! - `remove` takes out every pair with that name;
//! - `renew` empties the record (`renew_record`, the parser filter without `reserve_data`).
//!
//! A new value (and the key of an appended pair) is encoded once into an arena of this event;
//! the pair then points there. A span is either in the record or in the arena, and always holds
//! one whole msgpack value.
//!
//! **Splice.** An unedited record is written as the bytes it came in. An edited one is a new map
//! header, then each pair's key and value copied from where they lie: original pairs exactly as
//! they were encoded (adjacent ones in one copy), new ones from the arena.
//!
//! **Limits.** [`RawRecord::load`] accepts a map whose every element is whole msgpack, nested
//! at most [`ferry_proto::msgpack::MAX_DEPTH`] deep: every record that `entries::iter` yields,
//! and nothing `Value::decode` refuses except an empty container at the very last level (which
//! `entries::iter` accepts too). Reading never fails after a load: a walk inside a loaded value
//! cannot run off its bytes. [`RawRecord::load_walked`] checks only the map header; on bytes
//! that are not whole, reads find less and edits keep the whole pairs, and nothing panics.

use bytes::{BufMut, BytesMut};
use ferry_proto::msgpack::{self, Head, MsgpackError, Value, read_head, skip_values};

/// The empty map, what a [`RawRecord`] holds before a load and after a failed one.
const EMPTY_MAP: &[u8] = &[0x80];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Record,
    Arena,
}

/// Bytes `start..end` of the record or of the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    src: Src,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy)]
struct Pair {
    key: Span,
    /// The payload of a str key: the name the pair is found by. Other keys are never found.
    name: Option<Span>,
    value: Span,
}

/// One record: its bytes, the index of its pairs and the edits made to it.
#[derive(Debug)]
pub struct RawRecord<'a> {
    /// The map, header included, and nothing after it.
    bytes: &'a [u8],
    /// The record's pairs as they stand, once `indexed` (empty before).
    pairs: Vec<Pair>,
    indexed: bool,
    arena: BytesMut,
    /// Where a nested edit is built before it moves into the arena.
    spare: BytesMut,
    /// Scratch of the structural skipper.
    stack: Vec<u64>,
    edited: bool,
}

impl Default for RawRecord<'_> {
    fn default() -> Self {
        Self {
            bytes: EMPTY_MAP,
            pairs: Vec::new(),
            indexed: true,
            arena: BytesMut::new(),
            spare: BytesMut::new(),
            stack: Vec::new(),
            edited: false,
        }
    }
}

fn slice<'s>(record: &'s [u8], arena: &'s [u8], span: Span) -> &'s [u8] {
    match span.src {
        Src::Record => &record[span.start..span.end],
        Src::Arena => &arena[span.start..span.end],
    }
}

fn named(record: &[u8], arena: &[u8], pair: &Pair, name: &[u8]) -> bool {
    pair.name.is_some_and(|n| slice(record, arena, n) == name)
}

/// The header at `pos` and its length: [`read_head`], with the headers of nearly every key
/// (fixstr) read in line.
#[inline(always)]
fn head_at(bytes: &[u8], pos: usize) -> Result<(Head, usize), MsgpackError> {
    match bytes.get(pos) {
        Some(&b @ 0xa0..=0xbf) => Ok((Head::Str(u32::from(b & 0x1f)), 1)),
        _ => read_head(bytes, pos),
    }
}

/// End of the value at `pos` whose header is `head` (`hlen` bytes), checking every length
/// against the input, and the nesting against [`ferry_proto::msgpack::MAX_DEPTH`] unless
/// `checked` says a walk did that already.
#[inline(always)]
fn value_end(
    bytes: &[u8],
    pos: usize,
    (head, hlen): (Head, usize),
    checked: bool,
    stack: &mut Vec<u64>,
) -> Result<usize, MsgpackError> {
    match head {
        Head::Array(_) | Head::Map(_) if checked => {
            value::skip(bytes, pos).ok_or(MsgpackError::Truncated { offset: pos })
        }
        // A pair's elements sit at depth 1 of the record, as `Value::decode` counts.
        Head::Array(_) | Head::Map(_) => skip_values(bytes, pos, 1, 1, stack),
        _ => {
            let end = pos + hlen + head.payload_len();
            if end <= bytes.len() {
                Ok(end)
            } else {
                Err(MsgpackError::Truncated { offset: pos })
            }
        }
    }
}

impl<'a> RawRecord<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    fn reset(&mut self) {
        self.bytes = EMPTY_MAP;
        self.pairs.clear();
        self.indexed = true;
        self.arena.clear();
        self.edited = false;
    }

    /// Makes this the view of `bytes` (a msgpack map; bytes after it are ignored), forgetting
    /// the record and the edits before. The map is walked and indexed now: any bytes that are not
    /// a whole map are refused, and the view is then of the empty map.
    pub fn load(&mut self, bytes: &'a [u8]) -> Result<(), MsgpackError> {
        self.reset();
        match self.walk(bytes, false) {
            Ok(end) => {
                self.bytes = &bytes[..end];
                Ok(())
            }
            Err(e) => {
                self.pairs.clear();
                Err(e)
            }
        }
    }

    /// Makes this the view of `bytes`, the record of an entry that `entries::iter` yielded: that
    /// walk checked it is one whole map and nothing more, so only its header is read now, and it
    /// is indexed at the first edit. (Bytes that are not what `entries::iter` yields never panic
    /// a read or an edit, but an edit keeps only the pairs before the first broken one.)
    pub fn load_walked(&mut self, bytes: &'a [u8]) -> Result<(), MsgpackError> {
        self.reset();
        match read_head(bytes, 0)? {
            (Head::Map(_), _) => {
                self.bytes = bytes;
                self.indexed = false;
                Ok(())
            }
            (head, _) => Err(MsgpackError::Unexpected {
                offset: 0,
                expected: "map",
                found: head.type_name(),
            }),
        }
    }

    /// Indexes the record if it is not yet: edits need every pair.
    fn index(&mut self) {
        if !self.indexed {
            self.indexed = true;
            let bytes = self.bytes;
            if self.walk(bytes, true).is_err() {
                // Not bytes `entries::iter` yields: write the whole pairs from the index.
                self.edited = true;
            }
        }
    }

    /// Walks the map at the start of `bytes` into the index; returns where it ends. `checked`:
    /// a walk checked the bytes already (lengths are still held to the input).
    fn walk(&mut self, bytes: &'a [u8], checked: bool) -> Result<usize, MsgpackError> {
        let (head, hlen) = read_head(bytes, 0)?;
        let Head::Map(n) = head else {
            return Err(MsgpackError::Unexpected {
                offset: 0,
                expected: "map",
                found: head.type_name(),
            });
        };
        // Every element takes a byte at least: a count beyond what is left cannot be met.
        if (n as usize).saturating_mul(2) > bytes.len() - hlen {
            return Err(MsgpackError::Truncated { offset: 0 });
        }
        let mut pos = hlen;
        for _ in 0..n {
            let key_head = head_at(bytes, pos)?;
            let key_end = value_end(bytes, pos, key_head, checked, &mut self.stack)?;
            let name = matches!(key_head.0, Head::Str(_)).then_some(Span {
                src: Src::Record,
                start: pos + key_head.1,
                end: key_end,
            });
            let value_head = head_at(bytes, key_end)?;
            let end = value_end(bytes, key_end, value_head, checked, &mut self.stack)?;
            self.pairs.push(Pair {
                key: Span {
                    src: Src::Record,
                    start: pos,
                    end: key_end,
                },
                name,
                value: Span {
                    src: Src::Record,
                    start: key_end,
                    end,
                },
            });
            pos = end;
        }
        Ok(pos)
    }

    /// Pairs in the record as it stands.
    pub fn len(&self) -> usize {
        match (self.indexed, read_head(self.bytes, 0)) {
            (false, Ok((Head::Map(n), _))) => n as usize,
            _ => self.pairs.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once an edit was made since the load.
    pub fn is_edited(&self) -> bool {
        self.edited
    }

    fn span(&self, span: Span) -> &[u8] {
        slice(self.bytes, &self.arena, span)
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.pairs
            .iter()
            .position(|p| named(self.bytes, &self.arena, p, name))
    }

    /// The pairs as they stand, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (RawValue<'_>, RawValue<'_>)> + '_ {
        let unindexed = (!self.indexed).then(|| RawValue(self.bytes).map_pairs());
        let indexed = self
            .pairs
            .iter()
            .map(|p| (RawValue(self.span(p.key)), RawValue(self.span(p.value))));
        unindexed.into_iter().flatten().chain(indexed)
    }

    /// The value of the first pair whose key is the str `key`.
    pub fn get(&self, key: &str) -> Option<RawValue<'_>> {
        if !self.indexed {
            return RawValue(self.bytes).get(key);
        }
        let at = self.find(key.as_bytes())?;
        Some(RawValue(self.span(self.pairs[at].value)))
    }

    /// Sets `key` to `value` (see the module doc).
    pub fn set(&mut self, key: &str, value: &Value) {
        self.set_with(key.as_bytes(), |out| value.encode(out));
    }

    /// Sets the str key `name` to `value`, one whole msgpack value.
    pub fn set_raw(&mut self, name: &[u8], value: &[u8]) {
        debug_assert!(
            RawValue::new(value).is_ok(),
            "set_raw takes one whole value"
        );
        self.set_with(name, |out| out.put_slice(value));
    }

    /// Sets the str key `name` to the one whole msgpack value `write` appends.
    pub fn set_with(&mut self, name: &[u8], write: impl FnOnce(&mut BytesMut)) {
        self.index();
        self.edited = true;
        match self.find(name) {
            Some(at) => self.pairs[at].value = self.stash(write),
            None => self.push_with(name, write),
        }
    }

    /// Appends a pair of the str key `name` and the value `write` appends, whatever the record
    /// already holds under that name.
    pub fn push_with(&mut self, name: &[u8], write: impl FnOnce(&mut BytesMut)) {
        self.index();
        let key = self.stash(|out| msgpack::write_str(out, name));
        let name = Span {
            start: key.end - name.len(),
            ..key
        };
        let value = self.stash(write);
        self.edited = true;
        self.pairs.push(Pair {
            key,
            name: Some(name),
            value,
        });
    }

    /// Appends a pair whose key and value are each one whole msgpack value.
    pub fn push_raw(&mut self, key: &[u8], value: &[u8]) {
        self.index();
        let head = read_head(key, 0).ok();
        let key = self.stash(|out| out.put_slice(key));
        let name = match head {
            Some((Head::Str(_), hlen)) => Some(Span {
                start: key.start + hlen,
                ..key
            }),
            _ => None,
        };
        let value = self.stash(|out| out.put_slice(value));
        self.edited = true;
        self.pairs.push(Pair { key, name, value });
    }

    fn stash(&mut self, write: impl FnOnce(&mut BytesMut)) -> Span {
        let start = self.arena.len();
        write(&mut self.arena);
        Span {
            src: Src::Arena,
            start,
            end: self.arena.len(),
        }
    }

    /// Removes every pair whose key is the str `key`; true if there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        self.index();
        let before = self.pairs.len();
        let (bytes, arena) = (self.bytes, &self.arena);
        self.pairs
            .retain(|p| !named(bytes, arena, p, key.as_bytes()));
        let removed = self.pairs.len() != before;
        self.edited |= removed;
        removed
    }

    /// Empties the record.
    pub fn renew(&mut self) {
        self.pairs.clear();
        self.indexed = true;
        self.edited = true;
    }

    /// Empties the record but for the first pair of each of `keys`, in the order of `keys` (a
    /// key named twice is kept twice, as `renew_record` with `keep_keys` does).
    pub fn renew_keeping(&mut self, keys: &[String]) {
        self.index();
        let old = self.pairs.len();
        for k in keys {
            let (bytes, arena) = (self.bytes, &self.arena);
            if let Some(at) = self.pairs[..old]
                .iter()
                .position(|p| named(bytes, arena, p, k.as_bytes()))
            {
                self.pairs.push(self.pairs[at]);
            }
        }
        self.pairs.drain(..old);
        self.edited = true;
    }

    /// Gives the value of the first pair named `key` to `edit`, which writes a new value into
    /// its output and returns true, or returns false to leave the record as it is.
    pub fn edit_first(
        &mut self,
        key: &str,
        edit: impl FnOnce(RawValue<'_>, &mut BytesMut) -> bool,
    ) -> bool {
        self.index();
        let Some(at) = self.find(key.as_bytes()) else {
            return false;
        };
        self.spare.clear();
        let value = RawValue(slice(self.bytes, &self.arena, self.pairs[at].value));
        if !edit(value, &mut self.spare) {
            return false;
        }
        let spare = std::mem::take(&mut self.spare);
        self.pairs[at].value = self.stash(|out| out.put_slice(&spare));
        self.spare = spare;
        self.edited = true;
        true
    }

    /// Appends the record as it stands: its own bytes when unedited, else spliced.
    pub fn write_map(&self, out: &mut BytesMut) {
        if !self.edited {
            out.put_slice(self.bytes);
            return;
        }
        out.reserve(5 + self.bytes.len() + self.arena.len());
        msgpack::write_map_len(out, self.pairs.len());
        let mut run: Option<Span> = None;
        for span in self.pairs.iter().flat_map(|p| [p.key, p.value]) {
            match &mut run {
                Some(r) if r.src == span.src && r.end == span.start => r.end = span.end,
                _ => {
                    if let Some(r) = run {
                        out.put_slice(self.span(r));
                    }
                    run = Some(span);
                }
            }
        }
        if let Some(r) = run {
            out.put_slice(self.span(r));
        }
    }

    /// The record decoded, for the few places that need all of it.
    pub fn to_value(&self) -> Value {
        Value::Map(
            self.pairs()
                .map(|(k, v)| (k.to_value(), v.to_value()))
                .collect(),
        )
    }
}

/// Test support: the record as [`RawRecord::write_map`] writes it, decoded, after checking that
/// it is the record the view reads.
#[cfg(test)]
pub fn check_written(record: &RawRecord<'_>) -> Value {
    let mut out = BytesMut::new();
    record.write_map(&mut out);
    let (written, used) = Value::decode(&out).expect("a written record decodes");
    assert_eq!(used, out.len(), "one map, nothing after it");
    assert_eq!(written.to_bytes(), record.to_value().to_bytes());
    written
}

#[path = "raw_value.rs"]
mod value;
pub use value::{Member, RawValue};

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;
