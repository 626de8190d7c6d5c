//! Forward output throughput, end to end between two ferry processes over loopback:
//!
//! ```text
//! load generator ──acked PackedForward──► forwarder ferry ──forward output, acks──► aggregator ferry
//!   (threads in this process)            forward input → file buffer          forward input → file buffer → null
//! ```
//!
//! Both buffers are file buffers with the default durability (fsync before acknowledging), so
//! every byte is written to disk twice. The run ends when the forwarder's buffer is empty: every
//! event is then acknowledged by the aggregator, i.e. on its disk. Printed: events/s, MB/s of
//! entry bytes, CPU seconds per GB on each side, and the disk's sequential write speed measured
//! in the same run (write + fdatasync) for comparison.
//!
//! `FERRY_BENCH_MB` sets the amount of data (default 1024), `FERRY_BENCH_CONNS` the load
//! generator's connections (default 8), `FERRY_BENCH_EVENTS` the events per request (default
//! 4000, about 1 MB), `FERRY_BENCH_DIR` where the buffers and the disk probe go (default: a
//! temporary directory), `FERRY_BENCH_DURABILITY` the buffers' durability (`fsync`, the default,
//! or `os_cache`, to see what the disk costs). The disk is probed before and after the run: on a shared machine its
//! speed varies, and both figures are printed.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark program: failures abort it

use ferry_bench::report::env_or;
use ferry_bench::{limits, procstat};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EVENT_PAD: usize = 200;

