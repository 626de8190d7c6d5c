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
//! A refusal because the buffer is full (`overflow_action throw_exception`) carries a [`Room`]:
//! a signal the buffer raises whenever room may have appeared, so an input that can hold its
//! sender retries at once when a flush freed bytes, instead of on a timer.
//!
//! The flush side is [`super::flusher::Flusher`].

use super::EmitError;
use super::buffer_section::BufferSetup;
use super::split::{Piece, split};
use crate::event::Batch;
use ferry_buffer::{AppendError, Buffer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Notify, Semaphore, watch};

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
    /// Bumped whenever the buffer may have room again.
    room: Arc<watch::Sender<u64>>,
    /// Episodes of holding inputs while full: the first hold and the end are logged.
    holds: super::refusal::Episodes,
}

/// Resolves once the buffer that refused an append may have room again: bytes were freed, the
/// limits changed or the buffer closed since the refusal (see the module docs).
#[derive(Debug, Clone)]
pub struct Room(watch::Receiver<u64>);

impl Room {
    /// Waits until room may have appeared since this signal was taken (at once if it already
    /// did, or if the buffer is gone).
    pub async fn appeared(mut self) {
        let _ = self.0.changed().await;
    }
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
        let this = Self::adopt(Arc::new(buffer), setup);
        this.hook_into_buffer();
        Ok(this)
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
            room: Arc::new(watch::channel(0u64).0),
            holds: Default::default(),
        }
    }

    /// Makes an adopted buffer this one's: applies its parameters and wakes this output's
    /// flushers from now on.
    pub fn take_over(&self) -> Result<(), ferry_buffer::ConfigError> {
        self.buffer.reconfigure(self.setup.config.clone())?;
        self.hook_into_buffer();
        Ok(())
    }

    /// Makes the buffer wake this output's flushers (a chunk to take) and its held inputs
    /// (room freed).
    fn hook_into_buffer(&self) {
        let wake = Arc::clone(&self.notify);
        self.buffer.set_notify(Arc::new(move || wake.notify_one()));
        let room = Arc::clone(&self.room);
        self.buffer.set_space_hook(Arc::new(move || {
            room.send_modify(|n| *n = n.wrapping_add(1))
        }));
    }

    /// The error for a refused append; a full buffer's carries `room` (taken before the
    /// attempt, so room freed meanwhile is not missed).
    fn refused(id: &str, source: AppendError, room: watch::Receiver<u64>) -> EmitError {
        let room = matches!(source, AppendError::Overflow { .. }).then_some(Room(room));
        EmitError::Buffer {
            id: id.to_string(),
            source,
            room,
        }
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
        let pieces = Arc::new(pieces);
        let hold = HOLD.try_with(Arc::clone).ok();
        let started = tokio::time::Instant::now();
        let mut done = 0;
        loop {
            let room = self.room.subscribe();
            let (committed, result) = self.append_from(&pieces, done).await;
            done = committed;
            let Err(source) = result else {
                if hold.is_some()
                    && let Some(end) = self.holds.accepted(std::time::Instant::now())
                {
                    tracing::info!(
                        "output {id}: buffer has room again after holding inputs {} times over {:.1}s",
                        end.refused,
                        end.lasted.as_secs_f64()
                    );
                }
                return Ok(());
            };
            if let (AppendError::Overflow { total, limit, .. }, Some(hold)) = (&source, &hold) {
                if self.holds.refused(std::time::Instant::now()) {
                    tracing::warn!(
                        "output {id}: buffer full ({total} of {limit} bytes): inputs that can wait (forward, tail) are held until a flush frees room; the time is counted in ferry_input_held_seconds_total"
                    );
                }
                // Wait for the flush that frees room, then go on with the pieces not yet
                // committed (those committed stay: no piece is appended twice).
                let waiting = tokio::time::Instant::now();
                let room_appeared = tokio::select! {
                    r = tokio::time::timeout_at(started + hold.limit, Room(room.clone()).appeared()) => r.is_ok(),
                    () = hold.cancel.cancelled() => false,
                };
                hold.held_ms
                    .fetch_add(waiting.elapsed().as_millis() as u64, Ordering::Relaxed);
                if room_appeared {
                    continue;
                }
            }
            return Err(Self::refused(id, source, room));
        }
    }

    /// Appends `pieces[from..]`; returns how far it got (the index of the first piece not
    /// committed) and how it ended.
    async fn append_from(
        &self,
        pieces: &Arc<Vec<Piece>>,
        from: usize,
    ) -> (usize, Result<(), AppendError>) {
        if self.appends_inline() {
            // A memory append that cannot wait is a short lock and a copy: done here, without
            // the round trip to a blocking thread.
            return append_pieces(&self.buffer, pieces, from);
        }
        let buffer = Arc::clone(&self.buffer);
        let todo = Arc::clone(pieces);
        tokio::task::spawn_blocking(move || append_pieces(&buffer, &todo, from))
            .await
            .unwrap_or((from, Err(AppendError::Closed)))
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
                .map_err(|source| Self::refused(id, source, self.room.subscribe()))?;
        }
        Ok(())
    }
}

/// Appends `pieces[from..]` in order, stopping at the first refusal.
fn append_pieces(
    buffer: &Buffer,
    pieces: &[Piece],
    from: usize,
) -> (usize, Result<(), AppendError>) {
    for (i, (key, stream, records)) in pieces.iter().enumerate().skip(from) {
        if let Err(e) = buffer.append(key, stream, *records) {
            return (i, Err(e));
        }
    }
    (pieces.len(), Ok(()))
}

/// How long the input emitting on this task can hold its sender while an output's buffer is
/// full, and how long it did (see [`holding`]).
#[derive(Debug)]
pub struct Hold {
    limit: std::time::Duration,
    held_ms: AtomicU64,
    /// The input's cancellation (shutdown, reload): a hold ends with the refusal at once.
    cancel: tokio_util::sync::CancellationToken,
}

impl Hold {
    pub fn new(limit: std::time::Duration, cancel: tokio_util::sync::CancellationToken) -> Self {
        Self {
            limit,
            held_ms: AtomicU64::new(0),
            cancel,
        }
    }

    /// Time spent waiting for room so far.
    pub fn held(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.held_ms.load(Ordering::Relaxed))
    }
}

tokio::task_local! {
    static HOLD: Arc<Hold>;
}

/// Runs `emit` (an emit of one input's batch, through the router and into every output it
/// reaches) with `hold`: an append that finds its buffer full waits, on this task, for the
/// flush that frees room, for up to the hold's limit, then goes on from the piece it stopped
/// at. Only inputs that can hold their sender (a TCP connection, a file) emit this way; the
/// others are refused at once, as `overflow_action throw_exception` says.
pub async fn holding<F: std::future::Future>(hold: Arc<Hold>, emit: F) -> F::Output {
    HOLD.scope(hold, emit).await
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
    for j in &report.finished_purges {
        tracing::info!(
            "output {id}: {} belonged to a chunk delivered while ferry stopped (its payload was already removed); removed",
            j.display()
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
