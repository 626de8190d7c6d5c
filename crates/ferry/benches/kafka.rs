//! forward → ferry → Kafka (tansu, in memory) with lz4, next to what the same broker takes from
//! a plain rdkafka producer in the same run (the broker's own limit on this machine).
//!
//! `cargo bench -p ferry --bench kafka`; `FERRY_BENCH_EVENTS` sets the event count (default
//! 1000000). A first plain run of 100000 messages warms the broker up and is not reported.
//! Needs the tansu broker from `scripts/test-deps.sh` (`FERRY_TEST_TANSU`).
//!
//! "Delivered" is the moment the broker acknowledged the last message: `flush` returning for
//! the plain producer, ferry's delivered-chunk count reaching the event count for ferry.

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/kafka_support/mod.rs"]
mod kafka_support;

use common::{AckedSender, Ferry, free_port};
use kafka_support::Broker;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::thread;
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 3;
/// `pad` length of each event: a JSON message of about 150 bytes.
const PAD: usize = 120;
/// Events per forward request.
const BATCH: u64 = 1000;
/// Concurrent forward connections.
const CONNECTIONS: u64 = 2;

fn payload(seq: u64) -> String {
    format!("{{\"seq\":{seq},\"pad\":\"{}\"}}", "x".repeat(PAD))
}

/// Waits until ferry logged that `n` messages were delivered (acknowledged by the broker): the
/// same point as a plain producer's `flush` returning. (tansu's high watermarks lag behind what
/// it acknowledged, so they cannot be the measure.)
fn wait_delivered(ferry: &Ferry, n: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut delivered = 0;
    while delivered < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = ferry.stderr.recv_timeout(left) else {
            panic!("ferry delivered {delivered} of {n} messages within {timeout:?}");
        };
        if let Some(total) = line
            .split_once(" messages (")
            .and_then(|(_, rest)| rest.split_once(" since start)"))
            .and_then(|(total, _)| total.parse().ok())
        {
            delivered = total;
        }
    }
}

fn report(what: &str, events: u64, bytes: u64, took: Duration) {
    let secs = took.as_secs_f64();
    println!(
        "{what:<44} {events} events in {secs:>6.2} s: {:>9.0} events/s, {:>6.1} MB/s",
        events as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

/// A plain producer with the settings ferry uses (acks all, idempotent, lz4); the time until
/// the broker acknowledged every message.
fn plain_producer(broker: &Broker, topic: &str, n: u64) -> Duration {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.codec", "lz4")
        .set("queue.buffering.max.kbytes", "65536")
        .create()
        .unwrap();
    let started = Instant::now();
    for seq in 0..n {
        let body = payload(seq);
        let mut record: BaseRecord<'_, (), String> = BaseRecord::to(topic).payload(&body);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        if seq % 1000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    started.elapsed()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(bin) = kafka_support::tansu() else {
        return;
    };
    let n: u64 = std::env::var("FERRY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let n = n.div_ceil(BATCH * CONNECTIONS) * BATCH * CONNECTIONS;
    let bytes = (0..n).map(|s| payload(s).len() as u64).sum::<u64>();
    let broker = Broker::start(&bin, free_port());
    broker.create_topic("bench-warm-up", PARTITIONS);
    broker.create_topic("bench-plain", PARTITIONS);
    broker.create_topic("bench-ferry", PARTITIONS);
    plain_producer(&broker, "bench-warm-up", 100_000);
    let took = plain_producer(&broker, "bench-plain", n);
    report("plain rdkafka producer → tansu (lz4)", n, bytes, took);

    let port = free_port();
    let config = format!(
        "<system>\n  log_level debug\n</system>\n<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match bench.**>\n  @type kafka2\n  brokers {}\n  topic bench-ferry\n  compression_codec lz4\n\
         <buffer tag>\n    flush_mode interval\n    flush_interval 100ms\n    chunk_limit_size 4m\n    flush_thread_count 2\n  </buffer>\n</match>\n",
        broker.bootstrap()
    );
    let ferry = Ferry::start(&config, port);
    let started = Instant::now();
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            thread::spawn(move || {
                let mut sender = AckedSender::connect(port).unwrap();
                let per = n / CONNECTIONS;
                let mut seq = c * per;
                while seq < (c + 1) * per {
                    sender.send("bench.kafka", seq..seq + BATCH, PAD).unwrap();
                    seq += BATCH;
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let acked = started.elapsed();
    wait_delivered(&ferry, n, Duration::from_secs(300));
    let delivered = started.elapsed();
    report("forward → ferry: acked by the input", n, bytes, acked);
    report(
        "forward → ferry → tansu (lz4): delivered",
        n,
        bytes,
        delivered,
    );
    drop(ferry);
}
