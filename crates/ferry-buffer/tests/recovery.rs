//! Recovery at open: torn tails are truncated and reported, corrupt chunks are quarantined,
//! empty and orphan files are handled, and open never fails because of a broken chunk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use common::*;
use ferry_buffer::{Buffer, BufferConfig, QuarantineReason};

fn config(dir: &Path) -> BufferConfig {
    small_file_config(dir)
}

/// Writes `chunks` chunks of `per_chunk` appends each (keys differ, so each is its own
/// chunk), leaving them staged (as at a crash) unless `seal`.
fn populate(dir: &Path, chunks: u64, per_chunk: u64, seal: bool) {
    let (buffer, _) = Buffer::open(config(dir), "out").unwrap();
    for c in 0..chunks {
        for a in 0..per_chunk {
            let id = c * 1000 + a;
            buffer
                .append(&tag(&format!("k{c}")), &entries(&[id], 1000), 1)
                .unwrap();
        }
    }
    if seal {
        buffer.flush_all();
    }
}

fn chunk_files(dir: &Path) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    files_with_suffix(dir, ".payload")
        .into_iter()
        .map(|p| {
            let j = p.with_extension("journal");
            (p, j)
        })
        .collect()
}

fn all_ids(buffer: &Buffer) -> Vec<u64> {
    let mut ids: Vec<u64> = drain_ids(buffer).into_iter().flat_map(|(_, i)| i).collect();
    ids.sort();
    ids
}

#[test]
fn payload_torn_mid_append_is_truncated_to_the_last_whole_append_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 1, 3, false);
    let (payload, _) = chunk_files(dir.path()).remove(0);
    // A fourth append whose bytes reached the payload only partly and whose journal record
    // never got written.
    let mut f = OpenOptions::new().append(true).open(&payload).unwrap();
    f.write_all(&entry(3, 1000)[..500]).unwrap();
    drop(f);
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert_eq!(report.torn_tails.len(), 1, "{report:?}");
    assert_eq!(report.torn_tails[0].payload_bytes_removed, 500);
    assert!(report.quarantined.is_empty());
    assert_eq!(all_ids(&buffer), vec![0, 1, 2]);
    assert_eq!(buffer.stats().torn_tails, 1);
}

#[test]
fn payload_cut_inside_the_last_append_drops_that_append_only() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 1, 3, false);
    let (payload, _) = chunk_files(dir.path()).remove(0);
    let len = fs::metadata(&payload).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&payload)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert_eq!(report.torn_tails.len(), 1, "{report:?}");
    assert_eq!(report.torn_tails[0].appends_removed, 1);
    assert_eq!(report.torn_tails[0].records_removed, 1);
    assert_eq!(all_ids(&buffer), vec![0, 1]);
}

#[test]
fn unsynced_garbage_in_the_last_append_of_a_staged_chunk_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 1, 3, false);
    let (payload, _) = chunk_files(dir.path()).remove(0);
    let mut bytes = fs::read(&payload).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff;
    fs::write(&payload, &bytes).unwrap();
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert_eq!(report.torn_tails.len(), 1, "{report:?}");
    assert_eq!(all_ids(&buffer), vec![0, 1]);
}

#[test]
fn flipped_bytes_in_a_payload_quarantine_that_chunk_and_others_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3, 3, true);
    let (victim, _) = chunk_files(dir.path()).remove(1);
    let mut bytes = fs::read(&victim).unwrap();
    bytes[1200] ^= 0x55;
    fs::write(&victim, &bytes).unwrap();
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert_eq!(
        report.recovered.len(),
        3,
        "verification is deferred to take: {report:?}"
    );
    let ids = all_ids(&buffer);
    assert_eq!(ids.len(), 6, "two intact chunks of three records: {ids:?}");
    let quarantined = files_with_suffix(&dir.path().join("quarantine"), ".payload");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(
        fs::read(&quarantined[0]).unwrap(),
        bytes,
        "quarantined data kept as found"
    );
    assert!(files_with_suffix(&dir.path().join("quarantine"), ".reason").len() == 1);
    assert_eq!(buffer.stats().quarantined_chunks, 1);
    assert!(!victim.exists());
}

#[test]
fn garbage_journal_is_quarantined_and_open_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2, 2, true);
    let (_, journal) = chunk_files(dir.path()).remove(0);
    fs::write(
        &journal,
        b"this is not a journal at all, just garbage bytes.........",
    )
    .unwrap();
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    assert!(matches!(
        report.quarantined[0].reason,
        QuarantineReason::Header(_)
    ));
    assert!(report.quarantined[0].moved_to.exists());
    assert_eq!(all_ids(&buffer).len(), 2);
    assert_eq!(buffer.stats().quarantined_chunks, 1);
}

