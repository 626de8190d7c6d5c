//! Running ferry as a real process: a config file, stderr into a log file, readiness by a port
//! that accepts or by ferry's "ferry ... started" log line, signals, and kill on drop. Another
//! program that takes `-c FILE` (Fluentd) runs the same way ([`Ferry::start_command`]).

use std::ffi::OsString;
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
    /// The "ferry ... started" line is in the log (a line written by this life of the
    /// process: after a restart, the lines of the earlier lives do not count).
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
    /// Arguments before `-c FILE` (empty for ferry).
    args: Vec<OsString>,
    /// Whether stdout goes to the log too (a peer that logs to stdout), or to /dev/null.
    stdout_to_log: bool,
    conf: PathBuf,
    ready: Ready,
    /// Length of the log when this life of the process was spawned.
    log_start: u64,
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
        Ferry::launch(bin, Vec::new(), false, dir, name, config, ready)
    }

    /// Write `config` to `DIR/NAME.conf` and run `COMMAND... -c DIR/NAME.conf` (the command
    /// split at white space, as `FLUENTD_CMD` is given), stdout and stderr into the log; wait
    /// until `ready` (a port: [`Ready::Started`] is ferry's line).
    pub fn start_command(
        command: &str,
        dir: &Path,
        name: &str,
        config: &str,
        ready: Ready,
    ) -> Result<Ferry, FerryError> {
        let mut words = command.split_whitespace();
        let Some(program) = words.next() else {
            return Err(FerryError::NoBinary(PathBuf::new()));
        };
        let args = words.map(OsString::from).collect();
        Ferry::launch(Path::new(program), args, true, dir, name, config, ready)
    }

    fn launch(
        bin: &Path,
        args: Vec<OsString>,
        stdout_to_log: bool,
        dir: &Path,
        name: &str,
        config: &str,
        ready: Ready,
    ) -> Result<Ferry, FerryError> {
        let io = |what| {
            let name = name.to_owned();
            move |source| FerryError::Io { name, what, source }
        };
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(&conf, config).map_err(io("write config"))?;
        let log = dir.join(format!("{name}.log"));
        let log_start = log_len(&log);
        let mut f = Ferry {
            name: name.to_owned(),
            child: spawn(bin, &args, stdout_to_log, &conf, &log).map_err(io("spawn"))?,
            pid: Arc::new(AtomicU32::new(0)),
            log,
            bin: bin.to_owned(),
            args,
            stdout_to_log,
            conf,
            ready,
            log_start,
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
                Ready::Started => read_log_from(&self.log, self.log_start)
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
        self.log_start = log_len(&self.log);
        self.child = spawn(
            &self.bin,
            &self.args,
            self.stdout_to_log,
            &self.conf,
            &self.log,
        )
        .map_err(|source| FerryError::Io {
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

fn spawn(
    bin: &Path,
    args: &[OsString],
    stdout_to_log: bool,
    conf: &Path,
    log: &Path,
) -> std::io::Result<Child> {
    let log = File::options().create(true).append(true).open(log)?;
    let stdout = if stdout_to_log {
        Stdio::from(log.try_clone()?)
    } else {
        Stdio::null()
    };
    // Each process keeps its state (default buffers, spills) beside its configuration.
    Command::new(bin)
        .args(args)
        .arg("-c")
        .arg(conf)
        .env("FERRY_ROOT_DIR", conf.with_extension("root"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .spawn()
}

/// The length of a log file (0 when it does not exist yet).
fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The log from byte `from` on (what one life of a restarted process wrote).
fn read_log_from(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    String::from_utf8_lossy(&text[from..]).into_owned()
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

/// The local ports of the established IPv4 TCP connections whose remote port is `port`: the
/// client ends of connections to a server on that port (`/proc/net/tcp`).
pub fn connections_to(port: u16) -> std::io::Result<std::collections::HashSet<u16>> {
    Ok(clients_of(&read_table("tcp")?, port).collect())
}

/// The local ports of the established connections (state 01) of a table whose remote port
/// (the hex after the last `:` of the third column, `rem_address`) is `port`.
fn clients_of(table: &str, port: u16) -> impl Iterator<Item = u16> + '_ {
    table.lines().skip(1).filter_map(move |line| {
        let mut cols = line.split_whitespace().skip(1);
        let (_, local) = cols.next()?.rsplit_once(':')?;
        let (_, remote) = cols.next()?.rsplit_once(':')?;
        let established = cols.next()? == "01";
        (established && u16::from_str_radix(remote, 16).ok()? == port)
            .then(|| u16::from_str_radix(local, 16).ok())
            .flatten()
    })
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
    fn a_restarted_process_is_ready_on_its_own_started_line_not_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-ferry.sh");
        std::fs::write(
            &script,
            "sleep 0.4\necho \"ferry 0.0.0 started (pid $$)\" >&2\nexec sleep 30\n",
        )
        .unwrap();
        let command = format!("sh {}", script.display());
        let mut p = Ferry::start_command(&command, dir.path(), "fake", "", Ready::Started).unwrap();
        let first = p.id();
        p.kill();
        assert_eq!(p.pid.load(Ordering::Relaxed), 0);
        let t = Instant::now();
        p.restart().unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(350),
            "ready on the first life's line after {:?}",
            t.elapsed()
        );
        assert_ne!(p.id(), first);
        assert_eq!(p.pid.load(Ordering::Relaxed), p.id());
        assert_eq!(p.log_text().matches(" started ").count(), 2);
    }

    #[test]
    fn clients_of_a_port_are_the_established_sockets_whose_remote_end_it_is() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n   \
                     0: 0100007F:5EB8 00000000:0000 0A 00000000:00000000\n   \
                     1: 0100007F:9C40 0100007F:5EB8 01 00000000:00000000\n   \
                     2: 0100007F:5EB8 0100007F:9C40 01 00000000:00000000\n   \
                     3: 0100007F:9C41 0100007F:5EB8 06 00000000:00000000\n";
        assert_eq!(clients_of(table, 0x5EB8).collect::<Vec<_>>(), vec![0x9C40]);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(connections_to(port).unwrap().is_empty());
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mine = c.local_addr().unwrap().port();
        assert!(connections_to(port).unwrap().contains(&mine));
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
        // The kernel tears the listener down with the connection still queued on it: allowed
        // a moment, as a readiness loop would allow it.
        let gone = (0..100).any(|_| {
            let gone = !tcp_listener_on(port);
            if !gone {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            gone
        });
        assert!(gone, "the listener on {port} stayed in the kernel tables");
    }
}
