//! On-disk format of a file buffer chunk, version 1.
//!
//! # Files
//! Each chunk is two files in the buffer directory `path`:
//! * `<name>.<id>.payload`: the stored appends, concatenated, nothing else. Contiguous, so the
//!   forward output streams it as-is as a PackedForward payload (with `compress gzip`, each
//!   append is one gzip member and the payload is a valid multi-member gzip stream).
//! * `<name>.<id>.journal`: a header, then fixed-size 32-byte records appended in order.
//!
//! `<name>` is the buffer's name, `<id>` the 32-hex-digit [`crate::ChunkId`]. A
//! `<name>.lock` file holds an advisory lock while a process has the buffer open. Broken
//! chunks are moved to `path/quarantine/` together with a `<name>.<id>.reason` text file; when
//! that name is taken (the same chunk quarantined again), the three files are named
//! `<name>.<id>-<n>.<suffix>` with the first free `n` from 1 ([`quarantine_base`]).
//!
//! # Journal header (little-endian)
//! ```text
//! 0   8  magic "FERRYJNL"
//! 8   2  version (1)
//! 10  2  flags: bit 0 = payload is gzip members
//! 12  4  header length H in bytes, a multiple of 32, 96 <= H <= 65536
//! 16  16 chunk id (must match the file name)
//! 32  8  created, unix nanoseconds (i64)
//! 40  8  creation sequence number (orders chunks; shared counter with seal sequences)
//! 48  1  key flags: bit 0 = tag present, bit 1 = timekey present
//! 49  3  zero
//! 52  8  timekey (i64, 0 when absent)
//! 60  4  number of variables V
//! 64  .. tag as u32 length + UTF-8 bytes (if present), then V × (u32 len, key, u32 len, value)
//! ..     zero padding up to H - 4
//! H-4 4  crc32c of bytes 0..H-4
//! ```
//! The header is written and (with `Durability::Fsync`) synced, together with the directory,
//! before the first append to the chunk is acknowledged.
//!
//! # Journal records (32 bytes each, at `H + 32 × index`)
//! ```text
//! 0   1  kind: 1 = append, 2 = seal, 3 = retry, 4 = note
//! 1   1  note: what the note says (the output's own code) | others: zero
//! 2   2  zero
//! 4   4  append: crc32c of the appended payload bytes | retry: steps | seal: 0 | note: small
//! 8   8  append: payload end offset after it | seal: seal sequence | retry: first failure (ns)
//!        | note: a
//! 16  8  append: record count of the append | seal: sealed at (ns) | retry: 0 | note: b
//! 24  4  index of the record (low 32 bits)
//! 28  4  crc32c of bytes 0..28, seeded with the crc32c of the chunk id
//! ```
//! Seeding with the chunk id means a record copied from another chunk's journal fails its check;
//! the index catches a record written at the wrong place. Records are 32 bytes and H is a
//! multiple of 32, so no record straddles a 512-byte sector.
//!
//! # Commit and invariants
//! An append writes its payload bytes at the payload's end, then its append record, then (for
//! `Durability::Fsync`) `fdatasync`s both files, the two syncs running in parallel so that a
//! journaling filesystem folds them into one commit; concurrent appends to a chunk share one
//! pair of syncs (group commit). Only then does `append` return. If a sync fails, every append
//! not yet synced is refused, both files are cut back to the last synced record and the chunk
//! takes no more appends. Append end offsets strictly increase. A seal record follows the last
//! append; after it only retry records (steps and first failure, so the retry budget survives
//! a restart) may appear. Seal and retry records and deletions are not synced: losing one after
//! a power cut only re-queues a chunk as if it were staged, restarts its retry budget, or
//! resurrects an acknowledged chunk (a duplicate, never a loss).
//!
//! # Notes: an output's progress within a chunk
//! A note ([`crate::Note`]) records how far an output got with a chunk in flight, so that the
//! attempt after a crash does not repeat what is already done: the forward output notes each
//! request the server acknowledged (by payload range), the file output the archive length
//! before it appends and the end of its write. The buffer does not interpret notes; it keeps
//! them in order, hands them back with the chunk ([`crate::Chunk::notes`]) after a restart, and
//! drops them with the chunk.
//!
//! Notes are written without a sync unless the output asks for one
//! ([`crate::Chunk::note_durably`]). That is safe because a note only ever saves work: a lost
//! note makes the output do again what it noted (a duplicate, never a loss). The output
//! whose undo step depends on a note being there (the file output's "write finished") asks
//! for the sync, which also makes every earlier record durable.
//!
//! # Recovery of the records after the appends
//! Seal, retry records and notes are not synced, so after a power cut any of them can be
//! missing, and the page holding one can be lost while a later page survives. An invalid
//! record followed by a valid append is corruption (appends are synced in order) and
//! quarantines the chunk; an invalid record followed only by seal, retry and note records is a
//! torn tail of unsynced records: the journal is cut at the invalid record, and the chunk is
//! queued with what came before it (a lost seal re-queues it as staged, a lost note repeats
//! work).
//!
//! # Why two files
//! The payload holds nothing but the appended bytes so the forward output can send a chunk
//! straight from disk with no re-encoding and no parsing; the fixed-size journal records carry
//! the framing, counts and checksums that a single interleaved file would put in the way.
//!
//! # Recovery (see [`crate::recovery`])
//! A torn tail is what a crash leaves between "payload written" and "journal synced": payload
//! bytes past the last append record, a partial or invalid last record, records whose end lies
//! past the payload's length, and (for a chunk that was never sealed) trailing appends whose
//! crc32c does not match. Recovery truncates both files to the last whole append and reports it.
//! Anything else (unreadable header, an invalid record followed by a valid one, a structural
//! violation, a sealed chunk whose data is missing or whose crc fails) quarantines the chunk.
//! Full crc verification of the payload is lazy: it runs, streaming, the first time a
//! recovered chunk is taken; a mismatch quarantines it then.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::key::{ChunkId, ChunkKey};

