//! The UDP heartbeat responder: every datagram on the input's port gets the single byte
//! `0x00` back, as in_forward does (at most [`ferry_proto::heartbeat::MAX_DATAGRAM`] bytes of
//! a datagram are read). It runs on a thread of its own: heartbeats are how senders decide this
//! server is alive, so their answers must never queue behind request work on the runtime.

use super::Shared;
use crate::task::TaskHandle;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Answers every datagram with the single byte `0x00`, as in_forward does, from a dedicated
/// thread: heartbeats are how senders decide this server is alive, so they must not queue
/// behind request work on the runtime.
pub(super) async fn run(udp: std::net::UdpSocket, shared: Arc<Shared>, h: TaskHandle) {
    let token = h.cancel_token();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let id = shared.id.clone();
    let spawned = std::thread::Builder::new()
        .name("ferry-heartbeat".into())
        .spawn(move || {
            heartbeat_thread(&udp, &shared, &token);
            let _ = done_tx.send(());
        });
    if let Err(e) = spawned {
        tracing::error!("forward input {id}: cannot start the heartbeat thread: {e}");
        return;
    }
    h.set("answering heartbeats");
    let _ = done_rx.await;
}

fn heartbeat_thread(udp: &std::net::UdpSocket, shared: &Shared, token: &CancellationToken) {
    // Wake up regularly to notice shutdown.
    if let Err(e) = udp.set_read_timeout(Some(Duration::from_millis(200))) {
        tracing::error!("forward input {}: udp heartbeat socket: {e}", shared.id);
        return;
    }
    let mut buf = [0u8; ferry_proto::heartbeat::MAX_DATAGRAM];
    while !token.is_cancelled() {
        match udp.recv_from(&mut buf) {
            Ok((n, peer)) => {
                shared.metrics.heartbeats.fetch_add(1, Ordering::Relaxed);
                let reply = ferry_proto::heartbeat::reply(buf.get(..n).unwrap_or_default());
                if let Err(e) = udp.send_to(reply, peer) {
                    tracing::debug!(
                        "forward input {}: heartbeat reply to {peer} failed: {e}",
                        shared.id
                    );
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                // ICMP errors from earlier replies surface here on Linux; they concern one
                // peer, so keep serving.
                tracing::debug!("forward input {}: udp receive: {e}", shared.id);
            }
        }
    }
}
