//! `total_limit_size` and the three overflow actions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ferry_buffer::{AppendError, Buffer, BufferConfig, OverflowAction};

fn config(action: OverflowAction) -> BufferConfig {
    let mut c = BufferConfig::memory();
    c.chunk_limit_size = 10_000;
    c.total_limit_size = 20_000;
    c.overflow_action = action;
    c
}

/// Fills the buffer with two full, queued chunks of 9 records of ~1000 bytes each.
fn fill(buffer: &Buffer) {
    let mut id = 0;
    for k in ["a", "b"] {
        for _ in 0..9 {
            buffer.append(&tag(k), &entry(id, 1004), 1).unwrap();
            id += 1;
        }
    }
    buffer.flush_all();
    assert_eq!(buffer.stats().queue_length, 2);
}

#[test]
fn throw_exception_refuses_the_append_and_accepts_again_after_an_ack() {
    let (buffer, _) = Buffer::open(config(OverflowAction::ThrowException), "o").unwrap();
    fill(&buffer);
    let err = buffer.append(&tag("c"), &entry(100, 3004), 1).unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::Overflow {
                size: 3000,
                limit: 20_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_overflow() && err.is_retryable());
    assert_eq!(buffer.stats().total_records, 18);
    let chunk = buffer.take(far_future()).unwrap();
    buffer.ack(chunk).unwrap();
    buffer.append(&tag("c"), &entry(100, 3004), 1).unwrap();
}

#[test]
fn block_waits_until_an_ack_frees_space_then_resumes() {
    let (buffer, _) = Buffer::open(config(OverflowAction::Block), "o").unwrap();
    let buffer = Arc::new(buffer);
    fill(&buffer);
    let done = Arc::new(AtomicBool::new(false));
    let appender = {
        let (buffer, done) = (buffer.clone(), done.clone());
        std::thread::spawn(move || {
            let r = buffer.append(&tag("c"), &entry(100, 3004), 1);
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    // Wait (bounded) until the appender is parked on the full buffer.
    let start = Instant::now();
    while buffer.stats().blocked_appends == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "appender never blocked"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        !done.load(Ordering::SeqCst),
        "no space was freed, so the append cannot have returned"
    );
    let chunk = buffer.take(far_future()).unwrap();
    buffer.ack(chunk).unwrap();
    let outcome = appender.join().unwrap().unwrap();
    assert!(outcome.dropped.is_empty());
    assert_eq!(buffer.stats().total_records, 10);
}

#[test]
fn block_gives_up_at_its_deadline() {
    let (buffer, _) = Buffer::open(config(OverflowAction::Block), "o").unwrap();
    fill(&buffer);
    let deadline = Instant::now() + Duration::from_millis(20);
    let err = buffer
        .append_until(&tag("c"), &entry(100, 3004), 1, Some(deadline))
        .unwrap_err();
    assert!(
        matches!(err, AppendError::BlockTimeout { size: 3000, .. }),
        "{err:?}"
    );
    assert!(Instant::now() >= deadline);
}

#[test]
fn block_is_released_by_close() {
    let (buffer, _) = Buffer::open(config(OverflowAction::Block), "o").unwrap();
    let buffer = Arc::new(buffer);
    fill(&buffer);
    let appender = {
        let buffer = buffer.clone();
        std::thread::spawn(move || buffer.append(&tag("c"), &entry(100, 3004), 1))
    };
    while buffer.stats().blocked_appends == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    buffer.close();
    assert!(matches!(appender.join().unwrap(), Err(AppendError::Closed)));
}

#[test]
fn drop_oldest_chunk_drops_the_oldest_queued_chunk_and_reports_it() {
    let (buffer, _) = Buffer::open(config(OverflowAction::DropOldestChunk), "o").unwrap();
    fill(&buffer);
    let outcome = buffer.append(&tag("c"), &entry(100, 3004), 1).unwrap();
    assert_eq!(outcome.dropped.len(), 1);
    assert_eq!(outcome.dropped[0].key, tag("a"));
    assert_eq!(outcome.dropped[0].records, 9);
    let stats = buffer.stats();
    assert_eq!(stats.dropped_chunks, 1);
    assert_eq!(stats.dropped_records, 9);
    let ids: Vec<u64> = drain_ids(&buffer)
        .into_iter()
        .flat_map(|(_, i)| i)
        .collect();
    assert_eq!(ids, (9..18).chain([100]).collect::<Vec<_>>());
}

#[test]
fn drop_oldest_chunk_drops_a_staged_chunk_when_nothing_is_queued() {
    let (buffer, _) = Buffer::open(config(OverflowAction::DropOldestChunk), "o").unwrap();
    for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
        for j in 0..4 {
            buffer
                .append(&tag(k), &entry((i * 10 + j) as u64, 1004), 1)
                .unwrap();
        }
    }
    assert_eq!(buffer.stats().queue_length, 0);
    let outcome = buffer.append(&tag("e"), &entry(99, 9004), 1).unwrap();
    assert_eq!(outcome.dropped.len(), 2, "{outcome:?}");
    assert_eq!(outcome.dropped[0].key, tag("a"));
    assert_eq!(outcome.dropped[1].key, tag("b"));
}

#[test]
fn drop_oldest_chunk_never_drops_chunks_in_flight() {
    let (buffer, _) = Buffer::open(config(OverflowAction::DropOldestChunk), "o").unwrap();
    fill(&buffer);
    let a = buffer.take(far_future()).unwrap();
    let b = buffer.take(far_future()).unwrap();
    let err = buffer.append(&tag("c"), &entry(100, 3004), 1).unwrap_err();
    assert!(matches!(err, AppendError::Overflow { .. }));
    buffer.ack(a).unwrap();
    buffer.ack(b).unwrap();
}

#[test]
fn a_single_append_over_the_chunk_limit_is_a_chunk_overflow_naming_its_size() {
    let (buffer, _) = Buffer::open(config(OverflowAction::Block), "o").unwrap();
    let err = buffer.append(&tag("a"), &entry(1, 12_004), 1).unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::ChunkOverflow {
                size: 12_000,
                limit: 10_000
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("12000 bytes"));
    assert!(!err.is_retryable());
}

#[test]
fn appends_that_do_not_fit_the_staged_chunk_start_a_new_one() {
    let (buffer, _) = Buffer::open(config(OverflowAction::ThrowException), "o").unwrap();
    for i in 0..5 {
        buffer.append(&tag("a"), &entry(i, 3004), 1).unwrap();
    }
    let chunks = drain_ids(&buffer);
    let sizes: Vec<usize> = chunks.iter().map(|(_, ids)| ids.len()).collect();
    assert_eq!(sizes, vec![3, 2]);
}
