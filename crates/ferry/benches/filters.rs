//! Filter throughput: `ferry::filter::chain::run` over batches of realistic records (about 270
//! bytes: a time string, level, host, a JSON text `msg`, a sequence number and a nested map), in
//! this process, for grep keeping every event, grep dropping half, record_transformer adding a
//! field and the parser filter on the JSON field. In the same run, the references: decoding
//! every record into a `Value` and encoding it again (what a changed event cost before filters
//! read records raw), grep the old way (decode the record, match the field's text, copy the
//! entry), and walking the entries only (`entries::iter`, the floor every chain pays).
//!
//! Prints MB/s of entry bytes and CPU seconds per GB (this thread's CPU time, from
//! `/proc/thread-self/schedstat`), each the median of the runs (a run passes over the data for
//! half a second at least: the kernel may count CPU time in 4 ms ticks), and the speed relative
//! to the decode-everything reference. `FERRY_BENCH_FILTERS_MB` sets the data (default 64),
//! `FERRY_BENCH_FILTERS_RUNS` the runs (default 7), `FERRY_BENCH_FILTERS_ONLY` a word the rows
//! to run must contain (for profiling one row; ratios are then to the first row run). Run with
//! `cargo bench -p ferry --bench filters`.

#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly

use bytes::BytesMut;
use ferry::event::Batch;
use ferry::filter::{Filter, chain};
use ferry_bench::report::median;
use ferry_proto::entries;
use ferry_proto::msgpack::{self, Value};
use ferry_proto::time::EventTime;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const EVENTS_PER_BATCH: u64 = 1000;

fn record(seq: u64, out: &mut BytesMut) {
    let str = |out: &mut BytesMut, s: &str| msgpack::write_str(out, s.as_bytes());
    msgpack::write_map_len(out, 6);
    str(out, "time");
    let (s, us) = (seq % 60, seq % 1_000_000);
    str(out, &format!("2026-03-01T12:34:{s:02}.{us:06}Z"));
    str(out, "level");
    str(out, if seq % 2 == 0 { "info" } else { "debug" });
    str(out, "host");
    str(out, &format!("web-{:02}.prod.example.net", seq % 16));
    str(out, "msg");
    str(
        out,
        &format!(
            r#"{{"user":"u{}","method":"GET","path":"/api/v1/items/{seq}","status":200,"bytes":{},"took_ms":{}.5}}"#,
            seq % 9973,
            seq % 65536,
            seq % 300
        ),
    );
    str(out, "seq");
    msgpack::write_uint(out, seq);
    str(out, "kubernetes");
    msgpack::write_map_len(out, 3);
    str(out, "namespace");
    str(out, "shop");
    str(out, "pod");
    str(out, &format!("web-7f9c{:04x}-x2k4p", seq % 4096));
    str(out, "container");
    str(out, "app");
}

fn batches(total_bytes: u64) -> (Vec<Batch>, u64, u64) {
    let mut out = Vec::new();
    let (mut bytes, mut events, mut seq) = (0u64, 0u64, 0u64);
    let mut rec = BytesMut::new();
    while bytes < total_bytes {
        let mut entries = BytesMut::new();
        for _ in 0..EVENTS_PER_BATCH {
            rec.clear();
            record(seq, &mut rec);
            let time = EventTime::new(1_772_368_496 + (seq / 1000) as u32, 0);
            ferry_proto::encode::write_entry(&mut entries, time, false, &rec);
            seq += 1;
        }
        bytes += entries.len() as u64;
        events += EVENTS_PER_BATCH;
        out.push(Batch::new("app.web", entries.freeze(), EVENTS_PER_BATCH));
    }
    (out, bytes, events)
}

fn filter(conf: &str) -> Arc<Filter> {
    let root = ferry_config::parse_str(conf, "bench.conf").unwrap();
    let errors = ferry_config::Errors::new();
    let section = ferry_config::Section::new(&root.children[0], &errors);
    let f = Filter::from_section(&section);
    section.finish();
    Arc::new(errors.into_result(f).unwrap().unwrap())
}

/// This thread's CPU time in seconds. (`/proc/thread-self/schedstat` may count in scheduler
/// ticks, 4 ms on some kernels: [`measure`] makes each run last long enough for that not to
/// matter.)
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let ns: u64 = stat.split(' ').next().unwrap().parse().unwrap();
    ns as f64 / 1e9
}

struct Figures {
    mb_per_s: f64,
    cpu_s_per_gb: f64,
}

/// Each run passes over the data as many times as last [`RUN_SECS`] at least.
const RUN_SECS: f64 = 0.5;

fn measure(runs: usize, bytes: u64, mut once: impl FnMut() -> u64) -> Figures {
    // Warm up (caches, buffers, the regex pools) and time one pass.
    let t0 = Instant::now();
    black_box(once());
    let passes = (RUN_SECS / t0.elapsed().as_secs_f64()).ceil().max(1.0) as u64;
    let bytes = passes * bytes;
    let (mut rates, mut cpus) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (cpu0, t0) = (thread_cpu(), Instant::now());
        for _ in 0..passes {
            black_box(once());
        }
        let (secs, cpu) = (t0.elapsed().as_secs_f64(), thread_cpu() - cpu0);
        rates.push(bytes as f64 / 1e6 / secs);
        cpus.push(cpu / (bytes as f64 / 1e9));
    }
    Figures {
        mb_per_s: median(rates),
        cpu_s_per_gb: median(cpus),
    }
}

