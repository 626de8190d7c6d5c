//! The kafka2 output against a real Kafka-protocol broker (tansu) and a real ferry process:
//! events sent by real forward clients are consumed back from the broker and counted.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod kafka_support;

use common::{AckedSender, Ferry, free_port, python, run_python};
use ferry_proto::msgpack::Value;
use kafka_support::{Broker, Received, TopicReader, tansu};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn source(port: u16) -> String {
    format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n")
}

/// A kafka2 `<match>` with a short flush interval and quick retries.
fn kafka_match(pattern: &str, broker: &Broker, params: &str, format: &str) -> String {
    format!(
        "<match {pattern}>\n  @type kafka2\n  brokers {}\n  delivery_timeout 5s\n{params}{format}  <buffer tag>\n    flush_mode interval\n    flush_interval 200ms\n    chunk_limit_size 64k\n    retry_wait 500ms\n    retry_max_interval 2s\n  </buffer>\n</match>\n",
        broker.bootstrap()
    )
}

fn json_of(r: &Received) -> serde_json::Value {
    serde_json::from_slice(&r.payload).unwrap_or_else(|e| {
        panic!(
            "payload is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&r.payload)
        )
    })
}

/// librdkafka's consistent partitioner: CRC-32 of the key modulo the partition count.
fn crc_partition(key: &str, partitions: u32) -> i32 {
    (crc32fast::hash(key.as_bytes()) % partitions) as i32
}

