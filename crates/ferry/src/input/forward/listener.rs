//! The forward input's sockets: TCP (plain or TLS) on `bind:port`, the optional Unix socket,
//! and the UDP heartbeat responder on the same port number. Binding, accept loops, connection
//! slots and TLS are [`crate::input::net`]'s; this module says which sockets the forward input
//! has and starts them.

use super::config::{DEFAULT_MAX_CONNECTIONS, ForwardInputConfig, TransportConfig};
use super::handshake::Security;
use super::{ForwardInputMetrics, Logs, Shared, heartbeat};
use crate::input::net::resolve::Resolver;
use crate::input::net::{self, Listener, Net, listen};
use crate::input::{InputHandle, Start};
use anyhow::Context;
use ferry_proto::request::Limits;
use std::sync::Arc;

/// Binds every socket of the input and spawns its tasks; returns the input's counters.
pub async fn start(
    id: String,
    config: ForwardInputConfig,
    start: Start<'_>,
) -> anyhow::Result<Arc<ForwardInputMetrics>> {
    let name = format!("forward input {id}");
    let tasks = start.tasks;
    let metrics = match start.previous {
        Some(InputHandle::Forward(m)) => Arc::clone(m),
        _ => Arc::new(ForwardInputMetrics::default()),
    };
    let tls = match &config.transport {
        TransportConfig::Tls(t) => Some(tokio_rustls::TlsAcceptor::from(
            net::tls::server_config(t).with_context(|| format!("{name}: <transport tls>"))?,
        )),
        TransportConfig::Tcp => None,
    };
    let security = match &config.security {
        Some(s) => Some(
            Security::build(s)
                .await
                .with_context(|| format!("{name}: <security>"))?,
        ),
        None => None,
    };
    let resolver = config.source_hostname_key.is_some().then(|| {
        Arc::new(Resolver::new(
            config.resolve_timeout,
            Arc::clone(&metrics.lookups),
            tasks.work.clone(),
            name.clone(),
        ))
    });
    let tcp = if config.listen_tcp {
        let addr = listen::resolve_bind(&name, &config.bind, config.port).await?;
        let (listener, local) =
            start
                .sockets
                .tcp(start.owner, &name, addr, config.backlog.unwrap_or(1024))?;
        // The UDP heartbeat socket takes the port the TCP listener got (matters for port 0).
        let udp = start.sockets.udp(start.owner, &name, local, "heartbeats")?;
        Some((listener, udp, local))
    } else {
        None
    };
    let unix = match &config.unix_path {
        Some(path) => Some(
            start
                .sockets
                .unix(start.owner, &name, path, config.unix_perm)?,
        ),
        None => None,
    };
    let max_connections = listen::connection_slots(
        &name,
        config.max_connections,
        DEFAULT_MAX_CONNECTIONS as usize,
    );
    let net = Arc::new(Net::new(
        name.clone(),
        tls,
        config.handshake_timeout,
        config.send_keepalive_packet,
        Arc::clone(&metrics.net),
        max_connections,
    ));
    let shared = Arc::new(Shared {
        id: id.clone(),
        limits: Limits {
            max_decompressed_bytes: usize::try_from(config.decompression_size_limit.0)
                .unwrap_or(usize::MAX),
        },
        label: config.label.clone(),
        config,
        routing: Arc::clone(start.routing),
        metrics: Arc::clone(&metrics),
        security,
        resolver,
        logs: Logs::default(),
    });
    if let Some((listener, udp, local)) = tcp {
        let kind = if net.tls.is_some() { "tls" } else { "tcp" };
        tracing::info!(
            "listening port port={} bind=\"{}\" transport={kind} ({name})",
            local.port(),
            shared.config.bind
        );
        let (n, s, spawner) = (Arc::clone(&net), Arc::clone(&shared), tasks.work.clone());
        tasks
            .listen
            .spawn(format!("{name} accept {local}"), move |h| {
                net::accept_loop(Listener::Tcp(listener), local.to_string(), n, s, spawner, h)
            });
        let s = Arc::clone(&shared);
        tasks
            .listen
            .spawn(format!("{name} heartbeat udp {local}"), move |h| {
                heartbeat::run(udp, s, h)
            });
    }
    if let Some((listener, path)) = unix {
        tracing::info!("listening unix path=\"{}\" ({name})", path.display());
        let (n, s, spawner) = (Arc::clone(&net), Arc::clone(&shared), tasks.work.clone());
        let socket = format!("unix:{}", path.display());
        // The socket file stays while ferry runs: a successor takes the socket over at a
        // reload; `Sockets` removes it when no input takes it any more.
        tasks
            .listen
            .spawn(format!("{name} accept {socket}"), move |h| {
                net::accept_loop(
                    Listener::Unix(listener, Arc::from(path.as_path())),
                    socket,
                    n,
                    s,
                    spawner,
                    h,
                )
            });
    }
    Ok(metrics)
}
