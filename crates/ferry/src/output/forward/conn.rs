//! Connections to a server: DNS → TCP connect (`connect_timeout`) → TLS (`transport tls`) →
//! shared-key handshake (`<security>`, bounded by `hard_timeout`).
//!
//! A [`Connection`] owns its read buffer and a bounded frame decoder for replies (acks). With
//! `keepalive`, connections are kept per server after a request completes and reused
//! ([`super::node::Node::checkout`]); before reuse, [`Connection::is_usable`] peeks at the socket:
//! a connection the server closed, or one with unread bytes (a stale ack would put every later
//! ack out of step, fluent/fluentd#4057), is dropped instead.

use super::Shared;
use super::error::{ForwardError, HandshakeFailure};
use super::handshake::{Credentials, client_handshake, read_frame};
use super::metrics::bump;
use super::node::Node;
use bytes::{Bytes, BytesMut};
use ferry_proto::frame::FrameDecoder;
use std::io;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_util::either::Either;

/// Largest reply accepted on a data connection (an ack echoes a short chunk id).
pub const MAX_REPLY: usize = 64 * 1024;

pub type Stream = Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

#[derive(Debug)]
pub struct Connection {
    pub stream: Stream,
    pub peer: SocketAddr,
    pub buf: BytesMut,
    pub decoder: FrameDecoder,
    /// The server keeps the connection for more requests (HELO `keepalive`, or no handshake).
    pub reusable: bool,
    pub opened: Instant,
}

/// Why a reply could not be read.
#[derive(Debug)]
pub enum ReadReply {
    Timeout,
    Closed(String),
}

impl Connection {
    fn tcp(&self) -> &TcpStream {
        match &self.stream {
            Either::Left(t) => t,
            Either::Right(t) => t.get_ref().0,
        }
    }

    /// False when the server closed the connection or left bytes unread on it.
    pub fn is_usable(&self) -> bool {
        let mut probe = [0u8; 1];
        let mut read_buf = tokio::io::ReadBuf::new(&mut probe);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match self.tcp().poll_peek(&mut cx, &mut read_buf) {
            Poll::Pending => true,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => false,
            // TLS records (session tickets) may arrive after the handshake; plain TCP has no
            // business sending anything between requests.
            Poll::Ready(Ok(_)) => matches!(self.stream, Either::Right(_)),
        }
    }

    /// Writes `data`, each write bounded by `limit`.
    pub async fn write(&mut self, data: &[u8], limit: Duration) -> Result<(), WriteFailure> {
        match timeout(limit, self.stream.write_all(data)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteFailure::Io(e)),
            Err(_) => Err(WriteFailure::Timeout),
        }
    }

    pub async fn flush(&mut self, limit: Duration) -> Result<(), WriteFailure> {
        match timeout(limit, self.stream.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteFailure::Io(e)),
            Err(_) => Err(WriteFailure::Timeout),
        }
    }

    /// Reads the next reply frame within `limit`.
    pub async fn read_reply(&mut self, limit: Duration) -> Result<Bytes, ReadReply> {
        let read = read_frame(&mut self.stream, &mut self.buf, &mut self.decoder);
        match timeout(limit, read).await {
            Err(_) => Err(ReadReply::Timeout),
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) => Err(ReadReply::Closed("the server closed the connection".into())),
            Ok(Err(e)) => Err(ReadReply::Closed(e.to_string())),
        }
    }
}

/// Why a write failed.
#[derive(Debug)]
pub enum WriteFailure {
    Io(io::Error),
    Timeout,
}

async fn tcp_connect(
    addr: SocketAddr,
    keepalive: bool,
    limit: Duration,
    node: &str,
) -> Result<TcpStream, ForwardError> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    };
    let fail = |source| ForwardError::Connect {
        node: node.to_string(),
        addr,
        source,
    };
    let socket = socket.map_err(fail)?;
    if keepalive {
        socket.set_keepalive(true).map_err(fail)?;
    }
    let stream = match timeout(limit, socket.connect(addr)).await {
        Ok(r) => r.map_err(fail)?,
        Err(_) => {
            return Err(ForwardError::ConnectTimeout {
                node: node.to_string(),
                addr,
                after: limit,
            });
        }
    };
    stream.set_nodelay(true).map_err(fail)?;
    Ok(stream)
}

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
            let name = super::tls::server_name(server).map_err(|e| ForwardError::Tls {
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

/// After a completed request: keep the connection for the next one, or close it gracefully.
pub async fn checkin(shared: &Shared, node: &Node, conn: Connection) {
    if shared.config.keepalive && conn.reusable && node.is_available() {
        node.checkin(conn);
    } else {
        conn.close(shared.config.send_timeout.min(CLOSE_WAIT)).await;
    }
}

impl Connection {
    /// Closes the connection as a well-behaved client does: TLS `close_notify` and a TCP FIN,
    /// then whatever the server still sends (a TLS 1.3 session ticket, say) is read and dropped
    /// until it closes its side, for at most `limit`.
    ///
    /// Dropping the socket instead makes the kernel answer unread bytes with a reset, and a
    /// reset can reach the server before it has read the last request: the server then loses
    /// that request (no ack would tell), and some servers stall on it (Fluent Bit's TLS input
    /// held every later handshake for as long as such a connection lingered).
    pub async fn close(mut self, limit: Duration) {
        let drain = async {
            self.stream.shutdown().await?;
            let mut sink = [0u8; 512];
            loop {
                if tokio::io::AsyncReadExt::read(&mut self.stream, &mut sink).await? == 0 {
                    return Ok::<(), io::Error>(());
                }
            }
        };
        if let Ok(Err(e)) = timeout(limit, drain).await {
            tracing::trace!("closing the connection to {}: {e}", self.peer);
        }
    }
}
