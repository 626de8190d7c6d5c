//! Appends (`append true`): one file per slice grows in place; see the parent module for the
//! guarantees. A chunk's appends are undone (truncated back, or the file removed) if any part
//! fails, and a torn last line left by a crash is cut before the first append after a restart.
//!
//! Each file's length before the chunk is noted with the chunk before the first byte goes to
//! it, and the end of the write (files synced) is noted, synced, before the next chunk may
//! append to the same files. So after a crash, a chunk with "begun" notes and no "done" note
//! is the last writer of those files: [`FileWriter::undo_interrupted`] cuts them back to their
//! noted lengths before anything else is written, and the chunk is written again whole, once.

use super::INDEX_CACHE_LIMIT;
use super::{
    ChunkNotes, FileWriter, GroupItem, NextPiece, Out, Rendered, STRIPES, Written, create_parent,
    dir_of, io_err, lock, path_hash, shared, sync_dir,
};
use crate::output::SinkError;
use crate::output::progress::Code;
use ferry_buffer::Note;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A chunk appended and not yet synced: the files it touched with their length before it
/// (`None`: created by it), and the handles to sync.
struct Appended {
    touched: Vec<(PathBuf, Option<u64>)>,
    files: Vec<File>,
}

impl FileWriter {
    /// Appends each chunk in turn, then syncs every file touched once, then notes each chunk
    /// done, synced, in order (see the module docs). A failure in the common part fails the
    /// chunks from there on, undone last first.
    pub(super) fn append_group(&self, mut items: Vec<GroupItem<'_, '_>>) -> Vec<Written> {
        let mut stripes: Vec<usize> = items
            .iter()
            .map(|i| stripe_of(&i.rendered.family()))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let _guards: Vec<_> = stripes
            .iter()
            .filter_map(|i| self.stripes.get(*i))
            .map(lock)
            .collect();
        let mut appended: Vec<Result<Appended, SinkError>> =
            items.iter_mut().map(|item| self.append_one(item)).collect();
        let mut failed = self.sync_appended(&appended).err().map(|e| (0, e));
        if failed.is_none() {
            failed = items
                .iter()
                .zip(&appended)
                .enumerate()
                .filter(|(_, (_, a))| a.is_ok())
                .find_map(|(i, (item, _))| {
                    let done = item.notes.keep_durably(Code::WriteDone.note(0, 0, 0));
                    done.err().map(|e| (i, e))
                });
        }
        if let Some((from, e)) = failed {
            for i in (from..appended.len()).rev() {
                if let (Ok(a), Some(item)) = (&appended[i], items.get(i)) {
                    undo(&a.touched, item.notes);
                    appended[i] = Err(shared(&e));
                }
            }
        }
        appended
            .into_iter()
            .map(|a| a.map(|a| a.touched.into_iter().map(|(p, _)| p).collect()))
            .collect()
    }

