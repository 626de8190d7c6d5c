//! One tcp input connection: read, cut messages at the delimiter, parse them into one batch per
//! read, and commit the batch before reading on.

use super::Shared;
use crate::event::Batch;
use crate::input::net::stream::{PeerSocket, Read, Stream};
use crate::input::net::{Peer, Service};
use crate::parse::Record;
use crate::task::TaskHandle;
use bytes::BytesMut;
use ferry_proto::delimited::{Delimited, Last};
use ferry_proto::time::EventTime;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// How long a batch waits for room in a full buffer: the connection is simply not read
/// meanwhile (TCP pushes back on the sender); only shutdown ends the wait.
const FULL_BUFFER_HOLD: Duration = Duration::from_secs(365 * 86_400);

impl Service for Shared {
    fn accepted(&self, peer: &Peer) {
        if let (Some(ip), Some(resolver)) = (peer.ip(), &self.resolver) {
            resolver.prefetch(ip);
        }
    }

    async fn serve<S>(self: Arc<Self>, stream: S, peer: Peer, h: TaskHandle, _deadline: Instant)
    where
        S: AsyncRead + AsyncWrite + PeerSocket + Unpin + Send + 'static,
    {
        if !self.acl.allows(peer.ip()) {
            self.metrics.denied.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = self.logs.denied.allow() {
                tracing::warn!(
                    "tcp input {}: {peer} is not a <client> of <security>: connection closed{s}",
                    self.id
                );
            }
            return;
        }
        let mut conn = Conn::new(Arc::clone(&self), peer);
        conn.run(Stream::new(stream, None), &h).await;
    }
}

/// Messages of one read, as entries.
#[derive(Default)]
struct Built {
    entries: BytesMut,
    records: u64,
}

struct Conn {
    shared: Arc<Shared>,
    peer: Peer,
    address: Arc<str>,
    /// The peer's name for `source_hostname_key`, looked up once.
    host: Option<Arc<str>>,
    rec: Record,
}

impl Conn {
    fn new(shared: Arc<Shared>, peer: Peer) -> Self {
        let address = peer
            .ip()
            .map_or_else(|| peer.to_string(), |ip| ip.to_string())
            .into();
        Self {
            shared,
            peer,
            address,
            host: None,
            rec: Record::new(),
        }
    }

    async fn run<S>(&mut self, mut io: Stream<S>, h: &TaskHandle)
    where
        S: AsyncRead + AsyncWrite + PeerSocket + Unpin + Send,
    {
        let cfg = &self.shared.config;
        let mut framer = Delimited::new(&cfg.delimiter, cfg.message_length_limit);
        loop {
            h.set("reading");
            let read = match io.fill(None, h).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(
                        "tcp input {}: connection with {} failed: {e}",
                        self.shared.id,
                        self.peer
                    );
                    return;
                }
            };
            if read == Read::Data && self.shared.config.source_hostname_key.is_some() {
                self.lookup_host().await;
            }
            let now = EventTime::now();
            let mut built = Built::default();
            let oversize = match read {
                Read::Data => {
                    framer
                        .drain(&mut io.buf, |m| self.message(m, now, &mut built))
                        .oversize
                }
                Read::Eof => match framer.finish(&mut io.buf) {
                    Last::Message(m) => {
                        if self.shared.config.source_hostname_key.is_some() {
                            self.lookup_host().await;
                        }
                        self.message(&m, now, &mut built);
                        0
                    }
                    Last::Oversize => 1,
                    Last::Nothing => 0,
                },
                Read::TimedOut | Read::Cancelled => return,
            };
            if oversize > 0 {
                self.oversize(oversize);
            }
            if !self.commit(built, h).await || read == Read::Eof {
                return;
            }
        }
    }

    async fn lookup_host(&mut self) {
        if self.host.is_some() {
            return;
        }
        let name = match (self.peer.ip(), &self.shared.resolver) {
            (Some(ip), Some(r)) => r.name(ip).await,
            _ => Arc::clone(&self.address),
        };
        self.host = Some(name);
    }

    /// Parses one message into `built` (or counts it as unparsed).
    fn message(&mut self, text: &[u8], now: EventTime, built: &mut Built) {
        let cfg = &self.shared.config;
        match cfg.parse.parse(text, &mut self.rec) {
            Ok(time) => {
                if let Some(key) = &cfg.source_address_key {
                    self.rec.str(key, self.address.as_bytes());
                }
                if let (Some(key), Some(host)) = (&cfg.source_hostname_key, &self.host) {
                    self.rec.str(key, host.as_bytes());
                }
                self.rec
                    .write_entry(&mut built.entries, time.unwrap_or(now));
                built.records += 1;
            }
            Err(e) => {
                self.shared.metrics.unparsed.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = self.shared.logs.unparsed.allow() {
                    let shown = String::from_utf8_lossy(&text[..text.len().min(256)]);
                    tracing::warn!(
                        "tcp input {}: {e} in a message from {}: dropped: {shown:?}{s}",
                        self.shared.id,
                        self.peer
                    );
                }
            }
        }
    }

    fn oversize(&self, n: u64) {
        self.shared.metrics.oversize.fetch_add(n, Ordering::Relaxed);
        if let Some(s) = self.shared.logs.oversize.allow() {
            tracing::warn!(
                "tcp input {}: {n} message(s) from {} longer than message_length_limit ({} bytes): dropped{s}",
                self.shared.id,
                self.peer,
                self.shared.config.message_length_limit
            );
        }
    }

    /// Commits one read's messages; false when the buffer did not take them (the connection
    /// ends).
    async fn commit(&self, built: Built, h: &TaskHandle) -> bool {
        if built.records == 0 {
            return true;
        }
        let m = &self.shared.metrics;
        let size = built.entries.len() as u64;
        let batch = Batch::new(
            Arc::clone(&self.shared.tag),
            built.entries.freeze(),
            built.records,
        );
        h.set("waiting for commit");
        let (held, result) = self
            .shared
            .routing
            .emit_holding(
                self.shared.config.label.as_deref(),
                &batch,
                FULL_BUFFER_HOLD,
                h.cancel_token(),
            )
            .await;
        m.held_ms
            .fetch_add(held.as_millis() as u64, Ordering::Relaxed);
        match result {
            Ok(_) => {
                m.emit_records.fetch_add(batch.records, Ordering::Relaxed);
                m.emit_size.fetch_add(size, Ordering::Relaxed);
                true
            }
            Err(e) => {
                m.uncommitted.fetch_add(batch.records, Ordering::Relaxed);
                if let Some(s) = self.shared.logs.commit.allow() {
                    tracing::warn!(
                        "tcp input {}: {} messages from {} were not committed: {e}; connection closed{s}",
                        self.shared.id,
                        batch.records,
                        self.peer
                    );
                }
                false
            }
        }
    }
}
