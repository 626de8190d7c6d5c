//! Examining a chunk: its journal walked the way recovery walks it, its payload checked
//! append by append, every problem found recorded in a [`ChunkReport`].

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::report::{Check, ChunkReport, MAX_PROBLEMS, ProblemKind, Severity};
use crate::file_chunk::{VERIFY_BUF, payload_crc};
use crate::format::{self, HeaderError, RECORD_LEN, Record, RecordError};
use crate::recovery::ChunkFiles;
use crate::recovery::scan::{for_each_record, read_header_bytes};
use crate::storage::{OpenMode, Storage, StorageFile};

/// Longest reason text read from a `.reason` file.
const MAX_REASON: usize = 4096;

pub(super) fn examine(storage: &dyn Storage, files: &ChunkFiles, check: Check) -> ChunkReport {
    let mut r = ChunkReport {
        files: files.clone(),
        check,
        header: None,
        appends: 0,
        records: 0,
        bytes: 0,
        sealed: None,
        retry: None,
        notes: 0,
        reason: None,
        problems: Vec::new(),
        problems_not_listed: 0,
        unlisted_worst: None,
    };
    if let Some(reason) = &files.reason {
        r.reason = read_reason(storage, &reason.path);
    }
    if let Err((path, e)) = walk(storage, files, check, &mut r) {
        r.push(
            &path,
            None,
            Severity::Unreadable,
            ProblemKind::Io(e.to_string()),
        );
    }
    r
}

fn read_reason(storage: &dyn Storage, path: &Path) -> Option<String> {
    let file = storage.open(path, OpenMode::Read).ok()?;
    let mut buf = vec![0u8; MAX_REASON];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// Where a header problem is.
pub(super) fn header_error_offset(e: &HeaderError, head: &[u8]) -> u64 {
    match e {
        HeaderError::Short(_) | HeaderError::Magic | HeaderError::KeyTooLarge(_) => 0,
        HeaderError::Version(_) => 8,
        HeaderError::Length(_) => 12,
        HeaderError::Checksum => format::header_len(head).map_or(0, |l| l as u64 - 4),
        HeaderError::Key { offset } => *offset as u64,
    }
}

type WalkError = (PathBuf, io::Error);

fn walk(
    storage: &dyn Storage,
    files: &ChunkFiles,
    check: Check,
    r: &mut ChunkReport,
) -> Result<(), WalkError> {
    let Some(journal) = &files.journal else {
        match &files.payload {
            Some(p) if p.len > 0 => r.push(
                &p.path,
                Some(0),
                Severity::Damage,
                ProblemKind::OrphanPayload(p.len),
            ),
            Some(p) => r.push(&p.path, None, Severity::Leftover, ProblemKind::Empty),
            None => {}
        }
        return Ok(());
    };
    let jpath = journal.path.as_path();
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |e| (path, e)
    };
    if journal.len == 0 {
        match &files.payload {
            Some(p) if p.len > 0 => r.push(
                jpath,
                Some(0),
                Severity::Damage,
                ProblemKind::EmptyJournal(p.len),
            ),
            _ => r.push(jpath, None, Severity::Leftover, ProblemKind::Empty),
        }
        return Ok(());
    }
    let jfile = storage.open(jpath, OpenMode::Read).map_err(at(jpath))?;
    let head = read_header_bytes(jfile.as_ref(), journal.len).map_err(at(jpath))?;
    let header_len = match format::decode_header(&head) {
        Ok(h) if h.id != files.id => {
            let found = h.id;
            r.push(
                jpath,
                Some(16),
                Severity::Damage,
                ProblemKind::IdMismatch { found },
            );
            return Ok(());
        }
        Ok(h) => {
            let len = h.len;
            r.header = Some(h);
            len
        }
        Err(e) => {
            let offset = header_error_offset(&e, &head);
            r.push(
                jpath,
                Some(offset),
                Severity::Damage,
                ProblemKind::Header(e),
            );
            // With a sound length field the records can still be read (their checksums are
            // seeded with the id of the file name).
            match format::header_len(&head) {
                Ok(len) if len <= head.len() => len,
                _ => return Ok(()),
            }
        }
    } as u64;
    let payload = match (&files.payload, check) {
        (Some(p), Check::Payload) => Some((
            storage.open(&p.path, OpenMode::Read).map_err(at(&p.path))?,
            p.path.clone(),
        )),
        _ => None,
    };
    let mut w = Walk {
        jpath,
        header_len,
        plen: files.payload.as_ref().map(|p| p.len),
        payload,
        scratch: if check == Check::Payload {
            vec![0u8; VERIFY_BUF]
        } else {
            Vec::new()
        },
        end: 0,
        gap: false,
        bad_run: None,
        last_good: None,
        crc_failures: Vec::new(),
        crc_unlisted: None,
        past_payload: (0, 0),
    };
    for_each_record(
        jfile.as_ref(),
        header_len,
        journal.len,
        format::record_seed(&files.id),
        |index, rec| {
            w.slot(r, index, rec);
            Ok::<(), io::Error>(())
        },
    )
    .map_err(at(jpath))?;
    w.finish(r, files, journal.len);
    Ok(())
}

