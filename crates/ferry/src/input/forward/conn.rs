//! One forward connection: read, decode, validate, route, acknowledge.
//!
//! Requests on a connection are handled in order. The next request is read only after the
//! current one is committed, so a blocked output stops this connection's reads and TCP pushes
//! back on the client instead of memory growing. Memory per connection is the request being
//! received: the read buffer grows as bytes actually arrive (never from a length the peer
//! declared) and a request larger than the limit closes the connection as soon as its
//! declared size is known.

use super::Shared;
use crate::event::Batch;
use crate::router::Routed;
use crate::task::TaskHandle;
use bytes::{Bytes, BytesMut};
use ferry_proto::ack::encode_ack;
use ferry_proto::entries;
use ferry_proto::frame::FrameDecoder;
use ferry_proto::request::{EventBatch, Limits, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const READ_CHUNK: usize = 64 * 1024;
const MAX_READ_RESERVE: usize = 4 * 1024 * 1024;

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("{0}")]
    Frame(#[from] ferry_proto::frame::FrameError),
    #[error("{0}")]
    Request(ferry_proto::request::RequestError),
    #[error("events were not committed: {0}")]
    Commit(#[from] crate::output::EmitError),
    #[error("write failed: {0}")]
    Write(std::io::Error),
}

pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, h: TaskHandle) {
    shared
        .metrics
        .connections_active
        .fetch_add(1, Ordering::Relaxed);
    let result = Connection::new(stream, peer, Arc::clone(&shared), &h)
        .run()
        .await;
    shared
        .metrics
        .connections_active
        .fetch_sub(1, Ordering::Relaxed);
    if let Err(e) = result {
        match e {
            ConnError::Frame(ferry_proto::frame::FrameError::TooLarge { .. }) => {
                shared
                    .metrics
                    .oversize_requests
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "forward input {}: request from {peer} exceeds chunk_size_limit ({} bytes): {e}; connection closed",
                    shared.id,
                    shared.config.max_request()
                );
            }
            ConnError::Commit(_) => {
                shared
                    .metrics
                    .commit_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "forward input {}: from {peer}: {e}; not acknowledged, connection closed so the client re-sends",
                    shared.id
                );
            }
            _ => {
                shared
                    .metrics
                    .broken_requests
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "forward input {}: from {peer}: {e}; connection closed",
                    shared.id
                );
            }
        }
    }
}

struct Connection<'h> {
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    h: &'h TaskHandle,
    limits: Limits,
}

impl<'h> Connection<'h> {
    fn new(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, h: &'h TaskHandle) -> Self {
        let limits = Limits {
            max_decompressed_bytes: usize::try_from(shared.config.decompression_size_limit.0)
                .unwrap_or(usize::MAX),
        };
        Self {
            stream,
            peer,
            shared,
            h,
            limits,
        }
    }

    async fn run(&mut self) -> Result<(), ConnError> {
        let max = usize::try_from(self.shared.config.max_request()).unwrap_or(usize::MAX);
        let mut decoder = FrameDecoder::new(max);
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            while let Some(frame) = decoder.decode(&mut buf)? {
                self.handle(frame).await?;
            }
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                // Geometric growth keeps copying linear in the bytes received.
                buf.reserve(buf.len().clamp(READ_CHUNK, MAX_READ_RESERVE));
            }
            self.h.set("reading");
            let n = tokio::select! {
                r = self.stream.read_buf(&mut buf) => r,
                () = self.h.cancelled() => return Ok(()),
            };
            match n {
                Ok(0) => {
                    if !buf.is_empty() {
                        tracing::debug!(
                            "forward input {}: {} closed with {} bytes of an unfinished request",
                            self.shared.id,
                            self.peer,
                            buf.len()
                        );
                    }
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(
                        "forward input {}: read from {}: {e}",
                        self.shared.id,
                        self.peer
                    );
                    return Ok(());
                }
            }
        }
    }

    async fn handle(&mut self, frame: Bytes) -> Result<(), ConnError> {
        let m = &self.shared.metrics;
        m.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(warn) = self.shared.config.chunk_size_warn_limit
            && frame.len() as u64 > warn.0
        {
            tracing::warn!(
                "forward input {}: request of {} bytes from {} exceeds chunk_size_warn_limit {}",
                self.shared.id,
                frame.len(),
                self.peer,
                warn.0
            );
        }
        let request = match Request::parse(frame, &self.limits) {
            Ok(r) => r,
            Err(e) if e.can_continue() => {
                m.broken_requests.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "forward input {}: incoming chunk is broken: host=\"{}\" msg={e}",
                    self.shared.id,
                    self.peer
                );
                return Ok(());
            }
            Err(e) => return Err(ConnError::Request(e)),
        };
        let Request::Events(batch) = request else {
            return Ok(()); // nil: a no-op keepalive
        };
        self.commit(batch).await
    }

    async fn commit(&mut self, batch: EventBatch) -> Result<(), ConnError> {
        let m = &self.shared.metrics;
        let chunk = batch.options.chunk.clone();
        let (stream, summary) = match entries::sanitize(batch.entries) {
            Ok(ok) => ok,
            Err(e) => {
                // The framing is intact but the entries are not: nothing of this request is
                // accepted, so nothing is acknowledged.
                m.broken_requests.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "forward input {}: incoming chunk is broken: host=\"{}\" tag=\"{}\" msg={e}",
                    self.shared.id,
                    self.peer,
                    batch.tag
                );
                return Ok(());
            }
        };
        if summary.invalid > 0 {
            m.invalid_events
                .fetch_add(summary.invalid, Ordering::Relaxed);
            tracing::warn!(
                "forward input {}: skip invalid event: host=\"{}\" tag=\"{}\" count={}",
                self.shared.id,
                self.peer,
                batch.tag,
                summary.invalid
            );
        }
        if summary.count > 0 {
            let tag = self.route_tag(&batch.tag);
            let out = Batch::new(tag, stream, summary.count);
            m.emit_records.fetch_add(out.records, Ordering::Relaxed);
            m.emit_size
                .fetch_add(out.entries.len() as u64, Ordering::Relaxed);
            self.h
                .set_detail("waiting for commit", format!("{} records", out.records));
            let routed = self.shared.router.emit(self.shared.route, &out).await?;
            debug_assert!(matches!(routed, Routed::Committed | Routed::Unmatched));
        }
        if let Some(chunk) = chunk {
            self.h.set("writing ack");
            // One write call per ack: Fluent Bit reads an ack with a single read.
            self.stream
                .write_all(&encode_ack(&chunk))
                .await
                .map_err(ConnError::Write)?;
            m.acks.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn route_tag(&self, incoming: &str) -> String {
        let cfg = &self.shared.config;
        let base = cfg.tag.as_deref().unwrap_or(incoming);
        match &cfg.add_tag_prefix {
            Some(prefix) => format!("{prefix}.{base}"),
            None => base.to_string(),
        }
    }
}
