//! Writing a chunk's bytes into files, so that readers never see a half-written file.
//!
//! **New files (`append false`)**: the bytes go to a temporary file in the target directory
//! (`.<name>.<chunk id>.<part>.ferry-tmp`), which is fsynced, then given its final name with a
//! hard link (which never replaces an existing file, so two writers cannot pick the same
//! number; where hard links are not available, a rename after an existence check), and the
//! directory is fsynced. A reader listing the directory sees either no file or the whole file.
//! The temporary name is derived from the chunk id, so the retry of a failed chunk (also after
//! a restart) reuses it instead of leaving litter.
//!
//! **Appends (`append true`)**: one file per slice grows in place. Each chunk is appended
//! whole and fdatasynced before the chunk is acknowledged to the buffer; appends to one file
//! are serialized. If an append fails part way, the file is truncated back to its length
//! before the chunk (a file this chunk created is removed), so a failed flush leaves no partial
//! chunk behind; the chunk is retried whole. A reader that reads while an append is in progress
//! can see its first part, as with any growing log file. After a crash in the middle of an
//! append, the first append to that file after restart truncates a torn last line (for the
//! line-based formats) before writing, and logs what it removed; the chunk itself is written
//! again (at least once).
//!
//! **Groups**: the flusher hands the chunks queued together to [`FileWriter::write_group`]
//! (group commit). All of their bytes are written first; then each file is synced once (the
//! appends of several chunks to one file share one `fdatasync`), and each directory that
//! gained a file once; only then is each chunk noted done and acknowledged. A chunk that fails
//! is undone alone; a sync that fails fails every chunk that shared it. A crash before the
//! syncs leaves each chunk of the group without its "done" note, so each is cut back and
//! written again, once; "done" notes are made durable in the order the chunks were appended,
//! so an undo never cuts what a later chunk, noted done, appended.
//!
//! **Size rotation (`max_file_size`)**: a file is closed once it holds at least that many bytes
//! (checked between pieces of a chunk, so a file can pass the limit by up to one piece, about
//! 1 MiB of events); the next bytes go to the next number. With gzip the size is the
//! compressed size written so far.

use crate::output::SinkError;
use crate::output::placeholders::Rendered;
use crate::output::progress::Code;
use ferry_buffer::Note;
use ferry_buffer::Notebook;
use flate2::write::GzEncoder;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Cached next file numbers kept before the cache is cleared.
const INDEX_CACHE_LIMIT: usize = 4096;
/// Append locks: files hash onto this many locks.
const STRIPES: usize = 16;
const WRITE_BUFFER: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    pub append: bool,
    /// gzip level (1-9) when the files are gzip-compressed.
    pub gzip: Option<u32>,
    pub max_file_size: Option<u64>,
    pub symlink_path: Option<PathBuf>,
    /// Whether every record ends with a newline (a torn tail can be found and cut).
    pub line_based: bool,
}

/// Produces the next piece of a chunk's bytes into the buffer; `false` at the end.
pub type NextPiece<'a> = dyn FnMut(&mut Vec<u8>) -> Result<bool, SinkError> + 'a;

#[derive(Debug)]
pub struct FileWriter {
    pub config: WriterConfig,
    next_index: Mutex<HashMap<String, u32>>,
    checked_tails: Mutex<HashSet<PathBuf>>,
    stripes: Vec<Mutex<()>>,
    /// Files and directories synced (each a commit the file system waits for).
    syncs: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps are caches: a poisoned one is still consistent enough to use.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_err(e: io::Error) -> SinkError {
    SinkError::Io(e)
}

/// Counts the bytes written through it.
struct Counting<W: Write> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(buf)?;
        self.count += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where a file's bytes go: through a buffer into the page cache (appends), or around it in
/// aligned blocks (new files, see `direct`).
enum Sink {
    Cached(BufWriter<File>),
    Direct(DirectFile),
    /// A part of a chunk published before (see [`ChunkNotes`]): formatted, so the parts
    /// after it are cut where they were, but not written.
    Discard,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Cached(w) => w.write_all(buf)?,
            Sink::Direct(w) => w.write_all(buf)?,
            Sink::Discard => {}
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Cached(w) => w.flush(),
            Sink::Direct(w) => w.flush(),
            Sink::Discard => Ok(()),
        }
    }
}

