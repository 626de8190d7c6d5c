//! The scribe input against the Python Scribe client from PyPI (`facebook-scribe` on Apache
//! Thrift's `thrift` package): framed and unframed, every msg_format, fb303's status calls, bad
//! bytes (an oversize frame, a truncated frame, an unknown method, a wrong type, a list longer
//! than its frame), and a full buffer answered TRY_LATER whose OK'd messages all arrive.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Ferry, free_port, metric, metrics};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The Python side: sends `batches` Log calls of `per` messages to the port, prints one JSON
/// line of results. Messages are `seq=N` (or the format's own) in categories `cat0`/`cat1`.
const CLIENT: &str = r#"
import builtins, sys, json, time
# fb303 from PyPI is Python 2 code where it reads maps (getCounters): give it xrange.
builtins.xrange = range
from scribe import scribe
from thrift.transport import TTransport, TSocket
from thrift.protocol import TBinaryProtocol
port, framed, batches, per, fmt = int(sys.argv[1]), sys.argv[2] == "framed", int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sock = TSocket.TSocket(host="127.0.0.1", port=port)
sock.setTimeout(20000)
transport = TTransport.TFramedTransport(sock) if framed else TTransport.TBufferedTransport(sock)
protocol = TBinaryProtocol.TBinaryProtocol(trans=transport, strictRead=False, strictWrite=False)
client = scribe.Client(iprot=protocol, oprot=protocol)
transport.open()
def message(i):
    if fmt == "json":
        return json.dumps({"seq": i, "via": "json"})
    if fmt == "url_param":
        return "seq=%d&via=url+param%%21" % i
    if fmt == "parse":
        return "2026-12-07T10:%02d:00Z seq=%d\n" % (i % 60, i)
    return "seq=%d\n" % i
results = {}
ok = []
stop_at_try_later = len(sys.argv) > 6
for b in range(batches):
    msgs = [scribe.LogEntry(category="cat%d" % (i % 2), message=message(b * per + i)) for i in range(per)]
    r = client.Log(messages=msgs)
    results[r] = results.get(r, 0) + 1
    if r == scribe.ResultCode.OK:
        ok.extend(range(b * per, b * per + per))
    elif stop_at_try_later and results.get(scribe.ResultCode.TRY_LATER, 0) >= 3:
        break
out = {"results": {str(k): v for k, v in results.items()}, "ok": ok}
if not stop_at_try_later:
    out["status"] = client.getStatus()
    out["alive_since"] = client.aliveSince()
    out["counters"] = client.getCounters()
    out["name"] = client.getName()
transport.close()
print(json.dumps(out))
"#;

fn python() -> Option<std::path::PathBuf> {
    let p = common::python()?;
    let probe = std::process::Command::new(&p)
        .args(["-c", "import scribe.scribe, thrift"])
        .status()
        .unwrap();
    if !probe.success() {
        assert!(
            std::env::var_os("FERRY_TEST_DEPS").is_none(),
            "the Python Scribe client is missing: scripts/test-deps.sh installs facebook-scribe and thrift"
        );
        return None;
    }
    Some(p)
}

fn run_client(python: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = common::run_python(python, CLIENT, args);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{out}: {e}"))
}

fn config(port: u16, admin: u16, extra: &str) -> String {
    format!(
        "<source>\n  @type scribe\n  bind 127.0.0.1\n  port {port}\n{extra}</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n    time_key t\n    time_type unixtime\n  </inject>\n</match>\n"
    )
}

fn seq_of(v: &serde_json::Value) -> u64 {
    if let Some(n) = v["seq"].as_u64() {
        return n;
    }
    let text = v["seq"]
        .as_str()
        .or_else(|| v["message"].as_str())
        .or_else(|| v["msg"].as_str())
        .unwrap_or_else(|| panic!("{v}"));
    text.trim()
        .trim_start_matches("seq=")
        .parse()
        .unwrap_or_else(|_| panic!("{v}"))
}

fn tally(lines: &[String]) -> BTreeMap<u64, u32> {
    let mut seen = BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *seen.entry(seq_of(&v)).or_insert(0) += 1;
    }
    seen
}

