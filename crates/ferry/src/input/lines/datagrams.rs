//! Datagram inputs (udp, syslog over udp): the socket, and its reader, one message per
//! datagram, batched as they queue.

use super::metrics::socket_inode;
use super::{Batches, From, Handler, LineInput, LineMetrics};
use crate::input::Start;
use crate::parse::Record;
use crate::task::TaskHandle;
use ferry_proto::time::EventTime;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Datagrams taken into one batch at most.
pub const MAX_DATAGRAMS: usize = 1024;

/// The input's UDP socket on `addr` (kept across reloads by `start.sockets`), with
/// `receive_buffer_size` (SO_RCVBUF) when given; its inode goes to `metrics` for the kernel's
/// drop counter.
pub fn bind(
    start: &Start<'_>,
    name: &str,
    addr: SocketAddr,
    receive_buffer_size: Option<usize>,
    metrics: &LineMetrics,
) -> anyhow::Result<tokio::net::UdpSocket> {
    let socket = start.sockets.udp(start.owner, name, addr, "messages")?;
    if let Some(size) = receive_buffer_size {
        socket2::SockRef::from(&socket)
            .set_recv_buffer_size(size)
            .map_err(|e| anyhow::anyhow!("{name}: receive_buffer_size {size}: {e}"))?;
    }
    if let Some(inode) = socket_inode(&socket) {
        let _ = metrics.udp_inode.set(inode);
    }
    socket.set_nonblocking(true)?;
    Ok(tokio::net::UdpSocket::from_std(socket)?)
}

/// Receives datagrams on `socket` until cancelled: one message each (after `chomp`, which
/// removes one trailing "\r\n", "\n" or "\r" when set), batched as they queue. The datagrams of
/// a batch are read into one buffer, and a sender's address is written once per batch run, not
/// per datagram.
pub async fn receive<H: Handler>(
    input: Arc<LineInput<H>>,
    socket: tokio::net::UdpSocket,
    chomp: bool,
    h: TaskHandle,
) {
    let limit = input.framing.limit();
    // One byte more than the limit: a datagram that fills it is over the limit.
    let mut buf = vec![0u8; limit + 1];
    let mut arena: Vec<u8> = Vec::new();
    let mut datagrams: Vec<(Range<usize>, SocketAddr)> = Vec::new();
    let mut rec = Record::new();
    let mut address: Option<(IpAddr, String)> = None;
    loop {
        h.set("receiving");
        let first = tokio::select! {
            () = h.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        match first {
            Ok((n, from)) => keep(&buf[..n], from, &mut arena, &mut datagrams),
            Err(e) => {
                tracing::debug!("{}: receive: {e}", input.name());
                continue;
            }
        }
        while datagrams.len() < MAX_DATAGRAMS {
            match socket.try_recv_from(&mut buf) {
                Ok((n, from)) => keep(&buf[..n], from, &mut arena, &mut datagrams),
                Err(_) => break,
            }
        }
        input
            .metrics
            .datagrams
            .fetch_add(datagrams.len() as u64, Ordering::Relaxed);
        let now = EventTime::now();
        let mut out = Batches::default();
        for (range, peer) in datagrams.drain(..) {
            let data = &arena[range];
            if data.len() > limit {
                input.oversize(1, &peer);
                continue;
            }
            let mut text: &[u8] = data;
            if chomp {
                text = text
                    .strip_suffix(b"\r\n")
                    .or_else(|| text.strip_suffix(b"\n"))
                    .or_else(|| text.strip_suffix(b"\r"))
                    .unwrap_or(text);
            }
            let host = match &input.resolver {
                Some(r) => Some(r.name(peer.ip()).await),
                None => None,
            };
            if address.as_ref().is_none_or(|(ip, _)| *ip != peer.ip()) {
                address = Some((peer.ip(), peer.ip().to_string()));
            }
            let from = From {
                peer: &peer,
                address: address.as_ref().map_or("", |(_, a)| a.as_str()),
                host: host.as_deref(),
            };
            input.message(text, from, now, &mut rec, &mut out);
        }
        arena.clear();
        if !out.is_empty() {
            let _ = input.commit(out, &"datagrams", &h).await;
        }
    }
}

/// Appends one datagram to the batch's buffer.
fn keep(
    data: &[u8],
    from: SocketAddr,
    arena: &mut Vec<u8>,
    datagrams: &mut Vec<(Range<usize>, SocketAddr)>,
) {
    let start = arena.len();
    arena.extend_from_slice(data);
    datagrams.push((start..arena.len(), from));
}
