//! Forward input throughput, end to end over loopback: a load generator in this process sends
//! PackedForward requests of 1000 entries of about 200 bytes, each with a `chunk` option, over
//! several connections with several requests in flight per connection, into a real `ferry`
//! process whose forward input validates every entry and acks every request after the output
//! committed it: `null`, then `null` behind a memory buffer.
//!
//! Prints events/s, MB/s of request bytes acked, the ferry process's CPU seconds per GB (from
//! /proc/PID/stat utime + stime) and its peak RSS (VmHWM), then the loopback limit of this
//! machine measured the same way (a plain TCP sender and receiver, two threads).
//!
//! Knobs: FERRY_BENCH_SECS (measured seconds, default 8), FERRY_BENCH_CONNS (4),
//! FERRY_BENCH_INFLIGHT (requests in flight per connection, 8), FERRY_BENCH_THREADS (load
//! generator threads, 2).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a failed unwrap is a failed run

use bytes::{Bytes, BytesMut};
use ferry_bench::procstat;
use ferry_bench::report::env_or;
use ferry_proto::ack::parse_ack;
use ferry_proto::encode::packed_forward_header;
use ferry_proto::frame::FrameDecoder;
use ferry_proto::{ChunkId, Options};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

#[path = "../../ferry-proto/benches/support/access_log.rs"]
mod access_log;

const ENTRIES: u64 = 1000;

/// The outputs measured: `null` (every request committed as soon as it is validated), and
/// `null` behind a memory buffer (committed when appended to the buffer's chunks).
const OUTPUTS: [(&str, &str); 2] = [
    ("null", ""),
    (
        "null with <buffer> @type memory",
        "  <buffer>\n    @type memory\n  </buffer>",
    ),
];

/// Header + payload of the request (shared by every request); the options differ per request.
fn request_prefix() -> Bytes {
    let entries = access_log::entries(ENTRIES);
    let mut out = BytesMut::new();
    out.extend_from_slice(&packed_forward_header("bench.forward", entries.len()));
    out.extend_from_slice(&entries);
    out.freeze()
}

fn options(chunk: &str) -> Bytes {
    let mut out = BytesMut::new();
    Options {
        size: Some(ENTRIES),
        chunk: Some(ChunkId::str(chunk.as_bytes().to_vec())),
        ..Options::default()
    }
    .encode(&mut out);
    out.freeze()
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

fn free_port() -> u16 {
    ferry_bench::ferryproc::free_port().unwrap()
}

fn start_ferry(port: u16, config: &str) -> Ferry {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ferry.conf");
    std::fs::write(&conf, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("-c")
        .arg(&conf)
        .arg("--log-level")
        .arg("warn")
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

/// A forward input on `port` with `source_extra` inside `<source>`, into `null` with
/// `output_extra` inside `<match>`.
fn config(port: u16, source_extra: &str, output_extra: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n{source_extra}\n</source>\n<match **>\n  @type null\n{output_extra}\n</match>\n"
    )
}

#[derive(Default)]
struct Counters {
    acked_requests: AtomicU64,
    acked_bytes: AtomicU64,
}

/// Writes `a` then `b` with vectored writes (no copy into one buffer).
async fn write_both(w: &mut tokio::net::tcp::OwnedWriteHalf, a: &[u8], b: &[u8]) {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() || !b.is_empty() {
        let bufs = [std::io::IoSlice::new(a), std::io::IoSlice::new(b)];
        let mut n = w.write_vectored(&bufs).await.unwrap();
        assert!(n > 0, "write returned 0");
        let from_a = n.min(a.len());
        a = &a[from_a..];
        n -= from_a;
        b = &b[n..];
    }
}

async fn connection(
    port: u16,
    conn: usize,
    prefix: Bytes,
    inflight: usize,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let window = Arc::new(Semaphore::new(inflight));
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<(String, u64)>();
    let w = Arc::clone(&window);
    let writer = tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            w.acquire().await.unwrap().forget();
            let chunk = format!("c{conn}-{n}");
            let opts = options(&chunk);
            write_both(&mut wr, &prefix, &opts).await;
            sent_tx
                .send((chunk, (prefix.len() + opts.len()) as u64))
                .unwrap();
            n += 1;
        }
        wr
    });
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut dec = FrameDecoder::new(1024);
    while let Some((chunk, size)) = sent_rx.recv().await {
        let ack = loop {
            if let Some(f) = dec.decode(&mut buf).unwrap() {
                break f;
            }
            let n = rd.read_buf(&mut buf).await.unwrap();
            assert!(n > 0, "ferry closed the connection");
        };
        assert_eq!(
            parse_ack(&ack).unwrap().bytes,
            chunk.as_bytes(),
            "acks in order"
        );
        counters.acked_requests.fetch_add(1, Ordering::Relaxed);
        counters.acked_bytes.fetch_add(size, Ordering::Relaxed);
        window.add_permits(1);
    }
    let _ = writer.await;
}

struct Sample {
    at: Instant,
    requests: u64,
    bytes: u64,
    cpu: u64,
}

fn sample(c: &Counters, pid: u32) -> Sample {
    Sample {
        at: Instant::now(),
        requests: c.acked_requests.load(Ordering::Relaxed),
        bytes: c.acked_bytes.load(Ordering::Relaxed),
        cpu: procstat::read(pid).unwrap().cpu_ticks,
    }
}

