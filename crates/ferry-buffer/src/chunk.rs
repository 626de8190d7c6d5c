//! Chunk contents and the in-flight [`Chunk`] handle with its streaming [`ChunkReader`].

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use crate::buffer::Inner;
use crate::file_chunk::FileChunk;
use crate::key::{ChunkId, ChunkKey};
use crate::retry::RetryState;
use crate::storage::StorageFile;

/// A run of whole appends inside a chunk payload: `offset..offset + len` holds `records`
/// records. Adjacent appends are merged up to `segment_target_size`, so a caller can send a big
/// chunk in pieces on entry boundaries without parsing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub len: u64,
    pub records: u64,
}

/// Committed size of a chunk and its segment list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    pub bytes: u64,
    pub records: u64,
    pub segments: Vec<Segment>,
}

impl Content {
    /// Adds an append that starts at the current end.
    pub fn push(&mut self, len: u64, records: u64, target: u64) {
        match self.segments.last_mut() {
            Some(last) if last.len + len <= target => {
                last.len += len;
                last.records += records;
            }
            _ => self.segments.push(Segment {
                offset: self.bytes,
                len,
                records,
            }),
        }
        self.bytes += len;
        self.records += records;
    }

    /// Cuts the content back to `bytes` / `records`, an earlier append boundary.
    pub fn truncate(&mut self, bytes: u64, records: u64) {
        while self.segments.last().is_some_and(|s| s.offset >= bytes) {
            self.segments.pop();
        }
        let n = self.segments.len();
        let before: u64 = self.segments[..n.saturating_sub(1)]
            .iter()
            .map(|s| s.records)
            .sum();
        if let Some(last) = self.segments.last_mut() {
            last.len = last.len.min(bytes - last.offset);
            last.records = records.saturating_sub(before);
        }
        self.bytes = self.bytes.min(bytes);
        self.records = self.records.min(records);
    }
}

/// Small appends are gathered into pieces of about this size in a memory chunk.
const MEM_PIECE: usize = 64 * 1024;

/// A memory chunk's payload: a list of byte pieces, contiguous when read in order.
#[derive(Debug, Default)]
pub struct MemBody {
    pieces: Vec<Bytes>,
    tail: BytesMut,
}

impl MemBody {
    pub fn push(&mut self, data: Bytes) {
        if data.len() >= MEM_PIECE / 4 {
            self.flush_tail();
            self.pieces.push(data);
        } else {
            self.tail.extend_from_slice(&data);
            if self.tail.len() >= MEM_PIECE {
                self.flush_tail();
            }
        }
    }

    fn flush_tail(&mut self) {
        if !self.tail.is_empty() {
            let full = std::mem::take(&mut self.tail);
            self.pieces.push(full.freeze());
        }
    }

    /// The payload as an immutable piece list.
    pub fn freeze(&mut self) -> Arc<MemPayload> {
        self.flush_tail();
        let mut starts = Vec::with_capacity(self.pieces.len());
        let mut at = 0u64;
        for p in &self.pieces {
            starts.push(at);
            at += p.len() as u64;
        }
        Arc::new(MemPayload {
            pieces: std::mem::take(&mut self.pieces),
            starts,
        })
    }
}

/// A sealed memory chunk's payload.
#[derive(Debug, Default)]
pub struct MemPayload {
    pieces: Vec<Bytes>,
    starts: Vec<u64>,
}

impl MemPayload {
    /// Copies as much as fits of the bytes at `offset` into `buf`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> usize {
        let i = self.starts.partition_point(|&s| s <= offset);
        let Some(i) = i.checked_sub(1) else { return 0 };
        let mut done = 0;
        let mut skip = (offset - self.starts[i]) as usize;
        for piece in &self.pieces[i..] {
            if done == buf.len() {
                break;
            }
            let src = piece.get(skip..).unwrap_or_default();
            let n = src.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&src[..n]);
            done += n;
            skip = 0;
        }
        done
    }

    /// The bytes at `offset..offset + len`, without copying when they lie in one piece.
    fn slice(&self, offset: u64, len: usize) -> Bytes {
        let i = self.starts.partition_point(|&s| s <= offset);
        if let Some(i) = i.checked_sub(1) {
            let skip = (offset - self.starts[i]) as usize;
            if let Some(piece) = self.pieces.get(i) {
                if skip + len <= piece.len() {
                    return piece.slice(skip..skip + len);
                }
            }
        }
        let mut out = vec![0u8; len];
        let n = self.read_at(&mut out, offset);
        out.truncate(n);
        Bytes::from(out)
    }
}

/// Where a taken chunk's payload is.
#[derive(Clone, Debug)]
pub enum ChunkBody {
    Memory(Arc<MemPayload>),
    File(Arc<FileChunk>),
}

