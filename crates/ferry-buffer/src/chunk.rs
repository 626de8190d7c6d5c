//! Chunk contents and the in-flight [`Chunk`] handle with its streaming [`ChunkReader`].

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::SystemTime;

use bytes::Bytes;

pub use crate::content::Segment;
use crate::content::{Content, MemPayload};
use crate::file_chunk::FileChunk;
use crate::format::Note;
use crate::key::{ChunkId, ChunkKey};
use crate::retry::RetryState;
use crate::storage::StorageFile;

/// Whoever handed the chunk out, told when an unsettled handle is dropped (the buffer).
pub(crate) trait Owner: Send + Sync + std::fmt::Debug {
    /// The chunk was neither acked nor nacked: it goes back to the queue.
    fn release_in_flight(&self, id: ChunkId);
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
    pub(crate) owner: Weak<dyn Owner>,
    pub(crate) id: ChunkId,
    pub(crate) key: Arc<ChunkKey>,
    pub(crate) created: SystemTime,
    pub(crate) content: Content,
    pub(crate) compressed: bool,
    pub(crate) retry: RetryState,
    pub(crate) body: ChunkBody,
    pub(crate) settled: bool,
    pub(crate) notes: Notes,
}

/// A chunk's notes, shared by its buffer entry and the handles taken from it.
pub(crate) type Notes = Arc<Mutex<Vec<Note>>>;

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

    /// The notes outputs kept on their progress with this chunk, oldest first: from this and
    /// earlier attempts, also before a restart for a file chunk (see [`crate::format`],
    /// "Notes").
    pub fn notes(&self) -> Vec<Note> {
        self.notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A handle that keeps notes for this chunk, usable away from the chunk (on a blocking
    /// thread).
    pub fn notebook(&self) -> Notebook {
        Notebook {
            notes: self.notes.clone(),
            file: match &self.body {
                ChunkBody::File(f) => Some(f.clone()),
                ChunkBody::Memory(_) => None,
            },
        }
    }

    /// Keeps a note on the output's progress with this chunk, without a sync: losing it only
    /// repeats the work it records.
    pub fn note(&self, note: Note) -> io::Result<()> {
        self.notebook().note(note)
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

    /// For a memory chunk, the bytes at `offset..offset + len` (clamped to the payload) as
    /// slices of what is stored, without copying; `None` for a file chunk (use
    /// [`Self::reader`]).
    pub fn memory_slices(&self, offset: u64, len: u64) -> Option<Vec<Bytes>> {
        let len = len.min(self.content.bytes.saturating_sub(offset));
        match &self.body {
            ChunkBody::Memory(m) => Some(m.slices(offset, len)),
            ChunkBody::File(_) => None,
        }
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

/// Keeps notes for one chunk (see [`Chunk::notebook`]).
#[derive(Clone, Debug)]
pub struct Notebook {
    notes: Notes,
    file: Option<Arc<FileChunk>>,
}

impl Notebook {
    /// The notebook over a chunk's notes and, for a file chunk, its journal.
    pub(crate) fn new(notes: Notes, file: Option<Arc<FileChunk>>) -> Self {
        Self { notes, file }
    }

    /// Keeps `note` (not synced).
    pub fn note(&self, note: Note) -> io::Result<()> {
        self.add(note, false)
    }

    /// Keeps `note` and makes it, and every record before it, durable before returning.
    pub fn note_durably(&self, note: Note) -> io::Result<()> {
        self.add(note, true)
    }

    fn add(&self, note: Note, durable: bool) -> io::Result<()> {
        {
            let mut notes = self.notes.lock().unwrap_or_else(PoisonError::into_inner);
            if notes.len() < crate::format::MAX_NOTES {
                notes.push(note);
            }
        }
        match &self.file {
            Some(f) => f.write_note(note, durable),
            None => Ok(()),
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
