//! Buffer failures operators reported in Fluentd, Fluent Bit and Vector, each shown not to
//! happen here. The issue is named in each test's doc comment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use ferry_buffer::fault::FaultyStorage;
use ferry_buffer::{
    AppendError, Buffer, BufferConfig, ChunkId, OverflowAction, RetryDecision, RetryPolicy,
};
use proptest::prelude::*;

fn crash_with_staged(dir: &Path, key: &str, ids: &[u64]) {
    let (buffer, _) = Buffer::open(small_file_config(dir), "out").unwrap();
    for &i in ids {
        buffer.append(&tag(key), &entry(i, 500), 1).unwrap();
    }
}

fn ids_in(buffer: &Buffer) -> Vec<u64> {
    let mut v: Vec<u64> = drain_ids(buffer).into_iter().flat_map(|(_, i)| i).collect();
    v.sort();
    v
}

fn payload_bytes_on_disk(dir: &Path) -> u64 {
    files_with_suffix(dir, ".payload")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// fluent/fluentd#1638: after a power cut the chunk's tail is zeros (size persisted, data
/// not); the whole chunk never sent. Here the bad tail is cut and the rest is sent.
#[test]
fn power_cut_zeroed_tail_is_cut_and_the_rest_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    crash_with_staged(dir.path(), "a", &[1, 2, 3]);
    let p = &files_with_suffix(dir.path(), ".payload")[0];
    let mut bytes = fs::read(p).unwrap();
    let n = bytes.len();
    bytes[n - 300..].fill(0);
    fs::write(p, &bytes).unwrap();
    let (buffer, report) = Buffer::open(small_file_config(dir.path()), "out").unwrap();
    assert_eq!(report.torn_tails.len(), 1);
    assert_eq!(ids_in(&buffer), vec![1, 2]);
}

/// fluent/fluentd#1760, fluent/fluent-bit#2475 (and #2472, #4278, #5265, #5003, #4618,
/// #11847): broken chunks make resume fail in a loop, or the process refuses to start. Here
/// open succeeds, the broken chunk is moved aside once, and the next start is clean.
#[test]
fn broken_chunks_never_cause_an_error_loop_or_a_failed_start() {
    let dir = tempfile::tempdir().unwrap();
    crash_with_staged(dir.path(), "a", &[1]);
    crash_with_staged(dir.path(), "b", &[2]);
    let j = &files_with_suffix(dir.path(), ".journal")[0];
    let mut bytes = fs::read(j).unwrap();
    bytes[20] ^= 0xff;
    fs::write(j, &bytes).unwrap();
    let (buffer, report) = Buffer::open(small_file_config(dir.path()), "out").unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(ids_in(&buffer).len(), 1);
    drop(buffer);
    let (_, again) = Buffer::open(small_file_config(dir.path()), "out").unwrap();
    assert!(again.is_clean(), "{again:?}");
}

/// fluent/fluentd#3970 (PRs #4025, #4027, #4028): broken chunks should be backed up with a
/// diagnosis. Here the original bytes are kept in quarantine next to a reason file.
#[test]
fn quarantined_chunks_keep_their_bytes_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    crash_with_staged(dir.path(), "a", &[1, 2]);
    let j = files_with_suffix(dir.path(), ".journal").remove(0);
    let original = fs::read(&j).unwrap();
    fs::write(&j, &original[..40]).unwrap();
    let (_b, report) = Buffer::open(small_file_config(dir.path()), "out").unwrap();
    let q = dir.path().join("quarantine");
    let reason = fs::read_to_string(&files_with_suffix(&q, ".reason")[0]).unwrap();
    assert!(reason.contains("header"), "{reason}");
    assert_eq!(
        fs::read(&files_with_suffix(&q, ".journal")[0]).unwrap(),
        &original[..40]
    );
    let name = j.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.contains(&report.quarantined[0].id.to_hex()));
}

/// fluent/fluentd#1768: a zero-byte chunk and meta after an ungraceful shutdown break every
/// later start. Here they are deleted and reported.
#[test]
fn zero_byte_chunk_and_meta_do_not_break_start() {
    let dir = tempfile::tempdir().unwrap();
    let id = ChunkId::generate(SystemTime::now()).to_hex();
    fs::write(dir.path().join(format!("out.{id}.payload")), b"").unwrap();
    fs::write(dir.path().join(format!("out.{id}.journal")), b"").unwrap();
    let (buffer, report) = Buffer::open(small_file_config(dir.path()), "out").unwrap();
    assert_eq!(report.removed_empty.len(), 2);
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
}