fn free_port() -> u16 {
    ferry_bench::ferryproc::free_port().unwrap()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &str, dir: &Path, name: &str, port: u16) -> Proc {
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ferry_bench::ferryproc::listening(port) {
        assert!(Instant::now() < deadline, "{name} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

fn entries(events: u64) -> Vec<u8> {
    use ferry_proto::msgpack::Value;
    let mut out = bytes::BytesMut::new();
    let pad = "x".repeat(EVENT_PAD);
    for seq in 0..events {
        let record = Value::Map(vec![
            (Value::Str("seq".into()), Value::UInt(seq)),
            (Value::Str("host".into()), Value::Str("web-01".into())),
            (Value::Str("msg".into()), Value::Str(pad.clone().into())),
        ]);
        let time = ferry_proto::time::EventTime::new(1_700_000_000 + seq as u32, 0);
        ferry_proto::encode::write_entry(&mut out, time, false, &record.to_bytes());
    }
    out.to_vec()
}

/// Sends `requests` acked requests of `payload` on one connection.
fn generate(port: u16, conn: u64, requests: u64, events: u64, payload: &[u8]) {
    use ferry_proto::options::{ChunkId, Compression};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let tag = format!("bench.{conn}");
    let header = ferry_proto::encode::packed_forward_header(&tag, payload.len());
    let mut ack = [0u8; 64];
    for r in 0..requests {
        let id = ChunkId::str(format!("{conn:04}-{r:020}").into_bytes());
        let trailer =
            ferry_proto::encode::packed_forward_trailer(events, Some(&id), Compression::Text);
        stream.write_all(&header).unwrap();
        stream.write_all(payload).unwrap();
        stream.write_all(&trailer).unwrap();
        let expected = ferry_proto::ack::encode_ack(&id);
        stream.read_exact(&mut ack[..expected.len()]).unwrap();
        assert_eq!(&ack[..expected.len()], &expected[..], "ack");
    }
}

fn payload_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".payload"))
                .count()
        })
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("forward_output: bench");
        return;
    }
    // `cargo bench` passes --bench; under `cargo test --benches` there is nothing to measure.
    if !std::env::args().any(|a| a == "--bench") {
        println!("forward_output: run with `cargo bench -p ferry --bench forward_output`");
        return;
    }
    let mb = env_or("FERRY_BENCH_MB", 1024);
    let connections = env_or("FERRY_BENCH_CONNS", 8);
    let per_request = env_or("FERRY_BENCH_EVENTS", 4000);
    let durability = std::env::var("FERRY_BENCH_DURABILITY").unwrap_or_else(|_| "fsync".into());
    let tmp = tempfile::tempdir().unwrap();
    let root = std::env::var_os("FERRY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&root).unwrap();
    let disk = limits::disk_mb_s(&root, 1024 << 20, false).unwrap();

    let (agg_port, fwd_port) = (free_port(), free_port());
    let agg_buf = root.join("aggregator-buffer");
    let fwd_buf = root.join("forwarder-buffer");
    let aggregator = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {agg_port}\n</source>\n\
         <match **>\n  @type null\n  <buffer tag>\n    @type file\n    path {}\n    durability {durability}\n    chunk_limit_size 64m\n    flush_interval 1s\n  </buffer>\n</match>\n",
        agg_buf.display()
    );
    let forwarder = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {fwd_port}\n</source>\n\
         <match **>\n  @type forward\n  require_ack_response true\n  keepalive true\n\
         <server>\n    host 127.0.0.1\n    port {agg_port}\n  </server>\n\
         <buffer tag>\n    @type file\n    path {}\n    durability {durability}\n    chunk_limit_size 8m\n    flush_mode interval\n    flush_interval 100ms\n    flush_thread_count 4\n  </buffer>\n</match>\n",
        fwd_buf.display()
    );
    let agg = start(&aggregator, &root, "aggregator", agg_port);
    let fwd = start(&forwarder, &root, "forwarder", fwd_port);

    let payload = entries(per_request);
    let requests_total = (mb * 1_000_000).div_ceil(payload.len() as u64);
    let per_conn = requests_total.div_ceil(connections);
    let bytes = per_conn * connections * payload.len() as u64;
    let events = per_conn * connections * per_request;
    let (cpu_agg0, cpu_fwd0) = (
        procstat::cpu_seconds(agg.0.id()).unwrap(),
        procstat::cpu_seconds(fwd.0.id()).unwrap(),
    );
    let started = Instant::now();
    std::thread::scope(|s| {
        for c in 0..connections {
            let payload = &payload;
            s.spawn(move || generate(fwd_port, c, per_conn, per_request, payload));
        }
    });
    let ingested = started.elapsed().as_secs_f64();
    while payload_files(&fwd_buf) > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu_agg, cpu_fwd) = (
        procstat::cpu_seconds(agg.0.id()).unwrap() - cpu_agg0,
        procstat::cpu_seconds(fwd.0.id()).unwrap() - cpu_fwd0,
    );
    drop(fwd);
    drop(agg);
    let disk_after = limits::disk_mb_s(&root, 1024 << 20, false).unwrap();
    let disk_mean = (disk + disk_after) / 2.0;
    let gb = bytes as f64 / 1e9;
    let mbps = bytes as f64 / 1e6 / secs;
    println!(
        "forward_output: {} MB ({events} events of {} B, {connections} connections, {per_request} events per request) through forwarder -> aggregator, acks and file buffers ({durability}) at both ends",
        bytes / 1_000_000,
        payload.len() as u64 / per_request
    );
    println!(
        "  end to end        {secs:8.2} s   {:10.0} events/s   {mbps:8.1} MB/s",
        events as f64 / secs
    );
    println!("  ingest only       {ingested:8.2} s   (into the forwarder's buffer)");
    println!(
        "  forwarder CPU     {cpu_fwd:8.2} s   {:6.2} CPU s/GB",
        cpu_fwd / gb
    );
    println!(
        "  aggregator CPU    {cpu_agg:8.2} s   {:6.2} CPU s/GB",
        cpu_agg / gb
    );
    println!(
        "  disk seq. write   {disk:8.1} MB/s before, {disk_after:.1} MB/s after (1 GiB + fdatasync, same filesystem)"
    );
    println!(
        "  each byte is written twice: {:.1} MB/s of disk writes = {:.0} % of the disk's mean speed",
        2.0 * mbps,
        200.0 * mbps / disk_mean
    );
}
