//! `@type udp` (Fluentd's in_udp): one message per datagram, parsed by the `<parse>`, tagged
//! `tag`.
//!
//! - Datagrams are received in batches: after one arrives, those already queued are taken too
//!   (up to [`MAX_BATCH`]), parsed, and committed as one batch.
//! - A datagram longer than `message_length_limit` (default 4096, as Fluentd's) is dropped and
//!   counted; Fluentd cuts it to the limit and parses the piece.
//! - UDP has no flow control: while the buffer is full ferry does not receive, the kernel's
//!   receive buffer (`receive_buffer_size`) fills, and the kernel drops what does not fit. Those
//!   drops are read from the kernel's counter for the socket (`/proc/net/udp`, `/proc/net/udp6`)
//!   and exported as `ferry_udp_input_kernel_drops_total`.

use crate::event::Batch;
use crate::input::net::listen;
use crate::input::net::resolve::{LookupCounters, Resolver};
use crate::input::{InputHandle, Start};
use crate::logging::LogLimiter;
use crate::metrics::names::{INPUT_EMIT_RECORDS, INPUT_EMIT_SIZE, INPUT_NUM_RECORDS};
use crate::metrics::{Exposition, load};
use crate::parse::{ParseSetup, Record};
use crate::router::Routing;
use crate::task::TaskHandle;
use bytes::BytesMut;
use ferry_config::Section;
use ferry_proto::time::EventTime;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Datagrams taken into one batch at most.
pub const MAX_BATCH: usize = 1024;
/// Fluentd's default `message_length_limit`.
pub const DEFAULT_MESSAGE_LENGTH_LIMIT: usize = 4096;
/// How long a reverse lookup for `source_hostname_key` may hold a batch.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a batch waits for room in a full buffer (only shutdown ends it sooner).
const FULL_BUFFER_HOLD: Duration = Duration::from_secs(365 * 86_400);

/// A parsed `<source> @type udp`.
#[derive(Debug, Clone)]
pub struct UdpInputConfig {
    pub tag: String,
    pub label: Option<String>,
    pub bind: String,
    pub port: u16,
    pub parse: ParseSetup,
    pub message_length_limit: usize,
    pub remove_newline: bool,
    pub receive_buffer_size: Option<usize>,
    pub source_hostname_key: Option<String>,
    pub source_address_key: Option<String>,
}

impl UdpInputConfig {
    pub fn from_section(s: &Section<'_>) -> Self {
        let parse = match s.child("parse") {
            Some(p) => {
                let setup = ParseSetup::from_section(&p);
                if setup.multiline.is_some() {
                    p.error(
                        Some("@type"),
                        "multiline assembles lines of a file; the udp input parses each datagram alone",
                    );
                }
                p.finish();
                setup
            }
            None => {
                s.error(None, "<parse> section is required.");
                ParseSetup::plain(crate::parse::Parser::None {
                    key: "message".into(),
                })
            }
        };
        let limit = s
            .opt_size("message_length_limit")
            .or_else(|| s.opt_size("body_size_limit"))
            .map_or(DEFAULT_MESSAGE_LENGTH_LIMIT, |b| {
                usize::try_from(b.0).unwrap_or(usize::MAX)
            });
        if !(1..=65_507).contains(&limit) {
            s.error(
                Some("message_length_limit"),
                "message_length_limit must be 1 to 65507 bytes (the largest UDP payload)",
            );
        }
        let _ = s.opt_duration("blocking_timeout");
        s.no_effect(
            "blocking_timeout",
            "the socket is read by its own task, which waits for datagrams",
        );
        Self {
            tag: s.required_str("tag").unwrap_or_default(),
            label: s.label().map(str::to_string),
            bind: s.str_or("bind", "0.0.0.0"),
            port: u16::try_from(s.u64_or("port", 5160)).unwrap_or_else(|_| {
                s.error(Some("port"), "port must be at most 65535");
                5160
            }),
            parse,
            message_length_limit: limit.clamp(1, 65_507),
            remove_newline: s.bool_or("remove_newline", true),
            receive_buffer_size: s
                .opt_size("receive_buffer_size")
                .map(|b| usize::try_from(b.0).unwrap_or(usize::MAX)),
            source_hostname_key: s
                .str("source_hostname_key")
                .or_else(|| s.str("source_host_key")),
            source_address_key: s.str("source_address_key"),
        }
    }
}

