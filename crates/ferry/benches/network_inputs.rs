//! The syslog (TCP) and http (ndjson bodies) inputs against Fluent Bit's `syslog` and `http`
//! inputs, measured in the same run on the same machine: each receiver takes RFC 5424 lines
//! (about 200 bytes, parsed by its RFC 5424 regex) or ndjson bodies of 1000 lines each, into a
//! memory buffer and the `null` output, with the settings an operator would leave untouched.
//! Two sender threads in this process send as fast as the receiver takes (TCP back-pressure;
//! each HTTP request waits for its answer on a kept-alive connection).
//!
//! Prints per run and as medians: records/s, MB/s of lines taken (counted by the receiver's own
//! metrics), the receiver's CPU seconds per GB (/proc/PID/stat), and ferry's ratios to Fluent Bit.
//!
//! Needs `FLUENTBIT_BIN` (`eval "$(../shared/peers/setup.sh)"`); without it only ferry runs.
//! Knobs: FERRY_BENCH_SECS (measured seconds, default 6), FERRY_BENCH_RUNS (3).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a failed unwrap is a failed run

use ferry_bench::procstat;
use ferry_bench::report::{env_or, median};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SENDERS: usize = 2;
const LINES_PER_BODY: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Input {
    SyslogTcp,
    HttpNdjson,
}

impl Input {
    fn name(self) -> &'static str {
        match self {
            Self::SyslogTcp => "syslog over TCP",
            Self::HttpNdjson => "http, ndjson bodies",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    Ferry,
    FluentBit,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Self::Ferry => "ferry",
            Self::FluentBit => "Fluent Bit",
        }
    }
}

fn free_port() -> u16 {
    ferry_bench::ferryproc::free_port().unwrap()
}

/// One RFC 5424 line of about 200 bytes (without its newline).
fn syslog_line(seq: u64) -> String {
    format!(
        "<134>1 2026-12-07T10:00:{:02}.{:06}+00:00 web-{:02}.example.com nginx 4242 ACCESS - 10.1.{}.{} GET /api/v1/items/{seq} HTTP/1.1 200 {} \"Mozilla/5.0 (X11; Linux x86_64)\"",
        seq % 60,
        seq % 1_000_000,
        seq % 16,
        seq % 256,
        (seq / 256) % 256,
        512 + seq % 4096
    )
}

/// One ndjson line of about 200 bytes (without its newline).
fn json_line(seq: u64) -> String {
    format!(
        r#"{{"host":"web-{:02}.example.com","method":"GET","path":"/api/v1/items/{seq}","status":200,"bytes":{},"agent":"Mozilla/5.0 (X11; Linux x86_64)","seq":{seq}}}"#,
        seq % 16,
        512 + seq % 4096
    )
}

