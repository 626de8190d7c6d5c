//! The scribe output against an independent Scribe server: Apache Thrift's own Python library
//! (`thrift` from PyPI) serving the Scribe service generated from its IDL (the `facebook-scribe`
//! package), framed, as scribed serves it. Every event is counted at the server; TRY_LATER,
//! a server that is down, a standby, and slices resumed after a failure are shown.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Ferry, free_port, metric, metrics};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Scribe server: writes each message received as a JSON line `[category, message]` to the
/// file in argv[2]; answers TRY_LATER to the calls numbered in argv[3] (`1,2`; `-` for none).
const SERVER: &str = r#"
import builtins, sys, json, os, threading
builtins.xrange = range
from scribe import scribe
from thrift.transport import TSocket, TTransport
from thrift.protocol import TBinaryProtocol
from thrift.server import TServer
port, out = int(sys.argv[1]), sys.argv[2]
refuse = set() if sys.argv[3] == "-" else {int(n) for n in sys.argv[3].split(",")}
lock = threading.Lock()
calls = [0]
class Handler:
    def Log(self, messages):
        with lock:
            calls[0] += 1
            if calls[0] in refuse:
                return scribe.ResultCode.TRY_LATER
            with open(out, "a") as f:
                for m in messages:
                    f.write(json.dumps([m.category, m.message]) + "\n")
            return scribe.ResultCode.OK
server = TServer.TThreadedServer(
    scribe.Processor(Handler()),
    TSocket.TServerSocket(host="127.0.0.1", port=port),
    TTransport.TFramedTransportFactory(),
    TBinaryProtocol.TBinaryProtocolFactory(strictRead=False, strictWrite=False),
    daemon=True)
print("ready", flush=True)
server.serve()
"#;

struct ScribeServer {
    child: Child,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for ScribeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<std::path::PathBuf> {
    let p = common::python()?;
    let ok = Command::new(&p)
        .args(["-c", "import scribe.scribe, thrift.server.TServer"])
        .status()
        .unwrap()
        .success();
    if !ok {
        assert!(
            std::env::var_os("FERRY_TEST_DEPS").is_none(),
            "the Python Scribe server is missing: scripts/test-deps.sh installs facebook-scribe and thrift"
        );
        return None;
    }
    Some(p)
}

fn start_server(python: &std::path::Path, port: u16, refuse: &str) -> ScribeServer {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("server.py");
    std::fs::write(&script, SERVER).unwrap();
    let out = dir.path().join("received.jsonl");
    let child = Command::new(python)
        .arg(&script)
        .arg(port.to_string())
        .arg(&out)
        .arg(refuse)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the Scribe server did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ScribeServer {
        child,
        out,
        _dir: dir,
    }
}

/// `(category, seq)` → times received, once `n` distinct arrived (or the timeout).
fn received(server: &ScribeServer, n: usize, timeout: Duration) -> BTreeMap<(String, u64), u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(&server.out).unwrap_or_default();
        let mut seen = BTreeMap::new();
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let msg: serde_json::Value = serde_json::from_str(v[1].as_str().unwrap().trim())
                .unwrap_or_else(|_| serde_json::json!({"seq": v[1].as_str().unwrap().trim().trim_start_matches("seq=").parse::<u64>().unwrap()}));
            let seq = msg["seq"].as_u64().unwrap();
            *seen
                .entry((v[0].as_str().unwrap().to_string(), seq))
                .or_insert(0) += 1;
        }
        if seen.len() >= n || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ferry_config(http: u16, admin: u16, servers: &str, extra: &str, buffer: &str) -> String {
    format!(
        "<source>\n  @type http\n  bind 127.0.0.1\n  port {http}\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match app.**>\n  @type scribe\n  @id out\n{servers}{extra}  <buffer>\n    retry_wait 200ms\n    retry_max_interval 1s\n{buffer}  </buffer>\n</match>\n"
    )
}

/// POSTs `n` events (`{"seq": i, "message": "seq=i"}`) to `tag` in requests of 500.
fn post(http: u16, tag: &str, range: std::ops::Range<u64>) {
    let mut start = range.start;
    while start < range.end {
        let end = (start + 500).min(range.end);
        let body: String = (start..end)
            .map(|i| format!("{{\"seq\":{i},\"message\":\"seq={i}\",\"line\":\"seq={i}\"}}\n"))
            .collect();
        let (code, answer) = post_once(http, tag, &body);
        assert_eq!(code, 200, "{answer}");
        start = end;
    }
}

