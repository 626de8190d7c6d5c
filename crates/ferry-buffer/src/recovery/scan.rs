//! Streaming scan of a chunk journal: header, then records in bounded batches.

use std::io;
use std::time::SystemTime;

use super::QuarantineReason;
use crate::content::Content;
use crate::format::{self, Header, HeaderError, MAX_NOTES, Note, RECORD_LEN, Record, RecordError};
use crate::key::ChunkId;
use crate::storage::{StorageFile, read_exact_at};

/// Records scanned per read.
const SCAN_RECORDS: usize = 2048;

pub(super) struct Scan {
    pub(super) header: Header,
    pub(super) content: Content,
    pub(super) appends: u64,
    pub(super) valid_slots: u64,
    pub(super) sealed: Option<u64>,
    pub(super) retry: Option<(u32, SystemTime)>,
    pub(super) notes: Vec<Note>,
}

pub(super) fn scan_journal(
    file: &dyn StorageFile,
    len: u64,
    id: ChunkId,
    target: u64,
) -> Result<Scan, QuarantineReason> {
    let header = read_header(file, len)?.map_err(QuarantineReason::Header)?;
    if header.id != id {
        return Err(QuarantineReason::IdMismatch { found: header.id });
    }
    let seed = format::record_seed(&id);
    let hl = header.len as u64;
    let slots = len.saturating_sub(hl) / RECORD_LEN as u64;
    let mut scan = Scan {
        header,
        content: Content::default(),
        appends: 0,
        valid_slots: slots,
        sealed: None,
        retry: None,
        notes: Vec::new(),
    };
    let mut first_bad: Option<(u64, RecordError)> = None;
    for_each_record(file, hl, len, seed, |at, record| {
        match (first_bad, record) {
            // Appends are synced in order: a valid one after an invalid slot is corruption.
            // Anything else after it is an unsynced record that outlived an earlier one (see
            // "Recovery of the records after the appends" in `format`): dropped with it.
            (Some((index, error)), Ok(Record::Append { .. })) => {
                return Err(QuarantineReason::JournalCorrupt { index, error });
            }
            (Some(_), _) => {}
            (None, Err(e)) => first_bad = Some((at, e)),
            (None, Ok(rec)) => apply_record(&mut scan, rec, at, target)?,
        }
        Ok(())
    })?;
    if let Some((bad, _)) = first_bad {
        scan.valid_slots = bad;
    }
    Ok(scan)
}

/// Reads and decodes the header of a journal of `len` bytes (at most
/// [`format::MAX_HEADER_LEN`] bytes are read). The outer error is the disk's, the inner one
/// the header's.
pub(crate) fn read_header(
    file: &dyn StorageFile,
    len: u64,
) -> io::Result<Result<Header, HeaderError>> {
    let head = read_header_bytes(file, len)?;
    Ok(format::decode_header(&head))
}

/// The first bytes of a journal, up to [`format::MAX_HEADER_LEN`] (the most a header takes).
pub(crate) fn read_header_bytes(file: &dyn StorageFile, len: u64) -> io::Result<Vec<u8>> {
    let head_len = usize::try_from(len)
        .unwrap_or(usize::MAX)
        .min(format::MAX_HEADER_LEN);
    let mut head = vec![0u8; head_len];
    read_exact_at(file, &mut head, 0)?;
    Ok(head)
}

/// Decodes every whole 32-byte record slot of a journal of `len` bytes whose header takes
/// `header_len` bytes, in order, reading [`SCAN_RECORDS`] slots at a time, and hands each
/// (index, decoded record or why not) to `f`; an error from `f` stops the walk. A partial
/// slot at the end is not visited.
pub(crate) fn for_each_record<E: From<io::Error>>(
    file: &dyn StorageFile,
    header_len: u64,
    len: u64,
    seed: u32,
    mut f: impl FnMut(u64, Result<Record, RecordError>) -> Result<(), E>,
) -> Result<(), E> {
    let slots = len.saturating_sub(header_len) / RECORD_LEN as u64;
    let mut buf =
        vec![0u8; SCAN_RECORDS.min(usize::try_from(slots).unwrap_or(usize::MAX)) * RECORD_LEN];
    let mut index = 0u64;
    while index < slots {
        let n = (slots - index).min(SCAN_RECORDS as u64) as usize;
        let bytes = &mut buf[..n * RECORD_LEN];
        read_exact_at(file, bytes, header_len + index * RECORD_LEN as u64)?;
        for (i, slot) in bytes.chunks_exact(RECORD_LEN).enumerate() {
            let mut raw = [0u8; RECORD_LEN];
            raw.copy_from_slice(slot);
            let at = index + i as u64;
            f(at, format::decode_record(&raw, at, seed))?;
        }
        index += n as u64;
    }
    Ok(())
}

fn apply_record(
    scan: &mut Scan,
    rec: Record,
    index: u64,
    target: u64,
) -> Result<(), QuarantineReason> {
    let structure = |what| Err(QuarantineReason::Structure { index, what });
    match rec {
        Record::Append { end, records, .. } => {
            if scan.sealed.is_some() {
                return structure("append after seal");
            }
            if index != scan.appends || end <= scan.content.bytes {
                return structure("append end offsets do not increase");
            }
            scan.content.push(end - scan.content.bytes, records, target);
            scan.appends += 1;
        }
        Record::Seal { seq, .. } => {
            if scan.sealed.is_some() {
                return structure("second seal");
            }
            scan.sealed = Some(seq);
        }
        Record::Retry {
            steps,
            first_failure,
        } => scan.retry = Some((steps, first_failure)),
        Record::Note(note) => {
            if scan.notes.len() < MAX_NOTES {
                scan.notes.push(note);
            }
        }
    }
    Ok(())
}
