//! Offline inspection (`ferry_buffer::inspect`) of directories written by the real buffer:
//! states and counts, every single-byte change and truncation found, salvage handing out
//! exactly the untouched appends, and a directory in use refused without writing anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::*;
use ferry_buffer::inspect::{
    Check, ChunkState, Exclusion, InspectError, Inspector, ProblemKind, Severity, SkipReason,
};
use ferry_buffer::{Buffer, Compress};
use proptest::prelude::*;

const NAME: &str = "out";

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

/// One chunk of `appends` (each the entries of ids `i*100..i*100+n`), sealed or not; returns
/// the appended bytes in order.
fn one_chunk(dir: &Path, appends: &[usize], seal: bool, gzip: bool) -> Vec<Vec<u8>> {
    let mut config = small_file_config(dir);
    if gzip {
        config.compress = Compress::Gzip;
    }
    let (buffer, _) = Buffer::open(config, NAME).unwrap();
    let mut written = Vec::new();
    for (i, &n) in appends.iter().enumerate() {
        let ids: Vec<u64> = (0..n as u64).map(|k| i as u64 * 100 + k).collect();
        let bytes = entries(&ids, 40 + 7 * i);
        buffer.append(&tag("t"), &bytes, n as u64).unwrap();
        written.push(bytes);
    }
    if seal {
        buffer.flush_all();
    }
    written
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn open(dir: &Path) -> Inspector {
    Inspector::open(dir, NAME, Exclusion::TakeLock).unwrap()
}

/// Appends salvage hands out: (index, entries).
fn salvage_all(dir: &Path) -> (Vec<(u64, Vec<u8>)>, ferry_buffer::inspect::SalvageReport) {
    let inspector = open(dir);
    let chunks = inspector.chunks().unwrap().chunks;
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    let mut got = Vec::new();
    let report = inspector
        .salvage(&chunks[0], |a| {
            got.push((a.index, a.entries.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
    (got, report)
}

#[test]
fn a_clean_directory_lists_every_chunk_with_its_state_counts_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (buffer, _) = Buffer::open(small_file_config(dir.path()), NAME).unwrap();
    buffer
        .append(&tag("a"), &entries(&[1, 2, 3], 100), 3)
        .unwrap();
    buffer.append(&tag("a"), &entries(&[4], 100), 1).unwrap();
    buffer.flush_all();
    buffer.append(&tag("b"), &entries(&[5, 6], 100), 2).unwrap();
    // Two failed flushes: the first sets the first failure (steps 0), the second makes step 1.
    for _ in 0..2 {
        let chunk = buffer.take(far_future()).unwrap();
        let decision = buffer.nack(chunk, SystemTime::now());
        assert!(matches!(decision, ferry_buffer::RetryDecision::RetryAt(_)));
    }
    drop(buffer);
    fs::remove_file(dir.path().join(format!("{NAME}.lock"))).unwrap();
    let before = snapshot(dir.path());

    let inspector = open(dir.path());
    let chunks = inspector.chunks().unwrap();
    assert_eq!(chunks.chunks.len(), 2);
    let mut seen = Vec::new();
    for files in &chunks.chunks {
        let r = inspector.examine(files, Check::Payload);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let tag = r.header.as_ref().unwrap().key.tag.clone().unwrap();
        seen.push((
            tag,
            r.state(),
            r.appends,
            r.records,
            r.retry.map(|(s, _)| s),
        ));
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("a".to_string(), ChunkState::Queued, 2, 4, Some(1)),
            ("b".to_string(), ChunkState::Staged, 1, 2, None),
        ]
    );
    drop(inspector);
    assert_eq!(before, snapshot(dir.path()), "no file created or changed");
}

#[test]
fn a_directory_in_use_is_refused_and_a_missing_lock_file_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let (buffer, _) = Buffer::open(small_file_config(dir.path()), NAME).unwrap();
    let err = Inspector::open(dir.path(), NAME, Exclusion::TakeLock).unwrap_err();
    assert!(err.is_in_use(), "{err}");
    assert!(
        err.to_string()
            .contains("is in use by a running ferry (lock out.lock held); stop it first"),
        "{err}"
    );
    // Its owner may read it.
    assert!(Inspector::open(dir.path(), NAME, Exclusion::HeldByCaller).is_ok());
    drop(buffer);
    // While an inspector reads, no buffer opens the directory.
    let inspector = open(dir.path());
    let err = Buffer::open(small_file_config(dir.path()), NAME).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(inspector);
    let lock = dir.path().join(format!("{NAME}.lock"));
    fs::remove_file(&lock).unwrap();
    let inspector = open(dir.path());
    assert!(!lock.exists(), "a missing lock file is not created");
    drop(inspector);
    let missing = Inspector::open(&dir.path().join("nope"), NAME, Exclusion::TakeLock);
    assert!(matches!(missing, Err(InspectError::Io { .. })));
}

#[test]
fn a_flipped_payload_byte_is_found_at_its_append_and_the_other_appends_are_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    let written = one_chunk(dir.path(), &[3, 4, 5, 6], true, false);
    let payload = &files_ending(dir.path(), ".payload")[0];
    let mut bytes = fs::read(payload).unwrap();
    let second = written[0].len();
    bytes[second + 10] ^= 0x40;
    fs::write(payload, &bytes).unwrap();

    let inspector = open(dir.path());
    let files = &inspector.chunks().unwrap().chunks[0];
    let quick = inspector.examine(files, Check::Journal);
    assert!(quick.problems.is_empty(), "the journal alone shows nothing");
    let r = inspector.examine(files, Check::Payload);
    assert_eq!(r.state(), ChunkState::Damaged);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    let p = &r.problems[0];
    assert_eq!(&p.path, payload);
    assert_eq!(p.offset, Some(second as u64));
    assert_eq!(p.severity, Severity::Damage);
    assert!(matches!(
        p.kind,
        ProblemKind::AppendCrc {
            index: 1,
            records: 4,
            ..
        }
    ));
    drop(inspector);

    let (got, report) = salvage_all(dir.path());
    let expected: Vec<(u64, Vec<u8>)> = [0, 2, 3]
        .iter()
        .map(|&i| (i, written[i as usize].clone()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!((report.intact_appends, report.intact_records), (3, 14));
    assert_eq!((report.skipped_appends, report.skipped_records), (1, 4));
    assert_eq!(report.skipped[0].reason, SkipReason::Crc);
}

#[test]
fn a_torn_journal_tail_is_reported_as_torn_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    one_chunk(dir.path(), &[2, 2, 2], false, false);
    let journal = &files_ending(dir.path(), ".journal")[0];
    let len = fs::metadata(journal).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(journal)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let inspector = open(dir.path());
    let r = inspector.examine(&inspector.chunks().unwrap().chunks[0], Check::Payload);
    assert_eq!(r.state(), ChunkState::Staged, "a torn tail is not damage");
    assert_eq!(r.worst(), Some(Severity::TornTail));
    assert_eq!((r.appends, r.records), (2, 4));
    let partial = r
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::PartialRecord(27))
        .expect("the partial record");
    assert_eq!(&partial.path, journal);
    assert_eq!(partial.offset, Some(len - 32));
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::PayloadTail(_))),
        "the last append's bytes lost their record: {:?}",
        r.problems
    );
}

