//! Offline inspection of a file buffer directory, for the operator's tools (`ferry buffer ls`,
//! `verify` and `salvage`): what each chunk holds, every problem in its files with the file
//! and byte offset, and the intact appends of a broken chunk.
//!
//! # Read only
//! Nothing is created, written, truncated or moved, not even the lock file. A directory in use
//! is refused: [`Inspector::open`] takes the buffer's advisory lock (`<name>.lock`, the lock
//! [`crate::Buffer::open`] takes) when the lock file exists and holds it while the inspector
//! lives, so no ferry opens the buffer half-way through. Without a lock file no process has
//! the buffer open (opening creates it).
//!
//! # Same reading as recovery
//! Chunks are found and read with recovery's own code ([`crate::recovery`]): the same directory
//! listing, the same journal walk (records in batches), the same streamed crc32c of a payload
//! range. Memory stays bounded whatever the chunk size (journals in batches of records,
//! payloads in 64 KiB pieces), except in salvage, which holds one append at a time: at most
//! the payload file's size as stored, at most [`MAX_DECODED_APPEND`] decompressed.
//!
//! # What a problem means
//! Every [`Problem`] has a [`Severity`] saying what ferry does about it at the next open:
//! delete leftovers, truncate a torn tail (bytes never acknowledged), or quarantine a damaged
//! chunk (acknowledged data unreadable). The rules are recovery's, described in
//! [`crate::format`].
//!
//! Files: `mod` (the inspector, finding chunks, errors), `report` (a chunk's state and
//! problems), `check` (examining a chunk), `salvage` (reading the intact appends).

use std::any::Any;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::buffer::valid_name;
use crate::format;
use crate::key::ChunkId;
use crate::recovery::list_chunk_files;
pub use crate::recovery::{ChunkFiles, FoundFile, Location};
use crate::storage::{RealStorage, Storage};

mod check;
mod report;
mod salvage;

pub use report::{Check, ChunkReport, ChunkState, MAX_PROBLEMS, Problem, ProblemKind, Severity};
pub use salvage::{
    IntactAppend, MAX_DECODED_APPEND, SalvageError, SalvageReport, SkipReason, SkippedAppend,
};

/// How [`Inspector::open`] keeps ferry away while it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exclusion {
    /// Take the buffer's lock if its lock file exists, and hold it while the inspector lives.
    /// Gains: a ferry cannot open the buffer while it is read, and a directory in use is
    /// refused. Loses: nothing; a missing lock file is not created.
    TakeLock,
    /// The caller holds the lock already: it opened a [`crate::Buffer`] on this directory (to
    /// salvage a chunk into the buffer it came from). Nothing is checked.
    HeldByCaller,
}

/// Why a directory could not be inspected or a chunk not found.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{} is in use by a running ferry (lock {lock} held); stop it first", dir.display())]
    InUse { dir: PathBuf, lock: String },
    #[error("buffer name {0:?} must be non-empty and contain no '/' or NUL")]
    Name(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no chunk {what} of buffer '{name}' in {} or its quarantine", dir.display())]
    NotFound {
        what: String,
        name: String,
        dir: PathBuf,
    },
    #[error("{what} names {} chunks ({}); name one of their files instead", candidates.len(),
        candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        what: String,
        candidates: Vec<PathBuf>,
    },
}

