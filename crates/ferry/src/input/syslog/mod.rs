//! `@type syslog` (Fluentd's in_syslog): syslog messages over UDP (the default), TCP or TLS,
//! each tagged `tag.FACILITY.SEVERITY` from its priority, as Fluentd builds the tag.
//!
//! - Over TCP and TLS, each connection's framing is taken from its first byte: a digit starts
//!   RFC 6587 octet counting, anything else is a message ended by `delimiter` (a newline).
//!   `frame_type` is therefore not needed; it is accepted and noted.
//! - The `<parse>` defaults to `@type syslog` with `with_priority true`, as in Fluentd; the
//!   priority is read from the message's `<PRI>` and not kept in the record (Fluentd deletes
//!   `pri`). `severity_key` (`priority_key`) and `facility_key` add their names.
//! - A message without a priority, or one the parser does not match, is dropped and counted, or
//!   with `emit_unmatched_lines` emitted as `{"unmatched_line": ...}` tagged `tag.unmatched`.
//! - Reading, framing, batching and the counters are [`crate::input::lines`]'s.

use crate::input::lines::{
    Batches, FramingSpec, From, Handler, LineInput, LineMetrics, Refused, add_source, datagrams,
    setup,
};
use crate::input::net::acl::Acl;
use crate::input::net::config::TransportConfig;
use crate::input::net::{self, listen};
use crate::input::{InputHandle, Start};
use crate::parse::{ParseDefaults, ParseError, ParseSetup, Record};
use ferry_config::Section;
use ferry_proto::time::EventTime;
use std::sync::Arc;

/// Fluentd's facility names, by number.
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "at", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
/// Fluentd's severity names, by number.
pub const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];
/// Fluentd's default `message_length_limit` (applied to every transport here).
pub const DEFAULT_MESSAGE_LENGTH_LIMIT: usize = 2048;

/// How messages arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Udp,
    Stream(TransportConfig),
}

/// A parsed `<source> @type syslog`.
#[derive(Debug, Clone)]
pub struct SyslogInputConfig {
    pub tag: String,
    pub label: Option<String>,
    pub bind: String,
    pub port: u16,
    pub transport: Transport,
    pub parse: ParseSetup,
    /// The parser reads `<PRI>` itself (`with_priority`).
    pub parser_reads_priority: bool,
    pub delimiter: Vec<u8>,
    pub message_length_limit: usize,
    pub emit_unmatched_lines: bool,
    pub severity_key: Option<String>,
    pub facility_key: Option<String>,
    pub source_hostname_key: Option<String>,
    pub source_address_key: Option<String>,
    pub send_keepalive_packet: bool,
}

