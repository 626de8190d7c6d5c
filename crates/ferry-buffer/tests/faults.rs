//! Fault injection: short writes, a full disk, EIO and failing fsync. A refused append leaves
//! nothing visible, and the buffer recovers by itself once the disk does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use ferry_buffer::fault::FaultyStorage;
use ferry_buffer::{AppendError, Buffer, BufferConfig, DiskOp, Durability};

fn open(config: BufferConfig) -> (Buffer, Arc<ferry_buffer::fault::Faults>) {
    let storage = FaultyStorage::new();
    let faults = storage.faults();
    let (buffer, _) = Buffer::open_with_storage(config, "out", Arc::new(storage)).unwrap();
    (buffer, faults)
}

fn fsync_config(dir: &std::path::Path) -> BufferConfig {
    let mut c = BufferConfig::file(dir);
    c.durability = Durability::Fsync;
    c.chunk_limit_size = 1024 * 1024;
    c.total_limit_size = 8 * 1024 * 1024;
    c
}

fn payload_len(dir: &std::path::Path) -> u64 {
    files_with_suffix(dir, ".payload")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn short_writes_are_completed_and_the_data_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (buffer, faults) = open(fsync_config(dir.path()));
    faults.set_short_writes(true);
    for i in 0..20 {
        buffer.append(&tag("a"), &entries(&[i], 5000), 1).unwrap();
    }
    drop(buffer);
    let (buffer, report) = Buffer::open(fsync_config(dir.path()), "out").unwrap();
    assert!(report.is_clean(), "{report:?}");
    let ids: Vec<u64> = drain_ids(&buffer)
        .into_iter()
        .flat_map(|(_, ids)| ids)
        .collect();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
}

#[test]
fn disk_full_refuses_the_append_leaves_nothing_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (buffer, faults) = open(fsync_config(dir.path()));
    buffer.append(&tag("a"), &entries(&[1], 4000), 1).unwrap();
    let before = buffer.stats();
    let on_disk = payload_len(dir.path());
    // Room for part of the next append only: a short write, then ENOSPC.
    faults.set_space_left(Some(1500));
    let err = buffer
        .append(&tag("a"), &entries(&[2], 4000), 1)
        .unwrap_err();
    match &err {
        AppendError::Disk {
            op: DiskOp::Write,
            source,
            ..
        } => {
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull)
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(
        payload_len(dir.path()),
        on_disk,
        "partial write truncated away"
    );
    let after = buffer.stats();
    assert_eq!(after.total_bytes, before.total_bytes);
    assert_eq!(after.append_errors, 1);
    assert_eq!(after.disk_errors, 1);
    // Still full: still refused, still nothing visible.
    faults.set_space_left(Some(0));
    assert!(buffer.append(&tag("b"), &entries(&[3], 100), 1).is_err());
    // Space returns: the next append works, with no operator action.
    faults.set_space_left(None);
    buffer.append(&tag("a"), &entries(&[4], 4000), 1).unwrap();
    buffer.append(&tag("b"), &entries(&[5], 100), 1).unwrap();
    drop(buffer);
    let (buffer, report) = Buffer::open(fsync_config(dir.path()), "out").unwrap();
    assert!(
        report.quarantined.is_empty() && report.torn_tails.is_empty(),
        "{report:?}"
    );
    let mut ids: Vec<u64> = drain_ids(&buffer)
        .into_iter()
        .flat_map(|(_, ids)| ids)
        .collect();
    ids.sort();
    assert_eq!(ids, vec![1, 4, 5]);
}

#[test]
fn eio_on_write_refuses_the_append_and_the_next_one_works() {
    let dir = tempfile::tempdir().unwrap();
    let (buffer, faults) = open(fsync_config(dir.path()));
    buffer.append(&tag("a"), &entries(&[1], 300), 1).unwrap();
    faults.fail_next_writes(1);
    let err = buffer
        .append(&tag("a"), &entries(&[2], 300), 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::Disk {
                op: DiskOp::Write,
                ..
            }
        ),
        "{err:?}"
    );
    buffer.append(&tag("a"), &entries(&[3], 300), 1).unwrap();
    let ids: Vec<u64> = drain_ids(&buffer)
        .into_iter()
        .flat_map(|(_, ids)| ids)
        .collect();
    assert_eq!(ids, vec![1, 3]);
}

