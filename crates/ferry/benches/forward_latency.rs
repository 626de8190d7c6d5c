//! The forward output across a link with a round-trip time, with the settings an operator
//! leaves untouched: one flush thread, `<buffer tag>` (one chunk per tag), `flush_interval 1s`,
//! acks. The chunks of many quiet tags (a node's containers) are small; what bounds them is how
//! many wait for their acks at once, not the bandwidth.
//!
//! ```text
//! load generator ──acked requests, many tags──► ferry forwarder ──► delay proxy (RTT) ──► counting receiver
//! ```
//!
//! The generator sends at a fixed rate for a fixed time, over `FERRY_BENCH_TAGS` tags
//! (default 200). Printed per run: the rate the receiver took events at, and the lag: how long
//! after the generator's last event the receiver had every event (about `flush_interval` when
//! the forwarder keeps up; growing with the run when it does not).
//!
//! `FERRY_BENCH_RTT_MS` (default `0,10,40`), `FERRY_BENCH_RATE` (events per second, default
//! 100000, about 23 MB/s), `FERRY_BENCH_SECS` (default 5), `FERRY_BENCH_RUNS` (default 3;
//! the median is printed), `FERRY_BENCH_BINS` (`name=path,...`: other ferry binaries to compare
//! in the same run, e.g. an older build).

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark program: failures abort it

use bytes::BytesMut;
use ferry_bench::ferryproc::{Ferry, Ready};
use ferry_bench::procstat;
use ferry_bench::receiver::{Receiver, ReceiverConfig};
use ferry_bench::record::RecordShape;
use ferry_bench::report::env_or;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EVENTS_PER_REQUEST: u64 = 50;
const RECORD_SIZE: usize = 230;
const SENDERS: u64 = 4;

/// Copies bytes from `from` to `to`, each `delay` after it was read.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        while let Ok((due, bytes)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// A TCP proxy to `target` that delays each direction by half of `rtt`.
fn delay_proxy(target: u16, rtt: Duration) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            if stopping.load(Ordering::Relaxed) {
                break;
            }
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let half = rtt / 2;
            pump(
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
                half,
            );
            pump(server, client, half);
        }
    });
    (port, stop)
}

/// Sends `requests` acked requests at `per_sec` requests per second, tag by tag in turn;
/// records are numbered on stream `stream`.
fn send(port: u16, stream: u32, first: u64, requests: u64, per_sec: f64, tags: u64) {
    use ferry_proto::options::{ChunkId, Compression};
    let shape = RecordShape::new(RECORD_SIZE);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_nodelay(true).unwrap();
    let started = Instant::now();
    let mut ack = [0u8; 64];
    for r in 0..requests {
        let due = started + Duration::from_secs_f64(r as f64 / per_sec);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut entries = BytesMut::new();
        let base = first + r * EVENTS_PER_REQUEST;
        for seq in base..base + EVENTS_PER_REQUEST {
            let mut record = BytesMut::new();
            shape.write_msgpack(&mut record, stream, seq);
            let time = ferry_proto::time::EventTime::new(1_700_000_000, 0);
            ferry_proto::encode::write_entry(&mut entries, time, false, &record);
        }
        let tag = format!("kube.app-{}", (base / EVENTS_PER_REQUEST) % tags);
        let id = ChunkId::str(format!("{stream}-{r:020}").into_bytes());
        let mut req = BytesMut::new();
        ferry_proto::encode::encode_packed_forward(
            &mut req,
            &tag,
            &entries,
            EVENTS_PER_REQUEST,
            Some(&id),
            Compression::Text,
        );
        conn.write_all(&req).unwrap();
        let expected = ferry_proto::ack::encode_ack(&id);
        conn.read_exact(&mut ack[..expected.len()]).unwrap();
    }
}