/// fluent/fluentd#1698 and #2326: on ENOSPC data was thrown away and chunks corrupted. Here the
/// refused append is truncated away, acknowledged data is intact, and the error tells the
/// input to pause and retry.
#[test]
fn disk_full_loses_no_acknowledged_data_and_tells_the_input_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FaultyStorage::new();
    let faults = storage.faults();
    let config = small_file_config(dir.path());
    let (buffer, _) = Buffer::open_with_storage(config.clone(), "out", Arc::new(storage)).unwrap();
    buffer.append(&tag("a"), &entry(1, 500), 1).unwrap();
    faults.set_space_left(Some(100));
    let err = buffer.append(&tag("a"), &entry(2, 500), 1).unwrap_err();
    assert!(err.is_retryable() && !err.is_overflow());
    drop(buffer);
    let (buffer, report) = Buffer::open(config, "out").unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(ids_in(&buffer), vec![1]);
}

/// fluent/fluentd#2593: thousands of empty files exhaust inodes. Here failed chunk creations
/// leave nothing, and empty chunks found at start are deleted.
#[test]
fn failed_or_empty_chunks_do_not_accumulate_files() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FaultyStorage::new();
    let faults = storage.faults();
    let (buffer, _) =
        Buffer::open_with_storage(small_file_config(dir.path()), "out", Arc::new(storage)).unwrap();
    faults.set_space_left(Some(0));
    for i in 0..200 {
        assert!(
            buffer
                .append(&tag(&format!("t{i}")), &entry(i, 100), 1)
                .is_err()
        );
    }
    let files = fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 1, "only the lock file");
}

/// fluent/fluentd#2411, #1964: total_limit_size accounting did not match disk usage. Here the
/// byte gauge equals the payload bytes on disk through appends, acks, a crash and a torn tail.
#[test]
fn byte_accounting_matches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_file_config(dir.path());
    let (buffer, _) = Buffer::open(config.clone(), "out").unwrap();
    for i in 0..100 {
        buffer
            .append(&tag(&format!("k{}", i % 3)), &entry(i, 900 + i as usize), 1)
            .unwrap();
    }
    assert_eq!(
        buffer.stats().total_bytes,
        payload_bytes_on_disk(dir.path())
    );
    buffer.flush_all();
    let c = buffer.take(far_future()).unwrap();
    buffer.ack(c).unwrap();
    assert_eq!(
        buffer.stats().total_bytes,
        payload_bytes_on_disk(dir.path())
    );
    buffer.append(&tag("k0"), &entry(1000, 900), 1).unwrap();
    drop(buffer);
    let p = files_with_suffix(dir.path(), ".payload").pop().unwrap();
    OpenOptions::new()
        .append(true)
        .open(p)
        .unwrap()
        .write_all(b"torn bytes")
        .unwrap();
    let (buffer, _) = Buffer::open(config, "out").unwrap();
    assert_eq!(
        buffer.stats().total_bytes,
        payload_bytes_on_disk(dir.path())
    );
}

/// fluent/fluentd#2698: restoring staged chunks with identical metadata mis-merged them. Here
/// each is recovered as its own chunk with its own content.
#[test]
fn staged_chunks_with_the_same_key_are_never_merged() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    crash_with_staged(dir.path(), "same", &[1, 2]);
    crash_with_staged(other.path(), "same", &[3, 4]);
    for p in fs::read_dir(other.path()).unwrap() {
        let p = p.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".payload") || name.ends_with(".journal") {
            fs::rename(&p, dir.path().join(name)).unwrap();
        }
    }
    let (buffer, report) = Buffer::open(small_file_config(dir.path()), "out").unwrap();
    assert_eq!(report.recovered.len(), 2);
    let chunks = drain_ids(&buffer);
    let mut contents: Vec<Vec<u64>> = chunks.into_iter().map(|(_, ids)| ids).collect();
    contents.sort();
    assert_eq!(contents, vec![vec![1, 2], vec![3, 4]]);
}

