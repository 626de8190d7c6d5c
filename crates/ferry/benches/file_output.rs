//! Forward input → file output throughput, against the disk's own sequential write speed.
//!
//! One run measures, on the same filesystem:
//! 1. the disk, right before and right after each run, writing half the input size (256 MiB to
//!    1 GiB) sequentially in 16 MiB writes: with `O_DIRECT` (the device's own speed; ferry
//!    writes new archive files the same way) and through the page cache with one `fdatasync`
//!    at the end (what `dd conv=fdatasync` reports);
//! 2. a ferry process (forward input, file output with a file buffer; `compress text` with the
//!    buffer's `durability fsync` (the default), with `os_cache`, and with `fsync` and the
//!    buffer's own `compress gzip`; then the archive with `compress gzip`) fed by
//!    `CONNECTIONS` Rust clients sending PackedForward requests with acks. The
//!    clock stops when every request is acknowledged and the buffer holds no chunk (every
//!    event is in the archive files).
//!
//! Printed per run: input MB/s (msgpack bytes acknowledged), archive MB/s (bytes of the files
//! written), buffer + archive MB/s (bytes handed to the filesystem), ferry's CPU seconds per GB
//! of input, and the archive rate as a share of the disk's direct write speed (the mean of the
//! probes before and after). Then every archive line is counted, so a fast run that lost
//! events cannot pass.
//!
//! `FERRY_BENCH_MB` sets the input size (default 1024), `FERRY_BENCH_DIR` the directory.
//!
//! `FERRY_BENCH_DISK_MBPS=N` makes the disk the limit: the bench moves itself (and so the
//! probes and ferry) into a block-I/O cgroup that lets N MB/s of writes reach the device of
//! the directory (cgroup v1 `blkio.throttle.write_bps_device` or v2 `io.max`; needs root).
//! Every byte that reaches the device pays: direct writes, and page-cache writes when an
//! `fdatasync` sends them; buffer chunks deleted before the kernel writes them back never
//! reach the device, as on any disk. Without it, on a machine whose disk takes writes
//! faster than its cores can format them, the run measures CPU, not the disk.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failure is a failed run

use bytes::BytesMut;
use ferry_bench::throttle::Throttle;
use ferry_bench::{limits, procstat};
use ferry_proto::encode::{encode_packed_forward, write_entry};
use ferry_proto::msgpack::Value;
use ferry_proto::options::{ChunkId, Compression};
use ferry_proto::time::EventTime;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 4;
const RECORDS_PER_REQUEST: u64 = 2000;
const MIB: u64 = 1024 * 1024;

