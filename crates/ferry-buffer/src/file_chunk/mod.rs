//! One chunk of the file buffer: its two files, the append path with group commit, and the
//! moves to quarantine. The byte layout is described in [`crate::format`].
//!
//! Locks: `writer` serializes appends to this chunk (held for one append's writes, never for a
//! whole chunk); `sync` coordinates group commit. Neither is held while taking the buffer's
//! state lock except `writer`, whose holder may briefly take the state lock (order: writer,
//! then state; never the reverse).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::format::{self, Header, RECORD_LEN, Record};
use crate::key::{ChunkId, ChunkKey};
use crate::storage::{OpenMode, Storage, StorageFile, write_all_at};

mod commit;
mod quarantine;
mod syncer;

pub use quarantine::{move_to_quarantine, payload_crc};

/// Size of the scratch buffer used to stream verification reads.
pub const VERIFY_BUF: usize = 64 * 1024;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the chunk's files are (changes when it is quarantined).
#[derive(Clone, Debug)]
pub struct ChunkPaths {
    pub payload: PathBuf,
    pub journal: PathBuf,
}

/// The durable extent of a chunk after a number of appends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub seq: u64,
    pub payload_len: u64,
    pub journal_len: u64,
    pub records: u64,
}

#[derive(Debug)]
struct Writer {
    payload: Arc<dyn StorageFile>,
    journal: Arc<dyn StorageFile>,
    written: Mark,
    poisoned: bool,
}

#[derive(Debug, Default)]
struct SyncState {
    synced: Mark,
    leader: bool,
    failed_through: u64,
    failure: Option<io::ErrorKind>,
}

/// A failed write or sync, with the file it concerns.
#[derive(Debug)]
pub struct FileError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Result of [`FileChunk::write_append`].
pub enum WriteOutcome {
    /// Written (not yet synced) as append number `seq` at `offset`.
    Written { seq: u64, offset: u64 },
    /// The chunk no longer accepts appends (a sync failed or it was sealed); use another.
    Poisoned,
}

#[derive(Debug)]
pub struct FileChunk {
    pub id: ChunkId,
    pub seed: u32,
    pub header_len: u64,
    storage: Arc<dyn Storage>,
    paths: Mutex<ChunkPaths>,
    writer: Mutex<Option<Writer>>,
    sync: Mutex<SyncState>,
    synced: Condvar,
}

