//! The flusher's side: taking queued chunks and settling them (ack, rollback, nack,
//! quarantine).
//!
//! A recovered chunk is verified (every append's crc32c, streamed) the first time it is taken,
//! outside the state lock; one that fails is quarantined and `take` moves on to the next.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::buffer::{Buffer, Inner};
use crate::chunk::{Chunk, ChunkBody};
use crate::error::{BufferError, DiskOp};
use crate::format::Record;
use crate::key::ChunkId;
use crate::retry::RetryVerdict;
use crate::state::{Body, Effects, Phase};
use crate::stats::Counters;
use crate::storage::{RealStorage, Storage, write_all_at};

/// What the flusher does with a chunk after a failed attempt ([`Buffer::nack`]).
#[derive(Debug)]
pub enum RetryDecision {
    /// The chunk is back in the queue and will be taken again at this time.
    RetryAt(SystemTime),
    /// The retry budget passed `retry_secondary_threshold`: send the chunk (still in flight) to
    /// the `<secondary>` output now; its [`Chunk::retry`] says so on later takes too.
    UseSecondary(Chunk),
    /// The retry budget is spent. The chunk is still in flight and nothing was deleted: the
    /// caller quarantines it (or acks it to discard it, logging that).
    GiveUp(Chunk),
}

impl Buffer {
    /// The oldest queued chunk whose retry time has come, marked in flight.
    pub fn take(&self, now: SystemTime) -> Option<Chunk> {
        let inner = &self.inner;
        loop {
            let (chunk, needs_verify) = {
                let mut guard = inner.lock_state();
                let st = &mut *guard;
                let id = st
                    .queue
                    .values()
                    .copied()
                    .find(|id| st.entries.get(id).is_some_and(|e| e.ready_at() <= now))?;
                let e = st.entries.get_mut(&id)?;
                st.queue.remove(&e.queue_seq);
                e.phase = Phase::InFlight;
                let body = match &e.body {
                    Body::File(f) => ChunkBody::File(f.clone()),
                    Body::Frozen(m) => ChunkBody::Memory(m.clone()),
                    Body::Memory(_) => ChunkBody::Memory(Arc::default()),
                };
                let owner: std::sync::Weak<Inner> = Arc::downgrade(inner);
                let chunk = Chunk {
                    owner,
                    id,
                    key: e.key.clone(),
                    created: e.created,
                    content: e.content.clone(),
                    compressed: e.compressed,
                    retry: e.retry.clone(),
                    body,
                    settled: false,
                    notes: e.notes.clone(),
                };
                (chunk, !e.verified)
            };
            if !needs_verify {
                return Some(chunk);
            }
            let ChunkBody::File(file) = &chunk.body else {
                return Some(chunk);
            };
            match file.verify(chunk.bytes()) {
                Ok(Ok(())) => {
                    if let Some(e) = inner.lock_state().entries.get_mut(&chunk.id) {
                        e.verified = true;
                    }
                    return Some(chunk);
                }
                Ok(Err(offset)) => {
                    let reason =
                        format!("crc32c mismatch in the append at payload offset {offset}");
                    tracing::error!(chunk = %chunk.id, %reason, "corrupt buffer chunk: quarantined");
                    if let Err(e) = self.quarantine(chunk, &reason) {
                        tracing::error!(error = %e, "could not quarantine a corrupt chunk");
                    }
                }
                Err(e) => {
                    Counters::bump(&inner.counters.disk_errors, 1);
                    tracing::error!(chunk = %chunk.id, error = %e, "cannot read buffer chunk; will retry it later");
                    let mut chunk = chunk;
                    chunk.settled = true;
                    inner.delay(chunk.id, now + inner.cfg().config.retry.retry_wait);
                }
            }
        }
    }

    /// The destination confirmed the chunk: delete it for good.
    pub fn ack(&self, mut chunk: Chunk) -> Result<(), BufferError> {
        chunk.settled = true;
        let inner = &self.inner;
        let entry = {
            let mut st = inner.lock_state();
            match st.entries.get(&chunk.id) {
                Some(e) if e.phase == Phase::InFlight => st.remove(chunk.id),
                _ => None,
            }
        };
        let Some(entry) = entry else {
            return Err(BufferError::UnknownChunk(chunk.id));
        };
        let mut result = Ok(());
        if let Body::File(f) = &entry.body {
            if let Err(e) = f.remove() {
                Counters::bump(&inner.counters.disk_errors, 1);
                result = Err(BufferError::Disk {
                    op: DiskOp::Remove,
                    path: e.path,
                    source: e.source,
                });
            }
        }
        inner.apply(Effects {
            space_freed: true,
            ..Effects::default()
        });
        result
    }

    /// Back to the queue in its old place, retry state untouched (e.g. a node timed out and the
    /// chunk should go elsewhere now).
    pub fn rollback(&self, mut chunk: Chunk) {
        chunk.settled = true;
        self.inner.release_in_flight(chunk.id);
    }