#[test]
fn gzip_chunks_are_salvaged_decompressed() {
    let dir = tempfile::tempdir().unwrap();
    let written = one_chunk(dir.path(), &[2, 3], false, true);
    let (got, report) = salvage_all(dir.path());
    assert!(report.header.unwrap().gzip);
    let entries: Vec<Vec<u8>> = got.into_iter().map(|(_, e)| e).collect();
    assert_eq!(entries, written);
}

#[test]
fn quarantined_chunks_are_found_by_id_or_file_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    one_chunk(dir.path(), &[2], true, false);
    let payload = files_ending(dir.path(), ".payload").remove(0);
    let id = payload
        .file_name()
        .unwrap()
        .to_string_lossy()
        .split('.')
        .nth(1)
        .unwrap()
        .to_string();
    // Corrupt the header: the next open quarantines the chunk.
    let journal = payload.with_extension("journal");
    let mut j = fs::read(&journal).unwrap();
    j[70] ^= 1;
    fs::write(&journal, &j).unwrap();
    let (buffer, report) = Buffer::open(small_file_config(dir.path()), NAME).unwrap();
    assert_eq!(report.quarantined.len(), 1);
    drop(buffer);

    let inspector = open(dir.path());
    let files = inspector.find(&id).unwrap();
    let r = inspector.examine(&files, Check::Payload);
    assert_eq!(r.state(), ChunkState::Quarantined);
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("journal header unreadable"),
        "{r:?}"
    );
    assert!(matches!(r.problems[0].kind, ProblemKind::Header(_)));
    assert_eq!(
        r.problems[0].offset,
        Some(92),
        "the header checksum: {:?}",
        r.problems
    );
    // The records still check (their seed is the id of the file name): salvage reads them.
    let mut records = 0;
    let report = inspector
        .salvage(&files, |a| {
            records += a.records;
            Ok::<(), ()>(())
        })
        .unwrap();
    assert_eq!((report.intact_appends, records), (1, 2));
    let by_file = inspector
        .find(&files.reason.as_ref().unwrap().path.display().to_string())
        .unwrap();
    assert_eq!(by_file, files);
    let by_name = inspector.find(&format!("{NAME}.{id}.journal")).unwrap();
    assert_eq!(by_name, files);
    drop(inspector);

    // The same chunk quarantined again (a copy put back and found broken once more).
    let qdir = dir.path().join("quarantine");
    for suffix in ["payload", "journal"] {
        fs::copy(
            qdir.join(format!("{NAME}.{id}.{suffix}")),
            dir.path().join(format!("{NAME}.{id}.{suffix}")),
        )
        .unwrap();
    }
    drop(Buffer::open(small_file_config(dir.path()), NAME).unwrap());
    let inspector = open(dir.path());
    let err = inspector.find(&id).unwrap_err();
    assert!(matches!(err, InspectError::Ambiguous { .. }), "{err}");
    let again = inspector.find(&format!("{id}-1")).unwrap();
    assert_eq!((again.id, again.n), (files.id, 1));
    assert!(again.reason.is_some());
    assert_eq!(inspector.find(&format!("{id}-1.payload")).ok(), None);
}

