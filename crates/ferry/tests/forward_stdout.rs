//! The walking skeleton end to end: real clients and captured peer bytes into a real ferry
//! process, every event counted on its stdout.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Ferry, free_port, python, run_python, vectors_dir};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn json_config(port: u16) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n    time_key time\n    time_type float\n  </inject>\n</match>\n"
    )
}

fn parse_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn python_fluent_logger_events_are_printed_with_tag_time_and_record() {
    let Some(py) = python() else { return };
    let port = free_port();
    let ferry = Ferry::start(&json_config(port), port);
    let script = r#"
import sys
from fluent import sender, asyncsender
port = int(sys.argv[1])
plain = sender.FluentSender('py', host='127.0.0.1', port=port)
nano = sender.FluentSender('py', host='127.0.0.1', port=port, nanosecond_precision=True)
for i in range(50):
    assert plain.emit_with_time('plain', 1700000000 + i, {'n': i, 'kind': 'plain'}), plain.last_error
    assert nano.emit_with_time('nano', 1700000000.25 + i, {'n': i, 'kind': 'nano', 'text': 'h\u00e9llo'}), nano.last_error
plain.close(); nano.close()
a = asyncsender.FluentSender('py', host='127.0.0.1', port=port)
for i in range(50):
    a.emit('async', {'n': i, 'kind': 'async'})
a.close()
print('sent')
"#;
    run_python(&py, script, &[&port.to_string()]);
    let events = parse_lines(&ferry.stdout_lines(150, Duration::from_secs(20)));
    let of = |kind: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == kind)
            .collect::<Vec<_>>()
    };
    let (plain, nano, asy) = (of("plain"), of("nano"), of("async"));
    assert_eq!((plain.len(), nano.len(), asy.len()), (50, 50, 50));
    for (i, e) in plain.iter().enumerate() {
        assert_eq!(e["tag"], "py.plain");
        assert_eq!(e["n"], i as u64);
        assert_eq!(e["time"].as_f64().unwrap(), 1_700_000_000.0 + i as f64);
    }
    for (i, e) in nano.iter().enumerate() {
        assert_eq!(e["tag"], "py.nano");
        assert_eq!(e["text"], "h\u{e9}llo");
        assert_eq!(e["time"].as_f64().unwrap(), 1_700_000_000.25 + i as f64);
    }
    let mut seen: Vec<u64> = asy.iter().map(|e| e["n"].as_u64().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
}

#[test]
fn fluentd_packed_forward_with_ack_is_acknowledged_with_the_captured_bytes() {
    let dir = vectors_dir().join("fluentd");
    let c2s = std::fs::read(dir.join("packed_forward_ack.app_web.c2s.bin")).unwrap();
    let s2c = std::fs::read(dir.join("packed_forward_ack.app_web.s2c.bin")).unwrap();
    let port = free_port();
    let ferry = Ferry::start(&json_config(port), port);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(&c2s).unwrap();
    let mut ack = vec![0u8; s2c.len()];
    conn.read_exact(&mut ack).unwrap();
    assert_eq!(
        ack, s2c,
        "ack bytes differ from what Fluentd's in_forward answered"
    );
    let events = parse_lines(&ferry.stdout_lines(3, Duration::from_secs(10)));
    assert_eq!(events[0]["host"], "web-1");
    assert_eq!(events[2]["msg"], "h\u{e9}llo w\u{f6}rld \u{2713}");
    assert!(events.iter().all(|e| e["tag"] == "app.web"));
    let time = events[0]["time"].as_f64().unwrap();
    assert!((time - 1_700_000_000.123_456_8).abs() < 1e-6, "{time}");
}

#[test]
fn the_embedded_default_configuration_prints_an_event_sent_by_fluent_logger() {
    // This is the README's quick start: `ferry` with no arguments, then one event from the
    // Python fluent-logger to 127.0.0.1:24224.
    let Some(py) = python() else { return };
    let ferry = Ferry::start_default();
    run_python(
        &py,
        "from fluent import sender\n\
         s = sender.FluentSender('app', host='127.0.0.1', port=24224)\n\
         assert s.emit('hello', {'message': 'hello from fluent-logger'}), s.last_error\n\
         s.close()\n",
        &[],
    );
    let events = parse_lines(&ferry.stdout_lines(1, Duration::from_secs(10)));
    assert_eq!(events[0]["message"], "hello from fluent-logger");
    assert_eq!(events[0]["tag"], "app.hello");
    assert!(
        events[0]["time"].as_str().is_some_and(|t| t.contains('T')),
        "{}",
        events[0]
    );
}