#[test]
fn the_python_scribe_client_logs_batches_framed_and_every_message_arrives_once() {
    let Some(python) = python() else { return };
    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(
        &config(
            port,
            admin,
            "  add_prefix scribe\n  remove_newline true\n  msg_key msg\n",
        ),
        port,
    );
    let r = run_client(&python, &[&port.to_string(), "framed", "20", "100", "text"]);
    assert_eq!(r["results"], serde_json::json!({"0": 20}), "{r}");
    assert_eq!(r["status"], 2, "fb303 ALIVE");
    assert!(r["alive_since"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(r["counters"]["scribe.messages"], 2000);
    assert_eq!(r["name"], "ferry");
    let lines = ferry.stdout_lines(2000, Duration::from_secs(20));
    let seen = tally(&lines);
    assert_eq!(seen.len(), 2000);
    assert!(seen.values().all(|n| *n == 1));
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(
        first["tag"] == "scribe.cat0" || first["tag"] == "scribe.cat1",
        "{first}"
    );
    assert!(
        !first["msg"].as_str().unwrap().ends_with('\n'),
        "remove_newline: {first}"
    );
    let m = metrics(admin);
    assert_eq!(
        metric(
            &m,
            "ferry_scribe_input_calls_total{plugin_id=\"scribe_0\",type=\"scribe\",answer=\"ok\"}"
        ),
        20.0
    );
    assert_eq!(
        metric(
            &m,
            "fluentd_input_status_num_records_total{plugin_id=\"scribe_0\",type=\"scribe\"}"
        ),
        2000.0
    );
}

#[test]
fn unframed_json_url_param_and_a_parse_section_make_their_records() {
    let Some(python) = python() else { return };
    let (p1, p2, p3, admin) = (free_port(), free_port(), free_port(), free_port());
    let conf = format!(
        "<source>\n  @type scribe\n  bind 127.0.0.1\n  port {p1}\n  is_framed false\n  msg_format json\n</source>\n\
         <source>\n  @type scribe\n  @label @URL\n  bind 127.0.0.1\n  port {p2}\n  msg_format url_param\n</source>\n\
         <label @URL>\n  <match **>\n    @type stdout\n    <format>\n      @type json\n    </format>\n  </match>\n</label>\n\
         <source>\n  @type scribe\n  bind 127.0.0.1\n  port {p3}\n  remove_newline true\n  <parse>\n    @type regexp\n    expression /^(?<time>\\S+) seq=(?<seq>\\d+)$/\n    types seq:integer\n  </parse>\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n    time_key t\n    time_type unixtime\n  </inject>\n</match>\n"
    );
    let ferry = Ferry::start(&conf, p1);
    let r = run_client(&python, &[&p1.to_string(), "unframed", "2", "50", "json"]);
    assert_eq!(r["results"], serde_json::json!({"0": 2}), "{r}");
    let r = run_client(
        &python,
        &[&p2.to_string(), "framed", "1", "50", "url_param"],
    );
    assert_eq!(r["results"], serde_json::json!({"0": 1}), "{r}");
    let r = run_client(&python, &[&p3.to_string(), "framed", "1", "50", "parse"]);
    assert_eq!(r["results"], serde_json::json!({"0": 1}), "{r}");
    let lines = ferry.stdout_lines(200, Duration::from_secs(20));
    let mut json = 0;
    let mut url = 0;
    let mut parsed = 0;
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        match v["via"].as_str() {
            Some("json") => json += 1,
            Some("url param!") => url += 1,
            _ => {
                assert!(v["seq"].is_u64(), "{v}");
                let seq = v["seq"].as_u64().unwrap();
                // The <parse> took the time from the message.
                assert_eq!(v["t"], 1_796_637_600 + (seq % 60) * 60, "{v}");
                parsed += 1;
            }
        }
    }
    assert_eq!((json, url, parsed), (100, 50, 50));
}

/// A framed call of `body` (a message header and its struct) as raw bytes.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// An old-style header: name, type, seqid.
fn header(name: &str, kind: u8, seqid: i32) -> Vec<u8> {
    let mut out = (name.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(name.as_bytes());
    out.push(kind);
    out.extend_from_slice(&seqid.to_be_bytes());
    out
}

fn read_some(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue,
        }
    }
}

