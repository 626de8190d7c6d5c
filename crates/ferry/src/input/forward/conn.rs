//! One forward connection: TLS, the `<security>` handshake, then requests in order: read,
//! decode, validate, route, and acknowledge after the commit.
//!
//! - Generic over the stream (`TcpStream`, a TLS stream over it, `UnixStream`): everything
//!   after the TLS handshake is the same code for every transport.
//! - Requests are handled in order and the next one is read only after the current one is
//!   committed, so a blocked output stops this connection's reads and TCP pushes back on the
//!   client instead of memory growing.
//! - An ack (`{"ack": chunk}`, the chunk in the msgpack type it came in) is written only after
//!   `Router::emit` returned Ok. A request that asks for an ack is not committed once the
//!   connection is reset (its sender died: it never gets the ack and sends the request again),
//!   so a killed forwarder's last requests, already received, are not stored twice. When the commit fails no ack is written and the connection is
//!   closed, so the client re-sends at once instead of waiting for its ack timeout.
//! - When an output's buffer is full, the request is held (nothing more is read from this
//!   connection, so TCP pushes back on the client) and offered again as soon as a flush frees
//!   room, for up to [`FULL_BUFFER_HOLD`]; only then is it refused. A refusal would make the
//!   client send the same events again after its retry wait, so ingest would fall far below
//!   the rate at which the buffer drains.
//! - Reading, the read buffer (small until traffic needs more), the idle timeout, writing
//!   replies whole and lingering after a refusal are [`Stream`]'s (the network layer's). A
//!   request over `chunk_size_limit` closes the connection as soon as its declared size is
//!   known.

use super::batch::{self, Inject, Prepared};
use super::json::{self, JsonError, JsonSplitter};
use super::{Peer, Shared};
use crate::event::Batch;
pub(super) use crate::input::net::stream::Read;
use crate::input::net::stream::{PeerSocket, Stream};
use crate::task::TaskHandle;
use bytes::Bytes;
use ferry_proto::ack::encode_ack;
use ferry_proto::frame::{FrameDecoder, FrameError, is_json_start};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Longest time a request is held while an output's buffer is full (see the module docs).
/// Shorter than the ack timeouts of the usual clients (Fluentd's 190 s, ferry's), so a held
/// request is acked or refused before its client gives up on it.
pub(super) const FULL_BUFFER_HOLD: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a connection ended with an error.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Json(#[from] JsonError),
    #[error("{0}")]
    Batch(batch::BatchError),
    #[error("events were not committed: {0}")]
    Commit(#[from] crate::output::EmitError),
    #[error("write failed: {0}")]
    Write(io::Error),
    #[error("read failed: {0}")]
    Read(io::Error),
    #[error("request preparation stopped: {0}")]
    Prepare(tokio::task::JoinError),
    #[error("the sender reset the connection before the commit")]
    SenderGone,
}

/// How a connection ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The peer closed; `leftover` bytes of an unfinished request were dropped.
    Closed {
        leftover: usize,
    },
    Cancelled,
    Idle,
    KeepaliveDenied,
    /// The handshake failed; already counted and logged.
    Refused,
}

enum Splitter {
    Undecided,
    Msgpack(FrameDecoder),
    Json(JsonSplitter),
}

pub(super) struct Connection<'h, S> {
    pub(super) io: Stream<S>,
    pub(super) peer: Peer,
    pub(super) shared: Arc<Shared>,
    pub(super) h: &'h TaskHandle,
    pub requests: u64,
    inject: Option<Inject>,
    tag_cache: Option<(String, Arc<str>)>,
}

impl<'h, S: AsyncRead + AsyncWrite + PeerSocket + Unpin + Send> Connection<'h, S> {
    pub fn new(stream: S, peer: Peer, shared: Arc<Shared>, h: &'h TaskHandle) -> Self {
        let idle_timeout = shared.config.idle_timeout;
        Self {
            io: Stream::new(stream, idle_timeout),
            peer,
            shared,
            h,
            requests: 0,
            inject: None,
            tag_cache: None,
        }
    }

