//! The file buffer under real process death: events acknowledged by the forward input survive
//! SIGKILL, and damaged buffer files are truncated or quarantined at start-up, never a crash.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{AckedSender, Ferry, free_port, seqs_of, signal};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn config(port: u16, buffer: &Path, sink: &str, flush_interval: &str, chunk: &str) -> String {
    let format = if sink == "stdout" {
        "  <format>\n    @type json\n  </format>\n"
    } else {
        ""
    };
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type {sink}\n{format}  <buffer tag>\n    @type file\n    path {}\n    flush_interval {flush_interval}\n    chunk_limit_size {chunk}\n  </buffer>\n</match>\n",
        buffer.display()
    )
}

/// Streams acked batches of 50 events until the connection fails; returns what was acked.
fn stream_until_killed(
    port: u16,
    first_seq: u64,
    acked: Arc<Mutex<Vec<u64>>>,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let Ok(mut sender) = AckedSender::connect(port) else {
            return first_seq;
        };
        let mut seq = first_seq;
        while sender.send("durable.test", seq..seq + 50, 150).is_ok() {
            acked.lock().unwrap().extend(seq..seq + 50);
            seq += 50;
        }
        seq
    })
}

#[test]
fn events_acked_before_sigkill_are_all_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = config(port, dir.path(), "stdout", "1s", "256k");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut delivered = Vec::new();
    let mut next_seq = 0;
    for round in 0..3u64 {
        let ferry = Ferry::start(&conf, port);
        let sender = stream_until_killed(port, next_seq, Arc::clone(&acked));
        thread::sleep(Duration::from_millis(1200 + 300 * round));
        signal(ferry.child.id(), "KILL");
        next_seq = sender.join().unwrap() + 1_000_000;
        // The pump threads end at EOF; take everything the killed process printed.
        thread::sleep(Duration::from_millis(200));
        delivered.extend(seqs_of(&ferry.stdout.try_iter().collect::<Vec<_>>()));
    }
    let acked: BTreeSet<u64> = acked.lock().unwrap().iter().copied().collect();
    assert!(
        acked.len() > 1000,
        "the test should ack a real stream, acked {}",
        acked.len()
    );

    // A last start delivers whatever was still buffered.
    let ferry = Ferry::start(&conf, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        delivered.extend(seqs_of(&ferry.stdout.try_iter().collect::<Vec<_>>()));
        let have: BTreeSet<u64> = delivered.iter().copied().collect();
        let missing: Vec<u64> = acked.difference(&have).copied().collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acked events never delivered (first: {:?}); stderr: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)],
            ferry.stderr_so_far()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let unique: BTreeSet<u64> = delivered.iter().copied().collect();
    let duplicates = delivered.len() - unique.len();
    eprintln!(
        "acked {} events over 3 SIGKILLs; delivered {} (0 lost, {duplicates} duplicates)",
        acked.len(),
        delivered.len()
    );
}