#[test]
fn fluent_logger_events_reach_kafka_with_the_configured_keys_partitions_and_headers() {
    let (Some(bin), Some(py)) = (tansu(), python()) else {
        return;
    };
    let broker = Broker::start(&bin, free_port());
    broker.create_topic("events", 3);
    let port = free_port();
    let params = "  default_topic events\n  message_key_key user\n  partition_key_key tenant\n  \
                  headers {\"source\":\"ferry-test\"}\n  headers_from_record {\"x-host\":\"$.meta.host\"}\n";
    let ferry = Ferry::start(
        &format!(
            "{}{}",
            source(port),
            kafka_match("app.**", &broker, params, "")
        ),
        port,
    );
    // Three kinds of record: keyed by user (the default partitioner chooses), carrying a
    // tenant (hashed to a partition, no key), carrying an explicit partition.
    let script = r#"
import sys
from fluent import sender
s = sender.FluentSender('app', host='127.0.0.1', port=int(sys.argv[1]))
for i in range(300):
    if i % 3 == 0:
        r = {'n': i, 'user': 'user-%d' % (i % 7), 'meta': {'host': 'h%d' % (i % 2)}}
    elif i % 3 == 1:
        r = {'n': i, 'tenant': 'tenant-%d' % (i % 5)}
    else:
        r = {'n': i, 'partition': (i // 3) % 3}
    assert s.emit_with_time('web', 1700000000 + i, r), s.last_error
s.close()
"#;
    run_python(&py, script, &[&port.to_string()]);

    let mut reader = TopicReader::new(&broker.bootstrap(), "events");
    let got = reader.read_until(300, Duration::from_secs(60)).to_vec();
    let by_n: BTreeMap<u64, &Received> = got
        .iter()
        .map(|r| (json_of(r)["n"].as_u64().unwrap(), r))
        .collect();
    assert_eq!(
        got.len(),
        300,
        "every event once; ferry stderr: {:?}",
        ferry.stderr_so_far()
    );
    assert_eq!(by_n.len(), 300, "no event twice");
    for (n, r) in &by_n {
        let record = json_of(r);
        assert_eq!(r.timestamp_ms, Some((1_700_000_000 + n) as i64 * 1000));
        assert!(
            r.headers
                .contains(&("source".to_string(), b"ferry-test".to_vec())),
            "{:?}",
            r.headers
        );
        match n % 3 {
            0 => {
                let user = format!("user-{}", n % 7);
                assert_eq!(r.key.as_deref(), Some(user.as_bytes()));
                assert_eq!(r.partition, crc_partition(&user, 3), "event {n}");
                let host = format!("h{}", n % 2);
                assert!(
                    r.headers
                        .contains(&("x-host".to_string(), host.into_bytes()))
                );
                assert_eq!(record["user"], user, "the key field stays in the record");
            }
            1 => {
                let tenant = format!("tenant-{}", n % 5);
                assert_eq!(r.key, None);
                assert_eq!(r.partition, crc_partition(&tenant, 3), "event {n}");
            }
            _ => {
                assert_eq!(r.key, None);
                assert_eq!(r.partition, ((n / 3) % 3) as i32, "event {n}");
            }
        }
    }
}

/// Reads an event's `seq` back from a message payload.
type Decode = fn(&[u8]) -> u64;

#[test]
fn every_format_is_decodable_by_a_consumer() {
    let Some(bin) = tansu() else { return };
    let broker = Broker::start(&bin, free_port());
    for topic in ["f-json", "f-msgpack", "f-ltsv", "f-single"] {
        broker.create_topic(topic, 2);
    }
    let port = free_port();
    // A producer queue of 16 messages: most produce calls meet QueueFull and wait for
    // deliveries, which must not lose or duplicate anything.
    let config = [
        source(port),
        kafka_match(
            "fmt.json",
            &broker,
            "  topic f-json\n  rdkafka_options {\"queue.buffering.max.messages\":\"16\"}\n",
            "",
        ),
        kafka_match(
            "fmt.msgpack",
            &broker,
            "  topic f-msgpack\n  compression_codec zstd\n",
            "  <format>\n    @type msgpack\n  </format>\n",
        ),
        kafka_match(
            "fmt.ltsv",
            &broker,
            "  topic f-ltsv\n  compression_codec gzip\n",
            "  <format>\n    @type ltsv\n  </format>\n  <inject>\n    tag_key tag\n  </inject>\n",
        ),
        kafka_match(
            "fmt.single",
            &broker,
            "  topic f-single\n  compression_codec snappy\n",
            "  <format>\n    @type single_value\n    message_key seq\n  </format>\n",
        ),
    ]
    .concat();
    let ferry = Ferry::start(&config, port);
    let mut sender = AckedSender::connect(port).unwrap();
    for tag in ["fmt.json", "fmt.msgpack", "fmt.ltsv", "fmt.single"] {
        for first in (0..1000).step_by(100) {
            sender.send(tag, first..first + 100, 20).unwrap();
        }
    }
    let expected: BTreeSet<u64> = (0..1000).collect();
    let decoders: [(&str, Decode); 4] = [
        ("f-json", |p| {
            let v: serde_json::Value = serde_json::from_slice(p).unwrap();
            assert_eq!(v["pad"], "x".repeat(20));
            v["seq"].as_u64().unwrap()
        }),
        ("f-msgpack", |p| {
            let (v, used) = Value::decode(p).unwrap();
            assert_eq!(used, p.len(), "one msgpack map per message");
            match v.get("seq") {
                Some(Value::UInt(n)) => *n,
                other => panic!("seq is {other:?}"),
            }
        }),
        ("f-ltsv", |p| {
            let text = std::str::from_utf8(p).unwrap();
            let fields: BTreeMap<&str, &str> = text
                .split('\t')
                .map(|f| f.split_once(':').unwrap())
                .collect();
            assert_eq!(fields["tag"], "fmt.ltsv");
            fields["seq"].parse().unwrap()
        }),
        ("f-single", |p| {
            let text = std::str::from_utf8(p).unwrap();
            text.strip_suffix('\n').unwrap().parse().unwrap()
        }),
    ];
    for (topic, decode) in decoders {
        let mut reader = TopicReader::new(&broker.bootstrap(), topic);
        let got = reader.read_until(1000, Duration::from_secs(60)).to_vec();
        let seqs: Vec<u64> = got.iter().map(|r| decode(&r.payload)).collect();
        let unique: BTreeSet<u64> = seqs.iter().copied().collect();
        assert_eq!(
            unique,
            expected,
            "{topic}: every event; ferry stderr: {:?}",
            ferry.stderr_so_far()
        );
        assert_eq!(seqs.len(), 1000, "{topic}: no event twice");
    }
}

/// Streams acked batches of 50 events until `stop`; records every acked sequence number.
fn stream(port: u16, acked: Arc<Mutex<Vec<u64>>>, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut sender = AckedSender::connect(port).unwrap();
        let mut seq = 0;
        while !stop.load(Ordering::Relaxed) {
            sender.send("durable.test", seq..seq + 50, 100).unwrap();
            acked.lock().unwrap().extend(seq..seq + 50);
            seq += 50;
            thread::sleep(Duration::from_millis(5));
        }
    })
}

/// The `N` of ferry's `chunk ... delivered: n messages (N since start)` debug lines.
fn delivered_since_start(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once(" messages (")?;
    rest.split_once(" since start)")?.0.parse().ok()
}