/// uken/fluent-plugin-elasticsearch#748: drop_oldest_chunk found "no queued chunks to be
/// dropped" while the overflow persisted. Here a staged chunk is dropped instead.
#[test]
fn drop_oldest_chunk_makes_room_even_with_nothing_queued() {
    let mut c = BufferConfig::memory();
    c.chunk_limit_size = 4_000;
    c.total_limit_size = 8_000;
    c.overflow_action = OverflowAction::DropOldestChunk;
    c.flush_mode = ferry_buffer::FlushMode::Lazy;
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    for i in 0..100u64 {
        buffer
            .append(&tag(&format!("t{i}")), &entry(i, 1_004), 1)
            .unwrap();
    }
    assert_eq!(buffer.stats().queue_length, 0);
    assert_eq!(buffer.stats().dropped_chunks, 92);
}

/// kube-logging/logging-operator#289: 256 MB file chunks blew a 200 MB memory limit. Here a
/// chunk is streamed with reads no larger than the caller's buffer.
#[test]
fn large_file_chunks_stream_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_file_config(dir.path());
    c.chunk_limit_size = 16 * 1024 * 1024;
    c.total_limit_size = 64 * 1024 * 1024;
    let storage = FaultyStorage::new();
    let faults = storage.faults();
    let (buffer, _) = Buffer::open_with_storage(c, "out", Arc::new(storage)).unwrap();
    for i in 0..600 {
        buffer.append(&tag("a"), &entry(i, 20_000), 1).unwrap();
    }
    buffer.flush_all();
    let chunk = buffer.take(far_future()).unwrap();
    assert!(chunk.bytes() > 10_000_000);
    faults.reset_read_stats();
    let data = read_all(&chunk);
    assert_eq!(data.len() as u64, chunk.bytes());
    assert!(faults.max_read_len() <= 8192);
    assert_eq!(faults.read_bytes(), chunk.bytes());
}

/// fluent/fluent-bit#309, #1364: a retry limit of 1 silently discarded data. Here the default
/// budget is Fluentd's 72 h (many retries), and giving up deletes nothing by itself.
#[test]
fn default_retries_are_generous_and_giving_up_deletes_nothing() {
    let policy = RetryPolicy::try_new(&ferry_buffer::RetryConfig::default()).unwrap();
    let mut state = ferry_buffer::RetryState::default();
    let mut now = at(1_000_000);
    let mut retries = 0;
    while let ferry_buffer::retry::RetryVerdict::RetryAt(t) =
        policy.on_failure(&mut state, now, 0.0)
    {
        retries += 1;
        now = t;
    }
    assert!(retries >= 17, "{retries}");
    let mut c = BufferConfig::memory();
    c.retry.retry_max_times = Some(0);
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
    buffer.flush_all();
    let chunk = buffer.take(far_future()).unwrap();
    let RetryDecision::GiveUp(chunk) = buffer.nack(chunk, SystemTime::now()) else {
        panic!()
    };
    assert_eq!(buffer.stats().total_records, 1);
    buffer.rollback(chunk);
    assert!(buffer.take(far_future()).is_some());
}

/// fluent/fluent-bit#1903, #5014, #10334, #9115, #8101: inputs paused on a full buffer never
/// resumed. Here a blocked append resumes on the ack that frees space, its wait is bounded by
/// a deadline, and the stall is visible in the stats.
#[test]
fn blocked_appends_resume_are_bounded_and_visible() {
    let mut c = BufferConfig::memory();
    c.chunk_limit_size = 2_000;
    c.total_limit_size = 2_000;
    c.overflow_action = OverflowAction::Block;
    c.overflow_block_timeout = Some(Duration::from_millis(10));
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 1_904), 1).unwrap();
    buffer.flush_all();
    let err = buffer.append(&tag("a"), &entry(2, 1_004), 1).unwrap_err();
    assert!(matches!(err, AppendError::BlockTimeout { .. }));
    assert_eq!(buffer.stats().blocked_appends, 1);
    assert!((buffer.stats().available_space_ratio - 5.0).abs() < 1e-9);
    let chunk = buffer.take(far_future()).unwrap();
    buffer.ack(chunk).unwrap();
    buffer.append(&tag("a"), &entry(2, 1_004), 1).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    // vectordotdev/vector#18336, #17644: disk buffer records "unable to be deserialized" and an
    // infinite loop on corruption after a hard reset. Here arbitrary file contents are
    // recovered or quarantined, and open always returns.
    #[test]
    fn arbitrary_chunk_files_never_hang_or_panic_recovery(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        ferry_buffer::fuzzing::recover_chunk(&data);
    }
}

