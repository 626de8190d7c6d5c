//! Reading what a copytruncate rotation moved away. logrotate's `copytruncate` copies the file
//! (`app.log.1`, `app.log-20261206`, ...) and then truncates it in place. Lines written before
//! the copy that this input had not read yet are in the copy only: when a followed file is
//! truncated, the copy whose first bytes are the file's old first bytes is read from where
//! this input stopped to its end, before the truncated file is read from its start.
//!
//! Lines written between the copy and the truncation are in neither file: no reader can have
//! them unless it read them before the truncation. What this input can see of that loss (the
//! file was already longer, at its previous read, than both what it read and the copy) is
//! counted, in lines estimated from the file's mean line length, in
//! `ferry_events_dropped_total{reason="rotation"}`; docs/tail-input.md gives the loss measured
//! under a fast writer.

use super::identity::Fingerprint;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::discover::COMPRESSED;

/// The rotated copy of `path` that starts with `fp` and holds bytes past `from`: the newest
/// such file beside it whose name is the file's name followed by `.` or `-`.
pub fn find(path: &Path, fp: &Fingerprint, from: u64) -> io::Result<Option<(PathBuf, File)>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(None);
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut best: Option<(std::time::SystemTime, PathBuf, File)> = None;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let Some(candidate) = file_name.to_str() else {
            continue;
        };
        let Some(rest) = candidate.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('.') || rest.starts_with('-'))
            || COMPRESSED.iter().any(|c| candidate.ends_with(c))
        {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || meta.len() <= from {
            continue;
        }
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        if best.as_ref().is_some_and(|(t, _, _)| *t >= modified) {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if fp.matches(&file)? {
            best = Some((modified, entry.path(), file));
        }
    }
    Ok(best.map(|(_, p, f)| (p, f)))
}

/// Lines lost to a truncation that this input can see: bytes the file had at its previous read
/// (`seen`) beyond both what was read (`read_to`) and what the copy holds (`copy_len`), as
/// lines of `mean_line` bytes (rounded up; none when the mean is unknown).
pub fn seen_lost_lines(
    seen: u64,
    read_to: u64,
    copy_len: Option<u64>,
    mean_line: Option<u64>,
) -> u64 {
    let covered = read_to.max(copy_len.unwrap_or(0));
    match (seen.checked_sub(covered), mean_line) {
        (Some(bytes), Some(mean)) if bytes > 0 && mean > 0 => bytes.div_ceil(mean),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_is_the_newest_uncompressed_sibling_with_the_same_head() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, b"head line one\nhead line two\n").unwrap();
        let fp = Fingerprint::read(&File::open(&log).unwrap()).unwrap();
        std::fs::write(dir.path().join("app.log.2"), b"other content\n").unwrap();
        std::fs::write(
            dir.path().join("app.log.1.gz"),
            b"head line one\nhead line two\nmore\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("app.logger"),
            b"head line one\nhead line two\nmore\n",
        )
        .unwrap();
        assert!(find(&log, &fp, 5).unwrap().is_none(), "no copy yet");
        std::fs::write(
            dir.path().join("app.log.1"),
            b"head line one\nhead line two\nmore\n",
        )
        .unwrap();
        let (path, _) = find(&log, &fp, 5).unwrap().unwrap();
        assert_eq!(path, dir.path().join("app.log.1"));
        // A copy that ends before the offset holds nothing more.
        assert!(find(&log, &fp, 100).unwrap().is_none());
    }

    #[test]
    fn only_bytes_neither_read_nor_copied_count_as_lost() {
        assert_eq!(seen_lost_lines(1000, 1000, None, Some(100)), 0);
        assert_eq!(seen_lost_lines(1000, 800, Some(1000), Some(100)), 0);
        assert_eq!(seen_lost_lines(1000, 800, None, Some(100)), 2);
        assert_eq!(seen_lost_lines(1000, 700, Some(850), Some(100)), 2);
        assert_eq!(seen_lost_lines(1000, 700, None, None), 0);
    }
}
