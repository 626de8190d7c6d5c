//! The flush side of a buffered output: take the oldest ready chunk, write it to the sink,
//! then ack (delete), or nack (retry with backoff, secondary, quarantine). Buffer calls that
//! may touch the disk run on blocking threads, so a slow disk never stalls the async workers.
//! A repeated failure is logged once per episode ([`crate::logging::Episode`]).

use super::buffered::Buffered;
use super::feed::{ChunkFeed, NextChunk, Ready};
use super::file::FileOut;
use super::forward::Forward;
use super::{OutputMetrics, Sink, SinkError};
use crate::task::TaskHandle;
use ferry_buffer::{Chunk, RetryDecision};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;

/// The flushers of one buffered output (`flush_thread_count` tasks share one).
#[derive(Debug)]
pub struct Flusher {
    pub id: String,
    pub buffered: Arc<Buffered>,
    pub sink: Arc<Sink>,
    pub secondary: Option<Arc<Sink>>,
    pub metrics: Arc<OutputMetrics>,
    /// Failed flushes since the last delivered chunk: each kind is logged once at warn.
    pub failures: crate::logging::Episode,
    /// Set when a reload gave the buffer to a successor: no flush at shutdown.
    pub handed_over: Arc<std::sync::atomic::AtomicBool>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

impl Flusher {
    /// One flusher task: runs until cancelled, then (with `flush_at_shutdown`) drains the
    /// queue.
    pub async fn run(self: Arc<Self>, h: TaskHandle) {
        flush_loop(&self, &h).await;
    }
}

async fn flush_loop(ctx: &Arc<Flusher>, h: &TaskHandle) {
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
            Some(chunk) => match &*ctx.sink {
                Sink::Forward(f) if f.streams() => stream_chunks(ctx, f, chunk, h).await,
                Sink::File(f) => flush_group(ctx, f, chunk, h).await,
                _ => {
                    flush_chunk(ctx, chunk, h).await;
                }
            },
            None => {
                let wait = until_due(&buffer);
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
    if at_shutdown && !ctx.handed_over.load(Ordering::SeqCst) {
        h.set("flushing at shutdown");
        let b = Arc::clone(&buffer);
        let _ = blocking(move || b.flush_all()).await;
        loop {
            let b = Arc::clone(&buffer);
            let Some(chunk) = blocking(move || b.take(SystemTime::now())).await.flatten() else {
                break;
            };
            if !flush_chunk(ctx, chunk, h).await {
                break;
            }
        }
    }
}

/// Sends chunks several in flight on one connection (the forward output with acks), from
/// `first` on while more are ready; delivered chunks are deleted as their last ack arrives,
/// and those the stream could not deliver are written one by one, with the usual retries.
async fn stream_chunks(ctx: &Arc<Flusher>, f: &Forward, first: Chunk, h: &TaskHandle) {
    h.set("sending chunks, several in flight");
    let mut feed = Feed {
        ctx: Arc::clone(ctx),
        cancel: h.cancel_token(),
        taken: Arc::new(Mutex::new(HashMap::from([(
            first.id().to_hex(),
            Instant::now(),
        )]))),
        settling: JoinSet::new(),
    };
    let left = f.stream(first, &mut feed).await;
    while feed.settling.join_next().await.is_some() {}
    for (chunk, failed) in left {
        match failed {
            Some(e) => {
                settle(ctx, chunk, Err(SinkError::Forward(e)), h).await;
            }
            None => {
                flush_chunk(ctx, chunk, h).await;
            }
        }
    }
}

/// The most chunks the file output writes as one group, and the bytes after which a group
/// takes no more (a group can pass it by its last chunk).
const GROUP_CHUNKS: usize = 16;
const GROUP_BYTES: u64 = 64 << 20;

/// Writes `first` and the chunks ready behind it as one group with one sync per file (the
/// file output's group commit), then settles each by its own outcome. With several flush
/// threads a group leaves a ready chunk for each of the others.
async fn flush_group(ctx: &Flusher, f: &FileOut, first: Chunk, h: &TaskHandle) {
    let b = Arc::clone(&ctx.buffered.buffer);
    let others = ctx.buffered.setup.flush_thread_count.saturating_sub(1) as u64;
    let mut bytes = first.bytes();
    let more = blocking(move || {
        let mut more = Vec::new();
        while more.len() + 1 < GROUP_CHUNKS && bytes < GROUP_BYTES {
            let s = b.stats();
            if s.queue_length.saturating_sub(s.in_flight_length) <= others {
                break;
            }
            let Some(chunk) = b.take(SystemTime::now()) else {
                break;
            };
            bytes += chunk.bytes();
            more.push(chunk);
        }
        more
    })
    .await
    .unwrap_or_default();
    let mut chunks = vec![first];
    chunks.extend(more);
    if chunks.len() == 1 {
        h.set_detail("writing chunk", chunks[0].id().to_hex());
    } else {
        h.set_detail("writing chunks", format!("{} chunks", chunks.len()));
    }
    let started = Instant::now();
    let results = f.write_chunks(&chunks).await;
    timed(ctx, started.elapsed());
    for (chunk, result) in chunks.into_iter().zip(results) {
        settle(ctx, chunk, result, h).await;
    }
}

/// Shortest wait for the next chunk to become ready: a chunk due already is looked at again
/// this soon (it may be waiting for an append in progress to finish).
const MIN_LOOK: Duration = Duration::from_millis(5);

/// How long to wait before the next staged chunk is due (a queued one is ready at once), at
/// most a second: new chunks and freed room wake the flusher earlier.
fn until_due(buffer: &ferry_buffer::Buffer) -> Duration {
    match buffer.next_due() {
        // A chunk that came due since the last look waits no longer (not a whole second).
        Some(t) => t
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .max(MIN_LOOK),
        None => Duration::from_secs(1),
    }
    .min(Duration::from_secs(1))
}

/// The flusher's side of a stream: ready chunks out, delivered chunks deleted.
struct Feed {
    ctx: Arc<Flusher>,
    cancel: tokio_util::sync::CancellationToken,
    /// When each chunk in the stream was taken, for the flush time.
    taken: Arc<Mutex<HashMap<String, Instant>>>,
    settling: JoinSet<()>,
}

impl ChunkFeed for Feed {
    fn next(&mut self) -> NextChunk {
        while self.settling.try_join_next().is_some() {}
        if self.cancel.is_cancelled() {
            return Box::pin(async { None });
        }
        let b = Arc::clone(&self.ctx.buffered.buffer);
        let times = Arc::clone(&self.taken);
        let taken = blocking(move || {
            let now = SystemTime::now();
            b.enqueue_due(now);
            let chunk = b.take(now)?;
            lock(&times).insert(chunk.id().to_hex(), Instant::now());
            Some(chunk)
        });
        Box::pin(async move { taken.await.flatten() })
    }

    fn ready(&self) -> Ready {
        // When the next staged chunk is due (a full one is at once).
        let b = Arc::clone(&self.ctx.buffered.buffer);
        Box::pin(async move { tokio::time::sleep(until_due(&b)).await })
    }

    fn done(&mut self, chunk: Chunk) {
        let started = lock(&self.taken).remove(&chunk.id().to_hex());
        if let Some(t) = started {
            timed(&self.ctx, t.elapsed());
        }
        let ctx = Arc::clone(&self.ctx);
        self.settling
            .spawn(async move { delivered(&ctx, chunk, None).await });
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts a flush's time, and logs it if slow.
fn timed(ctx: &Flusher, took: Duration) {
    let m = &ctx.metrics;
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
}

/// A chunk the destination took: counted, logged if it ends a run of failures, deleted.
async fn delivered(ctx: &Flusher, chunk: Chunk, h: Option<&TaskHandle>) {
    let chunk_id = chunk.id().to_hex();
    ctx.metrics.write_count.fetch_add(1, Ordering::Relaxed);
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
    if let Some(h) = h {
        h.set_detail("deleting chunk", chunk_id);
    }
    let buffer = Arc::clone(&ctx.buffered.buffer);
    if let Some(Err(e)) = blocking(move || buffer.ack(chunk)).await {
        tracing::error!(
            "output {}: delivered chunk could not be deleted: {e}",
            ctx.id
        );
    }
}

/// Writes one chunk and settles it. Returns whether it was delivered.
async fn flush_chunk(ctx: &Flusher, chunk: Chunk, h: &TaskHandle) -> bool {
    h.set_detail("writing chunk", chunk.id().to_hex());
    let started = Instant::now();
    let result = ctx.sink.write_chunk(&chunk).await;
    timed(ctx, started.elapsed());
    settle(ctx, chunk, result, h).await
}

/// Settles a chunk by the outcome of its write: deleted, rolled back, retried later, or
/// given up. Returns whether it was delivered.
async fn settle(
    ctx: &Flusher,
    chunk: Chunk,
    result: Result<(), SinkError>,
    h: &TaskHandle,
) -> bool {
    let m = &ctx.metrics;
    let chunk_id = chunk.id().to_hex();
    let buffer = Arc::clone(&ctx.buffered.buffer);
    match result {
        Ok(()) => {
            delivered(ctx, chunk, Some(h)).await;
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
                        &crate::time::Zone::host(),
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
async fn settle_failed(ctx: &Flusher, chunk: Chunk, reason: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(interval: Duration) -> ferry_buffer::Buffer {
        let mut config = ferry_buffer::BufferConfig::memory();
        config.flush_mode = ferry_buffer::FlushMode::Interval;
        config.flush_interval = interval;
        ferry_buffer::Buffer::open(config, "test").unwrap().0
    }

    /// Appends one event (an empty record): a chunk is staged.
    fn append_one(b: &ferry_buffer::Buffer) {
        let mut entries = bytes::BytesMut::new();
        let time = ferry_proto::time::EventTime::new(1, 0);
        ferry_proto::encode::write_entry(&mut entries, time, false, &[0x80]);
        b.append(&ferry_buffer::ChunkKey::tag("t"), &entries, 1)
            .unwrap();
    }

    #[test]
    fn a_chunk_that_came_due_since_the_last_look_is_waited_for_no_longer() {
        let b = buffer(Duration::from_millis(10));
        append_one(&b);
        std::thread::sleep(Duration::from_millis(30));
        // Due 20 ms ago and not sealed yet: the flusher looks again at once, not in a second.
        assert!(until_due(&b) <= MIN_LOOK, "{:?}", until_due(&b));
    }

    #[test]
    fn the_wait_is_until_the_next_chunk_is_due_and_at_most_a_second() {
        assert_eq!(
            until_due(&buffer(Duration::from_secs(5))),
            Duration::from_secs(1)
        );
        let b = buffer(Duration::from_millis(400));
        append_one(&b);
        let wait = until_due(&b);
        assert!(
            wait >= MIN_LOOK && wait <= Duration::from_millis(400),
            "{wait:?}"
        );
    }
}
