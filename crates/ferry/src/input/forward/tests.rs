//! The input in-process, over real sockets: the counters each behaviour must move.

use super::{ForwardInputMetrics, HandshakeFailure};
use crate::input::{self, InputHandle};
use crate::output::Output;
use crate::router::{Router, Routing};
use crate::task::Tasks;
use bytes::{Bytes, BytesMut};
use ferry_proto::ack::parse_ack;
use ferry_proto::encode::{encode_packed_forward, write_entry};
use ferry_proto::frame::FrameDecoder;
use ferry_proto::handshake::{Ping, Pong, parse_helo, password_digest, shared_key_digest};
use ferry_proto::{ChunkId, Compression, EventTime, msgpack};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Running {
    tasks: Tasks,
    metrics: Arc<ForwardInputMetrics>,
    port: u16,
}

fn free_port() -> u16 {
    ferry_bench::ferryproc::free_port().unwrap()
}

/// Starts one forward input (`extra` lines inside `<source>`) routed to a null output.
async fn start(extra: &str) -> Running {
    start_at("127.0.0.1", extra).await
}

/// [`start`] with the input bound to `bind`.
async fn start_at(bind: &str, extra: &str) -> Running {
    let port = free_port();
    let text = format!(
        "<source>\n  @type forward\n  bind {bind}\n  port {port}\n{extra}\n</source>\n<match **>\n  @type null\n</match>\n"
    );
    let root = ferry_config::parse_str(&text, "test.conf").unwrap();
    let cfg = crate::pipeline::build(&root).unwrap();
    let tasks = Tasks::new();
    let mut outputs = Vec::new();
    for (id, output) in cfg.routes.outputs() {
        let output = Output::build(id.to_string(), output).await.unwrap();
        output.start(&tasks);
        outputs.push(Arc::new(output));
    }
    let routing = Arc::new(Routing::new(Arc::new(Router::new(&cfg.routes, outputs))));
    let sockets = crate::input::net::listen::Sockets::default();
    let start = input::Start {
        routing: &routing,
        tasks: &input::InputTasks::new(&tasks),
        sockets: &sockets,
        owner: sockets.owner(),
        previous: None,
    };
    let InputHandle::Forward(metrics) =
        input::start("in".to_string(), &cfg.sources[0].input, start)
            .await
            .unwrap()
    else {
        panic!("a forward input was configured");
    };
    Running {
        tasks,
        metrics,
        port,
    }
}

impl Running {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()
    }

    fn get(&self, f: impl Fn(&ForwardInputMetrics) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.metrics).load(Ordering::Relaxed)
    }

    async fn stop(self) {
        assert!(self.tasks.shutdown(Duration::from_secs(5)).await.is_empty());
    }
}

