//! Requests to HTTP servers, on hyper's HTTP/1.1 client.
//!
//! | item | job |
//! |---|---|
//! | [`get`] | the blocking GET that `ferry status` and the tests use to read the admin endpoints |
//! | [`Origin`] | where a URL's requests go: scheme, host, port |
//! | [`connection::Connection`] | one connection, plain TCP or TLS, opened under a connect timeout; one request at a time with its body streamed, the answer read under a read timeout |
//! | [`body`] | the streamed request body: bounded, aborted rather than cut short |
//! | [`pool::Pool`] | idle connections kept alive per origin and reused |
//!
//! The TLS client configuration is [`crate::tls::client`]'s; an output builds it from its own
//! parameters and hands it over in [`ConnectOptions`].

pub mod body;
pub mod connection;
pub mod pool;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// How long [`get`] waits for the whole answer.
const GET_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest body [`get`] reads.
const GET_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// How connections are opened.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// DNS, TCP connect and TLS handshake together.
    pub connect_timeout: Duration,
    /// For `https` origins.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Where a URL's requests go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub tls: bool,
    /// As the URL writes it (an IPv6 address in brackets).
    pub host: String,
    pub port: u16,
    /// The URL wrote the port.
    explicit_port: bool,
}

impl Origin {
    /// The origin of an `http` or `https` URL.
    pub fn of(uri: &http::Uri) -> Result<Self, String> {
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => return Err(format!("scheme '{other}' is not http or https")),
            None => return Err("no scheme (http:// or https://)".into()),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or("no host")?;
        let default = if tls { 443 } else { 80 };
        Ok(Self {
            tls,
            host: host.to_string(),
            port: uri.port_u16().unwrap_or(default),
            explicit_port: uri.port_u16().is_some(),
        })
    }

    /// The `Host` header of its requests.
    pub fn host_header(&self) -> String {
        if self.explicit_port {
            format!("{}:{}", self.host, self.port)
        } else {
            self.host.clone()
        }
    }

    /// The host to connect to (an IPv6 address without brackets).
    pub fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    #[error("TLS handshake failed: {0}{hint}", hint = crate::tls::handshake_hint(.0))]
    Tls(#[source] io::Error),
    #[error("an https endpoint needs a TLS configuration")]
    NoTls,
    #[error("{0}")]
    Http(#[source] hyper::Error),
    /// The server closed a kept-alive connection before the request went out: nothing was
    /// sent, and the request may go at once on a new connection.
    #[error("the server closed the kept-alive connection before the request was sent")]
    Stale,
    #[error("no answer within {0:?} (read_timeout)")]
    ReadTimeout(Duration),
    #[error("the server took no more of the request body within {0:?} (read_timeout)")]
    WriteTimeout(Duration),
    #[error("the connection stopped taking the request body")]
    BodyClosed,
}

impl ClientError {
    fn from_hyper(e: hyper::Error) -> Self {
        if e.is_canceled() {
            Self::Stale
        } else {
            Self::Http(e)
        }
    }

    /// Nothing of the request was sent ([`Self::Stale`]).
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::Stale)
    }
}

/// GETs `path` from `addr` (`host:port`, `http://` allowed) and returns the status and body.
/// Blocks the calling thread (the request runs on a thread and runtime of its own, so it may be
/// called from anywhere, an async task included).
pub fn get(addr: &str, path: &str) -> io::Result<(u16, String)> {
    let addr = addr
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let path = path.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            tokio::time::timeout(GET_TIMEOUT, get_async(&addr, &path))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("GET http://{addr}{path}: no answer within {GET_TIMEOUT:?}"),
                    )
                })?
        })
    })
    .join()
    .map_err(|_| io::Error::other("the GET thread panicked"))?
}

async fn get_async(addr: &str, path: &str) -> io::Result<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, addr)
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    let resp = sender.send_request(req).await.map_err(io::Error::other)?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), GET_BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
#[path = "client/tests.rs"]
mod tests;
