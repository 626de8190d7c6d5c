//! What the configurations and start-ups of the message-oriented inputs share: the `<parse>`
//! section and the stream listener (TCP or TLS, connection slots, the accept loop).

use super::{Handler, LineInput, LineMetrics};
use crate::input::Start;
use crate::input::net::config::TransportConfig;
use crate::input::net::{self, Listener, Net, listen};
use crate::parse::{ParseDefaults, ParseSetup};
use anyhow::Context;
use ferry_config::Section;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Connections a stream input serves at once unless the open file limit says fewer.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// From accept to the end of the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The input's `<parse>` with its `defaults`. Without one, `absent` gives the input's default
/// parser, or (when it has none) the section is required, as Fluentd requires it. `multiline`
/// is refused: it assembles lines of a file, and these inputs parse each message alone.
pub fn read_parse(
    s: &Section<'_>,
    kind: &str,
    defaults: &ParseDefaults,
    absent: Option<fn() -> ParseSetup>,
) -> ParseSetup {
    match (s.child("parse"), absent) {
        (Some(p), _) => {
            let setup = ParseSetup::from_section_with(&p, defaults);
            if setup.multiline.is_some() {
                p.error(
                    Some("@type"),
                    format!(
                        "multiline assembles lines of a file; the {kind} input parses each message alone"
                    ),
                );
            }
            p.finish();
            setup
        }
        (None, Some(default)) => default(),
        (None, None) => {
            s.error(None, "<parse> section is required.");
            ParseSetup::plain(crate::parse::Parser::None {
                key: "message".into(),
            })
        }
    }
}

/// A port number at `key` (at most 65535), `default` when unset.
pub fn read_port(s: &Section<'_>, key: &str, default: u16) -> u16 {
    u16::try_from(s.u64_or(key, u64::from(default))).unwrap_or_else(|_| {
        s.error(Some(key), "a port is at most 65535");
        default
    })
}

/// Binds `addr` for a stream input (TLS when `transport` says so) and spawns its accept loop
/// serving `input`; returns the address bound and `tcp` or `tls`.
pub async fn serve_streams<H: Handler>(
    start: &Start<'_>,
    name: &str,
    addr: SocketAddr,
    transport: &TransportConfig,
    tcp_keepalive: bool,
    metrics: &LineMetrics,
    input: Arc<LineInput<H>>,
) -> anyhow::Result<(SocketAddr, &'static str)> {
    let tls = match transport {
        TransportConfig::Tls(t) => Some(tokio_rustls::TlsAcceptor::from(
            net::tls::server_config(t).with_context(|| format!("{name}: <transport tls>"))?,
        )),
        TransportConfig::Tcp => None,
    };
    let kind = if tls.is_some() { "tls" } else { "tcp" };
    let (listener, local) = start.sockets.tcp(start.owner, name, addr, 1024)?;
    let slots = listen::connection_slots(name, None, DEFAULT_MAX_CONNECTIONS);
    let net = Arc::new(Net::new(
        name.to_string(),
        tls,
        HANDSHAKE_TIMEOUT,
        tcp_keepalive,
        Arc::clone(&metrics.net),
        slots,
    ));
    let spawner = start.tasks.work.clone();
    start
        .tasks
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
    Ok((local, kind))
}

/// How long a reverse lookup for `source_hostname_key` may hold a batch.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The reverse resolver of an input that writes its peers' names (`source_hostname_key`).
pub fn resolver(
    start: &Start<'_>,
    name: &str,
    needed: bool,
    metrics: &LineMetrics,
) -> Option<Arc<crate::input::net::resolve::Resolver>> {
    needed.then(|| {
        Arc::new(crate::input::net::resolve::Resolver::new(
            RESOLVE_TIMEOUT,
            Arc::clone(&metrics.lookups),
            start.tasks.work.clone(),
            name.to_string(),
        ))
    })
}