    /// The attempt failed at `now`: advances the chunk's retry state.
    pub fn nack(&self, mut chunk: Chunk, now: SystemTime) -> RetryDecision {
        let inner = &self.inner;
        Counters::bump(&inner.counters.retry_count, 1);
        let mut fx = Effects::default();
        let decision = {
            let mut guard = inner.lock_state();
            let st = &mut *guard;
            let Some(e) = st
                .entries
                .get_mut(&chunk.id)
                .filter(|e| e.phase == Phase::InFlight)
            else {
                chunk.settled = true;
                return RetryDecision::RetryAt(now);
            };
            let verdict = inner.cfg().policy.on_failure_random(&mut e.retry, now);
            chunk.retry = e.retry.clone();
            if let (Body::File(f), Some(first)) = (&e.body, e.retry.first_failure) {
                let rec = Record::Retry {
                    steps: e.retry.steps,
                    first_failure: first,
                };
                fx.records.push((f.clone(), rec));
            }
            match verdict {
                RetryVerdict::RetryAt(at) => {
                    e.phase = Phase::Queued;
                    let seq = e.queue_seq;
                    st.queue.insert(seq, chunk.id);
                    chunk.settled = true;
                    fx.notify = true;
                    RetryDecision::RetryAt(at)
                }
                RetryVerdict::UseSecondary => RetryDecision::UseSecondary(chunk),
                RetryVerdict::GiveUp => {
                    tracing::error!(chunk = %chunk.id, steps = chunk.retry.steps,
                        "buffer chunk exhausted its retries");
                    RetryDecision::GiveUp(chunk)
                }
            }
        };
        inner.apply(fx);
        decision
    }

    /// Removes the chunk from the buffer, keeping its data for an operator: a file chunk moves
    /// to `<path>/quarantine/` (returned); a memory chunk is written to `quarantine_dir` if one
    /// is configured, else only counted and logged (`Ok(None)`).
    pub fn quarantine(
        &self,
        mut chunk: Chunk,
        reason: &str,
    ) -> Result<Option<PathBuf>, BufferError> {
        chunk.settled = true;
        let inner = &self.inner;
        let entry = inner.lock_state().remove(chunk.id);
        let Some(entry) = entry else {
            return Err(BufferError::UnknownChunk(chunk.id));
        };
        Counters::bump(&inner.counters.quarantined_chunks, 1);
        Counters::bump(&inner.counters.quarantined_records, entry.content.records);
        let result = match (&chunk.body, &inner.files) {
            (ChunkBody::File(f), Some(files)) => f
                .quarantine(&files.quarantine, &inner.name, reason)
                .map(Some)
                .map_err(|e| BufferError::Disk {
                    op: DiskOp::Quarantine,
                    path: e.path,
                    source: e.source,
                }),
            _ => match inner.cfg().config.quarantine_dir.clone() {
                Some(dir) => dump_memory_chunk(&chunk, &dir, &inner.name, reason)
                    .map(Some)
                    .map_err(|(path, source)| BufferError::Disk {
                        op: DiskOp::Quarantine,
                        path,
                        source,
                    }),
                None => Ok(None),
            },
        };
        match &result {
            Ok(path) => tracing::error!(chunk = %chunk.id, reason, path = ?path,
                records = chunk.records(), "buffer chunk quarantined"),
            Err(e) => {
                Counters::bump(&inner.counters.disk_errors, 1);
                tracing::error!(chunk = %chunk.id, reason, error = %e, "quarantining a buffer chunk failed");
            }
        }
        inner.apply(Effects {
            space_freed: true,
            ..Effects::default()
        });
        result
    }
}

fn dump_memory_chunk(
    chunk: &Chunk,
    dir: &std::path::Path,
    name: &str,
    reason: &str,
) -> Result<PathBuf, (PathBuf, io::Error)> {
    let storage = RealStorage;
    let fail = |p: &std::path::Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    storage.create_dir_all(dir).map_err(fail(dir))?;
    let path = dir.join(crate::format::file_name(
        name,
        &chunk.id,
        crate::format::PAYLOAD_SUFFIX,
    ));
    let file = storage.create_new(&path).map_err(fail(&path))?;
    let mut reader = chunk.reader().map_err(fail(&path))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    loop {
        let n = io::Read::read(&mut reader, &mut buf).map_err(fail(&path))?;
        if n == 0 {
            break;
        }
        write_all_at(file.as_ref(), &buf[..n], at).map_err(fail(&path))?;
        at += n as u64;
    }
    let reason_path = dir.join(crate::format::file_name(
        name,
        &chunk.id,
        crate::format::REASON_SUFFIX,
    ));
    let note = storage
        .create_new(&reason_path)
        .map_err(fail(&reason_path))?;
    write_all_at(note.as_ref(), format!("{reason}\n").as_bytes(), 0).map_err(fail(&reason_path))?;
    Ok(path)
}

impl crate::chunk::Owner for Inner {
    fn release_in_flight(&self, id: ChunkId) {
        Inner::release_in_flight(self, id);
    }
}

impl Inner {
    /// An in-flight chunk goes back to its place in the queue.
    pub(crate) fn release_in_flight(&self, id: ChunkId) {
        {
            let mut guard = self.lock_state();
            let st = &mut *guard;
            let Some(e) = st
                .entries
                .get_mut(&id)
                .filter(|e| e.phase == Phase::InFlight)
            else {
                return;
            };
            e.phase = Phase::Queued;
            let seq = e.queue_seq;
            st.queue.insert(seq, id);
        }
        self.apply(Effects {
            notify: true,
            ..Effects::default()
        });
    }

    /// Back to the queue, not to be taken before `at` (retry state untouched).
    fn delay(&self, id: ChunkId, at: SystemTime) {
        let mut guard = self.lock_state();
        let st = &mut *guard;
        if let Some(e) = st
            .entries
            .get_mut(&id)
            .filter(|e| e.phase == Phase::InFlight)
        {
            e.phase = Phase::Queued;
            e.queued_at = at;
            let seq = e.queue_seq;
            st.queue.insert(seq, id);
        }
    }
}
