//! One HTTP/1.1 connection to an origin, plain TCP or TLS, driven by the task that uses it (no
//! task of its own: dropping the connection closes it).
//!
//! [`Connection::exchange`] sends one request while the caller's future writes its body, then
//! reads the whole answer, keeping its first bytes for the log. Waits are bounded:
//! - opening (DNS, TCP, TLS handshake) by `connect_timeout`;
//! - each piece of the body by `read_timeout` for the server to take it (a server that stops
//!   reading holds the body channel full);
//! - the answer's head, counted from the end of the body, and each piece of the answer's body,
//!   by `read_timeout`.
//!
//! An answer that arrives before the body is whole ends the request: the body is aborted (so
//! it can never pass for a whole one) and the connection closed after the answer.

use super::body::StreamBody;
use super::{ClientError, ConnectOptions, Origin};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::pin;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::either::Either;

/// The most of an answer's body kept for the log.
pub const BODY_HEAD: usize = 512;
/// The most of an answer's body read to keep the connection; a longer one closes it.
const MAX_DRAINED: u64 = 1024 * 1024;

type Stream = Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;
type Driver = http1::Connection<TokioIo<Stream>, StreamBody>;

/// An open connection.
pub struct Connection {
    origin: Origin,
    sender: http1::SendRequest<StreamBody>,
    driver: Driver,
    /// The driver finished: the server closed the connection, or it failed.
    closed: bool,
    /// Requests sent on it.
    requests: u64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("origin", &self.origin)
            .field("requests", &self.requests)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// A server's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: http::StatusCode,
    /// The first [`BODY_HEAD`] bytes of its body.
    pub body_head: Bytes,
    /// Bytes of the request body sent.
    pub sent: u64,
    /// The whole body was sent before the answer came. An answer to part of a body says
    /// nothing about the rest: a caller must not count it a success.
    pub body_complete: bool,
}

impl Answer {
    /// The start of the body as text on one line, for a log line.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body_head)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why an exchange failed: the caller's body, or the connection.
#[derive(Debug)]
pub enum Failed<E> {
    Body(E),
    Client(ClientError),
}

impl<E> From<ClientError> for Failed<E> {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

impl Connection {
    /// Opens a connection to `origin` within `options.connect_timeout`.
    pub async fn open(origin: &Origin, options: &ConnectOptions) -> Result<Self, ClientError> {
        let limit = options.connect_timeout;
        let opening = async {
            let tcp = TcpStream::connect((origin.connect_host(), origin.port))
                .await
                .map_err(ClientError::Connect)?;
            let _ = tcp.set_nodelay(true);
            let stream: Stream = if origin.tls {
                let Some(config) = &options.tls else {
                    return Err(ClientError::NoTls);
                };
                let name = crate::tls::client::server_name(&origin.host)
                    .map_err(|e| ClientError::Tls(std::io::Error::other(e.to_string())))?;
                let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(config));
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(ClientError::Tls)?;
                Either::Right(Box::new(tls))
            } else {
                Either::Left(tcp)
            };
            http1::handshake(TokioIo::new(stream))
                .await
                .map_err(ClientError::Http)
        };
        let (sender, driver) = timeout(limit, opening)
            .await
            .map_err(|_| ClientError::ConnectTimeout(limit))??;
        Ok(Self {
            origin: origin.clone(),
            sender,
            driver,
            closed: false,
            requests: 0,
        })
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Requests sent on this connection.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Whether a request may be sent now: false when the server closed the connection while it
    /// was idle (the driver sees the end of the stream) or it is still busy.
    pub async fn is_ready(&mut self) -> bool {
        if self.closed {
            return false;
        }
        let Self { sender, driver, .. } = self;
        // An idle connection is ready at once; the driver's poll reads a close that came.
        tokio::select! {
            biased;
            _ = driver => {
                self.closed = true;
                false
            }
            ready = sender.ready() => ready.is_ok(),
            () = tokio::time::sleep(std::time::Duration::from_millis(100)) => false,
        }
    }

    /// Sends `request`, its body written by `feed` at the same time, and reads the answer.
    /// After an `Err`, or an answer that came before the whole body, the connection is closed
    /// ([`Self::is_closed`]).
    pub async fn exchange<E>(
        &mut self,
        request: http::Request<StreamBody>,
        read_timeout: std::time::Duration,
        feed: impl Future<Output = Result<u64, E>>,
    ) -> Result<Answer, Failed<E>> {
        self.requests += 1;
        let result = self.run(request, read_timeout, feed).await;
        if result.is_err() {
            self.closed = true;
        }
        result
    }

    async fn run<E>(
        &mut self,
        request: http::Request<StreamBody>,
        read_timeout: std::time::Duration,
        feed: impl Future<Output = Result<u64, E>>,
    ) -> Result<Answer, Failed<E>> {
        let Self {
            sender,
            driver,
            closed,
            ..
        } = self;
        let mut response = pin!(sender.send_request(request));
        let mut feed = pin!(feed);
        let mut sent = None;
        // The answer's head is awaited `read_timeout` from the end of the body.
        let mut deadline: Option<Instant> = None;
        let far = Instant::now() + std::time::Duration::from_secs(365 * 86400);
        let head = loop {
            tokio::select! {
                biased;
                r = &mut response => break r.map_err(ClientError::from_hyper)?,
                r = &mut feed, if sent.is_none() => match r {
                    Ok(n) => {
                        sent = Some(n);
                        deadline = Some(Instant::now() + read_timeout);
                    }
                    Err(e) => return Err(Failed::Body(e)),
                },
                r = &mut *driver, if !*closed => {
                    *closed = true;
                    if let Err(e) = r {
                        return Err(ClientError::from_hyper(e).into());
                    }
                }
                () = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                    return Err(ClientError::ReadTimeout(read_timeout).into());
                }
            }
        };
        if sent.is_none() {
            // Answered before the whole body: the body is dropped (aborted) with `feed`.
            *closed = true;
        }
        let status = head.status();
        let keep = !head
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let mut body = head.into_body();
        let mut kept = BytesMut::new();
        let mut drained = 0u64;
        loop {
            let frame = tokio::select! {
                biased;
                f = body.frame() => f,
                r = &mut *driver, if !*closed => {
                    *closed = true;
                    if let Err(e) = r {
                        return Err(ClientError::from_hyper(e).into());
                    }
                    continue;
                }
                () = tokio::time::sleep(read_timeout) => {
                    return Err(ClientError::ReadTimeout(read_timeout).into());
                }
            };
            let Some(frame) = frame else { break };
            let frame = frame.map_err(ClientError::from_hyper)?;
            if let Ok(data) = frame.into_data() {
                let room = BODY_HEAD.saturating_sub(kept.len());
                kept.extend_from_slice(&data[..room.min(data.len())]);
                drained += data.len() as u64;
                if drained > MAX_DRAINED {
                    *closed = true;
                    break;
                }
            }
        }
        if !keep {
            *closed = true;
        }
        Ok(Answer {
            status,
            body_head: kept.freeze(),
            sent: sent.unwrap_or(0),
            body_complete: sent.is_some(),
        })
    }

    /// The connection cannot carry another request.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}
