//! The append path: size checks, overflow handling, choosing (or creating) the staged chunk,
//! writing and committing.
//!
//! An append first reserves room in a staged chunk under the state lock (no I/O), then writes
//! with only that chunk's writer lock, then waits for the group commit with no lock, then
//! settles its reservation under the state lock. Creating a chunk's files happens with no lock
//! held; two racing creators for one key keep one chunk and delete the other.

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::buffer::{Buffer, Inner};
use crate::config::{Compress, Durability, ValidConfig};
use crate::error::{AppendError, DiskOp};
use crate::file_chunk::{self, ChunkPaths, FileChunk, FileError, WriteOutcome};
use crate::format;
use crate::key::{ChunkId, ChunkKey};
use crate::state::{Effects, Entry};
use crate::stats::Counters;

mod reserve;

use reserve::{Request, Slot};

/// What a successful append did besides storing the entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The chunk the entries went into (`None` for an empty append).
    pub chunk: Option<ChunkId>,
    /// Chunks deleted to make room (`overflow_action drop_oldest_chunk`): log them.
    pub dropped: Vec<DroppedChunk>,
    /// Time spent waiting for space (`overflow_action block`).
    pub waited: Duration,
}

/// A chunk deleted by `drop_oldest_chunk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedChunk {
    pub id: ChunkId,
    pub key: ChunkKey,
    pub bytes: u64,
    pub records: u64,
}

/// How many times an append moves to a fresh chunk after its chunk failed under it.
const MAX_ATTEMPTS: usize = 4;

impl Buffer {
    /// Stores `entries` (a concatenation of msgpack `[time, record]` entries holding `records`
    /// records) under `key`. Returns when the data is committed per the configured
    /// [`Durability`]; only then may the input acknowledge. On `Err` nothing of this append is
    /// visible in the buffer.
    pub fn append(
        &self,
        key: &ChunkKey,
        entries: &[u8],
        records: u64,
    ) -> Result<AppendOutcome, AppendError> {
        self.append_until(key, entries, records, None)
    }

    /// [`Buffer::append`] whose `overflow_action block` wait ends at `deadline` at the latest.
    pub fn append_until(
        &self,
        key: &ChunkKey,
        entries: &[u8],
        records: u64,
        deadline: Option<Instant>,
    ) -> Result<AppendOutcome, AppendError> {
        let result = self.inner.append(key, entries, records, deadline);
        if result.is_err() {
            Counters::bump(&self.inner.counters.append_errors, 1);
        }
        result
    }
}

