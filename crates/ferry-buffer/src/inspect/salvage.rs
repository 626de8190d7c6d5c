//! Reading the intact appends of a chunk: those whose journal record decodes and whose payload
//! bytes match its crc32c. An append is the unit: its bytes are checked whole, so an intact
//! append is exactly what was appended, and nothing of a damaged one is handed out.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::format::{self, Header, RecordError};
use crate::recovery::ChunkFiles;
use crate::recovery::scan::{for_each_record, read_header_bytes};
use crate::storage::{OpenMode, Storage, read_exact_at};

/// Largest decompressed append salvage accepts (a gzip member that inflates beyond this is
/// skipped rather than exhausting memory).
pub const MAX_DECODED_APPEND: u64 = 1 << 30;

/// Skipped appends listed in a report; more are only counted.
const MAX_LISTED: usize = 1000;

/// One intact append, handed to the caller of [`crate::inspect::Inspector::salvage`].
#[derive(Debug)]
pub struct IntactAppend<'a> {
    /// Position of its journal record.
    pub index: u64,
    /// Where it starts in the payload and how many bytes it takes there (compressed size).
    pub offset: u64,
    pub stored_len: u64,
    /// Records it holds, per its journal record.
    pub records: u64,
    /// The appended entries (msgpack `[time, record]`), decompressed when the chunk is gzip.
    pub entries: &'a [u8],
}

/// Why an append was not handed out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("journal records {index}..{} do not decode ({error}): the appends they held are lost", index + count)]
    RecordsUnreadable {
        index: u64,
        count: u64,
        error: RecordError,
    },
    #[error("where it starts is unknown (the journal record before it does not decode)")]
    StartUnknown,
    #[error("its end offset does not increase (the journal contradicts itself)")]
    Structure,
    #[error("the payload file ends before it")]
    PastPayload,
    #[error("crc32c mismatch")]
    Crc,
    #[error("its gzip member does not decompress: {0}")]
    Gzip(String),
    #[error("it decompresses to more than {MAX_DECODED_APPEND} bytes")]
    TooLarge,
}

/// An append (or a run of journal records) that was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedAppend {
    /// Its journal record (none for a run of unreadable records).
    pub index: Option<u64>,
    /// Where it starts in the payload, when known.
    pub offset: Option<u64>,
    /// Records it held, when its journal record says.
    pub records: Option<u64>,
    pub reason: SkipReason,
}

/// What [`crate::inspect::Inspector::salvage`] did.
#[derive(Clone, Debug, Default)]
pub struct SalvageReport {
    /// The chunk's header (its key), when readable.
    pub header: Option<Header>,
    pub intact_appends: u64,
    pub intact_records: u64,
    pub skipped_appends: u64,
    /// Records of skipped appends whose journal record says how many.
    pub skipped_records: u64,
    /// At most 1000; the rest are counted in `skipped_not_listed`.
    pub skipped: Vec<SkippedAppend>,
    pub skipped_not_listed: u64,
}

impl SalvageReport {
    fn skip(&mut self, s: SkippedAppend) {
        if s.index.is_some() {
            self.skipped_appends += 1;
        }
        self.skipped_records = self.skipped_records.saturating_add(s.records.unwrap_or(0));
        if self.skipped.len() < MAX_LISTED {
            self.skipped.push(s);
        } else {
            self.skipped_not_listed += 1;
        }
    }
}

/// Why nothing could be salvaged, or the caller's sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SalvageError<E> {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The chunk's files cannot tell intact appends from damaged ones.
    #[error("nothing can be checked: {0}")]
    Unverifiable(&'static str),
    /// The caller's function failed; salvage stopped there.
    #[error("{0}")]
    Sink(E),
}

