//! ferry's durable chunk buffer: the buffer behind every output, with Fluentd's buffer
//! semantics (`<buffer>` parameters, chunk keys, staged → queued → in flight → deleted,
//! overflow actions, retries with backoff).
//!
//! A library with no network and no async runtime: a thread-safe synchronous API meant for
//! blocking threads, plus a notification hook ([`Buffer::set_notify`]) to wake an async flusher.
//!
//! # Module map
//! * [`config`]: [`BufferConfig`] with Fluentd's names and defaults, [`OverflowAction`],
//!   [`Durability`], [`FlushMode`], validation.
//! * [`retry`]: [`Backoff`] and [`RetryPolicy`] (validated), per-chunk [`RetryState`].
//! * [`key`]: [`ChunkKey`] (tag, timekey, variables) and [`ChunkId`].
//! * `buffer`, `append`, `flush`: the [`Buffer`] itself: open and seal by time; the append path
//!   (`append::reserve`: overflow actions and chunk choice); take, ack, rollback, nack,
//!   quarantine.
//! * `state`: bookkeeping of chunks behind the state lock (no I/O).
//! * [`chunk`]: the in-flight [`Chunk`] handle, [`Segment`]s and the streaming [`ChunkReader`].
//! * [`format`](mod@format): the on-disk format (journal header and records) — read its docs first.
//! * `file_chunk`: one chunk's files: append and records (`mod`), group commit (`commit`),
//!   crc verification and moves to quarantine (`quarantine`).
//! * [`recovery`]: what happens at open (`mod`, journal `scan`): torn tails, quarantine, and the
//!   [`RecoveryReport`] (`report`).
//! * [`inspect`]: offline reading of a buffer directory for operators' tools (chunk states,
//!   every problem with its file and offset, the intact appends of a broken chunk), with
//!   recovery's own listing, journal walk and crc check.
//! * [`storage`]: the [`Storage`] seam to the filesystem; [`fault`]: a fault-injecting one.
//! * [`stats`]: [`BufferStats`] with Fluentd's metric names.
//! * [`error`]: [`AppendError`], [`BufferError`], [`OpenError`].
//! * [`fuzzing`]: entry points for `fuzz/`.

mod append;
mod buffer;
pub mod chunk;
pub mod config;
mod content;
pub mod error;
pub mod fault;
mod file_chunk;
mod flush;
pub mod format;
pub mod fuzzing;
pub mod inspect;
pub mod key;
pub mod recovery;
pub mod retry;
mod state;
pub mod stats;
pub mod storage;

pub use append::{AppendOutcome, DroppedChunk};
pub use buffer::{Buffer, NotedChunk, Notify};
pub use chunk::{Chunk, ChunkReader, Notebook, Segment};
pub use config::{
    BufferConfig, BufferType, Compress, ConfigError, Durability, FlushMode, OverflowAction,
};
pub use error::{AppendError, BufferError, DiskOp, OpenError};
pub use flush::RetryDecision;
pub use format::Note;
pub use key::{ChunkId, ChunkKey};
pub use recovery::{QuarantineReason, RecoveryReport, TornTail};
pub use retry::{Backoff, RetryConfig, RetryPolicy, RetryState, RetryType};
pub use stats::BufferStats;
pub use storage::{RealStorage, Storage, StorageFile};

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn buffer_and_chunk_cross_threads() {
        assert_send_sync::<super::Buffer>();
        assert_send_sync::<super::Chunk>();
    }
}
