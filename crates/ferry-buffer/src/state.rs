//! The buffer's bookkeeping: which chunks exist, which are staged, queued or in flight, and how
//! many bytes they hold. Pure data behind the buffer's state mutex: no I/O happens here;
//! operations return [`Effects`] that the caller carries out after unlocking.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{FlushMode, ValidConfig};
use crate::content::{Content, MemBody, MemPayload};
use crate::file_chunk::{FileChunk, Mark};
use crate::format::Record;
use crate::key::{ChunkId, ChunkKey};
use crate::retry::RetryState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Filling; the staged map points at it.
    Staged,
    /// Closed to new appends, waiting for appends in progress to finish.
    Sealing,
    /// Waiting to be taken.
    Queued,
    /// Handed out by `take`.
    InFlight,
}

#[derive(Debug)]
pub enum Body {
    Memory(MemBody),
    Frozen(Arc<MemPayload>),
    File(Arc<FileChunk>),
}

#[derive(Debug)]
pub struct Entry {
    pub id: ChunkId,
    pub key: Arc<ChunkKey>,
    pub created: SystemTime,
    pub create_seq: u64,
    pub phase: Phase,
    pub queue_seq: u64,
    pub queued_at: SystemTime,
    pub content: Content,
    pub reserved_bytes: u64,
    pub reserved_records: u64,
    pub pending: u32,
    pub retry: RetryState,
    pub verified: bool,
    pub compressed: bool,
    pub body: Body,
    /// The output's notes on its progress with this chunk (see `format`, "Notes").
    pub notes: crate::chunk::Notes,
}

impl Entry {
    pub fn new(id: ChunkId, key: Arc<ChunkKey>, created: SystemTime, seq: u64, body: Body) -> Self {
        Entry {
            id,
            key,
            created,
            create_seq: seq,
            phase: Phase::Staged,
            queue_seq: 0,
            queued_at: created,
            content: Content::default(),
            reserved_bytes: 0,
            reserved_records: 0,
            pending: 0,
            retry: RetryState::default(),
            verified: true,
            compressed: false,
            body,
            notes: crate::chunk::Notes::default(),
        }
    }

    /// Whether an append of `len` bytes and `records` records still fits.
    pub fn fits(&self, len: u64, records: u64, cfg: &ValidConfig) -> bool {
        let bytes = self.content.bytes + self.reserved_bytes + len;
        let recs = self.content.records + self.reserved_records + records;
        self.phase == Phase::Staged
            && bytes <= cfg.config.chunk_limit_size
            && cfg.config.chunk_limit_records.is_none_or(|max| recs <= max)
    }

    /// Full per `chunk_full_threshold` (or `flush_mode immediate`): time to queue it.
    pub fn is_full(&self, cfg: &ValidConfig) -> bool {
        cfg.flush_mode == FlushMode::Immediate
            || self.content.bytes >= cfg.full_bytes()
            || cfg
                .full_records()
                .is_some_and(|r| self.content.records >= r)
    }

    /// When a staged chunk is due to be queued by time.
    pub fn due_at(&self, cfg: &ValidConfig) -> Option<SystemTime> {
        match cfg.flush_mode {
            FlushMode::Interval | FlushMode::Default => {
                Some(self.created + cfg.config.flush_interval)
            }
            FlushMode::Immediate => Some(self.created),
            FlushMode::Lazy => {
                let slice = cfg.config.timekey?;
                let start = self.key.timekey?;
                let end = start.saturating_add(i64::try_from(slice.as_secs()).unwrap_or(i64::MAX));
                let secs = end.max(0).unsigned_abs();
                Some(UNIX_EPOCH + Duration::from_secs(secs) + cfg.config.timekey_wait)
            }
        }
    }

    /// When a queued chunk may be taken.
    pub fn ready_at(&self) -> SystemTime {
        self.retry.next_at.unwrap_or(self.queued_at)
    }
}

/// Work to do once the state lock is released.
#[derive(Debug, Default)]
pub struct Effects {
    /// Journal records to append (seal and retry records).
    pub records: Vec<(Arc<FileChunk>, Record)>,
    /// Chunks whose files are to be deleted.
    pub delete: Vec<Arc<FileChunk>>,
    /// A chunk became takeable, or a new chunk was staged (its flush time may come before the
    /// flushers' next timer): call the notify hook.
    pub notify: bool,
    /// Bytes were freed: wake blocked appends (and call the hook).
    pub space_freed: bool,
}