    /// Handshake (when configured), then requests until the peer closes.
    pub async fn run(&mut self, handshake_deadline: Instant) -> Result<End, ConnError> {
        let shared = Arc::clone(&self.shared);
        if let Some(sec) = &shared.security
            && let Some(end) = self.handshake(sec, handshake_deadline).await?
        {
            return Ok(end);
        }
        let end = self.requests().await?;
        if end == End::KeepaliveDenied {
            self.io.linger().await;
        }
        Ok(end)
    }

    /// Reads more bytes (see [`Stream::fill`]); `deadline`: the handshake's.
    pub(super) async fn fill(&mut self, deadline: Option<Instant>) -> Result<Read, ConnError> {
        self.io
            .fill(deadline, self.h)
            .await
            .map_err(ConnError::Read)
    }

    /// Writes one reply whole and flushes it.
    pub(super) async fn send(&mut self, reply: &[u8]) -> Result<(), ConnError> {
        self.io.send(reply).await.map_err(ConnError::Write)
    }

    async fn requests(&mut self) -> Result<End, ConnError> {
        let max = usize::try_from(self.shared.config.max_request()).unwrap_or(usize::MAX);
        let mut splitter = Splitter::Undecided;
        loop {
            loop {
                let frame = match &mut splitter {
                    Splitter::Undecided => match self.io.buf.first() {
                        None => None,
                        Some(&b) if is_json_start(b) && self.shared.security.is_none() => {
                            self.shared
                                .metrics
                                .json_connections
                                .fetch_add(1, Ordering::Relaxed);
                            splitter = Splitter::Json(JsonSplitter::new(max));
                            continue;
                        }
                        Some(_) => {
                            splitter = Splitter::Msgpack(FrameDecoder::new(max));
                            continue;
                        }
                    },
                    Splitter::Msgpack(d) => d.decode(&mut self.io.buf)?,
                    Splitter::Json(d) => d.decode(&mut self.io.buf)?,
                };
                let Some(frame) = frame else { break };
                let json = matches!(splitter, Splitter::Json(_));
                self.handle(frame, json).await?;
                if self.shared.config.deny_keepalive {
                    self.shared
                        .metrics
                        .keepalive_denied_closes
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(End::KeepaliveDenied);
                }
            }
            self.h.set("reading");
            match self.fill(None).await? {
                Read::Data => {}
                Read::Eof => {
                    return Ok(End::Closed {
                        leftover: self.io.buf.len(),
                    });
                }
                Read::Cancelled => return Ok(End::Cancelled),
                Read::TimedOut => return Ok(End::Idle),
            }
        }
    }

    /// The keys and values added to records, computed once per connection (waits for the
    /// peer's name only when `source_hostname_key` is set; see `resolve`).
    async fn inject(&mut self) -> &Inject {
        if self.inject.is_none() {
            let cfg = &self.shared.config;
            let address = cfg
                .source_address_key
                .as_ref()
                .map(|k| (k.clone(), self.peer.address()));
            let hostname = match (&cfg.source_hostname_key, &self.shared.resolver) {
                (Some(k), Some(resolver)) => {
                    self.h.set("resolving peer name");
                    let name = match self.peer.ip() {
                        Some(ip) => resolver.name(ip).await.to_string(),
                        None => "localhost".to_string(),
                    };
                    Some((k.clone(), name))
                }
                _ => None,
            };
            self.inject = Some(Inject { address, hostname });
        }
        self.inject.get_or_insert_with(Inject::default)
    }

