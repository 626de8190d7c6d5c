//! Running ferry as a real process: a config file, stderr into a log file, readiness by a port
//! that accepts or by ferry's "ferry ... started" log line, signals, and kill on drop.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a process may take to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a ferry process could not be run.
#[derive(Debug, thiserror::Error)]
pub enum FerryError {
    #[error(
        "ferry binary {0} not found (build it: cargo build --release -p ferry, or pass --ferry PATH)"
    )]
    NoBinary(PathBuf),
    #[error("{name}: {what}: {source}")]
    Io {
        name: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) before it was ready; its log:\n{log}")]
    Exited {
        name: String,
        status: String,
        log: String,
    },
    #[error("{name} was not ready within {secs} s; its log:\n{log}")]
    NotReady {
        name: String,
        secs: u64,
        log: String,
    },
}

impl FerryError {
    /// True when running again cannot help (no binary, bad configuration).
    pub fn is_fatal(&self) -> bool {
        matches!(self, FerryError::NoBinary(_) | FerryError::Exited { .. })
    }
}

/// When a started process counts as ready.
#[derive(Debug, Clone, Copy)]
pub enum Ready {
    /// This port on 127.0.0.1 accepts connections.
    Port(u16),
    /// The "ferry ... started" line is in the log.
    Started,
}

/// A ferry process, killed when dropped.
pub struct Ferry {
    pub name: String,
    child: Child,
    /// The pid, shared with samplers (updated on restart, 0 while not running).
    pub pid: Arc<AtomicU32>,
    pub log: PathBuf,
    bin: PathBuf,
    conf: PathBuf,
    ready: Ready,
}

/// True when a TCP listener on 127.0.0.1:`port` accepts a connection.
///
/// A connection whose two ends are the same address is not a listener: on Linux, connecting to
/// a port of the ephemeral range that nobody listens on can pick that same port as the source
/// and connect the socket to itself (TCP simultaneous open). A readiness loop that retries every
/// few milliseconds meets this now and then, and would call a process ready before it listens.
pub fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

/// Whether a TCP socket of this network namespace listens on `port` (IPv4 or IPv6), read from
/// the kernel's tables without connecting: for peers that log an error or misbehave when a
/// readiness probe connects and closes without speaking (Fluent Bit's TLS input does both).
pub fn tcp_listener_on(port: u16) -> bool {
    ["tcp", "tcp6"].iter().any(|table| {
        read_table(table).is_ok_and(|text| {
            // State 0A is LISTEN.
            sockets(&text).any(|(p, state)| p == port && state == "0A")
        })
    })
}