#[test]
fn eio_on_the_journal_record_truncates_the_payload_write_too() {
    let dir = tempfile::tempdir().unwrap();
    let (buffer, faults) = open(fsync_config(dir.path()));
    buffer.append(&tag("a"), &entries(&[1], 300), 1).unwrap();
    let on_disk = payload_len(dir.path());
    // The payload write of one piece succeeds, the journal write fails.
    faults.fail_next_writes(0);
    faults.set_space_left(Some(entries(&[2], 300).len() as u64));
    let err = buffer
        .append(&tag("a"), &entries(&[2], 300), 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::Disk {
                op: DiskOp::Write,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(payload_len(dir.path()), on_disk);
    faults.set_space_left(None);
    drop(buffer);
    let (buffer, report) = Buffer::open(fsync_config(dir.path()), "out").unwrap();
    assert!(report.is_clean(), "{report:?}");
    let ids: Vec<u64> = drain_ids(&buffer)
        .into_iter()
        .flat_map(|(_, ids)| ids)
        .collect();
    assert_eq!(ids, vec![1]);
}

#[test]
fn fsync_failure_refuses_the_append_and_keeps_only_committed_data() {
    let dir = tempfile::tempdir().unwrap();
    let (buffer, faults) = open(fsync_config(dir.path()));
    buffer.append(&tag("a"), &entries(&[1], 300), 1).unwrap();
    faults.fail_next_syncs(1);
    let err = buffer
        .append(&tag("a"), &entries(&[2], 300), 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::Disk {
                op: DiskOp::Sync,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        buffer.stats().total_records,
        1,
        "refused append not counted"
    );
    // The chunk that saw the failure is closed at its synced extent; appends continue in a
    // fresh chunk.
    buffer.append(&tag("a"), &entries(&[3], 300), 1).unwrap();
    assert_eq!(buffer.stats().queue_length, 1);
    drop(buffer);
    let (buffer, report) = Buffer::open(fsync_config(dir.path()), "out").unwrap();
    assert!(report.quarantined.is_empty(), "{report:?}");
    let ids: Vec<u64> = drain_ids(&buffer)
        .into_iter()
        .flat_map(|(_, ids)| ids)
        .collect();
    assert_eq!(ids, vec![1, 3]);
}

#[test]
fn os_cache_durability_never_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = fsync_config(dir.path());
    config.durability = Durability::OsCache;
    let (buffer, faults) = open(config);
    // Every sync would fail: with os_cache none is made, so every append succeeds.
    faults.fail_next_syncs(1_000);
    for id in 1..=3 {
        buffer.append(&tag("a"), &entries(&[id], 300), 1).unwrap();
    }
    assert_eq!(buffer.stats().total_records, 3);
    drop(buffer);
    let (buffer, faults) = open(fsync_config(dir.path()));
    faults.fail_next_syncs(1_000);
    assert!(
        buffer.append(&tag("a"), &entries(&[4], 300), 1).is_err(),
        "with fsync the same append fails"
    );
}

#[test]
fn failure_creating_a_chunk_is_an_append_error_and_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let (buffer, faults) = open(fsync_config(dir.path()));
    faults.set_space_left(Some(10));
    let err = buffer
        .append(&tag("a"), &entries(&[1], 300), 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::Disk {
                op: DiskOp::CreateChunk,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(files_with_suffix(dir.path(), ".payload").is_empty());
    assert!(files_with_suffix(dir.path(), ".journal").is_empty());
    faults.set_space_left(None);
    buffer.append(&tag("a"), &entries(&[2], 300), 1).unwrap();
}

#[test]
fn concurrent_appends_fail_together_when_their_shared_fsync_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (buffer, faults) = open(fsync_config(dir.path()));
    let buffer = Arc::new(buffer);
    buffer.append(&tag("a"), &entries(&[0], 300), 1).unwrap();
    faults.fail_next_syncs(1);
    let handles: Vec<_> = (1..=8u64)
        .map(|i| {
            let b = buffer.clone();
            std::thread::spawn(move || b.append(&tag("a"), &entries(&[i], 2000), 1).is_ok())
        })
        .collect();
    let ok: Vec<u64> = handles
        .into_iter()
        .zip(1..)
        .filter_map(|(h, i)| h.join().unwrap().then_some(i))
        .collect();
    assert!(
        ok.len() < 8,
        "at least the append whose sync failed is refused"
    );
    let mut present: Vec<u64> = drain_ids(&buffer)
        .into_iter()
        .flat_map(|(_, ids)| ids)
        .collect();
    present.sort();
    let mut expect = vec![0];
    expect.extend(ok);
    expect.sort();
    assert_eq!(
        present, expect,
        "exactly the acknowledged appends are present"
    );
}