pub(super) fn salvage<E>(
    storage: &dyn Storage,
    files: &ChunkFiles,
    mut f: impl FnMut(IntactAppend<'_>) -> Result<(), E>,
) -> Result<SalvageReport, SalvageError<E>> {
    let io_at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SalvageError::Io { path, source }
    };
    let Some(journal) = &files.journal else {
        return Err(SalvageError::Unverifiable(
            "no journal: the payload's appends have no checksums",
        ));
    };
    let Some(payload) = &files.payload else {
        return Err(SalvageError::Unverifiable("the payload file is missing"));
    };
    if journal.len == 0 {
        return Err(SalvageError::Unverifiable("the journal is empty"));
    }
    let jfile = storage
        .open(&journal.path, OpenMode::Read)
        .map_err(io_at(&journal.path))?;
    let pfile = storage
        .open(&payload.path, OpenMode::Read)
        .map_err(io_at(&payload.path))?;
    let head = read_header_bytes(jfile.as_ref(), journal.len).map_err(io_at(&journal.path))?;
    let mut report = SalvageReport::default();
    let header_len = match format::decode_header(&head) {
        Ok(h) if h.id != files.id => {
            return Err(SalvageError::Unverifiable(
                "the journal header belongs to another chunk",
            ));
        }
        Ok(h) => {
            let len = h.len;
            report.header = Some(h);
            len
        }
        Err(_) => match format::header_len(&head) {
            Ok(len) if len <= head.len() => len,
            _ => {
                return Err(SalvageError::Unverifiable(
                    "the journal header is unreadable: where the records are is unknown",
                ));
            }
        },
    } as u64;
    // Without a readable header the gzip flag is unknown: a gzip member starts with 1f 8b, an
    // entry (a msgpack array) never does.
    let gzip = report.header.as_ref().map(|h| h.gzip);
    let plen = payload.len;
    let mut stored = Vec::new();
    let mut decoded = Vec::new();
    let mut end = 0u64;
    let mut start_known = true;
    let mut bad_run: Option<(u64, u64, RecordError)> = None;
    let walk = for_each_record(
        jfile.as_ref(),
        header_len,
        journal.len,
        format::record_seed(&files.id),
        |index, rec| -> Result<(), Stop<E>> {
            let rec = match rec {
                Ok(rec) => rec,
                Err(error) => {
                    match &mut bad_run {
                        Some((_, count, _)) => *count += 1,
                        None => bad_run = Some((index, 1, error)),
                    }
                    return Ok(());
                }
            };
            if let Some((first, count, error)) = bad_run.take() {
                report.skip(lost_run(first, count, error));
                start_known = false;
            }
            let format::Record::Append {
                crc,
                end: append_end,
                records,
            } = rec
            else {
                return Ok(());
            };
            let skipped = |offset, reason| SkippedAppend {
                index: Some(index),
                offset,
                records: Some(records),
                reason,
            };
            if append_end <= end {
                report.skip(skipped(None, SkipReason::Structure));
                return Ok(());
            }
            let start = end;
            end = append_end;
            if !std::mem::replace(&mut start_known, true) {
                report.skip(skipped(None, SkipReason::StartUnknown));
                return Ok(());
            }
            if append_end > plen {
                report.skip(skipped(Some(start), SkipReason::PastPayload));
                return Ok(());
            }
            // Bounded by the payload file's real size, checked above.
            stored.resize((append_end - start) as usize, 0);
            read_exact_at(pfile.as_ref(), &mut stored, start).map_err(Stop::Payload)?;
            if crc32c::crc32c(&stored) != crc {
                report.skip(skipped(Some(start), SkipReason::Crc));
                return Ok(());
            }
            let is_gzip = gzip.unwrap_or_else(|| stored.starts_with(&[0x1f, 0x8b]));
            let entries: &[u8] = if is_gzip {
                if let Err(reason) = gunzip(&stored, &mut decoded) {
                    report.skip(skipped(Some(start), reason));
                    return Ok(());
                }
                &decoded
            } else {
                &stored
            };
            let append = IntactAppend {
                index,
                offset: start,
                stored_len: append_end - start,
                records,
                entries,
            };
            f(append).map_err(Stop::Sink)?;
            report.intact_appends += 1;
            report.intact_records = report.intact_records.saturating_add(records);
            Ok(())
        },
    );
    match walk {
        Ok(()) => {}
        Err(Stop::Journal(e)) => return Err(io_at(&journal.path)(e)),
        Err(Stop::Payload(e)) => return Err(io_at(&payload.path)(e)),
        Err(Stop::Sink(e)) => return Err(SalvageError::Sink(e)),
    }
    if let Some((first, count, error)) = bad_run {
        report.skip(lost_run(first, count, error));
    }
    Ok(report)
}

/// Why the walk over the records stopped early.
enum Stop<E> {
    Journal(io::Error),
    Payload(io::Error),
    Sink(E),
}

impl<E> From<io::Error> for Stop<E> {
    fn from(e: io::Error) -> Self {
        Stop::Journal(e)
    }
}

fn lost_run(index: u64, count: u64, error: RecordError) -> SkippedAppend {
    SkippedAppend {
        index: None,
        offset: None,
        records: None,
        reason: SkipReason::RecordsUnreadable {
            index,
            count,
            error,
        },
    }
}

/// Decompresses one stored append (one gzip member; several are accepted) into `out`.
#[allow(clippy::disallowed_methods)] // bounded by `take`
fn gunzip(stored: &[u8], out: &mut Vec<u8>) -> Result<(), SkipReason> {
    out.clear();
    let mut decoder = flate2::read::MultiGzDecoder::new(stored).take(MAX_DECODED_APPEND + 1);
    decoder
        .read_to_end(out)
        .map_err(|e| SkipReason::Gzip(e.to_string()))?;
    if out.len() as u64 > MAX_DECODED_APPEND {
        out.clear();
        return Err(SkipReason::TooLarge);
    }
    Ok(())
}
