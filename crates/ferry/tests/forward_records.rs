//! What happens to events on their way in, against the real binary: every event mode, tag
//! rewriting (`tag`, `add_tag_prefix`), `source_address_key` / `source_hostname_key`, a time
//! of 0 replaced with the arrival time, invalid events skipped while the request is still
//! acked, `nil` requests ignored, and a chunk echoed with the msgpack type it came in.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use bytes::BytesMut;
use common::{Ferry, free_port};
use ferry_proto::encode::{
    encode_forward, encode_message, encode_packed_forward, gzip_compress, write_entry,
};
use ferry_proto::frame::FrameDecoder;
use ferry_proto::{ChunkId, Compression, EventTime, Options, msgpack};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn config(port: u16, extra: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n{extra}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n    time_key time\n    time_type float\n  </inject>\n</match>\n"
    )
}

fn record(n: u64) -> Vec<u8> {
    let mut r = BytesMut::new();
    msgpack::write_map_len(&mut r, 1);
    msgpack::write_str(&mut r, b"n");
    msgpack::write_uint(&mut r, n);
    r.to_vec()
}

fn entries(ns: &[u64], sec: u32) -> BytesMut {
    let mut e = BytesMut::new();
    for n in ns {
        write_entry(&mut e, EventTime::new(sec, 0), false, &record(*n));
    }
    e
}

fn chunk_opts(chunk: &ChunkId) -> Options {
    Options {
        chunk: Some(chunk.clone()),
        ..Options::default()
    }
}

