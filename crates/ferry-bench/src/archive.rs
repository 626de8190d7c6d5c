//! Counting the records in ferry's file-output archives: JSON lines (`<format> @type json`),
//! gzip-compressed when the name ends in `.gz`.
//!
//! With `append false` (the file output's default) an archive file appears under its final name
//! only once complete (it is written under a hidden name and renamed), so each visible file is
//! read once and remembered: polling a growing directory costs only the new files. Hidden files
//! (a leading `.`) are skipped. Lines longer than [`MAX_LINE_BYTES`] and lines without both
//! numbers are counted as `unnumbered`.
//!
//! Fluentd's file output writes a chunk into a visible file in place, so a poll can find it half
//! written. [`ArchiveCounter::following`] reads such archives as they grow: it remembers how far
//! each plain file was read and takes only complete lines (up to the last newline), the rest at
//! a later poll. A line that never gets its newline (a writer killed in the middle of it) is
//! never counted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::record::seq_from_json;
use crate::seq::SeqCounter;

/// Longest line read whole.
pub const MAX_LINE_BYTES: u64 = 1024 * 1024;

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ArchiveError {
    /// True when the file vanished while being read (it may come back under another name).
    pub fn is_retryable(&self) -> bool {
        let ArchiveError::Io { source, .. } = self;
        source.kind() == std::io::ErrorKind::NotFound
    }
}

/// Incremental counter of the archives under a directory.
#[derive(Debug)]
pub struct ArchiveCounter {
    dir: PathBuf,
    /// Files read, with the bytes taken from each.
    seen: HashMap<PathBuf, u64>,
    /// Read plain files again as they grow (see [`ArchiveCounter::following`]).
    follow: bool,
    pub seq: SeqCounter,
    pub lines: u64,
    pub unnumbered: u64,
    /// Bytes of the archive files read (as stored, compressed or not).
    pub file_bytes: u64,
}

impl ArchiveCounter {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ArchiveCounter {
            dir: dir.into(),
            seen: HashMap::new(),
            follow: false,
            seq: SeqCounter::new(),
            lines: 0,
            unnumbered: 0,
            file_bytes: 0,
        }
    }

    /// A counter of archives written in place (Fluentd's file output): plain files are read
    /// again as they grow, complete lines only; a `.gz` file is still read once.
    pub fn following(dir: impl Into<PathBuf>) -> Self {
        ArchiveCounter {
            follow: true,
            ..ArchiveCounter::new(dir)
        }
    }

    /// Read the files that appeared (or, following, grew by complete lines) since the last
    /// poll; returns how many.
    pub fn poll(&mut self) -> Result<usize, ArchiveError> {
        let mut files = Vec::new();
        list(&self.dir, &mut files)?;
        files.sort();
        let mut read = 0;
        for f in files {
            let done = self.seen.get(&f).copied();
            let from = match done {
                None => 0,
                Some(_) if !self.follow || is_gzip(&f) => continue,
                Some(taken) => {
                    let len = std::fs::metadata(&f).map_or(0, |m| m.len());
                    if len <= taken {
                        continue;
                    }
                    taken
                }
            };
            let taken = self.count_file(&f, from)?;
            self.seen.insert(f, from + taken);
            if done.is_none() || taken > 0 {
                read += 1;
            }
        }
        Ok(read)
    }

    /// Count the lines of `path` from byte `from`; returns the bytes taken (following, a last
    /// line without its newline is left for a later poll).
    fn count_file(&mut self, path: &Path, from: u64) -> Result<u64, ArchiveError> {
        let io = |source| ArchiveError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let gzip = is_gzip(path);
        let partial = self.follow && !gzip;
        if !partial {
            self.file_bytes += file.metadata().map_err(io)?.len();
        }
        if from > 0 {
            file.seek(SeekFrom::Start(from)).map_err(io)?;
        }
        let reader: Box<dyn Read> = if gzip {
            Box::new(MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut reader = BufReader::with_capacity(1 << 20, reader);
        let mut line = Vec::with_capacity(1024);
        let mut taken = 0u64;
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut line)
                .map_err(io)?;
            if n == 0 || (partial && line.last() != Some(&b'\n') && (n as u64) < MAX_LINE_BYTES) {
                if partial {
                    self.file_bytes += taken;
                }
                return Ok(taken);
            }
            taken += n as u64;
            if line.last() != Some(&b'\n') && n as u64 == MAX_LINE_BYTES {
                // The rest of an over-long line: skip it.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    let m = (&mut reader)
                        .take(MAX_LINE_BYTES)
                        .read_until(b'\n', &mut rest)
                        .map_err(io)?;
                    taken += m as u64;
                    if m == 0 || rest.last() == Some(&b'\n') {
                        break;
                    }
                }
                self.unnumbered += 1;
                continue;
            }
            self.lines += 1;
            match seq_from_json(&line) {
                Some((stream, seq)) => {
                    self.seq.record(stream, seq);
                }
                None => self.unnumbered += 1,
            }
        }
    }
}

fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

fn list(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ArchiveError> {
    let io = |source| ArchiveError::Io {
        path: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type().map_err(io)?.is_dir() {
            list(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Total size of the files under `dir` (0 when it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut files = Vec::new();
    if list(dir, &mut files).is_err() {
        return 0;
    }
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordShape;
    use std::io::Write;

    #[test]
    fn plain_and_gzip_archives_are_counted_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let shape = RecordShape::new(80);
        let mut text = Vec::new();
        for seq in 0..100 {
            shape.write_json_line(&mut text, 1, seq);
        }
        std::fs::write(dir.path().join("bench.0.log"), &text).unwrap();
        let mut c = ArchiveCounter::new(dir.path());
        assert_eq!(c.poll().unwrap(), 1);
        assert_eq!(c.poll().unwrap(), 0, "a file is read once");
        let mut gz = Vec::new();
        for seq in 50..150 {
            shape.write_json_line(&mut gz, 1, seq);
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&gz).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/bench.1.log.gz"), enc.finish().unwrap()).unwrap();
        std::fs::write(
            dir.path().join(".bench.2.log.tmp"),
            b"{\"seq\":1,\"stream\":1}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("noise.log"), b"not json\n").unwrap();
        assert_eq!(c.poll().unwrap(), 2);
        let expected = [(1u32, 150u64)].into_iter().collect();
        let r = c.seq.report(Some(&expected));
        assert_eq!(
            (r.received, r.distinct, r.duplicated, r.lost),
            (200, 150, 50, 0)
        );
        assert_eq!(c.lines, 201);
        assert_eq!(c.unnumbered, 1);
    }

    #[test]
    fn a_following_counter_takes_a_file_written_in_place_line_by_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        let shape = RecordShape::new(80);
        let mut text = Vec::new();
        for seq in 0..10 {
            shape.write_json_line(&mut text, 0, seq);
        }
        let cut = text.len() - 20;
        let path = dir.path().join("bench.20240101_0.log");
        std::fs::write(&path, &text[..cut]).unwrap();
        let mut c = ArchiveCounter::following(dir.path());
        assert_eq!(c.poll().unwrap(), 1);
        assert_eq!(c.seq.distinct(), 9, "the half-written last line waits");
        assert_eq!(c.poll().unwrap(), 0, "nothing new");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let mut more = text[cut..].to_vec();
        shape.write_json_line(&mut more, 0, 10);
        f.write_all(&more).unwrap();
        assert_eq!(c.poll().unwrap(), 1);
        assert_eq!(c.seq.distinct(), 11);
        assert_eq!(c.lines, 11);
        assert_eq!(c.file_bytes, std::fs::metadata(&path).unwrap().len());
        let r = c.seq.report(Some(&[(0u32, 11u64)].into_iter().collect()));
        assert_eq!((r.duplicated, r.lost), (0, 0));
    }
}