fn bench_ferry(
    secs: u64,
    conns: usize,
    inflight: usize,
    threads: usize,
    (name, output): (&str, &str),
) {
    let port = free_port();
    let ferry = start_ferry(port, &config(port, "", output));
    let pid = ferry.child.id();
    let prefix = request_prefix();
    let request_bytes = prefix.len() + options("c0-0").len();
    println!(
        "forward_input: {conns} connections x {inflight} requests in flight, {ENTRIES} entries of {} bytes per request ({request_bytes} bytes), output: {name}, {threads} generator threads",
        (prefix.len() as u64) / ENTRIES
    );
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let (first, last) = rt.block_on(async {
        let mut handles = Vec::new();
        for c in 0..conns {
            handles.push(tokio::spawn(connection(
                port,
                c,
                prefix.clone(),
                inflight,
                Arc::clone(&counters),
                Arc::clone(&stop),
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
        let first = sample(&counters, pid);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let last = sample(&counters, pid);
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await.unwrap();
        }
        (first, last)
    });
    let elapsed = last.at.duration_since(first.at).as_secs_f64();
    let events = (last.requests - first.requests) * ENTRIES;
    let bytes = (last.bytes - first.bytes) as f64;
    let cpu_s = (last.cpu - first.cpu) as f64 / procstat::clock_ticks();
    println!(
        "forward_input: {:.2} M events/s, {:.0} MB/s, ferry CPU {:.3} s per GB ({:.2} cores), peak RSS {} MiB, {} requests all acked in order",
        events as f64 / elapsed / 1e6,
        bytes / elapsed / 1e6,
        cpu_s / (bytes / 1e9),
        cpu_s / elapsed,
        procstat::read(pid).unwrap().peak_rss_kib / 1024,
        counters.acked_requests.load(Ordering::Relaxed)
    );
}

/// Reads one msgpack value from a blocking stream.
fn read_value(s: &mut std::net::TcpStream, buf: &mut BytesMut) -> Bytes {
    let mut d = FrameDecoder::new(4096);
    loop {
        if let Some(f) = d.decode(buf).unwrap() {
            return f;
        }
        let mut b = [0u8; 512];
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "ferry closed the connection");
        buf.extend_from_slice(&b[..n]);
    }
}

/// Connection churn as Fluentd makes it with `<security>`: connect, HELO, PING, PONG, close
/// (every flush and every heartbeat), from two threads.
fn bench_handshakes(secs: u64) {
    use ferry_proto::handshake::{Ping, Pong, parse_helo, password_digest, shared_key_digest};
    let port = free_port();
    let security =
        "  <security>\n    self_hostname bench.server\n    shared_key bench-key\n  </security>";
    let ferry = start_ferry(port, &config(port, security, ""));
    let pid = ferry.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                let salt = b"0123456789abcdef0123456789abcdef";
                while !stop.load(Ordering::Relaxed) {
                    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    let mut buf = BytesMut::new();
                    let helo = parse_helo(&read_value(&mut s, &mut buf)).unwrap();
                    let ping = Ping {
                        hostname: Bytes::from_static(b"bench.client"),
                        shared_key_salt: Bytes::from_static(salt),
                        shared_key_hexdigest: shared_key_digest(
                            salt,
                            b"bench.client",
                            &helo.nonce,
                            b"bench-key",
                        )
                        .into(),
                        username: Bytes::new(),
                        password_hexdigest: password_digest(&helo.auth, b"", b"").into(),
                    };
                    s.write_all(&ping.encode()).unwrap();
                    assert!(Pong::parse(&read_value(&mut s, &mut buf)).unwrap().ok);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let (t0, n0, c0) = (
        Instant::now(),
        done.load(Ordering::Relaxed),
        procstat::read(pid).unwrap().cpu_ticks,
    );
    std::thread::sleep(Duration::from_secs(secs));
    let (t1, n1, c1) = (
        Instant::now(),
        done.load(Ordering::Relaxed),
        procstat::read(pid).unwrap().cpu_ticks,
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let n = (n1 - n0) as f64;
    println!(
        "handshakes: {:.0} connections/s with <security> (connect, HELO, PING, PONG, close), ferry CPU {:.0} us per connection",
        n / t1.duration_since(t0).as_secs_f64(),
        (c1 - c0) as f64 / procstat::clock_ticks() * 1e6 / n
    );
}

/// A plain TCP sender and receiver (two threads) moving the same request bytes.
fn bench_loopback(secs: u64, prefix: &Bytes) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&received);
    let receiver = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    r.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    });
    let st = Arc::clone(&stop);
    let data = prefix.clone();
    let sender = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        while !st.load(Ordering::Relaxed) {
            s.write_all(&data).unwrap();
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let (t0, b0) = (Instant::now(), received.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs(secs));
    let (t1, b1) = (Instant::now(), received.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    receiver.join().unwrap();
    println!(
        "loopback limit: {:.0} MB/s (one plain TCP stream, sender and receiver threads)",
        (b1 - b0) as f64 / t1.duration_since(t0).as_secs_f64() / 1e6
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any filter argument is ignored.
    let secs = env_or("FERRY_BENCH_SECS", 8);
    let conns = env_or("FERRY_BENCH_CONNS", 4) as usize;
    let inflight = env_or("FERRY_BENCH_INFLIGHT", 8) as usize;
    let threads = env_or("FERRY_BENCH_THREADS", 2) as usize;
    for output in OUTPUTS {
        bench_ferry(secs, conns, inflight, threads, output);
    }
    bench_handshakes(secs.min(5));
    bench_loopback(secs.min(5), &request_prefix());
}
