//! The file output's group commit, in this process: archiving chunks one at a time (a sync, or
//! two, per chunk) against in groups of up to 16 (the flusher's group: one sync per file and
//! one per directory for the whole group), through [`FileWriter`] on the bench's filesystem.
//!
//! Rows: small chunks (`FERRY_BENCH_SMALL_KB`, default 64 KiB: the per-tag chunks of a node's
//! quiet containers, flushed every `flush_interval`) and full memory chunks (8 MiB, Fluentd's
//! default `chunk_limit_size`), each appended to one file (`append true`) and written as a new
//! file each (`append false`, the default). Printed per row: chunks per second and MB/s, the
//! syncs per chunk, and CPU seconds per GB (this process's); each the median of
//! `FERRY_BENCH_RUNS` runs (default 5) of `FERRY_BENCH_MB` MB each (default 256), and the
//! group's speed as a multiple of one at a time in the same run. `FERRY_BENCH_DIR` sets the
//! directory (default: the system's temporary directory). Run with
//! `cargo bench -p ferry --bench archive_groups`.

#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly

use ferry::output::SinkError;
use ferry::output::file::writer::{ChunkNotes, FileWriter, GroupItem, NextPiece, WriterConfig};
use ferry::output::placeholders::{IndexStyle, Template};
use ferry_bench::procstat;
use ferry_bench::report::{env_or, load_average, median};
use std::path::Path;
use std::time::Instant;

const GROUP: usize = 16;
const PIECE: usize = 1 << 20;

/// A chunk of `bytes` bytes of 200-byte JSON lines, formatted in pieces of at most 1 MiB.
fn chunk_source(bytes: usize, line: &[u8]) -> impl FnMut(&mut Vec<u8>) -> Result<bool, SinkError> {
    let mut left = bytes;
    move |buf: &mut Vec<u8>| {
        if left == 0 {
            return Ok(false);
        }
        let n = left.min(PIECE);
        while buf.len() + line.len() <= n {
            buf.extend_from_slice(line);
        }
        left -= n;
        Ok(true)
    }
}

struct Figures {
    chunks_per_sec: f64,
    mb_per_sec: f64,
    syncs_per_chunk: f64,
    cpu_per_gb: f64,
}

fn run(dir: &Path, append: bool, chunk: usize, total: usize, group: usize) -> Figures {
    let out = tempfile::tempdir_in(dir).unwrap();
    let template = Template::parse(
        &format!("{}/archive\u{0}.log", out.path().display()),
        IndexStyle::Underscore,
        ferry::time::Zone::UTC,
    )
    .unwrap();
    let rendered = template.render(&Default::default(), "bench");
    let writer = FileWriter::new(WriterConfig {
        append,
        gzip: None,
        max_file_size: None,
        symlink_path: None,
        line_based: true,
    });
    let line = format!("{{\"seq\":1,\"pad\":\"{}\"}}\n", "x".repeat(178));
    let chunks = (total / chunk).max(1);
    let ids: Vec<String> = (0..chunks).map(|i| format!("{i:016x}")).collect();
    let notes = ChunkNotes::none();
    let cpu = procstat::cpu_seconds(std::process::id()).unwrap();
    let started = Instant::now();
    for ids in ids.chunks(group) {
        let mut sources: Vec<Box<NextPiece<'_>>> = ids
            .iter()
            .map(|_| Box::new(chunk_source(chunk, line.as_bytes())) as Box<NextPiece<'_>>)
            .collect();
        let items = ids
            .iter()
            .zip(sources.iter_mut())
            .map(|(id, next)| GroupItem {
                rendered: &rendered,
                chunk_id: id,
                next: next.as_mut(),
                notes: &notes,
            })
            .collect();
        for written in writer.write_group(items) {
            written.unwrap();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = procstat::cpu_seconds(std::process::id()).unwrap() - cpu;
    let bytes = (chunks * chunk) as f64;
    Figures {
        chunks_per_sec: chunks as f64 / secs,
        mb_per_sec: bytes / secs / 1e6,
        syncs_per_chunk: writer.syncs() as f64 / chunks as f64,
        cpu_per_gb: cpu / (bytes / 1e9),
    }
}

fn main() {
    let runs = env_or("FERRY_BENCH_RUNS", 5) as usize;
    let total = env_or("FERRY_BENCH_MB", 256) as usize * 1_000_000;
    let small = env_or("FERRY_BENCH_SMALL_KB", 64) as usize * 1024;
    let dir = std::env::var_os("FERRY_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    println!("load average at start: {}", load_average());
    println!(
        "| chunks | archive | written | chunks/s | MB/s | syncs per chunk | CPU s/GB | group ÷ one at a time |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for (label, chunk) in [("small", small), ("8 MiB", 8 << 20)] {
        for (archive, append) in [
            ("one file, append true", true),
            ("a file each, append false", false),
        ] {
            let mut one = Vec::new();
            let mut grouped = Vec::new();
            // Paired runs, alternating, so both see the same machine.
            for _ in 0..runs {
                one.push(run(&dir, append, chunk, total, 1));
                grouped.push(run(&dir, append, chunk, total, GROUP));
            }
            let base = median(one.iter().map(|f| f.chunks_per_sec).collect());
            for (how, figures) in [("one at a time", &one), ("groups of 16", &grouped)] {
                let m = |f: fn(&Figures) -> f64| median(figures.iter().map(f).collect());
                let rate = m(|f| f.chunks_per_sec);
                println!(
                    "| {label} | {archive} | {how} | {rate:.0} | {:.1} | {:.2} | {:.2} | {:.2}× |",
                    m(|f| f.mb_per_sec),
                    m(|f| f.syncs_per_chunk),
                    m(|f| f.cpu_per_gb),
                    rate / base
                );
            }
        }
    }
    println!("load average at the end: {}", load_average());
}