#[test]
fn zero_byte_journal_next_to_data_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2, 2, true);
    let (_, journal) = chunk_files(dir.path()).remove(0);
    fs::write(&journal, b"").unwrap();
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    assert!(matches!(
        report.quarantined[0].reason,
        QuarantineReason::EmptyJournalWithData(_)
    ));
    assert_eq!(all_ids(&buffer).len(), 2);
}

#[test]
fn corrupt_record_followed_by_valid_ones_quarantines_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 1, 4, true);
    let (_, journal) = chunk_files(dir.path()).remove(0);
    let mut bytes = fs::read(&journal).unwrap();
    let header = bytes.len() - 5 * 32; // four appends and a seal
    bytes[header + 32 + 9] ^= 1;
    fs::write(&journal, &bytes).unwrap();
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert!(matches!(
        report.quarantined[0].reason,
        QuarantineReason::JournalCorrupt { index: 1, .. }
    ));
    assert!(all_ids(&buffer).is_empty());
}

#[test]
fn sealed_chunk_with_missing_payload_bytes_is_quarantined_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 1, 3, true);
    let (payload, _) = chunk_files(dir.path()).remove(0);
    OpenOptions::new()
        .write(true)
        .open(&payload)
        .unwrap()
        .set_len(100)
        .unwrap();
    let (_buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert!(matches!(
        report.quarantined[0].reason,
        QuarantineReason::PayloadShort { .. }
    ));
}

#[test]
fn zero_byte_chunk_files_are_removed_and_open_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 1, 1, true);
    let id = "0123456789abcdef0123456789abcdef";
    fs::write(dir.path().join(format!("out.{id}.payload")), b"").unwrap();
    fs::write(dir.path().join(format!("out.{id}.journal")), b"").unwrap();
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert_eq!(report.removed_empty.len(), 2, "{report:?}");
    assert!(report.quarantined.is_empty());
    assert_eq!(all_ids(&buffer), vec![0]);
    buffer.append(&tag("x"), &entries(&[9], 100), 1).unwrap();
}

#[test]
fn a_journal_whose_payload_is_gone_is_a_finished_delivery_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2, 3, true);
    let (payload, journal) = chunk_files(dir.path()).remove(0);
    // A crash between the two deletions of a delivered chunk.
    fs::remove_file(&payload).unwrap();
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert!(report.quarantined.is_empty(), "{report:?}");
    assert_eq!(report.finished_purges, vec![journal.clone()]);
    assert!(!journal.exists());
    assert_eq!(all_ids(&buffer).len(), 3, "the other chunk is intact");
}

#[test]
fn orphan_payload_is_quarantined_and_orphan_empty_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let a = "00000000000000000000000000000001";
    let b = "00000000000000000000000000000002";
    fs::write(dir.path().join(format!("out.{a}.payload")), entry(1, 100)).unwrap();
    fs::write(dir.path().join(format!("out.{b}.payload")), b"").unwrap();
    fs::write(dir.path().join("unrelated.txt"), b"left alone").unwrap();
    let (_buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(
        report.quarantined[0].reason,
        QuarantineReason::OrphanPayload
    );
    assert_eq!(report.removed_empty.len(), 1);
    assert!(dir.path().join("unrelated.txt").exists());
}

#[test]
fn a_second_open_after_recovery_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 2, 3, false);
    let (payload, journal) = chunk_files(dir.path()).remove(0);
    OpenOptions::new()
        .append(true)
        .open(&payload)
        .unwrap()
        .write_all(b"torn")
        .unwrap();
    OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(&[7u8; 13])
        .unwrap();
    let (_, first) = Buffer::open(config(dir.path()), "out").unwrap();
    assert_eq!(first.torn_tails.len(), 1);
    let (buffer, second) = Buffer::open(config(dir.path()), "out").unwrap();
    assert!(second.is_clean(), "{second:?}");
    assert_eq!(all_ids(&buffer).len(), 6);
}