fn main() {
    let mb: u64 = std::env::var("FERRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let base = std::env::var_os("FERRY_BENCH_DIR").map(PathBuf::from);
    let dir = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let throttle = std::env::var("FERRY_BENCH_DISK_MBPS")
        .ok()
        .map(|v| v.parse::<u64>().expect("FERRY_BENCH_DISK_MBPS: MB/s"))
        .map(|mbps| Throttle::start(dir.path(), mbps * 1_000_000).unwrap());
    let disk_bytes = (mb * MIB / 2).clamp(256 * MIB, 1024 * MIB);
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if let Some(t) = &throttle {
        println!("{}", t.describe());
    }
    for (gzip, durability, buffer_gzip) in [
        (false, "fsync", false),
        (false, "os_cache", false),
        (false, "fsync", true),
        (true, "fsync", false),
    ] {
        // The disk is measured right before and right after each run, on the same
        // filesystem, so the comparison holds even when other work shares the machine.
        let before = Disk::measure(dir.path(), disk_bytes);
        let input = if gzip { mb / 4 } else { mb } * MIB;
        let r = run(dir.path(), gzip, durability, buffer_gzip, input);
        let after = Disk::measure(dir.path(), disk_bytes);
        let disk = (before.direct + after.direct) / 2.0;
        let cached = (before.cached + after.cached) / 2.0;
        let secs = r.elapsed.as_secs_f64();
        println!(
            "archive {:4}, buffer {durability:8}{:5}: input {:.0} MB/s, archive {:.0} MB/s \
             = {:.0}% of the disk's {:.0} MB/s direct (before {:.0}, after {:.0}; through the \
             page cache {:.0}); buffer + archive writes {:.0} MB/s; {:.2} CPU s/GB input; {} \
             events in {:.1} s, {} files",
            if gzip { "gzip" } else { "text" },
            if buffer_gzip { "+gzip" } else { "" },
            r.input_bytes as f64 / secs / 1e6,
            r.archive_bytes as f64 / secs / 1e6,
            100.0 * r.archive_bytes as f64 / 1e6 / secs / disk,
            disk,
            before.direct,
            after.direct,
            cached,
            (r.input_bytes + r.archive_bytes) as f64 / secs / 1e6,
            r.cpu_secs / (r.input_bytes as f64 / 1e9),
            r.events,
            secs,
            r.files
        );
    }
    drop(throttle);
}

/// Sequential write speeds of the disk, in MB/s.
struct Disk {
    /// `O_DIRECT`, 16 MiB writes, one `fdatasync`: what the device takes.
    direct: f64,
    /// The same through the page cache.
    cached: f64,
}

impl Disk {
    fn measure(dir: &Path, bytes: u64) -> Self {
        Self {
            direct: limits::disk_mb_s(dir, bytes, true).unwrap(),
            cached: limits::disk_mb_s(dir, bytes, false).unwrap(),
        }
    }
}

struct RunResult {
    elapsed: Duration,
    input_bytes: u64,
    archive_bytes: u64,
    cpu_secs: f64,
    events: u64,
    files: usize,
}

fn free_port() -> u16 {
    ferry_bench::ferryproc::free_port().unwrap()
}

fn run(
    dir: &Path,
    gzip: bool,
    durability: &str,
    buffer_gzip: bool,
    input_target: u64,
) -> RunResult {
    let name = format!(
        "{}-{durability}{}",
        if gzip { "gzip" } else { "text" },
        if buffer_gzip { "-gzip" } else { "" }
    );
    let out = dir.join(format!("out-{name}"));
    let buf = dir.join(format!("buf-{name}"));
    let port = free_port();
    let conf = format!(
        "<source>\n@type forward\nbind 127.0.0.1\nport {port}\n</source>\n\
         <match **>\n@type file\npath {out}/bench\ncompress {compress}\n\
         <buffer time>\n@type file\npath {buf}\ndurability {durability}\ncompress {buffer_compress}\ntimekey 1h\n\
         flush_mode interval\nflush_interval 1s\n\
         chunk_limit_size 16m\nflush_thread_count 2\ntotal_limit_size 4g\noverflow_action block\n\
         </buffer>\n</match>\n",
        out = out.display(),
        buf = buf.display(),
        compress = if gzip { "gzip" } else { "text" },
        buffer_compress = if buffer_gzip { "gzip" } else { "text" },
    );
    let conf_path = dir.join(format!("ferry-{name}.conf"));
    std::fs::write(&conf_path, conf).unwrap();
    let mut ferry = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = ferry.stderr.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("[error]") || line.contains("[warn]") {
                eprintln!("ferry: {line}");
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ferry_bench::ferryproc::listening(port) {
        assert!(Instant::now() < deadline, "ferry did not start");
        thread::sleep(Duration::from_millis(20));
    }

    let (entries, entry_bytes) = sample_entries();
    let requests = (input_target / entry_bytes).max(CONNECTIONS as u64);
    let per_conn = requests / CONNECTIONS as u64;
    let cpu_before = procstat::cpu_seconds(ferry.id()).unwrap();
    let started = Instant::now();
    let acked = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let entries = entries.clone();
            let acked = Arc::clone(&acked);
            thread::spawn(move || send(port, c, per_conn, &entries, &acked))
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let requests = acked.load(Ordering::Relaxed);
    // Drained: no chunk left in the buffer directory.
    while std::fs::read_dir(&buf)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".payload"))
    {
        thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let cpu_secs = procstat::cpu_seconds(ferry.id()).unwrap() - cpu_before;
    stop(&mut ferry);

    let files = archive_files(&out);
    let archive_bytes = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    let events = requests * RECORDS_PER_REQUEST;
    let lines = count_lines(&files);
    assert_eq!(lines, events, "every acknowledged event is in the archive");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&buf).unwrap();
    RunResult {
        elapsed,
        input_bytes: requests * entry_bytes,
        archive_bytes,
        cpu_secs,
        events,
        files: files.len(),
    }
}

/// One request's entry stream: web-access-like records of about 200 bytes.
fn sample_entries() -> (bytes::Bytes, u64) {
    let mut entries = BytesMut::new();
    let now = EventTime::now();
    for i in 0..RECORDS_PER_REQUEST {
        let s = |v: &str| Value::Str(bytes::Bytes::copy_from_slice(v.as_bytes()));
        let record = Value::Map(vec![
            (s("host"), s("web-01.example.internal")),
            (s("method"), s("GET")),
            (s("path"), s(&format!("/api/v1/items/{}", 100_000 + i))),
            (s("status"), Value::UInt(200 + (i % 3) * 100)),
            (s("bytes"), Value::UInt(1000 + i * 7)),
            (
                s("agent"),
                s("Mozilla/5.0 (X11; Linux x86_64) ferry-bench/1.0"),
            ),
            (
                s("message"),
                s("request served from the primary pool in 12 ms"),
            ),
        ]);
        write_entry(&mut entries, now, false, &record.to_bytes());
    }
    let len = entries.len() as u64;
    (entries.freeze(), len)
}

fn send(port: u16, conn: usize, requests: u64, entries: &bytes::Bytes, acked: &AtomicU64) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut req = BytesMut::new();
    for n in 0..requests {
        req.clear();
        let chunk = ChunkId::str(format!("bench-{conn}-{n}"));
        encode_packed_forward(
            &mut req,
            "bench.access",
            entries,
            RECORDS_PER_REQUEST,
            Some(&chunk),
            Compression::Text,
        );
        stream.write_all(&req).unwrap();
        let expected = ferry_proto::ack::encode_ack(&chunk);
        let mut got = vec![0u8; expected.len()];
        stream.read_exact(&mut got).unwrap();
        assert_eq!(got, expected[..], "ack");
        acked.fetch_add(1, Ordering::Relaxed);
    }
}

fn stop(ferry: &mut Child) {
    let _ = Command::new("kill").arg(ferry.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ferry.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = ferry.kill();
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn archive_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

fn count_lines(files: &[PathBuf]) -> u64 {
    let mut lines = 0;
    let mut block = vec![0u8; 4 * MIB as usize];
    for f in files {
        let file = std::fs::File::open(f).unwrap();
        let mut reader: Box<dyn Read> = if f.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        loop {
            let n = reader.read(&mut block).unwrap();
            if n == 0 {
                break;
            }
            lines += block[..n].iter().filter(|b| **b == b'\n').count() as u64;
        }
    }
    lines
}
