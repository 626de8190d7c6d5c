//! File buffer throughput next to the disk's own, and backlog replay speed and memory.
//!
//! Run: `cargo bench -p ferry-buffer`. Data goes under `/work/tmp-bench` (same disk as the
//! buffer would use; override with BUFFER_BENCH_DIR) and is removed afterwards.
//! * BUFFER_BENCH_APPEND_MB: volume of each append run (default 512).
//! * BUFFER_BENCH_ROUNDS: alternating baseline/buffer rounds, medians reported (default 3).
//! * BUFFER_BENCH_BACKLOG_MB: replay backlog (default 1024; 4096 with BUFFER_BENCH_BIG=1).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ferry_buffer::{Buffer, BufferConfig, ChunkKey, Durability};

const APPEND: usize = 200 * 1024;
const MB: f64 = 1024.0 * 1024.0;

fn env_mb(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn payload() -> Vec<u8> {
    // Bytes that look like a PackedForward stream are irrelevant to the buffer; vary them so
    // nothing below can shortcut on zeros.
    (0..APPEND).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MB / d.as_secs_f64()
}

/// `dd conv=fdatasync`: sequential 200 KB writes, one fdatasync at the end.
fn disk_baseline(dir: &Path, bytes: u64) -> f64 {
    let path = dir.join("baseline.bin");
    let data = payload();
    let start = Instant::now();
    let mut f = File::create(&path).expect("create baseline file");
    let mut written = 0u64;
    while written < bytes {
        f.write_all(&data).expect("write");
        written += data.len() as u64;
    }
    f.sync_data().expect("fdatasync");
    let speed = mbps(written, start.elapsed());
    drop(f);
    std::fs::remove_file(&path).expect("remove baseline");
    speed
}

fn file_config(dir: &Path, durability: Durability) -> BufferConfig {
    let mut c = BufferConfig::file(dir);
    c.durability = durability;
    c.total_limit_size = 1 << 40;
    c
}

/// Appends `bytes` from `threads` threads to one chunk key; returns MB/s.
fn buffer_append(dir: &Path, durability: Durability, threads: usize, bytes: u64) -> f64 {
    let (buffer, _) = Buffer::open(file_config(dir, durability), "bench").expect("open");
    let buffer = Arc::new(buffer);
    let per_thread = bytes / threads as u64 / APPEND as u64;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let buffer = buffer.clone();
            std::thread::spawn(move || {
                let data = payload();
                let key = ChunkKey::tag("bench.append");
                for _ in 0..per_thread {
                    buffer.append(&key, &data, 100).expect("append");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("appender thread");
    }
    let elapsed = start.elapsed();
    let total = per_thread * threads as u64 * APPEND as u64;
    drop(buffer);
    clear_dir(dir);
    mbps(total, elapsed)
}

fn clear_dir(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("list").flatten() {
        let p = e.path();
        if p.is_dir() {
            let _ = std::fs::remove_dir_all(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Evicts the files' pages from the page cache so replay reads come from the disk.
fn evict(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("list").flatten() {
        if let Ok(f) = OpenOptions::new().read(true).open(e.path()) {
            let _ = f.sync_all();
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
        }
    }
}

fn status_kb(field: &str) -> Option<u64> {
    let mut s = String::new();
    File::open("/proc/self/status")
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reset_peak_rss() {
    // Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS.
    if let Ok(mut f) = OpenOptions::new().write(true).open("/proc/self/clear_refs") {
        let _ = f.write_all(b"5");
    }
}

fn replay(dir: &Path, bytes: u64) {
    {
        let (buffer, _) =
            Buffer::open(file_config(dir, Durability::OsCache), "bench").expect("open");
        let data = payload();
        let mut written = 0u64;
        let mut i = 0u64;
        while written < bytes {
            let key = ChunkKey::tag(format!("bench.replay.{}", i % 4));
            buffer.append(&key, &data, 100).expect("append");
            written += data.len() as u64;
            i += 1;
        }
        buffer.flush_all();
    }
    evict(dir);
    reset_peak_rss();
    let start = Instant::now();
    let (buffer, report) =
        Buffer::open(file_config(dir, Durability::OsCache), "bench").expect("reopen");
    let opened = start.elapsed();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let far = SystemTime::now() + Duration::from_secs(86_400);
    while let Some(chunk) = buffer.take(far) {
        let mut r = chunk.reader().expect("reader");
        loop {
            let n = r.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        buffer.ack(chunk).expect("ack");
    }
    let elapsed = start.elapsed();
    println!(
        "replay: {} chunks, {:.0} MB in {:.2} s (open/recovery {:.3} s): {:.0} MB/s",
        report.recovered.len(),
        total as f64 / MB,
        elapsed.as_secs_f64(),
        opened.as_secs_f64(),
        mbps(total, elapsed)
    );
    match (status_kb("VmHWM:"), status_kb("VmRSS:")) {
        (Some(hwm), Some(rss)) => println!(
            "replay: peak RSS (VmHWM) {:.1} MB, RSS now {:.1} MB (target: under 64 MB)",
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0
        ),
        _ => println!("replay: /proc/self/status unavailable"),
    }
    clear_dir(dir);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_root() -> PathBuf {
    std::env::var_os("BUFFER_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/tmp-bench"))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let root = bench_root();
    std::fs::create_dir_all(&root).expect("bench root");
    let tmp = tempfile::Builder::new()
        .prefix("ferry-buffer-bench")
        .tempdir_in(&root)
        .expect("bench dir");
    let dir = tmp.path();
    let append_bytes = env_mb("BUFFER_BENCH_APPEND_MB", 512) << 20;
    let big = std::env::var("BUFFER_BENCH_BIG").is_ok_and(|v| v == "1");
    let backlog = env_mb("BUFFER_BENCH_BACKLOG_MB", if big { 4096 } else { 1024 }) << 20;
    println!(
        "bench dir {} ({} MB per run, 200 KB appends)",
        dir.display(),
        append_bytes >> 20
    );

    // The disk is shared and its speed drifts: alternate baseline and buffer runs and
    // compare medians.
    let rounds = env_mb("BUFFER_BENCH_ROUNDS", 3).max(1);
    let (mut disk, mut fsync4, mut fsync1, mut cache4) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        disk.push(disk_baseline(dir, append_bytes));
        fsync4.push(buffer_append(dir, Durability::Fsync, 4, append_bytes));
        fsync1.push(buffer_append(dir, Durability::Fsync, 1, append_bytes));
        cache4.push(buffer_append(dir, Durability::OsCache, 4, append_bytes));
    }
    let disk = median(&mut disk);
    println!(
        "disk: sequential write + fdatasync (dd conv=fdatasync): {disk:.0} MB/s (median of {rounds})"
    );
    for (name, runs) in [
        ("Durability::Fsync, 4 threads (group commit)", &mut fsync4),
        ("Durability::Fsync, 1 thread", &mut fsync1),
        (
            "Durability::OsCache, 4 threads (page cache, no sync)",
            &mut cache4,
        ),
    ] {
        let all: Vec<String> = runs.iter().map(|v| format!("{v:.0}")).collect();
        let m = median(runs);
        println!(
            "buffer: {name}: {m:.0} MB/s = {:.0} % of disk (runs: {})",
            100.0 * m / disk,
            all.join(", ")
        );
    }
    replay(dir, backlog);
    drop(tmp);
    let _ = std::fs::remove_dir(&root);
}
