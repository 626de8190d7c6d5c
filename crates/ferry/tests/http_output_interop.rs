//! The http output against real HTTP receivers: ClickHouse's HTTP interface (Debian's
//! clickhouse-server, started per test with a data directory and ports of its own), Fluentd
//! 1.16.11's `in_http`, Fluent Bit 4.2.8's `http` input and ferry's own http input. Numbered events go into ferry
//! through a Forward client with acks and are counted where the receiver stored them: rows of
//! a ClickHouse table, lines of the peer's stdout. None may be missing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod interop_support;

use common::{AckedSender, Ferry, KillOnDrop, free_port};
use interop_support::{PeerKind, PeerProc, peers};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Sends `seqs` tagged `tag` in acknowledged requests of 100 events.
fn send(port: u16, tag: &str, seqs: std::ops::Range<u64>) {
    let mut sender = AckedSender::connect(port).unwrap();
    let mut at = seqs.start;
    while at < seqs.end {
        let end = (at + 100).min(seqs.end);
        sender.send(tag, at..end, 40).unwrap();
        at = end;
    }
}

/// A forward source on `port` and `matches`.
fn ferry_config(port: u16, matches: &str) -> String {
    format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n{matches}")
}

/// An http `<match>`; chunks of at most 500 events flushed every 200 ms.
fn http_match(pattern: &str, params: &str) -> String {
    format!(
        "<match {pattern}>\n  @type http\n{params}\n  <buffer tag>\n    flush_mode interval\n    flush_interval 200ms\n    chunk_limit_records 500\n    retry_wait 500ms\n    retry_randomize false\n  </buffer>\n</match>\n"
    )
}

/// Every `"seq":N` in `lines` (JSON printed by a peer).
fn seqs_in_lines(lines: &[String]) -> Vec<u64> {
    let mut out = Vec::new();
    for line in lines {
        let mut rest = line.as_str();
        while let Some(i) = rest.find("\"seq\":") {
            rest = &rest[i + 6..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse() {
                out.push(n);
            }
        }
    }
    out
}

/// Waits until `peer` printed every seq of `0..n`; returns what it printed.
fn wait_for_peer(peer: &PeerProc, ferry: &Ferry, n: u64, timeout: Duration) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = seqs_in_lines(&peer.log_lines());
        let distinct: BTreeSet<u64> = got.iter().copied().collect();
        if distinct.len() as u64 >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} events reached {} within {timeout:?}\nferry:\n{}\npeer:\n{}",
            distinct.len(),
            peer.kind.name(),
            ferry.stderr_so_far().join("\n"),
            peer.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn assert_each_once(got: &[u64], n: u64, who: &str) {
    let distinct: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(distinct, (0..n).collect(), "{who}: every event");
    assert_eq!(got.len() as u64, n, "{who}: no event twice");
}

#[test]
fn fluentd_in_http_takes_every_event_as_json_arrays_plain_and_gzip() {
    let Some(peers) = peers() else { return };
    const N: u64 = 3000;
    let http = free_port();
    let fluentd_conf = format!(
        "<source>\n  @type http\n  bind 127.0.0.1\n  port {http}\n</source>\n\
         <match **>\n  @type stdout\n</match>\n"
    );
    let fluentd = PeerProc::start(&peers, PeerKind::Fluentd, &fluentd_conf, http);
    let port = free_port();
    let endpoint = |extra: &str| {
        format!(
            "  endpoint http://127.0.0.1:{http}/${{tag}}\n  json_array true\n  content_type application/json\n{extra}"
        )
    };
    let conf = ferry_config(
        port,
        &(http_match("plain.**", &endpoint(""))
            + &http_match("gzip.**", &endpoint("  compress gzip\n"))),
    );
    let ferry = Ferry::start(&conf, port);
    send(port, "plain.events", 0..N / 2);
    send(port, "gzip.events", N / 2..N);
    wait_for_peer(&fluentd, &ferry, N, Duration::from_secs(30));
    // Anything sent twice would show up by now.
    thread::sleep(Duration::from_millis(500));
    assert_each_once(&seqs_in_lines(&fluentd.log_lines()), N, "fluentd");
    let log = fluentd.log();
    assert!(
        log.contains("plain.events: {") && log.contains("gzip.events: {"),
        "tags from the path"
    );
}

#[test]
fn fluent_bit_http_input_takes_every_event() {
    let Some(peers) = peers() else { return };
    const N: u64 = 3000;
    let http = free_port();
    let fb_conf = format!(
        "[SERVICE]\n    Flush 0.2\n    Log_Level info\n\
         [INPUT]\n    Name http\n    Listen 127.0.0.1\n    Port {http}\n\
         [OUTPUT]\n    Name stdout\n    Match *\n    Format json_lines\n"
    );
    let fluent_bit = PeerProc::start(&peers, PeerKind::FluentBit, &fb_conf, http);
    let port = free_port();
    let params = format!("  endpoint http://127.0.0.1:{http}/app.log\n  json_array true\n");
    let ferry = Ferry::start(&ferry_config(port, &http_match("**", &params)), port);
    send(port, "app.log", 0..N);
    wait_for_peer(&fluent_bit, &ferry, N, Duration::from_secs(30));
    thread::sleep(Duration::from_millis(500));
    assert_each_once(&seqs_in_lines(&fluent_bit.log_lines()), N, "fluent-bit");
}

