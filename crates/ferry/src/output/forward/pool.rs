//! Connections to a server: DNS → TCP connect (`connect_timeout`) → TLS (`transport tls`) →
//! shared-key handshake (`<security>`, bounded by `hard_timeout`); with `keepalive`, connections
//! are kept per server after a request completes and reused ([`super::node::Node::checkout`]);
//! otherwise closed gracefully ([`Connection::close`]).

use super::Shared;
use super::conn::{Connection, MAX_REPLY, Stream, tcp_connect};
use super::error::{ForwardError, HandshakeFailure};
use super::handshake::{Credentials, client_handshake};
use super::metrics::bump;
use super::node::Node;
use bytes::BytesMut;
use ferry_proto::frame::FrameDecoder;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout};
use tokio_util::either::Either;

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    node: &Node,
    stream: &mut S,
) -> Result<bool, ForwardError> {
    let Some(security) = &shared.config.security else {
        return Ok(true);
    };
    let server = &node.server;
    let creds = Credentials {
        self_hostname: &security.self_hostname,
        shared_key: &server.shared_key.as_ref().unwrap_or(&security.shared_key).0,
        username: &server.username,
        password: &server.password.0,
        salt: &node.salt,
    };
    let limit = shared.config.hard_timeout;
    let result = match timeout(limit, client_handshake(stream, &creds)).await {
        Ok(r) => r,
        Err(_) => Err(HandshakeFailure::Timeout {
            expected: "HELO/PONG",
            after: limit,
        }),
    };
    result.map_err(|source| {
        bump(&shared.metrics.handshake_failures, 1);
        ForwardError::Handshake {
            node: server.name.clone(),
            source,
        }
    })
}

/// Opens a new connection to `node`, ready for requests.
pub async fn connect(shared: &Shared, node: &Node) -> Result<Connection, ForwardError> {
    let cfg = &shared.config;
    let server = &node.server;
    let spawn = |name: String, fut| shared.spawn(name, fut);
    let addrs = match node
        .dns
        .addresses(server, &shared.resolver, cfg, &spawn)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            bump(&shared.metrics.dns_failures, 1);
            return Err(e);
        }
    };
    let addr = node
        .dns
        .pick(&addrs, cfg.dns_round_robin)
        .ok_or_else(|| ForwardError::Dns {
            node: server.name.clone(),
            host: server.host.clone(),
            source: io::Error::other("no addresses"),
        })?;
    let limit = cfg.connect_limit();
    let tcp = match tcp_connect(addr, cfg.send_keepalive_packet, limit, &server.name).await {
        Ok(t) => t,
        Err(e) => {
            bump(&shared.metrics.connect_failures, 1);
            node.dns.invalidate();
            return Err(e);
        }
    };
    let mut stream: Stream = match &server.tls {
        None => Either::Left(tcp),
        Some(tls) => {
            let name =
                crate::tls::client::server_name(&server.host).map_err(|e| ForwardError::Tls {
                    node: server.name.clone(),
                    addr,
                    source: io::Error::other(e.to_string()),
                    hint: String::new(),
                })?;
            let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(tls));
            let tls_fail = |source: io::Error| {
                bump(&shared.metrics.tls_failures, 1);
                ForwardError::Tls {
                    node: server.name.clone(),
                    addr,
                    hint: crate::tls::handshake_hint(&source),
                    source,
                }
            };
            match timeout(limit, connector.connect(name, tcp)).await {
                Ok(Ok(s)) => Either::Right(Box::new(s)),
                Ok(Err(e)) => return Err(tls_fail(e)),
                Err(_) => {
                    return Err(tls_fail(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no TLS handshake within {limit:?}"),
                    )));
                }
            }
        }
    };
    let reusable = handshake(shared, node, &mut stream).await?;
    bump(&shared.metrics.connections_opened, 1);
    Ok(Connection {
        stream,
        peer: addr,
        buf: BytesMut::with_capacity(256),
        decoder: FrameDecoder::new(MAX_REPLY),
        reusable,
        opened: Instant::now(),
    })
}

/// A usable kept-alive connection to `node` (`true`: reused), or a new one.
pub async fn checkout(shared: &Shared, node: &Node) -> Result<(Connection, bool), ForwardError> {
    if shared.config.keepalive {
        while let Some(conn) = node.checkout(shared.config.keepalive_timeout) {
            if conn.is_usable() {
                bump(&shared.metrics.connections_reused, 1);
                return Ok((conn, true));
            }
        }
    }
    Ok((connect(shared, node).await?, false))
}

/// Longest wait for the server's side of a graceful close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// After a completed request: keep the connection for the next one, or close it gracefully in
/// a task of its own, so that waiting for the server's side of the close never holds a flush.
pub fn checkin(shared: &Shared, node: &Node, conn: Connection) {
    if shared.config.keepalive && conn.reusable && node.is_available() && !node.is_retired() {
        node.checkin(conn);
    } else {
        let limit = shared.config.send_timeout.min(CLOSE_WAIT);
        let name = format!("closing a connection to '{}'", node.name());
        shared.spawn(name, Box::pin(conn.close(limit)));
    }
}
