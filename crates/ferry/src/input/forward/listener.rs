//! The forward input's sockets: TCP (plain or TLS) on `bind:port`, the optional Unix socket,
//! and the UDP heartbeat responder on the same port number.
//!
//! - Every socket is bound before `start` returns, so an address in use, a bad certificate or
//!   an unresolvable `<client> host` fails start-up with a clear error.
//! - `max_connections` slots are shared by every listener of the input. When all are taken the
//!   accept loops stop accepting until a connection closes: new clients wait in the kernel's
//!   backlog (they are not refused), counted and logged once per episode.
//! - Running out of file descriptors (`EMFILE`, `ENFILE`, ...) is logged once per episode as
//!   such; the loop backs off 100 ms between attempts and never spins.

use super::config::{DEFAULT_MAX_CONNECTIONS, ForwardInputConfig};
use super::handshake::Security;
use super::resolve::Resolver;
use super::{ForwardInputMetrics, Logs, Peer, Shared, heartbeat, session};
use crate::router::{RouteId, Router};
use crate::task::{TaskHandle, Tasks};
use anyhow::Context;
use ferry_proto::request::Limits;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::sync::Semaphore;

/// File descriptors ferry keeps for itself besides connections (logs, buffers, sockets).
const FD_RESERVE: u64 = 64;

/// Binds every socket of the input and spawns its tasks; returns the input's counters.
pub async fn start(
    id: String,
    config: ForwardInputConfig,
    router: Arc<Router>,
    route: RouteId,
    tasks: &Tasks,
) -> anyhow::Result<Arc<ForwardInputMetrics>> {
    let metrics = Arc::new(ForwardInputMetrics::default());
    let tls = match &config.transport {
        super::config::TransportConfig::Tls(t) => Some(tokio_rustls::TlsAcceptor::from(
            super::tls::server_config(t)
                .with_context(|| format!("forward input {id}: <transport tls>"))?,
        )),
        super::config::TransportConfig::Tcp => None,
    };
    let security = match &config.security {
        Some(s) => Some(
            Security::build(s)
                .await
                .with_context(|| format!("forward input {id}: <security>"))?,
        ),
        None => None,
    };
    let resolver = config
        .source_hostname_key
        .is_some()
        .then(|| Arc::new(Resolver::new(config.resolve_timeout, Arc::clone(&metrics))));
    let tcp = if config.listen_tcp {
        Some(bind_tcp(&id, &config).await?)
    } else {
        None
    };
    let unix = match &config.unix_path {
        Some(path) => Some(bind_unix(&id, path, config.unix_perm)?),
        None => None,
    };
    let max_connections = connection_slots(&id, config.max_connections);
    let shared = Arc::new(Shared {
        id: id.clone(),
        limits: Limits {
            max_decompressed_bytes: usize::try_from(config.decompression_size_limit.0)
                .unwrap_or(usize::MAX),
        },
        config,
        router,
        route,
        metrics: Arc::clone(&metrics),
        security,
        tls,
        resolver,
        logs: Logs::default(),
    });
    let slots = Arc::new(Semaphore::new(max_connections));
    if let Some((listener, udp, local)) = tcp {
        let kind = if shared.tls.is_some() { "tls" } else { "tcp" };
        tracing::info!(
            "listening port port={} bind=\"{}\" transport={kind} (forward input {id})",
            local.port(),
            shared.config.bind
        );
        let (s, spawner, sl) = (Arc::clone(&shared), tasks.clone(), Arc::clone(&slots));
        tasks.spawn(format!("forward input {id} accept {local}"), move |h| {
            accept_loop(
                Listener::Tcp(listener),
                local.to_string(),
                s,
                spawner,
                sl,
                max_connections,
                h,
            )
        });
        let s = Arc::clone(&shared);
        tasks.spawn(
            format!("forward input {id} heartbeat udp {local}"),
            move |h| heartbeat::run(udp, s, h),
        );
    }
    if let Some((listener, path)) = unix {
        tracing::info!(
            "listening unix path=\"{}\" (forward input {id})",
            path.display()
        );
        let (s, spawner, sl) = (Arc::clone(&shared), tasks.clone(), Arc::clone(&slots));
        let name = format!("unix:{}", path.display());
        tasks.spawn(
            format!("forward input {id} accept {name}"),
            move |h| async move {
                accept_loop(
                    Listener::Unix(listener, Arc::from(path.as_path())),
                    name,
                    s,
                    spawner,
                    sl,
                    max_connections,
                    h,
                )
                .await;
                let _ = std::fs::remove_file(&path);
            },
        );
    }
    Ok(metrics)
}

async fn bind_tcp(
    id: &str,
    config: &ForwardInputConfig,
) -> anyhow::Result<(TcpListener, std::net::UdpSocket, SocketAddr)> {
    let addr = match config.bind.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, config.port),
        Err(_) => tokio::net::lookup_host((config.bind.as_str(), config.port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .with_context(|| {
                format!(
                    "forward input {id}: cannot resolve bind address {}",
                    config.bind
                )
            })?,
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .with_context(|| format!("forward input {id}: cannot listen on tcp {addr}"))?;
    let listener = socket
        .listen(config.backlog.unwrap_or(1024))
        .with_context(|| format!("forward input {id}: cannot listen on tcp {addr}"))?;
    let local = listener.local_addr()?;
    // The UDP heartbeat socket takes the port the TCP listener got (matters for port 0).
    let udp = std::net::UdpSocket::bind(local)
        .with_context(|| format!("forward input {id}: cannot bind udp {local} for heartbeats"))?;
    Ok((listener, udp, local))
}

/// Binds the Unix socket; a stale socket file (nobody listening) is replaced, a live one is an
/// error.
fn bind_unix(id: &str, path: &Path, perm: Option<u32>) -> anyhow::Result<(UnixListener, PathBuf)> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "forward input {id}: unix socket {} is in use by another process",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| {
            format!(
                "forward input {id}: cannot remove stale unix socket {}",
                path.display()
            )
        })?;
    }
    let listener = UnixListener::bind(path).with_context(|| {
        format!(
            "forward input {id}: cannot listen on unix {}",
            path.display()
        )
    })?;
    if let Some(mode) = perm {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_context(
            || {
                format!(
                    "forward input {id}: cannot set unix_perm on {}",
                    path.display()
                )
            },
        )?;
    }
    Ok((listener, path.to_path_buf()))
}

