//! The forward input's [`crate::input::net::Service`]: one connection after TLS (the slot, the
//! count of active connections and TLS are the listening layer's), [`Connection::run`], then one
//! log line saying how it ended, at a level that matches who has to act.
//!
//! Fluentd opens a connection for every flush and another every second for its heartbeat (a
//! full TLS and shared-key handshake, then a close), so ordinary endings (closed without data,
//! closed after the PONG, closed between requests) are debug lines; what loses or refuses data
//! is a warning, rate-limited per kind.

use super::conn::{ConnError, Connection, End};
use super::{Peer, Shared};
use crate::input::net::stream::PeerSocket;
use crate::task::TaskHandle;
use ferry_proto::frame::FrameError;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

impl crate::input::net::Service for Shared {
    fn accepted(&self, peer: &Peer) {
        if let (Some(ip), Some(resolver)) = (peer.ip(), &self.resolver) {
            resolver.prefetch(ip);
        }
    }

    async fn serve<S>(self: Arc<Self>, stream: S, peer: Peer, h: TaskHandle, deadline: Instant)
    where
        S: AsyncRead + AsyncWrite + PeerSocket + Unpin + Send + 'static,
    {
        run(stream, peer, self, &h, deadline).await;
    }
}

async fn run<S: AsyncRead + AsyncWrite + PeerSocket + Unpin + Send>(
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
        Ok(End::Closed { leftover: 0 }) if conn.io.received == 0 => {
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
        Err(ConnError::SenderGone) => {
            tracing::debug!(
                "forward input {id}: {peer} reset the connection; its last request was not committed (it sends it again)"
            );
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
