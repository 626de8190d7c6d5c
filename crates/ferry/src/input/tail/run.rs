//! The tail task: follows each path across rotations (what a path names is `paths`), reads,
//! emits, and records positions after commits.
//!
//! Files are grouped by the path that named them (a *slot*); a slot's queue holds the files
//! that path named over time, oldest first: rotated files still being finished, then the
//! current one. A rotated file that still has data is read before the newer files of its slot.
//! A file (device and inode) is followed by one slot only, so a rotated file that a glob also
//! matches under its new name is never read twice.

pub use super::ctx::{Ctx, Stop};
use super::file::Tailed;
use super::step::step_and_emit;
use super::watcher::Watcher;
use crate::task::TaskHandle;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

/// How long before its last position write the last run may not have found a new path yet.
pub(super) const UNSEEN_MARGIN: Duration = Duration::from_secs(30);

/// How often rotated, throttled and multiline-holding files are looked at without events.
const HOUSEKEEPING: Duration = Duration::from_millis(250);

/// When the patterns were last scanned and held files last looked at.
struct Pace {
    refreshed: Instant,
    housekept: Instant,
}

impl Pace {
    fn new() -> Self {
        Self {
            refreshed: Instant::now(),
            housekept: Instant::now(),
        }
    }
}

/// How a newly opened file's start offset is chosen (see [`Tail::start_offset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Found at start-up.
    Startup,
    /// Appeared while running (a new file, or the file after a rotation): from the head.
    Head,
}

#[derive(Debug)]
pub struct Slot {
    pub tag: Arc<str>,
    pub files: VecDeque<Tailed>,
}

/// What the last run left behind, for files found at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Previous {
    /// When the position file was last written (`None`: ferry has not run with it before).
    pub written: Option<SystemTime>,
}

#[derive(Debug)]
pub struct Tail {
    pub ctx: Ctx,
    pub watcher: Watcher,
    pub slots: BTreeMap<PathBuf, Slot>,
    pub tracked: HashSet<super::identity::FileId>,
    pub dirs: BTreeSet<PathBuf>,
    pub previous: Previous,
    pub store: Option<Arc<super::position::PositionStore>>,
    /// When the last scan of the patterns started (files a new path led to before it
    /// appeared were changed after it).
    pub last_scan: Option<SystemTime>,
    /// The files closed most recently (their entries leave the position table), so that a
    /// rotated copy written to after ferry let it go is not taken for one never seen.
    pub closed: VecDeque<(super::identity::FileId, super::identity::Fingerprint)>,
}

/// How many closed files [`Tail::closed`] remembers.
pub(super) const CLOSED_REMEMBERED: usize = 1024;

