//! Finding a buffer's chunk files in a directory, grouped by chunk: the live directory (as
//! recovery reads it at open) or its quarantine (names in [`crate::format`]).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::format;
use crate::key::ChunkId;
use crate::storage::Storage;

/// Which directory a chunk's files are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    /// The buffer directory: the chunk is recovered and sent at the next open.
    Live,
    /// `quarantine/`: set aside as broken, never read by the buffer again.
    Quarantine,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Live => "live",
            Location::Quarantine => "quarantine",
        }
    }
}

/// A file and its length when the directory was listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundFile {
    pub path: PathBuf,
    pub len: u64,
}

/// The files of one chunk found in one directory (any of them may be missing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkFiles {
    pub id: ChunkId,
    pub location: Location,
    /// The `-<n>` of a chunk quarantined more than once (0 otherwise).
    pub n: u32,
    pub payload: Option<FoundFile>,
    pub journal: Option<FoundFile>,
    /// The `.reason` file written next to a quarantined chunk.
    pub reason: Option<FoundFile>,
}

/// What [`list_chunk_files`] found.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// In (id, n) order.
    pub chunks: Vec<ChunkFiles>,
    /// Files named like this buffer's chunks with a suffix that is not ours.
    pub unknown: Vec<PathBuf>,
}

/// Lists the chunk files of buffer `name` in `dir` (`location` says which naming applies: a
/// live directory holds payloads and journals only). Other files are ignored.
pub(crate) fn list_chunk_files(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    location: Location,
) -> io::Result<Listing> {
    let mut groups: BTreeMap<(ChunkId, u32), ChunkFiles> = BTreeMap::new();
    let mut unknown = Vec::new();
    for entry in storage.list(dir)? {
        if !entry.is_file {
            continue;
        }
        let parsed = match location {
            Location::Live => format::parse_file_name(name, &entry.name).map(|(id, s)| (id, 0, s)),
            Location::Quarantine => format::parse_quarantine_file_name(name, &entry.name),
        };
        let Some((id, n, suffix)) = parsed else {
            continue;
        };
        let path = dir.join(&entry.name);
        let group = groups.entry((id, n)).or_insert_with(|| ChunkFiles {
            id,
            location,
            n,
            payload: None,
            journal: None,
            reason: None,
        });
        let found = Some(FoundFile {
            path: path.clone(),
            len: entry.len,
        });
        match (suffix, location) {
            (format::PAYLOAD_SUFFIX, _) => group.payload = found,
            (format::JOURNAL_SUFFIX, _) => group.journal = found,
            (format::REASON_SUFFIX, Location::Quarantine) => group.reason = found,
            _ => unknown.push(path),
        }
    }
    let chunks = groups
        .into_values()
        .filter(|c| c.payload.is_some() || c.journal.is_some() || c.reason.is_some())
        .collect();
    Ok(Listing { chunks, unknown })
}
