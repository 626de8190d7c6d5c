//! What the message-oriented network inputs share (tcp, udp, syslog): the stream and datagram
//! readers, batches by tag, their counters and warnings. An input supplies a [`Handler`] that
//! turns one message into entries; everything else is here.
//!
//! - **Streams** ([`LineInput`], a [`Service`]): a connection is read, cut into messages by
//!   its [`FramingSpec`], each message handed to the handler, and the read's batches committed
//!   before the connection is read again. While an output's buffer is full the connection is
//!   not read (TCP pushes back on the sender); nothing is dropped for lack of room.
//! - **Datagrams** ([`datagrams::receive`]): one message per datagram, batched as they queue.
//!
//! | module | job |
//! |---|---|
//! | this one | handlers, batches by tag, the stream reader |
//! | [`datagrams`] | the datagram socket and its reader |
//! | [`metrics`] | the counters every such input exports |
//! | [`setup`] | what their configurations and start-ups share: `<parse>`, the stream listener |
//! - A message over the length limit is dropped and counted, never held; one the handler cannot
//!   parse is dropped (or kept as unmatched, as the handler decides) and counted. Both are
//!   logged with the peer, rate-limited.

pub mod datagrams;
pub mod metrics;
pub mod setup;

pub use metrics::LineMetrics;

use crate::event::Batch;
use crate::input::net::acl::Acl;
use crate::input::net::resolve::Resolver;
use crate::input::net::stream::{PeerSocket, Read, Stream};
use crate::input::net::{Peer, Service};
use crate::logging::LogLimiter;
use crate::parse::{ParseError, Record};
use crate::router::Routing;
use crate::task::TaskHandle;
use bytes::BytesMut;
use ferry_proto::delimited::{Delimited, Drained, Last};
use ferry_proto::octet_counted::Framing as SyslogFraming;
use ferry_proto::time::EventTime;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// How long a batch waits for room in a full buffer: the input is simply not read meanwhile;
/// only shutdown ends the wait.
const FULL_BUFFER_HOLD: Duration = Duration::from_secs(365 * 86_400);

/// Where a message came from, for the handler's `source_*_key` fields.
#[derive(Clone, Copy)]
pub struct From<'a> {
    /// The peer, as log lines name it (`10.0.0.1:51234`).
    pub peer: &'a (dyn std::fmt::Display + Sync),
    /// Its address (`10.0.0.1`).
    pub address: &'a str,
    /// Its name, when the input asked for it (`source_hostname_key`).
    pub host: Option<&'a str>,
}

/// Entries of one read, by tag.
#[derive(Debug, Default)]
pub struct Batches {
    by_tag: Vec<(Arc<str>, BytesMut, u64)>,
}

impl Batches {
    /// Where entries tagged `tag` go (a handler writes one entry per call): one batch per tag
    /// in a read.
    pub fn entries_for(&mut self, tag: &Arc<str>) -> &mut BytesMut {
        let i = match self
            .by_tag
            .iter()
            .position(|(t, ..)| Arc::ptr_eq(t, tag) || t == tag)
        {
            Some(i) => i,
            None => {
                self.by_tag.push((Arc::clone(tag), BytesMut::new(), 0));
                self.by_tag.len() - 1
            }
        };
        self.by_tag[i].2 += 1;
        &mut self.by_tag[i].1
    }

    fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }

    /// The batches: tag, entries, records.
    pub fn into_parts(self) -> Vec<(Arc<str>, BytesMut, u64)> {
        self.by_tag
    }
}

/// Why a handler did not take a message.
#[derive(Debug)]
pub struct Refused {
    pub error: ParseError,
    /// The handler emitted it anyway (as an unmatched line): counted, not dropped.
    pub kept: bool,
}

/// What an input does with one message.
pub trait Handler: Send + Sync + 'static {
    /// The plugin's type, for log lines and metrics (`tcp`, `udp`, `syslog`).
    fn kind(&self) -> &'static str;
    /// Turns `text` into entries in `out`.
    fn message(
        &self,
        text: &[u8],
        from: From<'_>,
        now: EventTime,
        rec: &mut Record,
        out: &mut Batches,
    ) -> Result<(), Refused>;
}

