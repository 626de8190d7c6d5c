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
