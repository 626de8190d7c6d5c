//! The counting receiver: a Forward server that accepts every mode (Message, Forward,
//! PackedForward, CompressedPackedForward; decoded by ferry-proto), runs the shared-key handshake
//! when given a key, acks requests that carry `chunk`, answers UDP heartbeats on the same port,
//! and counts the `(stream, seq)` of every record (see [`crate::seq`]).
//!
//! An ack is sent once the request's records are counted: for the sender this is a server that
//! commits instantly. Frames are capped at [`MAX_FRAME_BYTES`]; a frame that is not a request
//! closes the connection (as ferry does); a record without sequence numbers is counted in
//! `unnumbered`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_proto::ack::encode_ack;
use ferry_proto::handshake::{self, Ping, Pong};
use ferry_proto::{Limits, Request, entries, heartbeat};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use crate::conn::{ConnError, ValueReader};
use crate::record::seq_from_msgpack;
use crate::seq::SeqCounter;

/// Largest request accepted.
pub const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// Counters of a receiver, shared with whoever reads them while it runs.
#[derive(Debug, Default)]
pub struct ReceiverState {
    pub seq: Mutex<SeqCounter>,
    pub events: AtomicU64,
    /// Bytes of the (decompressed) entry streams received.
    pub entry_bytes: AtomicU64,
    pub requests: AtomicU64,
    pub unnumbered: AtomicU64,
    pub connections: AtomicU64,
    pub heartbeats: AtomicU64,
}

impl ReceiverState {
    /// A copy of the sequence counter.
    pub fn snapshot(&self) -> SeqCounter {
        self.seq.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Distinct records on the given streams.
    pub fn distinct_of(&self, streams: impl IntoIterator<Item = u32>) -> u64 {
        self.seq.lock().map(|s| s.distinct_of(streams)).unwrap_or(0)
    }
}

/// How the receiver listens.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// `HOST:PORT` (port 0: any free port).
    pub bind: String,
    pub shared_key: Option<String>,
    pub self_hostname: String,
}

/// Why a connection ended badly. The connection is closed; the receiver goes on.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("bind {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Conn(#[from] ConnError),
    #[error("request refused: {0}")]
    Request(#[from] ferry_proto::RequestError),
    #[error("handshake: {0}")]
    Handshake(#[from] handshake::HandshakeError),
    #[error("PING refused: {0}")]
    Ping(#[from] handshake::PingRejection),
}

impl ReceiveError {
    /// True when the receiver cannot run at all.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ReceiveError::Bind { .. })
    }
}

/// A running receiver; stopped when dropped.
pub struct Receiver {
    pub port: u16,
    pub state: Arc<ReceiverState>,
    tasks: Vec<JoinHandle<()>>,
}

impl Receiver {
    /// Bind TCP and UDP on `cfg.bind` and start serving.
    pub async fn start(cfg: ReceiverConfig) -> Result<Receiver, ReceiveError> {
        let bind_err = |source| ReceiveError::Bind {
            addr: cfg.bind.clone(),
            source,
        };
        let listener = TcpListener::bind(&cfg.bind).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let udp = UdpSocket::bind(addr).await.map_err(bind_err)?;
        let state = Arc::new(ReceiverState::default());
        let st = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            let cfg = Arc::new(cfg);
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((sock, _)) = accepted else { continue };
                        let (st, cfg) = (Arc::clone(&st), Arc::clone(&cfg));
                        st.connections.fetch_add(1, Ordering::Relaxed);
                        conns.spawn(async move {
                            if let Err(e) = serve(sock, &cfg, &st).await {
                                eprintln!("receiver: connection closed: {e}");
                            }
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        let st = Arc::clone(&state);
        let beats = tokio::spawn(async move {
            let mut buf = [0u8; heartbeat::MAX_DATAGRAM];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                st.heartbeats.fetch_add(1, Ordering::Relaxed);
                let _ = udp.send_to(heartbeat::reply(&buf[..n]), from).await;
            }
        });
        Ok(Receiver {
            port: addr.port(),
            state,
            tasks: vec![accept, beats],
        })
    }

    /// Stop accepting and close every connection.
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn server_handshake(
    sock: &mut TcpStream,
    key: &str,
    self_hostname: &str,
) -> Result<(), ReceiveError> {
    let nonce = handshake::random_nonce();
    sock.write_all(&handshake::encode_helo(&nonce, b"", true))
        .await
        .map_err(ConnError::Io)?;
    let frame = ValueReader::new(&mut *sock, 64 * 1024).expect().await?;
    let reply = match Ping::parse(&frame) {
        Err(e) => Err((Pong::failure(e.reason()), ReceiveError::from(e))),
        Ok(ping) => match handshake::check_ping(&ping, &nonce, b"", key.as_bytes(), None) {
            Err(r) => Err((Pong::failure(r.reason()), ReceiveError::from(r))),
            Ok(()) => {
                let digest = handshake::shared_key_digest(
                    &ping.shared_key_salt,
                    self_hostname.as_bytes(),
                    &nonce,
                    key.as_bytes(),
                );
                Ok(Pong::success(self_hostname.as_bytes(), digest.as_bytes()))
            }
        },
    };
    match reply {
        Ok(pong) => {
            sock.write_all(&pong.encode())
                .await
                .map_err(ConnError::Io)?;
            Ok(())
        }
        Err((pong, e)) => {
            let _ = sock.write_all(&pong.encode()).await;
            Err(e)
        }
    }
}

async fn serve(
    mut sock: TcpStream,
    cfg: &ReceiverConfig,
    st: &ReceiverState,
) -> Result<(), ReceiveError> {
    sock.set_nodelay(true).map_err(ConnError::Io)?;
    if let Some(key) = &cfg.shared_key {
        server_handshake(&mut sock, key, &cfg.self_hostname).await?;
    }
    let (rd, mut wr) = sock.into_split();
    let mut frames = ValueReader::new(rd, MAX_FRAME_BYTES);
    let limits = Limits::default();
    while let Some(frame) = frames.next().await? {
        let batch = match Request::parse(frame, &limits) {
            Ok(Request::Nil) => continue,
            Ok(Request::Events(b)) => b,
            Err(e) if e.can_continue() => {
                eprintln!("receiver: request skipped: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        count(&batch.entries, st);
        st.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(chunk) = &batch.options.chunk {
            wr.write_all(&encode_ack(chunk))
                .await
                .map_err(ConnError::Io)?;
        }
    }
    Ok(())
}

fn count(stream: &Bytes, st: &ReceiverState) {
    let mut seqs = Vec::new();
    let mut unnumbered = 0u64;
    for entry in entries::iter(stream) {
        match entry.map(|e| seq_from_msgpack(e.record)) {
            Ok(Some(s)) => seqs.push(s),
            Ok(None) | Err(_) => unnumbered += 1,
        }
    }
    if let Ok(mut c) = st.seq.lock() {
        for (stream, seq) in &seqs {
            c.record(*stream, *seq);
        }
    }
    st.events.fetch_add(seqs.len() as u64, Ordering::Relaxed);
    st.entry_bytes
        .fetch_add(stream.len() as u64, Ordering::Relaxed);
    st.unnumbered.fetch_add(unnumbered, Ordering::Relaxed);
}
