//! Entry points for the fuzz targets in `fuzz/`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Buffer;
use crate::config::{BufferConfig, Durability};
use crate::format::{self, Header, Record};
use crate::key::{ChunkId, ChunkKey};

/// The buffer name of the chunk files the fuzz entry points write.
pub const NAME: &str = "fuzz";

/// The id of the chunk the fuzz entry points write.
const FUZZ_ID: ChunkId = ChunkId([0x5a; 16]);

/// Writes `data` as a chunk's journal and/or payload file (how is chosen by the first bytes;
/// some modes wrap the bytes in a valid header or in records with valid checksums, so the fuzzer
/// reaches the deeper checks), opens a buffer over it, then takes and streams every recovered
/// chunk. Recovery must not panic and must leave no chunk file it did not account for:
/// everything is recovered, deleted as empty, or quarantined.
pub fn recover_chunk(data: &[u8]) {
    let dir = scratch_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let result = std::panic::catch_unwind(|| exercise(&dir, data));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Writes `data` as chunk files (as [`recover_chunk`] does), in the buffer directory or, by a
/// bit of the first byte, in its quarantine (under a `-<n>` name by another), then inspects the
/// directory offline: lists, examines at both depths and salvages every chunk. Nothing may
/// panic, the inspection must not write, and salvage must hand out only appends that
/// examination found intact, never more records than the journal lists.
pub fn inspect_chunk(data: &[u8]) {
    let dir = scratch_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let result = std::panic::catch_unwind(|| inspect(&dir, data));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn inspect(dir: &std::path::Path, data: &[u8]) {
    use crate::inspect::{Check, Exclusion, Inspector};
    let mode = data.first().copied().unwrap_or(0);
    let qdir = dir.join(format::QUARANTINE_DIR);
    if mode & 0x10 != 0 {
        if std::fs::create_dir_all(&qdir).is_err() {
            return;
        }
        write_chunk_files(&qdir, data);
        if mode & 0x20 != 0 {
            // The same chunk quarantined a second time: `-1` names, with a reason file.
            let stem = format::quarantine_base(NAME, &FUZZ_ID, 0);
            let again = format::quarantine_base(NAME, &FUZZ_ID, 1);
            for suffix in [format::PAYLOAD_SUFFIX, format::JOURNAL_SUFFIX] {
                let from = qdir.join(format!("{stem}.{suffix}"));
                let _ = std::fs::rename(from, qdir.join(format!("{again}.{suffix}")));
            }
            let reason = qdir.join(format!("{again}.{}", format::REASON_SUFFIX));
            let _ = std::fs::write(reason, data);
        }
    } else {
        write_chunk_files(dir, data);
    }
    let before = snapshot(dir);
    let Ok(inspector) = Inspector::open(dir, NAME, Exclusion::TakeLock) else {
        return;
    };
    let Ok(inventory) = inspector.chunks() else {
        return;
    };
    for files in &inventory.chunks {
        let quick = inspector.examine(files, Check::Journal);
        let full = inspector.examine(files, Check::Payload);
        assert!(full.worst() >= quick.worst(), "{quick:?} {full:?}");
        let intact_crc: Vec<u64> = full
            .problems
            .iter()
            .filter_map(|p| match p.kind {
                crate::inspect::ProblemKind::AppendCrc { index, .. } => Some(index),
                _ => None,
            })
            .collect();
        let mut records = 0u64;
        let salvaged = inspector.salvage(files, |append| {
            assert!(
                !intact_crc.contains(&append.index),
                "a failing append was handed out"
            );
            records = records.saturating_add(append.records);
            Ok::<(), ()>(())
        });
        if let Ok(report) = salvaged {
            assert_eq!(report.intact_records, records);
            if full.worst().is_none() {
                // A chunk with no problem at all is salvaged whole.
                assert_eq!(report.intact_appends, full.appends, "{full:?} {report:?}");
                assert!(report.skipped.is_empty(), "{full:?} {report:?}");
            }
        }
    }
    drop(inspector);
    assert_eq!(before, snapshot(dir), "inspection changed the directory");
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

fn scratch_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ferry-buffer-fuzz-{}-{n}", std::process::id()))
}

/// Writes the chunk files that `data` describes into `dir` (see [`recover_chunk`]).
fn write_chunk_files(dir: &std::path::Path, data: &[u8]) {
    let id = FUZZ_ID;
    let mode = data.first().copied().unwrap_or(0);
    let split_at = data
        .get(1..3)
        .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let rest = data.get(3..).unwrap_or_default();
    let split = split_at % (rest.len() + 1);
    let (journal_part, payload) = rest.split_at(split);
    let mut journal = Vec::new();
    if mode & 1 != 0 {
        let header = Header {
            id,
            gzip: false,
            created: UNIX_EPOCH + Duration::from_secs(1),
            create_seq: 1,
            key: ChunkKey::tag("fuzz"),
            len: 0,
        };
        if let Ok(h) = format::encode_header(&header) {
            journal = h;
        }
    }
    if mode & 8 != 0 && mode & 1 != 0 {
        // Records with valid checksums built from the bytes: kind, end step, record count.
        let seed = format::record_seed(&id);
        let mut end = 0u64;
        for (index, b) in journal_part.chunks(4).enumerate() {
            let step = u64::from(b.get(1).copied().unwrap_or(1));
            let rec = match b[0] % 4 {
                0 | 1 => {
                    let next = end + step;
                    let start = usize::try_from(end).unwrap_or(usize::MAX);
                    let stop = usize::try_from(next).unwrap_or(usize::MAX);
                    let crc = match payload.get(start..stop) {
                        Some(seg) if b[0] % 4 == 0 => crc32c::crc32c(seg),
                        _ => u32::from(b.get(2).copied().unwrap_or(0)),
                    };
                    end = if b[0] & 0x80 != 0 { step } else { next };
                    Record::Append {
                        crc,
                        end,
                        records: u64::from(b.get(3).copied().unwrap_or(1)),
                    }
                }
                2 => Record::Seal {
                    seq: step,
                    at: UNIX_EPOCH,
                },
                _ if b[0] & 0x40 != 0 => Record::Note(format::Note {
                    code: b.get(2).copied().unwrap_or(0),
                    small: u32::from(step as u8),
                    a: step,
                    b: end,
                }),
                _ => Record::Retry {
                    steps: u32::from(step as u8),
                    first_failure: UNIX_EPOCH,
                },
            };
            journal.extend_from_slice(&format::encode_record(&rec, index as u64, seed));
        }
    } else {
        journal.extend_from_slice(journal_part);
    }
    let jpath = dir.join(format::file_name(NAME, &id, format::JOURNAL_SUFFIX));
    let ppath = dir.join(format::file_name(NAME, &id, format::PAYLOAD_SUFFIX));
    if mode & 2 == 0 || !journal.is_empty() {
        let _ = std::fs::write(&jpath, &journal);
    }
    if mode & 4 == 0 {
        let _ = std::fs::write(&ppath, payload);
    }
}

fn exercise(dir: &std::path::Path, data: &[u8]) {
    write_chunk_files(dir, data);
    let mut config = BufferConfig::file(dir);
    config.durability = Durability::OsCache;
    let Ok((buffer, report)) = Buffer::open(config, NAME) else {
        return;
    };
    let far = SystemTime::now() + Duration::from_secs(86_400 * 365);
    let mut buf = [0u8; 4096];
    while let Some(chunk) = buffer.take(far) {
        if let Ok(mut reader) = chunk.reader() {
            while matches!(std::io::Read::read(&mut reader, &mut buf), Ok(n) if n > 0) {}
        }
        let _ = buffer.ack(chunk);
    }
    let accounted = report.recovered.len() + report.quarantined.len() + report.failures.len();
    let leftovers = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .ends_with(format::PAYLOAD_SUFFIX)
                })
                .count()
        })
        .unwrap_or(0);
    assert!(
        leftovers == 0 || report.failures.len() == leftovers,
        "chunk files left unaccounted after recovery ({accounted} accounted): {report:?}"
    );
}
