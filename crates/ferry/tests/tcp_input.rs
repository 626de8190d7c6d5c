//! The tcp input against real clients: socat (plain and TLS) and util-linux's `logger` (the
//! Fluent Bit in `../shared/peers` is built without its `tcp` output).
//! Every message is counted at the far end; bad input (an oversize message, one the parser
//! does not match, a client outside `<security>`, a plaintext client on TLS) is counted and
//! named, and never stops the other clients.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Ferry, free_port, metric, metrics};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn socat() -> Option<std::path::PathBuf> {
    common::program("FERRY_TEST_SOCAT", "socat")
}

/// Sends the file at `path` to `address` (a socat address) and waits for socat to finish.
fn socat_send(socat: &Path, path: &Path, address: &str) -> std::process::ExitStatus {
    Command::new(socat)
        .arg("-u")
        .arg(format!("FILE:{}", path.display()))
        .arg(address)
        .stderr(Stdio::null())
        .status()
        .unwrap()
}

/// `seq` → how many times it arrived, from ferry's JSON stdout lines.
fn tally(lines: &[String]) -> BTreeMap<u64, u32> {
    let mut seen = BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        *seen.entry(v["seq"].as_u64().unwrap()).or_insert(0) += 1;
    }
    seen
}

fn config(port: u16, admin: u16, extra: &str, parse: &str) -> String {
    format!(
        "<source>\n  @type tcp\n  tag tcp.in\n  bind 127.0.0.1\n  port {port}\n{extra}  <parse>\n{parse}  </parse>\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match tcp.**>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
    )
}