fn chunk_files(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

#[test]
fn torn_and_corrupt_buffer_files_are_truncated_and_quarantined_and_ferry_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A long flush interval keeps each tag's chunk staged in the buffer until the kill.
    let ferry = Ferry::start(&config(port, dir.path(), "null", "1h", "1m"), port);
    let mut sender = AckedSender::connect(port).unwrap();
    for tag in 0..4u64 {
        for i in 0..10 {
            let first = tag * 10_000 + i * 50;
            sender
                .send(&format!("damaged.{tag}"), first..first + 50, 150)
                .unwrap();
        }
    }
    signal(ferry.child.id(), "KILL");
    drop(ferry);
    let payloads = chunk_files(dir.path(), ".payload");
    assert_eq!(payloads.len(), 4, "one chunk per tag: {payloads:?}");

    // Tear the tail of one chunk mid-entry, flip bytes in the middle of another.
    let torn = &payloads[0];
    let len = std::fs::metadata(torn).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(torn)
        .unwrap()
        .set_len(len - 37)
        .unwrap();
    let corrupt = &payloads[1];
    let mut bytes = std::fs::read(corrupt).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    std::fs::write(corrupt, &bytes).unwrap();

    let ferry = Ferry::start(&config(port, dir.path(), "stdout", "1s", "1m"), port);
    // ferry runs and delivers the two intact chunks (1000 events) and what is left of the torn
    // one: its last append (50 events, never fully written) is cut off.
    let lines = ferry.stdout_lines(1450, Duration::from_secs(30));
    assert_eq!(seqs_of(&lines).len(), 1450);
    thread::sleep(Duration::from_millis(500));
    assert!(
        ferry.stdout.try_iter().next().is_none(),
        "no event of the corrupt chunk is delivered"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stderr = Vec::new();
    loop {
        stderr.extend(ferry.stderr_so_far());
        let text = stderr.join("\n");
        if text.contains("torn tail") && text.contains("quarantine") {
            break;
        }
        assert!(Instant::now() < deadline, "recovery was not logged: {text}");
        thread::sleep(Duration::from_millis(100));
    }
    let quarantined = chunk_files(&dir.path().join("quarantine"), ".payload");
    assert_eq!(
        quarantined.len(),
        1,
        "the corrupt chunk is kept in quarantine"
    );
    assert!(std::fs::metadata(&quarantined[0]).unwrap().len() > 0);
}

#[test]
fn new_events_are_acknowledged_promptly_while_a_large_backlog_drains() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Run 1: stage a backlog (~64 MB over 8 tags) that never flushes, then die.
    let staging = config(port, dir.path(), "null", "1h", "256m");
    let ferry = Ferry::start(&staging, port);
    let mut sender = AckedSender::connect(port).unwrap();
    let per_request = 1000u64;
    let requests = 320u64;
    for r in 0..requests {
        let tag = format!("backlog.{}", r % 8);
        sender
            .send(&tag, r * per_request..(r + 1) * per_request, 150)
            .unwrap();
    }
    signal(ferry.child.id(), "KILL");
    drop(ferry);
    let backlog = per_request * requests;

    // Run 2: the recovered backlog drains to stdout while a client sends new events.
    let ferry = Ferry::start(&config(port, dir.path(), "stdout", "1s", "256m"), port);
    let started = Instant::now();
    let mut sender = AckedSender::connect(port).unwrap();
    let fresh_base = 10_000_000u64;
    let mut latencies = Vec::new();
    let mut delivered_backlog = 0u64;
    let mut delivered_fresh = 0u64;
    let mut backlog_done_at = None;
    for i in 0..100u64 {
        let t = Instant::now();
        sender
            .send("fresh", fresh_base + i * 20..fresh_base + (i + 1) * 20, 150)
            .unwrap();
        latencies.push(t.elapsed());
        for seq in seqs_of(&ferry.stdout.try_iter().collect::<Vec<_>>()) {
            if seq >= fresh_base {
                delivered_fresh += 1
            } else {
                delivered_backlog += 1
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    let fresh_acked_at = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered_backlog < backlog || delivered_fresh < 2000 {
        assert!(
            Instant::now() < deadline,
            "backlog {delivered_backlog}/{backlog}, fresh {delivered_fresh}/2000"
        );
        match ferry.stdout.recv_timeout(Duration::from_secs(5)) {
            Ok(line) => {
                for seq in seqs_of(&[line]) {
                    if seq >= fresh_base {
                        delivered_fresh += 1
                    } else {
                        delivered_backlog += 1
                    }
                }
            }
            Err(_) => continue,
        }
        if delivered_backlog >= backlog && backlog_done_at.is_none() {
            backlog_done_at = Some(started.elapsed());
        }
    }
    let backlog_done_at = backlog_done_at.unwrap_or_else(|| started.elapsed());
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "backlog of {backlog} events ({} MB) drained in {backlog_done_at:?}; 100 new requests acked by {fresh_acked_at:?}: ack latency p50 {p50:?}, p99 {p99:?}",
        backlog * 200 / 1_000_000
    );
    assert!(
        fresh_acked_at < backlog_done_at,
        "the new events must be acknowledged while the backlog is still draining"
    );
    assert!(
        p99 < Duration::from_millis(500),
        "ack latency p99 {p99:?} during replay"
    );
}
