//! The `<security>` handshake against the real binary: each failure gets Fluentd's PONG
//! reason, a warning naming the peer and a closed connection; a good client is acked; and
//! the connections Fluentd opens every second for its heartbeat (empty, or a full handshake
//! then a close) are not logged as warnings.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use bytes::{Bytes, BytesMut};
use common::{Ferry, free_port};
use ferry_proto::ack::parse_ack;
use ferry_proto::encode::encode_message;
use ferry_proto::frame::FrameDecoder;
use ferry_proto::handshake::{Helo, Ping, Pong, parse_helo, password_digest, shared_key_digest};
use ferry_proto::{ChunkId, EventTime, Options, msgpack};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

const SALT: &[u8] = b"0123456789abcdef0123456789abcdef";

fn config(port: u16, security_extra: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n  <security>\n    self_hostname server.example\n    shared_key s3cr3t\n    user_auth true\n    <user>\n      username alice\n      password p@ss\n    </user>\n{security_extra}\n  </security>\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
    )
}

struct Client {
    s: TcpStream,
    buf: BytesMut,
}

impl Client {
    fn connect(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self {
            s,
            buf: BytesMut::new(),
        }
    }

    /// The next msgpack value, `None` once ferry closed.
    fn frame(&mut self) -> Option<Bytes> {
        let mut d = FrameDecoder::new(1 << 16);
        loop {
            if let Some(f) = d.decode(&mut self.buf).unwrap() {
                return Some(f);
            }
            let mut b = [0u8; 512];
            match self.s.read(&mut b) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
            }
        }
    }

    fn helo(&mut self) -> Helo {
        parse_helo(&self.frame().expect("HELO")).unwrap()
    }

    fn ping(&mut self, helo: &Helo, key: &str, user: &str, password: &str) -> Pong {
        let ping = Ping {
            hostname: Bytes::from_static(b"client.example"),
            shared_key_salt: Bytes::from_static(SALT),
            shared_key_hexdigest: shared_key_digest(
                SALT,
                b"client.example",
                &helo.nonce,
                key.as_bytes(),
            )
            .into(),
            username: Bytes::copy_from_slice(user.as_bytes()),
            password_hexdigest: password_digest(&helo.auth, user.as_bytes(), password.as_bytes())
                .into(),
        };
        self.s.write_all(&ping.encode()).unwrap();
        Pong::parse(&self.frame().expect("PONG")).unwrap()
    }

    /// Ferry closed the connection: EOF (or a reset) on the next read.
    fn assert_closed(&mut self) {
        assert!(self.frame().is_none(), "the connection is still open");
    }
}

fn message(chunk: &str) -> Vec<u8> {
    let mut record = BytesMut::new();
    msgpack::write_map_len(&mut record, 1);
    msgpack::write_str(&mut record, b"n");
    msgpack::write_uint(&mut record, 1);
    let options = Options {
        chunk: Some(ChunkId::str(chunk.as_bytes().to_vec())),
        ..Options::default()
    };
    let mut out = BytesMut::new();
    encode_message(
        &mut out,
        "sec.test",
        EventTime::new(1_700_000_000, 0),
        false,
        &record,
        Some(&options),
    );
    out.to_vec()
}

