//! A full buffer holds its input at the rate the buffer drains, no slower.
//!
//! A client streams events with acks, as fast as it can, into a ferry whose forward output has
//! a small memory buffer and sends to a receiver that takes a fixed number of bytes per second.
//! Once the buffer is full, every event the client gets acked must have waited for room that a
//! flush freed: so over a window of steady state, the client's acked bytes per second must equal
//! the receiver's within 10 %, and the receiver must be kept busy (at least 90 % of its rate).
//! A timer or a poll on the blocked path (a retry wait after a refusal) shows as a gap.
//!
//! Run for `overflow_action throw_exception` (Fluentd's default: the forward input holds the
//! request until room appears instead of refusing it) and for `overflow_action block`; and for
//! a tail input reading a large file through the same small buffer, where the receiver must
//! be kept busy (a retry timer in the tail would starve it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use bytes::BytesMut;
use common::{AckedSender, Ferry, free_port};
use ferry_proto::frame::FrameDecoder;
use ferry_proto::msgpack::Value;
use ferry_proto::{Limits, Request};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver drains, bytes of entries per second.
const DRAIN_RATE: f64 = 4.0e6;
/// What the receiver of the tail test drains: its buffer (256 KiB) empties in 85 ms, within
/// the first step of any retry timer (and half of what a debug build of ferry tails with
/// 64 KiB chunks on a loaded machine).
const TAIL_DRAIN_RATE: f64 = 3.0e6;
/// Events per client request, and the pad that makes each about 256 bytes.
const EVENTS_PER_REQUEST: u64 = 200;
const PAD: usize = 230;

/// The `seq` of every event received, and how many arrived more than once.
#[derive(Default)]
struct Seen {
    seqs: Mutex<HashSet<u64>>,
    duplicates: AtomicU64,
}