impl SyslogInputConfig {
    pub fn from_section(s: &Section<'_>) -> Self {
        let defaults = ParseDefaults {
            type_name: Some("syslog"),
            with_priority: Some(true),
            ..ParseDefaults::default()
        };
        let mut parse = setup::read_parse(s, "syslog", &defaults, Some(default_parse));
        // A parser that reads `<PRI>` gets the whole message; otherwise what follows it.
        let parser_reads_priority = parse.parser.has_capture("pri");
        parse.parser.drop_capture("pri");
        let protocol_type = s.opt_enum("protocol_type", &["tcp", "udp"]);
        let transport = match s.child("transport") {
            Some(t) if t.arg().trim() == "udp" => {
                t.finish();
                Transport::Udp
            }
            Some(t) => Transport::Stream(net::config::read(t)),
            None => match protocol_type {
                Some("tcp") => Transport::Stream(TransportConfig::Tcp),
                _ => Transport::Udp,
            },
        };
        let _ = s.opt_enum("frame_type", &["traditional", "octet_count"]);
        s.no_effect(
            "frame_type",
            "each TCP connection's framing (octet counting or newlines) is taken from its first byte",
        );
        let _ = s.opt_duration("blocking_timeout");
        s.no_effect(
            "blocking_timeout",
            "each connection and the UDP socket are read by their own tasks",
        );
        let include_source_host = s.bool_or("include_source_host", false);
        // The key include_source_host writes (Fluentd reads it either way).
        let source_host_key = s.str_or("source_host_key", "source_host");
        let mut source_address_key = s.str("source_address_key");
        if include_source_host {
            if source_address_key.is_some() {
                s.error(
                    Some("include_source_host"),
                    "specify either source_address_key or include_source_host",
                );
            }
            source_address_key = Some(source_host_key);
        }
        let source_hostname_key = s.str("source_hostname_key");
        if source_hostname_key.is_some() && s.opt_bool("resolve_hostname") == Some(false) {
            s.error(
                Some("resolve_hostname"),
                "resolve_hostname must be true with source_hostname_key",
            );
        }
        let send_keepalive_packet = s.bool_or("send_keepalive_packet", false);
        if send_keepalive_packet && transport == Transport::Udp {
            s.error(
                Some("send_keepalive_packet"),
                "send_keepalive_packet is available for tcp/tls",
            );
        }
        let limit = s
            .opt_size("message_length_limit")
            .map_or(DEFAULT_MESSAGE_LENGTH_LIMIT, |b| {
                usize::try_from(b.0).unwrap_or(usize::MAX)
            });
        if limit == 0 || (transport == Transport::Udp && limit > 65_507) {
            s.error(
                Some("message_length_limit"),
                "message_length_limit must be at least 1 (at most 65507 over udp)",
            );
        }
        let delimiter = s.str_or("delimiter", "\n").into_bytes();
        if delimiter.is_empty() {
            s.error(Some("delimiter"), "delimiter must not be empty");
        }
        let severity_key = s.str("severity_key").or_else(|| s.str("priority_key"));
        Self {
            tag: s.required_str("tag").unwrap_or_default(),
            label: s.label().map(str::to_string),
            bind: s.str_or("bind", "0.0.0.0"),
            port: s.port_or("port", 5140),
            transport,
            parse,
            parser_reads_priority,
            delimiter,
            message_length_limit: limit.clamp(1, 64 * 1024 * 1024),
            emit_unmatched_lines: s.bool_or("emit_unmatched_lines", false),
            severity_key,
            facility_key: s.str("facility_key"),
            source_hostname_key,
            source_address_key,
            send_keepalive_packet,
        }
    }
}

/// `<parse> @type syslog, with_priority true`: the syslog input's default.
fn default_parse() -> ParseSetup {
    ParseSetup::built_in("@type syslog\nwith_priority true")
}

/// The priority at the start of a syslog message (`<13>...`) and what follows it.
pub fn split_priority(text: &[u8]) -> Option<(u8, &[u8])> {
    let rest = text.strip_prefix(b"<")?;
    let close = rest.iter().take(4).position(|b| *b == b'>')?;
    let digits = &rest[..close];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pri: u16 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (pri <= 191).then(|| (pri as u8, &rest[close + 1..]))
}

/// Turns one syslog message into an event tagged by its priority.
#[derive(Debug)]
pub struct SyslogHandler {
    config: SyslogInputConfig,
    /// `tag.FACILITY.SEVERITY` for each of the 192 priorities.
    tags: Vec<Arc<str>>,
    unmatched: Arc<str>,
}

impl SyslogHandler {
    pub fn new(config: SyslogInputConfig) -> Self {
        let tags = (0..192u16)
            .map(|pri| {
                let facility = FACILITIES[usize::from(pri >> 3)];
                let severity = SEVERITIES[usize::from(pri & 7)];
                format!("{}.{facility}.{severity}", config.tag).into()
            })
            .collect();
        let unmatched = format!("{}.unmatched", config.tag).into();
        Self {
            config,
            tags,
            unmatched,
        }
    }

    fn unmatched(
        &self,
        text: &[u8],
        error: ParseError,
        from: From<'_>,
        now: EventTime,
        rec: &mut Record,
        out: &mut Batches,
    ) -> Refused {
        if self.config.emit_unmatched_lines {
            rec.clear();
            rec.str(crate::parse::UNMATCHED_KEY, text);
            add_source(
                rec,
                from,
                &self.config.source_address_key,
                &self.config.source_hostname_key,
            );
            rec.write_entry(out.entries_for(&self.unmatched), now);
        }
        Refused {
            error,
            kept: self.config.emit_unmatched_lines,
        }
    }
}