#[test]
fn each_handshake_failure_gets_fluentds_reason_a_warning_and_a_closed_connection() {
    let port = free_port();
    let ferry = Ferry::start(&config(port, ""), port);
    let mut seen = Vec::new();
    for (key, user, password, reason) in [
        ("wrong", "alice", "p@ss", "shared_key mismatch"),
        ("s3cr3t", "alice", "wrong", "username/password mismatch"),
        ("s3cr3t", "bob", "p@ss", "username/password mismatch"),
    ] {
        let mut c = Client::connect(port);
        let local = c.s.local_addr().unwrap();
        let helo = c.helo();
        let pong = c.ping(&helo, key, user, password);
        assert_eq!(pong, Pong::failure(reason), "{user}/{key}");
        assert_eq!(Pong::failure(reason).encode(), pong.encode());
        c.assert_closed();
        let line = ferry.wait_stderr(
            &format!("handshake with {local} failed"),
            Duration::from_secs(10),
            &mut seen,
        );
        assert!(line.contains("[warn]") && line.contains(reason), "{line}");
    }
    // Data instead of a PING.
    let mut c = Client::connect(port);
    let local = c.s.local_addr().unwrap();
    c.helo();
    c.s.write_all(&message("no-ping")).unwrap();
    let pong = Pong::parse(&c.frame().unwrap()).unwrap();
    assert_eq!(pong, Pong::failure("invalid ping message"));
    c.assert_closed();
    let line = ferry.wait_stderr(
        &format!("handshake with {local} failed"),
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(line.contains("invalid ping message"), "{line}");
    // A good client after all that: handshake, event, ack.
    let mut c = Client::connect(port);
    let helo = c.helo();
    assert!(helo.keepalive);
    let pong = c.ping(&helo, "s3cr3t", "alice", "p@ss");
    assert!(pong.ok, "{pong:?}");
    assert_eq!(&pong.hostname[..], b"server.example");
    assert_eq!(
        &pong.shared_key_hexdigest[..],
        shared_key_digest(SALT, b"server.example", &helo.nonce, b"s3cr3t").as_bytes()
    );
    c.s.write_all(&message("good")).unwrap();
    assert_eq!(&parse_ack(&c.frame().unwrap()).unwrap().bytes[..], b"good");
    assert_eq!(ferry.stdout_lines(1, Duration::from_secs(10)).len(), 1);
}

#[test]
fn an_anonymous_source_is_denied_with_fluentds_reason_and_a_known_client_uses_its_own_key() {
    let port = free_port();
    let clients =
        "    allow_anonymous_source false\n    <client>\n      network 10.0.0.0/8\n    </client>";
    let _ferry = Ferry::start(&config(port, clients), port);
    let mut c = Client::connect(port);
    let helo = c.helo();
    let pong = c.ping(&helo, "s3cr3t", "alice", "p@ss");
    assert_eq!(
        pong,
        Pong::failure("anonymous source host '127.0.0.1' denied")
    );
    c.assert_closed();

    let port = free_port();
    let own_key = "    allow_anonymous_source false\n    <client>\n      host 127.0.0.1\n      shared_key client-key\n      users alice\n    </client>";
    let _ferry = Ferry::start(&config(port, own_key), port);
    let mut c = Client::connect(port);
    let helo = c.helo();
    assert_eq!(
        c.ping(&helo, "s3cr3t", "alice", "p@ss"),
        Pong::failure("shared_key mismatch")
    );
    let mut c = Client::connect(port);
    let helo = c.helo();
    assert!(c.ping(&helo, "client-key", "alice", "p@ss").ok);
}

#[test]
fn deny_keepalive_is_announced_in_helo_and_closes_after_one_request() {
    let port = free_port();
    let cfg = config(port, "").replace("  <security>", "  deny_keepalive true\n  <security>");
    let _ferry = Ferry::start(&cfg, port);
    let mut c = Client::connect(port);
    let helo = c.helo();
    assert!(!helo.keepalive);
    assert!(c.ping(&helo, "s3cr3t", "alice", "p@ss").ok);
    let mut two = message("one");
    two.extend_from_slice(&message("two"));
    c.s.write_all(&two).unwrap();
    assert_eq!(&parse_ack(&c.frame().unwrap()).unwrap().bytes[..], b"one");
    c.assert_closed();
}

#[test]
fn heartbeat_connections_are_not_warnings() {
    let port = free_port();
    let ferry = Ferry::start(&config(port, ""), port);
    for _ in 0..20 {
        // Fluentd's transport heartbeat with <security>: HELO, PING, PONG, close.
        let mut c = Client::connect(port);
        let helo = c.helo();
        assert!(c.ping(&helo, "s3cr3t", "alice", "p@ss").ok);
        c.s.shutdown(Shutdown::Write).unwrap();
        c.assert_closed();
        // And an empty connection, closed at once.
        let mut c = Client::connect(port);
        c.s.shutdown(Shutdown::Write).unwrap();
        c.frame(); // the HELO
        c.assert_closed();
    }
    // A failure is a warning: once it is logged, everything before it has been too.
    let mut c = Client::connect(port);
    let helo = c.helo();
    c.ping(&helo, "wrong", "alice", "p@ss");
    let mut seen = Vec::new();
    ferry.wait_stderr("shared_key mismatch", Duration::from_secs(10), &mut seen);
    let warnings: Vec<_> = seen
        .iter()
        .filter(|l| l.contains("[warn]") || l.contains("[error]"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
}