impl Sink {
    /// Writes what is pending, without a sync; the file, to be synced with the others of its
    /// group (none for a discarded part).
    fn close(self) -> io::Result<Option<File>> {
        match self {
            Sink::Cached(w) => Ok(Some(w.into_inner().map_err(|e| e.into_error())?)),
            Sink::Direct(w) => Ok(Some(w.finish()?)),
            Sink::Discard => Ok(None),
        }
    }
}

enum Out {
    Plain(Counting<Sink>),
    Gzip(Box<GzEncoder<Counting<Sink>>>),
}

impl Out {
    /// Appends to `file` through the page cache.
    fn cached(file: File, gzip: Option<u32>) -> Self {
        Self::new(
            Sink::Cached(BufWriter::with_capacity(WRITE_BUFFER, file)),
            gzip,
        )
    }

    /// Creates `path` (a new file) written around the page cache.
    fn create(path: &Path, gzip: Option<u32>) -> io::Result<Self> {
        Ok(Self::new(
            Sink::Direct(DirectFile::create(path, WRITE_BUFFER)?),
            gzip,
        ))
    }

    fn new(sink: Sink, gzip: Option<u32>) -> Self {
        let counting = Counting {
            inner: sink,
            count: 0,
        };
        match gzip {
            Some(level) => Out::Gzip(Box::new(GzEncoder::new(
                counting,
                flate2::Compression::new(level),
            ))),
            None => Out::Plain(counting),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Out::Plain(w) => w.write_all(buf),
            Out::Gzip(w) => w.write_all(buf),
        }
    }

    fn written(&self) -> u64 {
        match self {
            Out::Plain(w) => w.count,
            Out::Gzip(w) => w.get_ref().count,
        }
    }

    /// Ends the gzip member and writes what is pending, without a sync (see [`Sink::close`]).
    fn close(self) -> io::Result<Option<File>> {
        let counting = match self {
            Out::Plain(w) => w,
            Out::Gzip(w) => w.finish()?,
        };
        counting.inner.close()
    }
}

/// The directory holding `path`.
fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn sync_dir_at(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Syncs the directory holding `path`.
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Creates the missing directories above `path` and fsyncs the directory holding each new
/// one, so that a synced file is not lost with a directory entry that never reached the disk.
fn create_parent(path: &Path) -> io::Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        sync_dir(created)?;
    }
    Ok(())
}

/// A temporary file being filled, then written and waiting for its group's sync; removed
/// if dropped unpublished. Without a path, a part published before, only formatted again.
struct Temp {
    path: Option<PathBuf>,
    out: Option<Out>,
    /// The file once its bytes are written, to be synced.
    written: Option<File>,
}

impl Temp {
    /// Writes what is pending; the sync comes with the group's.
    fn close(&mut self) -> io::Result<()> {
        if let Some(out) = self.out.take() {
            self.written = out.close()?;
        }
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(path) = &self.path
            && (self.out.is_some() || self.written.is_some())
        {
            let _ = fs::remove_file(path);
        }
    }
}

/// One chunk of a group written with one sync per file (see [`FileWriter::write_group`]).
pub struct GroupItem<'a, 'b> {
    pub rendered: &'a Rendered,
    pub chunk_id: &'a str,
    pub next: &'a mut NextPiece<'b>,
    pub notes: &'a ChunkNotes,
}

/// The files a chunk was written to, in order.
pub type Written = Result<Vec<PathBuf>, SinkError>;

/// A chunk's parts given their numbers: the part and its file.
type Published = Vec<(u32, PathBuf)>;

/// An error that fails every chunk of a group that shared the failed step.
fn shared(e: &io::Error) -> SinkError {
    SinkError::Io(io::Error::new(e.kind(), e.to_string()))
}

