//! `@type udp` (Fluentd's in_udp): one message per datagram, parsed by the `<parse>`, tagged
//! `tag`.
//!
//! - Datagrams are received in batches: after one arrives, those already queued are taken too
//!   (up to [`datagrams::MAX_DATAGRAMS`]), parsed, and committed as one batch.
//! - A datagram longer than `message_length_limit` (default 4096, as Fluentd's) is dropped and
//!   counted; Fluentd cuts it to the limit and parses the piece.
//! - UDP has no flow control: while the buffer is full ferry does not receive, the kernel's
//!   receive buffer (`receive_buffer_size`) fills, and the kernel drops what does not fit. Those
//!   drops are read from the kernel's counter for the socket (`/proc/net/udp`, `/proc/net/udp6`)
//!   and exported as `ferry_udp_input_kernel_drops_total`.

use crate::input::lines::{FramingSpec, LineInput, LineMetrics, Parsed, datagrams, setup};
use crate::input::net::acl::Acl;
use crate::input::net::listen;
use crate::input::{InputHandle, Start};
use crate::parse::{ParseDefaults, ParseSetup};
use ferry_config::Section;
use std::sync::Arc;

/// Fluentd's default `message_length_limit`.
pub const DEFAULT_MESSAGE_LENGTH_LIMIT: usize = 4096;

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
        let parse = setup::read_parse(s, "udp", &ParseDefaults::default(), None);
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
            port: s.port_or("port", 5160),
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

/// Binds the socket and spawns its receiver; returns the input's counters.
pub async fn start(
    id: String,
    config: UdpInputConfig,
    start: Start<'_>,
) -> anyhow::Result<Arc<LineMetrics>> {
    let name = format!("udp input {id}");
    let metrics = match start.previous {
        Some(InputHandle::Udp(m)) => Arc::clone(m),
        _ => Arc::new(LineMetrics::default()),
    };
    let addr = listen::resolve_bind(&name, &config.bind, config.port).await?;
    let socket = datagrams::bind(&start, &name, addr, config.receive_buffer_size, &metrics)?;
    let local = socket.local_addr()?;
    tracing::info!(
        "listening udp socket bind=\"{}\" port={} ({name})",
        config.bind,
        local.port()
    );
    let resolver = setup::resolver(
        &start,
        &name,
        config.source_hostname_key.is_some(),
        &metrics,
    );
    let handler = Parsed {
        kind: "udp",
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
            delimiter: b"\n".to_vec(),
            limit: config.message_length_limit,
        },
        acl: Acl::default(),
        resolver,
        logs: Default::default(),
    });
    let chomp = config.remove_newline;
    start
        .tasks
        .listen
        .spawn(format!("{name} receive {local}"), move |h| {
            datagrams::receive(input, socket, chomp, h)
        });
    Ok(metrics)
}
