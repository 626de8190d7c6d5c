//! The entries the throughput benches send: `n` entries of about 200 bytes, each an EventTime and
//! a map of 8 string and integer fields like a web server's access log. Shared by ferry-proto's
//! `validate` bench and ferry's `forward_input` bench (through `#[path]`), so both measure the
//! same bytes.

use bytes::BytesMut;
use ferry_proto::EventTime;
use ferry_proto::encode::write_entry;
use ferry_proto::msgpack::{write_map_len, write_str, write_uint};

/// One record: 5 strings and 3 integers that vary with `i`.
pub fn record(i: u64) -> Vec<u8> {
    let mut r = BytesMut::new();
    write_map_len(&mut r, 8);
    for (k, v) in [
        ("host", "web-17.prod.example.net"),
        ("method", "GET"),
        ("path", "/api/v1/items/12345?expand=owner"),
        (
            "agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101",
        ),
        ("level", "info"),
    ] {
        write_str(&mut r, k.as_bytes());
        write_str(&mut r, v.as_bytes());
    }
    for (k, v) in [
        ("status", 200 + i % 5),
        ("bytes", 5120 + i),
        ("latency_us", 1234 * i),
    ] {
        write_str(&mut r, k.as_bytes());
        write_uint(&mut r, v);
    }
    r.to_vec()
}

/// `n` entries as a PackedForward stream, one second apart.
pub fn entries(n: u64) -> BytesMut {
    let mut s = BytesMut::new();
    for i in 0..n {
        write_entry(
            &mut s,
            EventTime::new(1_700_000_000 + i as u32, 123_456_789),
            false,
            &record(i),
        );
    }
    s
}