impl FileChunk {
    /// Creates the payload and journal files and writes the header. With `durable`, the header
    /// and directory are synced. On failure nothing is left behind (best effort).
    pub fn create(
        storage: Arc<dyn Storage>,
        paths: ChunkPaths,
        header: &Header,
        durable: bool,
    ) -> Result<FileChunk, FileError> {
        let bytes = format::encode_header(header).map_err(|e| FileError {
            path: paths.journal.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FileError { path, source }
        };
        let payload = storage
            .create_new(&paths.payload)
            .map_err(at(&paths.payload))?;
        let result = (|| {
            let journal = storage
                .create_new(&paths.journal)
                .map_err(at(&paths.journal))?;
            write_all_at(journal.as_ref(), &bytes, 0).map_err(at(&paths.journal))?;
            if durable {
                journal.sync_data().map_err(at(&paths.journal))?;
                if let Some(dir) = paths.journal.parent() {
                    storage.sync_dir(dir).map_err(at(dir))?;
                }
            }
            Ok(journal)
        })();
        let journal = match result {
            Ok(j) => j,
            Err(e) => {
                let _ = storage.remove(&paths.journal);
                let _ = storage.remove(&paths.payload);
                return Err(e);
            }
        };
        let start = Mark {
            journal_len: bytes.len() as u64,
            ..Mark::default()
        };
        Ok(FileChunk {
            id: header.id,
            seed: format::record_seed(&header.id),
            header_len: bytes.len() as u64,
            storage,
            paths: Mutex::new(paths),
            writer: Mutex::new(Some(Writer {
                payload,
                journal,
                written: start,
                poisoned: false,
            })),
            sync: Mutex::new(SyncState {
                synced: start,
                ..SyncState::default()
            }),
            synced: Condvar::new(),
        })
    }

    /// A recovered chunk: closed for appends, files opened on demand.
    pub fn recovered(
        storage: Arc<dyn Storage>,
        id: ChunkId,
        paths: ChunkPaths,
        header_len: u64,
    ) -> Self {
        FileChunk {
            id,
            seed: format::record_seed(&id),
            header_len,
            storage,
            paths: Mutex::new(paths),
            writer: Mutex::new(None),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
        }
    }

    pub fn paths(&self) -> ChunkPaths {
        lock(&self.paths).clone()
    }

    /// Opens the payload for reading (works after the chunk was quarantined, too).
    pub fn open_payload(&self) -> io::Result<Arc<dyn StorageFile>> {
        let path = self.paths().payload;
        self.storage.open(&path, OpenMode::Read)
    }

    /// Writes one append: payload bytes at the end, then its journal record. `on_written` runs
    /// while the writer lock is held, so appends are announced in offset order. On error both
    /// files are truncated back, leaving no trace of this append.
    pub fn write_append(
        &self,
        data: &[u8],
        records: u64,
        on_written: impl FnOnce(u64),
    ) -> Result<WriteOutcome, FileError> {
        let mut guard = lock(&self.writer);
        let Some(w) = guard.as_mut().filter(|w| !w.poisoned) else {
            return Ok(WriteOutcome::Poisoned);
        };
        let offset = w.written.payload_len;
        let end = offset + data.len() as u64;
        let index = (w.written.journal_len - self.header_len) / RECORD_LEN as u64;
        let rec = Record::Append {
            crc: crc32c::crc32c(data),
            end,
            records,
        };
        let bytes = format::encode_record(&rec, index, self.seed);
        if let Err(source) = write_all_at(w.payload.as_ref(), data, offset) {
            let _ = w.payload.set_len(offset);
            return Err(FileError {
                path: self.paths().payload,
                source,
            });
        }
        if let Err(source) = write_all_at(w.journal.as_ref(), &bytes, w.written.journal_len) {
            let _ = w.journal.set_len(w.written.journal_len);
            let _ = w.payload.set_len(offset);
            return Err(FileError {
                path: self.paths().journal,
                source,
            });
        }
        w.written = Mark {
            seq: w.written.seq + 1,
            payload_len: end,
            journal_len: w.written.journal_len + RECORD_LEN as u64,
            records: w.written.records + records,
        };
        let seq = w.written.seq;
        on_written(offset);
        Ok(WriteOutcome::Written { seq, offset })
    }

    /// Appends a seal or retry record (advisory: not synced; losing one is harmless).
    pub fn write_record(&self, rec: Record) -> io::Result<()> {
        let mut guard = lock(&self.writer);
        let opened;
        let (journal, len) = match guard.as_mut() {
            Some(w) => (w.journal.clone(), w.written.journal_len),
            None => {
                let path = self.paths().journal;
                opened = match self.storage.open(&path, OpenMode::ReadWrite) {
                    Ok(f) => f,
                    // Acked (deleted) before its seal record was written: nothing to record.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
                };
                let len = opened.size()?;
                (opened.clone(), len)
            }
        };
        if len < self.header_len || (len - self.header_len) % RECORD_LEN as u64 != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "journal length"));
        }
        let index = (len - self.header_len) / RECORD_LEN as u64;
        let bytes = format::encode_record(&rec, index, self.seed);
        write_all_at(journal.as_ref(), &bytes, len)?;
        if let Some(w) = guard.as_mut() {
            w.written.journal_len += RECORD_LEN as u64;
        }
        // The writer's handles are no longer needed once a chunk is sealed.
        if matches!(rec, Record::Seal { .. }) {
            *guard = None;
        }
        Ok(())
    }

    /// Appends a note record; with `durable`, the journal is synced after it.
    pub fn write_note(&self, note: format::Note, durable: bool) -> io::Result<()> {
        self.write_record(Record::Note(note))?;
        if durable {
            let path = self.paths().journal;
            match self.storage.open(&path, OpenMode::ReadWrite) {
                Ok(f) => f.sync_data()?,
                // Acked (deleted) meanwhile: nothing left to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes both files: the payload first. A journal left alone by a crash in between is
    /// known at recovery for what it is (a chunk already delivered) and deleted; a payload
    /// left alone could be a chunk whose journal was lost, and would be quarantined.
    pub fn remove(&self) -> Result<(), FileError> {
        *lock(&self.writer) = None;
        let paths = self.paths();
        for path in [&paths.payload, &paths.journal] {
            match self.storage.remove(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(FileError {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The header a new chunk gets.
pub fn new_header(
    id: ChunkId,
    key: &ChunkKey,
    created: SystemTime,
    seq: u64,
    gzip: bool,
) -> Header {
    Header {
        id,
        gzip,
        created,
        create_seq: seq,
        key: key.clone(),
        len: 0,
    }
}
