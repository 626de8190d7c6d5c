//! Fluentd's buffer semantics: flush modes, chunk limits, compression, retries, rollback,
//! stats, shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::time::{Duration, SystemTime};

use common::*;
use ferry_buffer::{
    AppendError, Buffer, BufferConfig, ChunkKey, Compress, FlushMode, RetryDecision,
};

fn memory() -> BufferConfig {
    let mut c = BufferConfig::memory();
    c.retry.retry_randomize = false;
    c
}

#[test]
fn interval_mode_queues_a_staged_chunk_after_flush_interval_even_without_more_events() {
    let (buffer, _) = Buffer::open(memory(), "m").unwrap();
    let t0 = SystemTime::now();
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
    let due = buffer.next_due().unwrap();
    assert!(
        due >= t0 + Duration::from_secs(60) && due <= SystemTime::now() + Duration::from_secs(60)
    );
    buffer.enqueue_due(due - Duration::from_secs(1));
    assert!(buffer.take(far_future()).is_none(), "not due yet");
    buffer.enqueue_due(due);
    let chunk = buffer.take(due).unwrap();
    assert_eq!(parse_ids(&read_all(&chunk)), vec![1]);
}

#[test]
fn lazy_mode_with_timekey_queues_after_the_slice_and_timekey_wait() {
    let mut c = memory();
    c.timekey = Some(Duration::from_secs(3600));
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    let key = ChunkKey {
        tag: Some("a".into()),
        timekey: Some(7200),
        variables: vec![],
    };
    buffer.append(&key, &entry(1, 100), 1).unwrap();
    let due = at(7200 + 3600 + 600);
    assert_eq!(buffer.next_due(), Some(due));
    buffer.enqueue_due(due - Duration::from_secs(1));
    assert_eq!(buffer.stats().queue_length, 0);
    buffer.enqueue_due(due);
    assert_eq!(buffer.stats().queue_length, 1);
    assert_eq!(buffer.stats().oldest_timekey, Some(7200));
}

#[test]
fn lazy_mode_without_timekey_queues_only_when_full_or_flushed() {
    let mut c = memory();
    c.flush_mode = FlushMode::Lazy;
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
    assert_eq!(buffer.next_due(), None);
    buffer.enqueue_due(far_future());
    assert_eq!(buffer.stats().queue_length, 0);
    buffer.flush_all();
    assert_eq!(buffer.stats().queue_length, 1);
}

#[test]
fn immediate_mode_queues_every_append() {
    let mut c = memory();
    c.flush_mode = FlushMode::Immediate;
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    for i in 0..3 {
        buffer.append(&tag("a"), &entry(i, 100), 1).unwrap();
    }
    assert_eq!(buffer.stats().queue_length, 3);
    assert_eq!(buffer.stats().stage_length, 0);
}

#[test]
fn a_chunk_is_queued_once_it_reaches_the_full_threshold() {
    let mut c = memory();
    c.chunk_limit_size = 10_000;
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    for i in 0..9 {
        buffer.append(&tag("a"), &entry(i, 1_004), 1).unwrap();
    }
    assert_eq!(buffer.stats().queue_length, 0, "9000 < 95 % of 10000");
    buffer.append(&tag("a"), &entry(9, 504), 1).unwrap();
    assert_eq!(buffer.stats().queue_length, 1, "9500 >= 95 %");
}

#[test]
fn a_lower_chunk_full_threshold_queues_a_chunk_sooner() {
    let mut c = memory();
    c.chunk_limit_size = 10_000;
    c.chunk_full_threshold = 0.5;
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    for i in 0..4 {
        buffer.append(&tag("a"), &entry(i, 1_004), 1).unwrap();
    }
    assert_eq!(buffer.stats().queue_length, 0, "4000 < 50 % of 10000");
    buffer.append(&tag("a"), &entry(4, 1_004), 1).unwrap();
    assert_eq!(buffer.stats().queue_length, 1, "5000 >= 50 %");
}

