//! The forward input's listening sockets: the TCP accept loop and the UDP heartbeat responder.

use super::{ForwardInputConfig, ForwardInputMetrics, Shared, conn};
use crate::router::{RouteId, Router};
use crate::task::{TaskHandle, Tasks};
use anyhow::Context;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};

/// Binds TCP and UDP on `bind:port` and spawns the accept and heartbeat tasks. Returns once
/// both sockets are bound, so an address in use fails start-up with a clear error.
pub async fn start(
    id: String,
    config: ForwardInputConfig,
    router: Arc<Router>,
    route: RouteId,
    tasks: &Tasks,
) -> anyhow::Result<()> {
    let addr = format!("{}:{}", config.bind, config.port);
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("forward input {id}: cannot listen on tcp {addr}"))?;
    let local = listener.local_addr()?;
    // The UDP heartbeat socket takes the port the TCP listener got (matters for port 0).
    let udp = UdpSocket::bind(local)
        .await
        .with_context(|| format!("forward input {id}: cannot bind udp {local} for heartbeats"))?;
    tracing::info!(
        "listening port port={} bind=\"{}\" (forward input {id})",
        local.port(),
        config.bind
    );
    let shared = Arc::new(Shared {
        id: id.clone(),
        config,
        router,
        route,
        metrics: Arc::new(ForwardInputMetrics::default()),
        local,
    });
    let for_accept = Arc::clone(&shared);
    let spawner = tasks.clone();
    tasks.spawn(format!("forward input {id} accept {local}"), move |h| {
        accept_loop(listener, for_accept, spawner, h)
    });
    let for_udp = Arc::clone(&shared);
    tasks.spawn(
        format!("forward input {id} heartbeat udp {local}"),
        move |h| heartbeat_loop(udp, for_udp, h),
    );
    Ok(())
}

/// Errors from `accept` that mean "this process has no descriptors left" rather than a
/// problem with one peer.
fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24): this process; ENFILE (23): the whole system; ENOBUFS (105) and ENOMEM (12):
    // the kernel could not allocate the socket.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tasks: Tasks, h: TaskHandle) {
    let mut fd_episode = false;
    loop {
        h.set("accepting");
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = h.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                fd_episode = false;
                shared
                    .metrics
                    .connections_accepted
                    .fetch_add(1, Ordering::Relaxed);
                let shared = Arc::clone(&shared);
                tasks.spawn(
                    format!("forward input {} conn {peer}", shared.id),
                    move |ch| conn::serve(stream, peer, shared, ch),
                );
            }
            Err(e) => {
                shared.metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                if is_fd_exhaustion(&e) {
                    if !fd_episode {
                        tracing::error!(
                            "forward input {}: out of file descriptors accepting on {} ({e}); raise the limit (ulimit -n / LimitNOFILE); pending connections wait in the backlog",
                            shared.id,
                            shared.local
                        );
                        fd_episode = true;
                    }
                } else {
                    tracing::warn!(
                        "forward input {}: accept on {} failed: {e}",
                        shared.id,
                        shared.local
                    );
                }
                // Never spin: the error may persist until a descriptor frees up.
                h.set("backing off after accept error");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = h.cancelled() => return,
                }
            }
        }
    }
}

/// Answers every datagram with the single byte `0x00`, as in_forward does.
async fn heartbeat_loop(udp: UdpSocket, shared: Arc<Shared>, h: TaskHandle) {
    let mut buf = [0u8; 128];
    loop {
        h.set("waiting for heartbeats");
        let received = tokio::select! {
            r = udp.recv_from(&mut buf) => r,
            () = h.cancelled() => return,
        };
        match received {
            Ok((_, peer)) => {
                shared.metrics.heartbeats.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = udp.send_to(&[0u8], peer).await {
                    tracing::debug!(
                        "forward input {}: heartbeat reply to {peer} failed: {e}",
                        shared.id
                    );
                }
            }
            Err(e) => {
                // ICMP errors from earlier replies surface here on Linux; they concern one
                // peer, so keep serving.
                tracing::debug!("forward input {}: udp receive: {e}", shared.id);
            }
        }
    }
}
