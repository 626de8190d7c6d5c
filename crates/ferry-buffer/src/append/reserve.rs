//! Reserving room for an append under the state lock: overflow actions, choosing the staged
//! chunk, sealing full ones, creating new ones (file creation happens with the lock released).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use super::{AppendOutcome, Inner};
use crate::config::{Compress, OverflowAction, ValidConfig};
use crate::error::{AppendError, DiskOp};
use crate::file_chunk::FileChunk;
use crate::key::{ChunkId, ChunkKey};
use crate::state::{Body, Effects, Entry, State};
use crate::stats::Counters;

/// One append being placed, with the configuration it is placed under (one snapshot for the
/// whole append, even if a reload reconfigures the buffer meanwhile).
pub(super) struct Request<'a> {
    pub key: &'a ChunkKey,
    pub len: u64,
    pub records: u64,
    pub cfg: &'a ValidConfig,
}

pub(super) enum Step {
    Done(Result<Slot, AppendError>),
    Block,
    Create {
        id: ChunkId,
        seq: u64,
        now: SystemTime,
    },
}

pub(super) enum Slot {
    Memory(ChunkId),
    File(ChunkId, Arc<FileChunk>),
}

impl Inner {
    /// Finds room for the append, handling overflow. A memory append is stored right here.
    pub(super) fn reserve(
        &self,
        req: &Request<'_>,
        mut mem: Option<Bytes>,
        deadline: Option<Instant>,
        outcome: &mut AppendOutcome,
    ) -> Result<Slot, AppendError> {
        let mut fx = Effects::default();
        let mut fresh: Option<(FileChunk, u64)> = None;
        let started = Instant::now();
        let deadline =
            deadline.or_else(|| req.cfg.config.overflow_block_timeout.map(|t| started + t));
        let mut blocked = false;
        let mut guard = self.lock_state();
        let result = loop {
            match self.try_reserve(&mut guard, req, &mut mem, &mut fresh, outcome, &mut fx) {
                Step::Done(r) => break r,
                Step::Block => {
                    if !blocked {
                        blocked = true;
                        Counters::bump(&self.counters.blocked_appends, 1);
                    }
                    let now = Instant::now();
                    guard = match deadline {
                        None => self
                            .space
                            .wait(guard)
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                        Some(d) if d > now => {
                            self.space
                                .wait_timeout(guard, d - now)
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0
                        }
                        Some(_) => {
                            break Err(AppendError::BlockTimeout {
                                size: req.len,
                                waited: started.elapsed(),
                            });
                        }
                    };
                    outcome.waited = started.elapsed();
                }
                Step::Create { id, seq, now } => {
                    drop(guard);
                    let created = self.create_file_chunk(id, req.key, now, seq, req.cfg);
                    guard = self.lock_state();
                    match created {
                        Ok(f) => fresh = Some((f, seq)),
                        Err(e) => {
                            Counters::bump(&self.counters.disk_errors, 1);
                            break Err(AppendError::Disk {
                                op: DiskOp::CreateChunk,
                                path: e.path,
                                source: e.source,
                            });
                        }
                    }
                }
            }
        };
        drop(guard);
        if let Some((unused, _)) = fresh {
            let _ = unused.remove();
        }
        self.apply(fx);
        result
    }

    /// One pass of [`Inner::reserve`] under the state lock.
    fn try_reserve(
        &self,
        st: &mut State,
        req: &Request<'_>,
        mem: &mut Option<Bytes>,
        fresh: &mut Option<(FileChunk, u64)>,
        outcome: &mut AppendOutcome,
        fx: &mut Effects,
    ) -> Step {
        let cfg = req.cfg;
        let gzip = cfg.config.compress == Compress::Gzip;
        loop {
            if st.closed {
                return Step::Done(Err(AppendError::Closed));
            }
            if st.total_bytes + req.len > cfg.total_limit_size {
                let overflow = AppendError::Overflow {
                    size: req.len,
                    total: st.total_bytes,
                    limit: cfg.total_limit_size,
                };
                match cfg.config.overflow_action {
                    OverflowAction::ThrowException => return Step::Done(Err(overflow)),
                    OverflowAction::Block => return Step::Block,
                    OverflowAction::DropOldestChunk => {
                        let Some(victim) = st.pick_victim() else {
                            return Step::Done(Err(overflow));
                        };
                        if let Some(e) = st.remove(victim) {
                            self.count_drop(&e, outcome);
                            if let Body::File(f) = e.body {
                                fx.delete.push(f);
                            }
                            fx.space_freed = true;
                        }
                        continue;
                    }
                }
            }
            let now = SystemTime::now();
            if let Some(&id) = st.staged.get(req.key) {
                let Some(e) = st.entries.get_mut(&id) else {
                    st.staged.remove(req.key);
                    continue;
                };
                if !e.fits(req.len, req.records, cfg) {
                    st.seal(id, now, fx);
                    continue;
                }
                let slot = match &mut e.body {
                    Body::File(f) => {
                        e.pending += 1;
                        e.reserved_bytes += req.len;
                        e.reserved_records += req.records;
                        Slot::File(id, f.clone())
                    }
                    Body::Memory(body) => {
                        let Some(data) = mem.take() else {
                            return Step::Done(Err(AppendError::Closed));
                        };
                        body.push(data);
                        e.content
                            .push(req.len, req.records, cfg.config.segment_target_size);
                        Slot::Memory(id)
                    }
                    Body::Frozen(_) => {
                        st.seal(id, now, fx);
                        continue;
                    }
                };
                let full = matches!(slot, Slot::Memory(_)) && e.is_full(cfg);
                st.total_bytes += req.len;
                if full {
                    st.seal(id, now, fx);
                }
                return Step::Done(Ok(slot));
            }
            let shared = Arc::new(req.key.clone());
            if self.files.is_none() {
                let seq = st.take_seq();
                let id = ChunkId::generate(now);
                let body = Body::Memory(Default::default());
                let mut e = Entry::new(id, shared, now, seq, body);
                e.compressed = gzip;
                st.insert_staged(e);
                fx.notify = true;
                continue;
            }
            if let Some((f, seq)) = fresh.take() {
                let mut e = Entry::new(f.id, shared, now, seq, Body::File(Arc::new(f)));
                e.compressed = gzip;
                st.insert_staged(e);
                fx.notify = true;
                continue;
            }
            let seq = st.take_seq();
            return Step::Create {
                id: ChunkId::generate(now),
                seq,
                now,
            };
        }
    }
}
