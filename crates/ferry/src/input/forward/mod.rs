//! `@type forward`: the Forward protocol server (Fluentd's in_forward).
//!
//! | module | job |
//! |---|---|
//! | [`config`] | parameters (Fluentd's names and defaults, ferry's limits), checked before binding |
//! | `listener` | binds TCP (plain or TLS), the Unix socket and the UDP heartbeat socket through [`crate::input::net`], and starts its accept loops |
//! | `heartbeat` | the UDP heartbeat responder, on its own thread |
//! | `session` | the [`crate::input::net::Service`] of this input: one connection after TLS, and how it ended (log level, counters) |
//! | `conn` | one connection after TLS: handshake, requests in order, ack after commit |
//! | `handshake` | the `<security>` handshake, server side (HELO, PING check, PONG), and the connection's run of it |
//!
//! Listening, connection slots, accept errors and TLS are [`crate::input::net`]'s.
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
mod rewrite;
mod session;
#[cfg(test)]
mod tests;

use crate::router::Routing;
use ferry_proto::request::Limits;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// The listening layer's counters: connections, slots, accept errors, TLS handshakes.
    pub net: Arc<crate::input::net::NetMetrics>,
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
    /// Requests asking for an ack whose sender was gone (the connection reset) before the
    /// commit: not committed, since no ack could reach it and it sends them again.
    pub sender_gone: AtomicU64,
    /// Milliseconds connections held their request because an output's buffer was full.
    pub held_ms: AtomicU64,
    pub heartbeats: AtomicU64,
    pub handshakes: AtomicU64,
    pub json_connections: AtomicU64,
    /// Reverse lookups for `source_hostname_key`.
    pub lookups: Arc<crate::input::net::resolve::LookupCounters>,
    handshake_failures: [AtomicU64; 6],
}

impl ForwardInputMetrics {
    pub fn handshake_failures(&self, reason: HandshakeFailure) -> u64 {
        let own = self.handshake_failures[reason.index()].load(Ordering::Relaxed);
        match reason {
            HandshakeFailure::Tls => own + self.net.tls_failures.load(Ordering::Relaxed),
            HandshakeFailure::Timeout => own + self.net.tls_timeouts.load(Ordering::Relaxed),
            _ => own,
        }
    }

    fn count_handshake_failure(&self, reason: HandshakeFailure) {
        self.handshake_failures[reason.index()].fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) use crate::input::net::Peer;

pub(crate) use crate::logging::LogLimiter;

/// One limiter per kind of warning, so a flood of one kind cannot hide another.
#[derive(Debug, Default)]
pub(crate) struct Logs {
    pub invalid_events: LogLimiter,
    pub broken: LogLimiter,
    pub handshake: LogLimiter,
    pub oversize: LogLimiter,
    pub connection: LogLimiter,
}

/// What every connection task of one input shares.
pub(crate) struct Shared {
    pub id: String,
    pub config: ForwardInputConfig,
    pub routing: Arc<Routing>,
    /// The `@label` events go to (`None`: the top level).
    pub label: Option<String>,
    pub metrics: Arc<ForwardInputMetrics>,
    pub security: Option<handshake::Security>,
    pub resolver: Option<Arc<crate::input::net::resolve::Resolver>>,
    pub limits: Limits,
    pub logs: Logs,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
