//! Counting the records in ferry's file-output archives: JSON lines (`<format> @type json`),
//! gzip-compressed when the name ends in `.gz`.
//!
//! With `append false` (the file output's default) an archive file appears under its final name
//! only once complete (it is written under a hidden name and renamed), so each visible file is
//! read once and remembered: polling a growing directory costs only the new files. Hidden files
//! (a leading `.`) are skipped. Lines longer than [`MAX_LINE_BYTES`] and lines without both
//! numbers are counted as `unnumbered`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
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
    seen: HashSet<PathBuf>,
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
            seen: HashSet::new(),
            seq: SeqCounter::new(),
            lines: 0,
            unnumbered: 0,
            file_bytes: 0,
        }
    }

    /// Read the files that appeared since the last poll; returns how many were read.
    pub fn poll(&mut self) -> Result<usize, ArchiveError> {
        let mut files = Vec::new();
        list(&self.dir, &mut files)?;
        files.sort();
        let mut read = 0;
        for f in files {
            if self.seen.contains(&f) {
                continue;
            }
            self.count_file(&f)?;
            self.seen.insert(f);
            read += 1;
        }
        Ok(read)
    }

    fn count_file(&mut self, path: &Path) -> Result<(), ArchiveError> {
        let io = |source| ArchiveError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        self.file_bytes += file.metadata().map_err(io)?.len();
        let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut reader = BufReader::with_capacity(1 << 20, reader);
        let mut line = Vec::with_capacity(1024);
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut line)
                .map_err(io)?;
            if n == 0 {
                return Ok(());
            }
            if line.last() != Some(&b'\n') && n as u64 == MAX_LINE_BYTES {
                // The rest of an over-long line: skip it.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    let m = (&mut reader)
                        .take(MAX_LINE_BYTES)
                        .read_until(b'\n', &mut rest)
                        .map_err(io)?;
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
}
