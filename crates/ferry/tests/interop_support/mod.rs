//! Live interoperability with the real peers in `../shared/peers/`: Fluentd 1.16.11 and Fluent
//! Bit 4.2.8, started as processes with configurations written per test.
//!
//! A cell is one peer, one direction and one mode. Numbered events go in through a Forward
//! input on the sending side (waves of several requests, each wave on its own connection) and are
//! read where the receiving side prints them: ferry's stdout output as JSON lines, Fluentd's
//! stdout output (`<time with nanoseconds> <tag>: <json>`), Fluent Bit's file output
//! (`<tag>: [<sec>.<nsec>, <json>]`). Every event must arrive exactly once with its tag, its
//! record and its EventTime, nanoseconds included.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use crate::common::{self, Pki, free_port};
use bytes::BytesMut;
use ferry_proto::encode::{encode_packed_forward, write_entry};
use ferry_proto::msgpack::Value;
use ferry_proto::options::{ChunkId, Compression};
use ferry_proto::time::EventTime;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Events per wave, requests per wave and waves per cell.
pub const WAVE: u64 = 1000;
pub const REQUESTS_PER_WAVE: u64 = 10;
pub const WAVES: u64 = 3;
/// The sender's ack timeout in the ack cells; the receiver is watched this long plus a margin
/// after the last event arrived, so that an ack the sender failed to match shows up as a
/// duplicate.
pub const ACK_TIMEOUT_S: u64 = 3;

pub const SHARED_KEY: &str = "interop-shared-key";
pub const USERNAME: &str = "interop-user";
pub const PASSWORD: &str = "interop-password";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    Fluentd,
    FluentBit,
}

impl PeerKind {
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Fluentd => "fluentd",
            PeerKind::FluentBit => "fluent-bit",
        }
    }
}

/// The Forward modes every cell runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Ack,
    Gzip,
    SharedKey,
    UserAuth,
    Tls,
    /// `<transport tls>` with `insecure true` and no certificate: the server makes a
    /// self-signed one at start; the client does not verify it (`tls_insecure_mode`).
    TlsInsecure,
}

impl Mode {
    fn shared_key(self) -> bool {
        matches!(self, Mode::SharedKey | Mode::UserAuth)
    }
}

/// How to start the peers: `FLUENTD_CMD` and `FLUENTBIT_BIN`, as `../shared/peers/setup.sh`
/// prints them (`scripts/test-deps.sh` exports both).
#[derive(Debug, Clone)]
pub struct Peers {
    fluentd: Vec<String>,
    fluentbit: PathBuf,
}

/// The peers, or `None` (with a note) when they are not set up and the run does not require
/// them; a failure when `FERRY_TEST_DEPS=1`, as in CI.
pub fn peers() -> Option<Peers> {
    let fluentd = std::env::var("FLUENTD_CMD")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let fluentbit = std::env::var_os("FLUENTBIT_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    match (fluentd, fluentbit) {
        (Some(fluentd), Some(fluentbit)) => Some(Peers {
            fluentd: fluentd.split_whitespace().map(str::to_owned).collect(),
            fluentbit,
        }),
        _ => {
            assert!(
                std::env::var_os("FERRY_TEST_DEPS").is_none(),
                "FLUENTD_CMD and FLUENTBIT_BIN are not set: scripts/test-deps.sh runs \
                 ../shared/peers/setup.sh, which installs the peers' dependencies and prints both"
            );
            eprintln!(
                "skipping: the real peers are not set up (eval \"$(../shared/peers/setup.sh)\")"
            );
            None
        }
    }
}

/// A running peer: killed when dropped. Its stdout and stderr are kept, in order, for the
/// message of a failed test; where it writes events is read by [`Output`].
pub struct PeerProc {
    pub kind: PeerKind,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
}

impl Drop for PeerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(stream: impl Read + Send + 'static, log: Arc<Mutex<Vec<String>>>, echo: String) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("FERRY_TEST_ECHO").is_some() {
                eprintln!("[{echo}] {line}");
            }
            log.lock().unwrap().push(line);
        }
    });
}

impl PeerProc {
    /// Starts `kind` with `config` and waits until it listens on `port`.
    pub fn start(peers: &Peers, kind: PeerKind, config: &str, port: u16) -> Self {
        Self::start_in_zone(peers, kind, config, port, "UTC")
    }