/// vectordotdev/vector#16231: partial writes corrupted the buffer. Here a write cut short by
/// the disk is truncated away and the chunk stays readable.
#[test]
fn partial_writes_leave_no_partial_record() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FaultyStorage::new();
    let faults = storage.faults();
    let config = small_file_config(dir.path());
    let (buffer, _) = Buffer::open_with_storage(config.clone(), "out", Arc::new(storage)).unwrap();
    buffer.append(&tag("a"), &entry(1, 800), 1).unwrap();
    faults.set_short_writes(true);
    faults.set_space_left(Some(300));
    assert!(buffer.append(&tag("a"), &entry(2, 800), 1).is_err());
    faults.set_space_left(None);
    buffer.append(&tag("a"), &entry(3, 800), 1).unwrap();
    drop(buffer);
    let (buffer, report) = Buffer::open(config, "out").unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(ids_in(&buffer), vec![1, 3]);
}

/// vectordotdev/vector#23068: the whole disk buffer was loaded at start (OOM). Here recovery
/// reads journals and tails in bounded pieces and defers payload verification.
#[test]
fn start_does_not_load_the_backlog_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_file_config(dir.path());
    c.chunk_limit_size = 4 * 1024 * 1024;
    c.total_limit_size = 64 * 1024 * 1024;
    {
        let (buffer, _) = Buffer::open(c.clone(), "out").unwrap();
        for i in 0..1000 {
            buffer
                .append(&tag(&format!("k{}", i % 4)), &entry(i, 20_000), 1)
                .unwrap();
        }
    }
    let storage = FaultyStorage::new();
    let faults = storage.faults();
    let (_buffer, report) = Buffer::open_with_storage(c, "out", Arc::new(storage)).unwrap();
    let total: u64 = report.recovered.iter().map(|r| r.bytes).sum();
    assert!(total > 19_000_000);
    assert!(faults.max_read_len() <= 64 * 1024);
    assert!(
        faults.read_bytes() < total / 4,
        "read {} of {}",
        faults.read_bytes(),
        total
    );
}

/// vectordotdev/vector#26035: file ids wrapped around at 65 534. Here chunk ids are 128-bit
/// (time plus randomness) and do not repeat.
#[test]
fn chunk_ids_do_not_wrap_or_repeat() {
    let now = SystemTime::now();
    let ids: std::collections::HashSet<ChunkId> =
        (0..100_000).map(|_| ChunkId::generate(now)).collect();
    assert_eq!(ids.len(), 100_000);
}

/// vectordotdev/vector#22946: a single event stayed in the buffer until the next one arrived.
/// Here time alone queues it and `next_due` tells the flusher when.
#[test]
fn a_lone_event_is_flushed_by_time_alone() {
    let (buffer, _) = Buffer::open(BufferConfig::memory(), "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 100), 1).unwrap();
    let due = buffer.next_due().unwrap();
    buffer.enqueue_due(due);
    assert!(buffer.take(due).is_some());
}

/// vectordotdev/vector#20322: buffer metrics were mislabelled. Here drops, quarantines and
/// refusals are separate counters that move only with their own events.
#[test]
fn drop_quarantine_and_refusal_counters_are_distinct() {
    let mut c = BufferConfig::memory();
    c.chunk_limit_size = 2_000;
    c.total_limit_size = 2_000;
    c.overflow_action = OverflowAction::DropOldestChunk;
    let (buffer, _) = Buffer::open(c, "m").unwrap();
    buffer.append(&tag("a"), &entry(1, 1_504), 1).unwrap();
    buffer.flush_all();
    buffer.append(&tag("b"), &entry(2, 1_504), 1).unwrap();
    let s = buffer.stats();
    assert_eq!(
        (s.dropped_chunks, s.quarantined_chunks, s.append_errors),
        (1, 0, 0)
    );
    buffer.flush_all();
    let chunk = buffer.take(far_future()).unwrap();
    buffer.quarantine(chunk, "test").unwrap();
    let s = buffer.stats();
    assert_eq!(
        (s.dropped_chunks, s.quarantined_chunks, s.append_errors),
        (1, 1, 0)
    );
    assert!(buffer.append(&tag("c"), &entry(3, 5_004), 1).is_err());
    assert_eq!(buffer.stats().append_errors, 1);
}
