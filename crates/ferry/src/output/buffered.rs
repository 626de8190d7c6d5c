//! The buffered path of an output: events go into a [`ferry_buffer::Buffer`] and flusher tasks
//! take queued chunks to the destination.
//!
//! Ingest side ([`Buffered::append`]): a batch is split by chunk key (tag, time slice, record
//! keys) and into pieces no larger than a chunk, on entry boundaries, then appended. The buffer
//! is synchronous, so appends that may touch the disk or wait (a file buffer, gzip,
//! `overflow_action block`) run on blocking threads; a semaphore bounds how many run at once,
//! so a blocked buffer parks async tasks, not threads. A plain memory append (a short lock and a
//! copy) runs on the calling task. `append` returns once the buffer committed the events: that
//! is when the input may acknowledge.
//!
//! Flush side ([`flush_loop`]): take the oldest ready chunk, write it to the sink, then ack
//! (delete), or nack (retry with backoff, secondary, quarantine). Buffer calls that may touch
//! the disk run on blocking threads, so a slow disk never stalls the async workers.

use super::buffer_section::{BufferSetup, ChunkKeys};
use super::split::split;
use super::{EmitError, OutputMetrics, Sink};
use crate::event::Batch;
use crate::task::TaskHandle;
use ferry_buffer::{AppendError, Buffer, Chunk, RetryDecision};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
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
}

fn log_recovery(id: &str, report: &ferry_buffer::RecoveryReport) {
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

/// What a flusher needs.
#[derive(Debug)]
pub struct FlushContext {
    pub id: String,
    pub buffered: Arc<Buffered>,
    pub sink: Arc<Sink>,
    pub secondary: Option<Arc<Sink>>,
    pub metrics: Arc<OutputMetrics>,
    /// Failed flushes since the last delivered chunk: each kind is logged once at warn.
    pub failures: crate::logging::Episode,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// One flusher: runs until cancelled, then (with `flush_at_shutdown`) drains the queue.
pub async fn flush_loop(ctx: Arc<FlushContext>, h: TaskHandle) {
    let buffer = Arc::clone(&ctx.buffered.buffer);
    loop {
        if h.is_cancelled() {
            break;
        }
        h.set("sealing due chunks");
        let b = Arc::clone(&buffer);
        let taken = blocking(move || {
            let now = SystemTime::now();
            b.enqueue_due(now);
            b.take(now)
        })
        .await
        .flatten();
        match taken {
            Some(chunk) => {
                flush_chunk(&ctx, chunk, &h).await;
            }
            None => {
                let wait = buffer
                    .next_due()
                    .and_then(|t| t.duration_since(SystemTime::now()).ok())
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1));
                h.set("waiting for chunks");
                tokio::select! {
                    () = ctx.buffered.notify.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                    () = h.cancelled() => break,
                }
            }
        }
    }
    let at_shutdown = ctx
        .buffered
        .setup
        .config
        .flush_at_shutdown
        .unwrap_or(!ctx.buffered.setup.is_file());
    if at_shutdown {
        h.set("flushing at shutdown");
        let b = Arc::clone(&buffer);
        let _ = blocking(move || b.flush_all()).await;
        loop {
            let b = Arc::clone(&buffer);
            let Some(chunk) = blocking(move || b.take(SystemTime::now())).await.flatten() else {
                break;
            };
            if !flush_chunk(&ctx, chunk, &h).await {
                break;
            }
        }
    }
}

