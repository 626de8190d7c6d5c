//! What the message-oriented network inputs share (tcp, udp, syslog): the stream and datagram
//! readers, batches by tag, their counters and warnings. An input supplies a [`Handler`] that
//! turns one message into entries; everything else is here.
//!
//! - **Streams** ([`StreamInput`], a [`Service`]): a connection is read, cut into messages by
//!   its [`Framing`], each message handed to the handler, and the read's batches committed
//!   before the connection is read again. While an output's buffer is full the connection is
//!   not read (TCP pushes back on the sender); nothing is dropped for lack of room.
//! - **Datagrams** ([`receive_datagrams`]): one message per datagram, batched as they queue.
//! - A message over the length limit is dropped and counted, never held; one the handler cannot
//!   parse is dropped (or kept as unmatched, as the handler decides) and counted. Both are
//!   logged with the peer, rate-limited.

use crate::event::Batch;
use crate::input::net::acl::Acl;
use crate::input::net::resolve::{LookupCounters, Resolver};
use crate::input::net::stream::{PeerSocket, Read, Stream};
use crate::input::net::{NetMetrics, Peer, Service};
use crate::logging::LogLimiter;
use crate::metrics::names::{INPUT_EMIT_RECORDS, INPUT_EMIT_SIZE, INPUT_NUM_RECORDS};
use crate::metrics::{Exposition, load};
use crate::parse::{ParseError, Record};
use crate::router::Routing;
use crate::task::TaskHandle;
use bytes::BytesMut;
use ferry_proto::delimited::{Delimited, Drained, Last};
use ferry_proto::octet_counted::Framing as SyslogFraming;
use ferry_proto::time::EventTime;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// How long a batch waits for room in a full buffer: the input is simply not read meanwhile;
/// only shutdown ends the wait.
const FULL_BUFFER_HOLD: Duration = Duration::from_secs(365 * 86_400);
/// Datagrams taken into one batch at most.
pub const MAX_DATAGRAMS: usize = 1024;

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
    /// Where entries tagged `tag` go (a handler writes one entry and calls [`Self::added`]).
    pub fn entries(&mut self, tag: &str) -> &mut BytesMut {
        let i = match self.by_tag.iter().position(|(t, ..)| &**t == tag) {
            Some(i) => i,
            None => {
                self.by_tag.push((tag.into(), BytesMut::new(), 0));
                self.by_tag.len() - 1
            }
        };
        self.by_tag[i].2 += 1;
        &mut self.by_tag[i].1
    }

    /// The same with a tag shared by every message (no allocation per read).
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

/// Counters of one message-oriented input.
#[derive(Debug, Default)]
pub struct LineMetrics {
    pub net: Arc<NetMetrics>,
    pub lookups: Arc<LookupCounters>,
    pub emit_records: AtomicU64,
    pub emit_size: AtomicU64,
    /// Messages over the length limit, dropped.
    pub oversize: AtomicU64,
    /// Messages the handler did not parse (dropped unless kept as unmatched).
    pub unparsed: AtomicU64,
    /// Of those, kept as unmatched lines.
    pub unmatched_kept: AtomicU64,
    /// Streams whose framing broke (a bad octet count): closed.
    pub broken_framing: AtomicU64,
    /// Connections from peers no `<client>` allows, closed.
    pub denied: AtomicU64,
    /// Messages the buffer did not take (an output refused them, or ferry stopped while the
    /// buffer was full): lost.
    pub uncommitted: AtomicU64,
    /// Milliseconds the input was not read because an output's buffer was full.
    pub held_ms: AtomicU64,
    /// Datagrams received (datagram inputs).
    pub datagrams: AtomicU64,
    /// The datagram socket's inode, to find its kernel drop counter.
    pub udp_inode: OnceLock<u64>,
}

