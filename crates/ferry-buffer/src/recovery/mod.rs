//! Recovery of a file buffer at open (format in [`crate::format`]).
//!
//! Files: `mod` (what is done with each chunk), `listing` (finding a buffer's chunk files in a
//! directory), `scan` (the journal read in bounded batches), `report`. The offline tools of
//! [`crate::inspect`] read chunks with the same `listing` and `scan`.
//!
//! Every chunk found under the buffer directory is examined once, in bounded memory (64 KiB
//! scan buffers, never a whole chunk): the journal header is decoded and the records are
//! streamed and checked. Then:
//! * a torn tail (see [`crate::format`]) is truncated to the last whole append and reported as a
//!   [`TornTail`]; for a chunk that was never sealed, trailing appends whose crc32c fails are
//!   part of the tail (walking back from the end, stopping at the first good one);
//! * a chunk with no data left (zero-byte files, a header with no append) is deleted and
//!   reported, so crashes cannot pile up empty files;
//! * anything else wrong moves the chunk's files to `quarantine/` with a reason file, reported
//!   and counted. Nothing is dropped silently, and a broken chunk never fails the open.
//!
//! Recovered chunks are all queued (never merged, never appended to again), sealed ones first in
//! their seal order, then the ones that were still staged in creation order. Reading the whole
//! payload for crc verification is deferred to the chunk's first `take`, so opening many GB
//! costs one journal scan per chunk plus the tail checks.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::content::Content;
use crate::file_chunk::{ChunkPaths, FileChunk, VERIFY_BUF, move_to_quarantine, payload_crc};
use crate::format::{self, Header, RECORD_LEN, Record};
use crate::key::ChunkId;
use crate::retry::RetryState;
use crate::state::{Body, Effects, Entry, Phase, State};
use crate::storage::{OpenMode, Storage, StorageFile, read_exact_at};

mod listing;
mod report;
pub(crate) mod scan;

pub(crate) use listing::list_chunk_files;
pub use listing::{ChunkFiles, FoundFile, Location};
use scan::scan_journal;

pub use report::{
    QuarantineReason, QuarantinedChunk, RecoveredChunk, RecoveryFailure, RecoveryReport, TornTail,
};

pub(crate) struct Context {
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    pub quarantine: PathBuf,
    pub name: String,
    pub segment_target: u64,
}

/// A chunk ready to be queued.
pub(crate) struct Recovered {
    file: FileChunk,
    header: Header,
    content: Content,
    sealed: Option<u64>,
    retry: Option<(u32, SystemTime)>,
    notes: Vec<crate::format::Note>,
}

enum Examined {
    Keep(Box<Recovered>),
    Empty,
    /// A journal without its payload: the chunk was delivered and its removal interrupted
    /// ([`crate::file_chunk::FileChunk::remove`] deletes the payload first, and nothing else
    /// deletes a payload).
    Purged,
}

/// Scans the directory and recovers every chunk of this buffer.
pub(crate) fn recover(ctx: &Context, report: &mut RecoveryReport) -> io::Result<Vec<Recovered>> {
    let listing = list_chunk_files(ctx.storage.as_ref(), &ctx.dir, &ctx.name, Location::Live)?;
    report.unknown_files.extend(listing.unknown);
    let mut out = Vec::new();
    for group in listing.chunks {
        let id = group.id;
        let paths = ChunkPaths {
            payload: ctx
                .dir
                .join(format::file_name(&ctx.name, &id, format::PAYLOAD_SUFFIX)),
            journal: ctx
                .dir
                .join(format::file_name(&ctx.name, &id, format::JOURNAL_SUFFIX)),
        };
        match examine(ctx, id, &group, &paths, report) {
            Ok(Examined::Keep(r)) => out.push(*r),
            Ok(Examined::Purged) => {
                if let Some(file) = &group.journal {
                    match ctx.storage.remove(&file.path) {
                        Ok(()) => report.finished_purges.push(file.path.clone()),
                        Err(error) => report.failures.push(RecoveryFailure {
                            path: file.path.clone(),
                            error,
                        }),
                    }
                }
            }
            Ok(Examined::Empty) => {
                for file in [&group.payload, &group.journal].into_iter().flatten() {
                    match ctx.storage.remove(&file.path) {
                        Ok(()) => report.removed_empty.push(file.path.clone()),
                        Err(error) => report.failures.push(RecoveryFailure {
                            path: file.path.clone(),
                            error,
                        }),
                    }
                }
            }
            Err(reason) => {
                let text = reason.to_string();
                match move_to_quarantine(
                    ctx.storage.as_ref(),
                    &ctx.quarantine,
                    &ctx.name,
                    &id,
                    &paths,
                    &text,
                ) {
                    Ok(moved) => {
                        tracing::error!(chunk = %id, %reason, to = %moved.payload.display(),
                            "broken buffer chunk moved to quarantine");
                        let moved_to = if group.payload.is_some() {
                            moved.payload
                        } else {
                            moved.journal
                        };
                        report.quarantined.push(QuarantinedChunk {
                            id,
                            reason,
                            moved_to,
                        });
                    }
                    Err(e) => {
                        tracing::error!(chunk = %id, %reason, error = %e.source, "cannot quarantine broken chunk");
                        report.failures.push(RecoveryFailure {
                            path: e.path,
                            error: e.source,
                        });
                    }
                }
            }
        }
    }
    out.sort_by_key(|r| {
        (
            r.sealed.unwrap_or(u64::MAX),
            r.header.create_seq,
            r.header.id,
        )
    });
    report.recovered = out
        .iter()
        .map(|r| RecoveredChunk {
            id: r.header.id,
            key: r.header.key.clone(),
            bytes: r.content.bytes,
            records: r.content.records,
            was_staged: r.sealed.is_none(),
        })
        .collect();
    Ok(out)
}

