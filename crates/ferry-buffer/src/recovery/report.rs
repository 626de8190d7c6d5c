//! What recovery found, for the caller to log: [`RecoveryReport`].

use std::io;
use std::path::PathBuf;

use crate::format::{HeaderError, RecordError};
use crate::key::{ChunkId, ChunkKey};

/// What [`crate::Buffer::open`] found on disk.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// Chunks recovered and queued, in queue order.
    pub recovered: Vec<RecoveredChunk>,
    pub torn_tails: Vec<TornTail>,
    pub quarantined: Vec<QuarantinedChunk>,
    /// Files of chunks without data, deleted.
    pub removed_empty: Vec<PathBuf>,
    /// Journals whose payload was gone: a chunk delivered and being removed when the process
    /// stopped (the payload is removed first). Deleted: nothing of the chunk is pending.
    pub finished_purges: Vec<PathBuf>,
    /// Files named like this buffer's chunks with an unknown suffix, left alone.
    pub unknown_files: Vec<PathBuf>,
    /// Quarantine or delete operations that failed; the files stay where they are.
    pub failures: Vec<RecoveryFailure>,
}

impl RecoveryReport {
    /// Nothing was truncated, quarantined or left failing.
    pub fn is_clean(&self) -> bool {
        self.torn_tails.is_empty() && self.quarantined.is_empty() && self.failures.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredChunk {
    pub id: ChunkId,
    pub key: ChunkKey,
    pub bytes: u64,
    pub records: u64,
    /// The chunk was still filling at the crash (it is queued now).
    pub was_staged: bool,
}

/// A torn tail cut off a chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TornTail {
    pub id: Option<ChunkId>,
    pub path: PathBuf,
    /// Payload length kept.
    pub kept_bytes: u64,
    pub payload_bytes_removed: u64,
    pub journal_bytes_removed: u64,
    /// Whole appends dropped (written but never committed).
    pub appends_removed: u64,
    pub records_removed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantinedChunk {
    pub id: ChunkId,
    pub reason: QuarantineReason,
    /// New location of the payload (or journal, if there was no payload).
    pub moved_to: PathBuf,
}

#[derive(Debug)]
pub struct RecoveryFailure {
    pub path: PathBuf,
    pub error: io::Error,
}

/// Why a chunk was quarantined at recovery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuarantineReason {
    #[error("journal header unreadable: {0}")]
    Header(HeaderError),
    #[error("journal header names chunk {found}, the file name says another")]
    IdMismatch { found: ChunkId },
    #[error("zero-byte journal next to a {0}-byte payload")]
    EmptyJournalWithData(u64),
    #[error("payload file without a journal")]
    OrphanPayload,
    #[error("journal lists {0} bytes but the payload file is missing")]
    MissingPayload(u64),
    #[error("journal record {index} is invalid ({error}) but later records are valid")]
    JournalCorrupt { index: u64, error: RecordError },
    #[error("journal record {index}: {what}")]
    Structure { index: u64, what: &'static str },
    #[error("sealed chunk's payload is {found} bytes, its journal says {expected}")]
    PayloadShort { expected: u64, found: u64 },
    #[error("I/O error while recovering: {0:?}")]
    Io(io::ErrorKind),
}

impl From<io::Error> for QuarantineReason {
    fn from(e: io::Error) -> Self {
        QuarantineReason::Io(e.kind())
    }
}
