//! Moving a buffer's chunks somewhere else, oldest first, so a planned stop loses nothing even
//! with a memory buffer: what a memory buffer could not flush before stopping is written to
//! `<root>/spill/<@id>` (a file buffer: journaled, checksummed, synced), and the next start's
//! output with the same `@id` takes it back into whatever buffer it has then. Only a crash
//! loses what a memory buffer held.
//!
//! A chunk leaves its buffer only after every segment of it was put; a failure leaves it where
//! it was (a retried move may duplicate a segment, never lose one).

use super::SinkError;
use super::buffered::{BUFFER_FILE_NAME, Buffered};
use super::segment::SegmentReader;
use crate::event::Batch;
use bytes::Bytes;
use ferry_buffer::{AppendError, Buffer, BufferConfig, ChunkKey, OpenError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What a move carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub chunks: u64,
    pub records: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: OpenError,
    },
    #[error("cannot read a chunk: {0}")]
    Read(#[source] SinkError),
    #[error("cannot store a chunk: {0}")]
    Put(#[source] AppendError),
    #[error("the destination refused a chunk: {0}")]
    Refused(String),
}

/// Every chunk of `from` (staged ones sealed first), oldest first, segment by segment to
/// `put(key, entries, records)`; each chunk is deleted from `from` once all of it was put.
/// Blocking.
pub fn drain(
    from: &Buffer,
    put: &mut dyn FnMut(&ChunkKey, Bytes, u64) -> Result<(), HandoffError>,
) -> Result<Moved, HandoffError> {
    from.flush_all();
    // Retry waits do not hold a chunk back here: everything goes.
    let whenever = SystemTime::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let mut moved = Moved::default();
    while let Some(chunk) = from.take(whenever) {
        let records: Vec<u64> = chunk.segments().iter().map(|s| s.records).collect();
        let result = (|| {
            let mut reader = SegmentReader::new(&chunk).map_err(HandoffError::Read)?;
            for n in records {
                let Some(entries) = reader.next_blocking().map_err(HandoffError::Read)? else {
                    break;
                };
                put(chunk.key(), entries, n)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            from.rollback(chunk);
            return Err(e);
        }
        moved.chunks += 1;
        moved.records += chunk.records();
        if let Err(e) = from.ack(chunk) {
            tracing::warn!("a moved chunk could not be deleted from its old buffer: {e}");
        }
    }
    Ok(moved)
}

/// Writes what a memory buffer still holds to `dir` (a file buffer), for the next start.
/// Blocking.
pub fn spill(from: &Buffer, dir: &Path) -> Result<Moved, HandoffError> {
    let mut config = BufferConfig::file(dir);
    config.chunk_limit_size = config
        .chunk_limit_size
        .max(from.config().config.chunk_limit_size);
    config.total_limit_size = u64::MAX / 2;
    let open_err = |source| HandoffError::Open {
        path: dir.to_path_buf(),
        source,
    };
    let (to, _) = Buffer::open(config, BUFFER_FILE_NAME).map_err(open_err)?;
    let moved = drain(from, &mut |key, entries, records| {
        to.append(key, &entries, records)
            .map(|_| ())
            .map_err(HandoffError::Put)
    });
    to.close();
    moved
}

/// Appends one moved segment to `into` (split by its chunk keys again), waiting while it is
/// full until `deadline`. Blocking.
pub fn put_into(
    into: &Buffered,
    id: &str,
    key: &ChunkKey,
    entries: Bytes,
    records: u64,
    deadline: Instant,
) -> Result<(), HandoffError> {
    let tag = key.tag.as_deref().unwrap_or_default();
    let batch = Batch::new(tag, entries, records);
    loop {
        match into.append_blocking(id, &batch) {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(HandoffError::Refused(e.to_string())),
        }
    }
}

/// Whether `dir` holds a spill to take back.
pub fn has_spill(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".journal")))
    })
}

/// Takes a spill written by an earlier stop back into `into`, in order. A destination that is
/// full is retried until `deadline`; what is left stays in `dir` for the next start. Removes
/// `dir` once it is empty. Blocking.
pub fn take_back(
    dir: &Path,
    into: &Buffered,
    id: &str,
    deadline: Instant,
) -> Result<Moved, HandoffError> {
    let open_err = |source| HandoffError::Open {
        path: dir.to_path_buf(),
        source,
    };
    let (from, report) =
        Buffer::open(BufferConfig::file(dir), BUFFER_FILE_NAME).map_err(open_err)?;
    super::buffered::log_recovery(id, &report);
    let moved = drain(&from, &mut |key, entries, records| {
        put_into(into, id, key, entries, records, deadline)
    });
    from.close();
    drop(from);
    // What was taken back is overdue: queue it now rather than after a flush interval.
    into.buffer.flush_all();
    if moved.is_ok() {
        remove_if_empty(dir);
    }
    moved
}

/// Removes a spill directory that holds nothing but its lock file (a quarantine keeps it).
fn remove_if_empty(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let lock = format!("{BUFFER_FILE_NAME}.lock");
    let quarantine = dir.join(ferry_buffer::format::QUARANTINE_DIR);
    let quarantine_empty = std::fs::read_dir(&quarantine).map_or(true, |mut e| e.next().is_none());
    let removable =
        |n: &String| *n == lock || (*n == ferry_buffer::format::QUARANTINE_DIR && quarantine_empty);
    if names.iter().all(removable) {
        let _ = std::fs::remove_dir_all(dir);
    }
}
