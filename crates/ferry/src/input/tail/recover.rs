//! Files a path led to that are not where the tail left them: renamed while ferry was
//! stopped, created and rotated before ferry saw their path, and messages that a rotation cut
//! in two (the lines held at a rotated file's end go on in the next file).

use super::file::{FileState, Tailed};
use super::identity::FileId;
use super::position::PosEntry;
use super::run::{Start, Tail, UNSEEN_MARGIN};
use super::{compressed, discover};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// Where the file a position names went while ferry was stopped.
enum Moved {
    /// Renamed (same inode, same first bytes).
    Renamed(PathBuf),
    /// Compressed, and removed: a gzip file whose content starts with its first bytes.
    Compressed(PathBuf),
}

impl Moved {
    fn path(&self) -> &Path {
        match self {
            Moved::Renamed(p) | Moved::Compressed(p) => p,
        }
    }
}

impl Tail {
    /// Start-up: when the position file knows a file under `path` that is no longer there,
    /// look for it in the same directory (renamed while ferry was stopped) and finish it first.
    pub(super) async fn recover_moved(&mut self, path: &Path) {
        let path_str = path.to_string_lossy();
        let (_, entries) = self.ctx.table.snapshot();
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let current = FileId::of(&meta);
        // A rotated file stays in the directory of the file the path leads to: the path's own
        // directory, or, for a symlink (the kubelet's /var/log/containers/*.log), its
        // target's.
        let mut dirs = vec![path.parent().unwrap_or(Path::new(".")).to_path_buf()];
        if let Ok(target) = std::fs::canonicalize(path)
            && let Some(dir) = target.parent()
            && !dirs.iter().any(|d| d == dir)
        {
            dirs.push(dir.to_path_buf());
        }
        let mut found = Vec::new();
        for entry in entries.into_iter().filter(|e| e.path == path_str) {
            if self.tracked.contains(&entry.id) {
                continue;
            }
            let (id, fp) = (entry.id, entry.fp);
            let search = dirs.clone();
            let is_current = current.matches(&id);
            let link = path.to_path_buf();
            let moved = tokio::task::spawn_blocking(move || {
                if is_current {
                    // The path's file has the recorded inode: it is the file recorded, unless
                    // its first bytes changed (the inode of a file deleted while ferry was
                    // stopped went to a new file). Then the file recorded may live on
                    // compressed.
                    let same = std::fs::File::open(&link)
                        .and_then(|f| fp.matches(&f))
                        .unwrap_or(true);
                    if same {
                        return None;
                    }
                } else if let Some(p) = search
                    .iter()
                    .find_map(|dir| discover::find_in_dir(dir, &id, &fp))
                {
                    return Some(Moved::Renamed(p));
                }
                search
                    .iter()
                    .find_map(|dir| compressed::find(dir, &fp))
                    .map(Moved::Compressed)
            })
            .await
            .ok()
            .flatten();
            if let Some(moved) = moved {
                found.push((entry, moved));
            }
        }
        // Oldest first: the one read furthest from its end is not known, so by modification
        // time of the file found.
        found.sort_by_key(|(_, m)| std::fs::metadata(m.path()).and_then(|m| m.modified()).ok());
        for (entry, moved) in found {
            let f = match moved {
                Moved::Renamed(moved) => {
                    tracing::info!(
                        "tail input {}: {} was rotated while ferry was stopped; finishing {} from offset {}",
                        self.ctx.id,
                        path.display(),
                        moved.display(),
                        entry.offset
                    );
                    self.open_file(path, &moved, Start::Startup).await
                }
                Moved::Compressed(gz) => self.open_unpacked(path, &gz, &entry).await,
            };
            if let Some(mut f) = f {
                f.state = FileState::Rotated {
                    since: Instant::now() - self.ctx.cfg.rotate_wait,
                };
                if let Some(slot) = self.slots.get_mut(path) {
                    slot.files.push_back(f);
                }
            }
        }
    }

    /// Start-up: since when rotated copies of what `path` leads to that no position names
    /// count as never seen (`None`: ferry has not run with this position file before). Asked
    /// before the path's file is opened, which records it.
    pub(super) fn unseen_since_startup(&self, path: &Path) -> Option<SystemTime> {
        let written = self.previous.written?;
        let known = std::fs::metadata(path)
            .ok()
            .is_some_and(|m| self.ctx.table.find(&FileId::of(&m)).is_some());
        // A path whose file ferry never followed may have been created and rotated while
        // the last run had not found it yet (a busy tail finds new paths late): its
        // rotations from shortly before the last position write count as unseen too.
        Some(if known {
            written
        } else {
            written.checked_sub(UNSEEN_MARGIN).unwrap_or(written)
        })
    }