impl Seen {
    fn count(&self, entries: &[u8]) {
        let mut seqs = self.seqs.lock().unwrap();
        for entry in ferry_proto::entries::iter(entries) {
            let (record, _) = Value::decode(entry.unwrap().record).unwrap();
            let seq = match record.get("seq") {
                Some(Value::UInt(n)) => *n,
                Some(Value::Int(n)) => u64::try_from(*n).unwrap(),
                other => panic!("an event without seq: {other:?}"),
            };
            if !seqs.insert(seq) {
                self.duplicates.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// A Forward server that acks every request once it has "taken" its bytes at `rate` bytes/s.
fn slow_receiver(
    rate: f64,
    listener: TcpListener,
    received: Arc<AtomicU64>,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) {
    listener.set_nonblocking(true).unwrap();
    // Events are counted off the ack path, so the receiver's own work never limits its rate.
    let (tx, rx) = std::sync::mpsc::channel::<bytes::Bytes>();
    let counter = std::thread::spawn(move || {
        for entries in rx {
            seen.count(&entries);
        }
    });
    let started = Instant::now();
    let taken = Arc::new(AtomicU64::new(0));
    let mut servers = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => {
                let (received, stop, taken, tx) = (
                    Arc::clone(&received),
                    Arc::clone(&stop),
                    Arc::clone(&taken),
                    tx.clone(),
                );
                servers.push(std::thread::spawn(move || {
                    serve(rate, s, &received, &tx, &stop, &taken, started);
                }));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    drop(tx);
    for server in servers {
        server.join().unwrap();
    }
    counter.join().unwrap();
}

fn serve(
    rate: f64,
    mut s: TcpStream,
    received: &AtomicU64,
    seen: &std::sync::mpsc::Sender<bytes::Bytes>,
    stop: &AtomicBool,
    taken: &AtomicU64,
    started: Instant,
) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut decoder = FrameDecoder::new(64 << 20);
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let n = match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            let Ok(Request::Events(batch)) = Request::parse(frame, &Limits::default()) else {
                continue;
            };
            let bytes = batch.entries.len() as u64;
            // Take the bytes at the drain rate: wait until the rate allows them.
            let total = taken.fetch_add(bytes, Ordering::SeqCst) + bytes;
            let due = Duration::from_secs_f64(total as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let _ = seen.send(batch.entries.clone());
            received.fetch_add(bytes, Ordering::SeqCst);
            if let Some(id) = &batch.options.chunk {
                if s.write_all(&ferry_proto::ack::encode_ack(id)).is_err() {
                    return;
                }
            }
        }
    }
}

fn config(port: u16, to: u16, overflow: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match bp.**>\n  @type forward\n  require_ack_response true\n\
           <server>\n    host 127.0.0.1\n    port {to}\n  </server>\n\
           <buffer>\n    @type memory\n    chunk_limit_size 256k\n    total_limit_size 1m\n\
             flush_mode interval\n    flush_interval 100ms\n    overflow_action {overflow}\n  </buffer>\n\
         </match>\n"
    )
}

/// Entry bytes of one client request (as the receiver counts them).
fn request_entry_bytes() -> u64 {
    use ferry_proto::encode::write_entry;
    use ferry_proto::msgpack::Value;
    let mut entries = BytesMut::new();
    for seq in 0..EVENTS_PER_REQUEST {
        let record = Value::Map(vec![
            (Value::Str("seq".into()), Value::UInt(1_000_000 + seq)),
            (Value::Str("pad".into()), Value::Str("x".repeat(PAD).into())),
        ]);
        let time = ferry_proto::time::EventTime {
            sec: 1_700_000_000,
            nsec: 0,
        };
        write_entry(&mut entries, time, false, &record.to_bytes());
    }
    entries.len() as u64
}

fn held_by_a_full_buffer(overflow: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap().port();
    let received = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (received, seen, stop) = (Arc::clone(&received), Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || slow_receiver(DRAIN_RATE, listener, received, seen, stop))
    };
    let port = free_port();
    let ferry = Ferry::start(&config(port, to, overflow), port);

    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let stop_sending = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acked, stop, failed) = (
            Arc::clone(&acked),
            Arc::clone(&stop_sending),
            Arc::clone(&failed),
        );
        std::thread::spawn(move || {
            let per_request = request_entry_bytes();
            let mut client = AckedSender::connect(port).unwrap();
            let mut seq = 1_000_000u64;
            while !stop.load(Ordering::Relaxed) {
                // The same record shape as `request_entry_bytes` (seq stays 7 digits).
                if client
                    .send("bp.load", seq..seq + EVENTS_PER_REQUEST, PAD)
                    .is_err()
                {
                    failed.store(true, Ordering::SeqCst);
                    return;
                }
                seq += EVENTS_PER_REQUEST;
                acked.fetch_add(per_request, Ordering::SeqCst);
            }
        })
    };

    // Warm up until the buffer is full and the client is held, then measure a window.
    std::thread::sleep(Duration::from_secs(3));
    let (a0, r0, t0) = (
        acked.load(Ordering::SeqCst),
        received.load(Ordering::SeqCst),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(6));
    let (a1, r1, secs) = (
        acked.load(Ordering::SeqCst),
        received.load(Ordering::SeqCst),
        t0.elapsed().as_secs_f64(),
    );
    // The receiver keeps draining until the client's last request is acked.
    stop_sending.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    receiver.join().unwrap();
    let ingest = (a1 - a0) as f64 / secs;
    let drain = (r1 - r0) as f64 / secs;
    println!(
        "overflow_action {overflow}: ingest {:.2} MB/s, drain {:.2} MB/s (receiver's rate {:.2} MB/s), ratio {:.3}",
        ingest / 1e6,
        drain / 1e6,
        DRAIN_RATE / 1e6,
        ingest / drain
    );
    assert_eq!(
        seen.duplicates.load(Ordering::SeqCst),
        0,
        "events arrived twice"
    );
    assert!(
        !failed.load(Ordering::SeqCst),
        "a request was refused or its ack did not come"
    );
    assert!(
        drain >= 0.9 * DRAIN_RATE,
        "the receiver was starved: {drain:.0} B/s of {DRAIN_RATE:.0}"
    );
    assert!(
        (ingest / drain - 1.0).abs() <= 0.10,
        "ingest {ingest:.0} B/s does not follow the drain {drain:.0} B/s"
    );
    let metrics = ferry.stderr_so_far().join("\n");
    assert!(!metrics.contains("panicked"), "ferry panicked:\n{metrics}");
}

#[test]
fn a_full_buffer_under_throw_exception_holds_the_client_at_the_drain_rate() {
    held_by_a_full_buffer("throw_exception");
}

#[test]
fn a_full_buffer_under_block_holds_the_client_at_the_drain_rate() {
    held_by_a_full_buffer("block");
}

