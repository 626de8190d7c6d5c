//! Binding the sockets of a network input. Every error names the input and the address, and
//! every socket is bound before the input's `start` returns, so an address in use or an
//! unresolvable `bind` fails start-up with a clear error.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::{TcpListener, TcpSocket, UnixListener};

/// File descriptors ferry keeps for itself besides connections (logs, buffers, sockets).
const FD_RESERVE: u64 = 64;

/// The address `bind:port` names (a name is resolved once, now).
pub async fn resolve_bind(name: &str, bind: &str, port: u16) -> anyhow::Result<SocketAddr> {
    match bind.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, port)),
        Err(_) => tokio::net::lookup_host((bind, port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .with_context(|| format!("{name}: cannot resolve bind address {bind}")),
    }
}

/// A TCP listener on `addr` (`SO_REUSEADDR`, `backlog`), and the address it got (the port
/// matters when `addr` asks for port 0).
pub fn bind_tcp(
    name: &str,
    addr: SocketAddr,
    backlog: u32,
) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .with_context(|| format!("{name}: cannot listen on tcp {addr}"))?;
    let listener = socket
        .listen(backlog)
        .with_context(|| format!("{name}: cannot listen on tcp {addr}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// A UDP socket on `addr` (blocking; the caller decides where it is read).
pub fn bind_udp(name: &str, addr: SocketAddr, what: &str) -> anyhow::Result<std::net::UdpSocket> {
    std::net::UdpSocket::bind(addr)
        .with_context(|| format!("{name}: cannot bind udp {addr} for {what}"))
}

/// Binds the Unix socket at `path`; a stale socket file (nobody listening) is replaced, a live
/// one is an error. `perm` sets the file's mode.
pub fn bind_unix(
    name: &str,
    path: &Path,
    perm: Option<u32>,
) -> anyhow::Result<(UnixListener, PathBuf)> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "{name}: unix socket {} is in use by another process",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| {
            format!("{name}: cannot remove stale unix socket {}", path.display())
        })?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("{name}: cannot listen on unix {}", path.display()))?;
    if let Some(mode) = perm {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("{name}: cannot set unix_perm on {}", path.display()))?;
    }
    Ok((listener, path.to_path_buf()))
}

/// The number of connection slots. `default` is lowered to fit the open file limit (so clients
/// wait in the backlog rather than accepts failing); a configured value is kept, with a warning
/// when the limit cannot hold it.
pub fn connection_slots(name: &str, configured: Option<usize>, default: usize) -> usize {
    let soft = open_file_limit();
    let fits =
        soft.map(|s| usize::try_from(s.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX));
    match (configured, fits) {
        (Some(n), Some(fits)) if n > fits => {
            tracing::warn!(
                "{name}: max_connections {n} is above what the open file limit allows ({}); beyond about {fits} connections accepts fail until some close (raise ulimit -n / LimitNOFILE)",
                soft.unwrap_or_default()
            );
            n
        }
        (Some(n), _) => n,
        (None, Some(fits)) if fits < default => {
            tracing::info!(
                "{name}: serving at most {fits} connections at once (the open file limit is {}; set max_connections or raise ulimit -n for more)",
                soft.unwrap_or_default()
            );
            fits
        }
        (None, _) => default,
    }
}

/// The soft `RLIMIT_NOFILE`, from /proc (Linux).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Where a kept socket listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug, Default)]
struct Kept {
    /// Each socket with the input that holds it now (a token from [`Sockets::owner`]).
    sockets: std::collections::HashMap<Key, (std::os::fd::OwnedFd, u64)>,
    next_owner: u64,
}

/// The listening sockets of the running configuration, by address, kept across reloads: an
/// input restarted by a reload takes the socket its predecessor had (a duplicate of the same
/// descriptor), so its address never stops listening and clients never see a refused
/// connection; connections wait in the backlog while the accept loops change hands. A socket
/// whose input is gone is closed by [`Self::retain_owners`].
#[derive(Debug, Default)]
pub struct Sockets {
    kept: std::sync::Mutex<Kept>,
}

fn dup(fd: &std::os::fd::OwnedFd) -> std::io::Result<std::os::fd::OwnedFd> {
    fd.try_clone()
}

impl Sockets {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A token naming one started input as the holder of the sockets it takes.
    pub fn owner(&self) -> u64 {
        let mut kept = self.lock();
        kept.next_owner += 1;
        kept.next_owner
    }

    /// A kept socket for `key` (now held by `owner`), if there is one.
    fn take(&self, key: &Key, owner: u64) -> Option<std::io::Result<std::os::fd::OwnedFd>> {
        let mut kept = self.lock();
        let (fd, holder) = kept.sockets.get_mut(key)?;
        *holder = owner;
        Some(dup(fd))
    }

    fn keep(&self, key: Key, fd: std::io::Result<std::os::fd::OwnedFd>, owner: u64) {
        if let Ok(fd) = fd {
            self.lock().sockets.insert(key, (fd, owner));
        }
    }