#[test]
fn events_not_yet_delivered_when_the_broker_is_killed_arrive_after_it_returns() {
    let Some(bin) = tansu() else { return };
    let kafka_port = free_port();
    let mut broker = Broker::start(&bin, kafka_port);
    broker.create_topic("durable", 3);
    let port = free_port();
    let config = format!(
        "<system>\n  log_level debug\n</system>\n{}{}",
        source(port),
        kafka_match("durable.**", &broker, "  default_topic durable\n", "")
    );
    let ferry = Ferry::start(&config, port);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = stream(port, Arc::clone(&acked), Arc::clone(&stop));

    thread::sleep(Duration::from_secs(2));
    broker.kill();
    let acked_at_kill = acked.lock().unwrap().len();
    // The broker stays down until a chunk has failed and gone back to the buffer for a retry
    // (after delivery_timeout, 5 s): the buffer's retry path runs, not only librdkafka's
    // reconnects.
    let mut log: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log
        .iter()
        .any(|l| l.contains("temporarily failed to flush the buffer"))
    {
        assert!(
            Instant::now() < deadline,
            "no chunk failed while the broker was down: {log:#?}"
        );
        thread::sleep(Duration::from_millis(100));
        log.extend(ferry.stderr_so_far());
    }
    // Counting. One sender on one connection and one tag: the buffer holds the events in the
    // order they were acked, and the single flusher delivers chunk after chunk. So the events
    // ferry was told were delivered by the old broker are a prefix of the stream: the first
    // `confirmed` sequence numbers, `confirmed` being the last count ferry logged before the
    // new broker exists (only the old broker could have confirmed anything until then). Those
    // died with the old broker: the broker's loss. Every other acked event (the rest of the
    // chunks in flight at the kill, and all acked after it) must reach the new broker.
    log.extend(ferry.stderr_so_far());
    let confirmed = log
        .iter()
        .filter_map(|l| delivered_since_start(l))
        .max()
        .unwrap_or(0);

    broker = Broker::start(&bin, kafka_port);
    broker.create_topic("durable", 3);
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();

    let acked: Vec<u64> = acked.lock().unwrap().clone();
    let acked_after_kill = acked.len() - acked_at_kill;
    let required: BTreeSet<u64> = acked.iter().copied().filter(|s| *s >= confirmed).collect();
    assert!(confirmed > 0, "events were delivered before the kill");
    assert!(
        acked_after_kill > 0,
        "ferry kept acking while the broker was down"
    );

    let mut reader = TopicReader::new(&broker.bootstrap(), "durable");
    let deadline = Instant::now() + Duration::from_secs(90);
    let missing = loop {
        reader.read_until(required.len(), Duration::from_secs(1));
        let have: BTreeSet<u64> = reader
            .received
            .iter()
            .map(|r| json_of(r)["seq"].as_u64().unwrap())
            .collect();
        let missing: Vec<u64> = required.difference(&have).copied().collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
    };
    assert!(
        missing.is_empty(),
        "{} of {} events never reached the new broker (first {:?}); ferry stderr tail: {:?}",
        missing.len(),
        required.len(),
        &missing[..missing.len().min(10)],
        ferry
            .stderr_so_far()
            .iter()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
    );
    eprintln!(
        "acked {} events ({acked_after_kill} while the broker was down); {confirmed} confirmed by \
         the killed broker; all {} others delivered to the new one ({} messages there)",
        acked.len(),
        required.len(),
        reader.received.len()
    );
}

fn dry_run(config: &str) -> (bool, String) {
    let (ok, _, stderr) = common::dry_run(config);
    (ok, stderr)
}

#[test]
fn dry_run_reports_kafka_settings_librdkafka_or_the_guarantee_would_refuse() {
    let (ok, stderr) = dry_run(
        "<match **>\n  @type kafka2\n  brokers 127.0.0.1:9\n  rdkafka_options {\"no.such.property\":\"1\"}\n</match>\n\
         <match never>\n  @type kafka2\n  required_acks 1\n  compression_codec brotli\n</match>\n",
    );
    assert!(!ok);
    assert!(
        stderr.contains("ferry.conf:4:") && stderr.contains("no.such.property"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ferry.conf:8:") && stderr.contains("idempotent"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ferry.conf:9:") && stderr.contains("brotli"),
        "{stderr}"
    );
}
