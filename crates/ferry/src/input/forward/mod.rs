//! `@type forward`: the Forward protocol server (Fluentd's in_forward).
//!
//! | module | job |
//! |---|---|
//! | [`config`] | parameters (Fluentd's names and defaults, ferry's limits), checked before binding |
//! | `listener` | binds TCP (plain or TLS), the Unix socket and the UDP heartbeat socket; accept loops with a connection limit |
//! | `heartbeat` | the UDP heartbeat responder, on its own thread |
//! | `session` | one accepted connection: its slot, TLS, how it ended (log level, counters) |
//! | `conn` | one connection after TLS: handshake, requests in order, ack after commit |
//! | `handshake` | the `<security>` handshake, server side (HELO, PING check, PONG), and the connection's run of it |
//! | `tls` | rustls server configuration from `<transport tls>` |
//! | `batch` | one frame → a batch ready to route (parse, validate, rewrite) |
//! | `rewrite` | the only place entries are rebuilt: a time of 0, `source_*_key` |
//! | `resolve` | reverse DNS of peers, off the read path, with a timeout and a cache |
//! | `json` | Fluentd's JSON convenience mode (a connection that starts with `[` or `{`) |
//!
//! TCP on `bind:port` carries requests; UDP on the same port answers heartbeats with `0x00`
//! from a thread of its own, so heartbeat answers never wait behind request work. Each
//! connection is its own task: it decodes requests incrementally, validates entries without
//! building records, routes the batch and writes the ack only after the output committed the
//! events. Requests on a connection are handled in order, so a blocked output stops reads.

pub mod config;

mod batch;
mod conn;
mod handshake;
mod heartbeat;
mod json;
mod listener;
mod metrics;
mod resolve;
mod rewrite;
mod session;
#[cfg(test)]
mod tests;
mod tls;

use crate::router::{RouteId, Router};
use ferry_proto::request::Limits;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use config::{DEFAULT_MAX_REQUEST, ForwardInputConfig};
pub use listener::start;

/// Why a handshake failed (one counter each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The first message was not a PING (Fluentd: "invalid ping message").
    InvalidPing,
    /// No `<client>` matched and `allow_anonymous_source` is false.
    AnonymousDenied,
    /// Wrong shared-key digest.
    SharedKeyMismatch,
    /// Unknown user or wrong password.
    UserMismatch,
    /// The TLS or shared-key handshake did not finish within `handshake_timeout`.
    Timeout,
    /// The TLS handshake failed (bad client certificate, protocol error).
    Tls,
}

impl HandshakeFailure {
    pub const ALL: [HandshakeFailure; 6] = [
        Self::InvalidPing,
        Self::AnonymousDenied,
        Self::SharedKeyMismatch,
        Self::UserMismatch,
        Self::Timeout,
        Self::Tls,
    ];

    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidPing => "invalid_ping",
            Self::AnonymousDenied => "anonymous_denied",
            Self::SharedKeyMismatch => "shared_key_mismatch",
            Self::UserMismatch => "user_mismatch",
            Self::Timeout => "timeout",
            Self::Tls => "tls",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one forward input (exported as metrics).
#[derive(Debug, Default)]
pub struct ForwardInputMetrics {
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    /// Times the accept loop stopped at `max_connections` until a connection closed.
    pub connection_limit_waits: AtomicU64,
    /// Connections closed by `idle_timeout`.
    pub idle_closes: AtomicU64,
    /// Connections closed after their first request because of `deny_keepalive`.
    pub keepalive_denied_closes: AtomicU64,
    pub requests: AtomicU64,
    pub emit_records: AtomicU64,
    pub emit_size: AtomicU64,
    pub acks: AtomicU64,
    /// Events skipped: bad time type, record not a map, entry not `[time, record]`.
    pub invalid_events: AtomicU64,
    /// Events whose time of 0 was replaced with the time they arrived.
    pub time_zero_replaced: AtomicU64,
    /// Requests skipped (not acked) because their envelope or entry stream is broken.
    pub broken_requests: AtomicU64,
    /// Connections closed for a request over `chunk_size_limit`.
    pub oversize_requests: AtomicU64,
    /// Requests over `chunk_size_warn_limit` (accepted, logged).
    pub size_warnings: AtomicU64,
    pub commit_failures: AtomicU64,
    pub accept_errors: AtomicU64,
    /// Episodes of running out of file descriptors while accepting.
    pub fd_exhaustion_episodes: AtomicU64,
    pub heartbeats: AtomicU64,
    pub handshakes: AtomicU64,
    pub json_connections: AtomicU64,
    pub hostname_lookups: AtomicU64,
    pub hostname_lookup_failures: AtomicU64,
    handshake_failures: [AtomicU64; 6],
}

impl ForwardInputMetrics {
    pub fn handshake_failures(&self, reason: HandshakeFailure) -> u64 {
        self.handshake_failures[reason.index()].load(Ordering::Relaxed)
    }

    fn count_handshake_failure(&self, reason: HandshakeFailure) {
        self.handshake_failures[reason.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a connection comes from.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
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

/// At most [`LOG_BURST`] lines per [`LOG_WINDOW`] for one kind of per-peer warning; the rest
/// are counted and the count is reported with the next line that gets through.
pub(crate) const LOG_BURST: u32 = 10;
pub(crate) const LOG_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct LogLimiter {
    state: Mutex<(Instant, u32, u64)>,
}

/// A note appended to a rate-limited line: how many like it were suppressed before it.
pub(crate) struct Suppressed(u64);

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > 0 {
            write!(f, " ({} similar lines suppressed)", self.0)
        } else {
            Ok(())
        }
    }
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self {
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }
}

impl LogLimiter {
    /// `Some` when this line may be logged.
    pub fn allow(&self) -> Option<Suppressed> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if now.duration_since(s.0) >= LOG_WINDOW {
            s.0 = now;
            s.1 = 0;
        }
        if s.1 < LOG_BURST {
            s.1 += 1;
            let suppressed = std::mem::take(&mut s.2);
            Some(Suppressed(suppressed))
        } else {
            s.2 += 1;
            None
        }
    }
}

/// One limiter per kind of warning, so a flood of one kind cannot hide another.
#[derive(Debug, Default)]
pub(crate) struct Logs {
    pub invalid_events: LogLimiter,
    pub broken: LogLimiter,
    pub handshake: LogLimiter,
    pub oversize: LogLimiter,
    pub connection: LogLimiter,
    pub limit: LogLimiter,
}

/// What every connection task of one input shares.
pub(crate) struct Shared {
    pub id: String,
    pub config: ForwardInputConfig,
    pub router: Arc<Router>,
    pub route: RouteId,
    pub metrics: Arc<ForwardInputMetrics>,
    pub security: Option<handshake::Security>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub resolver: Option<Arc<resolve::Resolver>>,
    pub limits: Limits,
    pub logs: Logs,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.id)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}
