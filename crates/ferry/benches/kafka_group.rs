//! Kafka (tansu, in memory) → ferry's kafka_group input with JSON parsing → a memory buffer →
//! `null`, next to a plain rdkafka consumer reading the same topic in the same run (a
//! `BaseConsumer` that only reads each message's payload: the broker's and librdkafka's limit).
//!
//! `cargo bench -p ferry --bench kafka_group`; `FERRY_BENCH_EVENTS` sets the record count
//! (default 3000000: runs of a few seconds, so that the start of a reader weighs little) and `FERRY_BENCH_RUNS` the runs (3). Needs the tansu broker from
//! `scripts/test-deps.sh` (`FERRY_TEST_TANSU`). Each run of each reader uses a new consumer
//! group, so each reads the whole topic from the beginning.
//!
//! Prints records/s, MB/s of payload, the CPU seconds per GB of the reader and of the broker
//! (both share the machine's cores), and ferry's ratio to the plain consumer (target at least
//! 70 %).

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/kafka_support/mod.rs"]
mod kafka_support;

use common::{Ferry, free_port};
use ferry_bench::report::{env_or, median};
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

/// CPU seconds of a process so far.
fn cpu(pid: u32) -> f64 {
    ferry_bench::procstat::cpu_seconds(pid).unwrap()
}

/// One reader's measured run.
struct Run {
    took: Duration,
    /// CPU seconds of the reader, then of the broker.
    cpu: f64,
    broker_cpu: f64,
}

/// A plain consumer in a new group reading `n` records (in this process, whose other threads
/// are idle meanwhile).
fn plain(broker: &Broker, n: u64, group: &str) -> Run {
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
    let (me, tansu) = (std::process::id(), broker.pid().unwrap());
    while got < n {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            start.get_or_insert_with(|| (Instant::now(), cpu(me), cpu(tansu)));
            sum += m.payload().map_or(0, <[u8]>::len);
            got += 1;
        }
    }
    assert!(sum > 0);
    let (t0, me0, tansu0) = start.unwrap();
    Run {
        took: t0.elapsed(),
        cpu: cpu(me) - me0,
        broker_cpu: cpu(tansu) - tansu0,
    }
}

fn records(admin: u16) -> f64 {
    let (_, text) = ferry::http::client::get(&format!("127.0.0.1:{admin}"), "/metrics").unwrap();
    text.lines()
        .find(|l| l.starts_with("fluentd_input_status_num_records_total{"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// ferry in a new group reading `n` records, measured from its first record.
fn ferry_run(broker: &Broker, n: u64, group: &str) -> Run {
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
    let tansu = broker.pid().unwrap();
    let (start, cpu0, tansu0) = (Instant::now(), cpu(pid), cpu(tansu));
    while records(admin) < n as f64 {
        assert!(Instant::now() < deadline, "ferry did not read everything");
        std::thread::sleep(Duration::from_millis(5));
    }
    Run {
        took: start.elapsed(),
        cpu: cpu(pid) - cpu0,
        broker_cpu: cpu(tansu) - tansu0,
    }
}

fn main() {
    let Some(bin) = kafka_support::tansu() else {
        eprintln!("no tansu broker: run scripts/test-deps.sh");
        return;
    };
    let n = env_or("FERRY_BENCH_EVENTS", 3_000_000);
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
    let gb = bytes as f64 / 1e9;
    // MB/s, reader CPU s/GB, broker CPU s/GB: plain, then ferry.
    let mut figures: [[Vec<f64>; 3]; 2] = Default::default();
    for run in 0..runs {
        for (i, who) in ["plain rdkafka consumer", "ferry kafka_group json"]
            .iter()
            .enumerate()
        {
            let r = if i == 0 {
                plain(&broker, n, &format!("plain-{run}"))
            } else {
                ferry_run(&broker, n, &format!("ferry-{run}"))
            };
            let secs = r.took.as_secs_f64();
            let (mb, cpu_gb, broker_gb) = (gb * 1e3 / secs, r.cpu / gb, r.broker_cpu / gb);
            println!(
                "  run {}  {who}  {:>10.0} records/s {mb:>8.1} MB/s {cpu_gb:>7.2} CPU s/GB (broker {broker_gb:.2})",
                run + 1,
                n as f64 / secs,
            );
            for (k, v) in [mb, cpu_gb, broker_gb].into_iter().enumerate() {
                figures[i][k].push(v);
            }
        }
    }
    let [plain_f, ferry_f] = figures.map(|f| f.map(median));
    let (p, f) = (plain_f[0], ferry_f[0]);
    println!(
        "median: plain {p:.1} MB/s at {:.2} CPU s/GB (broker {:.2}), ferry {f:.1} MB/s at {:.2} CPU s/GB (broker {:.2}): ferry is {:.0} % of the plain consumer (target at least 70 %)",
        plain_f[1],
        plain_f[2],
        ferry_f[1],
        ferry_f[2],
        100.0 * f / p
    );
}