/// The state of one walk over a journal's records.
struct Walk<'a> {
    jpath: &'a Path,
    header_len: u64,
    plen: Option<u64>,
    /// Open with [`Check::Payload`] (and closed after a read error).
    payload: Option<(Arc<dyn StorageFile>, PathBuf)>,
    scratch: Vec<u8>,
    /// End of the last valid append.
    end: u64,
    /// Records were lost since the last valid append: the next one's start is unknown.
    gap: bool,
    /// The current run of records that do not decode: first index, count, first error.
    bad_run: Option<(u64, u64, RecordError)>,
    /// Index of the last append whose crc matched.
    last_good: Option<u64>,
    /// (index, start, end, records) of appends whose crc failed.
    crc_failures: Vec<(u64, u64, u64, u64)>,
    /// Index of the first crc failure past [`MAX_PROBLEMS`] (the rest are only counted).
    crc_unlisted: Option<u64>,
    /// Appends ending past the payload file: count and records.
    past_payload: (u64, u64),
}

impl Walk<'_> {
    fn record_offset(&self, index: u64) -> u64 {
        self.header_len + index * RECORD_LEN as u64
    }

    fn slot(&mut self, r: &mut ChunkReport, index: u64, rec: Result<Record, RecordError>) {
        let rec = match rec {
            Ok(rec) => rec,
            Err(error) => {
                match &mut self.bad_run {
                    Some((_, count, _)) => *count += 1,
                    None => self.bad_run = Some((index, 1, error)),
                }
                return;
            }
        };
        if self.bad_run.is_some() && !matches!(rec, Record::Append { .. }) {
            // An unsynced record that outlived an earlier one: recovery cuts the journal at the
            // first invalid slot, so this is part of the torn tail unless an append follows.
            return;
        }
        if let Some((first, count, error)) = self.bad_run.take() {
            let kind = ProblemKind::RecordsCorrupt {
                index: first,
                count,
                error,
            };
            r.push(
                self.jpath,
                Some(self.record_offset(first)),
                Severity::Damage,
                kind,
            );
            self.gap = true;
        }
        let structure = |r: &mut ChunkReport, what| {
            let kind = ProblemKind::Structure { index, what };
            r.push(
                self.jpath,
                Some(self.record_offset(index)),
                Severity::Damage,
                kind,
            );
        };
        match rec {
            Record::Append { crc, end, records } => {
                if r.sealed.is_some() || r.retry.is_some() {
                    return structure(r, "append after seal");
                }
                if end <= self.end {
                    return structure(r, "append end offsets do not increase");
                }
                let start = self.end;
                self.end = end;
                r.appends += 1;
                r.records = r.records.saturating_add(records);
                r.bytes = end;
                if std::mem::take(&mut self.gap) {
                    // Its start is lost with the record before it (reported above).
                    return;
                }
                if self.plen.is_some_and(|plen| end > plen) {
                    self.past_payload.0 += 1;
                    self.past_payload.1 = self.past_payload.1.saturating_add(records);
                    return;
                }
                self.check_crc(r, index, start, end, crc, records);
            }
            Record::Seal { at, .. } => {
                if r.sealed.is_some() {
                    return structure(r, "second seal");
                }
                r.sealed = Some(at);
            }
            Record::Retry {
                steps,
                first_failure,
            } => r.retry = Some((steps, first_failure)),
            Record::Note(_) => r.notes += 1,
        }
    }

    fn check_crc(
        &mut self,
        r: &mut ChunkReport,
        index: u64,
        start: u64,
        end: u64,
        crc: u32,
        records: u64,
    ) {
        let Some((file, path)) = &self.payload else {
            return;
        };
        match payload_crc(file.as_ref(), start, end, &mut self.scratch) {
            Ok(got) if got == crc => self.last_good = Some(index),
            Ok(_) if self.crc_failures.len() < MAX_PROBLEMS => {
                self.crc_failures.push((index, start, end, records));
            }
            Ok(_) => {
                self.crc_unlisted.get_or_insert(index);
                r.problems_not_listed += 1;
            }
            Err(e) => {
                let kind = ProblemKind::Io(e.to_string());
                r.push(path, Some(start), Severity::Unreadable, kind);
                self.payload = None;
            }
        }
    }

    fn finish(self, r: &mut ChunkReport, files: &ChunkFiles, jlen: u64) {
        if let Some((index, count, error)) = self.bad_run {
            let kind = ProblemKind::TornRecords {
                index,
                count,
                error,
            };
            let at = self.record_offset(index);
            r.push(self.jpath, Some(at), Severity::TornTail, kind);
        }
        let partial = jlen.saturating_sub(self.header_len) % RECORD_LEN as u64;
        if partial > 0 {
            let at = jlen - partial;
            let kind = ProblemKind::PartialRecord(partial);
            r.push(self.jpath, Some(at), Severity::TornTail, kind);
        }
        // A chunk never sealed may end in appends that never fully reached the disk: recovery
        // cuts them off as a torn tail. In a sealed chunk every append was committed.
        let unsealed_tail = if r.sealed.is_none() {
            Severity::TornTail
        } else {
            Severity::Damage
        };
        let Some(payload) = &files.payload else {
            if r.bytes > 0 {
                let kind = ProblemKind::MissingPayload(r.bytes);
                r.push(self.jpath, None, Severity::Damage, kind);
            } else {
                r.push(self.jpath, None, Severity::Leftover, ProblemKind::Empty);
            }
            return;
        };
        let plen = payload.len;
        if self.past_payload.0 > 0 {
            let kind = ProblemKind::PayloadShort {
                expected: self.end,
                found: plen,
                appends: self.past_payload.0,
                records: self.past_payload.1,
            };
            r.push(&payload.path, Some(plen), unsealed_tail, kind);
        }
        if plen > self.end {
            let kind = ProblemKind::PayloadTail(plen - self.end);
            r.push(&payload.path, Some(self.end), Severity::TornTail, kind);
        }
        let crc_severity = |index: u64| {
            if self.last_good.is_none_or(|good| index > good) {
                unsealed_tail
            } else {
                Severity::Damage
            }
        };
        if let Some(index) = self.crc_unlisted {
            r.unlisted_worst = r.unlisted_worst.max(Some(crc_severity(index)));
        }
        for &(index, start, end, records) in &self.crc_failures {
            let severity = crc_severity(index);
            let kind = ProblemKind::AppendCrc {
                index,
                start,
                end,
                records,
            };
            r.push(&payload.path, Some(start), severity, kind);
        }
        if r.appends == 0 && plen == 0 {
            r.push(&payload.path, None, Severity::Leftover, ProblemKind::Empty);
        }
    }
}