/// Reads one msgpack value; `None` when the peer closed first.
async fn read_frame(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Bytes> {
    let mut d = FrameDecoder::new(1 << 20);
    loop {
        if let Some(f) = d.decode(buf).unwrap() {
            return Some(f);
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read_buf(buf))
            .await
            .expect("no reply within 10 s")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
    }
}

fn record(n: u64) -> Vec<u8> {
    let mut r = BytesMut::new();
    msgpack::write_map_len(&mut r, 1);
    msgpack::write_str(&mut r, b"n");
    msgpack::write_uint(&mut r, n);
    r.to_vec()
}

fn request(times: &[u32], chunk: &str) -> Bytes {
    let mut entries = BytesMut::new();
    for (i, t) in times.iter().enumerate() {
        write_entry(
            &mut entries,
            EventTime::new(*t, 0),
            false,
            &record(i as u64),
        );
    }
    let mut out = BytesMut::new();
    let chunk = ChunkId::str(chunk.as_bytes().to_vec());
    encode_packed_forward(
        &mut out,
        "test.tag",
        &entries,
        times.len() as u64,
        Some(&chunk),
        Compression::Text,
    );
    out.freeze()
}

async fn send_and_ack(s: &mut TcpStream, buf: &mut BytesMut, req: &[u8], chunk: &str) {
    s.write_all(req).await.unwrap();
    let ack = read_frame(s, buf).await.expect("an ack");
    assert_eq!(&parse_ack(&ack).unwrap().bytes[..], chunk.as_bytes());
}

const SECURITY: &str = "<security>\n self_hostname server.example\n shared_key k\n user_auth true\n <user>\n username alice\n password pw\n </user>\n</security>\n handshake_timeout 500ms";

async fn ping(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    key: &str,
    user: &str,
    password: &str,
) -> Pong {
    let helo = parse_helo(&read_frame(s, buf).await.unwrap()).unwrap();
    let salt = b"0123456789abcdef0123456789abcdef";
    let p = Ping {
        hostname: Bytes::from_static(b"client.example"),
        shared_key_salt: Bytes::from_static(salt),
        shared_key_hexdigest: shared_key_digest(
            salt,
            b"client.example",
            &helo.nonce,
            key.as_bytes(),
        )
        .into(),
        username: Bytes::copy_from_slice(user.as_bytes()),
        password_hexdigest: password_digest(&helo.auth, user.as_bytes(), password.as_bytes())
            .into(),
    };
    s.write_all(&p.encode()).await.unwrap();
    Pong::parse(&read_frame(s, buf).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_failures_are_counted_by_reason() {
    let r = start(SECURITY).await;
    for (key, user, password, reason) in [
        ("wrong", "alice", "pw", HandshakeFailure::SharedKeyMismatch),
        ("k", "alice", "bad", HandshakeFailure::UserMismatch),
        ("k", "mallory", "pw", HandshakeFailure::UserMismatch),
    ] {
        let mut s = r.connect().await;
        let mut buf = BytesMut::new();
        let pong = ping(&mut s, &mut buf, key, user, password).await;
        assert!(!pong.ok);
        assert!(
            read_frame(&mut s, &mut buf).await.is_none(),
            "closed after PONG false"
        );
        assert!(r.metrics.handshake_failures(reason) >= 1, "{reason:?}");
    }
    // Data instead of a PING.
    let mut s = r.connect().await;
    let mut buf = BytesMut::new();
    read_frame(&mut s, &mut buf).await.unwrap();
    s.write_all(&request(&[1_700_000_000], "c")).await.unwrap();
    let pong = Pong::parse(&read_frame(&mut s, &mut buf).await.unwrap()).unwrap();
    assert_eq!(
        (pong.ok, pong.reason.as_str()),
        (false, "invalid ping message")
    );
    assert_eq!(
        r.metrics.handshake_failures(HandshakeFailure::InvalidPing),
        1
    );
    // Silence: the handshake times out.
    let mut s = r.connect().await;
    let mut buf = BytesMut::new();
    read_frame(&mut s, &mut buf).await.unwrap();
    assert!(read_frame(&mut s, &mut buf).await.is_none());
    assert_eq!(r.metrics.handshake_failures(HandshakeFailure::Timeout), 1);
    // A correct client gets through and its events are acked.
    let mut s = r.connect().await;
    let mut buf = BytesMut::new();
    assert!(ping(&mut s, &mut buf, "k", "alice", "pw").await.ok);
    send_and_ack(&mut s, &mut buf, &request(&[1_700_000_000], "ok"), "ok").await;
    assert_eq!(r.get(|m| &m.handshakes), 1);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_wait_until_one_closes() {
    let r = start("max_connections 1").await;
    let first = r.connect().await;
    // Give the accept loop time to hand the first connection its slot.
    while r.get(|m| &m.net.connections_active) < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut second = r.connect().await;
    second
        .write_all(&request(&[1_700_000_000], "second"))
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let waited = tokio::time::timeout(Duration::from_millis(300), second.read_buf(&mut buf)).await;
    assert!(
        waited.is_err(),
        "the second connection was served while the first held the only slot"
    );
    assert!(r.get(|m| &m.net.connection_limit_waits) >= 1);
    drop(first);
    let ack = read_frame(&mut second, &mut buf).await.unwrap();
    assert_eq!(&parse_ack(&ack).unwrap().bytes[..], b"second");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_counted() {
    let r = start("idle_timeout 200ms").await;
    let mut s = r.connect().await;
    let mut buf = BytesMut::new();
    send_and_ack(&mut s, &mut buf, &request(&[1_700_000_000], "a"), "a").await;
    assert!(read_frame(&mut s, &mut buf).await.is_none());
    assert_eq!(r.get(|m| &m.idle_closes), 1);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_skipped_zero_times_replaced_and_the_request_acked() {
    let r = start("").await;
    let mut entries = BytesMut::new();
    write_entry(&mut entries, EventTime::new(0, 0), false, &record(0));
    write_entry(
        &mut entries,
        EventTime::new(1_700_000_000, 0),
        false,
        &record(1),
    );
    entries.extend_from_slice(&[0x92, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]); // float time
    entries.extend_from_slice(&[0x92, 0x01, 0x01]); // record not a map
    let mut req = BytesMut::new();
    encode_packed_forward(
        &mut req,
        "t",
        &entries,
        4,
        Some(&ChunkId::bin(&b"bin-chunk"[..])),
        Compression::Text,
    );
    let mut s = r.connect().await;
    let mut buf = BytesMut::new();
    s.write_all(&req).await.unwrap();
    let ack = read_frame(&mut s, &mut buf).await.unwrap();
    assert_eq!(
        &ack[..],
        b"\x81\xa3ack\xc4\x09bin-chunk",
        "acked with a bin chunk"
    );
    assert_eq!(r.get(|m| &m.invalid_events), 2);
    assert_eq!(r.get(|m| &m.time_zero_replaced), 1);
    assert_eq!(r.get(|m| &m.emit_records), 2);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_keepalive_closes_after_the_first_request() {
    let r = start("deny_keepalive true").await;
    let mut s = r.connect().await;
    let mut buf = BytesMut::new();
    s.write_all(&request(&[1_700_000_000], "one"))
        .await
        .unwrap();
    s.write_all(&request(&[1_700_000_000], "two"))
        .await
        .unwrap();
    let ack = read_frame(&mut s, &mut buf).await.unwrap();
    assert_eq!(&parse_ack(&ack).unwrap().bytes[..], b"one");
    assert!(read_frame(&mut s, &mut buf).await.is_none());
    assert_eq!(r.get(|m| &m.keepalive_denied_closes), 1);
    assert_eq!(r.get(|m| &m.acks), 1);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_chunk_size_limit_closes_the_connection() {
    let r = start("chunk_size_limit 1k\n chunk_size_warn_limit 512").await;
    let mut s = r.connect().await;
    let mut buf = BytesMut::new();
    let times = vec![1_700_000_000; 36];
    let warn_size = request(&times, "w");
    assert!(
        warn_size.len() > 512 && warn_size.len() < 1024,
        "{}",
        warn_size.len()
    );
    send_and_ack(&mut s, &mut buf, &warn_size, "w").await;
    assert_eq!(r.get(|m| &m.size_warnings), 1);
    // Only the header: the declared size alone exceeds the limit.
    s.write_all(&[0x93, 0xa1, b't', 0xdb, 0, 0, 0x10, 0])
        .await
        .unwrap();
    assert!(read_frame(&mut s, &mut buf).await.is_none());
    assert_eq!(r.get(|m| &m.oversize_requests), 1);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_connection_is_acked_in_json() {
    let r = start("").await;
    let mut s = r.connect().await;
    s.write_all(br#"["py.json", 1700000108, {"n": 1}, {"chunk": "anNvbi0x"}] "#)
        .await
        .unwrap();
    let mut reply = vec![0u8; 18];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&reply[..], br#"{"ack":"anNvbi0x"}"#);
    assert_eq!(r.get(|m| &m.json_connections), 1);
    assert_eq!(r.get(|m| &m.emit_records), 1);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_are_answered_with_one_zero_byte() {
    let r = start("").await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(&[0], ("127.0.0.1", r.port)).await.unwrap();
    let mut b = [9u8; 8];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b[..n], &[0]);
    assert_eq!(r.get(|m| &m.heartbeats), 1);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_chooses_the_address_listened_on() {
    let r = start_at("127.0.0.2", "").await;
    let mut s = TcpStream::connect(("127.0.0.2", r.port)).await.unwrap();
    let mut buf = BytesMut::new();
    send_and_ack(&mut s, &mut buf, &request(&[1_700_000_000], "a"), "a").await;
    let other = TcpStream::connect(("127.0.0.1", r.port)).await;
    assert_eq!(
        other.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused,
        "nothing listens on 127.0.0.1"
    );
    r.stop().await;
}

/// How many of `n` connections made while the only slot is taken complete within 500 ms.
async fn waiting_connections(extra: &str, n: usize) -> usize {
    let r = start(&format!("max_connections 1\n{extra}")).await;
    let first = r.connect().await;
    while r.get(|m| &m.net.connections_active) < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut waiting = Vec::new();
    for _ in 0..n {
        let c = tokio::time::timeout(
            Duration::from_millis(500),
            TcpStream::connect(("127.0.0.1", r.port)),
        )
        .await;
        if let Ok(Ok(c)) = c {
            waiting.push(c);
        }
    }
    let connected = waiting.len();
    drop((first, waiting));
    r.stop().await;
    connected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_bounds_the_connections_waiting_beyond_max_connections() {
    // The kernel queues backlog + 1 connections; later ones get no answer to their SYN.
    assert_eq!(waiting_connections("backlog 1", 5).await, 2);
    assert_eq!(
        waiting_connections("", 5).await,
        5,
        "the default backlog is 1024"
    );
}

/// A CompressedPackedForward request of `records` events, gzip-compressed.
fn gzip_request(records: u64, chunk: &str) -> Bytes {
    use std::io::Write;
    let mut entries = BytesMut::new();
    for n in 0..records {
        write_entry(
            &mut entries,
            EventTime::new(1_700_000_000, 0),
            false,
            &record(n),
        );
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&entries).unwrap();
    let compressed = gz.finish().unwrap();
    let mut out = BytesMut::new();
    let chunk = ChunkId::str(chunk.as_bytes().to_vec());
    encode_packed_forward(
        &mut out,
        "test.tag",
        &compressed,
        records,
        Some(&chunk),
        Compression::Gzip,
    );
    out.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_inflating_past_decompression_size_limit_is_refused() {
    // 200 events are about 2.6 kB once decompressed, and far less compressed.
    let big = gzip_request(200, "big");
    assert!(big.len() < 1024);
    let r = start("decompression_size_limit 1k").await;
    let mut s = r.connect().await;
    let mut buf = BytesMut::new();
    s.write_all(&big).await.unwrap();
    // Not acknowledged: the next request's ack is the first reply.
    send_and_ack(&mut s, &mut buf, &gzip_request(10, "small"), "small").await;
    assert_eq!(r.get(|m| &m.broken_requests), 1);
    assert_eq!(r.get(|m| &m.emit_records), 10);
    r.stop().await;
    let r = start("").await;
    let mut s = r.connect().await;
    send_and_ack(&mut s, &mut buf, &big, "big").await;
    assert_eq!(r.get(|m| &m.emit_records), 200);
    r.stop().await;
}

/// The kernel's timer of the IPv4 connection from `local` to `remote` (ports on 127.0.0.1),
/// as /proc/net/tcp shows it: 2 while the keepalive timer runs, 0 with no timer.
fn tcp_timer(local: u16, remote: u16) -> Option<u8> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
        (port(f[1])? == local && port(f[2])? == remote && f[3] == "01")
            .then(|| u8::from_str_radix(&f[5][..2], 16).ok())
            .flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_keepalive_packet_turns_on_tcp_keepalive_for_accepted_connections() {
    for (extra, timer) in [("send_keepalive_packet true", 2), ("", 0)] {
        let r = start(extra).await;
        let mut s = r.connect().await;
        let mut buf = BytesMut::new();
        send_and_ack(&mut s, &mut buf, &request(&[1_700_000_000], "a"), "a").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let client = s.local_addr().unwrap().port();
        assert_eq!(tcp_timer(r.port, client), Some(timer), "{extra:?}");
        r.stop().await;
    }
}
