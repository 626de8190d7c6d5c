//! The Forward load generator: PackedForward requests of sequence-numbered records over one or
//! more connections, each connection one stream.
//!
//! A connection writes requests of `batch` events; with acks each request carries the `chunk`
//! option and at most `inflight` requests wait for their `{"ack": chunk}` at once (acks come
//! back in order on a connection; a different chunk id is an error). The rate, when set, is
//! spread evenly over the connections and kept by a schedule (a late connection catches up);
//! without it requests go as fast as the server takes them. The run ends after `events` events,
//! after `duration`, or when the stop flag is raised, whichever comes first; every request
//! written is then waited for.
//!
//! Stream `stream_base + i` is connection `i`; its records are numbered from 0, so the events
//! sent per stream are exactly what a counting receiver must see.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferry_proto::ack::{AckError, parse_ack};
use ferry_proto::encode::{packed_forward_header, packed_forward_trailer, write_entry};
use ferry_proto::{ChunkId, Compression, EventTime};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::conn::{self, ConnError, MAX_REPLY_BYTES, Target, ValueReader};
use crate::record::RecordShape;

/// What to send.
#[derive(Debug, Clone)]
pub struct SendConfig {
    pub target: Target,
    pub tag: String,
    pub connections: u32,
    /// Events per request.
    pub batch: u32,
    /// Approximate record size in bytes.
    pub record_size: usize,
    /// Ask for acks (the `chunk` option) and wait for them.
    pub acks: bool,
    /// Requests waiting for an ack per connection.
    pub inflight: u32,
    /// Events per second over all connections; `None`: as fast as possible.
    pub rate: Option<f64>,
    /// Total events to send (spread over the connections).
    pub events: Option<u64>,
    pub duration: Option<Duration>,
    /// Stream number of the first connection.
    pub stream_base: u32,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("stream {stream}: {source}")]
    Conn {
        stream: u32,
        #[source]
        source: ConnError,
    },
    #[error("stream {stream}: reply is not an ack: {source}")]
    NotAck {
        stream: u32,
        #[source]
        source: AckError,
    },
    #[error("stream {stream}: ack for chunk {got:?} while waiting for {want:?}")]
    AckMismatch {
        stream: u32,
        want: String,
        got: String,
    },
    #[error("stream {stream}: the server closed the connection with {pending} requests unacked")]
    ClosedWithPending { stream: u32, pending: u64 },
    #[error("a connection task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl SendError {
    /// True when the server went away (as opposed to speaking wrongly).
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Conn { source, .. } => source.is_retryable(),
            SendError::ClosedWithPending { .. } => true,
            _ => false,
        }
    }
}

/// Live counters, read by samplers while a run goes on.
#[derive(Debug, Default)]
pub struct SendProgress {
    pub sent_events: AtomicU64,
    pub acked_events: AtomicU64,
    /// Entry-stream bytes of the acknowledged requests (of the written ones without acks).
    pub acked_bytes: AtomicU64,
}

/// One acknowledged request: when it was written (seconds since the run started) and how long
/// its ack took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AckTiming {
    pub sent_at: f64,
    pub latency: f64,
}

/// The result of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendReport {
    pub events: u64,
    pub requests: u64,
    /// Entry-stream bytes (the records as msgpack entries).
    pub entry_bytes: u64,
    pub secs: f64,
    /// Events sent per stream (numbered from 0).
    pub per_stream: BTreeMap<u32, u64>,
    #[serde(skip)]
    pub acks: Vec<AckTiming>,
}

impl SendReport {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.secs.max(1e-9)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.entry_bytes as f64 / 1e6 / self.secs.max(1e-9)
    }
}

/// Quantiles (0.0..=1.0) of ack latencies, in seconds.
pub fn latency_quantile(acks: &[AckTiming], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = acks.iter().map(|a| a.latency).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    v.get(idx).copied()
}

struct Pending {
    chunk: String,
    events: u64,
    bytes: u64,
    written: Instant,
}

struct StreamResult {
    stream: u32,
    events: u64,
    requests: u64,
    bytes: u64,
    acks: Vec<AckTiming>,
}