impl Handler for SyslogHandler {
    fn kind(&self) -> &'static str {
        "syslog"
    }

    fn message(
        &self,
        text: &[u8],
        from: From<'_>,
        now: EventTime,
        rec: &mut Record,
        out: &mut Batches,
    ) -> Result<(), Refused> {
        let cfg = &self.config;
        let Some((pri, body)) = split_priority(text) else {
            return Err(self.unmatched(text, ParseError::NoPriority, from, now, rec, out));
        };
        let parsed = if cfg.parser_reads_priority {
            text
        } else {
            body
        };
        let time = match cfg.parse.parse(parsed, rec) {
            Ok(t) => t,
            Err(e) => return Err(self.unmatched(text, e, from, now, rec, out)),
        };
        let facility = FACILITIES[usize::from(pri >> 3)];
        let severity = SEVERITIES[usize::from(pri & 7)];
        if let Some(key) = &cfg.severity_key {
            rec.str(key, severity.as_bytes());
        }
        if let Some(key) = &cfg.facility_key {
            rec.str(key, facility.as_bytes());
        }
        add_source(rec, from, &cfg.source_address_key, &cfg.source_hostname_key);
        rec.write_entry(
            out.entries_for(&self.tags[usize::from(pri)]),
            time.unwrap_or(now),
        );
        Ok(())
    }
}

/// Binds the socket and spawns its readers; returns the input's counters.
pub async fn start(
    id: String,
    config: SyslogInputConfig,
    start: Start<'_>,
) -> anyhow::Result<Arc<LineMetrics>> {
    let name = format!("syslog input {id}");
    let metrics = match start.previous {
        Some(InputHandle::Syslog(m)) => Arc::clone(m),
        _ => Arc::new(LineMetrics::default()),
    };
    let resolver = setup::resolver(
        &start,
        &name,
        config.source_hostname_key.is_some(),
        &metrics,
    );
    let addr = listen::resolve_bind(&name, &config.bind, config.port).await?;
    let framing = FramingSpec::Syslog {
        delimiter: config.delimiter.clone(),
        limit: config.message_length_limit,
    };
    let label = config.label.clone();
    let transport = config.transport.clone();
    let keepalive = config.send_keepalive_packet;
    let input = Arc::new(LineInput {
        id,
        handler: SyslogHandler::new(config.clone()),
        label,
        routing: Arc::clone(start.routing),
        metrics: Arc::clone(&metrics),
        framing,
        acl: Acl::default(),
        resolver,
        logs: Default::default(),
    });
    match transport {
        Transport::Udp => {
            let socket = datagrams::bind(&start, &name, addr, None, &metrics)?;
            let local = socket.local_addr()?;
            tracing::info!(
                "listening syslog socket on {}:{} with udp ({name})",
                config.bind,
                local.port()
            );
            start
                .tasks
                .listen
                .spawn(format!("{name} receive {local}"), move |h| {
                    datagrams::receive(input, socket, true, h)
                });
        }
        Transport::Stream(t) => {
            let listen = listen::StreamListen {
                addr,
                transport: &t,
                tcp_keepalive: keepalive,
                backlog: 1024,
            };
            let (local, kind) =
                listen::serve_streams(&start, &name, listen, &metrics.net, input).await?;
            tracing::info!(
                "listening syslog socket on {}:{} with {kind} ({name})",
                config.bind,
                local.port()
            );
        }
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_priority_is_read_from_the_front_and_bounded() {
        assert_eq!(
            split_priority(b"<13>Dec  7 x"),
            Some((13, &b"Dec  7 x"[..]))
        );
        assert_eq!(split_priority(b"<191>x"), Some((191, &b"x"[..])));
        assert_eq!(split_priority(b"<192>x"), None);
        assert_eq!(split_priority(b"<>x"), None);
        assert_eq!(split_priority(b"<1a>x"), None);
        assert_eq!(split_priority(b"13>x"), None);
        assert_eq!(split_priority(b"<0013>x"), None);
    }

    proptest! {
        #[test]
        fn any_bytes_give_a_priority_in_range_or_none(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Some((pri, rest)) = split_priority(&data) {
                prop_assert!(pri <= 191);
                prop_assert!(rest.len() < data.len());
            }
        }
    }
}
