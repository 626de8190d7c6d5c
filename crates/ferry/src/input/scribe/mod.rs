//! `@type scribe` (fluent-plugin-scribe's in_scribe): Scribe's Thrift service on the binary
//! protocol. `Log(list<LogEntry{category, message}>)` is answered `OK` only after every entry of
//! the call is committed to the buffer, `TRY_LATER` otherwise (Scribe clients back off and send
//! the call again). fb303's status calls are answered with ferry's own counters.
//!
//! Sockets, accept loops and connection slots are [`crate::input::net`]'s; the Thrift codec is
//! [`ferry_proto::thrift`]. This module is the configuration; [`serve`] answers calls.
//!
//! - The tag is the category, after `add_prefix` (`prefix.category`).
//! - The record: `msg_format text` → `{msg_key: message}` (`remove_newline` drops one trailing
//!   newline); `json` → the message's object; `url_param` → its `k=v&...` pairs. With a
//!   `<parse>`, the message is parsed by it, and its time is the event's.
//! - The event time is the time the call was received, unless the `<parse>` reads one.
//! - A message that does not make a record answers the call `TRY_LATER` (as fluent-plugin-scribe
//!   does), or with `ignore_invalid_record true` is skipped and counted.

pub mod metrics;
pub mod serve;

use crate::input::net::config::TransportConfig;
use crate::input::net::listen;
use crate::input::{InputHandle, Start};
use crate::parse::ParseSetup;
use ferry_config::Section;
use ferry_proto::thrift::Transport;
pub use metrics::ScribeInputMetrics;
use std::sync::Arc;

/// How a message becomes a record.
#[derive(Debug, Clone)]
pub enum MsgFormat {
    Text,
    Json,
    UrlParam,
    /// A `<parse>` section.
    Parse(Box<ParseSetup>),
}

/// A parsed `<source> @type scribe`.
#[derive(Debug, Clone)]
pub struct ScribeInputConfig {
    pub label: Option<String>,
    pub bind: String,
    pub port: u16,
    pub transport: Transport,
    /// The largest frame (framed) or call (unframed).
    pub body_size_limit: usize,
    pub add_prefix: Option<String>,
    pub remove_newline: bool,
    pub ignore_invalid_record: bool,
    pub msg_format: MsgFormat,
    pub msg_key: String,
}

impl ScribeInputConfig {
    pub fn from_section(s: &Section<'_>) -> Self {
        let _ = s.opt_enum(
            "server_type",
            &["simple", "threaded", "thread_pool", "nonblocking"],
        );
        s.no_effect(
            "server_type",
            "each connection is its own task on ferry's runtime",
        );
        let body_size_limit = s.opt_size("body_size_limit").map_or(32 * 1024 * 1024, |b| {
            usize::try_from(b.0).unwrap_or(usize::MAX)
        });
        if body_size_limit == 0 {
            s.error(
                Some("body_size_limit"),
                "body_size_limit must be at least 1",
            );
        }
        let format_written = s.has("msg_format");
        let kind = s.enum_or("msg_format", &["text", "json", "url_param"], "text");
        let msg_format = match s.child("parse") {
            Some(p) => {
                if format_written {
                    p.error(
                        None,
                        "msg_format and <parse> both say how to read a message; keep one",
                    );
                }
                let setup = ParseSetup::from_section(&p);
                if setup.multiline.is_some() {
                    p.error(
                        Some("@type"),
                        "multiline assembles lines of a file; the scribe input parses each message alone",
                    );
                }
                p.finish();
                MsgFormat::Parse(Box::new(setup))
            }
            None => match kind {
                "json" => MsgFormat::Json,
                "url_param" => MsgFormat::UrlParam,
                _ => MsgFormat::Text,
            },
        };
        let add_prefix = s.str("add_prefix").filter(|p| {
            let ok = !p.is_empty();
            if !ok {
                s.error(Some("add_prefix"), "add_prefix must not be empty");
            }
            ok
        });
        Self {
            label: s.label().map(str::to_string),
            bind: s.str_or("bind", "0.0.0.0"),
            port: s.port_or("port", 1463),
            transport: if s.bool_or("is_framed", true) {
                Transport::Framed
            } else {
                Transport::Unframed
            },
            body_size_limit: body_size_limit.max(1),
            add_prefix,
            remove_newline: s.bool_or("remove_newline", false),
            ignore_invalid_record: s.bool_or("ignore_invalid_record", false),
            msg_format,
            msg_key: s.str_or("msg_key", "message"),
        }
    }
}

/// Binds the socket and spawns the accept loop; returns the input's counters.
pub async fn start(
    id: String,
    config: ScribeInputConfig,
    start: Start<'_>,
) -> anyhow::Result<Arc<ScribeInputMetrics>> {
    let name = format!("scribe input {id}");
    let metrics = match start.previous {
        Some(InputHandle::Scribe(m)) => Arc::clone(m),
        _ => Arc::new(ScribeInputMetrics::default()),
    };
    let addr = listen::resolve_bind(&name, &config.bind, config.port).await?;
    let input = Arc::new(serve::ScribeInput::new(
        name.clone(),
        config.clone(),
        Arc::clone(start.routing),
        Arc::clone(&metrics),
    ));
    let transport = TransportConfig::Tcp;
    let listen = listen::StreamListen {
        addr,
        transport: &transport,
        tcp_keepalive: false,
        backlog: 1024,
    };
    let (local, _) = listen::serve_streams(&start, &name, listen, &metrics.net, input).await?;
    tracing::info!(
        "listening scribe on {}:{} ({}, {name})",
        config.bind,
        local.port(),
        match config.transport {
            Transport::Framed => "framed",
            Transport::Unframed => "unframed",
        }
    );
    Ok(metrics)
}

#[cfg(test)]
mod tests;