struct Receiver {
    child: Child,
    peer: Peer,
    data_port: u16,
    metrics_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const FLUENTBIT_PARSERS: &str = r#"[PARSER]
    Name        syslog-rfc5424
    Format      regex
    Regex       ^\<(?<pri>[0-9]{1,5})\>1 (?<time>[^ ]+) (?<host>[^ ]+) (?<ident>[^ ]+) (?<pid>[-0-9]+) (?<msgid>[^ ]+) (?<extradata>(\[(.*?)\]|-)) (?<message>.+)$
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%L%z
    Time_Keep   On
"#;

fn start(peer: Peer, input: Input, fluentbit: Option<&str>) -> Receiver {
    let dir = tempfile::tempdir().unwrap();
    let (data_port, metrics_port) = (free_port(), free_port());
    let child = match peer {
        Peer::Ferry => {
            let source = match input {
                Input::SyslogTcp => format!(
                    "<source>\n  @type syslog\n  tag bench\n  bind 127.0.0.1\n  port {data_port}\n  <transport tcp>\n  </transport>\n  <parse>\n    message_format rfc5424\n  </parse>\n</source>\n"
                ),
                Input::HttpNdjson => format!(
                    "<source>\n  @type http\n  bind 127.0.0.1\n  port {data_port}\n</source>\n"
                ),
            };
            let conf = format!(
                "{source}<source>\n  @type prometheus\n  bind 127.0.0.1\n  port {metrics_port}\n</source>\n\
                 <match **>\n  @type null\n  <buffer>\n    @type memory\n  </buffer>\n</match>\n"
            );
            let path = dir.path().join("ferry.conf");
            std::fs::write(&path, conf).unwrap();
            Command::new(env!("CARGO_BIN_EXE_ferry"))
                .arg("-c")
                .arg(&path)
                .arg("--log-level")
                .arg("warn")
                .env("FERRY_ROOT_DIR", dir.path().join("root"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start ferry")
        }
        Peer::FluentBit => {
            let parsers = dir.path().join("parsers.conf");
            std::fs::write(&parsers, FLUENTBIT_PARSERS).unwrap();
            let input_section = match input {
                Input::SyslogTcp => format!(
                    "[INPUT]\n    Name syslog\n    Mode tcp\n    Listen 127.0.0.1\n    Port {data_port}\n    Parser syslog-rfc5424\n    Tag bench\n"
                ),
                Input::HttpNdjson => {
                    format!("[INPUT]\n    Name http\n    Listen 127.0.0.1\n    Port {data_port}\n")
                }
            };
            let conf = format!(
                "[SERVICE]\n    Flush 1\n    Log_Level warn\n    Parsers_File {}\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port {metrics_port}\n\
                 {input_section}[OUTPUT]\n    Name null\n    Match *\n",
                parsers.display()
            );
            let path = dir.path().join("fluent-bit.conf");
            std::fs::write(&path, conf).unwrap();
            Command::new(fluentbit.expect("FLUENTBIT_BIN"))
                .arg("-c")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start fluent-bit")
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(ferry_bench::ferryproc::listening(data_port)
        && ferry_bench::ferryproc::listening(metrics_port))
    {
        assert!(Instant::now() < deadline, "{} did not listen", peer.name());
        std::thread::sleep(Duration::from_millis(20));
    }
    Receiver {
        child,
        peer,
        data_port,
        metrics_port,
        _dir: dir,
    }
}

/// A GET on the metrics port, the body (hyper's client: Fluent Bit answers chunked).
fn get(port: u16, path: &str) -> String {
    ferry::http::client::get(&format!("127.0.0.1:{port}"), path)
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// Records the receiver's input took so far, from its own metrics.
fn records(r: &Receiver) -> u64 {
    match r.peer {
        Peer::Ferry => get(r.metrics_port, "/metrics")
            .lines()
            .filter(|l| l.starts_with("fluentd_input_status_num_records_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
        Peer::FluentBit => {
            let body = get(r.metrics_port, "/api/v1/metrics");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            v["input"]
                .as_object()
                .map(|inputs| inputs.values().filter_map(|i| i["records"].as_u64()).sum())
                .unwrap_or(0)
        }
    }
}

/// Sends syslog lines as fast as the receiver reads them, until `stop`.
fn syslog_sender(port: u16, stream: u64, stop: Arc<AtomicBool>) {
    let mut buf = Vec::new();
    for i in 0..10_000u64 {
        buf.extend_from_slice(syslog_line(stream * 1_000_000_000 + i).as_bytes());
        buf.push(b'\n');
    }
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    while !stop.load(Ordering::Relaxed) {
        if s.write_all(&buf).is_err() {
            return;
        }
    }
}

/// POSTs ndjson bodies on one kept-alive connection, each after the last was answered.
fn http_sender(port: u16, peer: Peer, stream: u64, stop: Arc<AtomicBool>) {
    let mut body = Vec::new();
    for i in 0..LINES_PER_BODY as u64 {
        body.extend_from_slice(json_line(stream * 1_000_000_000 + i).as_bytes());
        body.push(b'\n');
    }
    // Fluent Bit reads concatenated objects under application/json; ferry reads them as
    // ndjson, as Fluentd does.
    let content_type = match peer {
        Peer::Ferry => "application/x-ndjson",
        Peer::FluentBit => "application/json",
    };
    let mut request = format!(
        "POST /bench.http HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        if w.write_all(&request).is_err() {
            return;
        }
        // The answer's head, then its body.
        let mut length = 0usize;
        let mut status = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if status.is_empty() {
                status = line.clone();
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        assert!(
            status.starts_with("HTTP/1.1 2"),
            "{} answered {status}",
            peer.name()
        );
        let mut rest = vec![0u8; length];
        if r.read_exact(&mut rest).is_err() {
            return;
        }
    }
}

struct Result {
    records_per_s: f64,
    mb_per_s: f64,
    cpu_s_per_gb: f64,
}

fn run(peer: Peer, input: Input, secs: u64, fluentbit: Option<&str>) -> Result {
    let r = start(peer, input, fluentbit);
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS as u64)
        .map(|i| {
            let stop = Arc::clone(&stop);
            let (port, peer) = (r.data_port, r.peer);
            std::thread::spawn(move || match input {
                Input::SyslogTcp => syslog_sender(port, i, stop),
                Input::HttpNdjson => http_sender(port, peer, i, stop),
            })
        })
        .collect();
    // Warm up, then measure.
    std::thread::sleep(Duration::from_secs(1));
    let pid = r.child.id();
    let (t0, n0, c0) = (
        Instant::now(),
        records(&r),
        procstat::cpu_seconds(pid).unwrap(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let (t1, n1, c1) = (
        Instant::now(),
        records(&r),
        procstat::cpu_seconds(pid).unwrap(),
    );
    stop.store(true, Ordering::Relaxed);
    drop(r);
    for s in senders {
        let _ = s.join();
    }
    let line_len = match input {
        Input::SyslogTcp => syslog_line(123_456).len() + 1,
        Input::HttpNdjson => json_line(123_456).len() + 1,
    } as f64;
    let elapsed = (t1 - t0).as_secs_f64();
    let n = n1.saturating_sub(n0) as f64;
    let gb = n * line_len / 1e9;
    Result {
        records_per_s: n / elapsed,
        mb_per_s: n * line_len / 1e6 / elapsed,
        cpu_s_per_gb: if gb > 0.0 { (c1 - c0) / gb } else { f64::NAN },
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let secs = env_or("FERRY_BENCH_SECS", 6);
    let runs = env_or("FERRY_BENCH_RUNS", 3);
    let fluentbit = std::env::var("FLUENTBIT_BIN")
        .ok()
        .filter(|p| std::path::Path::new(p).is_file());
    if fluentbit.is_none() {
        eprintln!(
            "FLUENTBIT_BIN is not set: measuring ferry alone (eval \"$(../shared/peers/setup.sh)\")"
        );
    }
    let peers: Vec<Peer> = if fluentbit.is_some() {
        vec![Peer::Ferry, Peer::FluentBit]
    } else {
        vec![Peer::Ferry]
    };
    println!(
        "network inputs: {SENDERS} senders, {secs} s measured per run, {runs} runs, receivers into a memory buffer and null, default settings; load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for input in [Input::SyslogTcp, Input::HttpNdjson] {
        let mut results: Vec<(Peer, Vec<Result>)> =
            peers.iter().map(|p| (*p, Vec::new())).collect();
        for run_no in 0..runs {
            for (peer, rs) in &mut results {
                let r = run(*peer, input, secs, fluentbit.as_deref());
                println!(
                    "  {:<20} run {}  {:<10} {:>10.0} records/s {:>8.1} MB/s {:>7.2} CPU s/GB",
                    input.name(),
                    run_no + 1,
                    peer.name(),
                    r.records_per_s,
                    r.mb_per_s,
                    r.cpu_s_per_gb
                );
                rs.push(r);
            }
        }
        let medians: Vec<(Peer, f64, f64)> = results
            .iter()
            .map(|(p, rs)| {
                (
                    *p,
                    median(rs.iter().map(|r| r.mb_per_s).collect()),
                    median(rs.iter().map(|r| r.cpu_s_per_gb).collect()),
                )
            })
            .collect();
        for (p, mb, cpu) in &medians {
            println!(
                "{:<20} median  {:<10} {mb:>8.1} MB/s {cpu:>7.2} CPU s/GB",
                input.name(),
                p.name()
            );
        }
        if let [(_, fmb, fcpu), (_, bmb, bcpu)] = medians[..] {
            println!(
                "{:<20} ferry / Fluent Bit: {:.2}x MB/s (target at least 3x), {:.2}x CPU per GB (target at most 1x)",
                input.name(),
                fmb / bmb,
                fcpu / bcpu
            );
        }
    }
}
