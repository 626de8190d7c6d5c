//! The forward output against an independent receiver: `fluentbit-server-py` (PyPI), a Python
//! Forward server with its own shared-key handshake. It only understands Forward mode (it
//! raises NotImplementedError for PackedForward, which out_forward and ferry send) and sends
//! no acks, so what it can check is the handshake: ferry's PING digests and its PONG checks
//! against an implementation written by someone else. Event delivery is checked against ferry's
//! own input and Fluentd's captured bytes (`forward_output_tls.rs`, `forward_output_failover.rs`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod forward_support;

use common::{AckedSender, Ferry, free_port};
use forward_support::{forwarder_config_with, server, wait_until};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

const SERVER: &str = r#"
import logging, sys, msgpack
from fluentbit_server.fluentbit_server import FluentbitServer
from fluentbit_server.fluentbit_request_handler import FluentbitRequestHandler
from fluentbit_server.fluentbit_transport import FluentbitTransport
from fluentbit_server.fluentbit_authentication import FluentbitAuthentication

port, key, hostname = int(sys.argv[1]), sys.argv[2], sys.argv[3]

class Auth(FluentbitAuthentication):
    def __init__(self):
        super().__init__(key, hostname)
    def validate_PING(self, ping_bin):
        result = super().validate_PING(ping_bin)
        print("AUTH", result[0], result[1], flush=True)
        return result

class Transport(FluentbitTransport):
    def __init__(self):
        super().__init__(lambda e: print("EVENT", e, flush=True), buffer_size=1 << 20)
    def process(self, message):
        print("REQUEST", message[0].decode(), type(message[1]).__name__, flush=True)
        try:
            super().process(message)
        except NotImplementedError as e:
            print("UNSUPPORTED", e, flush=True)

server = FluentbitServer(("127.0.0.1", port), FluentbitRequestHandler, Transport, Auth)
print("LISTENING", flush=True)
server.serve_forever()
"#;

/// The venv's Python when fluentbit-server-py is installed in it.
fn python_with_fluentbit_server() -> Option<PathBuf> {
    let python = std::env::var_os("FERRY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::workspace_root().join(".test-deps/venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import fluentbit_server.fluentbit_server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("FERRY_TEST_DEPS").is_none(),
        "fluentbit-server-py is missing from the test venv: scripts/test-deps.sh installs it"
    );
    eprintln!("skipping: fluentbit-server-py is not installed (scripts/test-deps.sh)");
    None
}

struct PyServer {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PyServer {
    fn start(python: &PathBuf, port: u16, key: &str) -> Self {
        let mut child = Command::new(python)
            .args(["-", &port.to_string(), key, "py.aggregator"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(SERVER.as_bytes())
            .unwrap();
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(first, "LISTENING");
        Self { child, lines: rx }
    }
}

fn forwarder(port: u16, py_port: u16, key: &str, dir: &std::path::Path) -> Ferry {
    let params = format!(
        "  heartbeat_type none\n  <security>\n    self_hostname forwarder.test\n    shared_key {key}\n  </security>\n"
    );
    let conf = forwarder_config_with(
        port,
        dir,
        &params,
        &server("py", py_port, ""),
        "    retry_wait 300ms\n    retry_forever true\n",
        "",
    );
    // At debug, every retry shows (at warn, a repeated failure is logged once).
    Ferry::start(
        &format!("<system>\n  log_level debug\n</system>\n{conf}"),
        port,
    )
}

#[test]
fn the_shared_key_handshake_interoperates_with_fluentbit_server_py() {
    let Some(python) = python_with_fluentbit_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (py_port, fport) = (free_port(), free_port());
    let py = PyServer::start(&python, py_port, "k3y");

    let fwd = forwarder(fport, py_port, "k3y", &dir.path().join("ok"));
    AckedSender::connect(fport)
        .unwrap()
        .send("interop.ok", 0..5, 10)
        .unwrap();
    let mut seen = Vec::new();
    wait_until(
        Duration::from_secs(20),
        "the handshake and a request",
        || {
            seen.extend(py.lines.try_iter());
            seen.iter().any(|l| l.starts_with("REQUEST interop.ok"))
        },
    );
    assert!(seen.iter().any(|l| l == "AUTH True "), "{seen:#?}");
    // The server accepted ferry's PING; ferry accepted its PONG and sent the events (which
    // this server cannot decode: PackedForward).
    assert!(
        seen.iter().any(|l| l.starts_with("UNSUPPORTED")),
        "{seen:#?}"
    );
    drop(fwd);

    let fwd = forwarder(fport, py_port, "wrong", &dir.path().join("bad"));
    AckedSender::connect(fport)
        .unwrap()
        .send("interop.bad", 0..5, 10)
        .unwrap();
    let mut log = Vec::new();
    wait_until(
        Duration::from_secs(20),
        "the refused handshake is logged and retried",
        || {
            seen.extend(py.lines.try_iter());
            log.extend(fwd.stderr.try_iter());
            log.iter()
                .filter(|l| l.contains("temporarily failed to flush the buffer"))
                .count()
                >= 2
        },
    );
    assert!(
        seen.iter().any(|l| l == "AUTH False bad shared key"),
        "{seen:#?}"
    );
    let failure = log
        .iter()
        .find(|l| l.contains("temporarily failed to flush the buffer"))
        .unwrap();
    assert!(
        failure.contains("error_class=Fluent::Plugin::ForwardOutput::PingpongError")
            && failure.contains("server 'py'")
            && failure.contains("bad shared key"),
        "{failure}"
    );
    assert!(!seen.iter().any(|l| l.starts_with("REQUEST interop.bad")));
}
