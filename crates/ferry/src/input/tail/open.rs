//! Opening a file and choosing where to start reading it.
//!
//! | the file | starts at |
//! |---|---|
//! | known to the position file (same inode, same first bytes) | the recorded offset (0 if the file is now shorter) |
//! | same inode, different first bytes (inode reused, or rewritten while stopped) | 0 |
//! | found at start-up, modified after the position file was last written | 0 (it changed while ferry was stopped: a rotation, a new file) |
//! | found at start-up otherwise | the end, or 0 with `read_from_head` |
//! | appeared while running (new file, or the file after a rotation) | 0 |

use super::decode::LineDecoder;
use super::file::Tailed;
use super::identity::{FileId, Fingerprint};
use super::position::PosEntry;
use super::reader::FileReader;
use super::run::{Start, Tail};
use std::fs::{File, Metadata};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

impl Tail {
    /// Opens `file_path` on behalf of the slot `slot_path`. `None` when it cannot be opened
    /// (logged) or is already followed.
    pub async fn open_file(
        &mut self,
        slot_path: &Path,
        file_path: &Path,
        start: Start,
    ) -> Option<Tailed> {
        let p = file_path.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || {
            let f = File::open(&p)?;
            let meta = f.metadata()?;
            let fp = Fingerprint::read(&f)?;
            Ok::<_, std::io::Error>((f, meta, fp))
        })
        .await
        .ok()?;
        let (file, meta, fp) = match opened {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(
                    "tail input {}: cannot open {}: {e}",
                    self.ctx.id,
                    file_path.display()
                );
                return None;
            }
        };
        let id = FileId::of(&meta);
        if self.tracked.contains(&id) {
            return None;
        }
        let (offset, reason) = self.start_offset(&file, id, &meta, start);
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        let mut t = self.follow(slot_path, file, id, fp, offset, mtime);
        t.wd = self.watcher.watch_file(file_path, slot_path);
        tracing::info!(
            "following tail of {} from offset {offset} ({reason}; inode {}) (tail input {})",
            file_path.display(),
            id.ino,
            self.ctx.id
        );
        Some(t)
    }

    /// Follows the open `file` as the file `id` of the slot `slot_path` from `offset`, and
    /// records it in the position table.
    pub(super) fn follow(
        &mut self,
        slot_path: &Path,
        file: File,
        id: FileId,
        fp: Fingerprint,
        offset: u64,
        mtime: std::time::SystemTime,
    ) -> Tailed {
        let cfg = &self.ctx.cfg;
        let max_line = usize::try_from(cfg.max_line_size).unwrap_or(usize::MAX);
        let slot_str = slot_path.to_string_lossy().into_owned();
        let path_field = cfg
            .path_key
            .as_ref()
            .map(|k| (k.clone(), slot_str.clone().into_bytes()));
        let decoder = LineDecoder::new(
            cfg.parse.clone(),
            path_field,
            cfg.emit_unmatched_lines,
            max_line,
            cfg.multiline_flush_interval
                .unwrap_or(crate::parse::partial::DEFAULT_PARTIAL_TIMEOUT),
        );
        let gauge = self.ctx.metrics.gauge(&slot_str);
        gauge.inode.store(id.ino, Ordering::Relaxed);
        gauge.position.store(offset, Ordering::Relaxed);
        let reader = FileReader::new(file, offset, max_line);
        let t = Tailed::new(
            slot_path.to_path_buf(),
            id,
            fp,
            reader,
            decoder,
            offset,
            gauge,
            mtime,
        );
        self.tracked.insert(id);
        let m = &self.ctx.metrics;
        m.files_opened.fetch_add(1, Ordering::Relaxed);
        m.files_tracked.fetch_add(1, Ordering::Relaxed);
        self.ctx.table.set(PosEntry {
            path: slot_str,
            offset,
            id,
            fp,
        });
        t
    }

    fn start_offset(
        &self,
        file: &File,
        id: FileId,
        meta: &Metadata,
        start: Start,
    ) -> (u64, &'static str) {
        let size = meta.len();
        if let Some(e) = self.ctx.table.find(&id) {
            return match e.fp.matches(file) {
                Ok(true) if e.offset <= size => (e.offset, "recorded position"),
                Ok(true) => (0, "shorter than its recorded position: truncated"),
                _ => (0, "its first bytes changed: a new file with a reused inode"),
            };
        }
        match start {
            Start::Head => (0, "new file"),
            Start::Startup => {
                let changed = self
                    .previous
                    .written
                    .zip(meta.modified().ok())
                    .is_some_and(|(written, mtime)| mtime > written);
                if changed {
                    (0, "changed while ferry was stopped")
                } else if self.ctx.cfg.read_from_head {
                    (0, "read_from_head")
                } else {
                    (size, "end of file")
                }
            }
        }
    }
}
