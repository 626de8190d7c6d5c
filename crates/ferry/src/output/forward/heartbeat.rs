//! The heartbeat timer: every `heartbeat_interval`, check every server's detector
//! ([`super::node::Node::tick`]) and probe it.
//!
//! The timer cannot die: each tick runs in its own task and each probe in another, so an error
//! or a panic in either is logged and counted (`heartbeat_errors`) and the next tick comes as
//! usual (Fluentd's timer stopped for good after one unexpected error, fluent/fluentd#1719, and
//! servers then never recovered). At most one transport probe per server runs at a time: a
//! probe still waiting on a slow server is itself the news (no heartbeat → phi rises).
//!
//! Probes per `heartbeat_type`:
//! - `transport`: without `keepalive`, connect (TLS and handshake included) and close, as
//!   Fluentd does. With `keepalive`, no connection is opened when one can be reused: a request
//!   acknowledged within the last interval counts as the heartbeat; else an idle cached
//!   connection is checked (not closed by the server, nothing unread) and a msgpack `nil` (a
//!   no-op request that Fluentd's in_forward and ferry ignore) is written to it. Only when no
//!   usable connection is cached is a new one opened, and it is kept for the next request.
//!   Such a heartbeat proves the peer's kernel and the connection alive, not that the peer
//!   process answers (a stopped process still completes TCP writes): use `udp`, or acks (a
//!   lost ack detaches the server), to catch a hung process.
//! - `udp`: a datagram `0x00` to the server's address; replies are matched to servers by
//!   source address in a receiver task.
//! - `none`: no timer; every server is always healthy.

use super::Shared;
use super::config::HeartbeatType;
use super::conn::Connection;
use super::error::ForwardError;
use super::metrics::bump;
use super::node::{DetachReason, Node};
use super::pool;
use crate::task::{TaskHandle, Tasks};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior};

/// Sockets for UDP heartbeats (one per address family in use).
#[derive(Debug, Default)]
pub struct UdpSockets {
    v4: Option<Arc<UdpSocket>>,
    v6: Option<Arc<UdpSocket>>,
}

fn bind_udp(addr: &str) -> Option<Arc<UdpSocket>> {
    let std = std::net::UdpSocket::bind(addr).ok()?;
    std.set_nonblocking(true).ok()?;
    UdpSocket::from_std(std).ok().map(Arc::new)
}

/// Spawns the timer (and the UDP receivers) unless `heartbeat_type` is `none`.
pub fn start(shared: &Arc<Shared>, tasks: &Tasks) {
    let cfg = &shared.config;
    if cfg.heartbeat_type == HeartbeatType::None {
        return;
    }
    let udp = (cfg.heartbeat_type == HeartbeatType::Udp).then(|| {
        let sockets = UdpSockets {
            v4: bind_udp("0.0.0.0:0"),
            v6: bind_udp("[::]:0"),
        };
        for socket in [&sockets.v4, &sockets.v6].into_iter().flatten() {
            let (s, sock) = (Arc::clone(shared), Arc::clone(socket));
            tasks.spawn(
                format!("output {} heartbeat udp receiver", shared.id),
                move |h| receive_udp(s, sock, h),
            );
        }
        if sockets.v4.is_none() && sockets.v6.is_none() {
            tracing::error!(
                "output {}: cannot bind a UDP socket for heartbeats; servers will be detached",
                shared.id
            );
        }
        Arc::new(sockets)
    });
    let s = Arc::clone(shared);
    tasks.spawn(format!("output {} heartbeat timer", shared.id), move |h| {
        run(s, udp, h)
    });
}

async fn run(shared: Arc<Shared>, udp: Option<Arc<UdpSockets>>, h: TaskHandle) {
    let mut ticker = tokio::time::interval(shared.config.heartbeat_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        h.set("waiting for the next heartbeat tick");
        tokio::select! {
            _ = ticker.tick() => {}
            () = h.cancelled() => return,
        }
        h.set("heartbeat tick");
        let (s, u) = (Arc::clone(&shared), udp.clone());
        if let Err(e) = tokio::spawn(async move { tick(&s, u.as_deref()) }).await {
            bump(&shared.metrics.heartbeat_errors, 1);
            tracing::error!(
                "output {}: unexpected error in the heartbeat timer ({e}); the timer keeps running",
                shared.id
            );
        }
    }
}

/// One tick: detector checks, idle-connection expiry, probes.
pub fn tick(shared: &Arc<Shared>, udp: Option<&UdpSockets>) {
    let cfg = &shared.config;
    let now = shared.clock.secs();
    let mut changed = false;
    let nodes = shared.nodes();
    for node in nodes.iter() {
        if node.tick(now, cfg) {
            bump(&shared.metrics.detach_count, 1);
            changed = true;
        }
    }
    if changed {
        shared.rebuild();
    }
    if let Some(max_idle) = cfg.keepalive_timeout {
        for node in nodes.iter() {
            node.purge_idle(max_idle);
        }
    }
    let fault = shared.fault();
    for node in nodes.iter() {
        if let Some(fault) = &fault
            && let Err(e) = fault(node.id)
        {
            bump(&shared.metrics.heartbeat_errors, 1);
            bump(&node.metrics.heartbeats_failed, 1);
            tracing::debug!("output {}: heartbeat to '{}': {e}", shared.id, node.name());
            continue;
        }
        match cfg.heartbeat_type {
            HeartbeatType::Transport => start_probe(shared, node),
            HeartbeatType::Udp => send_udp(shared, udp, node),
            HeartbeatType::None => {}
        }
    }
}

