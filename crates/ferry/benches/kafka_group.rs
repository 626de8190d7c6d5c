//! Kafka (tansu, in memory) → ferry's kafka_group input with JSON parsing → a memory buffer →
//! `null`, next to a plain rdkafka consumer reading the same topic in the same run (a
//! `BaseConsumer` that only reads each message's payload: the broker's and librdkafka's limit).
//!
//! `cargo bench -p ferry --bench kafka_group`; `FERRY_BENCH_EVENTS` sets the record count
//! (default 1000000) and `FERRY_BENCH_RUNS` the runs (3). Needs the tansu broker from
//! `scripts/test-deps.sh` (`FERRY_TEST_TANSU`). Each run of each reader uses a new consumer
//! group, so each reads the whole topic from the beginning.
//!
//! Prints records/s, MB/s of payload and (for ferry) its CPU seconds per GB, and ferry's ratio to
//! the plain consumer (target at least 70 %).

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/kafka_support/mod.rs"]
mod kafka_support;

use common::{Ferry, free_port};
use kafka_support::Broker;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 4;

fn payload(seq: u64) -> String {
    format!(
        r#"{{"seq":{seq},"host":"web-{:02}.example.com","method":"GET","path":"/api/v1/items/{seq}","status":200,"bytes":{},"agent":"Mozilla/5.0 (X11; Linux x86_64)"}}"#,
        seq % 16,
        512 + seq % 4096
    )
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn produce(broker: &Broker, n: u64) -> u64 {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .unwrap();
    let mut bytes = 0;
    for i in 0..n {
        let body = payload(i);
        bytes += body.len() as u64;
        let key = i.to_string();
        while p
            .send(BaseRecord::to("bench").payload(&body).key(&key))
            .is_err()
        {
            p.poll(Duration::from_millis(10));
        }
    }
    p.flush(Duration::from_secs(120)).unwrap();
    bytes
}

/// A plain consumer in a new group reading `n` records: its wall time.
fn plain(broker: &Broker, n: u64, group: &str) -> Duration {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&["bench"]).unwrap();
    // The clock starts at the first message (after the group was joined), as for ferry.
    let mut got = 0u64;
    let mut start = None;
    let mut sum = 0usize;
    while got < n {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            start.get_or_insert_with(Instant::now);
            sum += m.payload().map_or(0, <[u8]>::len);
            got += 1;
        }
    }
    assert!(sum > 0);
    start.map_or(Duration::ZERO, |s| s.elapsed())
}

fn records(admin: u16) -> f64 {
    let (_, text) = ferry::http::client::get(&format!("127.0.0.1:{admin}"), "/metrics").unwrap();
    text.lines()
        .find(|l| l.starts_with("fluentd_input_status_num_records_total{"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// ferry in a new group reading `n` records: wall time from its first record, CPU seconds.
fn ferry_run(broker: &Broker, n: u64, group: &str) -> (Duration, f64) {
    let admin = free_port();
    let conf = format!(
        "<source>\n  @type kafka_group\n  brokers {}\n  consumer_group {group}\n  topics bench\n  format json\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type null\n  <buffer>\n    @type memory\n  </buffer>\n</match>\n",
        broker.bootstrap()
    );
    let ferry = Ferry::start(&conf, admin);
    let pid = ferry.child.id();
    let deadline = Instant::now() + Duration::from_secs(600);
    while records(admin) < 1.0 {
        assert!(Instant::now() < deadline, "ferry read nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let cpu0 = ferry_bench::procstat::cpu_seconds(pid).unwrap();
    while records(admin) < n as f64 {
        assert!(Instant::now() < deadline, "ferry did not read everything");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    let cpu = ferry_bench::procstat::cpu_seconds(pid).unwrap() - cpu0;
    (took, cpu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let Some(bin) = kafka_support::tansu() else {
        eprintln!("no tansu broker: run scripts/test-deps.sh");
        return;
    };
    let n = env_or("FERRY_BENCH_EVENTS", 1_000_000);
    let runs = env_or("FERRY_BENCH_RUNS", 3);
    let broker = Broker::start(&bin, free_port());
    broker.create_topic("bench", PARTITIONS);
    let bytes = produce(&broker, n);
    println!(
        "kafka_group: {n} JSON records of about {} B in {PARTITIONS} partitions, {runs} runs; load average {}",
        bytes / n,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let (mut plain_mb, mut ferry_mb, mut ferry_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let t = plain(&broker, n, &format!("plain-{run}"));
        let mb = bytes as f64 / 1e6 / t.as_secs_f64();
        println!(
            "  run {}  plain rdkafka consumer  {:>10.0} records/s {mb:>8.1} MB/s",
            run + 1,
            n as f64 / t.as_secs_f64()
        );
        plain_mb.push(mb);
        let (t, cpu) = ferry_run(&broker, n, &format!("ferry-{run}"));
        let mb = bytes as f64 / 1e6 / t.as_secs_f64();
        let cpu_gb = cpu / (bytes as f64 / 1e9);
        println!(
            "  run {}  ferry kafka_group json  {:>10.0} records/s {mb:>8.1} MB/s {cpu_gb:>7.2} CPU s/GB",
            run + 1,
            n as f64 / t.as_secs_f64()
        );
        ferry_mb.push(mb);
        ferry_cpu.push(cpu_gb);
    }
    let (p, f) = (median(plain_mb), median(ferry_mb));
    println!(
        "median: plain {p:.1} MB/s, ferry {f:.1} MB/s at {:.2} CPU s/GB: ferry is {:.0} % of the plain consumer (target at least 70 %)",
        median(ferry_cpu),
        100.0 * f / p
    );
}