/// The old way, per entry: decode the record into a `Value`, encode it again.
fn decode_everything(batches: &[Batch]) -> u64 {
    let mut out = BytesMut::new();
    let mut n = 0;
    for b in batches {
        out.clear();
        for e in entries::iter(&b.entries) {
            let e = e.unwrap();
            let (Value::Map(pairs), _) = Value::decode(e.record).unwrap() else {
                panic!("records are maps")
            };
            out.extend_from_slice(&[0x92]);
            e.time.encode(&mut out);
            msgpack::write_map_len(&mut out, pairs.len());
            for (k, v) in &pairs {
                k.encode(&mut out);
                v.encode(&mut out);
            }
        }
        n += out.len() as u64;
    }
    n
}

/// grep keeping the events whose `level` matches, the way the filter did before: decode each
/// record, render the field as text, match, copy the kept entry.
fn old_grep(batches: &[Batch], pattern: &regex::Regex) -> u64 {
    let mut out = BytesMut::new();
    let mut n = 0;
    for b in batches {
        out.clear();
        for e in entries::iter(&b.entries) {
            let e = e.unwrap();
            let (Value::Map(pairs), _) = Value::decode(e.record).unwrap() else {
                panic!("records are maps")
            };
            let text = ferry::record::get(&pairs, "level").map(ferry::record::text);
            if pattern.is_match(text.as_deref().unwrap_or("")) {
                out.extend_from_slice(e.raw);
            }
        }
        n += out.len() as u64;
    }
    n
}

fn walk_only(batches: &[Batch]) -> u64 {
    let mut n = 0;
    for b in batches {
        for e in entries::iter(&b.entries) {
            n += e.unwrap().record.len() as u64;
        }
    }
    n
}

fn chain_run(batches: &[Batch], filters: &[Arc<Filter>]) -> u64 {
    let host: Arc<str> = Arc::from("bench-host");
    let mut n = 0;
    for b in batches {
        let out = chain::run(filters, b, &host);
        n += out.kept.map_or(0, |k| k.records) + out.dropped;
    }
    n
}

fn main() {
    // `cargo bench` passes `--bench`; other arguments (filters) are ignored.
    let env = |k: &str, default: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mb = env("FERRY_BENCH_FILTERS_MB", 64);
    let runs = env("FERRY_BENCH_FILTERS_RUNS", 7).max(1) as usize;
    let (batches, bytes, events) = batches(mb * 1_000_000);
    println!(
        "{events} events in {} batches, {:.1} MB, {:.0} bytes per entry; median of {runs} runs",
        batches.len(),
        bytes as f64 / 1e6,
        bytes as f64 / events as f64
    );

    let grep_all = filter(
        "<filter>\n@type grep\n<regexp>\nkey level\npattern /^(info|debug)$/\n</regexp>\n</filter>",
    );
    let grep_half =
        filter("<filter>\n@type grep\n<exclude>\nkey level\npattern debug\n</exclude>\n</filter>");
    let add = filter(
        "<filter>\n@type record_transformer\n<record>\nhostname ${hostname}\n</record>\n</filter>",
    );
    let parse = filter(
        "<filter>\n@type parser\nkey_name msg\nreserve_data true\n<parse>\n@type json\n</parse>\n</filter>",
    );

    // What each chain does, checked once on the first batch.
    let host: Arc<str> = Arc::from("bench-host");
    let first = &batches[0];
    let out = chain::run(&[Arc::clone(&grep_all)], first, &host);
    assert_eq!(out.kept.unwrap().entries.as_ptr(), first.entries.as_ptr());
    let out = chain::run(&[Arc::clone(&grep_half)], first, &host);
    assert_eq!(out.dropped, EVENTS_PER_BATCH / 2);
    for f in [&add, &parse] {
        let out = chain::run(&[Arc::clone(f)], first, &host);
        assert!(out.errors.is_none() && out.dropped == 0);
        assert!(out.kept.unwrap().entries.len() > first.entries.len());
    }

    let only = std::env::var("FERRY_BENCH_FILTERS_ONLY").unwrap_or_default();
    let level = regex::Regex::new("^(info|debug)$").unwrap();
    let batches = &batches;
    let chain_of = |f: &Arc<Filter>| {
        let filters = [Arc::clone(f)];
        move || chain_run(batches, &filters)
    };
    type Row<'b> = (&'static str, Box<dyn FnMut() -> u64 + 'b>);
    let rows: Vec<Row<'_>> = vec![
        (
            "decode everything (reference)",
            Box::new(|| decode_everything(batches)),
        ),
        (
            "grep the old way (decode, match)",
            Box::new(move || old_grep(batches, &level)),
        ),
        ("walk only (entries::iter)", Box::new(|| walk_only(batches))),
        ("grep, every event kept", Box::new(chain_of(&grep_all))),
        ("grep, half dropped", Box::new(chain_of(&grep_half))),
        ("record_transformer, +1 field", Box::new(chain_of(&add))),
        (
            "parser, json field, reserve_data",
            Box::new(chain_of(&parse)),
        ),
    ];
    let mut reference = None;
    for (what, mut once) in rows {
        if !what.contains(only.as_str()) {
            continue;
        }
        let f = measure(runs, bytes, &mut once);
        let base = *reference.get_or_insert(f.mb_per_s);
        println!(
            "{what:<34} {:>8.1} MB/s   {:>6.3} CPU s/GB   {:>5.2}x the reference's rate",
            f.mb_per_s,
            f.cpu_s_per_gb,
            f.mb_per_s / base
        );
    }
}