/// The log lines written so far.
pub fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Ferry {
    /// Write `config` to `DIR/NAME.conf` and start ferry on it; wait until `ready`.
    pub fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        config: &str,
        ready: Ready,
    ) -> Result<Ferry, FerryError> {
        if !bin.is_file() {
            return Err(FerryError::NoBinary(bin.to_owned()));
        }
        let io = |what| {
            let name = name.to_owned();
            move |source| FerryError::Io { name, what, source }
        };
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(&conf, config).map_err(io("write config"))?;
        let log = dir.join(format!("{name}.log"));
        let mut f = Ferry {
            name: name.to_owned(),
            child: spawn(bin, &conf, &log).map_err(io("spawn"))?,
            pid: Arc::new(AtomicU32::new(0)),
            log,
            bin: bin.to_owned(),
            conf,
            ready,
        };
        f.pid.store(f.child.id(), Ordering::Relaxed);
        f.wait_ready()?;
        Ok(f)
    }

    fn wait_ready(&mut self) -> Result<(), FerryError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ok = match self.ready {
                Ready::Port(p) => listening(p),
                Ready::Started => read_log(&self.log)
                    .lines()
                    .any(|l| l.contains("ferry ") && l.contains(" started")),
            };
            if ok {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.pid.store(0, Ordering::Relaxed);
                return Err(FerryError::Exited {
                    name: self.name.clone(),
                    status: status.to_string(),
                    log: tail(&read_log(&self.log), 30),
                });
            }
            if Instant::now() >= deadline {
                return Err(FerryError::NotReady {
                    name: self.name.clone(),
                    secs: START_TIMEOUT.as_secs(),
                    log: tail(&read_log(&self.log), 30),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The current pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by name (`STOP`, `CONT`, `TERM`) with kill(1).
    pub fn signal(&self, sig: &str) -> Result<(), FerryError> {
        let status = Command::new("kill")
            .arg("-s")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .map_err(|source| FerryError::Io {
                name: self.name.clone(),
                what: "kill(1)",
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(FerryError::Io {
                name: self.name.clone(),
                what: "kill(1)",
                source: std::io::Error::other(format!("kill -s {sig} failed: {status}")),
            })
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.pid.store(0, Ordering::Relaxed);
    }

    /// Start the same configuration again (after [`Ferry::kill`]); the log is appended to.
    pub fn restart(&mut self) -> Result<(), FerryError> {
        self.kill();
        self.child = spawn(&self.bin, &self.conf, &self.log).map_err(|source| FerryError::Io {
            name: self.name.clone(),
            what: "spawn",
            source,
        })?;
        self.pid.store(self.child.id(), Ordering::Relaxed);
        self.wait_ready()
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly when it holds children.
        let _ = self.signal("CONT");
        self.kill();
    }
}

fn spawn(bin: &Path, conf: &Path, log: &Path) -> std::io::Result<Child> {
    let log = File::options().create(true).append(true).open(log)?;
    // Each process keeps its state (default buffers, spills) beside its configuration.
    Command::new(bin)
        .arg("-c")
        .arg(conf)
        .env("FERRY_ROOT_DIR", conf.with_extension("root"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
}

/// Check a configuration with `ferry --dry-run -c FILE`; the error holds ferry's report.
pub fn dry_run(bin: &Path, conf: &Path) -> Result<(), FerryError> {
    let out = Command::new(bin)
        .arg("--dry-run")
        .arg("-c")
        .arg(conf)
        .output()
        .map_err(|source| FerryError::Io {
            name: "dry-run".into(),
            what: "spawn",
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FerryError::Exited {
            name: "ferry --dry-run".into(),
            status: out.status.to_string(),
            log: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Ports handed out by [`free_port`] lie in `FREE_PORTS`: below the kernel's ephemeral range
/// (32768-60999 by default), so no `bind(0)` and no outgoing connection takes one.
const FREE_PORTS: std::ops::Range<u16> = 10_000..32_000;

/// A port free on 127.0.0.1 for both TCP and UDP a moment ago, never the same twice in one
/// process.
///
/// Candidates come from a counter that starts at a per-process offset and only moves forward,
/// so no candidate is one this process handed out before. A candidate is free when no socket
/// of this network namespace, TCP or UDP, has it as its local port (`/proc/net/{tcp,udp}{,6}`).
///
/// Checking by reading the kernel's tables rather than binding matters twice over:
/// - picking with `bind(0)` lets the kernel offer a port that another thread was just given;
/// - a check that binds and listens, however briefly, can outlive itself: a thread that forks
///   a child at that moment gives the child a copy of the listening socket, which lives until
///   the child's `exec`. The owner's server then fails with "address in use", and its
///   readiness probe is answered by the copy, which resets the connection when it closes.
pub fn free_port() -> std::io::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(FREE_PORTS.end - FREE_PORTS.start);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let seed = (std::process::id().wrapping_mul(7919) ^ nanos) % span;
        let _ = NEXT.compare_exchange(0, seed + 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    let used = ports_in_use()?;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FREE_PORTS.start + (n % span) as u16;
        if !used.contains(&port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free port in {FREE_PORTS:?}"),
    ))
}

/// The local ports of every TCP and UDP socket (IPv4 and IPv6) of this network namespace.
pub fn ports_in_use() -> std::io::Result<std::collections::HashSet<u16>> {
    let mut used = std::collections::HashSet::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        used.extend(local_ports(&read_table(table)?));
    }
    Ok(used)
}

/// `/proc/net/<table>`; a table a kernel without IPv6 lacks (`tcp6`, `udp6`) reads as empty.
fn read_table(table: &str) -> std::io::Result<String> {
    match std::fs::read_to_string(format!("/proc/net/{table}")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && table.ends_with('6') => {
            Ok(String::new())
        }
        other => other,
    }
}

/// The sockets of a `/proc/net/{tcp,udp}{,6}` table, on every line after the header: the local
/// port (the hex after the last `:` of the second column, `local_address`) and the state (the
/// fourth column, `st`).
fn sockets(table: &str) -> impl Iterator<Item = (u16, &str)> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let mut cols = line.split_whitespace().skip(1);
        let (_, port) = cols.next()?.rsplit_once(':')?;
        let state = cols.nth(1).unwrap_or("");
        Some((u16::from_str_radix(port, 16).ok()?, state))
    })
}

/// The local ports of a `/proc/net/{tcp,udp}{,6}` table.
fn local_ports(table: &str) -> impl Iterator<Item = u16> + '_ {
    sockets(table).map(|(port, _)| port)
}

/// The `ferry` binary next to the running executable (`target/release/ferry` for
/// `target/release/ferry-bench`; the parent directory too, for test binaries in `deps/`).
pub fn default_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let here = dir.join("ferry");
    if here.is_file() {
        return here;
    }
    dir.parent().map_or(here.clone(), |p| p.join("ferry"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_outside_the_ephemeral_range_and_never_repeat() {
        let ports: Vec<u16> = (0..500).map(|_| free_port().unwrap()).collect();
        assert!(ports.iter().all(|p| FREE_PORTS.contains(p)), "{ports:?}");
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len());
        // Each one is really free.
        for p in &ports[..20] {
            std::net::TcpListener::bind(("127.0.0.1", *p)).unwrap();
        }
    }

    #[test]
    fn ports_held_by_a_socket_of_any_kind_are_in_use() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp6 = std::net::TcpListener::bind("[::1]:0").ok();
        let used = ports_in_use().unwrap();
        assert!(used.contains(&tcp.local_addr().unwrap().port()));
        assert!(used.contains(&udp.local_addr().unwrap().port()));
        if let Some(l) = tcp6 {
            assert!(used.contains(&l.local_addr().unwrap().port()));
        }
        // A connected socket's local port counts too.
        let client = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        assert!(
            ports_in_use()
                .unwrap()
                .contains(&client.local_addr().unwrap().port())
        );
    }

    #[test]
    fn local_ports_reads_the_local_address_column() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n   \
                     0: 0100007F:5EB8 00000000:0000 0A 00000000:00000000\n   \
                     1: 00000000000000000000000001000000:2710 00000000000000000000000000000000:0000 0A\n";
        assert_eq!(local_ports(table).collect::<Vec<_>>(), vec![0x5EB8, 10_000]);
    }

    #[test]
    fn a_port_is_listening_only_while_a_listener_holds_it() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listening(port));
        drop(l);
        // Retried as a readiness loop would: no attempt may count a self-connected socket.
        for _ in 0..200 {
            assert!(!listening(port));
        }
    }

    #[test]
    fn a_listener_is_seen_in_the_kernel_tables_and_a_connected_socket_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(tcp_listener_on(port));
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let client_port = client.local_addr().unwrap().port();
        assert!(!tcp_listener_on(client_port));
        drop(l);
        assert!(!tcp_listener_on(port));
    }
}