    /// Syncs each file the chunks appended to, once, and the directories of the files they
    /// created.
    fn sync_appended(&self, appended: &[Result<Appended, SinkError>]) -> io::Result<()> {
        let mut synced: Vec<&Path> = Vec::new();
        for a in appended.iter().flatten() {
            for ((path, _), file) in a.touched.iter().zip(&a.files) {
                if !synced.contains(&path.as_path()) {
                    self.sync_file(file)?;
                    synced.push(path);
                }
            }
        }
        let mut dirs: Vec<&Path> = appended
            .iter()
            .flatten()
            .flat_map(|a| a.touched.iter())
            .filter(|(_, before)| before.is_none())
            .map(|(path, _)| dir_of(path))
            .collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            self.sync_dir_at(dir)?;
        }
        Ok(())
    }

    /// Appends one chunk's pieces, not synced; a chunk that fails part way is undone at once.
    fn append_one(&self, item: &mut GroupItem<'_, '_>) -> Result<Appended, SinkError> {
        let r = item.rendered;
        let family = r.family();
        let mut index = match lock(&self.next_index).get(&family) {
            Some(i) => *i,
            None => (0..).find(|i| !r.path(i + 1, true).exists()).unwrap_or(0),
        };
        let mut done = Appended {
            touched: Vec::new(),
            files: Vec::new(),
        };
        let result = self.append_pieces(r, &mut index, &mut done, item.next, item.notes);
        if result.is_err() {
            undo(&done.touched, item.notes);
        }
        let mut cache = lock(&self.next_index);
        if cache.len() >= INDEX_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(family, index);
        result.map(|()| done)
    }

    /// The lock that serializes appends to the files of `family`.
    fn stripe(&self, family: &str) -> Option<&std::sync::Mutex<()>> {
        self.stripes.get(stripe_of(family))
    }

    /// Cuts the files a crash interrupted a chunk's append to back to their noted lengths
    /// (see the module docs). `r` renders the chunk's paths; `earlier` are its notes. Returns
    /// the appends undone and the bytes cut; `Ok(None)` when nothing was interrupted.
    pub fn undo_interrupted(
        &self,
        r: &Rendered,
        earlier: &[Note],
        notes: &ChunkNotes,
    ) -> io::Result<Option<(u64, u64)>> {
        if earlier.iter().any(|n| Code::WriteDone.is(n)) {
            return Ok(None);
        }
        let since = earlier
            .iter()
            .rposition(|n| Code::AppendsUndone.is(n))
            .map_or(0, |i| i + 1);
        let begun: Vec<&Note> = earlier[since..]
            .iter()
            .filter(|n| Code::AppendBegun.is(n))
            .collect();
        if begun.is_empty() {
            return Ok(None);
        }
        let _guard = self.stripe(&r.family()).map(lock);
        let (mut undone, mut cut) = (0, 0);
        for note in begun.iter().rev() {
            let path = r.path(note.small, true);
            if path_hash(&path) != note.a {
                tracing::warn!(
                    "an interrupted append was to a file this configuration no longer names ({}): left as it is",
                    path.display()
                );
                continue;
            }
            let len = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if len <= note.b {
                continue;
            }
            if note.b == 0 {
                fs::remove_file(&path)?;
                sync_dir(&path)?;
            } else {
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(note.b)?;
                f.sync_data()?;
            }
            lock(&self.checked_tails).insert(path.clone());
            tracing::warn!(
                "{}: removed {} bytes of an append a crash interrupted (its chunk is written again)",
                path.display(),
                len - note.b
            );
            undone += 1;
            cut += len - note.b;
        }
        notes.keep_durably(Code::AppendsUndone.note(0, 0, 0))?;
        Ok(Some((undone, cut)))
    }

    fn append_pieces(
        &self,
        r: &Rendered,
        index: &mut u32,
        done: &mut Appended,
        next: &mut NextPiece<'_>,
        notes: &ChunkNotes,
    ) -> Result<(), SinkError> {
        let max = self.config.max_file_size;
        let mut current: Option<(Out, u64)> = None;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if !next(&mut buf)? {
                break;
            }
            if buf.is_empty() {
                continue;
            }
            if let Some((out, base)) = current.take() {
                let size = base + out.written();
                if max.is_some_and(|m| size > 0 && size + buf.len() as u64 > m) {
                    done.files.extend(out.close().map_err(io_err)?);
                    *index += 1;
                } else {
                    current = Some((out, base));
                }
            }
            let (out, _) = match &mut current {
                Some(c) => c,
                slot @ None => {
                    let opened = self.open_append(r, index, buf.len() as u64, &mut done.touched);
                    let opened = opened.map_err(io_err)?;
                    if let Some((path, before)) = done.touched.last() {
                        let before = before.unwrap_or(0);
                        notes.keep(Code::AppendBegun.note(*index, path_hash(path), before));
                    }
                    slot.insert(opened)
                }
            };
            out.write_all(&buf).map_err(io_err)?;
        }
        if let Some((out, _)) = current {
            done.files.extend(out.close().map_err(io_err)?);
        }
        Ok(())
    }

    /// Opens file number `index` for appending, moving past files too full for `incoming`
    /// more bytes.
    fn open_append(
        &self,
        r: &Rendered,
        index: &mut u32,
        incoming: u64,
        touched: &mut Vec<(PathBuf, Option<u64>)>,
    ) -> io::Result<(Out, u64)> {
        loop {
            let path = r.path(*index, true);
            let existed = path.exists();
            if !existed {
                create_parent(&path)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)?;
            let mut len = file.metadata()?.len();
            let text = self.config.line_based && self.config.gzip.is_none();
            if existed && text && lock(&self.checked_tails).insert(path.clone()) {
                len = repair_tail(&file, len, &path)?;
            }
            if self
                .config
                .max_file_size
                .is_some_and(|m| len > 0 && len + incoming > m)
            {
                *index += 1;
                continue;
            }
            touched.push((path, existed.then_some(len)));
            return Ok((Out::cached(file, self.config.gzip), len));
        }
    }
}

/// Which of the append locks serializes the files of `family`.
fn stripe_of(family: &str) -> usize {
    let h = family.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    h % STRIPES
}

/// Cuts the files a chunk appended to back to their length before it (removes those it
/// created), last first, and notes the undo.
fn undo(touched: &[(PathBuf, Option<u64>)], notes: &ChunkNotes) {
    for (path, len) in touched.iter().rev() {
        let undone = match len {
            Some(len) => OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(*len)),
            None => fs::remove_file(path),
        };
        if let Err(e) = undone {
            tracing::error!("could not undo a failed append to {}: {e}", path.display());
        }
    }
    if let Some((first, _)) = touched.first()
        && let Err(e) = notes.keep_durably(Code::AppendsUndone.note(0, 0, 0))
    {
        tracing::error!(
            "could not note the undo of a failed append to {}: {e}",
            first.display()
        );
    }
}

/// Cuts a torn last line (left by a crash in the middle of an append). Returns the new length.
fn repair_tail(file: &File, len: u64, path: &Path) -> io::Result<u64> {
    const BLOCK: u64 = 64 * 1024;
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    let mut end = len;
    let mut block = vec![0u8; BLOCK as usize];
    let keep = loop {
        let start = end.saturating_sub(BLOCK);
        let n = (end - start) as usize;
        file.read_exact_at(&mut block[..n], start)?;
        if let Some(i) = block[..n].iter().rposition(|b| *b == b'\n') {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    file.set_len(keep)?;
    file.sync_data()?;
    tracing::warn!(
        "{}: removed a torn last line of {} bytes (an interrupted append; its chunk is written again)",
        path.display(),
        len - keep
    );
    Ok(keep)
}