/// Each message parsed by a `<parse>`, with the source keys, under one tag: the tcp and udp
/// inputs.
#[derive(Debug)]
pub struct Parsed {
    pub kind: &'static str,
    pub tag: Arc<str>,
    pub parse: crate::parse::ParseSetup,
    pub source_hostname_key: Option<String>,
    pub source_address_key: Option<String>,
}

impl Handler for Parsed {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn message(
        &self,
        text: &[u8],
        from: From<'_>,
        now: EventTime,
        rec: &mut Record,
        out: &mut Batches,
    ) -> Result<(), Refused> {
        let time = self
            .parse
            .parse(text, rec)
            .map_err(|error| Refused { error, kept: false })?;
        add_source(
            rec,
            from,
            &self.source_address_key,
            &self.source_hostname_key,
        );
        rec.write_entry(out.entries_for(&self.tag), time.unwrap_or(now));
        Ok(())
    }
}

/// `source_address_key` and `source_hostname_key`, as every message-oriented input adds them.
pub fn add_source(
    rec: &mut Record,
    from: From<'_>,
    address_key: &Option<String>,
    hostname_key: &Option<String>,
) {
    if let Some(key) = address_key {
        rec.str(key, from.address.as_bytes());
    }
    if let (Some(key), Some(host)) = (hostname_key, from.host) {
        rec.str(key, host.as_bytes());
    }
}

/// Rate limits of an input's warnings, one per kind.
#[derive(Debug, Default)]
pub struct Logs {
    oversize: LogLimiter,
    unparsed: LogLimiter,
    denied: LogLimiter,
    framing: LogLimiter,
    commit: LogLimiter,
}

/// How a stream is cut into messages.
#[derive(Debug, Clone)]
pub enum FramingSpec {
    /// At a delimiter (the tcp input).
    Delimited { delimiter: Vec<u8>, limit: usize },
    /// Octet counting or a delimiter, chosen from each connection's first byte (syslog).
    Syslog { delimiter: Vec<u8>, limit: usize },
}

impl FramingSpec {
    fn limit(&self) -> usize {
        match self {
            Self::Delimited { limit, .. } | Self::Syslog { limit, .. } => *limit,
        }
    }
}

enum Framer {
    Delimited(Delimited),
    Syslog(SyslogFraming),
}

/// What the readers of one input share.
pub struct LineInput<H> {
    pub id: String,
    pub handler: H,
    pub label: Option<String>,
    pub routing: Arc<Routing>,
    pub metrics: Arc<LineMetrics>,
    pub framing: FramingSpec,
    pub acl: Acl,
    /// Set when the handler writes the peer's name (`source_hostname_key`).
    pub resolver: Option<Arc<Resolver>>,
    pub logs: Logs,
}

impl<H: Handler> LineInput<H> {
    fn name(&self) -> String {
        format!("{} input {}", self.handler.kind(), self.id)
    }

