//! Group commit: appends to one chunk that were written before a sync starts share it.

use std::io;
use std::sync::PoisonError;

use super::{FileChunk, FileError, Mark, lock};

impl FileChunk {
    /// Waits until append `seq` is synced, syncing as the group leader when no sync is running.
    /// On a sync failure every append not yet synced fails: both files are truncated back to the
    /// last synced mark, `on_failure` gets that mark (under the writer lock), and the chunk
    /// stops taking appends.
    pub fn commit(&self, seq: u64, on_failure: impl FnOnce(Mark)) -> Result<(), FileError> {
        let mut on_failure = Some(on_failure);
        let mut st = lock(&self.sync);
        loop {
            if st.synced.seq >= seq {
                return Ok(());
            }
            if seq <= st.failed_through {
                let kind = st.failure.unwrap_or(io::ErrorKind::Other);
                return Err(FileError {
                    path: self.paths().payload,
                    source: io::Error::new(kind, "fdatasync failed for this group commit"),
                });
            }
            if st.leader {
                st = self.synced.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.leader = true;
            drop(st);
            let result = self.sync_once();
            let mut failed = None;
            if let Err(e) = &result {
                failed = Some((e.source.kind(), self.roll_back_to_synced(on_failure.take())));
            }
            st = lock(&self.sync);
            st.leader = false;
            match (result, failed) {
                (Ok(mark), _) => st.synced = mark,
                (Err(e), Some((kind, through))) => {
                    st.failed_through = st.failed_through.max(through);
                    st.failure = Some(kind);
                    self.synced.notify_all();
                    return Err(e);
                }
                (Err(e), None) => return Err(e),
            }
            self.synced.notify_all();
        }
    }

    fn sync_once(&self) -> Result<Mark, FileError> {
        let (mark, payload, journal) = {
            let guard = lock(&self.writer);
            let Some(w) = guard.as_ref() else {
                return Err(FileError {
                    path: self.paths().payload,
                    source: io::Error::other("chunk closed for appends"),
                });
            };
            (w.written, w.payload.clone(), w.journal.clone())
        };
        // Both syncs run at once: on journaling filesystems concurrent syncs share one
        // journal commit, so the pair costs about one sync.
        let j = super::syncer::start(journal);
        let p = payload.sync_data();
        let j = j.wait();
        p.map_err(|source| FileError {
            path: self.paths().payload,
            source,
        })?;
        j.map_err(|source| FileError {
            path: self.paths().journal,
            source,
        })?;
        Ok(mark)
    }

    /// After a failed sync: truncate to the synced mark, poison, return the last written seq.
    fn roll_back_to_synced(&self, on_failure: Option<impl FnOnce(Mark)>) -> u64 {
        let synced = lock(&self.sync).synced;
        let mut guard = lock(&self.writer);
        let Some(w) = guard.as_mut() else {
            return synced.seq;
        };
        let _ = w.payload.set_len(synced.payload_len);
        let _ = w.journal.set_len(synced.journal_len);
        let _ = w.payload.sync_data();
        let _ = w.journal.sync_data();
        w.poisoned = true;
        let through = w.written.seq;
        w.written = Mark {
            seq: through,
            ..synced
        };
        if let Some(f) = on_failure {
            f(synced);
        }
        through
    }
}