/// What is done to one chunk's files.
#[derive(Clone, Debug)]
enum Harm {
    FlipPayload(usize, u8),
    FlipJournal(usize, u8),
    CutPayload(usize),
    CutJournal(usize),
}

fn harm() -> impl Strategy<Value = Harm> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, x)| Harm::FlipPayload(at, x)),
        (any::<usize>(), 1u8..=255).prop_map(|(at, x)| Harm::FlipJournal(at, x)),
        (1usize..400).prop_map(Harm::CutPayload),
        (1usize..200).prop_map(Harm::CutJournal),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Every byte of a chunk is under a checksum: any changed byte or truncation is found by
    /// `Check::Payload` (but the loss of exactly the seal record, which is not synced, looks
    /// like a staged chunk and is harmless), and salvage hands out only untouched appends,
    /// byte for byte (all of them but the one a payload flip hit).
    #[test]
    fn any_changed_byte_or_cut_is_found_and_salvage_returns_only_untouched_appends(
        appends in proptest::collection::vec(1usize..6, 1..8),
        seal in any::<bool>(),
        harm in harm(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let written = one_chunk(dir.path(), &appends, seal, false);
        let payload = files_ending(dir.path(), ".payload").remove(0);
        let journal = payload.with_extension("journal");
        let mut hit_append = None;
        match harm {
            Harm::FlipPayload(at, x) => {
                let mut b = fs::read(&payload).unwrap();
                let at = at % b.len();
                b[at] ^= x;
                fs::write(&payload, &b).unwrap();
                let mut start = 0;
                for (i, w) in written.iter().enumerate() {
                    if at < start + w.len() {
                        hit_append = Some(i as u64);
                        break;
                    }
                    start += w.len();
                }
            }
            Harm::FlipJournal(at, x) => {
                let mut b = fs::read(&journal).unwrap();
                let at = at % b.len();
                b[at] ^= x;
                fs::write(&journal, &b).unwrap();
            }
            Harm::CutPayload(n) | Harm::CutJournal(n) => {
                let path = if matches!(harm, Harm::CutPayload(_)) { &payload } else { &journal };
                let len = fs::metadata(path).unwrap().len();
                let keep = len.saturating_sub(n as u64);
                fs::OpenOptions::new().write(true).open(path).unwrap().set_len(keep).unwrap();
            }
        }
        let inspector = open(dir.path());
        let files = &inspector.chunks().unwrap().chunks[0];
        let r = inspector.examine(files, Check::Payload);
        if seal && matches!(harm, Harm::CutJournal(32)) {
            // Exactly the seal record lost: what a power cut may do to a record that is not
            // synced, and harmless (the chunk is queued again as if staged).
            prop_assert!(r.problems.is_empty(), "{:?}", r.problems);
            prop_assert_eq!(r.state(), ChunkState::Staged);
            return Ok(());
        }
        prop_assert!(!r.problems.is_empty(), "{:?} went unseen", harm);
        let mut got = Vec::new();
        let salvaged = inspector.salvage(files, |a| {
            got.push((a.index, a.entries.to_vec()));
            Ok::<(), ()>(())
        });
        for (index, entries) in &got {
            prop_assert_eq!(entries, &written[*index as usize], "append {} altered", index);
        }
        if let Some(hit) = hit_append {
            let expected: Vec<u64> = (0..written.len() as u64).filter(|i| *i != hit).collect();
            let indices: Vec<u64> = got.iter().map(|(i, _)| *i).collect();
            prop_assert_eq!(indices, expected);
            prop_assert_eq!(salvaged.unwrap().skipped[0].reason.clone(), SkipReason::Crc);
        }
    }

    /// vectordotdev/vector#18336-style garbage: arbitrary bytes as chunk files, live or
    /// quarantined. Inspection never panics nor writes (see `fuzzing::inspect_chunk`).
    #[test]
    fn arbitrary_chunk_files_never_panic_the_inspection(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        ferry_buffer::fuzzing::inspect_chunk(&data);
    }
}