fn next_frame(s: &mut TcpStream, buf: &mut BytesMut) -> Vec<u8> {
    let mut d = FrameDecoder::new(1024);
    loop {
        if let Some(f) = d.decode(buf).unwrap() {
            return f.to_vec();
        }
        let mut b = [0u8; 512];
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "ferry closed the connection");
        buf.extend_from_slice(&b[..n]);
    }
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_event_mode_is_accepted_and_acked_with_the_chunk_type_it_came_in() {
    let port = free_port();
    let ferry = Ferry::start(&config(port, ""), port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = BytesMut::new();
    let str_chunk = ChunkId::str(&b"c-str"[..]);
    let bin_chunk = ChunkId::bin(&b"\x00\x01bin"[..]);
    let mut wire = BytesMut::new();
    encode_message(
        &mut wire,
        "m.message",
        EventTime::new(1_700_000_000, 5),
        false,
        &record(0),
        Some(&chunk_opts(&str_chunk)),
    );
    msgpack::write_nil(&mut wire); // a nil request: ignored, no reply
    encode_forward(
        &mut wire,
        "m.forward",
        &entries(&[1, 2], 1_700_000_001),
        2,
        Some(&chunk_opts(&bin_chunk)),
    );
    encode_packed_forward(
        &mut wire,
        "m.packed",
        &entries(&[3, 4, 5], 1_700_000_002),
        3,
        Some(&str_chunk),
        Compression::Text,
    );
    let gz = gzip_compress(&entries(&[6, 7], 1_700_000_003));
    encode_packed_forward(
        &mut wire,
        "m.gzip",
        &gz,
        2,
        Some(&bin_chunk),
        Compression::Gzip,
    );
    s.write_all(&wire).unwrap();
    for want in [&str_chunk, &bin_chunk, &str_chunk, &bin_chunk] {
        let ack = next_frame(&mut s, &mut buf);
        assert_eq!(
            ack,
            ferry_proto::ack::encode_ack(want).to_vec(),
            "the ack echoes the chunk with its type"
        );
    }
    let got = parse(&ferry.stdout_lines(8, Duration::from_secs(10)));
    let tags: Vec<&str> = got.iter().map(|e| e["tag"].as_str().unwrap()).collect();
    assert_eq!(
        tags,
        [
            "m.message",
            "m.forward",
            "m.forward",
            "m.packed",
            "m.packed",
            "m.packed",
            "m.gzip",
            "m.gzip"
        ]
    );
    let ns: Vec<u64> = got.iter().map(|e| e["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, (0..8).collect::<Vec<_>>());
}

#[test]
fn tags_are_rewritten_and_source_keys_added() {
    let port = free_port();
    let extra = "  add_tag_prefix in\n  source_address_key src_ip\n  source_hostname_key src_host";
    let ferry = Ferry::start(&config(port, extra), port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut wire = BytesMut::new();
    // The second record already has src_ip: the peer's address replaces it.
    let mut forged = BytesMut::new();
    msgpack::write_map_len(&mut forged, 2);
    msgpack::write_str(&mut forged, b"src_ip");
    msgpack::write_str(&mut forged, b"6.6.6.6");
    msgpack::write_str(&mut forged, b"n");
    msgpack::write_uint(&mut forged, 2);
    let mut e = entries(&[1], 1_700_000_000);
    write_entry(&mut e, EventTime::new(1_700_000_000, 0), false, &forged);
    let chunk = ChunkId::str(&b"k"[..]);
    encode_packed_forward(&mut wire, "app", &e, 2, Some(&chunk), Compression::Text);
    s.write_all(&wire).unwrap();
    next_frame(&mut s, &mut BytesMut::new());
    let got = parse(&ferry.stdout_lines(2, Duration::from_secs(10)));
    for e in &got {
        assert_eq!(e["tag"], "in.app");
        assert_eq!(e["src_ip"], "127.0.0.1");
        assert!(e["src_host"].as_str().is_some_and(|h| !h.is_empty()), "{e}");
        assert_eq!(e.as_object().unwrap().len(), 5, "no duplicate keys: {e}");
    }

    let port = free_port();
    let ferry = Ferry::start(&config(port, "  tag fixed.tag"), port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut wire = BytesMut::new();
    encode_packed_forward(
        &mut wire,
        "whatever",
        &entries(&[1], 1_700_000_000),
        1,
        None,
        Compression::Text,
    );
    s.write_all(&wire).unwrap();
    let got = parse(&ferry.stdout_lines(1, Duration::from_secs(10)));
    assert_eq!(got[0]["tag"], "fixed.tag");
}

#[test]
fn time_zero_becomes_now_and_invalid_events_are_skipped_but_acked() {
    let port = free_port();
    let ferry = Ferry::start(&config(port, ""), port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut e = entries(&[1], 0);
    e.extend_from_slice(&[
        0x92, 0xcb, 0x41, 0xd9, 0, 0, 0, 0, 0, 0, 0x81, 0xa1, b'n', 0x02,
    ]); // float time
    e.extend_from_slice(&[0x92, 0xce, 0x65, 0x53, 0xf1, 0x00, 0xa3, b'b', b'a', b'd']); // record not a map
    e.extend_from_slice(&entries(&[4], 1_700_000_000));
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut wire = BytesMut::new();
    let chunk = ChunkId::str(&b"mixed"[..]);
    encode_packed_forward(&mut wire, "mixed", &e, 4, Some(&chunk), Compression::Text);
    s.write_all(&wire).unwrap();
    let ack = next_frame(&mut s, &mut BytesMut::new());
    assert_eq!(
        ack,
        ferry_proto::ack::encode_ack(&chunk).to_vec(),
        "acked although two events were invalid"
    );
    let got = parse(&ferry.stdout_lines(2, Duration::from_secs(10)));
    assert_eq!(got[0]["n"], 1);
    let t = got[0]["time"].as_f64().unwrap();
    assert!(
        t >= before - 1.0 && t < before + 60.0,
        "time 0 replaced with now: {t}"
    );
    assert_eq!(got[1]["n"], 4);
    assert_eq!(got[1]["time"].as_f64().unwrap(), 1_700_000_000.0);
    let mut seen = Vec::new();
    let line = ferry.wait_stderr("skip invalid event", Duration::from_secs(10), &mut seen);
    assert!(
        line.contains("count=2") && line.contains("127.0.0.1"),
        "{line}"
    );
}