/// Writes one chunk and settles it. Returns whether it was delivered.
async fn flush_chunk(ctx: &FlushContext, chunk: Chunk, h: &TaskHandle) -> bool {
    let m = &ctx.metrics;
    let chunk_id = chunk.id().to_hex();
    h.set_detail("writing chunk", chunk_id.clone());
    let started = Instant::now();
    let result = ctx.sink.write_chunk(&chunk).await;
    let took = started.elapsed();
    m.flush_time_ms
        .fetch_add(took.as_millis() as u64, Ordering::Relaxed);
    if took >= ctx.buffered.setup.slow_flush_log_threshold {
        m.slow_flush_count.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "buffer flush took longer time than slow_flush_log_threshold: elapsed_time={:.3} slow_flush_log_threshold={:.1} plugin_id=\"{}\"",
            took.as_secs_f64(),
            ctx.buffered.setup.slow_flush_log_threshold.as_secs_f64(),
            ctx.id
        );
    }
    let buffer = Arc::clone(&ctx.buffered.buffer);
    match result {
        Ok(()) => {
            m.write_count.fetch_add(1, Ordering::Relaxed);
            if let Some(end) = ctx.failures.ended() {
                tracing::warn!(
                    "retry succeeded. chunk_id=\"{chunk_id}\" plugin_id=\"{}\" after {} failed flushes (the last: {})",
                    ctx.id,
                    end.failures,
                    end.last
                );
            } else if chunk.retry().steps > 0 {
                tracing::debug!(
                    "retry succeeded. chunk_id=\"{chunk_id}\" plugin_id=\"{}\"",
                    ctx.id
                );
            }
            h.set_detail("deleting chunk", chunk_id);
            if let Some(Err(e)) = blocking(move || buffer.ack(chunk)).await {
                tracing::error!(
                    "output {}: delivered chunk could not be deleted: {e}",
                    ctx.id
                );
            }
            true
        }
        Err(e) if e.rolls_back() => {
            // A lost ack: the destination already took the servers concerned out of rotation,
            // so the chunk is sent again at once, elsewhere, without counting a retry.
            m.num_errors.fetch_add(1, Ordering::Relaxed);
            m.rollback_count.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "chunk_id=\"{chunk_id}\" rolled back to the queue without counting a retry: error_class={} error=\"{e}\" plugin_id=\"{}\"",
                e.class(),
                ctx.id
            );
            let _ = blocking(move || buffer.rollback(chunk)).await;
            false
        }
        Err(e) => {
            m.num_errors.fetch_add(1, Ordering::Relaxed);
            if !e.is_retryable() {
                tracing::error!(
                    "output {}: chunk {chunk_id} cannot be delivered ({e}); moving it aside",
                    ctx.id
                );
                settle_failed(ctx, chunk, &e.to_string()).await;
                return false;
            }
            m.retry_count.fetch_add(1, Ordering::Relaxed);
            let decision = blocking(move || buffer.nack(chunk, SystemTime::now())).await;
            match decision {
                Some(RetryDecision::RetryAt(at)) => {
                    let mut next = String::new();
                    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    crate::time::write_stdout_time(
                        ferry_proto::time::EventTime {
                            sec: u32::try_from(secs).unwrap_or(u32::MAX),
                            nsec: 0,
                        },
                        &mut next,
                    );
                    let what = format!("error_class={} error=\"{e}\"", e.class());
                    if ctx.failures.failed(&what) {
                        tracing::warn!(
                            "temporarily failed to flush the buffer. next_retry={next} chunk=\"{chunk_id}\" {what} plugin_id=\"{}\"",
                            ctx.id
                        );
                    } else {
                        tracing::debug!(
                            "temporarily failed to flush the buffer. next_retry={next} chunk=\"{chunk_id}\" {what} plugin_id=\"{}\" (again)",
                            ctx.id
                        );
                    }
                }
                Some(RetryDecision::UseSecondary(chunk)) => {
                    let delivered = match &ctx.secondary {
                        Some(sec) => match sec.write_chunk(&chunk).await {
                            Ok(()) => true,
                            Err(se) => {
                                tracing::warn!(
                                    "secondary of output {} failed to take chunk_id=\"{chunk_id}\": {se}; the chunk stays in the buffer",
                                    ctx.id
                                );
                                false
                            }
                        },
                        None => false,
                    };
                    if delivered {
                        m.write_secondary_count.fetch_add(1, Ordering::Relaxed);
                        let b = Arc::clone(&ctx.buffered.buffer);
                        let _ = blocking(move || b.ack(chunk)).await;
                    } else {
                        let b = Arc::clone(&ctx.buffered.buffer);
                        let _ = blocking(move || b.nack(chunk, SystemTime::now())).await;
                    }
                }
                Some(RetryDecision::GiveUp(chunk)) => {
                    tracing::error!(
                        "failed to flush the buffer, and hit limit for retries. chunk_id=\"{chunk_id}\" error=\"{e}\" plugin_id=\"{}\"",
                        ctx.id
                    );
                    settle_failed(ctx, chunk, &e.to_string()).await;
                }
                None => {}
            }
            false
        }
    }
}

/// A chunk that will never reach the destination: to the secondary if there is one and it
/// takes it, else to the quarantine directory. Never silently dropped.
async fn settle_failed(ctx: &FlushContext, chunk: Chunk, reason: &str) {
    if let Some(sec) = &ctx.secondary
        && sec.write_chunk(&chunk).await.is_ok()
    {
        ctx.metrics
            .write_secondary_count
            .fetch_add(1, Ordering::Relaxed);
        let b = Arc::clone(&ctx.buffered.buffer);
        let _ = blocking(move || b.ack(chunk)).await;
        return;
    }
    let b = Arc::clone(&ctx.buffered.buffer);
    let reason = reason.to_string();
    let id = ctx.id.clone();
    let chunk_id = chunk.id().to_hex();
    match blocking(move || b.quarantine(chunk, &reason)).await {
        Some(Ok(Some(path))) => {
            tracing::error!(
                "output {id}: chunk {chunk_id} moved to quarantine at {}",
                path.display()
            )
        }
        Some(Ok(None)) => {
            tracing::error!(
                "output {id}: chunk {chunk_id} dropped: memory buffer has no quarantine directory"
            )
        }
        Some(Err(e)) => {
            tracing::error!("output {id}: chunk {chunk_id} could not be quarantined: {e}")
        }
        None => {}
    }
}

impl ChunkKeys {
    pub fn is_tag_only(&self) -> bool {
        self.tag && !self.time && self.record.is_empty()
    }
}
