//! Throughput of the hot paths on a PackedForward stream of 1000 entries of about 200 bytes
//! (EventTime + a map of 8 string and integer fields): entry validation (bytes/s and entries/s)
//! and frame splitting of the same data sent as PackedForward and as Forward mode.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferry_proto::encode::{encode_forward, encode_packed_forward, write_entry};
use ferry_proto::msgpack::{write_map_len, write_str, write_uint};
use ferry_proto::{Compression, EventTime, FrameDecoder, entries};

const ENTRIES: u64 = 1000;

fn record(i: u64) -> Vec<u8> {
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

fn stream() -> BytesMut {
    let mut s = BytesMut::new();
    for i in 0..ENTRIES {
        write_entry(
            &mut s,
            EventTime::new(1_700_000_000 + i as u32, 123_456_789),
            false,
            &record(i),
        );
    }
    s
}

fn bench_validate(c: &mut Criterion) {
    let s = stream();
    let per_entry = s.len() as u64 / ENTRIES;
    assert!((180..=230).contains(&per_entry), "entry size {per_entry}");
    let mut g = c.benchmark_group("validate_bytes");
    g.throughput(Throughput::Bytes(s.len() as u64));
    g.bench_function("packed_1000x200B", |b| {
        b.iter(|| entries::validate(black_box(&s)).expect("valid"))
    });
    g.finish();
    let mut g = c.benchmark_group("validate_entries");
    g.throughput(Throughput::Elements(ENTRIES));
    g.bench_function("packed_1000x200B", |b| {
        b.iter(|| entries::validate(black_box(&s)).expect("valid"))
    });
    g.finish();
}

fn bench_frames(c: &mut Criterion) {
    let s = stream();
    let mut packed = BytesMut::new();
    encode_packed_forward(&mut packed, "app.web", &s, ENTRIES, None, Compression::Text);
    let mut forward = BytesMut::new();
    encode_forward(&mut forward, "app.web", &s, ENTRIES, None);
    let mut g = c.benchmark_group("frame_decoder_bytes");
    for (name, wire) in [("packed_forward", &packed), ("forward_mode", &forward)] {
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_function(name, |b| {
            let mut d = FrameDecoder::new(16 << 20);
            b.iter_batched(
                || BytesMut::from(&wire[..]),
                |mut buf| {
                    d.decode(black_box(&mut buf))
                        .expect("frame")
                        .expect("complete")
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_validate, bench_frames);
criterion_main!(benches);
