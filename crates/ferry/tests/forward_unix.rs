//! The forward input on a Unix socket (`unix_path`, `unix_perm`): requests and acks as over
//! TCP, the socket file's mode, and a stale socket file replaced at start-up.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use bytes::BytesMut;
use common::Ferry;
use ferry_proto::ack::parse_ack;
use ferry_proto::encode::encode_message;
use ferry_proto::frame::FrameDecoder;
use ferry_proto::{ChunkId, EventTime, Options, msgpack};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn message(n: u64, chunk: &str) -> Vec<u8> {
    let mut record = BytesMut::new();
    msgpack::write_map_len(&mut record, 1);
    msgpack::write_str(&mut record, b"n");
    msgpack::write_uint(&mut record, n);
    let options = Options {
        chunk: Some(ChunkId::str(chunk.as_bytes().to_vec())),
        ..Options::default()
    };
    let mut out = BytesMut::new();
    encode_message(
        &mut out,
        "unix.test",
        EventTime::new(1_700_000_000, 0),
        false,
        &record,
        Some(&options),
    );
    out.to_vec()
}

fn ack(s: &mut UnixStream) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let mut d = FrameDecoder::new(1024);
    loop {
        if let Some(f) = d.decode(&mut buf).unwrap() {
            return parse_ack(&f).unwrap().bytes.to_vec();
        }
        let mut b = [0u8; 512];
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "ferry closed the unix connection");
        buf.extend_from_slice(&b[..n]);
    }
}

const CONFIG: &str = "<source>\n  @type forward\n  unix_path {dir}/ferry.sock\n  unix_perm 0600\n  source_address_key peer\n</source>\n\
<match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n";

fn ready(dir: &Path) -> bool {
    UnixStream::connect(dir.join("ferry.sock")).is_ok()
}

#[test]
fn requests_over_a_unix_socket_are_acked_and_the_socket_has_unix_perm() {
    let ferry = Ferry::start_cmd(Command::new(common::ferry_bin()), CONFIG, ready);
    let path = ferry.dir().join("ferry.sock");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..3 {
        s.write_all(&message(i, &format!("u{i}"))).unwrap();
        assert_eq!(ack(&mut s), format!("u{i}").as_bytes());
    }
    let lines = ferry.stdout_lines(3, Duration::from_secs(10));
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["n"], 0);
    assert_eq!(
        first["peer"],
        path.display().to_string(),
        "source_address_key on a unix socket is its path"
    );
}

#[test]
fn a_stale_socket_file_is_replaced_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("ferry.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap()); // file left, nobody listening
    assert!(stale.exists());
    let config = CONFIG.replace("{dir}", &dir.path().display().to_string());
    let d = dir.path().to_path_buf();
    let ferry = Ferry::start_cmd(Command::new(common::ferry_bin()), &config, move |_| {
        ready(&d)
    });
    let mut s = UnixStream::connect(&stale).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&message(7, "fresh")).unwrap();
    assert_eq!(ack(&mut s), b"fresh");
    drop(ferry);
}
