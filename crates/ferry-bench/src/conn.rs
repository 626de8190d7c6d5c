//! Client connections: TCP, optionally TLS (rustls), optionally the shared-key handshake
//! (HELO → PING → PONG, see ferry-proto's `handshake` module), and reading one msgpack value at a
//! time from the server.

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ferry_proto::frame::{FrameDecoder, FrameError};
use ferry_proto::handshake::{self, HandshakeError, Ping, PongRejection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest reply a client reads (HELO, PONG, ack).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// A byte stream to a Forward server.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a connection could not be set up or broke.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connect to {to}: {source}")]
    Connect {
        to: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS CA file {path}: {what}")]
    TlsCa { path: String, what: String },
    #[error("TLS with {to}: {source}")]
    Tls {
        to: String,
        #[source]
        source: std::io::Error,
    },
    #[error("I/O with the server: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("bad frame from the server: {0}")]
    Frame(#[from] FrameError),
    #[error("handshake message: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("handshake refused: {0}")]
    Pong(#[from] PongRejection),
}

impl ConnError {
    /// True when trying again later may succeed (the server is down or went away).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnError::Connect { .. } | ConnError::Io(_) | ConnError::Closed
        )
    }
}

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct Target {
    /// `HOST:PORT`.
    pub to: String,
    /// A CA certificate (PEM) to verify the server with; TLS is used when set.
    pub tls_ca: Option<std::path::PathBuf>,
    /// The shared key of the handshake; the handshake runs when set.
    pub shared_key: Option<String>,
    /// The client's hostname in the PING.
    pub self_hostname: String,
}

/// Reads one msgpack value at a time.
pub struct ValueReader<R> {
    rd: R,
    buf: BytesMut,
    dec: FrameDecoder,
}

impl<R: AsyncRead + Unpin> ValueReader<R> {
    pub fn new(rd: R, max_bytes: usize) -> Self {
        ValueReader {
            rd,
            buf: BytesMut::with_capacity(8 * 1024),
            dec: FrameDecoder::new(max_bytes),
        }
    }

    /// The next complete value; `Ok(None)` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ConnError> {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf)? {
                return Ok(Some(f));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnError::Closed)
                };
            }
        }
    }

    /// The next value, an error at the end of stream.
    pub async fn expect(&mut self) -> Result<Bytes, ConnError> {
        self.next().await?.ok_or(ConnError::Closed)
    }

    /// The reader back.
    pub fn into_inner(self) -> R {
        self.rd
    }
}

fn tls_connector(ca: &Path) -> Result<tokio_rustls::TlsConnector, ConnError> {
    let bad = |what: String| ConnError::TlsCa {
        path: ca.display().to_string(),
        what,
    };
    let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn server_name(to: &str) -> Result<rustls::pki_types::ServerName<'static>, ConnError> {
    let host = to.rsplit_once(':').map_or(to, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| ConnError::Tls {
        to: to.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })
}

/// Connect, wrap in TLS when asked, run the handshake when asked.
pub async fn connect(target: &Target) -> Result<Box<dyn Io>, ConnError> {
    let tcp = TcpStream::connect(&target.to)
        .await
        .map_err(|source| ConnError::Connect {
            to: target.to.clone(),
            source,
        })?;
    tcp.set_nodelay(true)?;
    let mut io: Box<dyn Io> = match &target.tls_ca {
        Some(ca) => {
            let connector = tls_connector(ca)?;
            let tls = connector
                .connect(server_name(&target.to)?, tcp)
                .await
                .map_err(|source| ConnError::Tls {
                    to: target.to.clone(),
                    source,
                })?;
            Box::new(tls)
        }
        None => Box::new(tcp),
    };
    if let Some(key) = &target.shared_key {
        client_handshake(&mut io, key, &target.self_hostname).await?;
    }
    Ok(io)
}

/// The client side of the shared-key handshake on `io`.
pub async fn client_handshake(
    io: &mut Box<dyn Io>,
    key: &str,
    self_hostname: &str,
) -> Result<(), ConnError> {
    let mut reader = ValueReader::new(&mut *io, MAX_REPLY_BYTES);
    let helo = handshake::parse_helo(&reader.expect().await?)?;
    drop(reader);
    let salt = handshake::random_salt_hex();
    let password = if helo.auth.is_empty() {
        String::new()
    } else {
        handshake::password_digest(&helo.auth, b"", b"")
    };
    let ping = Ping {
        hostname: Bytes::copy_from_slice(self_hostname.as_bytes()),
        shared_key_salt: Bytes::copy_from_slice(salt.as_bytes()),
        shared_key_hexdigest: handshake::shared_key_digest(
            salt.as_bytes(),
            self_hostname.as_bytes(),
            &helo.nonce,
            key.as_bytes(),
        )
        .into(),
        username: Bytes::new(),
        password_hexdigest: password.into(),
    };
    io.write_all(&ping.encode()).await?;
    let mut reader = ValueReader::new(&mut *io, MAX_REPLY_BYTES);
    let pong = handshake::parse_pong(&reader.expect().await?)?;
    handshake::check_pong(
        &pong,
        self_hostname.as_bytes(),
        salt.as_bytes(),
        &helo.nonce,
        key.as_bytes(),
    )?;
    Ok(())
}
