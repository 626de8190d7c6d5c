//! The udp input against real senders: util-linux's `logger` over UDP and plain datagrams.
//! Every datagram is accounted for: parsed and delivered, or dropped and counted (over the
//! length limit, not matched by the parser, or dropped by the kernel while ferry was stopped).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Ferry, free_port, metric, metrics};
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

fn config(port: u16, admin: u16, extra: &str, parse: &str) -> String {
    format!(
        "<source>\n  @type udp\n  tag udp.in\n  bind 127.0.0.1\n  port {port}\n{extra}  <parse>\n{parse}  </parse>\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match udp.**>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
    )
}

#[test]
fn datagrams_arrive_parsed_and_oversize_or_unmatched_ones_are_dropped_and_counted() {
    let (port, admin) = (free_port(), free_port());
    let extra =
        "  source_address_key addr\n  source_hostname_key host\n  message_length_limit 100\n";
    let ferry = Ferry::start(&config(port, admin, extra, "    @type json\n"), admin);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..200 {
        client
            .send_to(
                format!("{{\"seq\":{seq}}}\n").as_bytes(),
                ("127.0.0.1", port),
            )
            .unwrap();
        if seq == 50 {
            let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(200));
            client.send_to(big.as_bytes(), ("127.0.0.1", port)).unwrap();
            client.send_to(b"not json", ("127.0.0.1", port)).unwrap();
        }
        // Loopback drops nothing unless the receive buffer overflows; pace a little.
        if seq % 50 == 49 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let lines = ferry.stdout_lines(200, Duration::from_secs(20));
    let mut seqs: Vec<u64> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["addr"], "127.0.0.1", "{l}");
            assert!(v["host"].as_str().is_some_and(|h| !h.is_empty()), "{l}");
            v["seq"].as_u64().unwrap()
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(300));
    let m = metrics(admin);
    let dropped = |reason: &str| {
        metric(
            &m,
            &format!(
                "ferry_events_dropped_total{{plugin_id=\"udp_0\",type=\"udp\",reason=\"{reason}\"}}"
            ),
        )
    };
    assert_eq!(dropped("message_length_limit"), 1.0);
    assert_eq!(dropped("unparsed_line"), 1.0);
    assert_eq!(
        metric(
            &m,
            "ferry_udp_input_datagrams_total{plugin_id=\"udp_0\",type=\"udp\"}"
        ),
        202.0
    );
    let log = ferry.stderr_so_far().join("\n");
    assert!(
        log.contains("longer than message_length_limit (100 bytes)") && log.contains("127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn logger_over_udp_is_read_by_the_syslog_parser() {
    let Some(logger) = common::program("FERRY_TEST_LOGGER", "logger") else {
        return;
    };
    let (port, admin) = (free_port(), free_port());
    let parse = "    @type syslog\n    with_priority true\n";
    let ferry = Ferry::start(&config(port, admin, "", parse), admin);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    let text: String = (0..100).map(|i| format!("message {i}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let status = Command::new(logger)
        .args([
            "-d",
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
    let lines = ferry.stdout_lines(100, Duration::from_secs(20));
    let mut got: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["ident"], "app", "{l}");
            v["message"].as_str().unwrap().to_string()
        })
        .collect();
    got.sort_by_key(|m| m[8..].parse::<u32>().unwrap());
    assert_eq!(
        got,
        (0..100).map(|i| format!("message {i}")).collect::<Vec<_>>()
    );
}

#[test]
fn datagrams_the_kernel_drops_while_ferry_is_stopped_are_counted_from_its_counter() {
    let (port, admin) = (free_port(), free_port());
    let extra = "  receive_buffer_size 4k\n";
    let ferry = Ferry::start(&config(port, admin, extra, "    @type none\n"), admin);
    let pid = ferry.child.id();
    common::signal(pid, "STOP");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 2000u64;
    for i in 0..sent {
        client
            .send_to(
                format!("datagram {i} {}", "y".repeat(100)).as_bytes(),
                ("127.0.0.1", port),
            )
            .unwrap();
    }
    common::signal(pid, "CONT");
    // Everything the kernel kept arrives; the rest is in the kernel's counter.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut received = 0u64;
    loop {
        received += ferry.stdout.try_iter().count() as u64;
        let m = metrics(admin);
        let drops = metric(
            &m,
            "ferry_udp_input_kernel_drops_total{plugin_id=\"udp_0\",type=\"udp\"}",
        ) as u64;
        if received + drops == sent && drops > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "received {received} + kernel drops {drops} != sent {sent}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn remove_newline_false_keeps_it_and_the_older_names_and_a_label_are_honoured() {
    let (port, admin) = (free_port(), free_port());
    let conf = format!(
        "<source>\n  @type udp\n  tag udp.in\n  bind 127.0.0.1\n  port {port}\n  @label @OUT\n  remove_newline false\n  body_size_limit 10\n  source_host_key peer\n  <parse>\n    @type none\n  </parse>\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type null\n</match>\n\
         <label @OUT>\n  <match **>\n    @type stdout\n    <format>\n      @type json\n    </format>\n  </match>\n</label>\n"
    );
    let ferry = Ferry::start(&conf, admin);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .send_to(b"far too long for ten", ("127.0.0.1", port))
        .unwrap();
    client.send_to(b"abc\n", ("127.0.0.1", port)).unwrap();
    let got = ferry.stdout_lines(1, Duration::from_secs(20));
    let v: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(v["message"], "abc\n");
    assert!(v["peer"].as_str().is_some_and(|p| !p.is_empty()), "{v}");
    let m = metrics(admin);
    assert_eq!(
        metric(
            &m,
            "ferry_events_dropped_total{plugin_id=\"udp_0\",type=\"udp\",reason=\"message_length_limit\"}"
        ),
        1.0
    );
}
