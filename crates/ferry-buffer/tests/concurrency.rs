//! Ingest never waits for replay, the flusher never waits for ingest, and group commit keeps
//! every acknowledged append.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use common::*;
use ferry_buffer::fault::FaultyStorage;
use ferry_buffer::{Buffer, BufferConfig, Durability};

fn big_config(dir: &std::path::Path) -> BufferConfig {
    let mut c = BufferConfig::file(dir);
    c.durability = Durability::Fsync;
    c.chunk_limit_size = 8 * 1024 * 1024;
    c.total_limit_size = 256 * 1024 * 1024;
    c
}

#[test]
fn appends_complete_while_a_reader_is_paused_in_the_middle_of_a_queued_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (buffer, _) = Buffer::open(big_config(dir.path()), "out").unwrap();
    let buffer = Arc::new(buffer);
    for i in 0..200 {
        buffer
            .append(&tag("backlog"), &entry(i, 20_000), 1)
            .unwrap();
    }
    buffer.flush_all();
    let chunk = buffer.take(far_future()).unwrap();
    let total = chunk.bytes();
    let (paused_tx, paused_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut r = chunk.reader().unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let n = r.read(&mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
        paused_tx.send(r.position()).unwrap();
        resume_rx.recv().unwrap();
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        (chunk, out)
    });
    let position = paused_rx.recv().unwrap();
    assert!(
        position > 0 && position < total,
        "reader is mid-chunk ({position} of {total})"
    );
    // The reader is parked mid-chunk and holds its handle: ingest and the flusher's other work
    // go on. (If any of this waited for the reader, the test would deadlock, not pass.)
    for i in 1000..1100 {
        buffer.append(&tag("live"), &entry(i, 2_000), 1).unwrap();
        buffer
            .append(&tag("backlog"), &entry(i + 1000, 2_000), 1)
            .unwrap();
    }
    buffer.flush_all();
    let other = buffer.take(far_future()).unwrap();
    assert_eq!(parse_ids(&read_all(&other)).len(), 100);
    buffer.ack(other).unwrap();
    resume_tx.send(()).unwrap();
    let (chunk, data) = reader.join().unwrap();
    assert_eq!(data.len() as u64, total);
    assert_eq!(parse_ids(&data), (0..200).collect::<Vec<_>>());
    buffer.ack(chunk).unwrap();
}

#[test]
fn appends_complete_while_take_verifies_a_recovered_chunk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (buffer, _) = Buffer::open(big_config(dir.path()), "out").unwrap();
        for i in 0..50 {
            buffer
                .append(&tag("backlog"), &entry(i, 20_000), 1)
                .unwrap();
        }
    }
    let storage = FaultyStorage::new();
    let faults = storage.faults();
    let (buffer, report) =
        Buffer::open_with_storage(big_config(dir.path()), "out", Arc::new(storage)).unwrap();
    assert_eq!(report.recovered.len(), 1);
    let buffer = Arc::new(buffer);
    faults.arm_read_gate();
    let taker = {
        let buffer = buffer.clone();
        std::thread::spawn(move || buffer.take(far_future()))
    };
    faults.wait_read_gate_parked();
    // take() is parked inside verification I/O: appends, stats and seals still run.
    for i in 100..150 {
        buffer.append(&tag("live"), &entry(i, 1_000), 1).unwrap();
    }
    assert_eq!(buffer.stats().stage_length, 1);
    buffer.flush_all();
    faults.release_read_gate();
    let chunk = taker.join().unwrap().expect("the recovered chunk");
    assert_eq!(parse_ids(&read_all(&chunk)), (0..50).collect::<Vec<_>>());
}

#[test]
fn group_commit_from_many_threads_keeps_every_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = big_config(dir.path());
    c.chunk_limit_size = 256 * 1024;
    let (buffer, _) = Buffer::open(c.clone(), "out").unwrap();
    let buffer = Arc::new(buffer);
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let buffer = buffer.clone();
            std::thread::spawn(move || {
                for i in 0..60 {
                    let key = tag(if i % 3 == 0 { "x" } else { "y" });
                    buffer.append(&key, &entry(t * 1000 + i, 3_000), 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(buffer);
    let (buffer, report) = Buffer::open(c, "out").unwrap();
    assert!(report.is_clean(), "{report:?}");
    let mut ids: Vec<u64> = drain_ids(&buffer)
        .into_iter()
        .flat_map(|(_, i)| i)
        .collect();
    ids.sort();
    let mut expect: Vec<u64> = (0..6u64)
        .flat_map(|t| (0..60).map(move |i| t * 1000 + i))
        .collect();
    expect.sort();
    assert_eq!(ids, expect);
}

#[test]
fn notify_hook_fires_when_a_chunk_is_staged_queued_and_when_space_frees() {
    let (buffer, _) = Buffer::open(BufferConfig::memory(), "m").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    buffer.set_notify(Arc::new(move || {
        c.fetch_add(1, Ordering::SeqCst);
    }));
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a new staged chunk wakes the flusher: its flush time may come before the flusher's timer"
    );
    buffer.append(&tag("a"), &entry(2, 100), 1).unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "an append to a staged chunk is no news to the flusher"
    );
    buffer.flush_all();
    let queued = calls.load(Ordering::SeqCst);
    assert!(queued >= 1);
    let chunk = buffer.take(far_future()).unwrap();
    buffer.ack(chunk).unwrap();
    assert!(calls.load(Ordering::SeqCst) > queued);
}