    /// Hands one message to the handler, counting what it refused.
    fn message(
        &self,
        text: &[u8],
        from: From<'_>,
        now: EventTime,
        rec: &mut Record,
        out: &mut Batches,
    ) {
        if let Err(r) = self.handler.message(text, from, now, rec, out) {
            let m = &self.metrics;
            m.unparsed.fetch_add(1, Ordering::Relaxed);
            if r.kept {
                m.unmatched_kept.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(s) = self.logs.unparsed.allow() {
                let shown = String::from_utf8_lossy(&text[..text.len().min(256)]);
                tracing::warn!(
                    "{}: {} in a message from {}: {}: {shown:?}{s}",
                    self.name(),
                    r.error,
                    from.peer,
                    if r.kept {
                        "kept as unmatched"
                    } else {
                        "dropped"
                    }
                );
            }
        }
    }

    fn oversize(&self, n: u64, peer: &(dyn std::fmt::Display + Sync)) {
        self.metrics.oversize.fetch_add(n, Ordering::Relaxed);
        if let Some(s) = self.logs.oversize.allow() {
            tracing::warn!(
                "{}: {n} message(s) from {peer} longer than message_length_limit ({} bytes): dropped{s}",
                self.name(),
                self.framing.limit()
            );
        }
    }

    /// Commits one read's batches; false when the buffer did not take one (the rest of the
    /// read is counted as not committed too).
    async fn commit(
        &self,
        batches: Batches,
        peer: &(dyn std::fmt::Display + Sync),
        h: &TaskHandle,
    ) -> bool {
        let m = &self.metrics;
        let mut ok = true;
        for (tag, entries, records) in batches.by_tag {
            if !ok {
                m.uncommitted.fetch_add(records, Ordering::Relaxed);
                continue;
            }
            let size = entries.len() as u64;
            let batch = Batch::new(tag, entries.freeze(), records);
            h.set("waiting for commit");
            let (held, result) = self
                .routing
                .emit_holding(
                    self.label.as_deref(),
                    &batch,
                    FULL_BUFFER_HOLD,
                    h.cancel_token(),
                )
                .await;
            m.held_ms
                .fetch_add(held.as_millis() as u64, Ordering::Relaxed);
            match result {
                Ok(_) => {
                    m.emit_records.fetch_add(records, Ordering::Relaxed);
                    m.emit_size.fetch_add(size, Ordering::Relaxed);
                }
                Err(e) => {
                    ok = false;
                    m.uncommitted.fetch_add(records, Ordering::Relaxed);
                    if let Some(s) = self.logs.commit.allow() {
                        tracing::warn!(
                            "{}: {records} messages from {peer} were not committed: {e}{s}",
                            self.name()
                        );
                    }
                }
            }
        }
        ok
    }
}

impl<H: Handler> Service for LineInput<H> {
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
                    "{}: {peer} is not a <client> of <security>: connection closed{s}",
                    self.name()
                );
            }
            return;
        }
        self.read_stream(Stream::new(stream, None), &peer, &h).await;
    }
}

impl<H: Handler> LineInput<H> {
    async fn read_stream<S>(&self, mut io: Stream<S>, peer: &Peer, h: &TaskHandle)
    where
        S: AsyncRead + AsyncWrite + PeerSocket + Unpin + Send,
    {
        let address = peer
            .ip()
            .map_or_else(|| peer.to_string(), |ip| ip.to_string());
        let mut host: Option<Arc<str>> = None;
        let mut framer = match &self.framing {
            FramingSpec::Delimited { delimiter, limit } => {
                Framer::Delimited(Delimited::new(delimiter, *limit))
            }
            FramingSpec::Syslog { delimiter, limit } => {
                Framer::Syslog(SyslogFraming::new(delimiter, *limit))
            }
        };
        let mut rec = Record::new();
        loop {
            h.set("reading");
            let read = match io.fill(None, h).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("{}: connection with {peer} failed: {e}", self.name());
                    return;
                }
            };
            if matches!(read, Read::TimedOut | Read::Cancelled) {
                return;
            }
            if host.is_none()
                && let (Some(ip), Some(r)) = (peer.ip(), &self.resolver)
            {
                host = Some(r.name(ip).await);
            }
            let from = From {
                peer,
                address: &address,
                host: host.as_deref(),
            };
            let now = EventTime::now();
            let mut out = Batches::default();
            let drained: Result<Drained, String> = match &mut framer {
                Framer::Delimited(d) => Ok(d.drain(&mut io.buf, |m| {
                    self.message(m, from, now, &mut rec, &mut out);
                })),
                Framer::Syslog(f) => f
                    .drain(&mut io.buf, |m| {
                        self.message(m, from, now, &mut rec, &mut out)
                    })
                    .map_err(|e| e.to_string()),
            };
            let mut end = read == Read::Eof;
            match drained {
                Ok(d) if d.oversize > 0 => self.oversize(d.oversize, peer),
                Ok(_) => {}
                Err(e) => {
                    self.metrics.broken_framing.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = self.logs.framing.allow() {
                        tracing::warn!("{}: from {peer}: {e}; connection closed{s}", self.name());
                    }
                    end = true;
                }
            }
            if read == Read::Eof
                && let Framer::Delimited(d) = &mut framer
            {
                match d.finish(&mut io.buf) {
                    Last::Message(m) => self.message(&m, from, now, &mut rec, &mut out),
                    Last::Oversize => self.oversize(1, peer),
                    Last::Nothing => {}
                }
            }
            if !out.is_empty() && !self.commit(out, peer, h).await {
                return;
            }
            if end {
                return;
            }
        }
    }
}