#[test]
fn flush_interval_and_timekey_wait_set_when_a_staged_chunk_is_due() {
    let mut c = memory();
    c.flush_interval = Duration::from_secs(5);
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    let t0 = SystemTime::now();
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
    let due = buffer.next_due().unwrap();
    assert!(
        due >= t0 + Duration::from_secs(5) && due <= SystemTime::now() + Duration::from_secs(5),
        "flush_interval 5s"
    );
    let mut c = memory();
    c.timekey = Some(Duration::from_secs(3600));
    c.timekey_wait = Duration::from_secs(30);
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    let key = ChunkKey {
        tag: Some("a".into()),
        timekey: Some(7200),
        variables: vec![],
    };
    buffer.append(&key, &entry(1, 100), 1).unwrap();
    assert_eq!(
        buffer.next_due(),
        Some(at(7200 + 3600 + 30)),
        "timekey_wait 30s"
    );
}

#[test]
fn chunk_limit_records_splits_chunks_and_refuses_oversized_appends() {
    let mut c = memory();
    c.chunk_limit_records = Some(4);
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    for i in 0..6 {
        buffer.append(&tag("a"), &entry(i, 100), 1).unwrap();
    }
    let sizes: Vec<usize> = drain_ids(&buffer)
        .iter()
        .map(|(_, ids)| ids.len())
        .collect();
    assert_eq!(sizes, vec![4, 2]);
    let err = buffer
        .append(&tag("a"), &entries(&[1, 2, 3, 4, 5], 100), 5)
        .unwrap_err();
    assert!(matches!(
        err,
        AppendError::TooManyRecords {
            records: 5,
            limit: 4
        }
    ));
}

#[test]
fn gzip_chunks_are_multi_member_gzip_streams_split_on_members() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_file_config(dir.path());
    c.compress = Compress::Gzip;
    c.segment_target_size = 1;
    let (buffer, _) = Buffer::open(c, "g").unwrap();
    let mut plain = Vec::new();
    for i in 0..5 {
        let e = entries(&[i * 2, i * 2 + 1], 700);
        plain.extend_from_slice(&e);
        buffer.append(&tag("a"), &e, 2).unwrap();
    }
    buffer.flush_all();
    let chunk = buffer.take(far_future()).unwrap();
    assert!(chunk.compressed());
    assert_eq!(chunk.records(), 10);
    let stored = read_all(&chunk);
    assert!(stored.len() < plain.len());
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&stored[..]).read_to_string_lossy(&mut out);
    assert_eq!(out, plain);
    assert_eq!(chunk.segments().len(), 5);
    for (i, seg) in chunk.segments().iter().enumerate() {
        let piece = chunk.read_range(seg.offset, seg.len as usize).unwrap();
        let mut one = Vec::new();
        flate2::read::GzDecoder::new(&piece[..]).read_to_string_lossy(&mut one);
        assert_eq!(parse_ids(&one), vec![i as u64 * 2, i as u64 * 2 + 1]);
    }
}

