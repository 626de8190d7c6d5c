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

use crate::input::lines::{FramingSpec, LineInput, LineMetrics, Parsed, setup};
use crate::input::net::acl::{self, Acl, ClientSource};
use crate::input::net::config::TransportConfig;
use crate::input::net::{self, listen};
use crate::input::{InputHandle, Start};
use crate::parse::{ParseDefaults, ParseSetup};
use anyhow::Context;
use ferry_config::Section;
use std::sync::Arc;

/// ferry's bound on one message when `message_length_limit` is not set.
pub const DEFAULT_MESSAGE_LENGTH_LIMIT: usize = 1024 * 1024;

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
        let parse = setup::read_parse(s, "tcp", &ParseDefaults::default(), None);
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
            port: s.port_or("port", 5170),
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
    let metrics = match start.previous {
        Some(InputHandle::Tcp(m)) => Arc::clone(m),
        _ => Arc::new(LineMetrics::default()),
    };
    let acl = Acl::build(config.clients.as_deref())
        .await
        .with_context(|| format!("{name}: <security>"))?;
    let resolver = setup::resolver(
        &start,
        &name,
        config.source_hostname_key.is_some(),
        &metrics,
    );
    let addr = listen::resolve_bind(&name, &config.bind, config.port).await?;
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
    let listen = listen::StreamListen {
        addr,
        transport: &config.transport,
        tcp_keepalive: config.send_keepalive_packet,
        backlog: 1024,
    };
    let (local, kind) = listen::serve_streams(&start, &name, listen, &metrics.net, input).await?;
    tracing::info!(
        "listening tcp socket bind=\"{}\" port={} transport={kind} ({name})",
        config.bind,
        local.port()
    );
    Ok(metrics)
}
