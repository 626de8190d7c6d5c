//! Throughput of the hot paths on a PackedForward stream of 1000 entries of about 200 bytes
//! (EventTime + a map of 8 string and integer fields): entry validation (bytes/s and entries/s)
//! and frame splitting of the same data sent as PackedForward and as Forward mode.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferry_proto::encode::{encode_forward, encode_packed_forward};
use ferry_proto::{Compression, FrameDecoder, entries};

#[path = "support/access_log.rs"]
mod access_log;

const ENTRIES: u64 = 1000;

fn stream() -> BytesMut {
    access_log::entries(ENTRIES)
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