fn start_probe(shared: &Arc<Shared>, node: &Arc<Node>) {
    if node.probing.swap(true, Ordering::AcqRel) {
        return;
    }
    let (s, n) = (Arc::clone(shared), Arc::clone(node));
    let name = format!("heartbeat probe '{}'", node.name());
    shared.spawn(
        name,
        Box::pin(async move {
            // The probe itself runs behind a join: a panic in it is caught here, counted and
            // logged, and the next tick probes again.
            let (s2, n2) = (Arc::clone(&s), Arc::clone(&n));
            if let Err(e) = tokio::spawn(async move { probe(&s2, &n2).await }).await {
                bump(&s.metrics.heartbeat_errors, 1);
                tracing::error!(
                    "output {}: heartbeat probe of '{}' failed unexpectedly ({e})",
                    s.id,
                    n.name()
                );
            }
            n.probing.store(false, Ordering::Release);
        }),
    );
}

async fn probe(shared: &Shared, node: &Node) {
    let started = Instant::now();
    let result = if shared.config.keepalive {
        keepalive_probe(shared, node).await.map(|()| None)
    } else {
        pool::connect(shared, node).await.map(Some)
    };
    match result {
        Ok(opened) => {
            let rtt = started.elapsed().as_micros() as u64;
            node.metrics.heartbeat_rtt_us.store(rtt, Ordering::Relaxed);
            shared.heartbeat_from(node);
            shared.works_again(node);
            if let Some(c) = opened {
                c.close(shared.config.heartbeat_interval).await;
            }
        }
        Err(e) => failed(shared, node, &e),
    }
}

fn failed(shared: &Shared, node: &Node, e: &ForwardError) {
    bump(&node.metrics.heartbeats_failed, 1);
    if node.failures.failed(&e.to_string()) {
        tracing::warn!(
            "output {}: heartbeat to '{}' failed: {e} error_class={}",
            shared.id,
            node.name(),
            e.class()
        );
    } else {
        tracing::debug!(
            "output {}: heartbeat to '{}' failed: {e} (again)",
            shared.id,
            node.name()
        );
    }
    if e.detaches_node() {
        let message = e.to_string();
        shared.detach(
            node,
            &DetachReason::Error {
                class: e.class(),
                message: &message,
            },
        );
    }
}

async fn keepalive_probe(shared: &Shared, node: &Node) -> Result<(), ForwardError> {
    let cfg = &shared.config;
    if node.succeeded_within(cfg.heartbeat_interval) {
        return Ok(());
    }
    while let Some(mut c) = node.checkout(cfg.keepalive_timeout) {
        if c.is_usable() && write_nil(&mut c, cfg.send_timeout).await {
            pool::checkin(shared, node, c);
            return Ok(());
        }
    }
    let c = pool::connect(shared, node).await?;
    pool::checkin(shared, node, c);
    Ok(())
}

async fn write_nil(c: &mut Connection, limit: std::time::Duration) -> bool {
    super::conn::write_within(&mut c.stream, &[0xc0], limit)
        .await
        .is_ok()
        && super::conn::flush_within(&mut c.stream, limit)
            .await
            .is_ok()
}

fn node_addr(node: &Node) -> Option<SocketAddr> {
    match node.server.ip() {
        Some(ip) => Some(SocketAddr::new(ip, node.server.port)),
        None => node.dns.last_known()?.first().copied(),
    }
}

fn send_udp(shared: &Arc<Shared>, udp: Option<&UdpSockets>, node: &Arc<Node>) {
    let fresh = node.server.ip().is_some() || node.dns.cached(&shared.config).is_some();
    if !fresh {
        // Resolve in the background; the next tick sends.
        let (s, n) = (Arc::clone(shared), Arc::clone(node));
        shared.spawn(
            format!("dns lookup {}", node.server.host),
            Box::pin(async move {
                let spawn = |name: String, fut| s.spawn(name, fut);
                let _ = n
                    .dns
                    .addresses(&n.server, &s.resolver, &s.config, &spawn)
                    .await;
            }),
        );
    }
    let Some(addr) = node_addr(node) else {
        return; // not resolved yet: the next tick sends
    };
    let socket = udp.and_then(|u| {
        if addr.is_ipv4() {
            u.v4.as_ref()
        } else {
            u.v6.as_ref()
        }
    });
    let sent = socket.is_some_and(|s| {
        s.try_send_to(ferry_proto::heartbeat::HEARTBEAT, addr)
            .is_ok()
    });
    if sent {
        *node.udp_sent.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    } else {
        bump(&node.metrics.heartbeats_failed, 1);
    }
}

async fn receive_udp(shared: Arc<Shared>, socket: Arc<UdpSocket>, h: TaskHandle) {
    let mut buf = [0u8; ferry_proto::heartbeat::MAX_DATAGRAM];
    loop {
        h.set("waiting for heartbeat replies");
        let got = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            () = h.cancelled() => return,
        };
        let Ok((n, from)) = got else {
            continue; // ICMP errors from earlier sends surface here; they name no server
        };
        if !ferry_proto::heartbeat::is_heartbeat(&buf[..n]) {
            continue;
        }
        for node in shared.nodes().iter() {
            if node_addr(node) == Some(from) {
                let sent = *node.udp_sent.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(sent) = sent {
                    let rtt = sent.elapsed().as_micros() as u64;
                    node.metrics.heartbeat_rtt_us.store(rtt, Ordering::Relaxed);
                }
                shared.heartbeat_from(node);
            }
        }
    }
}
