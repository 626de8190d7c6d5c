//! New files (`append false`): see the parent module for the guarantees. Each chunk's parts
//! go to temporary files named after the chunk; a group's files are synced after all of its
//! writes, then given their numbers, then each directory is synced once.

use super::{
    FileWriter, GroupItem, INDEX_CACHE_LIMIT, Out, Published, Rendered, Sink, Temp, Written,
    create_parent, dir_of, io_err, lock, shared,
};
use crate::output::SinkError;
use crate::output::progress::Code;
use std::fs;
use std::io;
use std::path::PathBuf;

impl FileWriter {
    /// `append false`: each chunk's parts go to temporary files; all are synced, then given
    /// their numbers, then each directory is synced once.
    pub(super) fn new_files_group(&self, mut items: Vec<GroupItem<'_, '_>>) -> Vec<Written> {
        let mut early: Vec<Vec<PathBuf>> = items.iter().map(|_| Vec::new()).collect();
        let staged: Vec<Result<Vec<(u32, Temp)>, SinkError>> = items
            .iter_mut()
            .zip(early.iter_mut())
            .map(|(item, early)| self.stage_new_files(item, early))
            .collect();
        // Each file is synced after all of the group's writes, so the file system commits
        // them together.
        let staged = staged.into_iter().map(|parts| {
            let parts = parts?;
            for (_, t) in &parts {
                if let Some(f) = &t.written {
                    self.sync_file(f).map_err(io_err)?;
                }
            }
            Ok(parts)
        });
        // Each chunk's published parts, and the error that stopped it.
        let mut linked: Vec<(Published, Option<SinkError>)> = Vec::new();
        for (item, parts) in items.iter().zip(staged) {
            let mut done = Vec::new();
            let mut failed = None;
            match parts {
                Ok(parts) => {
                    for (part, mut temp) in parts {
                        match self.link(&mut temp, item.rendered) {
                            Ok(path) => done.push((part, path)),
                            Err(e) => {
                                failed = Some(io_err(e));
                                break;
                            }
                        }
                    }
                }
                Err(e) => failed = Some(e),
            }
            linked.push((done, failed));
        }
        let mut dirs: Vec<PathBuf> = linked
            .iter()
            .flat_map(|(done, _)| done.iter().map(|(_, p)| dir_of(p).to_path_buf()))
            .collect();
        dirs.sort();
        dirs.dedup();
        let mut unsynced: Vec<(PathBuf, io::Error)> = Vec::new();
        for dir in dirs {
            if let Err(e) = self.sync_dir_at(&dir) {
                unsynced.push((dir, e));
            }
        }
        let mut results = Vec::new();
        for ((item, (done, mut failed)), early) in items.iter().zip(linked).zip(early) {
            let mut files = early;
            for (part, path) in done {
                match unsynced.iter().find(|(d, _)| d == dir_of(&path)) {
                    Some((_, e)) => {
                        failed.get_or_insert_with(|| shared(e));
                    }
                    None => {
                        item.notes.keep(Code::FilePublished.note(part, 0, 0));
                        files.push(path);
                    }
                }
            }
            results.push(match failed.take() {
                Some(e) => Err(e),
                None => {
                    item.notes.keep(Code::WriteDone.note(0, 0, 0));
                    Ok(files)
                }
            });
        }
        results
    }

    /// Writes a chunk's parts to temporary files; the last is left for the group to sync
    /// and publish, the full ones before it (`max_file_size`) are published at once, into
    /// `early`.
    fn stage_new_files(
        &self,
        item: &mut GroupItem<'_, '_>,
        early: &mut Vec<PathBuf>,
    ) -> Result<Vec<(u32, Temp)>, SinkError> {
        let mut staged = Vec::new();
        let mut current: Option<Temp> = None;
        let mut buf = Vec::new();
        let mut part = 0u32;
        loop {
            buf.clear();
            if !(item.next)(&mut buf)? {
                break;
            }
            if buf.is_empty() {
                continue;
            }
            let temp = match &mut current {
                Some(t) => t,
                slot @ None if part < item.notes.published => slot.insert(Temp {
                    path: None,
                    out: Some(Out::new(Sink::Discard, self.config.gzip)),
                    written: None,
                }),
                slot @ None => slot.insert(
                    self.create_temp(item.rendered, item.chunk_id, part)
                        .map_err(io_err)?,
                ),
            };
            let full = match temp.out.as_mut() {
                Some(out) => {
                    out.write_all(&buf).map_err(io_err)?;
                    self.config
                        .max_file_size
                        .is_some_and(|max| out.written() >= max)
                }
                None => false,
            };
            if full && let Some(mut t) = current.take() {
                // A full part is published at once, so a crash later in a big chunk keeps it.
                t.close().map_err(io_err)?;
                if let Some(f) = &t.written {
                    self.sync_file(f).map_err(io_err)?;
                    let path = self.link(&mut t, item.rendered).map_err(io_err)?;
                    self.sync_dir_at(dir_of(&path)).map_err(io_err)?;
                    item.notes.keep(Code::FilePublished.note(part, 0, 0));
                    early.push(path);
                }
                part += 1;
            }
        }
        if let Some(t) = current {
            stage(t, part, &mut staged)?;
        }
        Ok(staged)
    }

    fn create_temp(&self, r: &Rendered, chunk_id: &str, part: u32) -> io::Result<Temp> {
        let target = r.path(0, false);
        create_parent(&target)?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = target.with_file_name(format!(".{name}.{chunk_id}.{part}.ferry-tmp"));
        let out = Out::create(&path, self.config.gzip)?;
        Ok(Temp {
            path: Some(path),
            out: Some(out),
            written: None,
        })
    }

    /// Gives a written and synced temporary file the first free number (the directory is
    /// synced by the caller).
    fn link(&self, temp: &mut Temp, r: &Rendered) -> io::Result<PathBuf> {
        let Some(temp_path) = temp.path.clone() else {
            return Err(io::Error::other("a discarded part cannot be published"));
        };
        let family = r.family();
        let mut index = lock(&self.next_index).get(&family).copied().unwrap_or(0);
        let mut linked = false;
        let target = loop {
            let candidate = r.path(index, false);
            match fs::hard_link(&temp_path, &candidate) {
                Ok(()) => {
                    linked = true;
                    break candidate;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => index += 1,
                Err(_) if candidate.exists() => index += 1,
                Err(_) => {
                    fs::rename(&temp_path, &candidate)?;
                    break candidate;
                }
            }
        };
        // Published: the temporary name is no longer removed on drop.
        temp.path = None;
        if linked {
            fs::remove_file(&temp_path)?;
        }
        let mut cache = lock(&self.next_index);
        if cache.len() >= INDEX_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(family, index + 1);
        Ok(target)
    }
}

/// Closes a written part and keeps it for the group's sync (a discarded part is dropped).
fn stage(mut t: Temp, part: u32, staged: &mut Vec<(u32, Temp)>) -> Result<(), SinkError> {
    t.close().map_err(io_err)?;
    if t.path.is_some() {
        staged.push((part, t));
    }
    Ok(())
}