trait ReadAllBytes {
    fn read_to_string_lossy(&mut self, out: &mut Vec<u8>);
}
impl<R: Read> ReadAllBytes for R {
    fn read_to_string_lossy(&mut self, out: &mut Vec<u8>) {
        let mut buf = [0u8; 4096];
        loop {
            let n = self.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }
}

#[test]
fn nack_schedules_the_retry_and_take_respects_it() {
    let (buffer, _) = Buffer::open(memory(), "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
    buffer.flush_all();
    let t = SystemTime::now();
    let chunk = buffer.take(t).unwrap();
    let RetryDecision::RetryAt(next) = buffer.nack(chunk, t) else {
        panic!("retry expected")
    };
    assert_eq!(next, t + Duration::from_secs(1));
    assert!(buffer.take(t).is_none());
    assert_eq!(buffer.next_due(), Some(next));
    let chunk = buffer.take(next).unwrap();
    assert_eq!(chunk.retry().first_failure, Some(t));
    let RetryDecision::RetryAt(second) = buffer.nack(chunk, next) else {
        panic!()
    };
    assert_eq!(second, next + Duration::from_secs(2));
    assert_eq!(buffer.stats().retry_count, 2);
}

#[test]
fn exhausted_retries_switch_to_secondary_then_give_up_without_deleting() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_file_config(dir.path());
    c.retry.retry_randomize = false;
    c.retry.retry_timeout = Duration::from_secs(10);
    c.retry.has_secondary = true;
    let (buffer, _) = Buffer::open(c, "s").unwrap();
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
    buffer.flush_all();
    let mut now = SystemTime::now();
    let mut saw_secondary = false;
    let given_up = loop {
        let chunk = buffer.take(now).expect("chunk ready at its retry time");
        match buffer.nack(chunk, now) {
            RetryDecision::RetryAt(t) => now = t,
            RetryDecision::UseSecondary(chunk) => {
                saw_secondary = true;
                assert!(chunk.retry().secondary);
                // The secondary fails too.
                match buffer.nack(chunk, now) {
                    RetryDecision::RetryAt(t) => now = t,
                    other => panic!("{other:?}"),
                }
            }
            RetryDecision::GiveUp(chunk) => break chunk,
        }
    };
    assert!(saw_secondary);
    assert_eq!(
        buffer.stats().total_records,
        1,
        "giving up deletes nothing by itself"
    );
    let path = buffer
        .quarantine(given_up, "retries exhausted")
        .unwrap()
        .unwrap();
    assert!(path.starts_with(dir.path().join("quarantine")));
    assert_eq!(parse_ids(&std::fs::read(&path).unwrap()), vec![1]);
    assert_eq!(buffer.stats().total_records, 0);
    assert_eq!(buffer.stats().quarantined_chunks, 1);
}

#[test]
fn rollback_returns_a_chunk_to_its_place_with_its_retry_state() {
    let (buffer, _) = Buffer::open(memory(), "m").unwrap();
    for k in ["a", "b"] {
        buffer.append(&tag(k), &entry(1, 100), 1).unwrap();
        buffer.flush_all();
    }
    let a = buffer.take(far_future()).unwrap();
    let b = buffer.take(far_future()).unwrap();
    assert_eq!(a.key(), &tag("a"));
    buffer.rollback(b);
    buffer.rollback(a);
    assert_eq!(buffer.take(far_future()).unwrap().key(), &tag("a"));
}

#[test]
fn dropping_an_unsettled_chunk_handle_rolls_it_back() {
    let (buffer, _) = Buffer::open(memory(), "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
    buffer.flush_all();
    drop(buffer.take(far_future()).unwrap());
    assert!(buffer.take(far_future()).is_some());
}

#[test]
fn chunk_ids_and_retry_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_file_config(dir.path());
    let (id, first_failure);
    {
        let (buffer, _) = Buffer::open(c.clone(), "r").unwrap();
        buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
        buffer.flush_all();
        let chunk = buffer.take(far_future()).unwrap();
        id = chunk.unique_id();
        let t = at(1_000_000);
        buffer.nack(chunk, t);
        let chunk = buffer.take(far_future()).unwrap();
        buffer.nack(chunk, t + Duration::from_secs(1));
        first_failure = t;
    }
    let (buffer, _) = Buffer::open(c, "r").unwrap();
    let chunk = buffer
        .take(SystemTime::now())
        .expect("retried at once after a restart");
    assert_eq!(chunk.unique_id(), id);
    assert_eq!(chunk.retry().steps, 1);
    assert_eq!(chunk.retry().first_failure, Some(first_failure));
}

#[test]
fn a_chunk_handle_from_before_a_restart_cannot_delete_the_recovered_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_file_config(dir.path());
    let (old, stale) = Buffer::open(c.clone(), "r")
        .map(|(b, _)| {
            b.append(&tag("a"), &entry(1, 100), 1).unwrap();
            b.flush_all();
            let chunk = b.take(far_future()).unwrap();
            (b, chunk)
        })
        .unwrap();
    drop(old);
    let (buffer, _) = Buffer::open(c, "r").unwrap();
    assert!(matches!(
        buffer.ack(stale),
        Err(ferry_buffer::BufferError::UnknownChunk(_))
    ));
    assert_eq!(buffer.stats().total_records, 1);
}

#[test]
fn memory_chunks_are_quarantined_to_the_configured_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = memory();
    c.quarantine_dir = Some(dir.path().to_path_buf());
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    buffer.append(&tag("a"), &entries(&[1, 2], 100), 2).unwrap();
    buffer.flush_all();
    let chunk = buffer.take(far_future()).unwrap();
    let path = buffer.quarantine(chunk, "rejected").unwrap().unwrap();
    assert_eq!(parse_ids(&std::fs::read(path).unwrap()), vec![1, 2]);
    assert_eq!(files_with_suffix(dir.path(), ".reason").len(), 1);
}