struct Run {
    rate_mb: f64,
    lag: f64,
    cpu_s_per_gb: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[allow(clippy::too_many_arguments)]
fn run(
    bin: &str,
    receiver: &Receiver,
    stream: u32,
    rtt: Duration,
    rate: u64,
    secs: u64,
    tags: u64,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, stop) = delay_proxy(receiver.port, rtt);
    let port = ferry_bench::ferryproc::free_port().unwrap();
    let config = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type forward\n  require_ack_response true\n\
         <server>\n    host 127.0.0.1\n    port {proxy}\n  </server>\n\
         <buffer tag>\n    @type memory\n    flush_mode interval\n    flush_interval 1s\n  </buffer>\n</match>\n"
    );
    let fwd = Ferry::start(
        Path::new(bin),
        dir.path(),
        "forwarder",
        &config,
        Ready::Port(port),
    )
    .unwrap();
    let cpu0 = procstat::cpu_seconds(fwd.id()).unwrap();
    let requests = rate * secs / EVENTS_PER_REQUEST;
    let per_sender = requests / SENDERS;
    let events = per_sender * SENDERS * EVENTS_PER_REQUEST;
    let per_sec = rate as f64 / EVENTS_PER_REQUEST as f64 / SENDERS as f64;
    let started = Instant::now();
    std::thread::scope(|s| {
        for k in 0..SENDERS {
            s.spawn(move || {
                let first = k * per_sender * EVENTS_PER_REQUEST;
                send(port, stream, first, per_sender, per_sec, tags);
            });
        }
    });
    let sent = Instant::now();
    let deadline = sent + Duration::from_secs(600);
    while receiver.state.distinct_of([stream]) < events {
        assert!(Instant::now() < deadline, "events missing after 10 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    let done = Instant::now();
    let cpu = procstat::cpu_seconds(fwd.id()).unwrap() - cpu0;
    drop(fwd);
    stop.store(true, Ordering::Relaxed);
    let _ = TcpStream::connect(("127.0.0.1", proxy));
    let mb = events as f64 * (RECORD_SIZE as f64 + 10.0) / 1e6;
    Run {
        rate_mb: mb / (done - started).as_secs_f64(),
        lag: (done - sent).as_secs_f64(),
        cpu_s_per_gb: cpu / (mb / 1000.0),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("forward_latency: bench");
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("forward_latency: run with `cargo bench -p ferry --bench forward_latency`");
        return;
    }
    let rtts: Vec<u64> = std::env::var("FERRY_BENCH_RTT_MS")
        .unwrap_or_else(|_| "0,10,40".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rate = env_or("FERRY_BENCH_RATE", 100_000);
    let secs = env_or("FERRY_BENCH_SECS", 5);
    let runs = env_or("FERRY_BENCH_RUNS", 3).max(1);
    let tags = env_or("FERRY_BENCH_TAGS", 200);
    let mut bins = vec![(
        "this build".to_string(),
        env!("CARGO_BIN_EXE_ferry").to_string(),
    )];
    if let Ok(more) = std::env::var("FERRY_BENCH_BINS") {
        for pair in more.split(',') {
            if let Some((name, path)) = pair.split_once('=') {
                bins.push((name.to_string(), path.to_string()));
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let receiver = rt
        .block_on(Receiver::start(ReceiverConfig {
            bind: "127.0.0.1:0".into(),
            shared_key: None,
            self_hostname: "receiver".into(),
        }))
        .unwrap();
    println!(
        "forward_latency: {rate} events/s of {RECORD_SIZE} B for {secs} s over {tags} tags; one flush thread, <buffer tag> memory, flush_interval 1s, acks; medians of {runs}; load average {}",
        ferry_bench::report::load_average()
    );
    println!(
        "{:>7}  {:<16} {:>10} {:>10} {:>12}",
        "RTT ms", "build", "MB/s", "lag s", "CPU s/GB"
    );
    let mut stream = 1u32;
    for rtt in rtts {
        for (name, bin) in &bins {
            let mut results = Vec::new();
            for _ in 0..runs {
                results.push(run(
                    bin,
                    &receiver,
                    stream,
                    Duration::from_millis(rtt),
                    rate,
                    secs,
                    tags,
                ));
                stream += 1;
            }
            println!(
                "{rtt:>7}  {name:<16} {:>10.1} {:>10.2} {:>12.2}",
                median(results.iter().map(|r| r.rate_mb).collect()),
                median(results.iter().map(|r| r.lag).collect()),
                median(results.iter().map(|r| r.cpu_s_per_gb).collect()),
            );
        }
    }
}