#[derive(Debug, Default)]
pub struct State {
    pub entries: HashMap<ChunkId, Entry>,
    pub staged: HashMap<Arc<ChunkKey>, ChunkId>,
    /// Queued chunks that are not in flight, by queue sequence.
    pub queue: BTreeMap<u64, ChunkId>,
    pub next_seq: u64,
    /// Committed and reserved bytes of all chunks.
    pub total_bytes: u64,
    pub closed: bool,
}

impl State {
    pub fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn insert_staged(&mut self, entry: Entry) {
        self.staged.insert(entry.key.clone(), entry.id);
        self.entries.insert(entry.id, entry);
    }

    /// Closes a staged chunk for appends; queues it at once if no append is in progress.
    pub fn seal(&mut self, id: ChunkId, now: SystemTime, fx: &mut Effects) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if self.staged.get(&e.key) == Some(&id) {
            self.staged.remove(&e.key);
        }
        if e.phase != Phase::Staged {
            return;
        }
        e.phase = Phase::Sealing;
        if e.pending == 0 {
            self.finish_seal(id, now, fx);
        }
    }

    /// Queues a sealing chunk whose appends are all settled (or drops it if empty).
    pub fn finish_seal(&mut self, id: ChunkId, now: SystemTime, fx: &mut Effects) {
        let seq = self.take_seq();
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if e.phase != Phase::Sealing || e.pending != 0 {
            return;
        }
        if e.content.bytes == 0 {
            if let Some(e) = self.remove(id) {
                if let Body::File(f) = e.body {
                    fx.delete.push(f);
                }
            }
            return;
        }
        e.phase = Phase::Queued;
        e.queue_seq = seq;
        e.queued_at = now;
        match &mut e.body {
            Body::Memory(m) => e.body = Body::Frozen(m.freeze()),
            Body::File(f) => fx.records.push((f.clone(), Record::Seal { seq, at: now })),
            Body::Frozen(_) => {}
        }
        self.queue.insert(seq, id);
        fx.notify = true;
    }

    /// Forgets a chunk, returning it so the caller can delete its data.
    pub fn remove(&mut self, id: ChunkId) -> Option<Entry> {
        let e = self.entries.remove(&id)?;
        if self.staged.get(&e.key) == Some(&id) {
            self.staged.remove(&e.key);
        }
        if matches!(e.phase, Phase::Queued) {
            self.queue.remove(&e.queue_seq);
        }
        self.total_bytes = self
            .total_bytes
            .saturating_sub(e.content.bytes + e.reserved_bytes);
        Some(e)
    }

    /// An append in progress on `id` finished (`ok`) or gave up its reservation.
    pub fn settle_append(
        &mut self,
        id: ChunkId,
        unwritten: Option<(u64, u64)>,
        cfg: &ValidConfig,
        now: SystemTime,
        fx: &mut Effects,
    ) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.pending = e.pending.saturating_sub(1);
        if let Some((len, records)) = unwritten {
            e.reserved_bytes = e.reserved_bytes.saturating_sub(len);
            e.reserved_records = e.reserved_records.saturating_sub(records);
            self.total_bytes = self.total_bytes.saturating_sub(len);
            fx.space_freed = true;
        }
        if e.phase == Phase::Staged && e.is_full(cfg) {
            self.seal(id, now, fx);
        } else if e.phase == Phase::Sealing && e.pending == 0 {
            self.finish_seal(id, now, fx);
        }
    }

    /// A group commit failed: cut the chunk back to its synced extent and stop filling it.
    pub fn trim_to(&mut self, id: ChunkId, mark: Mark, fx: &mut Effects) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let before = e.content.bytes;
        e.content.truncate(mark.payload_len, mark.records);
        self.total_bytes = self.total_bytes.saturating_sub(before - e.content.bytes);
        fx.space_freed = true;
        if self.staged.get(&e.key) == Some(&id) {
            self.staged.remove(&e.key);
        }
        if e.phase == Phase::Staged {
            e.phase = Phase::Sealing;
        }
    }

    /// The chunk `overflow_action drop_oldest_chunk` removes: the oldest queued one, else the
    /// oldest staged one without appends in progress.
    pub fn pick_victim(&self) -> Option<ChunkId> {
        if let Some((_, id)) = self.queue.iter().next() {
            return Some(*id);
        }
        self.entries
            .values()
            .filter(|e| e.phase == Phase::Staged && e.pending == 0 && e.content.bytes > 0)
            .min_by_key(|e| (e.create_seq, e.id))
            .map(|e| e.id)
    }

    pub fn staged_ids(&self) -> Vec<ChunkId> {
        let mut ids: Vec<(u64, ChunkId)> = self
            .entries
            .values()
            .filter(|e| e.phase == Phase::Staged)
            .map(|e| (e.create_seq, e.id))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }
}
