//! Progress notes of the forward output across a crash: a recovered chunk sends again exactly
//! the requests that have no ack record, whatever point the crash tore the journal at.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::Todo;
use crate::output::forward::send::plan;
use crate::output::progress::{Code, keep};
use ferry_buffer::{Buffer, BufferConfig, ChunkKey, Durability};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const OLD_RUN: u32 = 7;
const NEW_RUN: u32 = 9;

fn config(dir: &Path) -> BufferConfig {
    let mut c = BufferConfig::file(dir);
    c.durability = Durability::OsCache;
    c.chunk_limit_size = 1 << 20;
    c.total_limit_size = 8 << 20;
    c.segment_target_size = 1;
    c
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(86_400)
}

fn journal(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "journal"))
        .unwrap()
}

/// How the crash left the journal's last records.
#[derive(Debug, Clone)]
enum Crash {
    /// Cut after `k` whole notes, plus `partial` bytes of the next slot.
    Cut { k: usize, partial: usize },
    /// Note `k` never reached the disk (a page lost), later ones did.
    Hole { k: usize },
}

fn crash() -> impl Strategy<Value = Crash> {
    prop_oneof![
        (0usize..64, 0usize..32).prop_map(|(k, partial)| Crash::Cut { k, partial }),
        (0usize..64).prop_map(|k| Crash::Hole { k }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_recovered_chunk_sends_again_exactly_the_requests_without_an_ack_record(
        sizes in proptest::collection::vec(50usize..400, 2..24),
        max in 300u64..1200,
        sent_mask in any::<u32>(),
        acked_mask in any::<u32>(),
        crash in crash(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let key = ChunkKey::tag("t");
        let spans;
        // (span, acked?) of each note, in the order written.
        let mut written: Vec<(usize, bool)> = Vec::new();
        let notes_start;
        {
            let (buffer, _) = Buffer::open(config(dir.path()), "out").unwrap();
            for (i, n) in sizes.iter().enumerate() {
                buffer.append(&key, &vec![i as u8; *n], 1).unwrap();
            }
            buffer.flush_all();
            let chunk = buffer.take(later()).unwrap();
            spans = plan(chunk.segments(), max);
            notes_start = std::fs::metadata(journal(dir.path())).unwrap().len();
            for (i, s) in spans.iter().enumerate() {
                let acked = acked_mask & (1 << (i % 32)) != 0;
                if sent_mask & (1 << (i % 32)) != 0 || acked {
                    keep(&chunk, Code::RequestSent.note(OLD_RUN, s.offset, s.len));
                    written.push((i, false));
                }
                if acked {
                    keep(&chunk, Code::RequestAcked.note(OLD_RUN, s.offset, s.len));
                    written.push((i, true));
                }
            }
            // The process dies with the chunk in flight: no ack, no rollback reaches the disk.
            drop(chunk);
        }
        let path = journal(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let slot = |k: usize| notes_start as usize + 32 * k;
        let survived = match crash {
            Crash::Cut { k, partial } => {
                let k = k.min(written.len());
                let end = (slot(k) + partial).min(bytes.len());
                bytes.truncate(end);
                k
            }
            Crash::Hole { k } => {
                let k = k.min(written.len());
                if k < written.len() {
                    bytes[slot(k)..slot(k) + 32].fill(0);
                }
                k
            }
        };
        std::fs::write(&path, &bytes).unwrap();

        let (buffer, report) = Buffer::open(config(dir.path()), "out").unwrap();
        prop_assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
        let chunk = buffer.take(later()).unwrap();
        prop_assert_eq!(chunk.records(), sizes.len() as u64, "every append survives");
        let todo = Todo::new(&chunk, &spans, NEW_RUN);
        let kept = &written[..survived];
        for i in 0..spans.len() {
            let acked = kept.iter().any(|&(s, a)| s == i && a);
            let sent = kept.iter().any(|&(s, a)| s == i && !a);
            prop_assert_eq!(todo.done[i], acked, "span {} of {}", i, spans.len());
            prop_assert_eq!(todo.interrupted[i], sent && !acked, "span {}", i);
        }
        // The same run's own unacknowledged requests are not counted as a crash's.
        let same_run = Todo::new(&chunk, &spans, OLD_RUN);
        prop_assert!(same_run.interrupted.iter().all(|i| !i));
    }
}