/// Run the generator until its end condition or `stop`.
pub async fn run(
    cfg: SendConfig,
    progress: Arc<SendProgress>,
    stop: Arc<AtomicBool>,
) -> Result<SendReport, SendError> {
    let started = Instant::now();
    let shape = Arc::new(RecordShape::new(cfg.record_size));
    let conns = cfg.connections.max(1);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let quota = cfg
            .events
            .map(|n| n / u64::from(conns) + u64::from(u64::from(i) < n % u64::from(conns)));
        let cfg = cfg.clone();
        let (shape, progress, stop) =
            (Arc::clone(&shape), Arc::clone(&progress), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            stream_run(
                &cfg,
                cfg.stream_base + i,
                quota,
                &shape,
                &progress,
                &stop,
                started,
            )
            .await
        }));
    }
    let mut report = SendReport::default();
    let mut first_error = None;
    for t in tasks {
        match t.await? {
            Ok(r) => {
                report.events += r.events;
                report.requests += r.requests;
                report.entry_bytes += r.bytes;
                report.per_stream.insert(r.stream, r.events);
                report.acks.extend(r.acks);
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    report.secs = started.elapsed().as_secs_f64();
    Ok(report)
}

fn build_request(
    shape: &RecordShape,
    tag: &str,
    stream: u32,
    first_seq: u64,
    count: u64,
    chunk: Option<&ChunkId>,
) -> (BytesMut, u64) {
    let mut entries = BytesMut::with_capacity(count as usize * 256);
    let mut record = BytesMut::with_capacity(512);
    let now = EventTime::now();
    for seq in first_seq..first_seq + count {
        record.clear();
        shape.write_msgpack(&mut record, stream, seq);
        write_entry(&mut entries, now, false, &record);
    }
    let entry_bytes = entries.len() as u64;
    let mut out = BytesMut::with_capacity(entries.len() + 128);
    out.extend_from_slice(&packed_forward_header(tag, entries.len()));
    out.extend_from_slice(&entries);
    out.extend_from_slice(&packed_forward_trailer(count, chunk, Compression::Text));
    (out, entry_bytes)
}

async fn stream_run(
    cfg: &SendConfig,
    stream: u32,
    quota: Option<u64>,
    shape: &RecordShape,
    progress: &Arc<SendProgress>,
    stop: &AtomicBool,
    started: Instant,
) -> Result<StreamResult, SendError> {
    let wrap = |source| SendError::Conn { stream, source };
    let io = conn::connect(&cfg.target).await.map_err(wrap)?;
    let (rd, mut wr) = tokio::io::split(io);
    let window = cfg.inflight.max(1) as usize;
    let (tx, mut rx) = mpsc::channel::<Pending>(window);
    let acks = cfg.acks;
    let live = Arc::clone(progress);
    let reader = tokio::spawn(async move {
        let mut rd = ValueReader::new(rd, MAX_REPLY_BYTES);
        let mut timings = Vec::new();
        while let Some(p) = rx.recv().await {
            if acks {
                let frame = match rd.next().await {
                    Ok(Some(f)) => f,
                    Ok(None) | Err(ConnError::Closed) => {
                        return Err(SendError::ClosedWithPending {
                            stream,
                            pending: 1 + rx.len() as u64,
                        });
                    }
                    Err(source) => return Err(SendError::Conn { stream, source }),
                };
                let id =
                    parse_ack(&frame).map_err(|source| SendError::NotAck { stream, source })?;
                if id.bytes != p.chunk.as_bytes() {
                    return Err(SendError::AckMismatch {
                        stream,
                        want: p.chunk,
                        got: String::from_utf8_lossy(&id.bytes).into_owned(),
                    });
                }
                timings.push(AckTiming {
                    sent_at: p.written.duration_since(started).as_secs_f64(),
                    latency: p.written.elapsed().as_secs_f64(),
                });
            }
            if acks {
                live.acked_events.fetch_add(p.events, Ordering::Relaxed);
                live.acked_bytes.fetch_add(p.bytes, Ordering::Relaxed);
            }
        }
        Ok::<_, SendError>(timings)
    });
    let per_conn_rate = cfg.rate.map(|r| r / f64::from(cfg.connections.max(1)));
    let batch = u64::from(cfg.batch.max(1));
    let (mut seq, mut requests, mut bytes) = (0u64, 0u64, 0u64);
    let deadline = cfg.duration.map(|d| started + d);
    let mut write_error = None;
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let count = match quota {
            Some(q) if seq >= q => break,
            Some(q) => batch.min(q - seq),
            None => batch,
        };
        if let Some(rate) = per_conn_rate {
            let due = started + Duration::from_secs_f64(seq as f64 / rate.max(1e-9));
            tokio::time::sleep_until(due.into()).await;
        }
        let chunk = format!("s{stream}-{requests}");
        let id = ChunkId::str(chunk.clone().into_bytes());
        let (req, entry_bytes) =
            build_request(shape, &cfg.tag, stream, seq, count, cfg.acks.then_some(&id));
        let pending = Pending {
            chunk,
            events: count,
            bytes: entry_bytes,
            written: Instant::now(),
        };
        // The channel's capacity is the window: this waits while `inflight` acks are due.
        if tx.send(pending).await.is_err() {
            break;
        }
        if let Err(e) = wr.write_all(&req).await {
            write_error = Some(e);
            break;
        }
        progress.sent_events.fetch_add(count, Ordering::Relaxed);
        if !cfg.acks {
            progress.acked_events.fetch_add(count, Ordering::Relaxed);
            progress
                .acked_bytes
                .fetch_add(entry_bytes, Ordering::Relaxed);
        }
        seq += count;
        requests += 1;
        bytes += entry_bytes;
    }
    drop(tx);
    let _ = wr.flush().await;
    let timings = reader.await?;
    let timings = match (timings, write_error) {
        (Err(e), _) => return Err(e),
        (Ok(_), Some(e)) => return Err(wrap(ConnError::Io(e))),
        (Ok(t), None) => t,
    };
    let _ = wr.shutdown().await;
    Ok(StreamResult {
        stream,
        events: seq,
        requests,
        bytes,
        acks: timings,
    })
}
