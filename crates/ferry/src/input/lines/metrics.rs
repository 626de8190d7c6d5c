//! The counters of the message-oriented inputs, exported under each input's type.

use crate::input::net::NetMetrics;
use crate::input::net::resolve::LookupCounters;
use crate::metrics::names::{INPUT_EMIT_RECORDS, INPUT_EMIT_SIZE, INPUT_NUM_RECORDS};
use crate::metrics::{Exposition, load};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

/// Counters of one message-oriented input.
#[derive(Debug, Default)]
pub struct LineMetrics {
    pub net: Arc<NetMetrics>,
    pub lookups: Arc<LookupCounters>,
    pub emit_records: AtomicU64,
    pub emit_size: AtomicU64,
    /// Messages over the length limit, dropped.
    pub oversize: AtomicU64,
    /// Messages the handler did not parse (dropped unless kept as unmatched).
    pub unparsed: AtomicU64,
    /// Of those, kept as unmatched lines.
    pub unmatched_kept: AtomicU64,
    /// Streams whose framing broke (a bad octet count): closed.
    pub broken_framing: AtomicU64,
    /// Connections from peers no `<client>` allows, closed.
    pub denied: AtomicU64,
    /// Messages the buffer did not take (an output refused them, or ferry stopped while the
    /// buffer was full): lost.
    pub uncommitted: AtomicU64,
    /// Milliseconds the input was not read because an output's buffer was full.
    pub held_ms: AtomicU64,
    /// Datagrams received (datagram inputs).
    pub datagrams: AtomicU64,
    /// The datagram socket's inode, to find its kernel drop counter.
    pub udp_inode: OnceLock<u64>,
}

impl LineMetrics {
    pub fn export(&self, id: &str, kind: &str, out: &mut Exposition) {
        use crate::metrics::names::{
            FERRY_INPUT_HELD_SECONDS, FERRY_NETWORK_INPUT_CONNECTIONS, FERRY_NETWORK_INPUT_REFUSED,
            FERRY_UDP_INPUT_DATAGRAMS, FERRY_UDP_INPUT_KERNEL_DROPS, dropped,
        };
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", kind)];
        out.counter(INPUT_EMIT_RECORDS, &labels, load(&self.emit_records));
        out.counter(INPUT_EMIT_SIZE, &labels, load(&self.emit_size));
        out.counter(INPUT_NUM_RECORDS, &labels, load(&self.emit_records));
        out.counter_seconds(FERRY_INPUT_HELD_SECONDS, &labels, load(&self.held_ms));
        out.dropped(
            id,
            kind,
            dropped::MESSAGE_LENGTH_LIMIT,
            load(&self.oversize),
        );
        out.dropped(
            id,
            kind,
            dropped::UNPARSED_LINE,
            load(&self.unparsed).saturating_sub(load(&self.unmatched_kept)),
        );
        out.dropped(id, kind, dropped::NOT_COMMITTED, load(&self.uncommitted));
        if let Some(inode) = self.udp_inode.get() {
            out.counter(FERRY_UDP_INPUT_DATAGRAMS, &labels, load(&self.datagrams));
            if let Some(drops) = kernel_drops(*inode) {
                out.counter(FERRY_UDP_INPUT_KERNEL_DROPS, &labels, drops);
            }
        } else {
            out.gauge(
                FERRY_NETWORK_INPUT_CONNECTIONS,
                &labels,
                load(&self.net.connections_active) as f64,
            );
            for (reason, n) in [
                ("denied", load(&self.denied)),
                ("broken_framing", load(&self.broken_framing)),
                ("tls_handshake", load(&self.net.tls_failures)),
                (
                    "max_connections_wait",
                    load(&self.net.connection_limit_waits),
                ),
                ("fd_exhausted", load(&self.net.fd_exhaustion_episodes)),
            ] {
                let l: [(&str, &str); 3] = [("plugin_id", id), ("type", kind), ("reason", reason)];
                out.counter(FERRY_NETWORK_INPUT_REFUSED, &l, n);
            }
        }
    }
}

/// The kernel's count of datagrams dropped for the socket with `inode` (the last column of
/// its line in `/proc/net/udp` or `/proc/net/udp6`).
fn kernel_drops(inode: u64) -> Option<u64> {
    let inode = inode.to_string();
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(9) == Some(&inode.as_str()))
                    .then(|| fields.last().and_then(|d| d.parse().ok()))
                    .flatten()
            })
        })
}

/// The inode of a socket, from `/proc/self/fd` (`socket:[12345]`).
pub fn socket_inode(socket: &std::net::UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}
