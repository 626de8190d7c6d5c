//! Scribe ingest beside forward ingest, in the same run: a real `ferry` process with a scribe
//! input (framed, `Log` calls of 1000 messages of about 200 bytes, each call waiting for its
//! `OK`) and with a forward input (PackedForward requests of 1000 entries of about 200 bytes,
//! each waiting for its ack), both into a memory buffer and the `null` output with default
//! settings. Two sender threads in this process.
//!
//! Prints per run and as medians: messages/s, MB/s of message (or record) bytes committed, the
//! ferry process's CPU seconds per GB (/proc/PID/stat), and scribe's ratio to forward.
//! Knobs: FERRY_BENCH_SECS (measured seconds, default 6), FERRY_BENCH_RUNS (3).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a failed unwrap is a failed run

use bytes::BytesMut;
use ferry_bench::procstat;
use ferry_bench::report::{env_or, median};
use ferry_proto::ack::parse_ack;
use ferry_proto::encode::packed_forward_header;
use ferry_proto::frame::FrameDecoder;
use ferry_proto::thrift::{self, Answer, Decoder, Transport};
use ferry_proto::{ChunkId, Options};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "../../ferry-proto/benches/support/access_log.rs"]
mod access_log;

const SENDERS: u64 = 2;
const PER_CALL: u64 = 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    Scribe,
    Forward,
}

impl Input {
    fn name(self) -> &'static str {
        match self {
            Self::Scribe => "scribe Log",
            Self::Forward => "forward (acks)",
        }
    }
}