impl Inner {
    fn encode<'a>(entries: &'a [u8], cfg: &ValidConfig) -> Result<Cow<'a, [u8]>, AppendError> {
        match cfg.config.compress {
            Compress::Text => Ok(Cow::Borrowed(entries)),
            Compress::Gzip => {
                let out = Vec::with_capacity(entries.len() / 4 + 64);
                let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
                gz.write_all(entries).map_err(AppendError::Compress)?;
                Ok(Cow::Owned(gz.finish().map_err(AppendError::Compress)?))
            }
        }
    }

    fn append(
        &self,
        key: &ChunkKey,
        entries: &[u8],
        records: u64,
        deadline: Option<Instant>,
    ) -> Result<AppendOutcome, AppendError> {
        let mut outcome = AppendOutcome::default();
        if entries.is_empty() {
            return Ok(outcome);
        }
        let cfg = self.cfg();
        let data = Self::encode(entries, &cfg)?;
        let len = data.len() as u64;
        let limit = cfg.config.chunk_limit_size;
        if len > limit {
            return Err(AppendError::ChunkOverflow { size: len, limit });
        }
        let req = Request {
            key,
            len,
            records,
            cfg: &cfg,
        };
        if let Some(limit) = cfg.config.chunk_limit_records {
            if records > limit {
                return Err(AppendError::TooManyRecords { records, limit });
            }
        }
        let mem = match (&self.files, data) {
            (None, Cow::Owned(v)) => Some(Bytes::from(v)),
            (None, Cow::Borrowed(s)) => Some(Bytes::copy_from_slice(s)),
            (Some(_), d) => {
                for _ in 0..MAX_ATTEMPTS {
                    let Slot::File(id, chunk) = self.reserve(&req, None, deadline, &mut outcome)?
                    else {
                        continue;
                    };
                    if self.write_file(id, &chunk, &d, records, &cfg)? {
                        outcome.chunk = Some(id);
                        return Ok(outcome);
                    }
                }
                return Err(AppendError::Disk {
                    op: DiskOp::Write,
                    path: self
                        .files
                        .as_ref()
                        .map(|f| f.dir.clone())
                        .unwrap_or_default(),
                    source: std::io::Error::other("chunks kept failing under this append"),
                });
            }
        };
        if let Slot::Memory(id) = self.reserve(&req, mem, deadline, &mut outcome)? {
            outcome.chunk = Some(id);
        }
        Ok(outcome)
    }

    fn create_file_chunk(
        &self,
        id: ChunkId,
        key: &ChunkKey,
        now: SystemTime,
        seq: u64,
        cfg: &ValidConfig,
    ) -> Result<FileChunk, FileError> {
        let Some(files) = &self.files else {
            return Err(FileError {
                path: Default::default(),
                source: std::io::Error::other("not a file buffer"),
            });
        };
        let gzip = cfg.config.compress == Compress::Gzip;
        let header = file_chunk::new_header(id, key, now, seq, gzip);
        let paths = ChunkPaths {
            payload: files
                .dir
                .join(format::file_name(&self.name, &id, format::PAYLOAD_SUFFIX)),
            journal: files
                .dir
                .join(format::file_name(&self.name, &id, format::JOURNAL_SUFFIX)),
        };
        let durable = cfg.config.durability == Durability::Fsync;
        FileChunk::create(files.storage.clone(), paths, &header, durable)
    }

    fn count_drop(&self, e: &Entry, outcome: &mut AppendOutcome) {
        Counters::bump(&self.counters.dropped_chunks, 1);
        Counters::bump(&self.counters.dropped_records, e.content.records);
        tracing::warn!(chunk = %e.id, bytes = e.content.bytes, records = e.content.records,
            "buffer full: dropped the oldest chunk (overflow_action drop_oldest_chunk)");
        outcome.dropped.push(DroppedChunk {
            id: e.id,
            key: (*e.key).clone(),
            bytes: e.content.bytes,
            records: e.content.records,
        });
    }

    /// Writes and commits a reserved file append. `Ok(false)`: the chunk stopped taking appends
    /// under us; the reservation is released and the caller tries another chunk.
    fn write_file(
        &self,
        id: ChunkId,
        chunk: &Arc<FileChunk>,
        data: &[u8],
        records: u64,
        cfg: &ValidConfig,
    ) -> Result<bool, AppendError> {
        let len = data.len() as u64;
        let target = cfg.config.segment_target_size;
        let written = chunk.write_append(data, records, |_offset| {
            let mut st = self.lock_state();
            if let Some(e) = st.entries.get_mut(&id) {
                e.reserved_bytes = e.reserved_bytes.saturating_sub(len);
                e.reserved_records = e.reserved_records.saturating_sub(records);
                e.content.push(len, records, target);
            }
        });
        let settle = |unwritten: Option<(u64, u64)>| {
            let mut fx = Effects::default();
            self.lock_state()
                .settle_append(id, unwritten, cfg, SystemTime::now(), &mut fx);
            self.apply(fx);
        };
        let seq = match written {
            Ok(WriteOutcome::Written { seq, .. }) => seq,
            Ok(WriteOutcome::Poisoned) => {
                settle(Some((len, records)));
                return Ok(false);
            }
            Err(e) => {
                settle(Some((len, records)));
                Counters::bump(&self.counters.disk_errors, 1);
                return Err(AppendError::Disk {
                    op: DiskOp::Write,
                    path: e.path,
                    source: e.source,
                });
            }
        };
        if cfg.config.durability == Durability::Fsync {
            let committed = chunk.commit(seq, |mark| {
                let mut fx = Effects::default();
                self.lock_state().trim_to(id, mark, &mut fx);
                // Space notifications wait until the failing appends settle.
            });
            if let Err(e) = committed {
                settle(None);
                Counters::bump(&self.counters.disk_errors, 1);
                tracing::error!(chunk = %id, path = %e.path.display(), error = %e.source,
                    "fdatasync failed: appends in this group commit refused");
                return Err(AppendError::Disk {
                    op: DiskOp::Sync,
                    path: e.path,
                    source: e.source,
                });
            }
        }
        settle(None);
        Ok(true)
    }
}
