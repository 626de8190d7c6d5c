//! What examining a chunk says: its [`ChunkState`] and [`Problem`]s, each with the
//! [`Severity`] that says what recovery does about it (rules in [`crate::format`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::format::{Header, HeaderError, RecordError};
use crate::recovery::{ChunkFiles, Location};

/// Problems listed per chunk; more are counted in [`ChunkReport::problems_not_listed`].
pub const MAX_PROBLEMS: usize = 64;

/// How much of a chunk [`crate::inspect::Inspector::examine`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Journals and file lengths only. Gains: quick whatever the payload size (a 64 KiB read
    /// per chunk for most). Loses: a flipped payload byte goes unseen.
    Journal,
    /// Also streams every payload and checks each append's crc32c. Gains: every byte of the
    /// chunk is checked. Loses: reads every byte.
    Payload,
}

/// What ferry does about a problem at its next open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Files with no data (an empty journal, an empty payload): deleted. Nothing is lost.
    Leftover,
    /// A torn tail: bytes written but never committed, so never acknowledged (a crash between
    /// payload write and journal sync). Truncated; the rest of the chunk is sent.
    TornTail,
    /// Committed data that is unreadable or fails its checksum, or files that contradict each
    /// other: the chunk is quarantined (at open, or when first taken if only a payload crc
    /// fails). Its intact appends can be salvaged.
    Damage,
    /// A file could not be read (permissions, an I/O error): the check is incomplete.
    Unreadable,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Leftover => "leftover",
            Severity::TornTail => "torn tail",
            Severity::Damage => "damage",
            Severity::Unreadable => "unreadable",
        }
    }
}

/// One problem in a chunk's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file it is in.
    pub path: PathBuf,
    /// Byte offset in that file (none for a missing or unreadable file).
    pub offset: Option<u64>,
    pub severity: Severity,
    pub kind: ProblemKind,
}

/// What is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    #[error("no data: empty chunk files")]
    Empty,
    #[error(
        "payload of {0} bytes without a journal: nothing says where its appends end or what they should checksum to"
    )]
    OrphanPayload(u64),
    #[error("zero-byte journal next to a {0}-byte payload")]
    EmptyJournal(u64),
    #[error("journal header: {0}")]
    Header(HeaderError),
    #[error("journal header names chunk {found}, the file name another")]
    IdMismatch { found: crate::ChunkId },
    #[error("journal records {index}..{} do not decode ({error}) but later records do", index + count)]
    RecordsCorrupt {
        index: u64,
        count: u64,
        error: RecordError,
    },
    #[error("torn journal tail: records {index}..{} do not decode ({error})", index + count)]
    TornRecords {
        index: u64,
        count: u64,
        error: RecordError,
    },
    #[error("torn journal tail: a partial record of {0} bytes")]
    PartialRecord(u64),
    #[error("journal record {index}: {what}")]
    Structure { index: u64, what: &'static str },
    #[error("payload file missing; the journal lists {0} bytes")]
    MissingPayload(u64),
    #[error(
        "payload is {found} bytes, the journal's appends end at {expected} ({appends} appends, {records} records, past the end)"
    )]
    PayloadShort {
        expected: u64,
        found: u64,
        appends: u64,
        records: u64,
    },
    #[error("{0} payload bytes past the last append (never committed)")]
    PayloadTail(u64),
    #[error("append {index} (payload bytes {start}..{end}, {records} records): crc32c mismatch")]
    AppendCrc {
        index: u64,
        start: u64,
        end: u64,
        records: u64,
    },
    #[error("cannot read: {0}")]
    Io(String),
}

/// What a chunk holds, as far as its files say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkState {
    /// Still filling when the buffer closed; queued at the next open.
    Staged,
    /// Sealed (full, due, or flushed) and waiting to be sent or retried.
    Queued,
    /// In `quarantine/`: never sent again by ferry.
    Quarantined,
    /// Live, but with [`Severity::Damage`]: ferry will quarantine it.
    Damaged,
}

impl ChunkState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkState::Staged => "staged",
            ChunkState::Queued => "queued",
            ChunkState::Quarantined => "quarantined",
            ChunkState::Damaged => "damaged",
        }
    }
}

/// What [`crate::inspect::Inspector::examine`] found in one chunk.
#[derive(Clone, Debug)]
pub struct ChunkReport {
    pub files: ChunkFiles,
    pub check: Check,
    /// The decoded journal header (its chunk key, created time, gzip flag), if readable.
    pub header: Option<Header>,
    /// Valid append records, their records and the payload length they cover.
    pub appends: u64,
    pub records: u64,
    pub bytes: u64,
    /// When the chunk was sealed (queued), from its seal record.
    pub sealed: Option<SystemTime>,
    /// Retry steps and first failure, from its last retry record.
    pub retry: Option<(u32, SystemTime)>,
    /// Notes an output kept on its progress with the chunk (see `format`, "Notes").
    pub notes: u64,
    /// The text of a quarantined chunk's `.reason` file.
    pub reason: Option<String>,
    /// In file order (journal, then payload), at most [`MAX_PROBLEMS`].
    pub problems: Vec<Problem>,
    pub problems_not_listed: u64,
    /// The worst severity among the problems not listed.
    pub(super) unlisted_worst: Option<Severity>,
}

impl ChunkReport {
    pub fn state(&self) -> ChunkState {
        if self.files.location == Location::Quarantine {
            ChunkState::Quarantined
        } else if self.worst() >= Some(Severity::Damage) {
            ChunkState::Damaged
        } else if self.sealed.is_some() {
            ChunkState::Queued
        } else {
            ChunkState::Staged
        }
    }

    /// The most serious problem's severity (`None`: no problem).
    pub fn worst(&self) -> Option<Severity> {
        let listed = self.problems.iter().map(|p| p.severity).max();
        listed.max(self.unlisted_worst)
    }

    pub(super) fn push(
        &mut self,
        path: &Path,
        offset: Option<u64>,
        severity: Severity,
        kind: ProblemKind,
    ) {
        if self.problems.len() >= MAX_PROBLEMS {
            self.problems_not_listed += 1;
            self.unlisted_worst = self.unlisted_worst.max(Some(severity));
            return;
        }
        self.problems.push(Problem {
            path: path.to_path_buf(),
            offset,
            severity,
            kind,
        });
    }
}