#[test]
fn a_buffer_directory_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (_a, _) = Buffer::open(config(dir.path()), "out").unwrap();
    let err = Buffer::open(config(dir.path()), "out").unwrap_err();
    assert!(
        matches!(err, ferry_buffer::OpenError::Locked { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    // Another buffer name in the same directory is independent.
    Buffer::open(config(dir.path()), "other").unwrap();
}

#[test]
fn recovered_chunks_keep_ids_keys_and_queue_order() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let (buffer, _) = Buffer::open(config(dir.path()), "out").unwrap();
        buffer.append(&tag("b"), &entries(&[1], 100), 1).unwrap();
        buffer.append(&tag("a"), &entries(&[2], 100), 1).unwrap();
        buffer.flush_all();
        buffer.append(&tag("a"), &entries(&[3], 100), 1).unwrap();
        before = drain_ids(&buffer);
        drop(buffer);
    }
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert_eq!(report.recovered.len(), 3);
    let after = drain_ids(&buffer);
    assert_eq!(before, after, "same chunk ids, contents and order");
}

#[test]
fn recovery_reads_in_bounded_pieces() {
    use ferry_buffer::fault::FaultyStorage;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.chunk_limit_size = 8 * 1024 * 1024;
    c.total_limit_size = 64 * 1024 * 1024;
    {
        let (buffer, _) = Buffer::open(c.clone(), "out").unwrap();
        for i in 0..380 {
            buffer.append(&tag("a"), &entries(&[i], 20_000), 1).unwrap();
        }
    }
    let storage = FaultyStorage::new();
    let faults = storage.faults();
    let (buffer, report) =
        Buffer::open_with_storage(c, "out", std::sync::Arc::new(storage)).unwrap();
    assert_eq!(report.recovered.len(), 1);
    assert!(report.recovered[0].bytes > 7 * 1024 * 1024);
    assert!(
        faults.max_read_len() <= 64 * 1024,
        "max read {}",
        faults.max_read_len()
    );
    let chunk = buffer.take(far_future()).unwrap();
    assert!(
        faults.max_read_len() <= 64 * 1024,
        "verification reads are bounded too"
    );
    faults.reset_read_stats();
    let data = read_all(&chunk);
    assert_eq!(data.len() as u64, chunk.bytes());
    assert!(
        faults.max_read_len() <= 8192,
        "the reader reads into the caller's buffer only"
    );
}

#[test]
fn notes_come_back_with_their_chunk_after_a_restart_in_order() {
    use ferry_buffer::Note;
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 1, 3, true);
    let notes: Vec<Note> = (0..5)
        .map(|i| Note {
            code: 2,
            small: i,
            a: u64::from(i) * 10,
            b: 10,
        })
        .collect();
    {
        let (buffer, _) = Buffer::open(config(dir.path()), "out").unwrap();
        let chunk = buffer.take(far_future()).unwrap();
        assert!(chunk.notes().is_empty());
        for n in &notes[..3] {
            chunk.note(*n).unwrap();
        }
        chunk.notebook().note_durably(notes[3]).unwrap();
        chunk.note(notes[4]).unwrap();
        buffer.rollback(chunk);
        let again = buffer.take(far_future()).unwrap();
        assert_eq!(
            again.notes(),
            notes,
            "a second take in the same run sees them"
        );
        drop(again); // a crash: nothing of the in-flight state reaches the disk
    }
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert!(report.quarantined.is_empty() && report.torn_tails.is_empty());
    let chunk = buffer.take(far_future()).unwrap();
    assert_eq!(chunk.notes(), notes);
    buffer.ack(chunk).unwrap();
}

#[test]
fn an_invalid_record_followed_only_by_notes_is_a_torn_tail_not_corruption() {
    use ferry_buffer::Note;
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 1, 3, true);
    let note = |i| Note {
        code: 1,
        small: i,
        a: 0,
        b: 1,
    };
    {
        let (buffer, _) = Buffer::open(config(dir.path()), "out").unwrap();
        let chunk = buffer.take(far_future()).unwrap();
        for i in 0..4 {
            chunk.note(note(i)).unwrap();
        }
        drop(chunk);
    }
    let (_, journal) = chunk_files(dir.path()).remove(0);
    let mut bytes = fs::read(&journal).unwrap();
    let len = bytes.len();
    // The page holding note 1 was lost in a power cut; notes 2 and 3 reached the disk.
    bytes[len - 3 * 32..len - 2 * 32].fill(0);
    fs::write(&journal, &bytes).unwrap();
    let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    assert_eq!(report.torn_tails.len(), 1);
    assert_eq!(report.torn_tails[0].journal_bytes_removed, 3 * 32);
    let chunk = buffer.take(far_future()).unwrap();
    assert_eq!(
        chunk.notes(),
        vec![note(0)],
        "the notes after the lost one are dropped"
    );
    assert_eq!(all_ids_of(&chunk).len(), 3, "no append is lost");
}

fn all_ids_of(chunk: &ferry_buffer::Chunk) -> Vec<u64> {
    parse_ids(&read_all(chunk))
}
