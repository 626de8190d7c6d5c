//! What the patterns name now: scans that open new paths and retire old ones, and the check
//! of one path that tells a rotation (the path names another file) or a removal.

use super::discover::{self, Scan};
use super::file::FileState;
use super::run::{Slot, Start, Tail};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

impl Tail {
    /// Re-expands the patterns: opens new files, retires paths no longer matched, drops
    /// position entries of files that are gone.
    pub async fn refresh(&mut self, startup: bool) {
        let scanned = SystemTime::now();
        let cfg = Arc::clone(&self.ctx.cfg);
        let Ok(scan) =
            tokio::task::spawn_blocking(move || discover::scan(&cfg, SystemTime::now())).await
        else {
            return;
        };
        for dir in &scan.dirs {
            if self.dirs.insert(dir.clone()) {
                self.watcher.watch_dir(dir);
            }
        }
        let mut new: Vec<(SystemTime, PathBuf)> = scan
            .files
            .iter()
            .filter(|(p, f)| !self.slots.contains_key(*p) && !self.tracked.contains(&f.id))
            .map(|(p, f)| (f.mtime, p.clone()))
            .collect();
        new.sort();
        for (_, path) in new {
            let tag: Arc<str> = self.ctx.cfg.tag_for(&path.to_string_lossy()).into();
            self.slots.insert(
                path.clone(),
                Slot {
                    tag,
                    files: VecDeque::new(),
                },
            );
            let unseen_since = if startup {
                self.recover_moved(&path).await;
                self.unseen_since_startup(&path)
            } else {
                self.last_scan
            };
            self.open(&path, if startup { Start::Startup } else { Start::Head })
                .await;
            if let Some(since) = unseen_since {
                self.recover_unseen(&path, since).await;
            }
        }
        self.last_scan = Some(scanned);
        self.retire_unmatched(&scan);
        let known: HashSet<_> = scan.files.values().map(|f| f.id).collect();
        let tracked = &self.tracked;
        self.ctx
            .table
            .retain(|e| tracked.contains(&e.id) || known.iter().any(|k| k.matches(&e.id)));
    }

    fn retire_unmatched(&mut self, scan: &Scan) {
        let gone: Vec<PathBuf> = self
            .slots
            .keys()
            .filter(|p| !scan.files.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            let Some(slot) = self.slots.get_mut(&path) else {
                continue;
            };
            for f in slot.files.iter_mut() {
                if f.state == FileState::Current {
                    f.state = FileState::Rotated {
                        since: Instant::now(),
                    };
                }
            }
            if slot.files.is_empty() {
                self.slots.remove(&path);
                self.ctx.metrics.drop_gauge(&path.to_string_lossy());
            }
        }
    }

    /// Opens the file `path` names now and appends it to its slot as the current file.
    pub async fn open(&mut self, path: &Path, start: Start) {
        if let Some(f) = self.open_file(path, path, start).await
            && let Some(slot) = self.slots.get_mut(path)
        {
            slot.files.push_back(f);
        }
    }

    /// Checks what the slot's path names now: a different file is a rotation; no file means
    /// the current one was moved or deleted.
    pub async fn check_path(&mut self, path: &Path) {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file());
        let Some(slot) = self.slots.get_mut(path) else {
            return;
        };
        let current = slot
            .files
            .iter_mut()
            .rev()
            .find(|f| f.state == FileState::Current);
        let rotate_wait = self.ctx.cfg.rotate_wait;
        match (meta, current) {
            (Some(m), Some(cur)) => {
                let id = super::identity::FileId::of(&m);
                if cur.id == id {
                    return;
                }
                cur.state = FileState::Rotated {
                    since: Instant::now(),
                };
                self.ctx
                    .metrics
                    .files_rotated
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "detected rotation of {}; waiting {} seconds",
                    path.display(),
                    rotate_wait.as_secs_f64()
                );
                let since = cur.opened;
                if !self.tracked.contains(&id) {
                    self.open(path, Start::Head).await;
                }
                // The path may have been rotated more than once since it was looked at (a
                // burst of writes, a busy tail; also between the look and the open): the
                // files between are beside the one now open.
                self.recover_unseen(path, since).await;
            }
            (Some(m), None) => {
                let since = slot.files.back().map(|f| f.opened);
                if !self.tracked.contains(&super::identity::FileId::of(&m)) {
                    self.open(path, Start::Head).await;
                }
                if let Some(since) = since {
                    self.recover_unseen(path, since).await;
                }
            }
            (None, Some(cur)) => {
                cur.state = FileState::Rotated {
                    since: Instant::now(),
                };
                tracing::info!(
                    "tail input {}: {} was moved or deleted; reading what is left of it",
                    self.ctx.id,
                    path.display()
                );
            }
            (None, None) => {}
        }
    }
}