    /// [`bind_tcp`], or the socket already listening on `addr`.
    pub fn tcp(
        &self,
        owner: u64,
        name: &str,
        addr: SocketAddr,
        backlog: u32,
    ) -> anyhow::Result<(TcpListener, SocketAddr)> {
        use std::os::fd::AsFd;
        let key = Key::Tcp(addr);
        if addr.port() != 0
            && let Some(fd) = self.take(&key, owner)
        {
            let fd = fd.with_context(|| format!("{name}: cannot take over tcp {addr}"))?;
            // A changed backlog applies to the socket as it is.
            rustix::net::listen(&fd, i32::try_from(backlog).unwrap_or(i32::MAX))
                .with_context(|| format!("{name}: cannot listen on tcp {addr}"))?;
            let std = std::net::TcpListener::from(fd);
            std.set_nonblocking(true)?;
            let listener = TcpListener::from_std(std)?;
            let local = listener.local_addr()?;
            return Ok((listener, local));
        }
        let (listener, local) = bind_tcp(name, addr, backlog)?;
        let key = if addr.port() == 0 {
            Key::Tcp(local)
        } else {
            key
        };
        self.keep(key, listener.as_fd().try_clone_to_owned(), owner);
        Ok((listener, local))
    }

    /// [`bind_udp`], or the socket already bound to `addr`.
    pub fn udp(
        &self,
        owner: u64,
        name: &str,
        addr: SocketAddr,
        what: &str,
    ) -> anyhow::Result<std::net::UdpSocket> {
        use std::os::fd::AsFd;
        let key = Key::Udp(addr);
        if let Some(fd) = self.take(&key, owner) {
            let fd = fd.with_context(|| format!("{name}: cannot take over udp {addr}"))?;
            return Ok(std::net::UdpSocket::from(fd));
        }
        let socket = bind_udp(name, addr, what)?;
        self.keep(key, socket.as_fd().try_clone_to_owned(), owner);
        Ok(socket)
    }

    /// [`bind_unix`], or the socket already listening at `path` (`perm` is applied again).
    pub fn unix(
        &self,
        owner: u64,
        name: &str,
        path: &Path,
        perm: Option<u32>,
    ) -> anyhow::Result<(UnixListener, PathBuf)> {
        use std::os::fd::AsFd;
        let key = Key::Unix(path.to_path_buf());
        if let Some(fd) = self.take(&key, owner) {
            let fd =
                fd.with_context(|| format!("{name}: cannot take over unix {}", path.display()))?;
            if let Some(mode) = perm {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .with_context(|| {
                        format!("{name}: cannot set unix_perm on {}", path.display())
                    })?;
            }
            let std = std::os::unix::net::UnixListener::from(fd);
            std.set_nonblocking(true)?;
            return Ok((UnixListener::from_std(std)?, path.to_path_buf()));
        }
        let (listener, path) = bind_unix(name, path, perm)?;
        self.keep(
            Key::Unix(path.clone()),
            listener.as_fd().try_clone_to_owned(),
            owner,
        );
        Ok((listener, path))
    }

    /// Closes every socket whose holder is not among `owners` (inputs removed or replaced by a
    /// successor that listens elsewhere); a Unix socket's file is removed.
    pub fn retain_owners(&self, owners: &std::collections::HashSet<u64>) {
        self.lock().sockets.retain(|key, (_, owner)| {
            let keep = owners.contains(owner);
            if !keep && let Key::Unix(path) = key {
                let _ = std::fs::remove_file(path);
            }
            keep
        });
    }

    /// Closes every socket (the process stops); Unix socket files are removed.
    pub fn release_all(&self) {
        self.retain_owners(&std::collections::HashSet::new());
    }
}

/// Connections a stream input serves at once unless the open file limit says fewer.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// From accept to the end of the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How a stream input listens: its address, TLS, keepalive probes, listen backlog.
#[derive(Debug, Clone, Copy)]
pub struct StreamListen<'a> {
    pub addr: SocketAddr,
    pub transport: &'a crate::input::net::config::TransportConfig,
    /// `SO_KEEPALIVE` on accepted connections.
    pub tcp_keepalive: bool,
    pub backlog: u32,
}

/// Binds a stream input's address (TLS when its transport says so) and spawns its accept loop
/// serving `service`; returns the address bound and `tcp` or `tls`.
pub async fn serve_streams<S: super::Service>(
    start: &crate::input::Start<'_>,
    name: &str,
    listen: StreamListen<'_>,
    metrics: &std::sync::Arc<super::NetMetrics>,
    service: std::sync::Arc<S>,
) -> anyhow::Result<(SocketAddr, &'static str)> {
    use crate::input::net::config::TransportConfig;
    let tls = match listen.transport {
        TransportConfig::Tls(t) => Some(tokio_rustls::TlsAcceptor::from(
            super::tls::server_config(t).with_context(|| format!("{name}: <transport tls>"))?,
        )),
        TransportConfig::Tcp => None,
    };
    let kind = if tls.is_some() { "tls" } else { "tcp" };
    let (listener, local) = start
        .sockets
        .tcp(start.owner, name, listen.addr, listen.backlog)?;
    let slots = connection_slots(name, None, DEFAULT_MAX_CONNECTIONS);
    let net = std::sync::Arc::new(super::Net::new(
        name.to_string(),
        tls,
        HANDSHAKE_TIMEOUT,
        listen.tcp_keepalive,
        std::sync::Arc::clone(metrics),
        slots,
    ));
    let spawner = start.tasks.work.clone();
    start
        .tasks
        .listen
        .spawn(format!("{name} accept {local}"), move |h| {
            super::accept_loop(
                super::Listener::Tcp(listener),
                local.to_string(),
                net,
                service,
                spawner,
                h,
            )
        });
    Ok((local, kind))
}
