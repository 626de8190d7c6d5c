//! `@type scribe` (fluent-plugin-scribe's out_scribe): each chunk's events sent to scribed (or to
//! another ferry's scribe input) as Scribe `Log` calls on Thrift, framed, for ferry to sit in
//! front of an existing scribed central.
//!
//! - The category is the chunk's tag (`tag` must be a chunk key, as for the forward output),
//!   without `remove_prefix`; the message is the record's `field_ref` (a string as it is, a map
//!   or an array as JSON), or the whole record as JSON with `format_to_json`; `add_newline`
//!   appends a newline. A record without `field_ref` is skipped, logged and counted
//!   (`ferry_events_dropped_total{reason="no_field"}`).
//! - A chunk is sent in slices of at most [`SLICE_MESSAGES`] messages or [`SLICE_BYTES`] bytes,
//!   one `Log` call each, read from the chunk segment by segment. Each slice answered `OK` is
//!   noted on the chunk ([`crate::output::progress`]): a retry, or a restart after a crash,
//!   sends only the slices not answered yet.
//! - `TRY_LATER`, a refused or broken connection and a call not answered within `timeout` try
//!   the next server (the `<server>`s in order, then the standbys), then fail the attempt: the
//!   buffer retries with its backoff. An exception from the server (it does not speak Scribe's
//!   `Log`) is not retryable: the chunk goes to the `<secondary>` or to quarantine.
//! - Connections are kept open between calls, as Scribe clients keep them.

pub mod config;
pub mod metrics;

use super::SinkError;
use super::progress::{self, Code, Ranges};
use super::segment::SegmentReader;
use bytes::{Bytes, BytesMut};
pub use config::ScribeOutputConfig;
use config::ScribeServer;
use ferry_buffer::Chunk;
use ferry_proto::msgpack::{Head, Reader, Value};
use ferry_proto::thrift::{self, Answer, Decoder, Transport};
use metrics::ScribeOutputMetrics;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// The most messages in one `Log` call.
pub const SLICE_MESSAGES: usize = 10_000;
/// The most message bytes in one `Log` call.
pub const SLICE_BYTES: usize = 4 * 1024 * 1024;
/// The largest answer read (a `Log` answer is a few bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// Why a chunk was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ScribeOutputError {
    #[error("scribe server {server} answered TRY_LATER")]
    TryLater { server: String },
    #[error("scribe server {server}: {error}")]
    Connection { server: String, error: String },
    #[error("scribe server {server} answered with an exception: {message}")]
    Exception { server: String, message: String },
}

impl ScribeOutputError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Exception { .. })
    }

    pub fn class(&self) -> &'static str {
        match self {
            Self::TryLater { .. } => "ScribeTryLater",
            Self::Connection { .. } => "ScribeConnectionError",
            Self::Exception { .. } => "ScribeException",
        }
    }
}

/// An open connection and what was read on it.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

#[derive(Debug)]
struct Server {
    config: ScribeServer,
    idle: Mutex<Vec<Conn>>,
}

/// Messages of one `Log` call, and the payload range of the entries they came from.
#[derive(Debug, Default)]
struct Slice {
    messages: Vec<Bytes>,
    bytes: usize,
    start: u64,
    end: u64,
}

#[derive(Debug)]
pub struct ScribeOut {
    pub id: String,
    config: ScribeOutputConfig,
    servers: Vec<Server>,
    metrics: Arc<ScribeOutputMetrics>,
}

impl ScribeOut {
    pub fn new(id: String, config: ScribeOutputConfig) -> Self {
        let servers = config
            .servers
            .iter()
            .map(|s| Server {
                config: s.clone(),
                idle: Mutex::new(Vec::new()),
            })
            .collect();
        Self {
            id,
            config,
            servers,
            metrics: Arc::default(),
        }
    }

    pub fn metrics(&self) -> &ScribeOutputMetrics {
        &self.metrics
    }

