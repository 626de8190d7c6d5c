//! Parameters whose effect only a running ferry shows, one test each: an input's `@label`,
//! `<system> log_level`, the tail input's reading and discovery settings, how many chunks the
//! flushers send at once and when a slow flush is logged, and where metrics are served.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use bytes::BytesMut;
use common::{AckedSender, Ferry, free_port};
use ferry_proto::frame::FrameDecoder;
use ferry_proto::request::{Limits, Request};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Lines `L<n>` for `seqs`, appended to `path` in one write.
fn append(path: &Path, seqs: std::ops::Range<u64>) {
    let text: String = seqs.map(|n| format!("L{n}\n")).collect();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A tail input of `pattern` (`extra` lines added) printing `{"message":..}` lines.
fn tail_conf(pattern: &Path, pos: &Path, extra: &str) -> String {
    format!(
        "<source>\n  @type tail\n  path {}\n  pos_file {}\n  tag t\n{extra}\n  <parse>\n    @type none\n  </parse>\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n",
        pattern.display(),
        pos.display()
    )
}

/// The messages printed within `wait`.
fn messages_within(ferry: &Ferry, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match ferry.stdout.recv_timeout(left) {
            Ok(line) => {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                out.push(v["message"].as_str().unwrap().to_string());
            }
            Err(_) => break,
        }
    }
    out
}

/// `n` printed messages, failing after 20 s.
fn messages(ferry: &Ferry, n: usize) -> Vec<String> {
    common::collect(&ferry.stdout, n, Duration::from_secs(20), "stdout")
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"].as_str().unwrap().to_string()
        })
        .collect()
}

fn lines(seqs: std::ops::Range<u64>) -> Vec<String> {
    seqs.map(|n| format!("L{n}")).collect()
}

/// A plain HTTP GET to `host`: the status code and the body. Retries until the port accepts,
/// for up to 10 s.
fn http_get(host: &str, port: u16, path: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect((host, port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "port {port}: {e}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    };
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// The value of the first sample of `metric` in a Prometheus exposition.
fn sample(exposition: &str, metric: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn an_input_label_sends_its_events_to_that_label() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, 0..1);
    let port = free_port();
    // The top level prints nothing: only events routed to @OUT reach stdout.
    let config = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n  @label @OUT\n</source>\n\
         <source>\n  @type tail\n  path {}\n  pos_file {}\n  tag file\n  read_from_head true\n  @label @OUT\n  <parse>\n    @type none\n  </parse>\n</source>\n\
         <match **>\n  @type null\n</match>\n\
         <label @OUT>\n  <match **>\n    @type stdout\n    <format>\n      @type json\n    </format>\n  </match>\n</label>\n",
        log.display(),
        dir.path().join("pos").display()
    );
    let ferry = Ferry::start(&config, port);
    AckedSender::connect(port)
        .unwrap()
        .send("net", 7..8, 1)
        .unwrap();
    let mut got = ferry.stdout_lines(2, Duration::from_secs(20));
    got.sort();
    assert!(got[0].contains("\"message\":\"L0\""), "{got:?}");
    assert!(got[1].contains("\"seq\":7"), "{got:?}");
}

#[test]
fn system_log_level_chooses_the_lines_logged() {
    let infos = |system: &str| {
        let port = free_port();
        let config = format!(
            "{system}<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n<match **>\n  @type null\n</match>\n"
        );
        let ferry = Ferry::start(&config, port);
        AckedSender::connect(port)
            .unwrap()
            .send("t", 0..1, 1)
            .unwrap();
        thread::sleep(Duration::from_millis(500));
        let log = ferry.stderr_so_far();
        log.iter().filter(|l| l.contains(" [info]: ")).count()
    };
    assert!(infos("") > 0, "info is the default level");
    assert_eq!(infos("<system>\n  log_level warn\n</system>\n"), 0);
}

#[test]
fn tail_read_from_head_false_starts_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, 0..10);
    let ferry = Ferry::start_logged(
        &tail_conf(&log, &dir.path().join("pos"), "  read_from_head false"),
        &[],
    );
    assert_eq!(
        messages_within(&ferry, Duration::from_millis(1500)),
        lines(0..0)
    );
    append(&log, 10..13);
    assert_eq!(messages(&ferry, 3), lines(10..13));
}