struct Ferry {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(input: Input, port: u16) -> Ferry {
    let dir = tempfile::tempdir().unwrap();
    let kind = match input {
        Input::Scribe => "scribe",
        Input::Forward => "forward",
    };
    let conf = format!(
        "<source>\n  @type {kind}\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type null\n  <buffer>\n    @type memory\n  </buffer>\n</match>\n"
    );
    let path = dir.path().join("ferry.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("-c")
        .arg(&path)
        .arg("--log-level")
        .arg("warn")
        .env("FERRY_ROOT_DIR", dir.path().join("root"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ferry");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ferry_bench::ferryproc::listening(port) {
        assert!(Instant::now() < deadline, "ferry did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ferry { child, _dir: dir }
}

/// A message of about 200 bytes.
fn message(i: u64) -> String {
    format!(
        "10.1.{}.{} - - [07/Dec/2026:10:00:{:02} +0000] \"GET /api/v1/items/{i} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
        i % 256,
        (i / 256) % 256,
        i % 60,
        512 + i % 4096
    )
}

/// Sends Log calls, each after the last was answered OK; counts the message bytes committed.
fn scribe_sender(port: u16, stop: Arc<AtomicBool>, bytes: Arc<AtomicU64>, records: Arc<AtomicU64>) {
    let messages: Vec<String> = (0..PER_CALL).map(message).collect();
    let size: u64 = messages.iter().map(|m| m.len() as u64).sum();
    let mut call = BytesMut::new();
    thrift::log_call(
        &mut call,
        1,
        messages.iter().map(|m| (&b"bench"[..], m.as_bytes())),
        Transport::Framed,
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut decoder = Decoder::new(Transport::Framed, 1 << 20);
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        if s.write_all(&call).is_err() {
            return;
        }
        let reply = loop {
            if let Some(m) = decoder.decode(&mut buf).unwrap() {
                break m;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        if thrift::answer(&reply).unwrap() == Answer::I32(0) {
            bytes.fetch_add(size, Ordering::Relaxed);
            records.fetch_add(PER_CALL, Ordering::Relaxed);
        }
    }
}

/// Sends PackedForward requests, each after the last was acked; counts the record bytes.
fn forward_sender(
    port: u16,
    conn: u64,
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    records: Arc<AtomicU64>,
) {
    let entries = access_log::entries(PER_CALL);
    let size = entries.len() as u64;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut decoder = FrameDecoder::new(1024);
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("c{conn}-{n}");
        n += 1;
        let mut req = BytesMut::new();
        req.extend_from_slice(&packed_forward_header("bench", entries.len()));
        req.extend_from_slice(&entries);
        Options {
            size: Some(PER_CALL),
            chunk: Some(ChunkId::str(id.as_bytes().to_vec())),
            ..Options::default()
        }
        .encode(&mut req);
        if s.write_all(&req).is_err() {
            return;
        }
        let ack = loop {
            if let Some(f) = decoder.decode(&mut buf).unwrap() {
                break f;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        assert_eq!(parse_ack(&ack).unwrap().bytes, id.as_bytes());
        bytes.fetch_add(size, Ordering::Relaxed);
        records.fetch_add(PER_CALL, Ordering::Relaxed);
    }
}

struct Result {
    records_per_s: f64,
    mb_per_s: f64,
    cpu_s_per_gb: f64,
}

fn run(input: Input, secs: u64) -> Result {
    let port = ferry_bench::ferryproc::free_port().unwrap();
    let ferry = start(input, port);
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let records = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            let (stop, bytes, records) =
                (Arc::clone(&stop), Arc::clone(&bytes), Arc::clone(&records));
            std::thread::spawn(move || match input {
                Input::Scribe => scribe_sender(port, stop, bytes, records),
                Input::Forward => forward_sender(port, i, stop, bytes, records),
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let pid = ferry.child.id();
    let (t0, b0, r0, c0) = (
        Instant::now(),
        bytes.load(Ordering::Relaxed),
        records.load(Ordering::Relaxed),
        procstat::cpu_seconds(pid).unwrap(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let (t1, b1, r1, c1) = (
        Instant::now(),
        bytes.load(Ordering::Relaxed),
        records.load(Ordering::Relaxed),
        procstat::cpu_seconds(pid).unwrap(),
    );
    stop.store(true, Ordering::Relaxed);
    drop(ferry);
    for s in senders {
        let _ = s.join();
    }
    let elapsed = (t1 - t0).as_secs_f64();
    let gb = (b1 - b0) as f64 / 1e9;
    Result {
        records_per_s: (r1 - r0) as f64 / elapsed,
        mb_per_s: (b1 - b0) as f64 / 1e6 / elapsed,
        cpu_s_per_gb: if gb > 0.0 { (c1 - c0) / gb } else { f64::NAN },
    }
}

fn main() {
    let secs = env_or("FERRY_BENCH_SECS", 6);
    let runs = env_or("FERRY_BENCH_RUNS", 3);
    println!(
        "scribe and forward ingest: {SENDERS} senders, calls of {PER_CALL} messages of about 200 B, {secs} s measured per run, {runs} runs, into a memory buffer and null, default settings; load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut all: Vec<(Input, Vec<Result>)> =
        vec![(Input::Scribe, vec![]), (Input::Forward, vec![])];
    for run_no in 0..runs {
        for (input, rs) in &mut all {
            let r = run(*input, secs);
            println!(
                "  run {}  {:<15} {:>10.0} messages/s {:>8.1} MB/s {:>7.2} CPU s/GB",
                run_no + 1,
                input.name(),
                r.records_per_s,
                r.mb_per_s,
                r.cpu_s_per_gb
            );
            rs.push(r);
        }
    }
    let medians: Vec<(f64, f64)> = all
        .iter()
        .map(|(input, rs)| {
            let mb = median(rs.iter().map(|r| r.mb_per_s).collect());
            let cpu = median(rs.iter().map(|r| r.cpu_s_per_gb).collect());
            println!(
                "median  {:<15} {mb:>8.1} MB/s {cpu:>7.2} CPU s/GB",
                input.name()
            );
            (mb, cpu)
        })
        .collect();
    if let [(smb, scpu), (fmb, fcpu)] = medians[..] {
        println!(
            "scribe / forward: {:.2}x MB/s, {:.2}x CPU per GB (target: the same order as forward)",
            smb / fmb,
            scpu / fcpu
        );
    }
}
