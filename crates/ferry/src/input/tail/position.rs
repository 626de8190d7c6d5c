//! The position file (`pos_file`): how far each file has been committed.
//!
//! # Format
//!
//! Text, one line per file, fields separated by tabs, numbers in fixed-width lowercase hex:
//!
//! ```text
//! <path>\t<offset:16>\t<inode:16>\t<device:16>\t<fingerprint length:4>\t<fingerprint hash:16>\n
//! /var/log/app.log\t00000000000a3f10\t0000000000041b2c\t0000000000000803\t0100\t9ae1c2b35f0e77d4
//! ```
//!
//! The first three fields are Fluentd's `in_tail` format, so Fluentd reads a ferry position
//! file (it stops parsing the inode at the tab). In the path, `\`, tab and newline are written
//! `\\`, `\t` and `\n`. ferry reads Fluentd's three-field lines too (device and fingerprint
//! unknown: the entry matches by inode alone) and skips Fluentd's unwatched entries (offset
//! `ffffffffffffffff`). A line that does not parse is skipped and counted.
//!
//! # Invariants and recovery
//!
//! - An offset is written only after the lines before it were committed by the output, so a
//!   restart re-reads at most what was emitted after the last write (at-least-once).
//! - The file is replaced whole: written to `<pos_file>.tmp` and renamed over `<pos_file>`.
//!   A crash leaves the old or the new file, never a mix; a left-over `.tmp` is overwritten by
//!   the next write.
//! - After every commit the file is written without an fsync: a killed process loses nothing
//!   (the page cache holds the write). When the new content has the length of the file and
//!   fits in one page (a few dozen files), it is written in place with one `pwrite` (a single
//!   page is never torn, and no line moves); otherwise the file is replaced as above. At most
//!   once per [`DURABLE_EVERY`], and at shutdown, the write is made durable (an fdatasync of
//!   the file written in place, on a thread of its own so that the writes after it never wait
//!   for the disk; else the `.tmp` fsynced before the rename, the directory after), so a power
//!   cut takes the position back by at most that much: those lines are read again.
//!   Fsyncing every commit cost more CPU than parsing the lines (hundreds of writes a second).
//! - Writes are ordered by a generation number: an older snapshot never replaces a newer one.

use super::identity::{FileId, Fingerprint};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

/// Longest time a position write is left without an fsync.
pub const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Fluentd's offset for entries it no longer watches.
const UNWATCHED: u64 = u64::MAX;
/// The largest position file read (a million files' worth of lines).
const MAX_POS_FILE: u64 = 256 * 1024 * 1024;

/// One file's committed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosEntry {
    pub path: String,
    pub offset: u64,
    pub id: FileId,
    pub fp: Fingerprint,
}

/// Why the position file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("position file {path} is larger than {MAX_POS_FILE} bytes")]
    TooLarge { path: PathBuf },
}

impl PositionError {
    /// A failed write is retried with the next snapshot; reading at start-up is not retried.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}

fn io_err<'p>(
    op: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> PositionError + use<'p> {
    move |source| PositionError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub entries: Vec<PosEntry>,
    /// Lines in Fluentd's three-field format.
    pub fluentd_lines: usize,
    /// Lines that did not parse.
    pub skipped_lines: usize,
    /// When the file was last written: files modified after this changed while ferry was down.
    pub modified: Option<SystemTime>,
}

fn escape(path: &str, out: &mut String) {
    for c in path.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The file's text for `entries`.
pub fn encode(entries: &[PosEntry]) -> String {
    let mut out = String::with_capacity(entries.len() * 96);
    for e in entries {
        escape(&e.path, &mut out);
        let _ = writeln!(
            out,
            "\t{:016x}\t{:016x}\t{:016x}\t{:04x}\t{:016x}",
            e.offset, e.id.ino, e.id.dev, e.fp.len, e.fp.hash
        );
    }
    out
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim(), 16).ok()
}

/// Parses one line; `Ok(None)` for Fluentd's unwatched entries.
fn parse_line(line: &str) -> Result<Option<(PosEntry, bool)>, ()> {
    let fields: Vec<&str> = line.split('\t').collect();
    let (path, offset, ino) = match fields.as_slice() {
        [path, offset, ino, ..] => (unescape(path), hex(offset).ok_or(())?, hex(ino).ok_or(())?),
        _ => return Err(()),
    };
    if offset == UNWATCHED {
        return Ok(None);
    }
    let (dev, fp, fluentd) = match fields.as_slice() {
        [_, _, _] => (0, Fingerprint::default(), true),
        [_, _, _, dev, len, hash] => {
            let len = u16::try_from(hex(len).ok_or(())?).map_err(|_| ())?;
            let hash = hex(hash).ok_or(())?;
            (hex(dev).ok_or(())?, Fingerprint { len, hash }, false)
        }
        _ => return Err(()),
    };
    let entry = PosEntry {
        path,
        offset,
        id: FileId { dev, ino },
        fp,
    };
    Ok(Some((entry, fluentd)))
}