pub const MAGIC: &[u8; 8] = b"FERRYJNL";
pub const VERSION: u16 = 1;
pub const RECORD_LEN: usize = 32;
pub const FIXED_HEADER_LEN: usize = 64;
pub const MAX_HEADER_LEN: usize = 65536;
pub const FLAG_GZIP: u16 = 1;
/// Notes kept per chunk; later ones are dropped (the output then repeats that work).
pub const MAX_NOTES: usize = 1 << 16;

pub const PAYLOAD_SUFFIX: &str = "payload";
pub const JOURNAL_SUFFIX: &str = "journal";
pub const REASON_SUFFIX: &str = "reason";
pub const QUARANTINE_DIR: &str = "quarantine";

/// A decoded journal header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: ChunkId,
    pub gzip: bool,
    pub created: SystemTime,
    pub create_seq: u64,
    pub key: ChunkKey,
    pub len: usize,
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header shorter than {FIXED_HEADER_LEN} bytes ({0})")]
    Short(usize),
    #[error("bad magic")]
    Magic,
    #[error("unsupported version {0}")]
    Version(u16),
    #[error("header length {0} out of range or not a multiple of 32")]
    Length(u32),
    #[error("header checksum mismatch")]
    Checksum,
    #[error("chunk key field at offset {offset} is malformed")]
    Key { offset: usize },
    #[error("chunk key encodes to {0} bytes, more than a header holds")]
    KeyTooLarge(usize),
}