/// What a chunk's progress notes say was done before (see [`crate::output::progress`]), and
/// where this attempt's notes go.
pub struct ChunkNotes {
    notebook: Option<Notebook>,
    /// Parts (`append false`) published by an earlier attempt: not written again.
    pub published: u32,
}

impl ChunkNotes {
    /// Notes kept in `notebook`, from what the earlier attempts noted.
    pub fn new(notebook: Notebook, earlier: &[Note]) -> Self {
        let published = earlier
            .iter()
            .filter(|n| Code::FilePublished.is(n))
            .map(|n| n.small.saturating_add(1))
            .max()
            .unwrap_or(0);
        Self {
            notebook: Some(notebook),
            published,
        }
    }

    /// No notes (a chunk that is not in a buffer).
    pub fn none() -> Self {
        Self {
            notebook: None,
            published: 0,
        }
    }

    /// Keeps a note that only saves work: a failure is logged.
    fn keep(&self, note: Note) {
        if let Some(nb) = &self.notebook
            && let Err(e) = nb.note(note)
        {
            tracing::debug!(error = %e, "could not keep a progress note");
        }
    }

    /// Keeps a note the undo of a crash relies on, synced.
    fn keep_durably(&self, note: Note) -> io::Result<()> {
        match &self.notebook {
            Some(nb) => nb.note_durably(note),
            None => Ok(()),
        }
    }
}

/// A stable hash of a file's path, kept in a note to check that the file an undo would cut is
/// the one the note was written for (FNV-1a).
pub fn path_hash(path: &Path) -> u64 {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
}

impl FileWriter {
    pub fn new(config: WriterConfig) -> Self {
        Self {
            config,
            next_index: Mutex::default(),
            checked_tails: Mutex::default(),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            syncs: AtomicU64::new(0),
        }
    }

    /// Files and directories synced so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    fn sync_file(&self, f: &File) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        f.sync_data()
    }

    fn sync_dir_at(&self, dir: &Path) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        sync_dir_at(dir)
    }

    /// Writes a chunk's pieces without progress notes; returns the files written, in order.
    pub fn write(
        &self,
        r: &Rendered,
        chunk_id: &str,
        next: &mut NextPiece<'_>,
    ) -> Result<Vec<PathBuf>, SinkError> {
        self.write_noted(r, chunk_id, next, &ChunkNotes::none())
    }

    /// Writes a chunk's pieces; returns the files written, in order. Progress is noted in
    /// `notes`: each published part, the length of each file before an append, and the end.
    pub fn write_noted(
        &self,
        r: &Rendered,
        chunk_id: &str,
        next: &mut NextPiece<'_>,
        notes: &ChunkNotes,
    ) -> Result<Vec<PathBuf>, SinkError> {
        let item = GroupItem {
            rendered: r,
            chunk_id,
            next,
            notes,
        };
        self.write_group(vec![item])
            .pop()
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    /// Writes several chunks in one pass and makes them durable together (group commit):
    /// every file is synced once, after all the chunks' bytes are written, and each directory
    /// that gained a file once. A chunk counts as written only after those syncs. Returns each
    /// chunk's files, in the order of `items`; a chunk that fails leaves nothing of itself.
    pub fn write_group(&self, items: Vec<GroupItem<'_, '_>>) -> Vec<Written> {
        let mut results = if self.config.append {
            self.append_group(items)
        } else {
            self.new_files_group(items)
        };
        let last = results
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, r)| Some((i, r.as_ref().ok()?.last()?.clone())));
        if let (Some(link), Some((i, last))) = (&self.config.symlink_path, last)
            && let Err(e) = update_symlink(link, &last)
        {
            results[i] = Err(io_err(e));
        }
        results
    }
}

/// Points `link` at `target`, replacing it atomically.
fn update_symlink(link: &Path, target: &Path) -> io::Result<()> {
    let tmp = link.with_file_name(format!(
        ".{}.ferry-tmp",
        link.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = fs::remove_file(&tmp);
    create_parent(link)?;
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, link)
}

mod append;
mod direct;
mod new_files;

use direct::DirectFile;

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
