//! What every network input shares, so that a plugin supplies only its framing and request
//! handling ([`Service`]):
//!
//! | module | job |
//! |---|---|
//! | [`acl`] | `<security>` `<client>`: the peers an input serves, by host or network |
//! | [`config`] | `<transport tls>` as Fluentd's server plugin helper reads it |
//! | [`tls`] | the rustls server configuration from it (certificates through [`crate::tls`]) |
//! | [`resolve`] | reverse DNS of peers for `source_hostname_key`, off the connection's path, cached |
//! | [`ferry_proto::delimited`] | messages cut at a delimiter, never holding more than the length limit (fuzzed there) |
//! | [`listen`] | binding TCP, UDP and Unix sockets, with errors that name the address; connection slots sized to the open file limit |
//! | [`stream`] | one connection's bytes: a read buffer that starts small, the idle timeout, whole replies, a graceful close |
//! | [`accept`] | accept loops: connection slots, descriptor exhaustion, one task per connection, the TLS handshake under `handshake_timeout`, counters and rate-limited logs |
//!
//! A connection's task is named after its input and peer (`forward input ID conn ADDR`), so the
//! state dump lists every session; cancelling the input's tasks closes them all (shutdown and
//! reload).

pub mod accept;
pub mod acl;
pub mod config;
pub mod listen;
pub mod resolve;
pub mod stream;
pub mod tls;

use crate::logging::LogLimiter;
use crate::task::TaskHandle;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

pub use accept::{Listener, accept_loop};

/// A network input's handling of one connection, after the TLS handshake.
pub trait Service: Send + Sync + 'static {
    /// A connection was accepted, before TLS (a reverse lookup can start now).
    fn accepted(&self, _peer: &Peer) {}

    /// Serves the connection until it ends. `deadline` is what is left of `handshake_timeout`
    /// for the plugin's own handshake, if it has one.
    fn serve<S>(
        self: Arc<Self>,
        stream: S,
        peer: Peer,
        h: TaskHandle,
        deadline: Instant,
    ) -> impl Future<Output = ()> + Send
    where
        S: AsyncRead + AsyncWrite + stream::PeerSocket + Unpin + Send + 'static;
}

/// Counters of the listening layer of one input (exported by the input with its own).
#[derive(Debug, Default)]
pub struct NetMetrics {
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    /// Times the accept loop stopped at `max_connections` until a connection closed.
    pub connection_limit_waits: AtomicU64,
    pub accept_errors: AtomicU64,
    /// Episodes of running out of file descriptors while accepting.
    pub fd_exhaustion_episodes: AtomicU64,
    /// TLS handshakes that failed (bad certificate, no common cipher, reset).
    pub tls_failures: AtomicU64,
    /// TLS handshakes that did not finish within `handshake_timeout`.
    pub tls_timeouts: AtomicU64,
}

/// What the accept loops and connection tasks of one input share.
pub struct Net {
    /// How log lines and tasks name the input: `forward input ID`.
    pub name: String,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// From accept to the end of the TLS handshake and the plugin's own.
    pub handshake_timeout: Duration,
    /// `send_keepalive_packet`: TCP keepalive on accepted connections.
    pub tcp_keepalive: bool,
    pub metrics: Arc<NetMetrics>,
    /// `max_connections` slots, shared by every listener of the input.
    pub slots: Arc<tokio::sync::Semaphore>,
    pub slots_total: usize,
    /// Rate limits for the per-connection warnings of this layer.
    pub limit_log: LogLimiter,
    pub handshake_log: LogLimiter,
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Net")
            .field("name", &self.name)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Net {
    pub fn new(
        name: String,
        tls: Option<tokio_rustls::TlsAcceptor>,
        handshake_timeout: Duration,
        tcp_keepalive: bool,
        metrics: Arc<NetMetrics>,
        max_connections: usize,
    ) -> Self {
        Self {
            name,
            tls,
            handshake_timeout,
            tcp_keepalive,
            metrics,
            slots: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            slots_total: max_connections,
            limit_log: LogLimiter::default(),
            handshake_log: LogLimiter::default(),
        }
    }
}

/// Where a connection comes from.
#[derive(Debug, Clone)]
pub enum Peer {
    Tcp(SocketAddr),
    Unix(Arc<Path>),
}

impl Peer {
    /// The peer's IP address (IPv4-mapped IPv6 shown as IPv4); `None` on a Unix socket.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Tcp(a) => Some(a.ip().to_canonical()),
            Self::Unix(_) => None,
        }
    }

    /// The value of `source_address_key`: the IP address, or the socket path.
    pub fn address(&self) -> String {
        match self {
            Self::Tcp(a) => a.ip().to_canonical().to_string(),
            Self::Unix(p) => p.display().to_string(),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}
