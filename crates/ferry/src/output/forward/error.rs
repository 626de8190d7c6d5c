//! Why a request did not reach a server, and what the output does about it.
//!
//! Every variant names the server (`node`: its `<server> name` or `host:port`). The class
//! ([`ForwardError::class`]) is what Fluentd logs as `error_class` for the same failure where
//! Fluentd has one (`Errno::ECONNREFUSED`, `NoNodesAvailable`, ...), so log searches carry over.
//!
//! What happens next is decided by methods, never by message text:
//! - [`ForwardError::detaches_node`]: a refused or reset connection, or a lost ack, takes the
//!   server out of the rotation at once (heartbeats bring it back);
//! - [`ForwardError::tries_next_node`]: the same request goes to the next healthy server;
//! - [`ForwardError::ack_lost`]: the request was written but no ack came: the server may have
//!   the events, so a re-send may duplicate them (counted);
//! - [`ForwardError::is_retryable`]: everything but a broken chunk is retried with backoff.

use ferry_proto::ack::AckError;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeFailure {
    #[error("the server closed the connection during the handshake")]
    Closed,
    #[error("no {expected} within {after:?}")]
    Timeout {
        expected: &'static str,
        after: Duration,
    },
    #[error("{0}")]
    Protocol(#[from] ferry_proto::handshake::HandshakeError),
    #[error("{0}")]
    Frame(#[from] ferry_proto::frame::FrameError),
    #[error("{0}")]
    Rejected(#[from] ferry_proto::handshake::PongRejection),
    #[error("{0}")]
    Io(#[from] io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no nodes are available")]
    NoNodesAvailable,
    /// A `<service_discovery>` gave no server at start (an SRV lookup that failed).
    #[error("{0}")]
    Discovery(String),
    #[error("server '{node}': cannot resolve {host}: {source}")]
    Dns {
        node: String,
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("server '{node}': resolving {host} did not finish within {after:?}")]
    DnsTimeout {
        node: String,
        host: String,
        after: Duration,
    },
    #[error("server '{node}': connect to {addr}: {source}")]
    Connect {
        node: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("server '{node}': connect to {addr} did not finish within {after:?}")]
    ConnectTimeout {
        node: String,
        addr: SocketAddr,
        after: Duration,
    },
    #[error("server '{node}': TLS handshake with {addr} failed: {source}{hint}")]
    Tls {
        node: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
        /// What to look at ([`crate::tls::handshake_hint`]); may be empty.
        hint: String,
    },
    #[error("server '{node}': shared-key handshake failed: {source}")]
    Handshake {
        node: String,
        #[source]
        source: HandshakeFailure,
    },
    #[error("server '{node}': write failed: {source}")]
    Send {
        node: String,
        #[source]
        source: io::Error,
    },
    #[error("server '{node}': a write did not finish within send_timeout ({after:?})")]
    SendTimeout { node: String, after: Duration },
    #[error("server '{node}': no ack within ack_response_timeout ({after:?})")]
    AckTimeout { node: String, after: Duration },
    #[error("server '{node}': connection lost while waiting for the ack: {detail}")]
    AckClosed { node: String, detail: String },
    #[error("server '{node}' was detached while a request to it was in flight")]
    DetachedInFlight { node: String },
    #[error("server '{node}': ack for another chunk (sent {sent:?}, got {got:?})")]
    AckMismatch {
        node: String,
        sent: String,
        got: String,
    },
    #[error("server '{node}': reply is not an ack: {source}")]
    AckInvalid {
        node: String,
        #[source]
        source: AckError,
    },
    #[error("reading the chunk from the buffer failed: {0}")]
    ReadChunk(#[source] io::Error),
    #[error("chunk content is not valid: {0}")]
    BrokenChunk(String),
    /// The chunk goes back to the queue without a retry counted (lost acks: the servers were
    /// taken out of rotation, so the next attempt goes elsewhere or waits for heartbeats).
    #[error("{0}")]
    RolledBack(Box<ForwardError>),
}

/// Fluentd's (Ruby's) error class for an I/O error.
fn errno_class(e: &io::Error) -> &'static str {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "Errno::ECONNREFUSED",
        K::ConnectionReset => "Errno::ECONNRESET",
        K::ConnectionAborted => "Errno::ECONNABORTED",
        K::BrokenPipe => "Errno::EPIPE",
        K::TimedOut => "Errno::ETIMEDOUT",
        K::HostUnreachable => "Errno::EHOSTUNREACH",
        K::NetworkUnreachable => "Errno::ENETUNREACH",
        K::AddrNotAvailable => "Errno::EADDRNOTAVAIL",
        K::UnexpectedEof => "EOFError",
        _ => "IOError",
    }
}

fn is_refused_or_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

impl ForwardError {
    /// `error_class` in log lines.
    pub fn class(&self) -> &'static str {
        match self {
            Self::NoNodesAvailable => "Fluent::Plugin::ForwardOutput::NoNodesAvailable",
            Self::Discovery(_) => "Resolv::ResolvError",
            Self::Dns { .. } => "SocketError",
            Self::DnsTimeout { .. } => "Resolv::ResolvTimeout",
            Self::Connect { source, .. } | Self::Send { source, .. } => errno_class(source),
            Self::ConnectTimeout { .. } | Self::SendTimeout { .. } => "Errno::ETIMEDOUT",
            Self::Tls { .. } => "OpenSSL::SSL::SSLError",
            Self::Handshake { source, .. } => match source {
                HandshakeFailure::Rejected(_) => "Fluent::Plugin::ForwardOutput::PingpongError",
                _ => "Fluent::Plugin::ForwardOutput::HeloError",
            },
            Self::AckTimeout { .. } => "Fluent::Plugin::ForwardOutput::AckResponseTimeout",
            Self::AckClosed { .. } => "Fluent::Plugin::ForwardOutput::AckConnectionLost",
            Self::DetachedInFlight { .. } => "Fluent::Plugin::ForwardOutput::NodeDetached",
            Self::AckMismatch { .. } => "Fluent::Plugin::ForwardOutput::AckMismatch",
            Self::AckInvalid { .. } => "Fluent::Plugin::ForwardOutput::AckInvalid",
            Self::ReadChunk(_) => "BufferReadError",
            Self::BrokenChunk(_) => "BrokenChunkError",
            Self::RolledBack(inner) => inner.class(),
        }
    }

    /// A broken chunk never goes through; everything else may later.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::BrokenChunk(_))
    }

    /// The server is taken out of rotation at once, without waiting for phi.
    pub fn detaches_node(&self) -> bool {
        match self {
            Self::Connect { source, .. } | Self::Send { source, .. } => is_refused_or_reset(source),
            Self::AckTimeout { .. } | Self::AckClosed { .. } => true,
            _ => false,
        }
    }

    /// The request may go to another server right away.
    pub fn tries_next_node(&self) -> bool {
        !matches!(
            self,
            Self::ReadChunk(_)
                | Self::BrokenChunk(_)
                | Self::NoNodesAvailable
                | Self::RolledBack(_)
        )
    }

    /// The request was written but its ack never came: the server may hold the events.
    pub fn ack_lost(&self) -> bool {
        matches!(
            self,
            Self::AckTimeout { .. } | Self::AckClosed { .. } | Self::DetachedInFlight { .. }
        )
    }

    /// The same lost ack, for another chunk that was waiting on the same connection.
    pub fn lost_ack_again(&self) -> Option<Self> {
        match self {
            Self::AckTimeout { node, after } => Some(Self::AckTimeout {
                node: node.clone(),
                after: *after,
            }),
            Self::AckClosed { node, detail } => Some(Self::AckClosed {
                node: node.clone(),
                detail: detail.clone(),
            }),
            Self::DetachedInFlight { node } => Some(Self::DetachedInFlight { node: node.clone() }),
            _ => None,
        }
    }

    /// The chunk should go back to the queue without counting a retry.
    pub fn rolls_back(&self) -> bool {
        matches!(self, Self::RolledBack(_))
    }

    /// A DNS or connection problem (as opposed to one after the connection was up).
    pub fn is_connect_error(&self) -> bool {
        matches!(
            self,
            Self::Dns { .. }
                | Self::DnsTimeout { .. }
                | Self::Connect { .. }
                | Self::ConnectTimeout { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(kind: io::ErrorKind) -> ForwardError {
        ForwardError::Connect {
            node: "a".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            source: io::Error::from(kind),
        }
    }

    #[test]
    fn refused_and_reset_detach_and_carry_fluentds_error_class() {
        let refused = connect(io::ErrorKind::ConnectionRefused);
        assert!(refused.detaches_node());
        assert_eq!(refused.class(), "Errno::ECONNREFUSED");
        assert!(connect(io::ErrorKind::ConnectionReset).detaches_node());
        assert!(!connect(io::ErrorKind::PermissionDenied).detaches_node());
    }

    #[test]
    fn tls_and_handshake_failures_are_retryable_and_do_not_detach() {
        let tls = ForwardError::Tls {
            node: "a".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            source: io::Error::other("invalid peer certificate: UnknownIssuer"),
            hint: String::new(),
        };
        assert!(tls.is_retryable() && tls.tries_next_node() && !tls.detaches_node());
        let hs = ForwardError::Handshake {
            node: "a".into(),
            source: HandshakeFailure::Closed,
        };
        assert!(hs.is_retryable() && !hs.detaches_node());
    }

    #[test]
    fn only_a_broken_chunk_is_not_retryable() {
        assert!(!ForwardError::BrokenChunk("x".into()).is_retryable());
        assert!(ForwardError::NoNodesAvailable.is_retryable());
        let lost = ForwardError::AckTimeout {
            node: "a".into(),
            after: Duration::from_secs(1),
        };
        assert!(lost.ack_lost() && lost.detaches_node());
        assert!(ForwardError::RolledBack(Box::new(lost)).rolls_back());
    }
}
