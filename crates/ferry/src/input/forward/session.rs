//! The life of one accepted connection: counted while active and holding one of the
//! `max_connections` slots, TLS first when configured, then [`Connection::run`], then one log
//! line saying how it ended, at a level that matches who has to act.
//!
//! Fluentd opens a connection for every flush and another every second for its heartbeat (a
//! full TLS and shared-key handshake, then a close), so ordinary endings (closed without data,
//! closed after the PONG, closed between requests) are debug lines; what loses or refuses data
//! is a warning, rate-limited per kind.

use super::conn::{ConnError, Connection, End};
use super::{HandshakeFailure, Peer, Shared};
use crate::task::TaskHandle;
use ferry_proto::frame::FrameError;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// Counts the connection as active and holds its slot until dropped.
struct Slot {
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    fn new(shared: &Arc<Shared>, permit: OwnedSemaphorePermit) -> Self {
        shared
            .metrics
            .connections_active
            .fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(shared),
            _permit: permit,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared
            .metrics
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) async fn serve_tcp(
    stream: TcpStream,
    peer: Peer,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
    h: TaskHandle,
) {
    let _slot = Slot::new(&shared, permit);
    let deadline = Instant::now() + shared.config.handshake_timeout;
    if let (Some(ip), Some(resolver)) = (peer.ip(), &shared.resolver) {
        resolver.prefetch(ip);
    }
    let Some(acceptor) = shared.tls.clone() else {
        return run(stream, peer, shared, &h, deadline).await;
    };
    // The TLS path lives in its own allocation, so a plain connection's task does not carry
    // the size of a TLS handshake and a TLS stream (idle connections cost what they hold).
    Box::pin(serve_tls(stream, acceptor, peer, shared, &h, deadline)).await;
}

async fn serve_tls(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    peer: Peer,
    shared: Arc<Shared>,
    h: &TaskHandle,
    deadline: Instant,
) {
    h.set("tls handshake");
    let accepted = tokio::select! {
        r = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => r,
        () = h.cancelled() => return,
    };
    match accepted {
        Ok(Ok(tls)) => run(tls, peer, shared, h, deadline).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(
                "forward input {}: {peer} closed before the TLS handshake finished",
                shared.id
            );
        }
        Ok(Err(e)) => {
            shared
                .metrics
                .count_handshake_failure(HandshakeFailure::Tls);
            if let Some(s) = shared.logs.handshake.allow() {
                tracing::warn!(
                    "forward input {}: TLS handshake with {peer} failed: {e}{}; connection closed{s}",
                    shared.id,
                    crate::tls::handshake_hint(&e)
                );
            }
        }
        Err(_) => {
            shared
                .metrics
                .count_handshake_failure(HandshakeFailure::Timeout);
            if let Some(s) = shared.logs.handshake.allow() {
                tracing::warn!(
                    "forward input {}: TLS handshake with {peer} did not finish within handshake_timeout ({:?}); connection closed{s}",
                    shared.id,
                    shared.config.handshake_timeout
                );
            }
        }
    }
}

pub(super) async fn serve_unix(
    stream: UnixStream,
    peer: Peer,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
    h: TaskHandle,
) {
    let _slot = Slot::new(&shared, permit);
    let deadline = Instant::now() + shared.config.handshake_timeout;
    run(stream, peer, shared, &h, deadline).await;
}

async fn run<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
    peer: Peer,
    shared: Arc<Shared>,
    h: &TaskHandle,
    deadline: Instant,
) {
    let mut conn = Connection::new(stream, peer.clone(), Arc::clone(&shared), h);
    let result = conn.run(deadline).await;
    let id = &shared.id;
    let m = &shared.metrics;
    match result {
        Ok(End::Closed { leftover: 0 }) if conn.received == 0 => {
            tracing::debug!("forward input {id}: {peer} closed without sending anything");
        }
        Ok(End::Closed { leftover: 0 }) if conn.requests == 0 => {
            tracing::debug!("forward input {id}: {peer} closed after the handshake");
        }
        Ok(End::Closed { leftover: 0 }) => {
            tracing::trace!("forward input {id}: {peer} closed");
        }
        Ok(End::Closed { leftover }) => {
            tracing::debug!(
                "forward input {id}: {peer} closed with {leftover} bytes of an unfinished request"
            );
        }
        Ok(End::Idle) => {
            m.idle_closes.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                "forward input {id}: closed {peer}: nothing received for idle_timeout ({:?})",
                shared.config.idle_timeout.unwrap_or_default()
            );
        }
        Ok(End::Cancelled | End::KeepaliveDenied | End::Refused) => {}
        Err(e @ ConnError::Frame(FrameError::TooLarge { .. })) => {
            m.oversize_requests.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = shared.logs.oversize.allow() {
                tracing::warn!(
                    "forward input {id}: request from {peer} exceeds chunk_size_limit ({} bytes): {e}; connection closed{s}",
                    shared.config.max_request()
                );
            }
        }
        Err(e @ ConnError::Commit(_)) => {
            m.commit_failures.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = shared.logs.connection.allow() {
                tracing::warn!(
                    "forward input {id}: from {peer}: {e}; not acknowledged, connection closed so the client re-sends{s}"
                );
            }
        }
        Err(ConnError::Read(e) | ConnError::Write(e)) => {
            tracing::debug!("forward input {id}: connection with {peer} failed: {e}");
        }
        Err(e @ ConnError::Prepare(_)) => {
            tracing::error!("forward input {id}: from {peer}: {e}; connection closed");
        }
        Err(e @ (ConnError::Frame(_) | ConnError::Json(_) | ConnError::Batch(_))) => {
            m.broken_requests.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = shared.logs.broken.allow() {
                tracing::warn!("forward input {id}: from {peer}: {e}; connection closed{s}");
            }
        }
    }
}