#[test]
fn ferrys_http_input_takes_every_event_as_json_lines_gzip_and_msgpack() {
    const N: u64 = 3000;
    let http = free_port();
    let receiver = Ferry::start(
        &format!(
            "<source>\n  @type http\n  bind 127.0.0.1\n  port {http}\n</source>\n\
             <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
        ),
        http,
    );
    let port = free_port();
    let endpoint = format!("  endpoint http://127.0.0.1:{http}/${{tag}}\n");
    let matches = http_match("lines.**", &format!("{endpoint}  compress gzip\n"))
        + &http_match(
            "packed.**",
            &format!(
                "{endpoint}  content_type application/msgpack\n  <format>\n    @type msgpack\n  </format>\n"
            ),
        );
    let sender = Ferry::start(&ferry_config(port, &matches), port);
    send(port, "lines.events", 0..N / 2);
    send(port, "packed.events", N / 2..N);
    let lines = receiver.stdout_lines(N as usize, Duration::from_secs(30));
    thread::sleep(Duration::from_millis(500));
    let mut all = lines.clone();
    all.extend(receiver.stdout.try_iter());
    assert_each_once(&seqs_in_lines(&all), N, "ferry's http input");
    assert!(
        sender
            .stderr_so_far()
            .iter()
            .all(|l| !l.contains("[warn]") && !l.contains("[error]")),
        "{:?}",
        sender.stderr_so_far()
    );
}

/// clickhouse-server from Debian (`FERRY_TEST_CLICKHOUSE`, else on PATH).
fn clickhouse() -> Option<PathBuf> {
    common::program("FERRY_TEST_CLICKHOUSE", "clickhouse-server")
}

/// A ClickHouse server of the test's own: data, logs and ports of its own, killed when dropped.
struct ClickHouse {
    http_port: u16,
    _proc: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl ClickHouse {
    fn start(bin: &std::path::Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let (http_port, tcp_port, inter) = (free_port(), free_port(), free_port());
        let child = Command::new(bin)
            .arg("--config-file=/etc/clickhouse-server/config.xml")
            .arg("--")
            .arg(format!("--path={d}/"))
            .arg(format!("--tmp_path={d}/tmp/"))
            .arg(format!("--user_files_path={d}/user_files/"))
            .arg(format!("--format_schema_path={d}/format_schemas/"))
            .arg(format!("--logger.log={d}/server.log"))
            .arg(format!("--logger.errorlog={d}/server.err.log"))
            .arg(format!("--http_port={http_port}"))
            .arg(format!("--tcp_port={tcp_port}"))
            .arg(format!("--interserver_http_port={inter}"))
            .arg("--listen_host=127.0.0.1")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ch = Self {
            http_port,
            _proc: KillOnDrop(child),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ch.query("SELECT 1").map(|s| s.trim().to_string()) != Ok("1".into()) {
            if let Ok(Some(status)) = ch._proc.0.try_wait() {
                panic!(
                    "clickhouse-server exited with {status}:\n{}",
                    std::fs::read_to_string(ch._dir.path().join("server.err.log"))
                        .unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not answer within 30 s"
            );
            thread::sleep(Duration::from_millis(100));
        }
        ch
    }

    /// Runs `sql` through the HTTP interface (an HTTP/1.0 POST): the answer's body, or its
    /// status line and body.
    fn query(&mut self, sql: &str) -> Result<String, String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.http_port))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = format!(
            "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{sql}",
            sql.len()
        );
        s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut answer = String::new();
        s.take(1 << 20)
            .read_to_string(&mut answer)
            .map_err(|e| e.to_string())?;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") {
            Ok(body.to_string())
        } else {
            Err(format!("{}: {body}", head.lines().next().unwrap_or("")))
        }
    }
}

#[test]
fn clickhouse_stores_every_event_inserted_through_its_http_interface() {
    let Some(bin) = clickhouse() else { return };
    const N: u64 = 5000;
    let mut ch = ClickHouse::start(&bin);
    ch.query("CREATE TABLE t (seq UInt64, pad String) ENGINE = MergeTree ORDER BY seq")
        .unwrap();
    let port = free_port();
    let endpoint = format!(
        "http://127.0.0.1:{}/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow",
        ch.http_port
    );
    // ndjson (the json format's default) and the same gzipped.
    let matches = http_match("plain.**", &format!("  endpoint {endpoint}\n"))
        + &http_match("gzip.**", &format!("  endpoint {endpoint}\n  compress gzip\n"))
        // A column the table does not have: ClickHouse refuses the rows; they go aside.
        + &http_match(
            "bad.**",
            &format!(
                "  endpoint http://127.0.0.1:{}/?query=INSERT%20INTO%20t%20(seq,%20nope)%20FORMAT%20JSONEachRow\n  @id bad\n",
                ch.http_port
            ),
        );
    let ferry = Ferry::start(&ferry_config(port, &matches), port);
    send(port, "plain.rows", 0..N / 2);
    send(port, "gzip.rows", N / 2..N);
    send(port, "bad.rows", N..N + 100);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let count = ch.query("SELECT count() FROM t").unwrap();
        if count.trim() == N.to_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {N} rows within 30 s; ferry:\n{}",
            count.trim(),
            ferry.stderr_so_far().join("\n")
        );
        thread::sleep(Duration::from_millis(200));
    }
    let stats = ch
        .query("SELECT count(), uniqExact(seq), min(seq), max(seq) FROM t FORMAT TSV")
        .unwrap();
    assert_eq!(
        stats.trim(),
        format!("{N}\t{N}\t0\t{}", N - 1),
        "each event once"
    );
    let mut seen = Vec::new();
    let line = ferry.wait_stderr("cannot be delivered", Duration::from_secs(10), &mut seen);
    assert!(
        line.contains(&format!(
            "POST http://127.0.0.1:{}/?query=INSERT",
            ch.http_port
        )) && (line.contains("answered 4") || line.contains("answered 5")),
        "the endpoint, the status and ClickHouse's message: {line}"
    );
    assert!(line.contains("nope"), "{line}");
}
