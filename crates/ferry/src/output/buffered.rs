//! The append path of a buffered output: events go into a [`ferry_buffer::Buffer`];
//! [`super::flusher::Flusher`] tasks take queued chunks to the destination.
//!
//! Ingest side ([`Buffered::append`]): a batch is split by chunk key (tag, time slice, record
//! keys) and into pieces no larger than a chunk, on entry boundaries, then appended. The buffer
//! is synchronous, so appends that may touch the disk or wait (a file buffer, gzip,
//! `overflow_action block`) run on blocking threads; a semaphore bounds how many run at once,
//! so a blocked buffer parks async tasks, not threads. A plain memory append (a short lock and a
//! copy) runs on the calling task. `append` returns once the buffer committed the events: that
//! is when the input may acknowledge.
//!
//! The flush side is [`super::flusher::Flusher`].

use super::EmitError;
use super::buffer_section::BufferSetup;
use super::split::split;
use crate::event::Batch;
use ferry_buffer::{AppendError, Buffer};
use std::sync::Arc;
use tokio::sync::{Notify, Semaphore};

/// The name of every file buffer's chunk files (`buffer.<id>.payload`, `buffer.<id>.journal`).
pub const BUFFER_FILE_NAME: &str = "buffer";

/// Appends running at once per output; more wait (asynchronously) for a slot.
const MAX_CONCURRENT_APPENDS: usize = 32;

#[derive(Debug)]
pub struct Buffered {
    pub buffer: Arc<Buffer>,
    pub setup: BufferSetup,
    pub notify: Arc<Notify>,
    appends: Semaphore,
}

impl Buffered {
    /// Opens (and for a file buffer, recovers) the buffer on a blocking thread.
    pub async fn open(id: &str, setup: BufferSetup) -> anyhow::Result<Self> {
        let config = setup.config.clone();
        // Chunk files are named after the buffer, not the output: a path belongs to one output
        // (the buffer's lock file enforces it), and renaming an output or changing its type
        // must not strand what it buffered.
        let (buffer, report) =
            tokio::task::spawn_blocking(move || Buffer::open(config, BUFFER_FILE_NAME))
                .await?
                .map_err(|e| anyhow::anyhow!("output {id}: cannot open its buffer: {e}"))?;
        log_recovery(id, &report);
        let buffer = Arc::new(buffer);
        let notify = Arc::new(Notify::new());
        let wake = Arc::clone(&notify);
        buffer.set_notify(Arc::new(move || wake.notify_one()));
        Ok(Self {
            buffer,
            setup,
            notify,
            appends: Semaphore::new(MAX_CONCURRENT_APPENDS),
        })
    }

    /// A buffer over the running `buffer` of the output this one replaces at a reload (the
    /// same type and path): the chunks stay where they are, the new parameters apply from now
    /// on ([`Buffer::reconfigure`], called by [`Self::take_over`]).
    pub fn adopt(buffer: Arc<Buffer>, setup: BufferSetup) -> Self {
        Self {
            buffer,
            setup,
            notify: Arc::new(Notify::new()),
            appends: Semaphore::new(MAX_CONCURRENT_APPENDS),
        }
    }

    /// Makes an adopted buffer this one's: applies its parameters and wakes this output's
    /// flushers from now on.
    pub fn take_over(&self) -> Result<(), ferry_buffer::ConfigError> {
        self.buffer.reconfigure(self.setup.config.clone())?;
        let wake = Arc::clone(&self.notify);
        self.buffer.set_notify(Arc::new(move || wake.notify_one()));
        Ok(())
    }

    /// Whether appends run on the calling task: a memory buffer without gzip whose overflow
    /// action does not block (no I/O, no wait, only its state lock).
    fn appends_inline(&self) -> bool {
        let c = &self.setup.config;
        !self.setup.is_file()
            && c.overflow_action != ferry_buffer::OverflowAction::Block
            && c.compress == ferry_buffer::Compress::Text
    }

    /// Commits `batch` into the buffer. See the module docs.
    pub async fn append(&self, id: &str, batch: &Batch) -> Result<(), EmitError> {
        let pieces = split(batch, &self.setup).map_err(|e| EmitError::Split {
            id: id.to_string(),
            reason: e,
        })?;
        let _slot = self
            .appends
            .acquire()
            .await
            .map_err(|_| EmitError::ShuttingDown)?;
        if self.appends_inline() {
            // A memory append that cannot wait is a short lock and a copy: done here, without
            // the round trip to a blocking thread.
            for (key, stream, records) in &pieces {
                self.buffer
                    .append(key, stream, *records)
                    .map_err(|source| EmitError::Buffer {
                        id: id.to_string(),
                        source,
                    })?;
            }
            return Ok(());
        }
        let buffer = Arc::clone(&self.buffer);
        let outcome = tokio::task::spawn_blocking(move || {
            for (key, stream, records) in &pieces {
                buffer.append(key, stream, *records)?;
            }
            Ok::<(), AppendError>(())
        })
        .await
        .map_err(|_| EmitError::ShuttingDown)?;
        outcome.map_err(|source| EmitError::Buffer {
            id: id.to_string(),
            source,
        })
    }

    /// [`Self::append`] on the calling (blocking) thread, for chunks moved from another buffer
    /// ([`super::handoff`]).
    #[allow(clippy::result_large_err)] // as `append`: the error is built once per refusal
    pub fn append_blocking(&self, id: &str, batch: &Batch) -> Result<(), EmitError> {
        let pieces = split(batch, &self.setup).map_err(|e| EmitError::Split {
            id: id.to_string(),
            reason: e,
        })?;
        for (key, stream, records) in &pieces {
            self.buffer
                .append(key, stream, *records)
                .map_err(|source| EmitError::Buffer {
                    id: id.to_string(),
                    source,
                })?;
        }
        Ok(())
    }
}

pub(super) fn log_recovery(id: &str, report: &ferry_buffer::RecoveryReport) {
    if !report.recovered.is_empty() {
        let records: u64 = report.recovered.iter().map(|c| c.records).sum();
        let bytes: u64 = report.recovered.iter().map(|c| c.bytes).sum();
        tracing::info!(
            "output {id}: resumed {} buffered chunks ({records} records, {bytes} bytes)",
            report.recovered.len()
        );
    }
    for t in &report.torn_tails {
        tracing::warn!(
            "output {id}: torn tail of {} truncated to {} bytes: {} uncommitted appends ({} records) removed",
            t.path.display(),
            t.kept_bytes,
            t.appends_removed,
            t.records_removed
        );
    }
    for q in &report.quarantined {
        tracing::error!(
            "output {id}: corrupt chunk {} moved to quarantine at {}: {}",
            q.id.to_hex(),
            q.moved_to.display(),
            q.reason
        );
    }
    for f in &report.failures {
        tracing::error!(
            "output {id}: recovery could not move or delete {}: {}",
            f.path.display(),
            f.error
        );
    }
}
