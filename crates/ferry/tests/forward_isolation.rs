//! Isolation: peers that send garbage, send a byte at a time (slowloris), send huge requests
//! or declare oversize ones must not delay another peer's acks nor the UDP heartbeat answers.
//!
//! The good peer's ack latency (median of many requests) with the misbehaving peers running
//! must stay within max(2x, +5 ms) of its latency alone, and so must the heartbeat round
//! trip. The 5 ms floor absorbs scheduling noise on a loaded 2-core machine, where sub-
//! millisecond medians can double from noise alone; a peer that actually blocked the good one
//! (a huge request validated on the same worker, a read loop waiting on a slow peer) costs
//! tens of milliseconds per request and still fails it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use bytes::BytesMut;
use common::{Ferry, free_port};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

fn request(entries_count: usize, chunk: &str) -> Vec<u8> {
    common::packed_request(
        "iso",
        &common::str_record(&[("msg", &[b'x'; 160]), ("n", b"12345")]),
        entries_count,
        chunk,
    )
}

fn read_ack(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Vec<u8>> {
    common::read_ack(s, buf).ok()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median ack latency of sequential requests on one connection: at least `n` of them, for
/// at least `min` (so the measurement overlaps the misbehaving peers' work).
fn good_peer(port: u16, n: usize, min: Duration) -> Duration {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = BytesMut::new();
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0.. {
        if i >= n && start.elapsed() >= min {
            break;
        }
        let chunk = format!("good-{i}");
        let req = request(20, &chunk);
        let t = Instant::now();
        s.write_all(&req).unwrap();
        assert_eq!(read_ack(&mut s, &mut buf).unwrap(), chunk.as_bytes());
        lat.push(t.elapsed());
    }
    median(lat)
}

/// Median heartbeat round trip of `n` datagrams.
fn heartbeats(port: u16, n: usize) -> Duration {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        udp.send_to(&[0], ("127.0.0.1", port)).unwrap();
        let mut b = [0u8; 8];
        let (len, _) = udp.recv_from(&mut b).unwrap();
        assert_eq!(&b[..len], &[0]);
        lat.push(t.elapsed());
        thread::sleep(Duration::from_millis(2));
    }
    median(lat)
}

/// Runs `f` in a loop on a thread until `stop`; counts rounds.
fn spawn_loop(
    stop: &Arc<AtomicBool>,
    rounds: &Arc<AtomicU64>,
    f: impl Fn() + Send + 'static,
) -> thread::JoinHandle<()> {
    let (stop, rounds) = (Arc::clone(stop), Arc::clone(rounds));
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            f();
            rounds.fetch_add(1, Ordering::Relaxed);
        }
    })
}

fn within(loaded: Duration, alone: Duration) -> bool {
    loaded <= (alone * 2).max(alone + Duration::from_millis(5))
}

#[test]
fn misbehaving_peers_do_not_delay_a_good_peers_acks_or_heartbeats() {
    let port = free_port();
    let _ferry = Ferry::start(
        &format!(
            "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n<match **>\n  @type null\n</match>\n"
        ),
        port,
    );
    good_peer(port, 50, Duration::ZERO); // warm-up
    let alone = good_peer(port, 300, Duration::from_millis(500));
    let hb_alone = heartbeats(port, 100);

    let stop = Arc::new(AtomicBool::new(false));
    let rounds: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let huge = Arc::new(request(320_000, "huge")); // about 64 MB, valid, acked
    let mut threads = vec![
        // Garbage: an invalid marker after a plausible start; ferry closes, it comes back.
        spawn_loop(&stop, &rounds[0], move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut junk = vec![0x93u8, 0xa1, b't'];
            junk.extend(std::iter::repeat_n(0xc1, 4096));
            let _ = s.write_all(&junk);
            let _ = s.read(&mut [0u8; 16]);
        }),
        // A huge valid request, acked after it is validated.
        spawn_loop(&stop, &rounds[1], move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(&huge).unwrap();
            assert_eq!(read_ack(&mut s, &mut BytesMut::new()).unwrap(), b"huge");
        }),
        // A request declaring 1 GiB: refused as soon as the header is in.
        spawn_loop(&stop, &rounds[2], move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let _ = s.write_all(&[0x93, 0xa1, b't', 0xdb, 0x40, 0, 0, 0]);
            let _ = s.read(&mut [0u8; 16]);
        }),
    ];
    // Slowloris: a few connections each trickling one valid request a byte at a time.
    for c in 0..4 {
        let (stop, r) = (Arc::clone(&stop), Arc::clone(&rounds[3]));
        threads.push(thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            for b in request(5, &format!("slow-{c}")) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                s.write_all(&[b]).unwrap();
                r.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(50));
            }
        }));
    }
    thread::sleep(Duration::from_millis(300));
    let loaded = good_peer(port, 300, Duration::from_millis(1500));
    let hb_loaded = heartbeats(port, 100);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let counts: Vec<u64> = rounds.iter().map(|r| r.load(Ordering::Relaxed)).collect();
    eprintln!(
        "ack median alone {alone:?}, with misbehaving peers {loaded:?}; heartbeat {hb_alone:?} / {hb_loaded:?}; rounds garbage/huge/oversize/slow bytes {counts:?}"
    );
    assert!(
        counts.iter().all(|c| *c > 0),
        "every misbehaving peer ran: {counts:?}"
    );
    assert!(
        within(loaded, alone),
        "ack median {loaded:?} with misbehaving peers, {alone:?} alone"
    );
    assert!(
        within(hb_loaded, hb_alone),
        "heartbeat median {hb_loaded:?} under load, {hb_alone:?} alone"
    );
}
