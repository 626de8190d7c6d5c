//! Shared helpers for tests that run the real `ferry` binary and real clients.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

/// A port free on 127.0.0.1 for TCP and UDP (the forward input binds both), never handed out
/// twice in this process, found without opening a socket: tests run in parallel and spawn
/// processes (see `ferry_bench::ferryproc::free_port`).
pub fn free_port() -> u16 {
    ferry_bench::ferryproc::free_port().expect("a free port")
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A running ferry process, killed when dropped (also when the test panics). Its stdout and
/// stderr lines are collected by background threads.
pub struct Ferry {
    pub child: Child,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
    pub _dir: tempfile::TempDir,
}

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(stream: impl std::io::Read + Send + 'static, echo: &'static str) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("FERRY_TEST_ECHO").is_some() {
                eprintln!("[ferry {echo}] {line}");
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Gives ferry a root directory of its own inside the test's directory (unless the test chose
/// one): default buffers and spills stay out of the machine's `/var/lib/ferry`.
fn own_root(cmd: &mut Command, dir: &Path) {
    if !cmd.get_envs().any(|(k, _)| k == "FERRY_ROOT_DIR") {
        cmd.env("FERRY_ROOT_DIR", dir.join("root"));
    }
}

/// Starts `cmd` with its stdout and stderr read line by line on threads.
fn spawn_piped(mut cmd: Command) -> (Child, Receiver<String>, Receiver<String>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferry");
    let stdout = pump(child.stdout.take().unwrap(), "stdout");
    let stderr = pump(child.stderr.take().unwrap(), "stderr");
    (child, stdout, stderr)
}

pub fn ferry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

impl Ferry {
    /// Starts ferry with `config` (written to a temp file) and waits until `port` accepts.
    pub fn start(config: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.conf");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(ferry_bin());
        cmd.arg("-c").arg(&path);
        Self::spawn(cmd, dir, port)
    }

    /// Starts ferry with `config` (no listening socket needed): waits for its "started" log
    /// line. `env` is added to ferry's environment.
    pub fn start_logged(config: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.conf");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(ferry_bin());
        cmd.arg("-c").arg(&path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        own_root(&mut cmd, dir.path());
        let (child, stdout, stderr) = spawn_piped(cmd);
        let (tx, seen) = channel();
        let mut ferry = Self {
            child,
            stdout,
            stderr: seen,
            _dir: dir,
        };
        // Forward stderr, watching for the start line.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match stderr.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let started = line.contains("]: ferry ") && line.contains(" started");
                    let _ = tx.send(line);
                    if started {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = ferry.child.wait().unwrap();
                    let logs: Vec<String> = ferry.stderr.try_iter().collect();
                    panic!(
                        "ferry exited with {status} before starting:\n{}",
                        logs.join("\n")
                    );
                }
            }
            assert!(Instant::now() < deadline, "ferry did not start within 20 s");
        }
        thread::spawn(move || {
            for line in stderr {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ferry
    }

    /// Starts ferry on its embedded default configuration (port 24224).
    pub fn start_default() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn(Command::new(ferry_bin()), dir, 24224)
    }

    fn spawn(cmd: Command, dir: tempfile::TempDir, port: u16) -> Self {
        Self::launch(cmd, dir, &format!("listening on {port}"), |_| {
            ferry_bench::ferryproc::listening(port)
        })
    }

    /// Spawns `cmd`, pumps its output, and waits up to 20 s for `ready(dir)`; fails with the
    /// process's log if it exits first.
    fn launch(
        mut cmd: Command,
        dir: tempfile::TempDir,
        what: &str,
        ready: impl Fn(&Path) -> bool,
    ) -> Self {
        own_root(&mut cmd, dir.path());
        let (child, stdout, stderr) = spawn_piped(cmd);
        let mut ferry = Self {
            child,
            stdout,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(ferry._dir.path()) {
            if let Ok(Some(status)) = ferry.child.try_wait() {
                let logs: Vec<String> = ferry.stderr.try_iter().collect();
                panic!(
                    "ferry exited with {status} before {what}:\n{}",
                    logs.join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "ferry was not {what} within 20 s"
            );
            thread::sleep(Duration::from_millis(20));
        }
        if let Ok(Some(status)) = ferry.child.try_wait() {
            let logs: Vec<String> = ferry.stderr.try_iter().collect();
            panic!(
                "ferry exited with {status} while another process answered for it:
{}",
                logs.join("\n")
            );
        }
        ferry
    }

    /// Collects `n` stdout lines, failing after `timeout`.
    pub fn stdout_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        collect(&self.stdout, n, timeout, "stdout")
    }

    /// Stderr lines received so far.
    pub fn stderr_so_far(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Whether the process still runs, its log, and what listens on `port`: for the message of
    /// a failed test. Waits up to a second for a process that is exiting, so that its last log
    /// lines arrive.
    pub fn report(&mut self, port: u16) -> String {
        let deadline = Instant::now() + Duration::from_secs(1);
        let state = loop {
            match self.child.try_wait() {
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Ok(None) => break format!("ferry (pid {}) is running", self.child.id()),
                Ok(Some(status)) => {
                    // Its pipe closes with it; give the pump a moment to deliver the last lines.
                    thread::sleep(Duration::from_millis(100));
                    break format!("ferry (pid {}) exited: {status}", self.child.id());
                }
                Err(e) => break format!("ferry's state is unknown: {e}"),
            }
        };
        let holders = Command::new("ss")
            .args(["-Htanup", &format!("sport = :{port}")])
            .output()
            .map_or_else(
                |e| format!("(ss: {e})"),
                |o| String::from_utf8_lossy(&o.stdout).into_owned(),
            );
        format!(
            "{state}; sockets on port {port}:\n{holders}its log:\n{}",
            self.stderr_so_far().join("\n")
        )
    }
}

pub fn collect(rx: &Receiver<String>, n: usize, timeout: Duration, what: &str) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::with_capacity(n);
    while lines.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "got {} of {n} {what} lines within {timeout:?}: {lines:#?}",
                    lines.len()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!(
                    "{what} closed after {} of {n} lines: {lines:#?}",
                    lines.len()
                )
            }
        }
    }
    lines
}

/// The Python interpreter of the test venv (with fluent-logger and msgpack), installed by
/// `scripts/test`. `None` (and a note) when it is missing and the run does not require it;
/// a failure when `FERRY_TEST_DEPS=1` (as in CI), so a missing install cannot pass silently.
pub fn python() -> Option<PathBuf> {
    let path = std::env::var_os("FERRY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".test-deps/venv/bin/python"));
    let ok = Command::new(&path)
        .args(["-c", "import fluent.sender, msgpack"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(path);
    }
    assert!(
        std::env::var_os("FERRY_TEST_DEPS").is_none(),
        "the Python test venv is missing at {}: scripts/test installs it",
        path.display()
    );
    eprintln!("skipping: no Python venv with fluent-logger (run scripts/test to install it)");
    None
}

/// Runs a Python script with the test venv; panics with its output if it fails.
pub fn run_python(python: &Path, script: &str, args: &[&str]) -> String {
    let mut child = Command::new(python)
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The captured wire vectors shipped beside the repository.
pub fn vectors_dir() -> PathBuf {
    std::env::var_os("FERRY_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/vectors"))
}

/// A Forward client that sends numbered events (`{"seq": n, "pad": ...}`) in PackedForward
/// requests with a `chunk` id and waits for each ack. Returns the sequence numbers whose ack
/// arrived; stops at the first error (the server was killed, say).
pub struct AckedSender {
    stream: TcpStream,
    next_chunk: u64,
}

impl AckedSender {
    pub fn connect(port: u16) -> std::io::Result<Self> {
        Self::from_stream(TcpStream::connect(("127.0.0.1", port))?)
    }

    /// Connects to `addr`; a send fails when its ack takes longer than `timeout`.
    pub fn connect_addr(addr: std::net::SocketAddr, timeout: Duration) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        let sender = Self::from_stream(stream)?;
        sender.stream.set_read_timeout(Some(timeout))?;
        Ok(sender)
    }

    /// Sends on a connection already open (30 s ack timeout).
    pub fn from_stream(stream: TcpStream) -> std::io::Result<Self> {
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            next_chunk: 0,
        })
    }

    /// Sends events `seqs` as one request and waits for its ack.
    pub fn send(
        &mut self,
        tag: &str,
        seqs: std::ops::Range<u64>,
        pad: usize,
    ) -> std::io::Result<()> {
        use bytes::BytesMut;
        use ferry_proto::encode::write_entry;
        use ferry_proto::msgpack::Value;
        use ferry_proto::time::EventTime;
        let mut entries = BytesMut::new();
        let count = seqs.end - seqs.start;
        let padding = "x".repeat(pad);
        for seq in seqs {
            let record = Value::Map(vec![
                (Value::Str("seq".into()), Value::UInt(seq)),
                (Value::Str("pad".into()), Value::Str(padding.clone().into())),
            ]);
            let time = EventTime {
                sec: 1_700_000_000 + (seq % 100_000) as u32,
                nsec: 0,
            };
            write_entry(&mut entries, time, false, &record.to_bytes());
        }
        self.send_entries(tag, &entries, count)
    }

    /// Sends `entries` (msgpack `[time, record]` entries, valid or not) as one request and
    /// waits for its ack.
    pub fn send_entries(&mut self, tag: &str, entries: &[u8], count: u64) -> std::io::Result<()> {
        use bytes::BytesMut;
        use ferry_proto::encode::encode_packed_forward;
        use ferry_proto::options::{ChunkId, Compression};
        self.next_chunk += 1;
        let chunk = ChunkId::str(format!("chunk-{}-{}", std::process::id(), self.next_chunk));
        let mut req = BytesMut::new();
        encode_packed_forward(
            &mut req,
            tag,
            entries,
            count,
            Some(&chunk),
            Compression::Text,
        );
        self.stream.write_all(&req)?;
        let expected = ferry_proto::ack::encode_ack(&chunk);
        let mut got = vec![0u8; expected.len()];
        std::io::Read::read_exact(&mut self.stream, &mut got)?;
        if got != expected[..] {
            return Err(std::io::Error::other("ack does not match the chunk"));
        }
        Ok(())
    }
}