    /// [`Self::start`] with the process's `TZ` set to `tz`.
    pub fn start_in_zone(peers: &Peers, kind: PeerKind, config: &str, port: u16, tz: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config.replace("{dir}", &dir.path().display().to_string());
        let (mut cmd, file) = match kind {
            PeerKind::Fluentd => {
                let mut cmd = Command::new(&peers.fluentd[0]);
                cmd.args(&peers.fluentd[1..]);
                (cmd, "fluent.conf")
            }
            PeerKind::FluentBit => (Command::new(&peers.fluentbit), "fluent-bit.conf"),
        };
        let path = dir.path().join(file);
        std::fs::write(&path, &config).unwrap();
        cmd.arg("-c").arg(&path).env("TZ", tz);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", kind.name()));
        let log = Arc::new(Mutex::new(Vec::new()));
        pump(
            child.stdout.take().unwrap(),
            Arc::clone(&log),
            format!("{} {port}", kind.name()),
        );
        pump(
            child.stderr.take().unwrap(),
            Arc::clone(&log),
            format!("{} {port}", kind.name()),
        );
        let mut peer = Self {
            kind,
            child,
            log,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        // Not a connecting probe: Fluent Bit's TLS input logs an error for a connection that
        // closes before its handshake.
        while !ferry_bench::ferryproc::tcp_listener_on(port) {
            if let Ok(Some(status)) = peer.child.try_wait() {
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "{} exited with {status} before listening on {port}; its configuration:\n\
                     {config}\nits log:\n{}",
                    kind.name(),
                    peer.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {port} within 30 s; its log:\n{}",
                kind.name(),
                peer.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
        peer
    }

    /// Everything the peer printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the peer with SIGTERM and waits for it (up to 20 s, then SIGKILL).
    pub fn stop(mut self) {
        common::signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The tag of one cell's events.
pub fn tag_of(cell: &str) -> String {
    format!("interop.{cell}")
}

/// The EventTime of event `seq`: a distinct second and a distinct nanosecond part (0 for seq 0,
/// 9 digits for most).
pub fn time_of(seq: u64) -> (u64, u32) {
    let nsec = (seq * 7_919_993 + seq) % 1_000_000_000;
    (1_700_000_000 + seq, u32::try_from(nsec).unwrap())
}

/// The record of event `seq`: integers of both signs, a float, a string with escapes and
/// characters outside ASCII (one outside the BMP), a nested map and an array.
pub fn record_of(seq: u64) -> serde_json::Value {
    json!({
        "seq": seq,
        "msg": format!("event {seq} h\u{e9}llo \u{2713} \"quoted\" back\\slash tab\t \u{1F680}"),
        "nested": {"list": [1, "two", true, null], "neg": -1 - i64::try_from(seq).unwrap()},
        "ratio": 0.25,
    })
}

fn to_msgpack(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::UInt(u),
            (None, Some(i)) => Value::Int(i),
            _ => Value::F64(n.as_f64().unwrap()),
        },
        serde_json::Value::String(s) => Value::Str(s.clone().into_bytes().into()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(to_msgpack).collect()),
        serde_json::Value::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (Value::Str(k.clone().into_bytes().into()), to_msgpack(v)))
                .collect(),
        ),
    }
}

/// Sends events `seqs` tagged `tag` to 127.0.0.1:`port` as PackedForward requests of
/// `per_request` events on one connection. With `ack`, each request carries a chunk id and the
/// ack is awaited; without, the connection is closed after the last request and the server's
/// close is awaited (so the server read everything).
pub fn send_events(port: u16, tag: &str, seqs: std::ops::Range<u64>, per_request: u64, ack: bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut start = seqs.start;
    let mut buf = BytesMut::new();
    while start < seqs.end {
        let end = (start + per_request).min(seqs.end);
        let mut entries = BytesMut::new();
        for seq in start..end {
            let (sec, nsec) = time_of(seq);
            let time = EventTime {
                sec: u32::try_from(sec).unwrap(),
                nsec,
            };
            write_entry(
                &mut entries,
                time,
                false,
                &to_msgpack(&record_of(seq)).to_bytes(),
            );
        }
        let chunk = ack.then(|| ChunkId::str(format!("{tag}-{start}")));
        let mut req = BytesMut::new();
        encode_packed_forward(
            &mut req,
            tag,
            &entries,
            end - start,
            chunk.as_ref(),
            Compression::Text,
        );
        stream
            .write_all(&req)
            .unwrap_or_else(|e| panic!("send to 127.0.0.1:{port}: {e}"));
        if let Some(chunk) = &chunk {
            let got = common::read_ack(&mut stream, &mut buf)
                .unwrap_or_else(|e| panic!("ack from 127.0.0.1:{port} for {start}..{end}: {e}"));
            assert_eq!(got, chunk.bytes.to_vec(), "ack for {start}..{end}");
        }
        start = end;
    }
    stream.shutdown(Shutdown::Write).unwrap();
    let mut sink = [0u8; 512];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

/// Sends a cell's events in waves: each wave on its own connection, a pause between waves long
/// enough for the sending side to flush (so every hop carries several chunks and connections).
pub fn send_waves(port: u16, tag: &str, ack: bool) {
    for wave in 0..WAVES {
        let from = wave * WAVE;
        send_events(port, tag, from..from + WAVE, WAVE / REQUESTS_PER_WAVE, ack);
        thread::sleep(Duration::from_millis(400));
    }
}

/// One event as the receiving side printed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub tag: String,
    pub sec: u64,
    pub nsec: u32,
    pub record: serde_json::Value,
}

/// Where the receiving side prints events.
pub enum Output<'a> {
    /// ferry's stdout output with `<format> @type json` and `<inject>` of `_tag` and `_time`.
    Ferry(&'a common::Ferry),
    /// Fluentd's stdout output, read from the peer's log.
    Fluentd(&'a PeerProc),
    /// Fluent Bit's file output at this path.
    FluentBitFile(PathBuf),
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian). The tests read the times the
/// peers print with their own arithmetic, not with the code under test.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD?hh:mm:ss.nnnnnnnnn` (any separator at 10) in UTC → (sec, nsec).
fn parse_utc(s: &str) -> Option<(u64, u32)> {
    let b = s.as_bytes();
    if b.len() < 29 || b[19] != b'.' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let days = days_from_civil(i64::from(num(0..4)?), num(5..7)?, num(8..10)?);
    let secs = days * 86_400
        + i64::from(num(11..13)?) * 3600
        + i64::from(num(14..16)?) * 60
        + i64::from(num(17..19)?);
    Some((u64::try_from(secs).ok()?, num(20..29)?))
}

/// A line of ferry's stdout output: `{..record.., "_tag": T, "_time": "RFC 3339, UTC, ns"}`.
pub fn parse_ferry_line(line: &str) -> Option<Received> {
    let mut v: serde_json::Value = serde_json::from_str(line).ok()?;
    let obj = v.as_object_mut()?;
    let tag = obj.remove("_tag")?.as_str()?.to_owned();
    let time = obj.remove("_time")?;
    let time = time.as_str()?;
    if !time.ends_with("+00:00") && !time.ends_with('Z') {
        return None;
    }
    let (sec, nsec) = parse_utc(time)?;
    Some(Received {
        tag,
        sec,
        nsec,
        record: v,
    })
}

/// A line of Fluentd's stdout output: `2023-11-14 22:13:20.123456789 +0000 tag: {json}`.
pub fn parse_fluentd_line(line: &str) -> Option<Received> {
    let (sec, nsec) = parse_utc(line.get(..29)?)?;
    let rest = line.get(29..)?.strip_prefix(" +0000 ")?;
    let (tag, json) = rest.split_once(": ")?;
    Some(Received {
        tag: tag.to_owned(),
        sec,
        nsec,
        record: serde_json::from_str(json).ok()?,
    })
}

/// A line of Fluent Bit's file output: `tag: [1700000000.123456789, {json}]`.
pub fn parse_fluentbit_line(line: &str) -> Option<Received> {
    let (tag, rest) = line.split_once(": [")?;
    let (time, json) = rest.split_once(", ")?;
    let json = json.strip_suffix(']')?;
    let (sec, nsec) = time.split_once('.')?;
    if nsec.len() != 9 {
        return None;
    }
    Some(Received {
        tag: tag.to_owned(),
        sec: sec.parse().ok()?,
        nsec: nsec.parse().ok()?,
        record: serde_json::from_str(json).ok()?,
    })
}

impl Output<'_> {
    /// Every event printed so far with a tag starting `interop.`.
    fn read(&self, ferry_seen: &mut Vec<String>) -> Vec<Received> {
        let lines: Vec<String> = match self {
            Output::Ferry(f) => {
                ferry_seen.extend(f.stdout.try_iter());
                return ferry_seen
                    .iter()
                    .filter_map(|l| parse_ferry_line(l))
                    .collect();
            }
            Output::Fluentd(p) => p.log_lines(),
            Output::FluentBitFile(path) => std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect(),
        };
        let parse = match self {
            Output::Fluentd(_) => parse_fluentd_line,
            _ => parse_fluentbit_line,
        };
        lines
            .iter()
            .filter_map(|l| parse(l))
            .filter(|r| r.tag.starts_with("interop."))
            .collect()
    }
}

/// What arrived, compared with what was sent.
pub struct Tally {
    pub received: Vec<Received>,
}

impl Tally {
    /// Problems: events missing, arriving more than once, or altered.
    pub fn problems(&self, tag: &str, total: u64) -> Vec<String> {
        let mut by_seq: BTreeMap<u64, Vec<&Received>> = BTreeMap::new();
        let mut problems = Vec::new();
        for r in &self.received {
            match r.record["seq"].as_u64() {
                Some(seq) if seq < total => by_seq.entry(seq).or_default().push(r),
                _ => problems.push(format!("an event that was not sent: {r:?}")),
            }
        }
        let missing: Vec<u64> = (0..total).filter(|s| !by_seq.contains_key(s)).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{} of {total} events missing, first {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            ));
        }
        let dups: Vec<(u64, usize)> = by_seq
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(s, v)| (*s, v.len()))
            .collect();
        if !dups.is_empty() {
            problems.push(format!(
                "{} events arrived more than once, first (seq, times) {:?}",
                dups.len(),
                &dups[..dups.len().min(10)]
            ));
        }
        let mut altered = 0;
        for (seq, got) in &by_seq {
            let (sec, nsec) = time_of(*seq);
            let want = Received {
                tag: tag.to_owned(),
                sec,
                nsec,
                record: record_of(*seq),
            };
            for g in got {
                if **g != want {
                    altered += 1;
                    if altered <= 3 {
                        problems.push(format!("altered: sent {want:?}, got {g:?}"));
                    }
                }
            }
        }
        if altered > 3 {
            problems.push(format!("{altered} events altered in all"));
        }
        problems
    }
}