/// Counters of one udp input.
#[derive(Debug, Default)]
pub struct UdpInputMetrics {
    pub lookups: Arc<LookupCounters>,
    pub emit_records: AtomicU64,
    pub emit_size: AtomicU64,
    pub datagrams: AtomicU64,
    pub oversize: AtomicU64,
    pub unparsed: AtomicU64,
    pub uncommitted: AtomicU64,
    pub held_ms: AtomicU64,
    /// The socket's inode, to find its kernel drop counter.
    inode: OnceLock<u64>,
}

impl UdpInputMetrics {
    pub fn export(&self, id: &str, out: &mut Exposition) {
        use crate::metrics::names::{
            FERRY_INPUT_HELD_SECONDS, FERRY_UDP_INPUT_DATAGRAMS, FERRY_UDP_INPUT_KERNEL_DROPS,
            dropped,
        };
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "udp")];
        out.counter(INPUT_EMIT_RECORDS, &labels, load(&self.emit_records));
        out.counter(INPUT_EMIT_SIZE, &labels, load(&self.emit_size));
        out.counter(INPUT_NUM_RECORDS, &labels, load(&self.emit_records));
        out.counter(FERRY_UDP_INPUT_DATAGRAMS, &labels, load(&self.datagrams));
        out.counter_seconds(FERRY_INPUT_HELD_SECONDS, &labels, load(&self.held_ms));
        out.dropped(
            id,
            "udp",
            dropped::MESSAGE_LENGTH_LIMIT,
            load(&self.oversize),
        );
        out.dropped(id, "udp", dropped::UNPARSED_LINE, load(&self.unparsed));
        out.dropped(id, "udp", dropped::NOT_COMMITTED, load(&self.uncommitted));
        if let Some(drops) = self.inode.get().and_then(|i| kernel_drops(*i)) {
            out.counter(FERRY_UDP_INPUT_KERNEL_DROPS, &labels, drops);
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
fn socket_inode(socket: &std::net::UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[derive(Debug, Default)]
struct Logs {
    oversize: LogLimiter,
    unparsed: LogLimiter,
    commit: LogLimiter,
}

struct Receiver {
    id: String,
    config: UdpInputConfig,
    routing: Arc<Routing>,
    metrics: Arc<UdpInputMetrics>,
    resolver: Option<Arc<Resolver>>,
    socket: tokio::net::UdpSocket,
    tag: Arc<str>,
    rec: Record,
    logs: Logs,
}

/// Binds the socket and spawns its receiver; returns the input's counters.
pub async fn start(
    id: String,
    config: UdpInputConfig,
    start: Start<'_>,
) -> anyhow::Result<Arc<UdpInputMetrics>> {
    let name = format!("udp input {id}");
    let metrics = match start.previous {
        Some(InputHandle::Udp(m)) => Arc::clone(m),
        _ => Arc::new(UdpInputMetrics::default()),
    };
    let addr = listen::resolve_bind(&name, &config.bind, config.port).await?;
    let socket = start.sockets.udp(start.owner, &name, addr, "messages")?;
    if let Some(size) = config.receive_buffer_size {
        socket2::SockRef::from(&socket)
            .set_recv_buffer_size(size)
            .map_err(|e| anyhow::anyhow!("{name}: receive_buffer_size {size}: {e}"))?;
    }
    if let Some(inode) = socket_inode(&socket) {
        let _ = metrics.inode.set(inode);
    }
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    let local = socket.local_addr()?;
    tracing::info!(
        "listening udp socket bind=\"{}\" port={} ({name})",
        config.bind,
        local.port()
    );
    let resolver = config.source_hostname_key.is_some().then(|| {
        Arc::new(Resolver::new(
            RESOLVE_TIMEOUT,
            Arc::clone(&metrics.lookups),
            start.tasks.work.clone(),
            name.clone(),
        ))
    });
    let receiver = Receiver {
        id,
        tag: config.tag.as_str().into(),
        config,
        routing: Arc::clone(start.routing),
        metrics: Arc::clone(&metrics),
        resolver,
        socket,
        rec: Record::new(),
        logs: Logs::default(),
    };
    start
        .tasks
        .listen
        .spawn(format!("{name} receive {local}"), move |h| receiver.run(h));
    Ok(metrics)
}

impl Receiver {
    async fn run(mut self, h: TaskHandle) {
        // One byte more than the limit: a datagram that fills it is over the limit.
        let mut buf = vec![0u8; self.config.message_length_limit + 1];
        let mut datagrams: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
        loop {
            h.set("receiving");
            let first = tokio::select! {
                () = h.cancelled() => return,
                r = self.socket.recv_from(&mut buf) => r,
            };
            match first {
                Ok((n, from)) => datagrams.push((buf[..n].to_vec(), from)),
                Err(e) => {
                    tracing::debug!("udp input {}: receive: {e}", self.id);
                    continue;
                }
            }
            while datagrams.len() < MAX_BATCH {
                match self.socket.try_recv_from(&mut buf) {
                    Ok((n, from)) => datagrams.push((buf[..n].to_vec(), from)),
                    Err(_) => break,
                }
            }
            let batch = self.build(&datagrams).await;
            datagrams.clear();
            if let Some(batch) = batch {
                self.commit(batch, &h).await;
            }
        }
    }

    async fn build(&mut self, datagrams: &[(Vec<u8>, SocketAddr)]) -> Option<Batch> {
        let m = Arc::clone(&self.metrics);
        m.datagrams
            .fetch_add(datagrams.len() as u64, Ordering::Relaxed);
        let now = EventTime::now();
        let mut entries = BytesMut::new();
        let mut records = 0u64;
        for (data, from) in datagrams {
            if data.len() > self.config.message_length_limit {
                m.oversize.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = self.logs.oversize.allow() {
                    tracing::warn!(
                        "udp input {}: a datagram from {from} is longer than message_length_limit ({} bytes): dropped{s}",
                        self.id,
                        self.config.message_length_limit
                    );
                }
                continue;
            }
            let mut text: &[u8] = data;
            if self.config.remove_newline {
                // Ruby's chomp: one "\r\n", "\n" or "\r".
                text = text
                    .strip_suffix(b"\r\n")
                    .or_else(|| text.strip_suffix(b"\n"))
                    .or_else(|| text.strip_suffix(b"\r"))
                    .unwrap_or(text);
            }
            let host = match (&self.config.source_hostname_key, &self.resolver) {
                (Some(_), Some(r)) => Some(r.name(from.ip()).await),
                _ => None,
            };
            match self.config.parse.parse(text, &mut self.rec) {
                Ok(time) => {
                    if let Some(key) = &self.config.source_address_key {
                        self.rec.str(key, from.ip().to_string().as_bytes());
                    }
                    if let (Some(key), Some(host)) = (&self.config.source_hostname_key, &host) {
                        self.rec.str(key, host.as_bytes());
                    }
                    self.rec.write_entry(&mut entries, time.unwrap_or(now));
                    records += 1;
                }
                Err(e) => {
                    m.unparsed.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = self.logs.unparsed.allow() {
                        let shown = String::from_utf8_lossy(&text[..text.len().min(256)]);
                        tracing::warn!(
                            "udp input {}: {e} in a datagram from {from}: dropped: {shown:?}{s}",
                            self.id
                        );
                    }
                }
            }
        }
        (records > 0).then(|| Batch::new(Arc::clone(&self.tag), entries.freeze(), records))
    }

    async fn commit(&self, batch: Batch, h: &TaskHandle) {
        let m = &self.metrics;
        h.set("waiting for commit");
        let (held, result) = self
            .routing
            .emit_holding(
                self.config.label.as_deref(),
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
                m.emit_size
                    .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                m.uncommitted.fetch_add(batch.records, Ordering::Relaxed);
                if let Some(s) = self.logs.commit.allow() {
                    tracing::warn!(
                        "udp input {}: {} messages were not committed: {e}{s}",
                        self.id,
                        batch.records
                    );
                }
            }
        }
    }
}