/// The `seq` values of JSON lines (as printed by a stdout output with `<format> @type json`).
pub fn seqs_of(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}

/// Sends SIGKILL (or another signal) to a process.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid} failed");
}

impl Ferry {
    /// The configuration file this ferry was started with (tests rewrite it before SIGHUP).
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("ferry.conf")
    }
}

/// A child process killed when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A program the test script installs (path from `env`, else `name` on PATH). `None` with a
/// note when missing and not required; a failure when `FERRY_TEST_DEPS=1`.
pub fn program(env: &str, name: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env).map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    });
    if let Some(p) = path.filter(|p| p.is_file()) {
        return Some(p);
    }
    assert!(
        std::env::var_os("FERRY_TEST_DEPS").is_none(),
        "{name} is missing: scripts/test installs it"
    );
    eprintln!("skipping: {name} is not installed (run scripts/test to install it)");
    None
}

/// A program the interoperability tests need: `None` (and a note) when it is missing and the
/// run does not require it; a failure when `FERRY_TEST_DEPS=1`.
fn optional_dep(what: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    if found.is_some() {
        return found;
    }
    assert!(
        std::env::var_os("FERRY_TEST_DEPS").is_none(),
        "{what} is missing: scripts/test installs it"
    );
    eprintln!("skipping: {what} is missing (run scripts/test to install it)");
    None
}