#[test]
fn socat_messages_arrive_parsed_with_source_keys_and_bad_ones_are_dropped_counted_and_named() {
    let Some(socat) = socat() else { return };
    let (port, admin) = (free_port(), free_port());
    let extra =
        "  source_address_key addr\n  source_hostname_key host\n  message_length_limit 1k\n";
    let ferry = Ferry::start(&config(port, admin, extra, "    @type json\n"), port);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    let mut f = std::fs::File::create(&path).unwrap();
    for seq in 0..2000u64 {
        writeln!(f, r#"{{"seq":{seq},"msg":"hello {seq}"}}"#).unwrap();
        if seq == 500 {
            writeln!(f, r#"{{"seq":999999,"pad":"{}"}}"#, "x".repeat(5000)).unwrap();
        }
        if seq == 700 {
            writeln!(f, "this is not json").unwrap();
        }
    }
    // The last message has no delimiter: the end of the stream ends it.
    write!(f, r#"{{"seq":2000}}"#).unwrap();
    drop(f);
    assert!(socat_send(&socat, &path, &format!("TCP:127.0.0.1:{port}")).success());
    let lines = ferry.stdout_lines(2001, Duration::from_secs(30));
    let seen = tally(&lines);
    assert_eq!(seen.len(), 2001, "every message once");
    assert!(seen.iter().all(|(s, n)| *s <= 2000 && *n == 1), "{seen:?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["addr"], "127.0.0.1");
    assert!(
        first["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{first}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = ferry.stderr_so_far().join("\n");
    assert!(
        log.contains("longer than message_length_limit (1024 bytes): dropped")
            && log.contains("127.0.0.1:"),
        "{log}"
    );
    assert!(
        log.contains("invalid JSON") && log.contains("this is not json"),
        "{log}"
    );
    let m = metrics(admin);
    let dropped = |reason: &str| {
        metric(
            &m,
            &format!(
                "ferry_events_dropped_total{{plugin_id=\"tcp_0\",type=\"tcp\",reason=\"{reason}\"}}"
            ),
        )
    };
    assert_eq!(dropped("message_length_limit"), 1.0);
    assert_eq!(dropped("unparsed_line"), 1.0);
    assert_eq!(
        metric(
            &m,
            "fluentd_input_status_num_records_total{plugin_id=\"tcp_0\",type=\"tcp\"}"
        ),
        2001.0
    );
}

#[test]
fn a_delimiter_of_two_bytes_and_the_none_parser_split_and_keep_every_message() {
    let Some(socat) = socat() else { return };
    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(
        &config(port, admin, "  delimiter \"\\r\\n\"\n", "    @type none\n"),
        port,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    let text: String = (0..300)
        .map(|i| format!("line {i}\nwith a newline\r\n"))
        .collect();
    std::fs::write(&path, text).unwrap();
    assert!(socat_send(&socat, &path, &format!("TCP:127.0.0.1:{port}")).success());
    let lines = ferry.stdout_lines(300, Duration::from_secs(20));
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["message"], format!("line {i}\nwith a newline"), "{l}");
    }
}

#[test]
fn a_client_outside_security_is_refused_and_counted_and_a_plaintext_client_fails_tls_alone() {
    let Some(socat) = socat() else { return };
    // A <client> network that 127.0.0.1 is not in.
    let (port, admin) = (free_port(), free_port());
    let extra =
        "  <security>\n    <client>\n      network 10.0.0.0/8\n    </client>\n  </security>\n";
    let ferry = Ferry::start(&config(port, admin, extra, "    @type none\n"), port);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, "one\ntwo\n").unwrap();
    let _ = socat_send(&socat, &path, &format!("TCP:127.0.0.1:{port}"));
    let mut seen = Vec::new();
    let line = ferry.wait_stderr(
        "is not a <client> of <security>",
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(line.contains("127.0.0.1:"), "{line}");
    assert!(ferry.stdout.try_iter().collect::<Vec<_>>().is_empty());
    let m = metrics(admin);
    // socat's connection, and the start-up check's.
    assert!(
        metric(
            &m,
            "ferry_network_input_refused_total{plugin_id=\"tcp_0\",type=\"tcp\",reason=\"denied\"}"
        ) >= 1.0
    );
    drop(ferry);

    // TLS with a certificate made at start: a plaintext client fails alone; a TLS client
    // sends while the plaintext one is still connected.
    let (port, admin) = (free_port(), free_port());
    let extra = "  <transport tls>\n    insecure true\n  </transport>\n";
    let ferry = Ferry::start(&config(port, admin, extra, "    @type none\n"), port);
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.write_all(b"plaintext line\n").unwrap();
    let text: String = (0..100).map(|i| format!("tls {i}\n")).collect();
    std::fs::write(&path, text).unwrap();
    assert!(socat_send(&socat, &path, &format!("OPENSSL:127.0.0.1:{port},verify=0")).success());
    let lines = ferry.stdout_lines(100, Duration::from_secs(20));
    assert!(lines.iter().all(|l| l.contains("\"tls ")), "{lines:?}");
    drop(plain);
    let mut seen = Vec::new();
    ferry.wait_stderr("TLS handshake", Duration::from_secs(15), &mut seen);
    assert!(
        ferry
            .stdout
            .try_iter()
            .collect::<Vec<_>>()
            .iter()
            .all(|l| !l.contains("plaintext"))
    );
}

#[test]
fn util_linux_logger_over_tcp_is_read_by_the_syslog_parser() {
    let Some(logger) = common::program("FERRY_TEST_LOGGER", "logger") else {
        return;
    };
    let (port, admin) = (free_port(), free_port());
    let parse = "    @type syslog\n    with_priority true\n";
    let ferry = Ferry::start(&config(port, admin, "", parse), port);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    let text: String = (0..200).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let status = Command::new(logger)
        .args([
            "-T",
            "-n",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--rfc3164",
            "-t",
            "app",
            "-f",
        ])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let lines = ferry.stdout_lines(200, Duration::from_secs(20));
    let mut seqs = Vec::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["ident"], "app", "{l}");
        let m: serde_json::Value = serde_json::from_str(v["message"].as_str().unwrap()).unwrap();
        seqs.push(m["seq"].as_u64().unwrap());
    }
    assert_eq!(
        seqs,
        (0..200).collect::<Vec<u64>>(),
        "every message once, in order"
    );
}

#[test]
fn a_label_takes_the_events_and_keepalive_and_the_older_hostname_key_are_honoured() {
    let Some(ss) = common::program("FERRY_TEST_SS", "ss") else {
        return;
    };
    let port = free_port();
    let conf = format!(
        "<source>\n  @type tcp\n  tag tcp.in\n  bind 127.0.0.1\n  port {port}\n  @label @OUT\n  send_keepalive_packet true\n  source_host_key peer\n  <parse>\n    @type none\n  </parse>\n</source>\n\
         <match **>\n  @type null\n</match>\n\
         <label @OUT>\n  <match **>\n    @type stdout\n    <format>\n      @type json\n    </format>\n  </match>\n</label>\n"
    );
    let ferry = Ferry::start(&conf, port);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"hello\n").unwrap();
    let got = ferry.stdout_lines(1, Duration::from_secs(20));
    let v: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(v["message"], "hello");
    assert!(v["peer"].as_str().is_some_and(|p| !p.is_empty()), "{v}");
    // The accepted socket (source port = the input's) has a keepalive timer.
    let out = Command::new(ss)
        .args([
            "-tno",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keepalive"), "{text}");
}

#[test]
fn a_full_buffer_stops_reading_the_connection_and_nothing_is_dropped() {
    let (port, admin, agg_port) = (free_port(), free_port(), free_port());
    // The forwarder's buffer holds 256 KiB and its destination is down: the tcp input must
    // hold the sender (TCP pushes back), not drop.
    let forwarder = Ferry::start(
        &format!(
            "<source>\n  @type tcp\n  tag tcp.in\n  bind 127.0.0.1\n  port {port}\n  <parse>\n    @type json\n  </parse>\n</source>\n\
             <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
             <match tcp.**>\n  @type forward\n  require_ack_response true\n  <server>\n    host 127.0.0.1\n    port {agg_port}\n  </server>\n\
             <buffer>\n    @type memory\n    chunk_limit_size 64k\n    total_limit_size 256k\n    overflow_action block\n    flush_mode interval\n    flush_interval 0.1s\n    retry_wait 0.2s\n    retry_max_interval 1s\n  </buffer>\n</match>\n"
        ),
        port,
    );
    let total = 20_000u64;
    let writer = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        for seq in 0..total {
            writeln!(s, r#"{{"seq":{seq},"pad":"{}"}}"#, "p".repeat(1000)).unwrap();
        }
    });
    // About 20 MB against a 256 KiB buffer and the kernel's socket buffers: the writer is held.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !writer.is_finished(),
        "the sender is held while the buffer is full"
    );
    let m = metrics(admin);
    assert_eq!(
        metric(
            &m,
            "ferry_events_dropped_total{plugin_id=\"tcp_0\",type=\"tcp\",reason=\"not_committed\"}"
        ),
        0.0
    );
    let aggregator = Ferry::start(
        &format!(
            "<source>\n  @type forward\n  bind 127.0.0.1\n  port {agg_port}\n</source>\n\
             <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
        ),
        agg_port,
    );
    writer.join().unwrap();
    let lines = aggregator.stdout_lines(total as usize, Duration::from_secs(60));
    let seen = tally(&lines);
    assert_eq!(seen.len() as u64, total);
    assert!(seen.values().all(|n| *n == 1));
    drop(forwarder);
}