/// Parses a whole position file's text.
pub fn decode(text: &str) -> Loaded {
    let mut loaded = Loaded::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_line(line) {
            Ok(Some((entry, fluentd))) => {
                loaded.fluentd_lines += usize::from(fluentd);
                // The last line for an inode wins, as Fluentd's compaction keeps the last.
                loaded.entries.retain(|e| !e.id.matches(&entry.id));
                loaded.entries.push(entry);
            }
            Ok(None) => {}
            Err(()) => loaded.skipped_lines += 1,
        }
    }
    loaded
}

/// Reads the position file; a missing file is an empty table.
pub fn load(path: &Path) -> Result<Loaded, PositionError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let meta = file.metadata().map_err(io_err("stat", path))?;
    if meta.len() > MAX_POS_FILE {
        return Err(PositionError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    io::Read::take(&file, MAX_POS_FILE)
        .read_to_end_bounded(&mut bytes)
        .map_err(io_err("read", path))?;
    let mut loaded = decode(&String::from_utf8_lossy(&bytes));
    loaded.modified = meta.modified().ok();
    Ok(loaded)
}

/// `read_to_end` on a reader already bounded by `take`.
trait ReadBounded {
    fn read_to_end_bounded(&mut self, out: &mut Vec<u8>) -> io::Result<()>;
}

impl<R: io::Read> ReadBounded for io::Take<R> {
    // `read` with a bounded reader and a fixed chunk: no unbounded allocation.
    fn read_to_end_bounded(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match io::Read::read(self, &mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Content written in place at most (one page: never torn).
const IN_PLACE_MAX: usize = 4096;

/// Replaces `path` with `text` atomically (see the module docs).
fn replace(path: &Path, text: &[u8], durable: bool) -> Result<(), PositionError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    file.write_all(text).map_err(io_err("write", &tmp))?;
    if durable {
        file.sync_all().map_err(io_err("fsync", &tmp))?;
    }
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_err("rename", path))?;
    if !durable {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// The position file of one tail input, written from several tasks (the coalescing writer and
/// the final write at shutdown) in generation order.
#[derive(Debug)]
pub struct PositionStore {
    path: PathBuf,
    /// The generations last written and last made durable.
    stored: Mutex<(u64, u64)>,
    /// The file as last written, open for writes in place, and its length.
    current: Mutex<Option<(File, usize)>>,
}

impl PositionStore {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            stored: Mutex::new((0, 0)),
            current: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes snapshot `generation` unless a newer one is already on disk. Blocking.
    pub fn save(
        &self,
        generation: u64,
        entries: &[PosEntry],
        durable: bool,
    ) -> Result<bool, PositionError> {
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        let (written, made_durable) = *stored;
        if generation < written
            || (generation == written && (!durable || made_durable >= generation))
        {
            return Ok(false);
        }
        let text = encode(entries);
        self.write(text.as_bytes(), durable)?;
        stored.0 = generation;
        if durable {
            stored.1 = generation;
        }
        Ok(true)
    }

    /// In place when it can (see the module docs), else by replacing the file.
    fn write(&self, text: &[u8], durable: bool) -> Result<(), PositionError> {
        use std::os::unix::fs::FileExt;
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if !durable
            && text.len() <= IN_PLACE_MAX
            && let Some((file, len)) = current.as_ref()
            && *len == text.len()
        {
            return file
                .write_all_at(text, 0)
                .map_err(io_err("write", &self.path));
        }
        *current = None;
        replace(&self.path, text, durable)?;
        if text.len() <= IN_PLACE_MAX {
            *current = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .ok()
                .map(|f| (f, text.len()));
        }
        Ok(())
    }

    /// Makes the last write durable without holding up the writes after it: an fdatasync of
    /// the file written in place, then of its directory (the file may have been replaced
    /// before it was written in place). `None` when the file is not written in place: the
    /// caller saves durably instead. Blocking.
    pub fn sync_in_place(&self) -> Option<Result<(), PositionError>> {
        let generation = self.stored.lock().unwrap_or_else(PoisonError::into_inner).0;
        let file = {
            let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
            current.as_ref()?.0.try_clone().ok()?
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let synced = file
            .sync_data()
            .map_err(io_err("fsync", &self.path))
            .and_then(|()| {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io_err("fsync directory", dir))
            });
        if synced.is_ok() {
            let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
            stored.1 = stored.1.max(generation);
        }
        Some(synced)
    }

    /// Whether the next write of the same length goes in place (see [`Self::sync_in_place`]).
    pub fn writes_in_place(&self) -> bool {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Whether the last write was made durable.
    pub fn is_durable(&self) -> bool {
        let stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        stored.1 >= stored.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, offset: u64, ino: u64) -> PosEntry {
        PosEntry {
            path: path.into(),
            offset,
            id: FileId { dev: 2049, ino },
            fp: Fingerprint {
                len: 256,
                hash: 0xdead_beef,
            },
        }
    }

    #[test]
    fn entries_roundtrip_including_awkward_paths() {
        let entries = vec![
            entry("/var/log/app.log", 1234, 99),
            entry("/tmp/odd\tname\nwith\\slash", u64::MAX - 1, 7),
        ];
        let text = encode(&entries);
        assert_eq!(text.lines().count(), 2);
        let loaded = decode(&text);
        assert_eq!(loaded.entries, entries);
        assert_eq!(loaded.skipped_lines, 0);
        assert!(text.starts_with("/var/log/app.log\t00000000000004d2\t0000000000000063\t"));
    }

    #[test]
    fn fluentd_position_files_are_read_by_inode_and_unwatched_entries_dropped() {
        let text = "/var/log/a.log\t000000000000002a\t0000000000001f00\n\
                    /var/log/old.log\tffffffffffffffff\t0000000000001f01\n\
                    garbage line\n";
        let loaded = decode(text);
        assert_eq!(loaded.fluentd_lines, 1);
        assert_eq!(loaded.skipped_lines, 1);
        assert_eq!(loaded.entries.len(), 1);
        let e = &loaded.entries[0];
        assert_eq!((e.offset, e.id.ino, e.id.dev, e.fp.len), (42, 0x1f00, 0, 0));
    }

    #[test]
    fn fluentd_reads_the_first_three_fields_of_a_ferry_line() {
        // Ruby's `"2a\t...".to_i(16)` stops at the tab; so does splitting on the first tabs.
        let text = encode(&[entry("/x", 42, 0x1f00)]);
        let mut fields = text.trim_end().splitn(3, '\t');
        assert_eq!(fields.next(), Some("/x"));
        assert_eq!(hex(fields.next().unwrap()), Some(42));
        let ino = fields.next().unwrap();
        assert_eq!(hex(&ino[..16]), Some(0x1f00));
    }

    #[test]
    fn the_last_entry_for_an_inode_wins() {
        let text = encode(&[entry("/a", 1, 5), entry("/b", 9, 5)]);
        let loaded = decode(&text);
        assert_eq!(loaded.entries, vec![entry("/b", 9, 5)]);
    }

    #[test]
    fn writes_of_the_same_length_go_in_place_and_others_replace_the_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pos");
        let store = PositionStore::new(path.clone());
        store.save(1, &[entry("/a", 10, 1)], true).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        store.save(2, &[entry("/a", 20, 1)], false).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().ino(),
            inode,
            "written in place"
        );
        assert_eq!(load(&path).unwrap().entries, vec![entry("/a", 20, 1)]);
        store
            .save(3, &[entry("/a", 30, 1), entry("/b", 5, 2)], false)
            .unwrap();
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode, "replaced");
        assert_eq!(load(&path).unwrap().entries.len(), 2);
        store
            .save(4, &[entry("/a", 40, 1), entry("/b", 6, 2)], false)
            .unwrap();
        store
            .save(4, &[entry("/a", 40, 1), entry("/b", 6, 2)], true)
            .unwrap();
        assert!(store.is_durable());
        assert_eq!(load(&path).unwrap().entries[0].offset, 40);
    }

    #[test]
    fn store_replaces_the_file_and_older_generations_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pos");
        assert!(load(&path).unwrap().entries.is_empty());
        let store = PositionStore::new(path.clone());
        assert!(store.save(2, &[entry("/a", 10, 1)], false).unwrap());
        assert!(!store.save(1, &[entry("/a", 5, 1)], true).unwrap());
        assert!(!store.is_durable());
        assert!(
            store.save(2, &[entry("/a", 10, 1)], true).unwrap(),
            "made durable"
        );
        assert!(store.is_durable());
        assert!(!store.save(2, &[entry("/a", 10, 1)], true).unwrap());
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.entries, vec![entry("/a", 10, 1)]);
        assert!(loaded.modified.is_some());
        assert!(!dir.path().join("pos.tmp").exists());
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let err = PositionStore::new(PathBuf::from("/nonexistent-dir/pos"))
            .save(1, &[entry("/a", 1, 1)], true)
            .unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("/nonexistent-dir/pos.tmp"));
    }

    proptest::proptest! {
        #[test]
        fn any_text_decodes_without_panic(text in "(?s).{0,400}") {
            let loaded = decode(&text);
            proptest::prop_assert!(loaded.entries.len() + loaded.skipped_lines <= text.lines().count());
        }

        #[test]
        fn written_entries_read_back_whatever_the_path(
            path in "(?s).{1,40}",
            offset in 0u64..u64::MAX - 1,
            ino in proptest::num::u64::ANY,
            dev in proptest::num::u64::ANY,
            len in 0u16..=256,
            hash in proptest::num::u64::ANY,
        ) {
            let e = PosEntry { path: path.clone(), offset, id: FileId { dev, ino }, fp: Fingerprint { len, hash } };
            let loaded = decode(&encode(std::slice::from_ref(&e)));
            proptest::prop_assert_eq!(loaded.skipped_lines, 0);
            proptest::prop_assert_eq!(loaded.entries.len(), 1);
            let got = &loaded.entries[0];
            proptest::prop_assert_eq!(&got.path, &path);
            proptest::prop_assert_eq!(got.offset, offset);
            proptest::prop_assert_eq!((got.id.dev, got.id.ino), (dev, ino));
            proptest::prop_assert_eq!((got.fp.len, got.fp.hash), (len, hash));
        }
    }
}