/// The `node_modules` directory holding `@fluent-org/logger` (with `node` on PATH).
pub fn node_modules() -> Option<PathBuf> {
    let dir = std::env::var_os("FERRY_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".test-deps/node/node_modules"));
    let node_ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let found = (node_ok && dir.join("@fluent-org/logger/package.json").is_file()).then_some(dir);
    optional_dep("node with @fluent-org/logger", found)
}

/// Runs `crates/ferry/tests/clients/<script>` with node; panics with its output if it fails.
pub fn run_node(modules: &Path, script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = Command::new("node")
        .arg(&path)
        .args(args)
        .env("NODE_PATH", modules)
        .stdin(Stdio::null())
        .output()
        .expect("start node");
    assert!(
        out.status.success(),
        "node {script} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Go fluent-logger-golang sender built from `tests/clients/go_sender.go`.
pub fn go_sender() -> Option<PathBuf> {
    let path = std::env::var_os("FERRY_TEST_GO_SENDER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".test-deps/go-fluent-sender"));
    optional_dep(
        "the Go fluent-logger sender",
        path.is_file().then_some(path),
    )
}

impl Ferry {
    /// Starts `cmd` (ferry, possibly wrapped, e.g. by `prlimit`) with `config` written to
    /// `ferry.conf` in a temp dir (`{dir}` in `config` is replaced with that dir's path), and
    /// waits until `ready()` holds. `cmd` gets `-c <path>` appended.
    pub fn start_cmd(mut cmd: Command, config: &str, ready: impl Fn(&Path) -> bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config.replace("{dir}", &dir.path().display().to_string());
        let path = dir.path().join("ferry.conf");
        std::fs::write(&path, config).unwrap();
        cmd.arg("-c").arg(&path);
        Self::launch(cmd, dir, "ready", ready)
    }

    /// The temp dir ferry's configuration lives in (for sockets and certificates).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Waits until a stderr line contains `needle`; returns it. Lines read while waiting are
    /// kept in `seen`.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration, seen: &mut Vec<String>) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    seen.push(line.clone());
                    if hit {
                        return line;
                    }
                }
                Err(_) => panic!("no stderr line with {needle:?} within {timeout:?}: {seen:#?}"),
            }
        }
    }
}