/// Waits until `total` events tagged `tag` arrived at `out` (or `deadline` passes), then keeps
/// watching for `linger`; returns everything that arrived.
pub fn await_events(
    out: &Output<'_>,
    tag: &str,
    total: u64,
    deadline: Duration,
    linger: Duration,
) -> Tally {
    let mut ferry_seen = Vec::new();
    let end = Instant::now() + deadline;
    let count = |v: &[Received]| v.iter().filter(|r| r.tag == tag).count() as u64;
    loop {
        let got = out.read(&mut ferry_seen);
        if count(&got) >= total || Instant::now() >= end {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(linger);
    let received = out
        .read(&mut ferry_seen)
        .into_iter()
        .filter(|r| r.tag.starts_with("interop."))
        .collect();
    Tally { received }
}

/// Configuration snippets for each side and mode. `pki` is needed for [`Mode::Tls`].
pub struct Sides<'a> {
    pub mode: Mode,
    pub pki: &'a Pki,
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

impl<'a> Sides<'a> {
    pub fn new(mode: Mode, pki: &'a Pki) -> Self {
        Self { mode, pki }
    }

    /// A Forward input on `port`, receiving in this mode, in Fluentd's syntax: ferry reads the
    /// same configuration as Fluentd, so one text serves both (`name` is the `self_hostname`).
    fn fluent_source(&self, port: u16, name: &str) -> String {
        let mut s = format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n");
        if self.mode.shared_key() {
            s += &format!("  <security>\n    self_hostname {name}\n    shared_key {SHARED_KEY}\n");
            if self.mode == Mode::UserAuth {
                s += &format!(
                    "    user_auth true\n    <user>\n      username {USERNAME}\n      password {PASSWORD}\n    </user>\n"
                );
            }
            s += "  </security>\n";
        }
        if self.mode == Mode::Tls {
            s += &format!(
                "  <transport tls>\n    cert_path {}\n    private_key_path {}\n  </transport>\n",
                p(&self.pki.server_cert),
                p(&self.pki.server_key)
            );
        }
        if self.mode == Mode::TlsInsecure {
            s += "  <transport tls>\n    insecure true\n  </transport>\n";
        }
        s + "</source>\n"
    }

    /// A Forward output for `pattern` to `port`, sending in this mode, in Fluentd's syntax
    /// (`name` is the `self_hostname`). TLS goes to `localhost`, so the certificate's DNS name is
    /// verified.
    fn fluent_forward(&self, pattern: &str, port: u16, name: &str) -> String {
        let host = if self.mode == Mode::Tls {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let mut s = format!("<match {pattern}>\n  @type forward\n");
        match self.mode {
            Mode::Ack => {
                s += &format!(
                    "  require_ack_response true\n  ack_response_timeout {ACK_TIMEOUT_S}\n"
                )
            }
            Mode::Gzip => s += "  compress gzip\n",
            Mode::Tls => {
                s += &format!(
                    "  transport tls\n  tls_cert_path {}\n  tls_verify_hostname true\n",
                    p(&self.pki.ca_cert)
                )
            }
            Mode::TlsInsecure => s += "  transport tls\n  tls_insecure_mode true\n",
            _ => {}
        }
        if self.mode.shared_key() {
            s += &format!(
                "  <security>\n    self_hostname {name}\n    shared_key {SHARED_KEY}\n  </security>\n"
            );
        }
        s += &format!("  <server>\n    host {host}\n    port {port}\n");
        if self.mode == Mode::UserAuth {
            s += &format!("    username {USERNAME}\n    password {PASSWORD}\n");
        }
        s + "  </server>\n  <buffer>\n    flush_mode interval\n    flush_interval 0.2s\n    retry_wait 0.5s\n    retry_max_interval 2s\n  </buffer>\n</match>\n"
    }

    /// ferry's Forward input on `port`, receiving in this mode.
    pub fn ferry_source(&self, port: u16) -> String {
        self.fluent_source(port, "ferry-in")
    }

    /// ferry's stdout output for `pattern`, printing the tag and the time with nanoseconds.
    pub fn ferry_stdout(pattern: &str) -> String {
        format!(
            "<match {pattern}>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    \
             tag_key _tag\n    time_key _time\n    time_type string\n  </inject>\n</match>\n"
        )
    }

    /// ferry's Forward output for `pattern` to `port`, sending in this mode.
    pub fn ferry_forward(&self, pattern: &str, port: u16) -> String {
        self.fluent_forward(pattern, port, "ferry-out")
    }

    /// Fluentd's Forward input on `port`, receiving in this mode.
    pub fn fluentd_source(&self, port: u16) -> String {
        self.fluent_source(port, "fluentd-in")
    }

    /// Fluentd's stdout output for `pattern` (times with nanoseconds, in UTC: TZ is set).
    pub fn fluentd_stdout(pattern: &str) -> String {
        format!("<match {pattern}>\n  @type stdout\n</match>\n")
    }

    /// Fluentd's Forward output for `pattern` to `port`, sending in this mode.
    pub fn fluentd_forward(&self, pattern: &str, port: u16) -> String {
        self.fluent_forward(pattern, port, "fluentd-out")
    }

    /// Fluent Bit's service section, its Forward input on `port` receiving in this mode.
    pub fn fluentbit_input(&self, port: u16) -> String {
        let mut s = format!("[INPUT]\n    Name forward\n    Listen 127.0.0.1\n    Port {port}\n");
        if self.mode.shared_key() {
            s += &format!("    Shared_Key {SHARED_KEY}\n    Self_Hostname fluent-bit-in\n");
            if self.mode == Mode::UserAuth {
                s += &format!("    Security.Users {USERNAME} {PASSWORD}\n");
            }
        }
        if matches!(self.mode, Mode::Tls | Mode::TlsInsecure) {
            s += &format!(
                "    tls On\n    tls.verify Off\n    tls.crt_file {}\n    tls.key_file {}\n",
                p(&self.pki.server_cert),
                p(&self.pki.server_key)
            );
        }
        s
    }

    /// Fluent Bit's file output for `pattern` into `{dir}/out.log`.
    pub fn fluentbit_file(pattern: &str) -> String {
        format!(
            "[OUTPUT]\n    Name file\n    Match {pattern}\n    Path {{dir}}\n    File out.log\n"
        )
    }

    /// Fluent Bit's Forward output for `pattern` to `port`, sending in this mode.
    pub fn fluentbit_forward(&self, pattern: &str, port: u16) -> String {
        let host = if self.mode == Mode::Tls {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let mut s = format!(
            "[OUTPUT]\n    Name forward\n    Match {pattern}\n    Host {host}\n    Port {port}\n    Retry_Limit no_limits\n"
        );
        match self.mode {
            Mode::Ack => s += "    Require_ack_response True\n",
            Mode::Gzip => s += "    Compress gzip\n",
            Mode::Tls => {
                s += &format!(
                    "    tls On\n    tls.verify On\n    tls.verify_hostname On\n    tls.vhost localhost\n    tls.ca_file {}\n",
                    p(&self.pki.ca_cert)
                )
            }
            Mode::TlsInsecure => s += "    tls On\n    tls.verify Off\n",
            _ => {}
        }
        if self.mode.shared_key() {
            s += &format!("    Shared_Key {SHARED_KEY}\n    Self_Hostname fluent-bit-out\n");
        }
        if self.mode == Mode::UserAuth {
            s += &format!("    Username {USERNAME}\n    Password {PASSWORD}\n");
        }
        s
    }
}

/// Fluent Bit's `[SERVICE]`: a 0.2 s flush.
pub const FLUENTBIT_SERVICE: &str = "[SERVICE]\n    Flush 0.2\n    Log_Level info\n";

/// Lines of a peer's log that say something went wrong on the wire: errors, TLS failures,
/// resets. Fluentd's warning about an unencrypted private key is not one.
pub fn peer_complaints(peer: &PeerProc) -> impl Iterator<Item = String> {
    peer.log_lines().into_iter().filter(|l| {
        l.contains("[error]")
            || l.contains("SSLError")
            || l.contains("Connection reset")
            || l.contains("unexpected error")
            || (l.contains("[warn]")
                && !l.contains("private_key_passphrase")
                && !l.contains("insecure"))
    })
}

/// ferry's log lines at warn or error, each as "`who` logged: LINE".
pub fn ferry_complaints<'a>(log: &'a [String], who: &'a str) -> impl Iterator<Item = String> + 'a {
    // The warning of a server that makes its own certificate (`insecure true`) is expected.
    log.iter()
        .filter(|l| l.contains("[warn]") || l.contains("[error]"))
        .filter(|l| !l.contains("using 'insecure' mode"))
        .map(move |l| format!("{who} logged: {l}"))
}

/// What went wrong with the events of `tag` at `out` (missing, arriving more than once,
/// altered), waiting up to `deadline` for all of a cell's events, then `linger` more.
pub fn delivery_problems(
    out: &Output<'_>,
    tag: &str,
    deadline: Duration,
    linger: Duration,
) -> Vec<String> {
    let total = WAVES * WAVE;
    await_events(out, tag, total, deadline, linger).problems(tag, total)
}

/// Which way a cell sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer's Forward output → ferry's Forward input.
    PeerToFerry,
    /// ferry's Forward output → the peer's Forward input.
    FerryToPeer,
}

/// Runs one cell and fails with both sides' logs unless every event arrived exactly once,
/// unaltered.
pub fn run_cell(kind: PeerKind, direction: Direction, mode: Mode) {
    let Some(peers) = peers() else { return };
    let pki = Pki::new();
    let sides = Sides::new(mode, &pki);
    let plain = Sides::new(Mode::Plain, &pki);
    let cell = format!(
        "{}.{}.{:?}",
        kind.name().replace('-', "_"),
        match direction {
            Direction::PeerToFerry => "to_ferry",
            Direction::FerryToPeer => "from_ferry",
        },
        mode
    )
    .to_lowercase();
    let tag = tag_of(&cell);
    let total = WAVES * WAVE;
    let linger = Duration::from_millis(if mode == Mode::Ack {
        (ACK_TIMEOUT_S + 2) * 1000
    } else {
        1000
    });
    let ferry_port = free_port();
    let peer_port = free_port();
    let (ferry, peer, tally) = match direction {
        Direction::PeerToFerry => {
            let ferry_conf = sides.ferry_source(ferry_port) + &Sides::ferry_stdout("interop.**");
            let ferry = common::Ferry::start(&ferry_conf, ferry_port);
            let peer_conf = match kind {
                PeerKind::Fluentd => {
                    plain.fluentd_source(peer_port)
                        + &sides.fluentd_forward("interop.**", ferry_port)
                }
                PeerKind::FluentBit => {
                    FLUENTBIT_SERVICE.to_owned()
                        + &plain.fluentbit_input(peer_port)
                        + &sides.fluentbit_forward("interop.*", ferry_port)
                }
            };
            let peer = PeerProc::start(&peers, kind, &peer_conf, peer_port);
            send_waves(peer_port, &tag, false);
            let tally = await_events(
                &Output::Ferry(&ferry),
                &tag,
                total,
                Duration::from_secs(30),
                linger,
            );
            (ferry, peer, tally)
        }
        Direction::FerryToPeer => {
            let peer_conf = match kind {
                PeerKind::Fluentd => {
                    sides.fluentd_source(peer_port) + &Sides::fluentd_stdout("interop.**")
                }
                PeerKind::FluentBit => {
                    FLUENTBIT_SERVICE.to_owned()
                        + &sides.fluentbit_input(peer_port)
                        + &Sides::fluentbit_file("interop.*")
                }
            };
            let peer = PeerProc::start(&peers, kind, &peer_conf, peer_port);
            let ferry_conf =
                plain.ferry_source(ferry_port) + &sides.ferry_forward("interop.**", peer_port);
            let ferry = common::Ferry::start(&ferry_conf, ferry_port);
            send_waves(ferry_port, &tag, true);
            let out = match kind {
                PeerKind::Fluentd => Output::Fluentd(&peer),
                PeerKind::FluentBit => Output::FluentBitFile(peer.dir.path().join("out.log")),
            };
            let tally = await_events(&out, &tag, total, Duration::from_secs(30), linger);
            (ferry, peer, tally)
        }
    };
    let mut problems = tally.problems(&tag, total);
    let ferry_log = ferry.stderr_so_far();
    problems.extend(ferry_complaints(&ferry_log, "ferry"));
    problems.extend(peer_complaints(&peer).map(|l| format!("{} logged: {l}", kind.name())));
    if !problems.is_empty() {
        let mut ferry = ferry;
        panic!(
            "{cell}: {} events received for {total} sent:\n  {}\nferry: {}\n{}\n{} log:\n{}",
            tally.received.len(),
            problems.join("\n  "),
            ferry.report(ferry_port),
            ferry_log.join("\n"),
            kind.name(),
            peer.log()
        );
    }
}

/// ferry → `kind` → ferry, acks on both hops: the shape of a fleet that migrates one tier at a
/// time. Every event must reach the last ferry exactly once, unaltered.
pub fn run_chain(kind: PeerKind) {
    let Some(peers) = peers() else { return };
    let pki = Pki::new();
    let ack = Sides::new(Mode::Ack, &pki);
    let plain = Sides::new(Mode::Plain, &pki);
    let cell = format!("{}.chain", kind.name().replace('-', "_"));
    let tag = tag_of(&cell);
    let total = WAVES * WAVE;
    let (first_port, peer_port, last_port) = (free_port(), free_port(), free_port());
    let last = common::Ferry::start(
        &(plain.ferry_source(last_port) + &Sides::ferry_stdout("interop.**")),
        last_port,
    );
    let peer_conf = match kind {
        PeerKind::Fluentd => {
            plain.fluentd_source(peer_port) + &ack.fluentd_forward("interop.**", last_port)
        }
        PeerKind::FluentBit => {
            FLUENTBIT_SERVICE.to_owned()
                + &plain.fluentbit_input(peer_port)
                + &ack.fluentbit_forward("interop.*", last_port)
        }
    };
    let peer = PeerProc::start(&peers, kind, &peer_conf, peer_port);
    let first = common::Ferry::start(
        &(plain.ferry_source(first_port) + &ack.ferry_forward("interop.**", peer_port)),
        first_port,
    );
    send_waves(first_port, &tag, true);
    let tally = await_events(
        &Output::Ferry(&last),
        &tag,
        total,
        Duration::from_secs(30),
        Duration::from_secs(ACK_TIMEOUT_S + 2),
    );
    let mut problems = tally.problems(&tag, total);
    for (name, f) in [("first ferry", &first), ("last ferry", &last)] {
        problems.extend(ferry_complaints(&f.stderr_so_far(), name));
    }
    problems.extend(peer_complaints(&peer).map(|l| format!("{} logged: {l}", kind.name())));
    assert!(
        problems.is_empty(),
        "{cell}: {} events received for {total} sent:\n  {}\n{} log:\n{}",
        tally.received.len(),
        problems.join("\n  "),
        kind.name(),
        peer.log()
    );
}