/// Queues recovered chunks into a fresh state.
pub(crate) fn install(
    recovered: Vec<Recovered>,
    st: &mut State,
    fx: &mut Effects,
    now: SystemTime,
) {
    let max_seq = recovered
        .iter()
        .map(|r| r.header.create_seq.max(r.sealed.unwrap_or(0)))
        .max()
        .unwrap_or(0);
    st.next_seq = st.next_seq.max(max_seq);
    for r in recovered {
        let seq = st.take_seq();
        let file = Arc::new(r.file);
        let mut e = Entry::new(
            r.header.id,
            Arc::new(r.header.key),
            r.header.created,
            r.header.create_seq,
            Body::File(file.clone()),
        );
        e.phase = Phase::Queued;
        e.queue_seq = seq;
        e.queued_at = now;
        e.verified = false;
        e.compressed = r.header.gzip;
        if let Some((steps, first)) = r.retry {
            e.retry = RetryState::restored(steps, first);
        }
        e.notes = Arc::new(std::sync::Mutex::new(r.notes));
        st.total_bytes += r.content.bytes;
        e.content = r.content;
        if r.sealed.is_none() {
            fx.records.push((file, Record::Seal { seq, at: now }));
        }
        st.queue.insert(seq, e.id);
        st.entries.insert(e.id, e);
    }
    fx.notify = !st.queue.is_empty();
}

/// (crc, end, records) of append number `i`.
fn read_append(
    file: &dyn StorageFile,
    hl: u64,
    seed: u32,
    i: u64,
) -> Result<(u32, u64, u64), QuarantineReason> {
    let mut raw = [0u8; RECORD_LEN];
    read_exact_at(file, &mut raw, hl + i * RECORD_LEN as u64)?;
    match format::decode_record(&raw, i, seed) {
        Ok(Record::Append { crc, end, records }) => Ok((crc, end, records)),
        Ok(_) => Err(QuarantineReason::Structure {
            index: i,
            what: "expected an append",
        }),
        Err(error) => Err(QuarantineReason::JournalCorrupt { index: i, error }),
    }
}

fn examine(
    ctx: &Context,
    id: ChunkId,
    group: &ChunkFiles,
    paths: &ChunkPaths,
    report: &mut RecoveryReport,
) -> Result<Examined, QuarantineReason> {
    let plen = group.payload.as_ref().map(|p| p.len);
    let Some(FoundFile {
        path: jpath,
        len: jlen,
    }) = &group.journal
    else {
        return match plen {
            Some(0) => Ok(Examined::Empty),
            _ => Err(QuarantineReason::OrphanPayload),
        };
    };
    if *jlen == 0 {
        return match plen {
            None | Some(0) => Ok(Examined::Empty),
            Some(n) => Err(QuarantineReason::EmptyJournalWithData(n)),
        };
    }
    let journal = ctx.storage.open(jpath, OpenMode::ReadWrite)?;
    let scan = scan_journal(journal.as_ref(), *jlen, id, ctx.segment_target)?;
    let Some(plen) = plen else {
        return if scan.content.bytes == 0 {
            Ok(Examined::Empty)
        } else {
            Ok(Examined::Purged)
        };
    };
    let payload = ctx.storage.open(&paths.payload, OpenMode::ReadWrite)?;
    let hl = scan.header.len as u64;
    let seed = format::record_seed(&id);
    let mut keep = scan.appends;
    let mut end = scan.content.bytes;
    let mut records = scan.content.records;
    if scan.sealed.is_some() && end > plen {
        return Err(QuarantineReason::PayloadShort {
            expected: end,
            found: plen,
        });
    }
    if scan.sealed.is_none() {
        let mut scratch = vec![0u8; VERIFY_BUF];
        while keep > 0 {
            let (crc, e, r) = read_append(journal.as_ref(), hl, seed, keep - 1)?;
            let start = if keep >= 2 {
                read_append(journal.as_ref(), hl, seed, keep - 2)?.1
            } else {
                0
            };
            let intact = e <= plen && payload_crc(payload.as_ref(), start, e, &mut scratch)? == crc;
            if intact {
                break;
            }
            keep -= 1;
            end = start;
            records = records.saturating_sub(r);
        }
    }
    let journal_keep = if scan.sealed.is_some() {
        hl + scan.valid_slots * RECORD_LEN as u64
    } else {
        hl + keep * RECORD_LEN as u64
    };
    let torn = TornTail {
        id: Some(id),
        path: paths.payload.clone(),
        kept_bytes: end,
        payload_bytes_removed: plen.saturating_sub(end),
        journal_bytes_removed: jlen.saturating_sub(journal_keep),
        appends_removed: scan.appends - keep,
        records_removed: scan.content.records - records,
    };
    if torn.payload_bytes_removed > 0 || torn.journal_bytes_removed > 0 {
        payload.set_len(end)?;
        journal.set_len(journal_keep)?;
        payload.sync_data()?;
        journal.sync_data()?;
        tracing::warn!(chunk = %id, kept = end, payload_removed = torn.payload_bytes_removed,
            appends_removed = torn.appends_removed, "truncated torn tail of buffer chunk");
        report.torn_tails.push(torn);
    }
    if end == 0 {
        return Ok(Examined::Empty);
    }
    let mut content = scan.content;
    content.truncate(end, records);
    let file = FileChunk::recovered(ctx.storage.clone(), id, paths.clone(), hl);
    Ok(Examined::Keep(Box::new(Recovered {
        file,
        header: scan.header,
        content,
        sealed: scan.sealed,
        retry: scan.retry,
        notes: scan.notes,
    })))
}