#[test]
fn a_tail_input_behind_a_full_buffer_reads_at_the_drain_rate() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap().port();
    let received = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (received, seen, stop) = (Arc::clone(&received), Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || slow_receiver(TAIL_DRAIN_RATE, listener, received, seen, stop))
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    // Four times what the receiver takes in the whole run: the tail is always ahead.
    let pad = "y".repeat(230);
    let mut text = String::new();
    let mut seq = 0u64;
    while (text.len() as f64) < TAIL_DRAIN_RATE * 20.0 {
        text.push_str(&format!("{{\"seq\":{seq},\"msg\":\"{pad}\"}}\n"));
        seq += 1;
    }
    std::fs::write(&log, text).unwrap();
    let config = format!(
        "<source>\n  @type tail\n  path {}\n  pos_file {}\n  tag bp.tail\n  read_from_head true\n  <parse>\n    @type json\n  </parse>\n</source>\n\
         <match bp.**>\n  @type forward\n  require_ack_response true\n\
           <server>\n    host 127.0.0.1\n    port {to}\n  </server>\n\
           <buffer>\n    @type memory\n    chunk_limit_size 64k\n    total_limit_size 256k\n\
             flush_mode interval\n    flush_interval 100ms\n  </buffer>\n\
         </match>\n",
        log.display(),
        dir.path().join("pos").display()
    );
    let ferry = Ferry::start_logged(&config, &[]);
    std::thread::sleep(Duration::from_secs(3));
    let (r0, t0) = (received.load(Ordering::SeqCst), Instant::now());
    std::thread::sleep(Duration::from_secs(6));
    let drain = (received.load(Ordering::SeqCst) - r0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    receiver.join().unwrap();
    println!(
        "tail: drain {:.2} MB/s (receiver's rate {:.2} MB/s), {} events arrived twice",
        drain / 1e6,
        TAIL_DRAIN_RATE / 1e6,
        seen.duplicates.load(Ordering::SeqCst)
    );
    assert_eq!(
        seen.duplicates.load(Ordering::SeqCst),
        0,
        "events arrived twice: a refused batch was offered again whole"
    );
    assert!(
        drain >= 0.9 * TAIL_DRAIN_RATE,
        "the receiver was starved while the tail had lines to read: {drain:.0} B/s of {TAIL_DRAIN_RATE:.0}"
    );
    let log = ferry.stderr_so_far().join("\n");
    assert!(!log.contains("panicked"), "ferry panicked:\n{log}");
}

#[test]
fn a_request_held_by_a_full_buffer_does_not_delay_a_stop() {
    // The output's server is down: the small buffer fills and the next request is held.
    let down = free_port();
    let port = free_port();
    let config = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match bp.**>\n  @type forward\n  require_ack_response true\n\
           <server>\n    host 127.0.0.1\n    port {down}\n  </server>\n\
           <buffer>\n    @type memory\n    chunk_limit_size 64k\n    total_limit_size 256k\n\
             flush_mode interval\n    flush_interval 100ms\n    retry_wait 1s\n  </buffer>\n\
         </match>\n"
    );
    let mut ferry = Ferry::start(&config, port);
    let held = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let client = {
        let (held, acked) = (Arc::clone(&held), Arc::clone(&acked));
        std::thread::spawn(move || {
            let mut c = AckedSender::connect(port).unwrap();
            let mut seq = 1_000_000u64;
            loop {
                held.store(true, Ordering::SeqCst);
                if c.send("bp.load", seq..seq + EVENTS_PER_REQUEST, PAD)
                    .is_err()
                {
                    return;
                }
                held.store(false, Ordering::SeqCst);
                acked.fetch_add(1, Ordering::SeqCst);
                seq += EVENTS_PER_REQUEST;
            }
        })
    };
    // Wait until a request is held: acked requests stop growing.
    let mut last = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = acked.load(Ordering::SeqCst);
        if now == last && held.load(Ordering::SeqCst) {
            break;
        }
        assert!(Instant::now() < deadline, "the buffer never filled");
        last = now;
    }
    assert!(
        last >= 1,
        "some requests were acked before the buffer filled"
    );
    let stopping = Instant::now();
    common::signal(ferry.child.id(), "TERM");
    let status = ferry.child.wait().unwrap();
    let took = stopping.elapsed();
    client.join().unwrap();
    println!("stopped in {took:?} with a request held ({last} acked before)");
    assert!(status.success(), "ferry exited with {status}");
    assert!(
        took < Duration::from_secs(5),
        "the stop waited {took:?} for the held request (the grace is 10 s)"
    );
    let log = ferry.stderr_so_far().join("\n");
    assert!(
        log.contains("inputs that can wait (forward, tail) are held"),
        "the full buffer was reported:\n{log}"
    );
}
