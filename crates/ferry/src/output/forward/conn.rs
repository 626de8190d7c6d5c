//! One connection to a server: its stream (TCP, or TLS over it), its read buffer and a bounded
//! frame decoder for replies (acks), writes bounded by `send_timeout`, and a graceful close.
//! Opening, handshaking and reusing connections is [`super::pool`]'s.
//!
//! Before a kept-alive connection is reused, [`Connection::is_usable`] peeks at the socket: a
//! connection the server closed, or one with unread bytes (a stale ack would put every later
//! ack out of step, fluent/fluentd#4057), is dropped instead.

use super::error::ForwardError;
use super::handshake::read_frame;
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

    /// Reads the next reply frame within `limit`.
    pub async fn read_reply(&mut self, limit: Duration) -> Result<Bytes, ReadReply> {
        read_reply_from(&mut self.stream, &mut self.buf, &mut self.decoder, limit).await
    }

    /// The connection as a writing and a reading half (with the read buffer and decoder),
    /// usable at once: acks are read while a request is being written.
    pub fn halves(&mut self) -> (WriteHalf<'_>, ReadHalf<'_>) {
        let (rd, wr) = tokio::io::split(&mut self.stream);
        (
            wr,
            ReadHalf {
                stream: rd,
                buf: &mut self.buf,
                decoder: &mut self.decoder,
            },
        )
    }
}

/// The writing half of a [`Connection`] (see [`Connection::halves`]).
pub type WriteHalf<'a> = tokio::io::WriteHalf<&'a mut Stream>;

/// The reading half of a [`Connection`] (see [`Connection::halves`]).
pub struct ReadHalf<'a> {
    stream: tokio::io::ReadHalf<&'a mut Stream>,
    buf: &'a mut BytesMut,
    decoder: &'a mut FrameDecoder,
}

impl ReadHalf<'_> {
    /// Reads the next reply frame within `limit` (cancel-safe: what was read stays buffered).
    pub async fn read_reply(&mut self, limit: Duration) -> Result<Bytes, ReadReply> {
        read_reply_from(&mut self.stream, self.buf, self.decoder, limit).await
    }
}

/// Writes `data` to `w` within `limit`.
pub async fn write_within<W: AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
    limit: Duration,
) -> Result<(), WriteFailure> {
    match timeout(limit, w.write_all(data)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(WriteFailure::Io(e)),
        Err(_) => Err(WriteFailure::Timeout),
    }
}

/// Flushes `w` within `limit` (a TLS stream sends its record).
pub async fn flush_within<W: AsyncWrite + Unpin>(
    w: &mut W,
    limit: Duration,
) -> Result<(), WriteFailure> {
    match timeout(limit, w.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(WriteFailure::Io(e)),
        Err(_) => Err(WriteFailure::Timeout),
    }
}

async fn read_reply_from<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    decoder: &mut FrameDecoder,
    limit: Duration,
) -> Result<Bytes, ReadReply> {
    match timeout(limit, read_frame(r, buf, decoder)).await {
        Err(_) => Err(ReadReply::Timeout),
        Ok(Ok(Some(frame))) => Ok(frame),
        Ok(Ok(None)) => Err(ReadReply::Closed("the server closed the connection".into())),
        Ok(Err(e)) => Err(ReadReply::Closed(e.to_string())),
    }
}

/// Why a write failed.
#[derive(Debug)]
pub enum WriteFailure {
    Io(io::Error),
    Timeout,
}

pub(super) async fn tcp_connect(
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
            // What the server still sends is read from the socket, not through TLS: after our
            // close_notify nothing it says matters, and a record TLS could not decrypt would
            // only raise an alert nobody reads.
            let tcp = match &mut self.stream {
                Either::Left(t) => t,
                Either::Right(t) => t.get_mut().0,
            };
            let mut sink = [0u8; 512];
            loop {
                if tokio::io::AsyncReadExt::read(tcp, &mut sink).await? == 0 {
                    return Ok::<(), io::Error>(());
                }
            }
        };
        if let Ok(Err(e)) = timeout(limit, drain).await {
            tracing::trace!("closing the connection to {}: {e}", self.peer);
        }
    }
}