#[test]
fn stats_report_stage_queue_and_space_with_fluentd_names() {
    let mut c = memory();
    c.total_limit_size = 100_000;
    c.chunk_limit_size = 50_000;
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 10_004), 1).unwrap();
    buffer.flush_all();
    buffer.append(&tag("b"), &entry(2, 15_004), 1).unwrap();
    let s = buffer.stats();
    assert_eq!((s.stage_length, s.stage_byte_size), (1, 15_000));
    assert_eq!((s.queue_length, s.queue_byte_size), (1, 10_000));
    assert_eq!(s.total_bytes, 25_000);
    assert!((s.available_space_ratio - 75.0).abs() < 1e-9);
}

#[test]
fn flush_at_shutdown_chooses_whether_close_queues_the_staged_chunks() {
    for (flush_at_shutdown, queued) in [(Some(false), 0), (Some(true), 1)] {
        let mut c = memory();
        c.flush_at_shutdown = flush_at_shutdown;
        let (buffer, _) = Buffer::open(c, "m").unwrap();
        buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
        buffer.close();
        let stats = buffer.stats();
        assert_eq!(
            (stats.queue_length, stats.stage_length),
            (queued, 1 - queued),
            "{flush_at_shutdown:?}"
        );
    }
}

#[test]
fn close_seals_staged_memory_chunks_and_refuses_later_appends() {
    let (buffer, _) = Buffer::open(memory(), "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
    buffer.close();
    assert!(matches!(
        buffer.append(&tag("a"), &entry(2, 100), 1),
        Err(AppendError::Closed)
    ));
    let chunk = buffer
        .take(far_future())
        .expect("flush_at_shutdown sealed it");
    buffer.ack(chunk).unwrap();
}

#[test]
fn an_empty_append_is_a_no_op() {
    let (buffer, _) = Buffer::open(memory(), "m").unwrap();
    let outcome = buffer.append(&tag("a"), &[], 0).unwrap();
    assert_eq!(outcome.chunk, None);
    assert_eq!(buffer.stats().stage_length, 0);
}

#[test]
fn read_range_and_seek_address_any_part_of_a_file_chunk() {
    use std::io::{Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let (buffer, _) = Buffer::open(small_file_config(dir.path()), "f").unwrap();
    let data = entries(&[1, 2, 3], 1000);
    buffer.append(&tag("a"), &data, 3).unwrap();
    buffer.flush_all();
    let chunk = buffer.take(far_future()).unwrap();
    assert_eq!(&chunk.read_range(996, 996).unwrap()[..], &data[996..1992]);
    assert_eq!(
        chunk.read_range(2900, 1000).unwrap().len(),
        88,
        "clamped to the payload"
    );
    let mut r = chunk.reader().unwrap();
    r.seek(SeekFrom::End(-996)).unwrap();
    let mut tail = Vec::new();
    r.read_to_string_lossy(&mut tail);
    assert_eq!(parse_ids(&tail), vec![3]);
}

#[test]
fn reconfigure_applies_new_limits_to_a_running_buffer_and_keeps_what_it_holds() {
    let mut c = memory();
    c.total_limit_size = 1024;
    c.chunk_limit_size = 1024;
    let (buffer, _) = Buffer::open(c.clone(), "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 600), 1).unwrap();
    assert!(matches!(
        buffer.append(&tag("a"), &entry(2, 600), 1),
        Err(AppendError::Overflow { .. })
    ));
    let mut bigger = c.clone();
    bigger.total_limit_size = 4096;
    bigger.chunk_limit_size = 2048;
    buffer.reconfigure(bigger).unwrap();
    buffer.append(&tag("a"), &entry(2, 600), 1).unwrap();
    assert_eq!(buffer.stats().total_records, 2);
    buffer.flush_all();
    let chunk = buffer.take(far_future()).unwrap();
    assert_eq!(parse_ids(&read_all(&chunk)), vec![1, 2]);
    // Another type is another buffer.
    let dir = tempfile::tempdir().unwrap();
    assert!(buffer.reconfigure(BufferConfig::file(dir.path())).is_err());
    let mut invalid = c;
    invalid.chunk_limit_size = 0;
    assert!(buffer.reconfigure(invalid).is_err());
}

#[test]
fn flush_interval_zero_makes_a_staged_chunk_due_at_once() {
    let mut c = memory();
    c.flush_interval = std::time::Duration::ZERO;
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 10), 1).unwrap();
    let now = SystemTime::now();
    assert!(buffer.next_due().unwrap() <= now);
    buffer.enqueue_due(now);
    let chunk = buffer.take(now).expect("queued at the first enqueue");
    assert_eq!(parse_ids(&read_all(&chunk)), vec![1]);
}
