//! `@type tcp` (Fluentd's in_tcp): messages cut from TCP streams at a delimiter, each parsed by
//! the `<parse>`, tagged `tag`. Sockets, accept loops, TLS and `<client>` ACLs are
//! [`crate::input::net`]'s; reading, framing ([`ferry_proto::delimited`]), batching and the
//! counters are [`crate::input::lines`]'s (each message parsed by
//! [`crate::input::lines::Parsed`]). This module is the configuration.
//!
//! - A message longer than `message_length_limit` is dropped and counted, never held (ferry's
//!   default bound is [`DEFAULT_MESSAGE_LENGTH_LIMIT`]; Fluentd has none).
//! - Each read's messages go to the buffer as one batch; while the buffer is full the
//!   connection is not read (TCP pushes back on the sender), nothing is dropped.
//! - A message without a final delimiter when the sender closes is taken too (Fluentd drops
//!   it).
//! - TCP carries no acknowledgement: a message the kernel took but ferry had not committed when
//!   it was killed is lost, as with every plain-TCP sender; use the forward protocol with
//!   `require_ack_response` where that matters.

use crate::input::lines::{FramingSpec, LineInput, LineMetrics, Parsed};
use crate::input::net::acl::{self, Acl, ClientSource};
use crate::input::net::config::TransportConfig;
use crate::input::net::resolve::Resolver;
use crate::input::net::{self, Listener, Net, listen};
use crate::input::{InputHandle, Start};
use crate::parse::ParseSetup;
use anyhow::Context;
use ferry_config::Section;
use std::sync::Arc;
use std::time::Duration;

/// ferry's bound on one message when `message_length_limit` is not set.
pub const DEFAULT_MESSAGE_LENGTH_LIMIT: usize = 1024 * 1024;
/// Connections a tcp input serves at once unless the open file limit says fewer.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long a reverse lookup for `source_hostname_key` may hold a batch.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// A parsed `<source> @type tcp`.
#[derive(Debug, Clone)]
pub struct TcpInputConfig {
    pub tag: String,
    pub label: Option<String>,
    pub bind: String,
    pub port: u16,
    pub parse: ParseSetup,
    pub delimiter: Vec<u8>,
    pub message_length_limit: usize,
    pub source_hostname_key: Option<String>,
    pub source_address_key: Option<String>,
    pub send_keepalive_packet: bool,
    /// `<security>` `<client>`s; `None`: every peer is served.
    pub clients: Option<Vec<ClientSource>>,
    pub transport: TransportConfig,
}

impl TcpInputConfig {
    pub fn from_section(s: &Section<'_>) -> Self {
        let parse = match s.child("parse") {
            Some(p) => {
                let setup = ParseSetup::from_section(&p);
                if setup.multiline.is_some() {
                    p.error(
                        Some("@type"),
                        "multiline assembles lines of a file; the tcp input parses each message alone",
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
        let delimiter = s.str_or("delimiter", "\n").into_bytes();
        if delimiter.is_empty() {
            s.error(Some("delimiter"), "delimiter must not be empty");
        }
        let message_length_limit = s
            .opt_size("message_length_limit")
            .map_or(DEFAULT_MESSAGE_LENGTH_LIMIT, |b| {
                usize::try_from(b.0).unwrap_or(usize::MAX)
            });
        if message_length_limit == 0 {
            s.error(
                Some("message_length_limit"),
                "message_length_limit must be at least 1",
            );
        }
        let _ = s.opt_duration("blocking_timeout");
        s.no_effect(
            "blocking_timeout",
            "each connection is its own task; none waits on another",
        );
        let source_hostname_key = s
            .str("source_hostname_key")
            .or_else(|| s.str("source_host_key"));
        let clients = s.child("security").map(|sec| {
            let clients: Vec<ClientSource> = sec
                .children("client")
                .into_iter()
                .filter_map(|c| {
                    let source = acl::read_source(&c);
                    c.finish();
                    source
                })
                .collect();
            if clients.is_empty() {
                sec.error(None, "<security> needs at least one <client>");
            }
            sec.finish();
            clients
        });
        let transport = match s.child("transport") {
            Some(t) => net::config::read(t),
            None => TransportConfig::Tcp,
        };
        Self {
            tag: s.required_str("tag").unwrap_or_default(),
            label: s.label().map(str::to_string),
            bind: s.str_or("bind", "0.0.0.0"),
            port: u16::try_from(s.u64_or("port", 5170)).unwrap_or_else(|_| {
                s.error(Some("port"), "port must be at most 65535");
                5170
            }),
            parse,
            delimiter,
            message_length_limit: message_length_limit.max(1),
            source_hostname_key,
            source_address_key: s.str("source_address_key"),
            send_keepalive_packet: s.bool_or("send_keepalive_packet", false),
            clients,
            transport,
        }
    }
}

/// Binds the socket and spawns the accept loop; returns the input's counters.
pub async fn start(
    id: String,
    config: TcpInputConfig,
    start: Start<'_>,
) -> anyhow::Result<Arc<LineMetrics>> {
    let name = format!("tcp input {id}");
    let tasks = start.tasks;
    let metrics = match start.previous {
        Some(InputHandle::Tcp(m)) => Arc::clone(m),
        _ => Arc::new(LineMetrics::default()),
    };
    let tls = match &config.transport {
        TransportConfig::Tls(t) => Some(tokio_rustls::TlsAcceptor::from(
            net::tls::server_config(t).with_context(|| format!("{name}: <transport tls>"))?,
        )),
        TransportConfig::Tcp => None,
    };
    let acl = Acl::build(config.clients.as_deref())
        .await
        .with_context(|| format!("{name}: <security>"))?;
    let resolver = config.source_hostname_key.is_some().then(|| {
        Arc::new(Resolver::new(
            RESOLVE_TIMEOUT,
            Arc::clone(&metrics.lookups),
            tasks.work.clone(),
            name.clone(),
        ))
    });
    let addr = listen::resolve_bind(&name, &config.bind, config.port).await?;
    let (listener, local) = start.sockets.tcp(start.owner, &name, addr, 1024)?;
    let slots = listen::connection_slots(&name, None, DEFAULT_MAX_CONNECTIONS);
    let net = Arc::new(Net::new(
        name.clone(),
        tls,
        Duration::from_secs(10),
        config.send_keepalive_packet,
        Arc::clone(&metrics.net),
        slots,
    ));
    let kind = if net.tls.is_some() { "tls" } else { "tcp" };
    tracing::info!(
        "listening tcp socket bind=\"{}\" port={} transport={kind} ({name})",
        config.bind,
        local.port()
    );
    let handler = Parsed {
        kind: "tcp",
        tag: config.tag.as_str().into(),
        parse: config.parse.clone(),
        source_hostname_key: config.source_hostname_key.clone(),
        source_address_key: config.source_address_key.clone(),
    };
    let input = Arc::new(LineInput {
        id,
        handler,
        label: config.label.clone(),
        routing: Arc::clone(start.routing),
        metrics: Arc::clone(&metrics),
        framing: FramingSpec::Delimited {
            delimiter: config.delimiter.clone(),
            limit: config.message_length_limit,
        },
        acl,
        resolver,
        logs: Default::default(),
    });
    let spawner = tasks.work.clone();
    tasks
        .listen
        .spawn(format!("{name} accept {local}"), move |h| {
            net::accept_loop(
                Listener::Tcp(listener),
                local.to_string(),
                net,
                input,
                spawner,
                h,
            )
        });
    Ok(metrics)
}