    pub fn servers(&self) -> String {
        self.config
            .servers
            .iter()
            .map(|s| {
                if s.standby {
                    format!("{s} (standby)")
                } else {
                    s.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub async fn write_chunk(&self, chunk: &Chunk) -> Result<(), SinkError> {
        let tag = chunk.key().tag.clone().unwrap_or_default();
        let category = self.config.category(&tag).as_bytes().to_vec();
        let done = Ranges::of(&chunk.notes(), Code::ScribeSliceOk, |_| true);
        let mut segments = SegmentReader::new(chunk)?;
        let mut offset = 0u64;
        let mut slice = Slice::default();
        let mut skipped = 0u64;
        while let Some(stream) = segments.next().await? {
            let mut r = Reader::new(&stream);
            while !r.is_empty() {
                let entry = r
                    .raw_value()
                    .map_err(|e| SinkError::BadChunk(e.to_string()))?;
                let len = entry.len() as u64;
                match self.message(entry) {
                    Some(m) => {
                        slice.bytes += m.len();
                        slice.messages.push(m);
                    }
                    None => skipped += 1,
                }
                offset += len;
                slice.end = offset;
                if slice.messages.len() >= SLICE_MESSAGES || slice.bytes >= SLICE_BYTES {
                    self.send(chunk, &category, &slice, &done).await?;
                    slice = Slice {
                        start: offset,
                        end: offset,
                        ..Slice::default()
                    };
                }
            }
        }
        if !slice.messages.is_empty() {
            self.send(chunk, &category, &slice, &done).await?;
        }
        if skipped > 0 {
            self.metrics.skipped.fetch_add(skipped, Ordering::Relaxed);
            tracing::warn!(
                "output {}: {skipped} events of chunk {} have no '{}' field and were not sent",
                self.id,
                chunk.id().to_hex(),
                self.config.field_ref
            );
        }
        Ok(())
    }

    /// The message of one `[time, record]` entry, `None` when the record has no `field_ref`.
    fn message(&self, entry: &[u8]) -> Option<Bytes> {
        let mut r = Reader::new(entry);
        match r.head().ok()? {
            Head::Array(2) => {}
            _ => return None,
        }
        r.raw_value().ok()?;
        let record = r.raw_value().ok()?;
        let mut text = if self.config.format_to_json {
            Value::decode(record).ok()?.0.to_json_string().into_bytes()
        } else {
            let (_, value) =
                ferry_proto::records::pairs(record)
                    .ok()?
                    .into_iter()
                    .find(|(k, _)| {
                        Reader::new(k)
                            .str_or_bin()
                            .is_ok_and(|(k, _)| k == self.config.field_ref.as_bytes())
                    })?;
            match Value::decode(value).ok()?.0 {
                Value::Str(s) | Value::Bin(s) => s.to_vec(),
                other => other.to_json_string().into_bytes(),
            }
        };
        if self.config.add_newline {
            text.push(b'\n');
        }
        Some(Bytes::from(text))
    }

    /// One slice as one `Log` call, unless an earlier attempt had it answered `OK`.
    async fn send(
        &self,
        chunk: &Chunk,
        category: &[u8],
        slice: &Slice,
        done: &Ranges,
    ) -> Result<(), SinkError> {
        let len = slice.end - slice.start;
        if slice.messages.is_empty() || done.covers(slice.start, len) {
            return Ok(());
        }
        let mut call = BytesMut::new();
        thrift::log_call(
            &mut call,
            0,
            slice.messages.iter().map(|m| (category, &m[..])),
            Transport::Framed,
        );
        let m = &self.metrics;
        let mut last = None;
        for server in &self.servers {
            match self.call(server, &call).await {
                Ok(Answer::I32(0)) => {
                    m.calls_ok.fetch_add(1, Ordering::Relaxed);
                    m.messages
                        .fetch_add(slice.messages.len() as u64, Ordering::Relaxed);
                    m.bytes.fetch_add(slice.bytes as u64, Ordering::Relaxed);
                    progress::keep(chunk, Code::ScribeSliceOk.note(0, slice.start, len));
                    return Ok(());
                }
                Ok(Answer::I32(_)) => {
                    m.calls_try_later.fetch_add(1, Ordering::Relaxed);
                    last = Some(ScribeOutputError::TryLater {
                        server: server.config.to_string(),
                    });
                }
                Ok(Answer::Exception { message, .. }) => {
                    m.calls_failed.fetch_add(1, Ordering::Relaxed);
                    return Err(SinkError::Scribe(ScribeOutputError::Exception {
                        server: server.config.to_string(),
                        message,
                    }));
                }
                Ok(Answer::Other) => {
                    m.calls_failed.fetch_add(1, Ordering::Relaxed);
                    return Err(SinkError::Scribe(ScribeOutputError::Exception {
                        server: server.config.to_string(),
                        message: "the answer to Log carries no result code".into(),
                    }));
                }
                Err(error) => {
                    m.calls_failed.fetch_add(1, Ordering::Relaxed);
                    last = Some(ScribeOutputError::Connection {
                        server: server.config.to_string(),
                        error,
                    });
                }
            }
        }
        Err(SinkError::Scribe(last.unwrap_or(
            ScribeOutputError::Connection {
                server: String::new(),
                error: "no server is configured".into(),
            },
        )))
    }

    /// One call on a kept connection (or a new one), under `timeout`.
    async fn call(&self, server: &Server, call: &[u8]) -> Result<Answer, String> {
        let timeout = self.config.timeout;
        let kept = server.idle.lock().await.pop();
        let mut conn = match kept {
            Some(c) => c,
            None => {
                let addr = (server.config.host.as_str(), server.config.port);
                let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                    .await
                    .map_err(|_| format!("no connection within {timeout:?}"))?
                    .map_err(|e| format!("cannot connect: {e}"))?;
                let _ = stream.set_nodelay(true);
                self.metrics.connections.fetch_add(1, Ordering::Relaxed);
                Conn {
                    stream,
                    buf: BytesMut::new(),
                    decoder: Decoder::new(Transport::Framed, MAX_ANSWER),
                }
            }
        };
        let exchange = async {
            conn.stream
                .write_all(call)
                .await
                .map_err(|e| format!("sending a Log call failed: {e}"))?;
            loop {
                if let Some(reply) = conn
                    .decoder
                    .decode(&mut conn.buf)
                    .map_err(|e| format!("its answer is not Thrift: {e}"))?
                {
                    return thrift::answer(&reply)
                        .map_err(|e| format!("its answer does not read: {e}"));
                }
                let n = conn
                    .stream
                    .read_buf(&mut conn.buf)
                    .await
                    .map_err(|e| format!("reading the answer failed: {e}"))?;
                if n == 0 {
                    return Err("the server closed the connection before answering".to_string());
                }
            }
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {timeout:?}"))??;
        server.idle.lock().await.push(conn);
        Ok(answer)
    }
}