#[test]
fn tail_without_the_stat_watcher_finds_new_files_at_refresh_interval() {
    // A file created after start is found at once through the directory's inotify watch;
    // without the stat watcher, only at the next refresh.
    for (extra, found_within) in [
        ("  refresh_interval 60s", Some(3)),
        ("  enable_stat_watcher false\n  refresh_interval 60s", None),
        (
            "  enable_stat_watcher false\n  refresh_interval 1s",
            Some(4),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a.log");
        append(&first, 0..1);
        let ferry = Ferry::start_logged(
            &tail_conf(
                &dir.path().join("*.log"),
                &dir.path().join("pos"),
                &format!("  read_from_head true\n{extra}"),
            ),
            &[],
        );
        assert_eq!(messages(&ferry, 1), lines(0..1));
        append(&dir.path().join("b.log"), 1..2);
        let wait = Duration::from_secs(found_within.unwrap_or(4));
        let got = messages_within(&ferry, wait);
        match found_within {
            Some(_) => assert_eq!(got, lines(1..2), "{extra}"),
            None => assert!(got.is_empty(), "{extra}: {got:?}"),
        }
    }
}

#[test]
fn tail_reads_a_rotated_file_for_rotate_wait_then_closes_it() {
    for (rotate_wait, late_line_read) in [("1s", false), ("30s", true)] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, 0..5);
        let ferry = Ferry::start_logged(
            &tail_conf(
                &log,
                &dir.path().join("pos"),
                &format!("  read_from_head true\n  rotate_wait {rotate_wait}"),
            ),
            &[],
        );
        assert_eq!(messages(&ferry, 5), lines(0..5));
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        append(&log, 5..6);
        assert_eq!(messages(&ferry, 1), lines(5..6));
        thread::sleep(Duration::from_secs(3));
        // A writer that still holds the rotated file writes one more line.
        append(&dir.path().join("app.log.1"), 100..101);
        let got = messages_within(&ferry, Duration::from_secs(2));
        if late_line_read {
            assert_eq!(got, lines(100..101), "rotate_wait {rotate_wait}");
        } else {
            assert!(got.is_empty(), "rotate_wait {rotate_wait}: {got:?}");
        }
    }
}

#[test]
fn tail_read_lines_limit_bounds_the_lines_of_each_batch() {
    let emits = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, 0..100);
        let admin = free_port();
        let config = format!(
            "<source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
             <source>\n  @type tail\n  path {}\n  pos_file {}\n  tag t\n  read_from_head true\n{extra}\n  <parse>\n    @type none\n  </parse>\n</source>\n\
             <match **>\n  @id out\n  @type null\n</match>\n",
            log.display(),
            dir.path().join("pos").display()
        );
        let _ferry = Ferry::start(&config, admin);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = http_get("127.0.0.1", admin, "/metrics");
            let records = sample(&body, "fluentd_output_status_emit_records").unwrap_or(0.0);
            if records >= 100.0 {
                return sample(&body, "fluentd_output_status_emit_count").unwrap();
            }
            assert!(Instant::now() < deadline, "{body}");
            thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(emits("  read_lines_limit 10") >= 10.0);
    assert!(emits("") <= 2.0, "the default is 1000 lines");
}

/// A Forward server that reads requests and counts them, acknowledging each after `delay`
/// (never, with `None`). Returns its port and the count.
fn aggregator(delay: Option<Duration>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let counted = Arc::clone(&counted);
            thread::spawn(move || {
                let mut decoder = FrameDecoder::new(64 << 20);
                let mut buf = BytesMut::new();
                let mut block = [0u8; 64 * 1024];
                loop {
                    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
                        let Ok(Request::Events(batch)) = Request::parse(frame, &Limits::default())
                        else {
                            continue;
                        };
                        counted.fetch_add(1, Ordering::SeqCst);
                        if let (Some(delay), Some(chunk)) = (delay, batch.options.chunk) {
                            thread::sleep(delay);
                            let _ = stream.write_all(&ferry_proto::ack::encode_ack(&chunk));
                        }
                    }
                    match stream.read(&mut block) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&block[..n]),
                    }
                }
            });
        }
    });
    (port, requests)
}