#[test]
fn bad_bytes_get_an_exception_or_a_closed_connection_with_a_logged_reason() {
    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(&config(port, admin, "  body_size_limit 1k\n"), port);
    // An unknown method: an exception, and the connection serves the next call.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut call = header("Frobnicate", 1, 5);
    call.push(0);
    s.write_all(&frame(&call)).unwrap();
    let answer = read_some(&mut s);
    assert!(
        String::from_utf8_lossy(&answer).contains("unknown method Frobnicate"),
        "{answer:?}"
    );
    let mut status = header("getStatus", 1, 6);
    status.push(0);
    s.write_all(&frame(&status)).unwrap();
    let answer = read_some(&mut s);
    // The reply's field 0, an i32: 2 (ALIVE), then the struct's stop.
    assert!(answer.ends_with(&[8, 0, 0, 0, 0, 0, 2, 0]), "{answer:?}");
    // A wrong type: Log's field 1 is an i32, not a list. A protocol exception.
    let mut wrong = header("Log", 1, 7);
    wrong.extend_from_slice(&[8, 0, 1, 0, 0, 0, 9, 0]);
    s.write_all(&frame(&wrong)).unwrap();
    let answer = read_some(&mut s);
    assert!(
        String::from_utf8_lossy(&answer).contains("do not read"),
        "{answer:?}"
    );
    // A list longer than its frame: an exception, then the connection is closed.
    let mut long_list = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut long = header("Log", 1, 8);
    long.extend_from_slice(&[15, 0, 1, 12, 0x00, 0xff, 0xff, 0xff, 0]);
    long_list.write_all(&frame(&long)).unwrap();
    let answer = read_some(&mut long_list);
    assert!(
        String::from_utf8_lossy(&answer).contains("more than the bytes left"),
        "{answer:?}"
    );
    assert!(closed(&mut long_list));
    // A frame over body_size_limit: an exception, then the connection is closed.
    let mut big = TcpStream::connect(("127.0.0.1", port)).unwrap();
    big.write_all(&(1_000_000u32).to_be_bytes()).unwrap();
    let answer = read_some(&mut big);
    assert!(
        String::from_utf8_lossy(&answer).contains("over the limit of 1024"),
        "{answer:?}"
    );
    assert!(closed(&mut big));
    // A truncated frame: the client closes mid-frame.
    let mut cut = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut log = header("Log", 1, 9);
    log.extend_from_slice(&[15, 0, 1, 12, 0, 0, 0, 1]);
    let mut f = frame(&log);
    f[3] += 20;
    cut.write_all(&f).unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed(&mut cut));
    std::thread::sleep(Duration::from_millis(300));
    let log = ferry.stderr_so_far().join("\n");
    for needle in [
        "unknown method \"Frobnicate\"",
        "the arguments of Log do not read",
        "over the limit of 1024",
        "more than the bytes left",
        "the frame ends inside the message",
        "127.0.0.1:",
    ] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    let m = metrics(admin);
    let refused = metric(
        &m,
        "ferry_network_input_refused_total{plugin_id=\"scribe_0\",type=\"scribe\",reason=\"broken_request\"}",
    );
    assert_eq!(
        refused, 3.0,
        "the oversize frame, the long list, the truncated frame"
    );
}

#[test]
fn an_invalid_message_is_answered_try_later_or_skipped_and_counted() {
    let Some(python) = python() else { return };
    let (p1, p2, admin) = (free_port(), free_port(), free_port());
    let conf = format!(
        "<source>\n  @type scribe\n  bind 127.0.0.1\n  port {p1}\n  msg_format json\n</source>\n\
         <source>\n  @type scribe\n  bind 127.0.0.1\n  port {p2}\n  msg_format json\n  ignore_invalid_record true\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
    );
    let ferry = Ferry::start(&conf, p1);
    // "text" messages are not JSON.
    let r = run_client(&python, &[&p1.to_string(), "framed", "1", "5", "text"]);
    assert_eq!(r["results"], serde_json::json!({"1": 1}), "TRY_LATER: {r}");
    let r = run_client(&python, &[&p2.to_string(), "framed", "1", "5", "text"]);
    assert_eq!(
        r["results"],
        serde_json::json!({"0": 1}),
        "OK, skipped: {r}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(ferry.stdout.try_iter().next().is_none(), "nothing emitted");
    let m = metrics(admin);
    assert_eq!(
        metric(
            &m,
            "ferry_events_dropped_total{plugin_id=\"scribe_1\",type=\"scribe\",reason=\"invalid\"}"
        ),
        5.0
    );
    let log = ferry.stderr_so_far().join("\n");
    assert!(
        log.contains("makes no record") && log.contains("category \"cat0\""),
        "{log}"
    );
}

#[test]
fn a_full_buffer_is_answered_try_later_and_every_message_answered_ok_arrives() {
    let Some(python) = python() else { return };
    let (port, admin, dead) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "<source>\n  @type scribe\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type forward\n  <server>\n    host 127.0.0.1\n    port {dead}\n  </server>\n\
         <buffer>\n    @type file\n    path {}/buf\n    chunk_limit_size 4k\n    total_limit_size 16k\n    flush_interval 100ms\n    retry_wait 200ms\n    retry_max_interval 500ms\n  </buffer>\n</match>\n",
        dir.path().display()
    );
    let _ferry = Ferry::start(&conf, port);
    let r = run_client(
        &python,
        &[&port.to_string(), "framed", "400", "10", "text", "stop"],
    );
    assert_eq!(r["results"]["1"], 3, "TRY_LATER three times: {r}");
    let ok: Vec<u64> = r["ok"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(!ok.is_empty(), "{r}");
    let receiver = Ferry::start(
        &format!(
            "<source>\n  @type forward\n  bind 127.0.0.1\n  port {dead}\n</source>\n<match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
        ),
        dead,
    );
    // Messages of a call answered TRY_LATER may have been committed for one category before
    // the other was refused: they arrive too (the client sends them again).
    let want: std::collections::BTreeSet<u64> = ok.iter().copied().collect();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !want.is_subset(&seen) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = receiver.stdout.recv_timeout(left) else {
            let lost: Vec<_> = want.difference(&seen).collect();
            panic!("answered OK and lost: {lost:?}");
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.insert(seq_of(&v));
    }
}