impl HeaderError {
    /// A bad header is a property of the file: reading it again gives the same answer.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

pub fn nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

pub fn from_nanos(n: i64) -> SystemTime {
    if n >= 0 {
        UNIX_EPOCH + Duration::from_nanos(n.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(n.unsigned_abs())
    }
}

/// Seed for record checksums of chunk `id`.
pub fn record_seed(id: &ChunkId) -> u32 {
    crc32c::crc32c(&id.0)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Encodes a header; fails if the key does not fit in [`MAX_HEADER_LEN`].
pub fn encode_header(h: &Header) -> Result<Vec<u8>, HeaderError> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(if h.gzip { FLAG_GZIP } else { 0 }).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // length, patched below
    out.extend_from_slice(&h.id.0);
    out.extend_from_slice(&nanos(h.created).to_le_bytes());
    out.extend_from_slice(&h.create_seq.to_le_bytes());
    let flags = u8::from(h.key.tag.is_some()) | (u8::from(h.key.timekey.is_some()) << 1);
    out.extend_from_slice(&[flags, 0, 0, 0]);
    out.extend_from_slice(&h.key.timekey.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&(h.key.variables.len() as u32).to_le_bytes());
    if let Some(tag) = &h.key.tag {
        put_str(&mut out, tag);
    }
    for (k, v) in &h.key.variables {
        put_str(&mut out, k);
        put_str(&mut out, v);
    }
    let len = (out.len() + 4).div_ceil(RECORD_LEN) * RECORD_LEN;
    if len > MAX_HEADER_LEN {
        return Err(HeaderError::KeyTooLarge(out.len()));
    }
    out.resize(len - 4, 0);
    out[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Reads the header length field from the first bytes, checking magic and version.
pub fn header_len(prefix: &[u8]) -> Result<usize, HeaderError> {
    let fixed = prefix.get(..16).ok_or(HeaderError::Short(prefix.len()))?;
    if &fixed[..8] != MAGIC {
        return Err(HeaderError::Magic);
    }
    let version = u16::from_le_bytes([fixed[8], fixed[9]]);
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    let len = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]);
    let ok = (len as usize) >= FIXED_HEADER_LEN + 32
        && (len as usize) <= MAX_HEADER_LEN
        && len as usize % RECORD_LEN == 0;
    if !ok {
        return Err(HeaderError::Length(len));
    }
    Ok(len as usize)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], HeaderError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(HeaderError::Key { offset: self.pos })?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(HeaderError::Key { offset: self.pos })?;
        self.pos = end;
        Ok(s)
    }
    fn string(&mut self) -> Result<String, HeaderError> {
        let at = self.pos;
        let len = self.take(4)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| HeaderError::Key { offset: at })
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Decodes a whole header (exactly `header_len(buf)` bytes are used).
pub fn decode_header(buf: &[u8]) -> Result<Header, HeaderError> {
    let len = header_len(buf)?;
    let h = buf.get(..len).ok_or(HeaderError::Short(buf.len()))?;
    let stored = u32_at(h, len - 4);
    if crc32c::crc32c(&h[..len - 4]) != stored {
        return Err(HeaderError::Checksum);
    }
    let flags = u16::from_le_bytes([h[10], h[11]]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[16..32]);
    let key_flags = h[48];
    let timekey = u64_at(h, 52) as i64;
    let vars = u32_at(h, 60) as usize;
    let mut cur = Cursor {
        buf: &h[..len - 4],
        pos: FIXED_HEADER_LEN,
    };
    let tag = if key_flags & 1 != 0 {
        Some(cur.string()?)
    } else {
        None
    };
    // Each variable takes at least 8 bytes, so a count larger than the header is malformed
    // before anything is allocated for it.
    if vars > len / 8 {
        return Err(HeaderError::Key { offset: 60 });
    }
    let mut variables = Vec::with_capacity(vars);
    for _ in 0..vars {
        let k = cur.string()?;
        let v = cur.string()?;
        variables.push((k, v));
    }
    Ok(Header {
        id: ChunkId(id),
        gzip: flags & FLAG_GZIP != 0,
        created: from_nanos(u64_at(h, 32) as i64),
        create_seq: u64_at(h, 40),
        key: ChunkKey {
            tag,
            timekey: (key_flags & 2 != 0).then_some(timekey),
            variables,
        },
        len,
    })
}

/// One journal record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    Append {
        crc: u32,
        end: u64,
        records: u64,
    },
    Seal {
        seq: u64,
        at: SystemTime,
    },
    Retry {
        steps: u32,
        first_failure: SystemTime,
    },
    Note(Note),
}

/// An output's note about its progress with a chunk (see "Notes" above). The buffer stores
/// it as given; what `code`, `small`, `a` and `b` mean is the output's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Note {
    pub code: u8,
    pub small: u32,
    pub a: u64,
    pub b: u64,
}

