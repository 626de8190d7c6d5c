//! forward → ferry → Kafka (tansu, in memory) with lz4, next to what the same broker takes from
//! a plain rdkafka producer in the same run (the broker's own limit on this machine).
//!
//! `cargo bench -p ferry --bench kafka`; `FERRY_BENCH_EVENTS` sets the event count (default
//! 200000). Needs the tansu broker from `scripts/test-deps.sh` (`FERRY_TEST_TANSU`).

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/kafka_support/mod.rs"]
mod kafka_support;

use common::{AckedSender, Ferry, free_port};
use kafka_support::Broker;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
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

/// Messages the broker holds in `topic` (sum of high watermarks).
fn held(watcher: &BaseConsumer, topic: &str) -> u64 {
    (0..PARTITIONS)
        .map(|p| {
            watcher
                .fetch_watermarks(topic, p as i32, Duration::from_secs(5))
                .map_or(0, |(_, high)| high.max(0) as u64)
        })
        .sum()
}

fn wait_for(watcher: &BaseConsumer, topic: &str, n: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let have = held(watcher, topic);
        if have >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {have} of {n} messages after {timeout:?}"
        );
        thread::sleep(Duration::from_millis(20));
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

/// A plain producer with the settings ferry uses (acks all, idempotent, lz4).
fn plain_producer(broker: &Broker, n: u64) -> Duration {
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
        let mut record: BaseRecord<'_, (), String> = BaseRecord::to("bench-plain").payload(&body);
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
        .unwrap_or(200_000);
    let n = n.div_ceil(BATCH * CONNECTIONS) * BATCH * CONNECTIONS;
    let bytes = (0..n).map(|s| payload(s).len() as u64).sum::<u64>();
    let broker = Broker::start(&bin, free_port());
    broker.create_topic("bench-plain", PARTITIONS);
    broker.create_topic("bench-ferry", PARTITIONS);
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "ferry-bench")
        .create()
        .unwrap();

    let took = plain_producer(&broker, n);
    wait_for(&watcher, "bench-plain", n, Duration::from_secs(60));
    report("plain rdkafka producer → tansu (lz4)", n, bytes, took);

    let port = free_port();
    let config = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
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
    wait_for(&watcher, "bench-ferry", n, Duration::from_secs(300));
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