impl Tail {
    pub async fn run(mut self, h: TaskHandle) {
        h.set("discovering files");
        let _stopped: Result<(), Stop> = self.main(&h).await;
        if let Some(store) = self.store.clone() {
            h.set("writing the position file");
            let table = self.ctx.table.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || table.save_now(&store)).await {
                tracing::error!(
                    "tail input {}: cannot write the position file at shutdown: {e}",
                    self.ctx.id
                );
            }
        }
        h.set("stopped");
    }

    async fn main(&mut self, h: &TaskHandle) -> Result<(), Stop> {
        self.refresh(true).await;
        let mut pace = Pace::new();
        let mut dirty = self.drain_startup(h, &mut pace).await?;
        let mut refresh = tokio::time::interval(self.ctx.cfg.refresh_interval);
        refresh.reset();
        let mut poll_every = self.watcher.poll_interval();
        let mut poll = tokio::time::interval(poll_every);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        loop {
            let mut more = false;
            for path in std::mem::take(&mut dirty) {
                if self.service_slot(&path, h).await? {
                    more = true;
                    dirty.insert(path);
                }
            }
            if more {
                tokio::task::yield_now().await;
                if h.is_cancelled() {
                    return Err(Stop);
                }
                self.look_around(&mut pace, &mut dirty).await;
                continue;
            }
            if self.watcher.poll_interval() != poll_every {
                poll_every = self.watcher.poll_interval();
                poll = tokio::time::interval(poll_every);
            }
            h.set("waiting for changes");
            tokio::select! {
                () = h.cancelled() => return Err(Stop),
                wake = self.watcher.wait() => self.woken(wake, &mut dirty).await,
                _ = poll.tick() => dirty.extend(self.slots.keys().cloned()),
                _ = refresh.tick() => {
                    pace.refreshed = Instant::now();
                    self.refresh(false).await;
                    dirty.extend(self.slots.keys().cloned());
                }
                _ = housekeeping.tick() => {
                    pace.housekept = Instant::now();
                    self.housekeep(&mut dirty);
                }
            }
        }
    }

    /// What inotify reported: the slots to read, and a rescan when a directory changed.
    async fn woken(&mut self, wake: super::watcher::Wake, dirty: &mut BTreeSet<PathBuf>) {
        for p in wake.files {
            dirty.extend(self.slot_of(&p));
        }
        if wake.rescan {
            self.refresh(false).await;
            dirty.extend(self.slots.keys().cloned());
        }
    }

    /// Slots to look at without events: rotated files, held lines, throttled reads.
    fn housekeep(&self, dirty: &mut BTreeSet<PathBuf>) {
        for (path, slot) in &self.slots {
            if slot
                .files
                .iter()
                .any(|f| f.is_rotated() || f.has_pending_multiline() || f.throttle.counted)
            {
                dirty.insert(path.clone());
            }
        }
    }

    /// The slot a watched path belongs to (a rotated file is watched under its slot's path).
    fn slot_of(&self, path: &Path) -> Option<PathBuf> {
        self.slots.contains_key(path).then(|| path.to_path_buf())
    }

    /// Start-up: files that have data are read to their end, the oldest first, so rotated
    /// files (still matched by the glob) are finished before the files that replaced them.
    /// New paths and timeouts are looked at meanwhile, and new paths read; returns the slots
    /// left to read.
    async fn drain_startup(
        &mut self,
        h: &TaskHandle,
        pace: &mut Pace,
    ) -> Result<BTreeSet<PathBuf>, Stop> {
        let mut dirty = BTreeSet::new();
        let mut order: Vec<(SystemTime, PathBuf)> = self
            .slots
            .iter()
            .map(|(p, s)| {
                let oldest = s.files.iter().map(|f| f.mtime).min();
                (oldest.unwrap_or(SystemTime::UNIX_EPOCH), p.clone())
            })
            .collect();
        order.sort();
        let draining: HashSet<PathBuf> = order.iter().map(|(_, p)| p.clone()).collect();
        for (_, path) in order {
            h.set_detail("reading files at start-up", path.display().to_string());
            while self.service_slot(&path, h).await? {
                self.look_around(pace, &mut dirty).await;
                // Paths found meanwhile are read too, a step at a time; the ones found at
                // start-up keep their order.
                let found: Vec<PathBuf> = dirty
                    .iter()
                    .filter(|p| !draining.contains(*p))
                    .cloned()
                    .collect();
                for p in found {
                    if !self.service_slot(&p, h).await? {
                        dirty.remove(&p);
                    }
                }
            }
        }
        Ok(dirty)
    }

    /// While a backlog is read: new paths (a restarted container's log, which the kubelet may
    /// rotate soon), rotations and timeouts must not wait for its end.
    async fn look_around(&mut self, pace: &mut Pace, dirty: &mut BTreeSet<PathBuf>) {
        if let Some(wake) = self.watcher.try_wait() {
            self.woken(wake, dirty).await;
        }
        if pace.refreshed.elapsed() >= self.ctx.cfg.refresh_interval {
            pace.refreshed = Instant::now();
            self.refresh(false).await;
            dirty.extend(self.slots.keys().cloned());
        }
        if pace.housekept.elapsed() >= HOUSEKEEPING {
            pace.housekept = Instant::now();
            self.housekeep(dirty);
        }
    }

    /// One pass over a slot: rotation check, then one read step per file (older files first;
    /// a rotated file with data left keeps the newer ones waiting). Returns whether data is
    /// left to read.
    pub async fn service_slot(&mut self, path: &Path, h: &TaskHandle) -> Result<bool, Stop> {
        self.check_path(path).await;
        let mut more = false;
        let mut i = 0;
        loop {
            let (tag, rotated) = {
                let Some(slot) = self.slots.get(path) else {
                    break;
                };
                let Some(f) = slot.files.get(i) else {
                    break;
                };
                (Arc::clone(&slot.tag), f.is_rotated())
            };
            if rotated {
                self.hand_over(path, i, false);
            }
            let closing = {
                let f = &self.slots[path].files[i];
                rotated && f.at_eof && f.can_close(self.ctx.cfg.rotate_wait)
            };
            let Some(slot) = self.slots.get_mut(path) else {
                break;
            };
            let file = &mut slot.files[i];
            let step = step_and_emit(&self.ctx, file, &tag, closing, h).await?;
            if rotated && !closing {
                let at_end = step.as_ref().is_some_and(|s| s.eof);
                self.hand_over(path, i, at_end);
            }
            let Some(slot) = self.slots.get_mut(path) else {
                break;
            };
            if closing && step.as_ref().is_some_and(|s| s.eof) {
                let f = slot.files.remove(i);
                if let Some(f) = f {
                    self.close(f, step.as_ref().map_or(1, |s| s.nlink));
                }
                continue;
            }
            let has_more = step.as_ref().is_some_and(|s| !s.eof);
            more |= has_more;
            if rotated && has_more {
                break;
            }
            i += 1;
        }
        if let Some(slot) = self.slots.get(path)
            && slot.files.is_empty()
            && std::fs::metadata(path).is_err()
        {
            self.slots.remove(path);
        }
        Ok(more)
    }

    fn close(&mut self, f: Tailed, nlink: u64) {
        self.watcher.unwatch(f.wd.clone());
        self.tracked.remove(&f.id);
        if self.closed.len() >= CLOSED_REMEMBERED {
            self.closed.pop_front();
        }
        self.closed.push_back((f.id, f.fp));
        let m = &self.ctx.metrics;
        m.files_closed.fetch_add(1, Ordering::Relaxed);
        m.files_tracked.fetch_sub(1, Ordering::Relaxed);
        if nlink == 0 {
            self.ctx.table.remove(&f.id);
        }
        tracing::info!(
            "tail input {}: closed {} at offset {}{}",
            self.ctx.id,
            f.path.display(),
            f.committed,
            if nlink == 0 { " (deleted)" } else { "" }
        );
    }
}