fn post_once(http: u16, tag: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    write!(
        s,
        "POST /{tag} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn every_event_reaches_a_thrift_scribe_server_and_try_later_is_retried() {
    let Some(python) = python() else { return };
    let (http, admin, port) = (free_port(), free_port(), free_port());
    let server = start_server(&python, port, "1,2");
    let ferry = Ferry::start(
        &ferry_config(
            http,
            admin,
            &format!("  host 127.0.0.1\n  port {port}\n"),
            "  remove_prefix app\n  add_newline true\n  field_ref line\n  default_category misc\n",
            "    flush_interval 200ms\n",
        ),
        http,
    );
    post(http, "app.web", 0..3000);
    post(http, "app", 3000..3100);
    let seen = received(&server, 3100, Duration::from_secs(30));
    assert_eq!(seen.len(), 3100, "every event arrived");
    assert!(seen.values().all(|n| *n == 1), "each once");
    assert!(seen.contains_key(&("web".to_string(), 0)), "remove_prefix");
    assert!(
        seen.contains_key(&("misc".to_string(), 3000)),
        "default_category"
    );
    let text = std::fs::read_to_string(&server.out).unwrap();
    assert!(
        text.lines().next().unwrap().ends_with("\\n\"]"),
        "add_newline: {text:.200}"
    );
    let m = metrics(admin);
    let calls = |answer: &str| {
        metric(
            &m,
            &format!(
                "ferry_scribe_output_calls_total{{plugin_id=\"out\",type=\"scribe\",answer=\"{answer}\"}}"
            ),
        )
    };
    assert_eq!(calls("try_later"), 2.0);
    assert!(calls("ok") >= 2.0);
    assert_eq!(
        metric(
            &m,
            "ferry_scribe_output_messages_total{plugin_id=\"out\",type=\"scribe\"}"
        ),
        3100.0
    );
    drop(ferry);
}

#[test]
fn a_standby_takes_the_calls_while_the_server_is_down() {
    let Some(python) = python() else { return };
    let (http, admin, primary, standby) = (free_port(), free_port(), free_port(), free_port());
    let backup = start_server(&python, standby, "-");
    let ferry = Ferry::start(
        &ferry_config(
            http,
            admin,
            &format!(
                "  <server>\n    host 127.0.0.1\n    port {primary}\n  </server>\n  <server>\n    host 127.0.0.1\n    port {standby}\n    standby true\n  </server>\n"
            ),
            "  format_to_json true\n",
            "    flush_interval 200ms\n",
        ),
        http,
    );
    post(http, "app.web", 0..2000);
    let seen = received(&backup, 2000, Duration::from_secs(30));
    assert_eq!(seen.len(), 2000);
    assert!(seen.values().all(|n| *n == 1), "each once");
    let m = metrics(admin);
    assert!(
        metric(
            &m,
            "ferry_scribe_output_calls_total{plugin_id=\"out\",type=\"scribe\",answer=\"failed\"}"
        ) >= 1.0,
        "the primary was down"
    );
    drop(ferry);
}

#[test]
fn slices_answered_ok_are_not_sent_again_when_a_later_slice_is_refused() {
    let Some(python) = python() else { return };
    let (http, admin, port) = (free_port(), free_port(), free_port());
    // The second call is refused: the retry sends the second and third slices only.
    let server = start_server(&python, port, "2");
    let ferry = Ferry::start(
        &ferry_config(
            http,
            admin,
            &format!("  host 127.0.0.1\n  port {port}\n"),
            "  timeout 10s\n",
            "    chunk_limit_size 8m\n    flush_interval 5s\n",
        ),
        http,
    );
    // 25,000 events in one chunk: three Log calls of at most 10,000.
    post(http, "app.batch", 0..25_000);
    let seen = received(&server, 25_000, Duration::from_secs(30));
    assert_eq!(seen.len(), 25_000);
    assert!(seen.values().all(|n| *n == 1), "no slice was sent twice");
    let m = metrics(admin);
    let calls = |answer: &str| {
        metric(
            &m,
            &format!(
                "ferry_scribe_output_calls_total{{plugin_id=\"out\",type=\"scribe\",answer=\"{answer}\"}}"
            ),
        )
    };
    assert_eq!((calls("ok"), calls("try_later")), (3.0, 1.0));
    drop(ferry);
}