/// Why a 32-byte slot is not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record checksum mismatch")]
    Checksum,
    #[error("record index {found} where {expected} was expected")]
    Index { found: u32, expected: u32 },
    #[error("unknown record kind {0}")]
    Kind(u8),
}

pub fn encode_record(rec: &Record, index: u64, seed: u32) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    let (kind, word, a, c) = match *rec {
        Record::Append { crc, end, records } => (1u8, crc, end, records),
        Record::Seal { seq, at } => (2, 0, seq, nanos(at) as u64),
        Record::Retry {
            steps,
            first_failure,
        } => (3, steps, nanos(first_failure) as u64, 0),
        Record::Note(n) => {
            b[1] = n.code;
            (4, n.small, n.a, n.b)
        }
    };
    b[0] = kind;
    b[4..8].copy_from_slice(&word.to_le_bytes());
    b[8..16].copy_from_slice(&a.to_le_bytes());
    b[16..24].copy_from_slice(&c.to_le_bytes());
    b[24..28].copy_from_slice(&(index as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(seed, &b[..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes the record expected at position `index`.
pub fn decode_record(b: &[u8; RECORD_LEN], index: u64, seed: u32) -> Result<Record, RecordError> {
    if crc32c::crc32c_append(seed, &b[..28]) != u32_at(b, 28) {
        return Err(RecordError::Checksum);
    }
    let found = u32_at(b, 24);
    if found != index as u32 {
        return Err(RecordError::Index {
            found,
            expected: index as u32,
        });
    }
    let word = u32_at(b, 4);
    let a = u64_at(b, 8);
    let c = u64_at(b, 16);
    match b[0] {
        1 => Ok(Record::Append {
            crc: word,
            end: a,
            records: c,
        }),
        2 => Ok(Record::Seal {
            seq: a,
            at: from_nanos(c as i64),
        }),
        3 => Ok(Record::Retry {
            steps: word,
            first_failure: from_nanos(a as i64),
        }),
        4 => Ok(Record::Note(Note {
            code: b[1],
            small: word,
            a,
            b: c,
        })),
        k => Err(RecordError::Kind(k)),
    }
}

/// `<name>.<id>.<suffix>`
pub fn file_name(name: &str, id: &ChunkId, suffix: &str) -> String {
    format!("{name}.{}.{suffix}", id.to_hex())
}

/// Splits `<name>.<id>.<suffix>` into id and suffix when it belongs to buffer `name`.
pub fn parse_file_name<'a>(name: &str, file: &'a str) -> Option<(ChunkId, &'a str)> {
    let rest = file.strip_prefix(name)?.strip_prefix('.')?;
    let (hex, suffix) = rest.split_once('.')?;
    Some((ChunkId::from_hex(hex)?, suffix))
}

/// The file name stem of a quarantined chunk: `<name>.<id>`, or `<name>.<id>-<n>` for `n > 0`
/// (the chunk's files were quarantined before under the plain stem).
pub fn quarantine_base(name: &str, id: &ChunkId, n: u32) -> String {
    if n == 0 {
        format!("{name}.{}", id.to_hex())
    } else {
        format!("{name}.{}-{n}", id.to_hex())
    }
}

/// Splits a quarantined file name `<name>.<id>[-<n>].<suffix>` into id, `n` (0 without one)
/// and suffix when it belongs to buffer `name`.
pub fn parse_quarantine_file_name<'a>(
    name: &str,
    file: &'a str,
) -> Option<(ChunkId, u32, &'a str)> {
    let rest = file.strip_prefix(name)?.strip_prefix('.')?;
    let (stem, suffix) = rest.split_once('.')?;
    let (hex, n) = match stem.split_once('-') {
        Some((hex, n)) if !n.starts_with(['+', '0']) => (hex, n.parse::<u32>().ok()?),
        Some(_) => return None,
        None => (stem, 0),
    };
    Some((ChunkId::from_hex(hex)?, n, suffix))
}

#[cfg(test)]
mod tests;
