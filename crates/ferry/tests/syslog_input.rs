//! The syslog input against util-linux's `logger`: RFC 3164 over UDP, RFC 5424 over TCP both
//! newline-delimited and octet-counted (RFC 6587) into one input, tags built from the priority,
//! and malformed messages dropped and counted or kept as unmatched.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Ferry, free_port, metric, metrics};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A syslog input on `port` (`transport`: `udp`, `tcp`) printing tag and record as JSON.
fn config(port: u16, admin: u16, transport: &str, extra: &str) -> String {
    format!(
        "<source>\n  @type syslog\n  tag sys\n  bind 127.0.0.1\n  port {port}\n  <transport {transport}>\n  </transport>\n{extra}</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match sys.**>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n  </inject>\n</match>\n"
    )
}

fn logger() -> Option<std::path::PathBuf> {
    common::program("FERRY_TEST_LOGGER", "logger")
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn rfc3164_over_udp_is_tagged_by_facility_and_severity_with_their_keys() {
    let Some(logger) = logger() else { return };
    let (port, admin) = (free_port(), free_port());
    let extra = "  severity_key severity\n  facility_key facility\n  source_address_key addr\n";
    let ferry = Ferry::start(&config(port, admin, "udp", extra), admin);
    for (pri, text) in [
        ("user.notice", "one"),
        ("local3.err", "two"),
        ("mail.debug", "three"),
    ] {
        let status = Command::new(&logger)
            .args([
                "-d",
                "-n",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                "--rfc3164",
                "-t",
                "app",
                "-p",
                pri,
                text,
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let mut got: Vec<serde_json::Value> = ferry
        .stdout_lines(3, Duration::from_secs(20))
        .iter()
        .map(|l| json(l))
        .collect();
    got.sort_by_key(|v| v["message"].as_str().unwrap().to_string());
    let tags: Vec<&str> = got.iter().map(|v| v["tag"].as_str().unwrap()).collect();
    assert_eq!(
        tags,
        ["sys.user.notice", "sys.mail.debug", "sys.local3.err"],
        "one, three, two"
    );
    assert_eq!(got[2]["severity"], "err");
    assert_eq!(got[2]["facility"], "local3");
    assert_eq!(got[2]["ident"], "app");
    assert_eq!(got[2]["addr"], "127.0.0.1");
    assert!(
        got.iter().all(|v| v.get("pri").is_none()),
        "pri is not kept: {got:?}"
    );
}

#[test]
fn rfc5424_over_tcp_arrives_newline_delimited_and_octet_counted_on_one_input() {
    let Some(logger) = logger() else { return };
    let (port, admin) = (free_port(), free_port());
    let extra = "  <parse>\n    message_format auto\n  </parse>\n";
    let ferry = Ferry::start(&config(port, admin, "tcp", extra), port);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(
        &path,
        (0..50).map(|i| format!("line {i}\n")).collect::<String>(),
    )
    .unwrap();
    for framing in [None, Some("--octet-count")] {
        let mut cmd = Command::new(&logger);
        cmd.args([
            "-T",
            "-n",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--rfc5424",
            "-t",
            "app",
            "-p",
            "daemon.info",
        ]);
        if let Some(f) = framing {
            cmd.arg(f);
        }
        assert!(cmd.arg("-f").arg(&path).status().unwrap().success());
    }
    let lines = ferry.stdout_lines(100, Duration::from_secs(20));
    let mut messages: Vec<String> = lines
        .iter()
        .map(|l| {
            let v = json(l);
            assert_eq!(v["tag"], "sys.daemon.info", "{l}");
            assert_eq!(v["ident"], "app", "{l}");
            v["message"].as_str().unwrap().to_string()
        })
        .collect();
    messages.sort();
    let mut want: Vec<String> = (0..50)
        .flat_map(|i| [format!("line {i}"), format!("line {i}")])
        .collect();
    want.sort();
    assert_eq!(messages, want);
}

#[test]
fn a_message_without_priority_is_dropped_and_counted_or_kept_as_unmatched() {
    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(&config(port, admin, "tcp", ""), port);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"no priority here\n<13>Dec  7 10:00:00 host app: fine\n")
        .unwrap();
    drop(s);
    let got = ferry.stdout_lines(1, Duration::from_secs(20));
    assert_eq!(json(&got[0])["message"], "fine");
    std::thread::sleep(Duration::from_millis(300));
    let log = ferry.stderr_so_far().join("\n");
    assert!(
        log.contains("no <PRI>") && log.contains("no priority here"),
        "{log}"
    );
    let m = metrics(admin);
    assert_eq!(
        metric(
            &m,
            "ferry_events_dropped_total{plugin_id=\"syslog_0\",type=\"syslog\",reason=\"unparsed_line\"}"
        ),
        1.0
    );
    drop(ferry);

    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(
        &config(port, admin, "tcp", "  emit_unmatched_lines true\n"),
        port,
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"no priority here\n").unwrap();
    drop(s);
    let got = ferry.stdout_lines(1, Duration::from_secs(20));
    let v = json(&got[0]);
    assert_eq!(v["tag"], "sys.unmatched");
    assert_eq!(v["unmatched_line"], "no priority here");
}

#[test]
fn the_older_names_a_label_a_delimiter_and_the_length_limit_are_honoured() {
    let (port, admin) = (free_port(), free_port());
    let conf = format!(
        "<source>\n  @type syslog\n  tag sys\n  bind 127.0.0.1\n  port {port}\n  protocol_type tcp\n  @label @OUT\n\
         \x20 include_source_host true\n  source_host_key src\n  priority_key sev\n  source_hostname_key host\n  resolve_hostname true\n\
         \x20 send_keepalive_packet true\n  message_length_limit 100\n  delimiter \"\\r\\n\"\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type null\n</match>\n\
         <label @OUT>\n  <match **>\n    @type stdout\n    <format>\n      @type json\n    </format>\n  </match>\n</label>\n"
    );
    let ferry = Ferry::start(&conf, port);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let long = format!("<13>Dec  7 10:00:00 host app: {}\r\n", "x".repeat(200));
    s.write_all(long.as_bytes()).unwrap();
    s.write_all(b"<11>Dec  7 10:00:00 host app: kept\r\n")
        .unwrap();
    drop(s);
    let got = ferry.stdout_lines(1, Duration::from_secs(20));
    let v = json(&got[0]);
    assert_eq!(v["message"], "kept");
    assert_eq!(v["sev"], "err");
    assert_eq!(v["src"], "127.0.0.1");
    assert!(v["host"].as_str().is_some_and(|h| !h.is_empty()), "{v}");
    let m = metrics(admin);
    assert_eq!(
        metric(
            &m,
            "ferry_events_dropped_total{plugin_id=\"syslog_0\",type=\"syslog\",reason=\"message_length_limit\"}"
        ),
        1.0
    );
}

/// rsyslog from Debian, run as a plain process: it takes messages from `logger` over UDP and
/// forwards each to ferry three ways, octet-counted TCP (RFC 5424), newline-delimited TCP
/// (RFC 3164 with priority) and UDP. Every message arrives once per way.
#[test]
fn rsyslog_forwards_over_tcp_in_both_framings_and_over_udp_and_every_message_arrives() {
    let (Some(rsyslogd), Some(logger)) =
        (common::program("FERRY_TEST_RSYSLOGD", "rsyslogd"), logger())
    else {
        return;
    };
    let (tcp, udp, admin, inlet) = (free_port(), free_port(), free_port(), free_port());
    let conf = format!(
        "<source>\n  @type syslog\n  tag tcp\n  bind 127.0.0.1\n  port {tcp}\n  <transport tcp>\n  </transport>\n  <parse>\n    message_format auto\n  </parse>\n</source>\n\
         <source>\n  @type syslog\n  tag udp\n  bind 127.0.0.1\n  port {udp}\n  <parse>\n    message_format auto\n  </parse>\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n  </inject>\n</match>\n"
    );
    let ferry = Ferry::start(&conf, tcp);
    let dir = tempfile::tempdir().unwrap();
    let rconf = dir.path().join("rsyslog.conf");
    let action = |proto: &str, port: u16, extra: &str| {
        format!(
            "  action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"{proto}\" {extra} queue.type=\"LinkedList\" action.resumeRetryCount=\"-1\")\n"
        )
    };
    std::fs::write(
        &rconf,
        format!(
            "global(workDirectory=\"{d}\")\nmodule(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{inlet}\" ruleset=\"fwd\")\n\
             ruleset(name=\"fwd\") {{\n{}{}{}}}\n",
            action("tcp", tcp, "TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\""),
            action("tcp", tcp, "template=\"RSYSLOG_TraditionalForwardFormat\""),
            action("udp", udp, "template=\"RSYSLOG_TraditionalForwardFormat\""),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let _rsyslog = common::KillOnDrop(
        Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(&rconf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1000));
    let input = dir.path().join("in.txt");
    let total = 100;
    std::fs::write(
        &input,
        (0..total).map(|i| format!("msg {i}\n")).collect::<String>(),
    )
    .unwrap();
    let status = Command::new(&logger)
        .args([
            "-d",
            "-n",
            "127.0.0.1",
            "-P",
            &inlet.to_string(),
            "--rfc3164",
            "-t",
            "app",
            "-p",
            "local0.warning",
            "-f",
        ])
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success());
    let lines = ferry.stdout_lines(3 * total, Duration::from_secs(30));
    let mut by_tag = std::collections::BTreeMap::<String, Vec<String>>::new();
    for l in &lines {
        let v = json(l);
        by_tag
            .entry(v["tag"].as_str().unwrap().to_string())
            .or_default()
            .push(v["message"].as_str().unwrap().trim().to_string());
    }
    assert_eq!(
        by_tag.keys().collect::<Vec<_>>(),
        ["tcp.local0.warn", "udp.local0.warn"],
        "{lines:?}"
    );
    let mut want: Vec<String> = (0..total).map(|i| format!("msg {i}")).collect();
    want.sort();
    let mut udp_got = by_tag["udp.local0.warn"].clone();
    udp_got.sort();
    assert_eq!(udp_got, want);
    let mut tcp_got = by_tag["tcp.local0.warn"].clone();
    tcp_got.sort();
    let twice: Vec<String> = want.iter().flat_map(|m| [m.clone(), m.clone()]).collect();
    assert_eq!(tcp_got, twice, "once per framing");
    std::thread::sleep(Duration::from_millis(500));
    assert!(ferry.stdout.try_iter().next().is_none(), "nothing more");
}

#[test]
fn syslog_over_tls_from_socat_with_octet_counting_and_a_slow_client_stalls_no_one() {
    let Some(socat) = common::program("FERRY_TEST_SOCAT", "socat") else {
        return;
    };
    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(
        &format!(
            "<source>\n  @type syslog\n  tag sys\n  bind 127.0.0.1\n  port {port}\n  <transport tls>\n    insecure true\n  </transport>\n</source>\n\
             <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
             <match sys.**>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n  </inject>\n</match>\n"
        ),
        port,
    );
    // A client that opened a TLS-less connection and sends one byte now and then.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"\x16").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    let body: String = (0..50)
        .map(|i| {
            let m = format!("<30>Dec  7 10:00:00 host app[7]: tls {i}");
            format!("{} {m}", m.len())
        })
        .collect();
    std::fs::write(&path, body).unwrap();
    let status = Command::new(socat)
        .arg("-u")
        .arg(format!("FILE:{}", path.display()))
        .arg(format!("OPENSSL:127.0.0.1:{port},verify=0"))
        .status()
        .unwrap();
    assert!(status.success());
    let lines = ferry.stdout_lines(50, Duration::from_secs(20));
    for (i, l) in lines.iter().enumerate() {
        let v = json(l);
        assert_eq!(v["tag"], "sys.daemon.info", "{l}");
        assert_eq!(v["message"], format!("tls {i}"), "{l}");
        assert_eq!(v["pid"], "7", "{l}");
    }
    slow.write_all(b"\x03").unwrap();
}

/// rsyslog from Debian forwards over TLS (its gtls driver verifying ferry's certificate against
/// the CA), octet-counted and newline-delimited on the same input: every message arrives once
/// per way.
#[test]
fn rsyslog_forwards_over_tls_in_both_framings_and_every_message_arrives() {
    let (Some(rsyslogd), Some(logger)) =
        (common::program("FERRY_TEST_RSYSLOGD", "rsyslogd"), logger())
    else {
        return;
    };
    let gtls = [
        "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so",
        "/usr/lib/rsyslog/lmnsd_gtls.so",
    ];
    if !gtls.iter().any(|p| Path::new(p).exists()) {
        assert!(
            std::env::var_os("FERRY_TEST_DEPS").is_none(),
            "rsyslog's TLS driver is missing: scripts/test-deps.sh installs rsyslog-gnutls"
        );
        return;
    }
    let pki = common::Pki::new();
    let (port, admin, inlet) = (free_port(), free_port(), free_port());
    let conf = format!(
        "<source>\n  @type syslog\n  tag tls\n  bind 127.0.0.1\n  port {port}\n  <transport tls>\n    cert_path {}\n    private_key_path {}\n  </transport>\n  <parse>\n    message_format auto\n  </parse>\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n  </inject>\n</match>\n",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let ferry = Ferry::start(&conf, port);
    let dir = tempfile::tempdir().unwrap();
    let rconf = dir.path().join("rsyslog.conf");
    let action = |extra: &str| {
        format!(
            "  action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\" StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"localhost\" {extra} queue.type=\"LinkedList\" action.resumeRetryCount=\"-1\")\n"
        )
    };
    std::fs::write(
        &rconf,
        format!(
            "global(workDirectory=\"{d}\" DefaultNetstreamDriverCAFile=\"{ca}\")\nmodule(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{inlet}\" ruleset=\"fwd\")\n\
             ruleset(name=\"fwd\") {{\n{}{}}}\n",
            action("TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\""),
            action("template=\"RSYSLOG_TraditionalForwardFormat\""),
            d = dir.path().display(),
            ca = pki.ca_cert.display(),
        ),
    )
    .unwrap();
    let _rsyslog = common::KillOnDrop(
        Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(&rconf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1000));
    let input = dir.path().join("in.txt");
    let total = 100;
    std::fs::write(
        &input,
        (0..total)
            .map(|i| format!("tls msg {i}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let status = Command::new(&logger)
        .args([
            "-d",
            "-n",
            "127.0.0.1",
            "-P",
            &inlet.to_string(),
            "--rfc3164",
            "-t",
            "app",
            "-p",
            "user.err",
            "-f",
        ])
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success());
    let lines = ferry.stdout_lines(2 * total, Duration::from_secs(30));
    let mut got: Vec<String> = lines
        .iter()
        .map(|l| {
            let v = json(l);
            assert_eq!(v["tag"], "tls.user.err", "{l}");
            v["message"].as_str().unwrap().trim().to_string()
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..total)
        .flat_map(|i| [format!("tls msg {i}"), format!("tls msg {i}")])
        .collect();
    want.sort();
    assert_eq!(got, want, "once per framing");
    std::thread::sleep(Duration::from_millis(500));
    assert!(ferry.stdout.try_iter().next().is_none(), "nothing more");
}