    /// The file `entry` names, compressed into `gz` and removed while ferry was stopped:
    /// unpacked into a scratch file beside the position file and read from the recorded
    /// offset, under an id of its own ([`FileId::unpacked`]) that is recorded in place of the
    /// old one, so a crash meanwhile finds `gz` again.
    async fn open_unpacked(&mut self, path: &Path, gz: &Path, entry: &PosEntry) -> Option<Tailed> {
        let scratch = self
            .ctx
            .cfg
            .pos_file
            .as_ref()
            .and_then(|p| p.parent())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let source = gz.to_path_buf();
        let from = entry.offset;
        let unpacked = tokio::task::spawn_blocking(move || {
            let (file, len) = compressed::unpack(&source, &scratch, from)?;
            let meta = file.metadata()?;
            Ok::<_, std::io::Error>((file, len, meta))
        })
        .await
        .ok()?;
        let (file, len, meta) = match unpacked {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(
                    "tail input {}: {} was compressed into {} while ferry was stopped, with lines from offset {} not read yet, and cannot be unpacked: {e}",
                    self.ctx.id,
                    path.display(),
                    gz.display(),
                    entry.offset
                );
                return None;
            }
        };
        if entry.offset == len {
            // It had been read to its end; only its position was left.
            tracing::debug!(
                "tail input {}: {} holds the rest of a file of {} read to its end",
                self.ctx.id,
                gz.display(),
                path.display()
            );
            self.ctx.table.remove(&entry.id);
            return None;
        }
        if entry.offset > len {
            tracing::info!(
                "tail input {}: {} holds {len} bytes, fewer than the recorded offset {} of the file it starts like; not read",
                self.ctx.id,
                gz.display(),
                entry.offset
            );
            return None;
        }
        tracing::info!(
            "tail input {}: {} was rotated and compressed while ferry was stopped; finishing {} from offset {} of its content",
            self.ctx.id,
            path.display(),
            gz.display(),
            entry.offset
        );
        self.ctx.table.remove(&entry.id);
        let id = FileId::unpacked(&meta);
        let mtime = std::fs::metadata(gz)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        Some(self.follow(path, file, id, entry.fp, entry.offset, mtime))
    }

    /// Rotated copies of the file `path` leads to that ferry does not follow, changed since
    /// `since` (files it closed lately excepted), read before the current file:
    /// - never seen, read from their head: created and rotated before ferry looked at the path
    ///   (while it was stopped, or between two scans: a container restarted and its new log
    ///   was rotated at once, as the kubelet may do, or a path rotated twice between two looks);
    /// - named by a position, resumed there: renamed between the look at the path and its
    ///   opening (at start-up, after [`Self::recover_moved`] looked).
    ///
    /// Called once the path's current file is open (a rotation just before would otherwise go
    /// unseen), they go before it in the slot.
    pub(super) async fn recover_unseen(&mut self, path: &Path, since: SystemTime) {
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let table = self.ctx.table.clone();
        let tracked = self.tracked.clone();
        let closed: Vec<_> = self.closed.iter().copied().collect();
        let mut unseen = tokio::task::spawn_blocking(move || {
            let same = |p: &Path, fp: &super::identity::Fingerprint| {
                std::fs::File::open(p)
                    .and_then(|f| fp.matches(&f))
                    .unwrap_or(false)
            };
            // Let go: a file closed lately, read to its end (same inode and first bytes: an
            // inode of a deleted file may be used again).
            let let_go = |p: &Path, id: &FileId| {
                closed
                    .iter()
                    .any(|(c, fp)| fp.len > 0 && c.matches(id) && same(p, fp))
            };
            // Recorded: a position names it (it was renamed between the look at the path
            // and its opening, or while ferry was stopped); it resumes there.
            let recorded = |p: &Path, id: &FileId| table.find(id).is_some_and(|e| same(p, &e.fp));
            discover::rotated_since(&target, since)
                .into_iter()
                .filter(|(p, id)| !tracked.contains(id) && !let_go(p, id))
                .filter_map(|(p, id)| {
                    let mtime = std::fs::metadata(&p).ok()?.modified().ok()?;
                    Some((mtime, recorded(&p, &id), p))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        unseen.sort();
        for (_, recorded, moved) in unseen {
            if recorded {
                tracing::info!(
                    "tail input {}: {} was rotated before ferry looked again; finishing {} from its recorded position",
                    self.ctx.id,
                    path.display(),
                    moved.display()
                );
            } else {
                tracing::info!(
                    "tail input {}: {} was rotated before ferry saw it; reading {} from its head",
                    self.ctx.id,
                    path.display(),
                    moved.display()
                );
            }
            if let Some(mut f) = self.open_file(path, &moved, Start::Head).await {
                f.state = FileState::Rotated {
                    since: Instant::now() - self.ctx.cfg.rotate_wait,
                };
                if let Some(slot) = self.slots.get_mut(path) {
                    let at = slot
                        .files
                        .iter()
                        .position(|f| f.state == FileState::Current)
                        .unwrap_or(slot.files.len());
                    slot.files.insert(at, f);
                }
            }
        }
    }

    /// A rotated file read to its end that holds lines of an unfinished message (parts of a
    /// split line, a stack trace) hands them to the next file of its path, where the message
    /// goes on. Its position stays at the first of them until the next file emitted them; then
    /// it may close. `at_end`: the step just taken reached the file's end (a file read to its
    /// end earlier may have grown since).
    pub(super) fn hand_over(&mut self, path: &Path, i: usize, at_end: bool) {
        let Some(slot) = self.slots.get_mut(path) else {
            return;
        };
        let mut files = slot.files.iter_mut().skip(i);
        let (Some(old), Some(new)) = (files.next(), files.next()) else {
            return;
        };
        let (Some(od), Some(nd)) = (old.decoder.as_mut(), new.decoder.as_mut()) else {
            return;
        };
        if let Some((_, at)) = old.handed {
            if nd.pending_start().is_none_or(|s| s > at) {
                old.handed = None;
            }
            return;
        }
        let Some(start) = od.pending_start() else {
            return;
        };
        if !at_end || nd.pending_start().is_some() {
            return;
        }
        let at = new.committed;
        nd.adopt(od.take_held(), at);
        old.handed = Some((start, at));
        tracing::debug!(
            "tail input {}: {} ended inside a message; its lines from offset {start} go on in the next file",
            self.ctx.id,
            old.path.display()
        );
    }
}
