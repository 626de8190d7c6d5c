//! Real Forward clients against a real ferry: the Node `@fluent-org/logger` (every event mode,
//! EventTime, acks, shared-key security, TLS), Go's `fluent-logger-golang` (acks, async) and
//! Python's `fluent-logger` (sync and async senders, with and without nanosecond precision).
//! Every event is counted on ferry's stdout.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Ferry, free_port, go_sender, node_modules, python, run_node, run_python};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

fn config(port: u16, source_extra: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n{source_extra}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n    time_key time\n    time_type float\n  </inject>\n</match>\n"
    )
}

fn events(ferry: &Ferry, n: usize) -> Vec<Value> {
    ferry
        .stdout_lines(n, Duration::from_secs(30))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every `seq` in 0..n exactly once among `events` with `key == value`.
fn assert_all_seqs(events: &[Value], key: &str, value: &str, n: u64) {
    let seqs: Vec<u64> = events
        .iter()
        .filter(|e| e[key] == value)
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(seqs.len() as u64, n, "{key}={value}: {} events", seqs.len());
    assert_eq!(unique, (0..n).collect(), "{key}={value}: every seq once");
}

#[test]
fn node_logger_in_every_event_mode_with_acks_is_fully_received() {
    let Some(modules) = node_modules() else {
        return;
    };
    let port = free_port();
    let ferry = Ferry::start(&config(port, ""), port);
    let modes = [
        "Message",
        "Forward",
        "PackedForward",
        "CompressedPackedForward",
    ];
    for mode in modes {
        run_node(
            &modules,
            "node_sender.js",
            &[&port.to_string(), "100", mode, "--ack"],
        );
    }
    let got = events(&ferry, 400);
    for mode in modes {
        assert_all_seqs(&got, "mode", mode, 100);
    }
    for e in &got {
        assert_eq!(e["tag"], format!("node.{}", e["mode"].as_str().unwrap()));
        let seq = e["seq"].as_u64().unwrap();
        let want = 1_700_000_000.0 + seq as f64 + seq as f64 * 1e-9;
        assert!(
            (e["time"].as_f64().unwrap() - want).abs() < 1e-6,
            "EventTime kept: {e}"
        );
    }
}

#[test]
fn node_logger_with_shared_key_and_user_authenticates_and_is_acked() {
    let Some(modules) = node_modules() else {
        return;
    };
    let port = free_port();
    let security = "  <security>\n    self_hostname ferry.example\n    shared_key node-secret\n    user_auth true\n    <user>\n      username alice\n      password pw\n    </user>\n  </security>";
    let ferry = Ferry::start(&config(port, security), port);
    run_node(
        &modules,
        "node_sender.js",
        &[
            &port.to_string(),
            "50",
            "PackedForward",
            "--ack",
            "--security",
            "node.example:node-secret:alice:pw",
        ],
    );
    assert_all_seqs(&events(&ferry, 50), "client", "node", 50);
}

#[test]
fn node_logger_over_tls_verifies_the_server_and_is_acked() {
    let Some(modules) = node_modules() else {
        return;
    };
    let pki = common::Pki::new();
    let port = free_port();
    let tls = format!(
        "  <transport tls>\n    cert_path {}\n    private_key_path {}\n  </transport>\n  <security>\n    self_hostname ferry.example\n    shared_key k\n  </security>",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let ferry = Ferry::start(&config(port, &tls), port);
    run_node(
        &modules,
        "node_sender.js",
        &[
            &port.to_string(),
            "50",
            "Forward",
            "--ack",
            "--tls-ca",
            pki.ca_cert.to_str().unwrap(),
            "--security",
            "node.example:k",
        ],
    );
    assert_all_seqs(&events(&ferry, 50), "client", "node", 50);
}

fn run_go(
    ferry: &mut Ferry,
    sender: &std::path::Path,
    port: u16,
    tag: &str,
    count: u32,
    flags: &[&str],
) {
    let out = Command::new(sender)
        .args([
            "-port",
            &port.to_string(),
            "-tag",
            tag,
            "-count",
            &count.to_string(),
        ])
        .args(flags)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go sender ({tag}) failed: {}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        ferry.report(port)
    );
}

#[test]
fn go_logger_with_acks_and_in_async_mode_is_fully_received() {
    let Some(sender) = go_sender() else { return };
    let port = free_port();
    let mut ferry = Ferry::start(&config(port, ""), port);
    run_go(&mut ferry, &sender, port, "go.ack", 300, &["-ack"]);
    run_go(&mut ferry, &sender, port, "go.async", 300, &["-async"]);
    run_go(
        &mut ferry,
        &sender,
        port,
        "go.both",
        300,
        &["-ack", "-async"],
    );
    let got = events(&ferry, 900);
    for tag in ["go.ack", "go.async", "go.both"] {
        assert_all_seqs(&got, "tag", tag, 300);
    }
}

#[test]
fn python_senders_sync_and_async_with_and_without_nanoseconds_are_fully_received() {
    let Some(py) = python() else { return };
    let port = free_port();
    let ferry = Ferry::start(&config(port, ""), port);
    let script = r#"
import sys
from fluent import sender, asyncsender
port = int(sys.argv[1])
for kind, mod in (('sync', sender), ('async', asyncsender)):
    for nano in (False, True):
        name = f'{kind}-{"nano" if nano else "sec"}'
        s = mod.FluentSender('py', host='127.0.0.1', port=port, nanosecond_precision=nano)
        for i in range(200):
            ok = s.emit_with_time(name, 1700000000 + i + (0.5 if nano else 0), {'seq': i, 'kind': name})
            assert ok is None or ok, s.last_error
        s.close()
print('sent')
"#;
    run_python(&py, script, &[&port.to_string()]);
    let got = events(&ferry, 800);
    for kind in ["sync-sec", "sync-nano", "async-sec", "async-nano"] {
        assert_all_seqs(&got, "kind", kind, 200);
    }
    for e in got.iter().filter(|e| e["kind"] == "sync-nano") {
        let seq = e["seq"].as_f64().unwrap();
        assert!((e["time"].as_f64().unwrap() - (1_700_000_000.5 + seq)).abs() < 1e-6);
    }
}