/// A ready check for [`Ferry::start_cmd`]: TCP `port` on 127.0.0.1 accepts.
pub fn tcp_ready(port: u16) -> impl Fn(&Path) -> bool {
    move |_| ferry_bench::ferryproc::listening(port)
}

/// A test CA with a server certificate (for `localhost` and 127.0.0.1) and a client
/// certificate signed by it, written as PEM files in a temp dir.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA nobody trusts, for negative tests.
    pub other_ca_cert: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        };
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            let cert = p.self_signed(&key).unwrap();
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("ferry test CA");
        let (other_ca, _) = ca("untrusted CA");
        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.extended_key_usages = vec![usage];
            p.distinguished_name.push(DnType::CommonName, "ferry test");
            let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            vec!["client.example".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Self {
            ca_cert: write("ca.pem", &ca_cert.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            other_ca_cert: write("other-ca.pem", &other_ca.pem()),
            _dir: dir,
        }
    }
}

/// A PackedForward request of `count` events, each `record` (one msgpack map), tagged `tag`,
/// asking for an ack with `chunk`.
pub fn packed_request(tag: &str, record: &[u8], count: usize, chunk: &str) -> Vec<u8> {
    use ferry_proto::encode::{encode_packed_forward, write_entry};
    use ferry_proto::options::{ChunkId, Compression};
    let mut entries = bytes::BytesMut::new();
    for _ in 0..count {
        write_entry(
            &mut entries,
            ferry_proto::time::EventTime::new(1_700_000_000, 1),
            false,
            record,
        );
    }
    let mut out = bytes::BytesMut::new();
    let chunk = ChunkId::str(chunk.as_bytes().to_vec());
    encode_packed_forward(
        &mut out,
        tag,
        &entries,
        count as u64,
        Some(&chunk),
        Compression::Text,
    );
    out.to_vec()
}

/// A msgpack map of `pairs` with str values.
pub fn str_record(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    use ferry_proto::msgpack;
    let mut record = bytes::BytesMut::new();
    msgpack::write_map_len(&mut record, pairs.len());
    for (k, v) in pairs {
        msgpack::write_str(&mut record, k.as_bytes());
        msgpack::write_str(&mut record, v);
    }
    record.to_vec()
}

/// Reads the next ack from `s` (bytes already read are kept in `buf`) and returns its chunk id;
/// `Err` when the connection ends or fails first.
pub fn read_ack(s: &mut impl std::io::Read, buf: &mut bytes::BytesMut) -> std::io::Result<Vec<u8>> {
    let mut d = ferry_proto::frame::FrameDecoder::new(1024);
    loop {
        if let Some(f) = d.decode(buf).unwrap() {
            return Ok(ferry_proto::ack::parse_ack(&f).unwrap().bytes.to_vec());
        }
        let mut b = [0u8; 512];
        let n = s.read(&mut b)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&b[..n]);
    }
}

/// Runs `ferry --dry-run` on `config`: (success, stdout, stderr).
pub fn dry_run(config: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.conf");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(ferry_bin())
        .arg("--dry-run")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `/metrics` text of the prometheus source on 127.0.0.1:`admin`.
pub fn metrics(admin: u16) -> String {
    ferry::http::client::get(&format!("127.0.0.1:{admin}"), "/metrics")
        .unwrap()
        .1
}

/// The value of the metric line of `text` starting with `prefix` (name and labels).
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

/// `ferry status` against the monitor API on `admin`: its stdout (it must succeed).
pub fn ferry_status(admin: u16, interval: &str) -> String {
    let out = Command::new(ferry_bin())
        .args([
            "status",
            "--url",
            &format!("127.0.0.1:{admin}"),
            "--interval",
            interval,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
