//! Moving a chunk's files to quarantine, and the streaming crc verification that decides it.

use std::io;
use std::path::{Path, PathBuf};

use super::{ChunkPaths, FileChunk, FileError, VERIFY_BUF, lock};
use crate::format::{self, RECORD_LEN, Record};
use crate::key::ChunkId;
use crate::storage::{OpenMode, Storage, StorageFile, read_exact_at, stream_range, write_all_at};

impl FileChunk {
    /// Moves both files to `qdir` and writes the reason next to them. Returns the new payload
    /// path.
    pub fn quarantine(&self, qdir: &Path, name: &str, reason: &str) -> Result<PathBuf, FileError> {
        *lock(&self.writer) = None;
        let mut paths = lock(&self.paths);
        let moved =
            move_to_quarantine(self.storage.as_ref(), qdir, name, &self.id, &paths, reason)?;
        *paths = moved.clone();
        Ok(moved.payload)
    }

    /// Streams the whole payload and checks every append's crc32c against the journal, with
    /// bounded buffers. `Ok(Err(offset))` names the first append that fails.
    pub fn verify(&self, payload_len: u64) -> io::Result<Result<(), u64>> {
        let paths = self.paths();
        let journal = self.storage.open(&paths.journal, OpenMode::Read)?;
        let payload = self.storage.open(&paths.payload, OpenMode::Read)?;
        let mut scratch = vec![0u8; VERIFY_BUF];
        let mut rec = [0u8; RECORD_LEN];
        let mut index = 0u64;
        let mut start = 0u64;
        while start < payload_len {
            read_exact_at(
                journal.as_ref(),
                &mut rec,
                self.header_len + index * RECORD_LEN as u64,
            )?;
            let Ok(Record::Append { crc, end, .. }) = format::decode_record(&rec, index, self.seed)
            else {
                return Ok(Err(start));
            };
            if end <= start || end > payload_len {
                return Ok(Err(start));
            }
            if payload_crc(payload.as_ref(), start, end, &mut scratch)? != crc {
                return Ok(Err(start));
            }
            start = end;
            index += 1;
        }
        Ok(Ok(()))
    }
}

/// The crc32c of payload bytes `start..end`, streamed through `scratch` (bounded memory
/// whatever the append's size). What an append record's crc is checked against: by
/// [`FileChunk::verify`], by recovery's torn-tail check and by [`crate::inspect`].
pub fn payload_crc(
    payload: &dyn StorageFile,
    start: u64,
    end: u64,
    scratch: &mut [u8],
) -> io::Result<u32> {
    let mut crc = 0u32;
    stream_range(
        payload,
        start,
        end.saturating_sub(start),
        scratch,
        |piece| {
            crc = crc32c::crc32c_append(crc, piece);
        },
    )?;
    Ok(crc)
}

/// Renames a chunk's files into `qdir` (suffixing on name collisions) and writes a reason file.
pub fn move_to_quarantine(
    storage: &dyn Storage,
    qdir: &Path,
    name: &str,
    id: &ChunkId,
    paths: &ChunkPaths,
    reason: &str,
) -> Result<ChunkPaths, FileError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FileError { path, source }
    };
    storage.create_dir_all(qdir).map_err(err(qdir))?;
    let taken: Vec<String> = storage
        .list(qdir)
        .map_err(err(qdir))?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut n = 0;
    let mut base = format::quarantine_base(name, id, n);
    while taken.iter().any(|t| t.starts_with(&format!("{base}."))) {
        n += 1;
        base = format::quarantine_base(name, id, n);
    }
    let target = ChunkPaths {
        payload: qdir.join(format!("{base}.{}", format::PAYLOAD_SUFFIX)),
        journal: qdir.join(format!("{base}.{}", format::JOURNAL_SUFFIX)),
    };
    for (from, to) in [
        (&paths.payload, &target.payload),
        (&paths.journal, &target.journal),
    ] {
        match storage.rename(from, to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(FileError {
                    path: from.clone(),
                    source,
                });
            }
        }
    }
    let reason_path = qdir.join(format!("{base}.{}", format::REASON_SUFFIX));
    let text = format!("{reason}\n");
    let file = storage
        .create_new(&reason_path)
        .map_err(err(&reason_path))?;
    write_all_at(file.as_ref(), text.as_bytes(), 0).map_err(err(&reason_path))?;
    let _ = storage.sync_dir(qdir);
    if let Some(dir) = paths.payload.parent() {
        let _ = storage.sync_dir(dir);
    }
    Ok(target)
}
