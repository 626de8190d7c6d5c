//! Accept loops and the first moments of every connection, for every network input.
//!
//! - `max_connections` slots are shared by every listener of the input. When all are taken the
//!   accept loops stop accepting until a connection closes: new clients wait in the kernel's
//!   backlog (they are not refused), counted and logged (rate-limited).
//! - Running out of file descriptors (`EMFILE`, `ENFILE`, ...) is logged once per episode as
//!   such; the loop backs off 100 ms between attempts and never spins.
//! - Each accepted connection is its own task, named after the input and the peer. TCP
//!   connections get `TCP_NODELAY` (replies are small and must leave at once) and, with
//!   `send_keepalive_packet`, TCP keepalive. With TLS the handshake runs first, bounded by
//!   `handshake_timeout`; a failed handshake is counted and logged with the peer and the
//!   reason, and a client that closes before sending anything (a health check) only at debug.
//! - Then the plugin's [`Service::serve`] has the connection; the slot is held and the
//!   connection counted as active until it returns.

use super::{Net, Peer, Service};
use crate::task::{TaskHandle, Tasks};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, Arc<Path>),
}

enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream, Arc<Path>),
}

impl Listener {
    async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Self::Tcp(l) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
            Self::Unix(l, path) => l
                .accept()
                .await
                .map(|(s, _)| Accepted::Unix(s, Arc::clone(path))),
        }
    }
}

/// Errors from `accept` that mean "this process has no descriptors left" rather than a
/// problem with one peer.
fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24): this process; ENFILE (23): the whole system; ENOBUFS (105) and ENOMEM (12):
    // the kernel could not allocate the socket.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Errors from `accept` that concern one connection that went away before it was accepted.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Accepts connections on `listener` (called `name` in logs) until cancelled, each served by
/// `service` in a task of its own, at most `net.slots_total` at once across the input.
pub async fn accept_loop<S: Service>(
    listener: Listener,
    name: String,
    net: Arc<Net>,
    service: Arc<S>,
    tasks: Tasks,
    h: TaskHandle,
) {
    let m = &net.metrics;
    let (slots, slots_total) = (Arc::clone(&net.slots), net.slots_total);
    let mut fd_episode = false;
    loop {
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                m.connection_limit_waits.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = net.limit_log.allow() {
                    tracing::warn!(
                        "{}: all {slots_total} connection slots are taken (max_connections); new connections on {name} wait in the backlog until one closes{s}",
                        net.name
                    );
                }
                h.set("waiting for a connection slot");
                let acquired = tokio::select! {
                    p = Arc::clone(&slots).acquire_owned() => p,
                    () = h.cancelled() => return,
                };
                let Ok(p) = acquired else { return };
                tracing::debug!(
                    "{}: a connection slot is free; accepting on {name} again",
                    net.name
                );
                p
            }
        };
        let accepted = loop {
            h.set("accepting");
            let r = tokio::select! {
                r = listener.accept() => r,
                () = h.cancelled() => return,
            };
            match r {
                Ok(a) => break a,
                Err(e) if is_transient(&e) => {
                    // One client gave up before it was accepted: nothing to wait for.
                    tracing::debug!("{}: accept on {name}: {e}", net.name);
                }
                Err(e) => {
                    m.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if is_fd_exhaustion(&e) {
                        if !fd_episode {
                            m.fd_exhaustion_episodes.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(
                                "{}: out of file descriptors accepting on {name} ({e}); raise the limit (ulimit -n / LimitNOFILE); pending connections wait in the backlog",
                                net.name
                            );
                            fd_episode = true;
                        }
                    } else {
                        tracing::warn!("{}: accept on {name} failed: {e}", net.name);
                    }
                    // Never spin: the error may persist until a descriptor frees up.
                    h.set("backing off after accept error");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        () = h.cancelled() => return,
                    }
                }
            }
        };
        if fd_episode {
            tracing::info!(
                "{}: accepting on {name} again after running out of file descriptors",
                net.name
            );
            fd_episode = false;
        }
        m.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let (net, service) = (Arc::clone(&net), Arc::clone(&service));
        match accepted {
            Accepted::Tcp(stream, addr) => {
                let _ = stream.set_nodelay(true);
                if net.tcp_keepalive {
                    let _ = socket2::SockRef::from(&stream).set_keepalive(true);
                }
                let peer = Peer::Tcp(addr);
                tasks.spawn(format!("{} conn {peer}", net.name), move |ch| {
                    serve_tcp(stream, peer, net, service, permit, ch)
                });
            }
            Accepted::Unix(stream, path) => {
                let peer = Peer::Unix(path);
                tasks.spawn(format!("{} conn {peer}", net.name), move |ch| async move {
                    let _slot = Slot::new(&net, permit);
                    let deadline = Instant::now() + net.handshake_timeout;
                    service.accepted(&peer);
                    service.serve(stream, peer, ch, deadline).await;
                });
            }
        }
    }
}

/// Counts the connection as active and holds its slot until dropped.
struct Slot {
    net: Arc<Net>,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    fn new(net: &Arc<Net>, permit: OwnedSemaphorePermit) -> Self {
        net.metrics
            .connections_active
            .fetch_add(1, Ordering::Relaxed);
        Self {
            net: Arc::clone(net),
            _permit: permit,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.net
            .metrics
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_tcp<S: Service>(
    stream: TcpStream,
    peer: Peer,
    net: Arc<Net>,
    service: Arc<S>,
    permit: OwnedSemaphorePermit,
    h: TaskHandle,
) {
    let _slot = Slot::new(&net, permit);
    let deadline = Instant::now() + net.handshake_timeout;
    service.accepted(&peer);
    let Some(acceptor) = net.tls.clone() else {
        return service.serve(stream, peer, h, deadline).await;
    };
    // The TLS path lives in its own allocation, so a plain connection's task does not carry
    // the size of a TLS handshake and a TLS stream (idle connections cost what they hold).
    Box::pin(serve_tls(stream, acceptor, peer, net, service, h, deadline)).await;
}

async fn serve_tls<S: Service>(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    peer: Peer,
    net: Arc<Net>,
    service: Arc<S>,
    h: TaskHandle,
    deadline: Instant,
) {
    h.set("tls handshake");
    let accepted = tokio::select! {
        r = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => r,
        () = h.cancelled() => return,
    };
    match accepted {
        Ok(Ok(tls)) => service.serve(tls, peer, h, deadline).await,
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            tracing::debug!(
                "{}: {peer} closed before the TLS handshake finished",
                net.name
            );
        }
        Ok(Err(e)) => {
            net.metrics.tls_failures.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = net.handshake_log.allow() {
                tracing::warn!(
                    "{}: TLS handshake with {peer} failed: {e}{}; connection closed{s}",
                    net.name,
                    crate::tls::handshake_hint(&e)
                );
            }
        }
        Err(_) => {
            net.metrics.tls_timeouts.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = net.handshake_log.allow() {
                tracing::warn!(
                    "{}: TLS handshake with {peer} did not finish within handshake_timeout ({:?}); connection closed{s}",
                    net.name,
                    net.handshake_timeout
                );
            }
        }
    }
}
