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