/// The number of connection slots. The default is lowered to fit the open file limit (so
/// clients wait in the backlog rather than accepts failing); a configured value is kept, with
/// a warning when the limit cannot hold it.
fn connection_slots(id: &str, configured: Option<usize>) -> usize {
    let soft = open_file_limit();
    let fits =
        soft.map(|s| usize::try_from(s.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX));
    match (configured, fits) {
        (Some(n), Some(fits)) if n > fits => {
            tracing::warn!(
                "forward input {id}: max_connections {n} is above what the open file limit allows ({}); beyond about {fits} connections accepts fail until some close (raise ulimit -n / LimitNOFILE)",
                soft.unwrap_or_default()
            );
            n
        }
        (Some(n), _) => n,
        (None, Some(fits)) if fits < DEFAULT_MAX_CONNECTIONS as usize => {
            tracing::info!(
                "forward input {id}: serving at most {fits} connections at once (the open file limit is {}; set max_connections or raise ulimit -n for more)",
                soft.unwrap_or_default()
            );
            fits
        }
        (None, _) => DEFAULT_MAX_CONNECTIONS as usize,
    }
}

/// The soft `RLIMIT_NOFILE`, from /proc (Linux).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, Arc<Path>),
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream, Arc<Path>),
}

impl Listener {
    async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Self::Tcp(l) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
            Self::Unix(l, path) => l
                .accept()
                .await
                .map(|(s, _)| Accepted::Unix(s, Arc::clone(path))),
        }
    }
}

/// Errors from `accept` that mean "this process has no descriptors left" rather than a
/// problem with one peer.
fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24): this process; ENFILE (23): the whole system; ENOBUFS (105) and ENOMEM (12):
    // the kernel could not allocate the socket.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Errors from `accept` that concern one connection that went away before it was accepted.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

async fn accept_loop(
    listener: Listener,
    name: String,
    shared: Arc<Shared>,
    tasks: Tasks,
    slots: Arc<Semaphore>,
    slots_total: usize,
    h: TaskHandle,
) {
    let m = &shared.metrics;
    let mut fd_episode = false;
    loop {
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                m.connection_limit_waits.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = shared.logs.limit.allow() {
                    tracing::warn!(
                        "forward input {}: all {} connection slots are taken (max_connections); new connections on {name} wait in the backlog until one closes{s}",
                        shared.id,
                        slots_total
                    );
                }
                h.set("waiting for a connection slot");
                let acquired = tokio::select! {
                    p = Arc::clone(&slots).acquire_owned() => p,
                    () = h.cancelled() => return,
                };
                let Ok(p) = acquired else { return };
                tracing::debug!(
                    "forward input {}: a connection slot is free; accepting on {name} again",
                    shared.id
                );
                p
            }
        };
        let accepted = loop {
            h.set("accepting");
            let r = tokio::select! {
                r = listener.accept() => r,
                () = h.cancelled() => return,
            };
            match r {
                Ok(a) => break a,
                Err(e) if is_transient(&e) => {
                    // One client gave up before it was accepted: nothing to wait for.
                    tracing::debug!("forward input {}: accept on {name}: {e}", shared.id);
                }
                Err(e) => {
                    m.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if is_fd_exhaustion(&e) {
                        if !fd_episode {
                            m.fd_exhaustion_episodes.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(
                                "forward input {}: out of file descriptors accepting on {name} ({e}); raise the limit (ulimit -n / LimitNOFILE); pending connections wait in the backlog",
                                shared.id
                            );
                            fd_episode = true;
                        }
                    } else {
                        tracing::warn!("forward input {}: accept on {name} failed: {e}", shared.id);
                    }
                    // Never spin: the error may persist until a descriptor frees up.
                    h.set("backing off after accept error");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        () = h.cancelled() => return,
                    }
                }
            }
        };
        if fd_episode {
            tracing::info!(
                "forward input {}: accepting on {name} again after running out of file descriptors",
                shared.id
            );
            fd_episode = false;
        }
        m.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        match accepted {
            Accepted::Tcp(stream, addr) => {
                // Acks are small and must leave at once (Nagle would hold them for the
                // client's delayed ACK).
                let _ = stream.set_nodelay(true);
                if shared.config.send_keepalive_packet {
                    let _ = socket2::SockRef::from(&stream).set_keepalive(true);
                }
                let peer = Peer::Tcp(addr);
                tasks.spawn(
                    format!("forward input {} conn {peer}", shared.id),
                    move |ch| session::serve_tcp(stream, peer, shared, permit, ch),
                );
            }
            Accepted::Unix(stream, path) => {
                let peer = Peer::Unix(path);
                tasks.spawn(
                    format!("forward input {} conn {peer}", shared.id),
                    move |ch| session::serve_unix(stream, peer, shared, permit, ch),
                );
            }
        }
    }
}
