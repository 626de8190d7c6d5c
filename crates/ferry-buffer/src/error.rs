//! Errors of the buffer's operations: one enum per operation family, each with context and a
//! classification.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;
use crate::key::ChunkId;

/// What the buffer was doing on disk when an I/O error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskOp {
    CreateChunk,
    Write,
    Sync,
    Read,
    Remove,
    Quarantine,
}

fn is_transient(kind: io::ErrorKind) -> bool {
    !matches!(
        kind,
        io::ErrorKind::PermissionDenied
            | io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::IsADirectory
    )
}

/// Why an append was refused. A refused append left nothing visible in the buffer; the caller
/// must not acknowledge its events.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// One append is larger than a chunk (Fluentd's `BufferChunkOverflowError`); the caller
    /// splits on entry boundaries before appending.
    #[error("a {size} bytes append is larger than buffer chunk limit size ({limit})")]
    ChunkOverflow { size: u64, limit: u64 },
    /// One append has more records than `chunk_limit_records`.
    #[error("an append of {records} records is more than chunk_limit_records ({limit})")]
    TooManyRecords { records: u64, limit: u64 },
    /// `total_limit_size` is reached (Fluentd's `BufferOverflowError`).
    #[error("buffer space has too many data: {total} of {limit} bytes used, {size} more refused")]
    Overflow { size: u64, total: u64, limit: u64 },
    /// `overflow_action block` waited until its deadline without space freeing.
    #[error("buffer space has too many data: blocked {waited:?} for {size} bytes")]
    BlockTimeout { size: u64, waited: Duration },
    /// The disk refused the write or the sync (ENOSPC, EIO, ...). Nothing partial remains.
    #[error("buffer disk error during {op:?} of {}: {source}", path.display())]
    Disk {
        op: DiskOp,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The chunk key does not fit in a journal header.
    #[error("chunk key too large to store ({size} bytes)")]
    KeyTooLarge { size: usize },
    /// Compression of the append failed.
    #[error("compressing the append failed: {0}")]
    Compress(#[source] io::Error),
    #[error("buffer is closed")]
    Closed,
}

impl AppendError {
    /// Whether the same append may succeed later (space frees, the disk recovers).
    pub fn is_retryable(&self) -> bool {
        match self {
            AppendError::Overflow { .. } | AppendError::BlockTimeout { .. } => true,
            AppendError::Disk { source, .. } => is_transient(source.kind()),
            AppendError::ChunkOverflow { .. }
            | AppendError::TooManyRecords { .. }
            | AppendError::KeyTooLarge { .. }
            | AppendError::Compress(_)
            | AppendError::Closed => false,
        }
    }

    /// The buffer is full (as opposed to broken): back-pressure, not an incident.
    pub fn is_overflow(&self) -> bool {
        matches!(
            self,
            AppendError::Overflow { .. } | AppendError::BlockTimeout { .. }
        )
    }
}

/// Errors of `ack` and `quarantine`.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("buffer disk error during {op:?} of {}: {source}", path.display())]
    Disk {
        op: DiskOp,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The chunk is not in flight in this buffer (already settled, or the buffer was reopened).
    #[error("chunk {0} is not in flight in this buffer")]
    UnknownChunk(ChunkId),
}

impl BufferError {
    pub fn is_retryable(&self) -> bool {
        match self {
            BufferError::Disk { source, .. } => is_transient(source.kind()),
            BufferError::UnknownChunk(_) => false,
        }
    }
}

/// Why a buffer could not be opened. Broken chunks never cause this: they are quarantined and
/// reported instead.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("buffer configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("buffer name {0:?} must be non-empty and contain no '/' or NUL")]
    Name(String),
    #[error("buffer directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("buffer {} is in use by another process", path.display())]
    Locked { path: PathBuf },
}

impl OpenError {
    /// A locked or unreachable directory may become available; a bad config never does.
    pub fn is_retryable(&self) -> bool {
        match self {
            OpenError::Config(_) | OpenError::Name(_) => false,
            OpenError::Dir { source, .. } => is_transient(source.kind()),
            OpenError::Locked { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_is_retryable_and_permission_errors_are_not() {
        let full = AppendError::Disk {
            op: DiskOp::Write,
            path: PathBuf::from("/b"),
            source: io::Error::from(io::ErrorKind::StorageFull),
        };
        assert!(full.is_retryable());
        let denied = AppendError::Disk {
            op: DiskOp::Write,
            path: PathBuf::from("/b"),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(!denied.is_retryable());
        assert!(!AppendError::ChunkOverflow { size: 2, limit: 1 }.is_retryable());
        assert!(
            AppendError::Overflow {
                size: 1,
                total: 1,
                limit: 1
            }
            .is_overflow()
        );
    }
}
