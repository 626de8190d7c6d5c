//! The line writer for tail scenarios: JSON lines carrying `(stream, seq)` (see
//! [`crate::record`]), at a rate or as fast as possible, with log rotation.
//!
//! Rotation happens after the file holds at least `rotate_every` bytes, between lines:
//! - `rename`: the file is renamed to `PATH.N` (N = 1, 2, ...) and a new `PATH` is created;
//! - `copytruncate`: the file is copied to `PATH.N`, then truncated to 0 and written from there
//!   (lines written between the copy and the truncation would be lost, as with logrotate; the
//!   writer writes nothing in between);
//! - `none`: one growing file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::record::RecordShape;

/// How the file is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Rotate {
    /// Rename the file aside and create a new one (what most loggers do).
    Rename,
    /// Copy the file aside and truncate it in place (logrotate's `copytruncate`).
    Copytruncate,
    /// Never rotate.
    None,
}

/// What to write.
#[derive(Debug, Clone)]
pub struct LinesConfig {
    pub path: PathBuf,
    /// Lines per second; `None`: as fast as possible.
    pub rate: Option<f64>,
    pub line_size: usize,
    pub rotate: Rotate,
    pub rotate_every: u64,
    pub lines: Option<u64>,
    pub duration: Option<Duration>,
    pub stream: u32,
}

/// The result of a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LinesReport {
    pub lines: u64,
    pub bytes: u64,
    pub rotations: u64,
    pub secs: f64,
}

/// Live counters.
#[derive(Debug, Default)]
pub struct LinesProgress {
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
}

fn open(path: &Path) -> std::io::Result<BufWriter<File>> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

/// Lines written between two rate checks and flushes.
const STEP: u64 = 256;

/// Write lines until the count, the duration or `stop`.
pub fn run(
    cfg: &LinesConfig,
    progress: &LinesProgress,
    stop: &AtomicBool,
) -> std::io::Result<LinesReport> {
    let shape = RecordShape::new(cfg.line_size.saturating_sub(8));
    let started = Instant::now();
    let deadline = cfg.duration.map(|d| started + d);
    let mut out = open(&cfg.path)?;
    let mut in_file = std::fs::metadata(&cfg.path).map_or(0, |m| m.len());
    let mut r = LinesReport::default();
    let mut line = Vec::with_capacity(cfg.line_size + 64);
    let mut seq = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let step = match cfg.lines {
            Some(n) if seq >= n => break,
            Some(n) => STEP.min(n - seq),
            None => STEP,
        };
        if let Some(rate) = cfg.rate {
            let due = started + Duration::from_secs_f64(seq as f64 / rate.max(1e-9));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let mut bytes = 0u64;
        for s in seq..seq + step {
            line.clear();
            shape.write_json_line(&mut line, cfg.stream, s);
            out.write_all(&line)?;
            bytes += line.len() as u64;
        }
        out.flush()?;
        seq += step;
        in_file += bytes;
        r.bytes += bytes;
        progress.lines.fetch_add(step, Ordering::Relaxed);
        progress.bytes.fetch_add(bytes, Ordering::Relaxed);
        if cfg.rotate != Rotate::None && in_file >= cfg.rotate_every.max(1) {
            r.rotations += 1;
            let aside = PathBuf::from(format!("{}.{}", cfg.path.display(), r.rotations));
            match cfg.rotate {
                Rotate::Rename => {
                    drop(out);
                    std::fs::rename(&cfg.path, &aside)?;
                    out = open(&cfg.path)?;
                }
                Rotate::Copytruncate => {
                    std::fs::copy(&cfg.path, &aside)?;
                    out.get_ref().set_len(0)?;
                }
                Rotate::None => {}
            }
            in_file = 0;
        }
    }
    out.flush()?;
    r.lines = seq;
    r.secs = started.elapsed().as_secs_f64();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::seq_from_json;

    fn seqs_in(paths: &[PathBuf]) -> Vec<u64> {
        let mut out = Vec::new();
        for p in paths {
            for line in std::fs::read_to_string(p).unwrap().lines() {
                let (stream, seq) = seq_from_json(line.as_bytes()).unwrap();
                assert_eq!(stream, 4);
                out.push(seq);
            }
        }
        out
    }

    #[test]
    fn rename_rotation_keeps_every_line_in_order_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let cfg = LinesConfig {
            path: path.clone(),
            rate: None,
            line_size: 100,
            rotate: Rotate::Rename,
            rotate_every: 30_000,
            lines: Some(1000),
            duration: None,
            stream: 4,
        };
        let r = run(&cfg, &LinesProgress::default(), &AtomicBool::new(false)).unwrap();
        assert_eq!(r.lines, 1000);
        assert!(r.rotations >= 2, "{r:?}");
        let mut files: Vec<PathBuf> = (1..=r.rotations)
            .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
            .collect();
        files.push(path);
        assert_eq!(seqs_in(&files), (0..1000).collect::<Vec<_>>());
        let total: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert_eq!(total, r.bytes);
    }

    #[test]
    fn copytruncate_leaves_the_lines_in_the_copies_and_the_rest_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let cfg = LinesConfig {
            path: path.clone(),
            rate: Some(20_000.0),
            line_size: 100,
            rotate: Rotate::Copytruncate,
            rotate_every: 40_000,
            lines: Some(1200),
            duration: None,
            stream: 4,
        };
        let r = run(&cfg, &LinesProgress::default(), &AtomicBool::new(false)).unwrap();
        assert!(r.secs >= 0.05, "the rate was kept: {r:?}");
        let mut files: Vec<PathBuf> = (1..=r.rotations)
            .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
            .collect();
        files.push(path);
        assert_eq!(seqs_in(&files), (0..1200).collect::<Vec<_>>());
    }
}