/// A forwarder on `port` sending to the aggregator on `agg`, acks required, each event its
/// own chunk; `buffer` lines added to its `<buffer>`.
fn forwarder(port: u16, agg: u16, buffer: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type forward\n  require_ack_response true\n  ack_response_timeout 60s\n  heartbeat_type none\n\
         <server>\n    host 127.0.0.1\n    port {agg}\n  </server>\n\
         <buffer tag>\n    @type memory\n    flush_mode immediate\n    retry_wait 30s\n{buffer}\n  </buffer>\n</match>\n"
    )
}

#[test]
fn flush_thread_count_flushes_that_many_chunks_at_once() {
    for (threads, in_flight) in [("", 1), ("    flush_thread_count 3", 3)] {
        // The aggregator never acks: each flusher holds its chunk, waiting. The chunks are
        // sent with integer times (rewritten, not as stored), so one at a time per flusher:
        // as stored they would go several on one flusher's connection (see the next test).
        let (agg, requests) = aggregator(None);
        let port = free_port();
        let conf = forwarder(port, agg, threads).replace(
            "  heartbeat_type none\n",
            "  heartbeat_type none\n  time_as_integer true\n",
        );
        let _ferry = Ferry::start(&conf, port);
        let mut sender = AckedSender::connect(port).unwrap();
        for n in 0..6 {
            sender.send(&format!("t{n}"), n..n + 1, 1).unwrap();
        }
        thread::sleep(Duration::from_secs(2));
        assert_eq!(requests.load(Ordering::SeqCst), in_flight, "{threads:?}");
    }
}

#[test]
fn one_flush_thread_keeps_every_queued_chunk_in_flight_when_sent_as_stored() {
    // The same aggregator that never acks: the default single flusher writes every chunk on
    // its one connection without waiting for the first ack.
    let (agg, requests) = aggregator(None);
    let port = free_port();
    let _ferry = Ferry::start(&forwarder(port, agg, ""), port);
    let mut sender = AckedSender::connect(port).unwrap();
    for n in 0..6 {
        sender.send(&format!("t{n}"), n..n + 1, 1).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while requests.load(Ordering::SeqCst) < 6 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(requests.load(Ordering::SeqCst), 6);
}

#[test]
fn a_flush_slower_than_slow_flush_log_threshold_is_logged() {
    for (threshold, logged) in [("    slow_flush_log_threshold 500ms", true), ("", false)] {
        let (agg, requests) = aggregator(Some(Duration::from_secs(1)));
        let port = free_port();
        let ferry = Ferry::start(&forwarder(port, agg, threshold), port);
        AckedSender::connect(port)
            .unwrap()
            .send("t", 0..1, 1)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while requests.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "nothing was flushed");
            thread::sleep(Duration::from_millis(50));
        }
        thread::sleep(Duration::from_millis(1500));
        let slow = ferry
            .stderr_so_far()
            .iter()
            .any(|l| l.contains("took longer time than slow_flush_log_threshold"));
        assert_eq!(slow, logged, "{threshold:?}");
    }
}

#[test]
fn metrics_are_served_at_bind_port_and_metrics_path() {
    let (admin, port) = (free_port(), free_port());
    let config = format!(
        "<source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n  metrics_path /scrape\n</source>\n\
         <source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n<match **>\n  @type null\n</match>\n"
    );
    let _ferry = Ferry::start(&config, port);
    let (status, body) = http_get("127.0.0.1", admin, "/scrape");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("fluentd_output_status_emit_count"), "{body}");
    // Another bind address and the default path: nothing answers on 127.0.0.1, and /scrape
    // is not a metrics path.
    let (other, port) = (free_port(), free_port());
    let config = format!(
        "<source>\n  @type prometheus\n  bind 127.0.0.2\n  port {other}\n</source>\n\
         <source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n<match **>\n  @type null\n</match>\n"
    );
    let _ferry = Ferry::start(&config, port);
    assert_eq!(http_get("127.0.0.2", other, "/scrape").0, 404);
    assert_eq!(http_get("127.0.0.2", other, "/metrics").0, 200);
    assert!(TcpStream::connect(("127.0.0.1", other)).is_err());
}