impl LineMetrics {
    pub fn export(&self, id: &str, kind: &str, out: &mut Exposition) {
        use crate::metrics::names::{
            FERRY_INPUT_HELD_SECONDS, FERRY_NETWORK_INPUT_CONNECTIONS, FERRY_NETWORK_INPUT_REFUSED,
            FERRY_UDP_INPUT_DATAGRAMS, FERRY_UDP_INPUT_KERNEL_DROPS, dropped,
        };
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", kind)];
        out.counter(INPUT_EMIT_RECORDS, &labels, load(&self.emit_records));
        out.counter(INPUT_EMIT_SIZE, &labels, load(&self.emit_size));
        out.counter(INPUT_NUM_RECORDS, &labels, load(&self.emit_records));
        out.counter_seconds(FERRY_INPUT_HELD_SECONDS, &labels, load(&self.held_ms));
        out.dropped(
            id,
            kind,
            dropped::MESSAGE_LENGTH_LIMIT,
            load(&self.oversize),
        );
        out.dropped(
            id,
            kind,
            dropped::UNPARSED_LINE,
            load(&self.unparsed).saturating_sub(load(&self.unmatched_kept)),
        );
        out.dropped(id, kind, dropped::NOT_COMMITTED, load(&self.uncommitted));
        if let Some(inode) = self.udp_inode.get() {
            out.counter(FERRY_UDP_INPUT_DATAGRAMS, &labels, load(&self.datagrams));
            if let Some(drops) = kernel_drops(*inode) {
                out.counter(FERRY_UDP_INPUT_KERNEL_DROPS, &labels, drops);
            }
        } else {
            out.gauge(
                FERRY_NETWORK_INPUT_CONNECTIONS,
                &labels,
                load(&self.net.connections_active) as f64,
            );
            for (reason, n) in [
                ("denied", load(&self.denied)),
                ("broken_framing", load(&self.broken_framing)),
                ("tls_handshake", load(&self.net.tls_failures)),
                (
                    "max_connections_wait",
                    load(&self.net.connection_limit_waits),
                ),
                ("fd_exhausted", load(&self.net.fd_exhaustion_episodes)),
            ] {
                let l: [(&str, &str); 3] = [("plugin_id", id), ("type", kind), ("reason", reason)];
                out.counter(FERRY_NETWORK_INPUT_REFUSED, &l, n);
            }
        }
    }
}

/// The kernel's count of datagrams dropped for the socket with `inode` (the last column of
/// its line in `/proc/net/udp` or `/proc/net/udp6`).
fn kernel_drops(inode: u64) -> Option<u64> {
    let inode = inode.to_string();
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(9) == Some(&inode.as_str()))
                    .then(|| fields.last().and_then(|d| d.parse().ok()))
                    .flatten()
            })
        })
}

/// The inode of a socket, from `/proc/self/fd` (`socket:[12345]`).
pub fn socket_inode(socket: &std::net::UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
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

/// Receives datagrams on `socket` until cancelled: one message each (after `chomp`, which
/// removes one trailing "\r\n", "\n" or "\r" when set), batched as they queue.
pub async fn receive_datagrams<H: Handler>(
    input: Arc<LineInput<H>>,
    socket: tokio::net::UdpSocket,
    chomp: bool,
    h: TaskHandle,
) {
    let limit = input.framing.limit();
    // One byte more than the limit: a datagram that fills it is over the limit.
    let mut buf = vec![0u8; limit + 1];
    let mut datagrams: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
    let mut rec = Record::new();
    loop {
        h.set("receiving");
        let first = tokio::select! {
            () = h.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        match first {
            Ok((n, from)) => datagrams.push((buf[..n].to_vec(), from)),
            Err(e) => {
                tracing::debug!("{}: receive: {e}", input.name());
                continue;
            }
        }
        while datagrams.len() < MAX_DATAGRAMS {
            match socket.try_recv_from(&mut buf) {
                Ok((n, from)) => datagrams.push((buf[..n].to_vec(), from)),
                Err(_) => break,
            }
        }
        input
            .metrics
            .datagrams
            .fetch_add(datagrams.len() as u64, Ordering::Relaxed);
        let now = EventTime::now();
        let mut out = Batches::default();
        for (data, peer) in datagrams.drain(..) {
            if data.len() > limit {
                input.oversize(1, &peer);
                continue;
            }
            let mut text: &[u8] = &data;
            if chomp {
                text = text
                    .strip_suffix(b"\r\n")
                    .or_else(|| text.strip_suffix(b"\n"))
                    .or_else(|| text.strip_suffix(b"\r"))
                    .unwrap_or(text);
            }
            let host = match &input.resolver {
                Some(r) => Some(r.name(peer.ip()).await),
                None => None,
            };
            let address = peer.ip().to_string();
            let from = From {
                peer: &peer,
                address: &address,
                host: host.as_deref(),
            };
            input.message(text, from, now, &mut rec, &mut out);
        }
        if !out.is_empty() {
            let _ = input.commit(out, &"datagrams", &h).await;
        }
    }
}