    async fn handle(&mut self, frame: Bytes, json: bool) -> Result<(), ConnError> {
        let shared = Arc::clone(&self.shared);
        let m = &shared.metrics;
        m.requests.fetch_add(1, Ordering::Relaxed);
        self.requests += 1;
        if let Some(warn) = shared.config.chunk_size_warn_limit
            && frame.len() as u64 > warn.0
        {
            m.size_warnings.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = shared.logs.oversize.allow() {
                tracing::warn!(
                    "forward input {}: request of {} bytes from {} exceeds chunk_size_warn_limit {}{s}",
                    shared.id,
                    frame.len(),
                    self.peer,
                    warn.0
                );
            }
        }
        let frame = if json {
            match json::to_msgpack(&frame) {
                Ok(f) => f,
                Err(e) => {
                    self.broken(&e.to_string());
                    return Ok(());
                }
            }
        } else {
            frame
        };
        let prepared = if batch::is_heavy(&frame) {
            self.h.set("preparing a large request");
            let inject = self.inject().await.clone();
            let limits = shared.limits;
            tokio::task::spawn_blocking(move || batch::prepare(frame, &limits, &inject))
                .await
                .map_err(ConnError::Prepare)?
        } else if shared.config.injects_source() {
            let limits = shared.limits;
            batch::prepare(frame, &limits, self.inject().await)
        } else {
            batch::prepare(frame, &shared.limits, &Inject::default())
        };
        let events = match prepared {
            Ok(Prepared::Events(e)) => e,
            Ok(Prepared::Nil) => return Ok(()), // a no-op keepalive
            Err(e) if e.can_continue() => {
                // Nothing of this request is accepted, so nothing is acknowledged.
                self.broken(&e.to_string());
                return Ok(());
            }
            Err(e) => return Err(ConnError::Batch(e)),
        };
        if events.summary.invalid > 0 {
            m.invalid_events
                .fetch_add(events.summary.invalid, Ordering::Relaxed);
            if let Some(s) = shared.logs.invalid_events.allow() {
                tracing::warn!(
                    "forward input {}: skip invalid event: host=\"{}\" tag=\"{}\" count={}{s}",
                    shared.id,
                    self.peer,
                    events.tag,
                    events.summary.invalid
                );
            }
        }
        if events.replaced > 0 {
            m.time_zero_replaced
                .fetch_add(events.replaced, Ordering::Relaxed);
        }
        if events.chunk.is_some() && events.summary.count > 0 && self.io.reset_by_peer() {
            // The sender died (its socket reset): it never sees an ack and sends this request
            // again, so committing it would only duplicate its events.
            m.sender_gone.fetch_add(1, Ordering::Relaxed);
            return Err(ConnError::SenderGone);
        }
        if events.summary.count > 0 {
            let tag = self.route_tag(events.tag);
            let mut out = Batch::new(tag, events.entries, events.summary.count);
            // Times replaced by the clock lie outside the summary's range.
            if events.replaced == 0
                && let (Some(min), Some(max)) = (events.summary.min_time, events.summary.max_time)
            {
                out = out.with_time_range(min.sec, max.sec);
            }
            m.emit_records.fetch_add(out.records, Ordering::Relaxed);
            m.emit_size
                .fetch_add(out.entries.len() as u64, Ordering::Relaxed);
            self.h.set("waiting for commit");
            let (held, committed) = shared
                .routing
                .emit_holding(
                    shared.label.as_deref(),
                    &out,
                    FULL_BUFFER_HOLD,
                    self.h.cancel_token(),
                )
                .await;
            m.held_ms
                .fetch_add(held.as_millis() as u64, Ordering::Relaxed);
            committed?;
        }
        if let Some(chunk) = events.chunk {
            self.h.set("writing ack");
            let ack = if json {
                json::encode_ack(&chunk)
            } else {
                encode_ack(&chunk)
            };
            self.send(&ack).await?;
            m.acks.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn broken(&self, why: &str) {
        self.shared
            .metrics
            .broken_requests
            .fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.shared.logs.broken.allow() {
            tracing::warn!(
                "forward input {}: incoming chunk is broken: host=\"{}\" msg={why}{s}",
                self.shared.id,
                self.peer
            );
        }
    }

    /// The routed tag (`tag`, `add_tag_prefix`), cached for the last incoming tag so a
    /// connection sending one tag allocates it once.
    fn route_tag(&mut self, incoming: String) -> Arc<str> {
        if let Some((last, routed)) = &self.tag_cache
            && *last == incoming
        {
            return Arc::clone(routed);
        }
        let cfg = &self.shared.config;
        let base = cfg.tag.as_deref().unwrap_or(&incoming);
        let routed: Arc<str> = match &cfg.add_tag_prefix {
            Some(prefix) => format!("{prefix}.{base}").into(),
            None => base.into(),
        };
        self.tag_cache = Some((incoming, Arc::clone(&routed)));
        routed
    }
}
