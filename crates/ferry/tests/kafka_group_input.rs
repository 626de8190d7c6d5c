//! The kafka_group input against tansu, a real Kafka-protocol broker, with records produced by a
//! plain rdkafka producer: every record arrives; offsets are committed only after the buffer
//! commit, so a SIGKILLed consumer re-reads only what was not committed; a full buffer pauses
//! the partitions without loss and without spinning.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod kafka_support;

use common::{Ferry, free_port, metric, metrics};
use kafka_support::{Broker, tansu};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Produces records `{"seq": i, ...}` for `range` to `topic`, keyed by `i`.
fn produce(broker: &Broker, topic: &str, range: std::ops::Range<u64>) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in range {
        let payload = format!(r#"{{"seq":{i},"msg":"record {i}"}}"#);
        let key = i.to_string();
        loop {
            match p.send(BaseRecord::to(topic).payload(&payload).key(&key)) {
                Ok(()) => break,
                Err(_) => {
                    p.poll(Duration::from_millis(50));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// The offsets `group` committed for `topic`'s `partitions`, summed.
fn committed(broker: &Broker, group: &str, topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let got = c.committed_offsets(list, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(n) => n,
            _ => 0,
        })
        .sum()
}

fn config(broker: &Broker, admin: u16, extra: &str, output: &str) -> String {
    format!(
        "<source>\n  @type kafka_group\n  brokers {}\n  consumer_group ferry-agg\n  topics logs\n  offset_commit_interval 1s\n  session_timeout 6s\n{extra}</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n{output}",
        broker.bootstrap()
    )
}

const STDOUT: &str = "<match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n  </inject>\n</match>\n";

fn seq(line: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    v["seq"].as_u64().unwrap_or_else(|| panic!("{line}"))
}

/// Reads `ferry`'s stdout until every seq in `0..n` was seen (or `timeout`); returns the counts.
fn until_all(ferry: &Ferry, n: u64, timeout: Duration, seen: &mut BTreeMap<u64, u32>) {
    let deadline = Instant::now() + timeout;
    while (0..n).any(|s| !seen.contains_key(&s)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match ferry.stdout.recv_timeout(left) {
            Ok(line) => *seen.entry(seq(&line)).or_insert(0) += 1,
            Err(_) => {
                let missing = (0..n).filter(|s| !seen.contains_key(s)).count();
                panic!("{missing} of {n} records did not arrive");
            }
        }
    }
}

#[test]
fn every_record_arrives_tagged_by_topic_and_offsets_are_committed_after_the_buffer() {
    let Some(bin) = tansu() else { return };
    let broker = Broker::start(&bin, free_port());
    broker.create_topic("logs", 4);
    produce(&broker, "logs", 0..2000);
    let admin = free_port();
    let ferry = Ferry::start(
        &config(
            &broker,
            admin,
            "  add_prefix kafka\n  kafka_message_key key\n",
            STDOUT,
        ),
        admin,
    );
    let mut seen = BTreeMap::new();
    until_all(&ferry, 2000, Duration::from_secs(60), &mut seen);
    assert!(seen.values().all(|n| *n == 1), "each once");
    // The tag is the topic with add_prefix; the Kafka key is in the record.
    produce(&broker, "logs", 2000..2001);
    let line = ferry.stdout_lines(1, Duration::from_secs(30)).remove(0);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["tag"].as_str(), v["key"].as_str()),
        (Some("kafka.logs"), Some("2000")),
        "{v}"
    );
    // Offsets reach 2001 once committed (every second).
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed(&broker, "ferry-agg", "logs", 4) < 2001 {
        assert!(Instant::now() < deadline, "offsets were not committed");
        std::thread::sleep(Duration::from_millis(500));
    }
    // `ferry status` shows the partitions it holds and their lag; the dump has them too.
    let text = common::ferry_status(admin, "0.2");
    assert!(
        text.contains("kafka_group") && text.contains("holds logs[0,1,2,3]"),
        "{text}"
    );
    let (_, dump) = ferry::http::client::get(&format!("127.0.0.1:{admin}"), "/api/dump").unwrap();
    assert!(dump.contains("logs[0,1,2,3]"), "{dump:.3000}");
    let m = metrics(admin);
    assert_eq!(
        metric(
            &m,
            "fluentd_input_status_num_records_total{plugin_id=\"kafka_group_0\",type=\"kafka_group\"}"
        ),
        2001.0
    );
    assert!(
        metric(
            &m,
            "ferry_kafka_consumer_commits_total{plugin_id=\"kafka_group_0\",type=\"kafka_group\"}"
        ) >= 1.0
    );
}

#[test]
fn a_sigkilled_consumer_rereads_only_what_was_not_committed() {
    let Some(bin) = tansu() else { return };
    let broker = Broker::start(&bin, free_port());
    broker.create_topic("logs", 4);
    // Produced while ferry consumes: 20,000 records over about 4 s.
    let bootstrap = broker.bootstrap();
    let producer = std::thread::spawn(move || {
        let b = Broker::external(&bootstrap);
        for k in 0..20u64 {
            produce(&b, "logs", k * 1000..(k + 1) * 1000);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    // Events land in a file buffer and a file, so that what was committed before the kill is
    // kept; the archive is counted at the end.
    let output = format!(
        "<match **>\n  @type file\n  path {d}/archive/logs\n  <format>\n    @type json\n  </format>\n  <buffer>\n    @type file\n    path {d}/buffer\n    flush_mode interval\n    flush_interval 1s\n  </buffer>\n</match>\n",
        d = dir.path().display()
    );
    let mut first = Ferry::start(&config(&broker, admin, "", &output), admin);
    // Kill it once it has committed some offsets, while records keep coming.
    let deadline = Instant::now() + Duration::from_secs(60);
    let committed_at_kill = loop {
        let c = committed(&broker, "ferry-agg", "logs", 4);
        if c >= 3000 {
            break c;
        }
        assert!(Instant::now() < deadline, "nothing committed");
        std::thread::sleep(Duration::from_millis(100));
    };
    first.child.kill().unwrap();
    let _ = first.child.wait();
    producer.join().unwrap();
    let _second = Ferry::start(&config(&broker, admin, "", &output), admin);
    let deadline = Instant::now() + Duration::from_secs(90);
    let (seen, total) = loop {
        let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
        let mut total = 0u64;
        for e in std::fs::read_dir(dir.path().join("archive"))
            .into_iter()
            .flatten()
        {
            let path = e.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            for l in std::fs::read_to_string(&path).unwrap_or_default().lines() {
                *seen.entry(seq(l)).or_insert(0) += 1;
                total += 1;
            }
        }
        if seen.len() >= 20_000 || Instant::now() > deadline {
            break (seen, total);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let lost = (0..20_000u64).filter(|s| !seen.contains_key(s)).count();
    let duplicated = total - seen.len() as u64;
    eprintln!(
        "kafka_group kill: committed {committed_at_kill} at the kill, {lost} lost, {duplicated} duplicated"
    );
    assert_eq!(lost, 0);
    // What is read again is at most what was not committed when it was killed.
    assert!(
        duplicated <= 20_000 - committed_at_kill as u64,
        "{duplicated} duplicates, {committed_at_kill} committed"
    );
}

#[test]
fn a_full_buffer_pauses_the_partitions_without_loss_or_spinning() {
    let Some(bin) = tansu() else { return };
    let broker = Broker::start(&bin, free_port());
    broker.create_topic("logs", 2);
    produce(&broker, "logs", 0..5000);
    let (admin, dead) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let output = format!(
        "<match **>\n  @type forward\n  <server>\n    host 127.0.0.1\n    port {dead}\n  </server>\n  <buffer>\n    @type file\n    path {}/buf\n    chunk_limit_size 16k\n    total_limit_size 64k\n    flush_interval 100ms\n    retry_wait 200ms\n    retry_max_interval 500ms\n  </buffer>\n</match>\n",
        dir.path().display()
    );
    let ferry = Ferry::start(&config(&broker, admin, "", &output), admin);
    let pauses = || {
        metric(
            &metrics(admin),
            "ferry_kafka_consumer_pauses_total{plugin_id=\"kafka_group_0\",type=\"kafka_group\"}",
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while pauses() < 1.0 {
        assert!(Instant::now() < deadline, "never paused");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Paused: ferry does not spin (under a third of a core over 3 s).
    let cpu = |pid: u32| ferry_bench::procstat::cpu_seconds(pid).unwrap();
    let before = cpu(ferry.child.id());
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu(ferry.child.id()) - before;
    assert!(used < 1.0, "{used} CPU seconds in 3 s while paused");
    // The destination comes up: every record arrives.
    let receiver = Ferry::start(
        &format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port {dead}\n</source>\n{STDOUT}"),
        dead,
    );
    let mut seen = BTreeMap::new();
    until_all(&receiver, 5000, Duration::from_secs(90), &mut seen);
    drop(ferry);
}

/// A record's payload and headers.
type RawRecord<'a> = (Vec<u8>, Vec<(&'a str, &'a str)>);

/// Produces `(payload, headers)` records to `topic` with a fixed Kafka timestamp.
fn produce_raw(broker: &Broker, topic: &str, records: &[RawRecord<'_>], timestamp_ms: i64) {
    use rdkafka::message::{Header, OwnedHeaders};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    for (payload, headers) in records {
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        p.send(
            BaseRecord::<(), _>::to(topic)
                .payload(payload)
                .headers(h)
                .timestamp(timestamp_ms),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

#[test]
fn formats_times_headers_and_tags_are_read_as_fluent_plugin_kafka_reads_them() {
    let Some(bin) = tansu() else { return };
    let broker = Broker::start(&bin, free_port());
    for t in ["t_text", "t_mp", "t_json"] {
        broker.create_topic(t, 1);
    }
    let kafka_ms = 1_700_000_000_123;
    produce_raw(
        &broker,
        "t_text",
        &[(b"plain line".to_vec(), vec![])],
        kafka_ms,
    );
    // msgpack {"seq": 1, "ts": 1600000000}
    produce_raw(
        &broker,
        "t_mp",
        &[(
            b"\x82\xa3seq\x01\xa2ts\xce\x5f\x5e\x10\x00".to_vec(),
            vec![],
        )],
        kafka_ms,
    );
    produce_raw(
        &broker,
        "t_json",
        &[(
            br#"{"app":"billing","when":"2021-02-03T04:05:06+0000","seq":2}"#.to_vec(),
            vec![("trace", "abc")],
        )],
        kafka_ms,
    );
    let admin = free_port();
    let b = broker.bootstrap();
    let conf = format!(
        "<source>\n  @type kafka_group\n  brokers {b}\n  consumer_group g1\n  topics t_text\n  format text\n  message_key line\n  add_suffix in\n  time_source kafka\n  session_timeout 6s\n</source>\n\
         <source>\n  @type kafka_group\n  brokers {b}\n  consumer_group g2\n  topics t_mp\n  format msgpack\n  time_source record\n  record_time_key ts\n  session_timeout 6s\n</source>\n\
         <source>\n  @type kafka_group\n  @label @J\n  brokers {b}\n  consumer_group g3\n  topics t_json\n  time_source record\n  record_time_key when\n  time_format %Y-%m-%dT%H:%M:%S%z\n  tag_source record\n  record_tag_key app\n  add_headers true\n  session_timeout 6s\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <label @J>\n  <match **>\n    @type stdout\n    <format>\n      @type json\n    </format>\n    <inject>\n      tag_key tag\n      time_key t\n      time_type float\n    </inject>\n  </match>\n</label>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n    time_key t\n    time_type float\n  </inject>\n</match>\n"
    );
    let ferry = Ferry::start(&conf, admin);
    let lines = ferry.stdout_lines(3, Duration::from_secs(60));
    let by_tag: BTreeMap<String, serde_json::Value> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["tag"].as_str().unwrap().to_string(), v)
        })
        .collect();
    let text = &by_tag["t_text.in"];
    assert_eq!(text["line"], "plain line", "{text}");
    assert_eq!(text["t"], 1_700_000_000.123, "the Kafka timestamp: {text}");
    let mp = &by_tag["t_mp"];
    assert_eq!(
        (mp["seq"].as_u64(), mp["t"].as_f64()),
        (Some(1), Some(1_600_000_000.0)),
        "{mp}"
    );
    let json = &by_tag["billing"];
    assert_eq!(json["trace"], "abc", "the header: {json}");
    assert_eq!(json["t"], 1_612_325_106.0, "time_format: {json}");
}

/// An aggregator of the group: kafka_group → file buffer → its own archive.
fn aggregator(broker: &Broker, admin: u16, dir: &std::path::Path, n: u32) -> Ferry {
    let output = format!(
        "<match **>\n  @type file\n  path {d}/archive{n}/logs\n  <format>\n    @type json\n  </format>\n  <buffer>\n    @type file\n    path {d}/buffer{n}\n    flush_mode interval\n    flush_interval 1s\n  </buffer>\n</match>\n",
        d = dir.display()
    );
    Ferry::start(&config(broker, admin, "", &output), admin)
}

/// Every record in every archive under `dir`: seq → times.
fn archives(dir: &std::path::Path) -> (BTreeMap<u64, u32>, u64) {
    let mut seen = BTreeMap::new();
    let mut total = 0;
    for a in std::fs::read_dir(dir).unwrap().flatten() {
        if !a.file_name().to_string_lossy().starts_with("archive") {
            continue;
        }
        for f in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
            if f.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            for l in std::fs::read_to_string(f.path())
                .unwrap_or_default()
                .lines()
            {
                *seen.entry(seq(l)).or_insert(0) += 1;
                total += 1;
            }
        }
    }
    (seen, total)
}

#[test]
fn three_aggregators_in_a_group_lose_nothing_when_one_is_killed_and_another_joins() {
    // Aggregators 0, 1, 2 consume; 1 is SIGKILLed; 3 joins; 1 comes back with its buffer.
    let Some(bin) = tansu() else { return };
    let broker = Broker::start(&bin, free_port());
    broker.create_topic("logs", 12);
    let dir = tempfile::tempdir().unwrap();
    let admins: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut aggs: Vec<Ferry> = (0..3)
        .map(|i| aggregator(&broker, admins[i], dir.path(), i as u32))
        .collect();
    // 60,000 records over about 12 s.
    let bootstrap = broker.bootstrap();
    let total = 60_000u64;
    let producer = std::thread::spawn(move || {
        let b = Broker::external(&bootstrap);
        for k in 0..60u64 {
            produce(&b, "logs", k * 1000..(k + 1) * 1000);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    std::thread::sleep(Duration::from_secs(5));
    let committed_at_kill = committed(&broker, "ferry-agg", "logs", 12);
    aggs[1].child.kill().unwrap();
    let _ = aggs[1].child.wait();
    std::thread::sleep(Duration::from_secs(2));
    aggs.push(aggregator(&broker, admins[3], dir.path(), 3));
    // The killed one comes back (as a StatefulSet's pod does, with its volume): what its buffer
    // held when it was killed is flushed to its archive.
    std::thread::sleep(Duration::from_secs(3));
    aggs[1] = aggregator(&broker, admins[1], dir.path(), 1);
    producer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (seen, count) = loop {
        let (seen, count) = archives(dir.path());
        if seen.len() as u64 >= total || Instant::now() > deadline {
            break (seen, count);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let lost = (0..total).filter(|s| !seen.contains_key(s)).count();
    let duplicated = count - seen.len() as u64;
    let rebalances: f64 = [0usize, 2, 3]
        .iter()
        .map(|i| {
            metric(
                &metrics(admins[*i]),
                "ferry_kafka_consumer_rebalances_total{plugin_id=\"kafka_group_0\",type=\"kafka_group\"}",
            )
        })
        .sum();
    eprintln!(
        "group drill: {total} produced, {lost} lost, {duplicated} duplicated, {committed_at_kill} committed at the kill, {rebalances} rebalances seen by the survivors"
    );
    assert_eq!(lost, 0);
    assert!(duplicated <= total - committed_at_kill as u64);
    assert!(
        rebalances >= 3.0,
        "the survivors took part in the rebalances"
    );
}

#[test]
fn a_burst_of_many_rounds_arrives_whole_while_the_committer_lags() {
    // 50,000 records already in the topic: the poller fills rounds faster than they are
    // committed, so it keeps polling while it waits; nothing it polls may be lost.
    let Some(bin) = tansu() else { return };
    let broker = Broker::start(&bin, free_port());
    broker.create_topic("logs", 4);
    produce(&broker, "logs", 0..50_000);
    let admin = free_port();
    let output = "<match **>\n  @type null\n  <buffer>\n    @type memory\n  </buffer>\n</match>\n";
    let _ferry = Ferry::start(&config(&broker, admin, "", output), admin);
    let count = || {
        metric(
            &metrics(admin),
            "fluentd_input_status_num_records_total{plugin_id=\"kafka_group_0\",type=\"kafka_group\"}",
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while count() < 50_000.0 {
        assert!(
            Instant::now() < deadline,
            "{} of 50000 records arrived",
            count()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(), 50_000.0, "each once");
}

/// A forwarder: tails `app.log` under `dir` into the kafka2 output (file buffer) → topic `logs`.
fn forwarder(broker: &Broker, admin: u16, dir: &std::path::Path) -> Ferry {
    let conf = format!(
        "<source>\n  @type tail\n  path {d}/app.log\n  pos_file {d}/app.pos\n  tag app\n  read_from_head true\n  <parse>\n    @type json\n  </parse>\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match app>\n  @type kafka2\n  brokers {}\n  default_topic logs\n  <format>\n    @type json\n  </format>\n  <buffer>\n    @type file\n    path {d}/forwarder-buffer\n    flush_mode interval\n    flush_interval 200ms\n    chunk_limit_size 64k\n  </buffer>\n</match>\n",
        broker.bootstrap(),
        d = dir.display()
    );
    Ferry::start(&conf, admin)
}

fn sigkill(ferry: &mut Ferry) {
    ferry.child.kill().unwrap();
    let _ = ferry.child.wait();
}

#[test]
fn forwarder_to_kafka_to_a_group_of_aggregators_loses_nothing_when_both_ends_are_sigkilled() {
    // The seed's layout: a forwarder tails a file into kafka2 → topic → two kafka_group
    // aggregators → archives. The forwarder is SIGKILLed twice and an aggregator once, each
    // restarted with its buffer (and the forwarder with its pos_file), while lines are written.
    let Some(bin) = tansu() else { return };
    let broker = Broker::start(&bin, free_port());
    broker.create_topic("logs", 6);
    let dir = tempfile::tempdir().unwrap();
    let (fwd_admin, agg_admins) = (free_port(), [free_port(), free_port()]);
    let mut aggs: Vec<Ferry> = (0..2)
        .map(|i| aggregator(&broker, agg_admins[i], dir.path(), i as u32))
        .collect();
    let mut fwd = forwarder(&broker, fwd_admin, dir.path());
    // 30,000 lines over about 12 s.
    let total = 30_000u64;
    let log = dir.path().join("app.log");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(&log).unwrap();
        for k in 0..120u64 {
            let mut lines = String::new();
            for i in k * 250..(k + 1) * 250 {
                lines.push_str(&format!("{{\"seq\":{i},\"msg\":\"line {i}\"}}\n"));
            }
            f.write_all(lines.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    sigkill(&mut fwd);
    std::thread::sleep(Duration::from_secs(1));
    fwd = forwarder(&broker, fwd_admin, dir.path());
    std::thread::sleep(Duration::from_secs(2));
    let committed_at_kill = committed(&broker, "ferry-agg", "logs", 6);
    sigkill(&mut aggs[0]);
    std::thread::sleep(Duration::from_secs(2));
    aggs[0] = aggregator(&broker, agg_admins[0], dir.path(), 0);
    std::thread::sleep(Duration::from_secs(2));
    sigkill(&mut fwd);
    fwd = forwarder(&broker, fwd_admin, dir.path());
    writer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (seen, count) = loop {
        let (seen, count) = archives(dir.path());
        if seen.len() as u64 >= total || Instant::now() > deadline {
            break (seen, count);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let lost: Vec<u64> = (0..total).filter(|s| !seen.contains_key(s)).collect();
    let duplicated = count - seen.len() as u64;
    eprintln!(
        "end to end: {total} lines written, {} lost, {duplicated} duplicated ({committed_at_kill} offsets committed when the aggregator was killed)",
        lost.len()
    );
    assert!(lost.is_empty(), "lost: {:?}", &lost[..lost.len().min(20)]);
    assert!(
        seen.keys().all(|s| *s < total),
        "only what was written arrives"
    );
    drop(fwd);
}

#[test]
fn librdkafkas_own_log_lines_and_client_errors_are_in_ferrys_log() {
    // No broker listens: librdkafka's connection errors arrive as a warning naming the input,
    // and with rdkafka_options {"debug": ...} and log_level debug its own lines show too.
    let port = free_port();
    let broker = Broker::external(&format!("127.0.0.1:{port}"));
    let admin = free_port();
    let conf = format!(
        "<system>\n  log_level debug\n</system>\n{}",
        config(
            &broker,
            admin,
            "  rdkafka_options {\"debug\":\"broker\"}\n",
            "<match **>\n  @type null\n</match>\n"
        )
    );
    let ferry = Ferry::start(&conf, admin);
    let mut seen = Vec::new();
    let debug = ferry.wait_stderr("librdkafka", Duration::from_secs(30), &mut seen);
    assert!(
        debug.contains("kafka_group input kafka_group_0"),
        "the line names the input: {debug}"
    );
    let warning = ferry.wait_stderr("Kafka client:", Duration::from_secs(30), &mut seen);
    assert!(
        warning.contains("[warn]") && warning.contains("kafka_group input kafka_group_0"),
        "{warning}"
    );
}
