//! The in-memory position table and the task that writes it out.
//!
//! The tail task updates an entry after each commit (a short lock) and bumps the generation;
//! the writer task wakes, copies the table and writes it with [`PositionStore::save`]. Writes
//! coalesce: while one write is in progress, any number of commits collect into the next. So a
//! SIGKILL re-reads at most the lines committed since the last completed write (one write, a
//! few tens of microseconds), and tailing never waits for the disk. A write is made durable
//! (fsynced) at most once per [`super::position::DURABLE_EVERY`], and once more when commits
//! pause, so a power cut re-reads at most that much.

use super::identity::FileId;
use super::position::{DURABLE_EVERY, PosEntry, PositionStore};
use crate::task::TaskHandle;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<FileId, PosEntry>,
    generation: u64,
}

/// Shared between the tail task and the writer task.
#[derive(Debug, Clone)]
pub struct PositionTable {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<watch::Sender<u64>>,
}

impl PositionTable {
    pub fn new(entries: Vec<PosEntry>) -> Self {
        let inner = Inner {
            entries: entries.into_iter().map(|e| (e.id, e)).collect(),
            generation: 0,
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
            changed: Arc::new(watch::Sender::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each critical section is a single map operation: a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry recorded for `id` (an entry without a device matches any device).
    pub fn find(&self, id: &FileId) -> Option<PosEntry> {
        let inner = self.lock();
        inner
            .entries
            .get(id)
            .or_else(|| inner.entries.values().find(|e| e.id.matches(id)))
            .cloned()
    }

    /// Records `entry`, replacing any entry for the same file.
    pub fn set(&self, entry: PosEntry) {
        let mut inner = self.lock();
        if !inner.entries.contains_key(&entry.id) {
            let id = entry.id;
            inner.entries.retain(|k, _| !k.matches(&id));
        }
        if inner.entries.get(&entry.id) == Some(&entry) {
            return;
        }
        inner.entries.insert(entry.id, entry);
        inner.generation += 1;
        self.changed.send_replace(inner.generation);
    }

    pub fn remove(&self, id: &FileId) {
        let mut inner = self.lock();
        let before = inner.entries.len();
        inner.entries.retain(|k, _| !k.matches(id));
        if inner.entries.len() != before {
            inner.generation += 1;
            self.changed.send_replace(inner.generation);
        }
    }

    /// Drops entries for which `keep` is false.
    pub fn retain(&self, mut keep: impl FnMut(&PosEntry) -> bool) {
        let mut inner = self.lock();
        let before = inner.entries.len();
        inner.entries.retain(|_, e| keep(e));
        if inner.entries.len() != before {
            inner.generation += 1;
            self.changed.send_replace(inner.generation);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The generation and the entries sorted by path.
    pub fn snapshot(&self) -> (u64, Vec<PosEntry>) {
        let inner = self.lock();
        let mut entries: Vec<PosEntry> = inner.entries.values().cloned().collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path).then(a.id.cmp(&b.id)));
        (inner.generation, entries)
    }

    /// Writes the current table now (at shutdown). Blocking.
    pub fn save_now(&self, store: &PositionStore) -> Result<bool, super::position::PositionError> {
        self.save(store, true)
    }

    /// Writes the table, durably or not (see [`super::position`]).
    pub fn save(
        &self,
        store: &PositionStore,
        durable: bool,
    ) -> Result<bool, super::position::PositionError> {
        let (generation, entries) = self.snapshot();
        store.save(generation, &entries, durable)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// The writer task: see the module docs. A failed write is logged and retried every second
/// until one succeeds.
pub async fn write_loop(
    table: PositionTable,
    store: Arc<PositionStore>,
    id: String,
    h: TaskHandle,
) {
    let mut rx = table.subscribe();
    // Commits made before this task subscribed are written at once.
    rx.mark_changed();
    let mut retry = false;
    let mut failures = 0u64;
    let mut last_durable = tokio::time::Instant::now();
    let mut syncing: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        h.set("waiting for commits");
        if !retry {
            // Commits pausing leave the last write durable within DURABLE_EVERY.
            let settle = last_durable + DURABLE_EVERY;
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                () = tokio::time::sleep_until(settle), if !store.is_durable() => {}
                () = h.cancelled() => return,
            }
        }
        h.set("writing the position file");
        let durable_due = last_durable.elapsed() >= DURABLE_EVERY;
        let idle_sync = syncing.as_ref().is_none_or(|j| j.is_finished());
        // Written in place without a sync when it can be: a position write never waits for
        // the disk, so a kill re-reads only what was committed since the last commit's write.
        let in_place = durable_due && idle_sync && store.writes_in_place();
        let durable = durable_due && idle_sync && !in_place;
        let (t, s) = (table.clone(), Arc::clone(&store));
        let result = tokio::task::spawn_blocking(move || t.save(&s, durable)).await;
        if (durable || in_place) && matches!(result, Ok(Ok(_))) {
            last_durable = tokio::time::Instant::now();
        }
        if in_place && matches!(result, Ok(Ok(_))) {
            let (s, id) = (Arc::clone(&store), id.to_string());
            syncing = Some(tokio::task::spawn_blocking(move || {
                if let Some(Err(e)) = s.sync_in_place() {
                    tracing::warn!("tail input {id}: position file not made durable: {e}");
                }
            }));
        }
        match result {
            Ok(Ok(_)) => {
                if failures > 0 {
                    tracing::info!(
                        "tail input {id}: position file {} written again after {failures} failures",
                        store.path().display()
                    );
                }
                failures = 0;
                retry = false;
            }
            Ok(Err(e)) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::error!(
                        "tail input {id}: cannot write the position file: {e} (failure {failures}; retrying every second; lines will be re-read after a restart)"
                    );
                }
                retry = true;
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = h.cancelled() => return,
                }
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tail::identity::Fingerprint;

    fn e(path: &str, dev: u64, ino: u64, offset: u64) -> PosEntry {
        PosEntry {
            path: path.into(),
            offset,
            id: FileId { dev, ino },
            fp: Fingerprint::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_commit_is_written_and_the_last_made_durable_once_commits_pause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pos");
        let table = PositionTable::new(Vec::new());
        let store = Arc::new(PositionStore::new(path.clone()));
        let tasks = crate::task::Tasks::new();
        let (t, s) = (table.clone(), Arc::clone(&store));
        tasks.spawn("writer", move |h| write_loop(t, s, "t".into(), h));
        let written = |offset: u64| {
            super::super::position::load(&path)
                .map(|l| l.entries.first().map(|e| e.offset) == Some(offset))
                .unwrap_or(false)
        };
        for offset in 1..=20u64 {
            table.set(e("/a", 1, 1, offset * 100));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while !written(offset * 100) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "commit {offset} not written"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        // Commits pause: the last write is made durable within DURABLE_EVERY (and a margin).
        let deadline = tokio::time::Instant::now() + DURABLE_EVERY + Duration::from_secs(2);
        while !store.is_durable() {
            assert!(tokio::time::Instant::now() < deadline, "never made durable");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(written(2000));
        tasks.shutdown(Duration::from_secs(2)).await;
    }

    #[test]
    fn migrated_entries_without_device_are_found_and_replaced() {
        let t = PositionTable::new(vec![e("/a", 0, 7, 10)]);
        let found = t.find(&FileId { dev: 5, ino: 7 }).unwrap();
        assert_eq!(found.offset, 10);
        t.set(e("/a", 5, 7, 20));
        assert_eq!(t.len(), 1);
        assert_eq!(t.snapshot().1, vec![e("/a", 5, 7, 20)]);
    }

    #[test]
    fn generations_advance_only_on_change() {
        let t = PositionTable::new(Vec::new());
        t.set(e("/a", 1, 1, 1));
        let g1 = t.snapshot().0;
        t.set(e("/a", 1, 1, 1));
        assert_eq!(t.snapshot().0, g1);
        t.remove(&FileId { dev: 1, ino: 1 });
        assert!(t.snapshot().0 > g1);
        assert!(t.is_empty());
    }
}