/// A queued chunk handed out by [`crate::Buffer::take`]: the flusher reads it, then settles it
/// with `ack`, `rollback`, `nack` or `quarantine`. Dropping an unsettled handle rolls it back.
#[derive(Debug)]
pub struct Chunk {
    pub(crate) owner: Weak<Inner>,
    pub(crate) id: ChunkId,
    pub(crate) key: Arc<ChunkKey>,
    pub(crate) created: SystemTime,
    pub(crate) content: Content,
    pub(crate) compressed: bool,
    pub(crate) retry: RetryState,
    pub(crate) body: ChunkBody,
    pub(crate) settled: bool,
}

impl Chunk {
    /// Stable across restarts (it is the id in the chunk's file names and journal header).
    pub fn unique_id(&self) -> [u8; 16] {
        self.id.0
    }
    pub fn id(&self) -> ChunkId {
        self.id
    }
    pub fn key(&self) -> &ChunkKey {
        &self.key
    }
    pub fn created(&self) -> SystemTime {
        self.created
    }
    pub fn records(&self) -> u64 {
        self.content.records
    }
    /// Stored payload size (compressed size with `compress gzip`).
    pub fn bytes(&self) -> u64 {
        self.content.bytes
    }
    /// The payload is a multi-member gzip stream.
    pub fn compressed(&self) -> bool {
        self.compressed
    }
    pub fn segments(&self) -> &[Segment] {
        &self.content.segments
    }
    pub fn retry(&self) -> &RetryState {
        &self.retry
    }

    /// Streams the payload. A file chunk is read with positional reads into the caller's
    /// buffer: the reader holds no buffer of its own.
    pub fn reader(&self) -> io::Result<ChunkReader> {
        let source = match &self.body {
            ChunkBody::Memory(m) => Source::Memory(m.clone()),
            ChunkBody::File(f) => Source::File(f.open_payload()?),
        };
        Ok(ChunkReader {
            source,
            pos: 0,
            len: self.content.bytes,
        })
    }

    /// Reads `len` bytes at `offset` (clamped to the payload), for small pieces.
    pub fn read_range(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let avail = self.content.bytes.saturating_sub(offset);
        let len = len.min(usize::try_from(avail).unwrap_or(usize::MAX));
        match &self.body {
            ChunkBody::Memory(m) => Ok(m.slice(offset, len)),
            ChunkBody::File(f) => {
                let file = f.open_payload()?;
                let mut out = vec![0u8; len];
                crate::storage::read_exact_at(file.as_ref(), &mut out, offset)?;
                Ok(Bytes::from(out))
            }
        }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if !self.settled {
            if let Some(inner) = self.owner.upgrade() {
                inner.release_in_flight(self.id);
            }
        }
    }
}

enum Source {
    Memory(Arc<MemPayload>),
    File(Arc<dyn StorageFile>),
}

/// Streams a chunk payload; implements [`Read`] and [`Seek`]. Holds no buffer: every read goes
/// straight into the caller's slice, so memory use is what the caller chooses.
pub struct ChunkReader {
    source: Source,
    pos: u64,
    len: u64,
}

impl ChunkReader {
    /// Payload length.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Current position.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = match &self.source {
            Source::Memory(m) => m.read_at(&mut buf[..want], self.pos),
            Source::File(f) => f.read_at(&mut buf[..want], self.pos)?,
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "chunk payload ends at {} before its length {}",
                    self.pos, self.len
                ),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ChunkReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        };
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_appends_merge_into_segments_up_to_the_target() {
        let mut c = Content::default();
        for _ in 0..10 {
            c.push(30, 2, 100);
        }
        assert_eq!(c.bytes, 300);
        assert_eq!(c.records, 20);
        let lens: Vec<u64> = c.segments.iter().map(|s| s.len).collect();
        assert_eq!(lens, vec![90, 90, 90, 30]);
        assert_eq!(c.segments[1].offset, 90);
        c.push(500, 1, 100);
        assert_eq!(c.segments.last().unwrap().len, 500);
    }

    #[test]
    fn truncation_cuts_back_to_an_append_boundary() {
        let mut c = Content::default();
        for _ in 0..10 {
            c.push(30, 2, 100);
        }
        c.truncate(120, 8);
        assert_eq!(c.bytes, 120);
        assert_eq!(c.records, 8);
        assert_eq!(c.segments.len(), 2);
        assert_eq!(
            c.segments[1],
            Segment {
                offset: 90,
                len: 30,
                records: 2
            }
        );
        c.truncate(0, 0);
        assert!(c.segments.is_empty());
    }

    #[test]
    fn memory_payload_reads_across_pieces() {
        let mut body = MemBody::default();
        let mut expect = Vec::new();
        for i in 0..200u32 {
            let piece: Vec<u8> = (0..(i * 97 % 20_000)).map(|b| b as u8).collect();
            expect.extend_from_slice(&piece);
            body.push(Bytes::from(piece));
        }
        let frozen = body.freeze();
        let mut out = vec![0u8; expect.len()];
        let mut at = 0;
        while at < out.len() {
            let end = (at + 7777).min(out.len());
            at += frozen.read_at(&mut out[at..end], at as u64);
        }
        assert_eq!(out, expect);
        assert_eq!(&frozen.slice(12_345, 50_000)[..], &expect[12_345..62_345]);
    }
}