impl InspectError {
    /// The directory is busy: stopping the ferry that uses it (and trying again) helps.
    pub fn is_in_use(&self) -> bool {
        matches!(self, InspectError::InUse { .. })
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> InspectError + '_ {
    move |source| InspectError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every chunk of a buffer directory: live ones, then quarantined ones, each in id order.
#[derive(Debug, Default)]
pub struct Inventory {
    pub chunks: Vec<ChunkFiles>,
    /// Files named like the buffer's chunks with a suffix that is not ours (left alone).
    pub unknown: Vec<PathBuf>,
}

/// A buffer directory opened for reading. See the module docs.
#[derive(Debug)]
pub struct Inspector {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    name: String,
    _lock: Option<Box<dyn Any + Send + Sync>>,
}

impl Inspector {
    /// Opens buffer `name` in `dir` on the real filesystem.
    pub fn open(dir: &Path, name: &str, exclusion: Exclusion) -> Result<Self, InspectError> {
        Self::open_with_storage(dir, name, exclusion, Arc::new(RealStorage))
    }

    /// [`Inspector::open`] over a given [`Storage`].
    pub fn open_with_storage(
        dir: &Path,
        name: &str,
        exclusion: Exclusion,
        storage: Arc<dyn Storage>,
    ) -> Result<Self, InspectError> {
        if !valid_name(name) {
            return Err(InspectError::Name(name.to_string()));
        }
        // The directory must be listable before anything else is said about it.
        storage.list(dir).map_err(io_at(dir))?;
        let lock_name = format!("{name}.lock");
        let lock = match exclusion {
            Exclusion::HeldByCaller => None,
            Exclusion::TakeLock => {
                let path = dir.join(&lock_name);
                match storage.lock_existing(&path) {
                    Ok(guard) => guard,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Err(InspectError::InUse {
                            dir: dir.to_path_buf(),
                            lock: lock_name,
                        });
                    }
                    Err(e) => return Err(io_at(&path)(e)),
                }
            }
        };
        Ok(Inspector {
            storage,
            dir: dir.to_path_buf(),
            name: name.to_string(),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The quarantine directory of this buffer.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.dir.join(format::QUARANTINE_DIR)
    }

    /// Lists every chunk, live and quarantined.
    pub fn chunks(&self) -> Result<Inventory, InspectError> {
        let storage = self.storage.as_ref();
        let live = list_chunk_files(storage, &self.dir, &self.name, Location::Live)
            .map_err(io_at(&self.dir))?;
        let qdir = self.quarantine_dir();
        let quarantined = match list_chunk_files(storage, &qdir, &self.name, Location::Quarantine) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Default::default(),
            Err(e) => return Err(io_at(&qdir)(e)),
        };
        let mut inventory = Inventory {
            chunks: live.chunks,
            unknown: live.unknown,
        };
        inventory.chunks.extend(quarantined.chunks);
        inventory.unknown.extend(quarantined.unknown);
        Ok(inventory)
    }

    /// Finds a chunk by its 32-hex-digit id (live or quarantined; refused when several chunks
    /// have it, as after the same chunk was quarantined twice), by `<id>-<n>` (the `n`th
    /// repeat quarantine) or by the path of one of its files (payload, journal or reason). A bare file name is looked up in the
    /// directory, then in its quarantine. Files outside both count as quarantined.
    pub fn find(&self, what: &str) -> Result<ChunkFiles, InspectError> {
        let not_found = || InspectError::NotFound {
            what: what.to_string(),
            name: self.name.clone(),
            dir: self.dir.clone(),
        };
        let by_id = match what.split_once('-') {
            None => ChunkId::from_hex(what).map(|id| (id, None)),
            Some((hex, n)) => ChunkId::from_hex(hex)
                .zip(n.parse::<u32>().ok().filter(|n| *n > 0))
                .map(|(id, n)| (id, Some(n))),
        };
        if let Some((id, n)) = by_id {
            let mut hits: Vec<ChunkFiles> = self
                .chunks()?
                .chunks
                .into_iter()
                .filter(|c| c.id == id && n.is_none_or(|n| c.n == n))
                .collect();
            return match hits.len() {
                0 => Err(not_found()),
                1 => Ok(hits.remove(0)),
                _ => Err(InspectError::Ambiguous {
                    what: what.to_string(),
                    candidates: hits.iter().filter_map(any_file).collect(),
                }),
            };
        }
        let given = Path::new(what);
        let file_name = given
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(not_found)?;
        let (id, n, _) =
            format::parse_quarantine_file_name(&self.name, file_name).ok_or_else(not_found)?;
        let dirs = match given.parent() {
            Some(p) if !p.as_os_str().is_empty() => vec![p.to_path_buf()],
            _ => vec![self.dir.clone(), self.quarantine_dir()],
        };
        for parent in dirs {
            let location = if n == 0 && same_dir(&parent, &self.dir) {
                Location::Live
            } else {
                Location::Quarantine
            };
            let listing =
                match list_chunk_files(self.storage.as_ref(), &parent, &self.name, location) {
                    Ok(l) => l,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_at(&parent)(e)),
                };
            let named = |f: &Option<FoundFile>| {
                f.as_ref()
                    .is_some_and(|f| f.path.file_name() == Some(file_name.as_ref()))
            };
            if let Some(c) = listing.chunks.into_iter().find(|c| {
                c.id == id
                    && c.n == n
                    && (named(&c.payload) || named(&c.journal) || named(&c.reason))
            }) {
                return Ok(c);
            }
        }
        Err(not_found())
    }

    /// Reads a chunk's files and reports its state and every problem found (see [`Check`]).
    /// Never fails: what cannot be read is itself a problem ([`Severity::Unreadable`]).
    pub fn examine(&self, files: &ChunkFiles, check: Check) -> ChunkReport {
        check::examine(self.storage.as_ref(), files, check)
    }

    /// Hands every intact append of a chunk (journal record valid, crc32c matching) to `f`, in
    /// order, decompressed, and reports what was skipped and why.
    pub fn salvage<E>(
        &self,
        files: &ChunkFiles,
        f: impl FnMut(IntactAppend<'_>) -> Result<(), E>,
    ) -> Result<SalvageReport, SalvageError<E>> {
        salvage::salvage(self.storage.as_ref(), files, f)
    }
}

fn any_file(c: &ChunkFiles) -> Option<PathBuf> {
    [&c.payload, &c.journal, &c.reason]
        .into_iter()
        .flatten()
        .map(|f| f.path.clone())
        .next()
}

/// Whether two paths name the same directory (how [`Inspector::find`] tells a live file).
pub fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
