//! `@type kafka_group` (fluent-plugin-kafka's kafka_group input): a consumer in a Kafka consumer
//! group, on the same librdkafka as the kafka2 output.
//!
//! - **Offsets follow the buffer.** A message's offset is stored only after its events are
//!   committed to every buffer they go to; librdkafka commits stored offsets every
//!   `offset_commit_interval` and whenever a partition is given up in a rebalance. A crash
//!   re-reads what was not committed yet: duplicates are possible, loss is not.
//! - **A full buffer pauses the partitions.** While an output's buffer refuses, the assigned
//!   partitions are paused (the consumer stays in its group, nothing is dropped, nothing spins)
//!   and resumed once the events were taken.
//! - **The tag** is the topic (with `add_prefix`, `add_suffix`), or a record key with
//!   `tag_source record`.
//! - A message that makes no record (not JSON with `format json`, ...) is logged, counted
//!   (`ferry_events_dropped_total{reason="invalid"}`) and passed, as fluent-plugin-kafka passes
//!   it.

pub mod config;
pub mod metrics;
mod poll;

use crate::event::Batch;
use crate::input::lines::Batches;
use crate::input::{InputHandle, Start};
use crate::logging::LogLimiter;
use crate::output::EmitError;
use crate::parse::Record;
use crate::router::Routing;
use crate::task::TaskHandle;
pub use config::KafkaGroupConfig;
use config::{Payload, TimeSource};
use ferry_proto::time::EventTime;
pub use metrics::KafkaGroupMetrics;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one attempt to commit waits for room before the partitions are paused.
const HOLD: Duration = Duration::from_secs(1);

/// librdkafka's callbacks: statistics (lag), rebalances, commits.
pub struct GroupContext {
    name: String,
    client_log: LogLimiter,
    metrics: Arc<KafkaGroupMetrics>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        crate::kafka::log_line(&self.name, level, fac, message);
    }

    /// Broker connection failures and the like: librdkafka retries them, so they are warnings,
    /// at most a few a minute.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if let Some(s) = self.client_log.allow() {
            tracing::warn!("{}: Kafka client: {error}: {reason}{s}", self.name);
        }
    }

    fn stats(&self, statistics: Statistics) {
        let mut lag = BTreeMap::new();
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                // Partition -1 is librdkafka's internal one; a lag of -1 means "unknown".
                if partition >= 0 && p.consumer_lag >= 0 {
                    lag.insert(
                        (topic.clone(), partition),
                        (p.consumer_lag, p.committed_offset),
                    );
                }
            }
        }
        self.metrics.set_partitions(lag);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.metrics.rebalances.fetch_add(1, Ordering::Relaxed);
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!("{}: assigned {}", self.name, partitions_text(list))
            }
            Rebalance::Revoke(list) => tracing::info!(
                "{}: giving up {} (their stored offsets are committed first)",
                self.name,
                partitions_text(list)
            ),
            Rebalance::Error(e) => tracing::warn!("{}: rebalance failed: {e}", self.name),
        }
    }

    /// What the consumer holds after a rebalance, for the metrics, the dump and the task's
    /// detail (read here once per rebalance, not from librdkafka's main thread every round).
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        let held = consumer
            .assignment()
            .map(|a| partitions_text(&a))
            .unwrap_or_default();
        self.metrics.set_assignment(&held);
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        match result {
            Ok(()) => {
                self.metrics.commits.fetch_add(1, Ordering::Relaxed);
            }
            // Nothing new to commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => {
                self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{}: committing offsets failed: {e}", self.name);
            }
        }
    }
}

/// `topic[0,1,2] other[3]`.
fn partitions_text(list: &TopicPartitionList) -> String {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for e in list.elements() {
        by_topic
            .entry(e.topic().to_string())
            .or_default()
            .push(e.partition());
    }
    by_topic
        .into_iter()
        .map(|(t, mut p)| {
            p.sort_unstable();
            let p: Vec<String> = p.iter().map(i32::to_string).collect();
            format!("{t}[{}]", p.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

type GroupConsumer = BaseConsumer<GroupContext>;

struct Group {
    name: String,
    config: KafkaGroupConfig,
    routing: Arc<Routing>,
    metrics: Arc<KafkaGroupMetrics>,
    /// `format json`'s parser, with the record's time key when `time_source record`: built once.
    json: crate::parse::json::JsonParser,
    invalid_log: LogLimiter,
    commit_log: LogLimiter,
}

/// Creates the consumer, subscribes, and spawns its task; returns the input's counters.
pub async fn start(
    id: String,
    config: KafkaGroupConfig,
    start: Start<'_>,
) -> anyhow::Result<Arc<KafkaGroupMetrics>> {
    let name = format!("kafka_group input {id}");
    let metrics = match start.previous {
        Some(InputHandle::KafkaGroup(m)) => Arc::clone(m),
        _ => Arc::new(KafkaGroupMetrics::default()),
    };
    let context = GroupContext {
        name: name.clone(),
        client_log: LogLimiter::default(),
        metrics: Arc::clone(&metrics),
    };
    let consumer: GroupConsumer = config
        .client_config()
        .create_with_context(context)
        .map_err(|e| anyhow::anyhow!("{name}: cannot create the consumer: {e}"))?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| anyhow::anyhow!("{name}: cannot subscribe to {topics:?}: {e}"))?;
    tracing::info!(
        "{name}: consuming {} in group {}",
        config.topics.join(", "),
        config.consumer_group
    );
    let json = crate::parse::json::JsonParser {
        time: match &config.time_source {
            TimeSource::Record(spec) => spec.clone(),
            _ => crate::parse::default_time_spec(None),
        },
    };
    let group = Arc::new(Group {
        json,
        name: name.clone(),
        config,
        routing: Arc::clone(start.routing),
        metrics: Arc::clone(&metrics),
        invalid_log: LogLimiter::default(),
        commit_log: LogLimiter::default(),
    });
    let consumer = Arc::new(consumer);
    start
        .tasks
        .work
        .spawn(name, move |h| async move { group.run(consumer, h).await });
    Ok(metrics)
}

/// What one round read: batches by tag, and the last offset per partition.
struct Round {
    batches: Batches,
    offsets: BTreeMap<(String, i32), i64>,
}

impl Group {
    async fn run(self: Arc<Self>, consumer: Arc<GroupConsumer>, h: TaskHandle) {
        // librdkafka is polled on a thread of its own (as a plain consumer polls it); rounds of
        // messages come over a channel of one, so a committer that waits holds the poller back.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<poll::Polled>(1);
        let (taken_tx, taken) = std::sync::mpsc::channel::<()>();
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (consumer, stop, group) =
                (Arc::clone(&consumer), Arc::clone(&stop), Arc::clone(&self));
            let keep = poll::Keep {
                key: self.config.kafka_message_key.is_some(),
                headers: self.config.add_headers,
                timestamp: matches!(self.config.time_source, TimeSource::Kafka),
            };
            std::thread::Builder::new()
                .name("ferry-kafka-poll".into())
                .spawn(move || poll::poll_loop(&group.name, &consumer, keep, &tx, &taken, &stop))
        };
        loop {
            let assigned = self.metrics.assignment();
            h.set_detail("waiting for messages", assigned.clone());
            let pending = tokio::select! {
                () = h.cancelled() => break,
                b = rx.recv() => match b {
                    Some(b) => b,
                    None => break,
                },
            };
            // The poller hands the next round over at once.
            let _ = taken_tx.send(());
            self.metrics
                .messages
                .fetch_add(pending.len() as u64, Ordering::Relaxed);
            let round = self.read(&pending);
            h.set_detail("waiting for commit", assigned);
            match self.commit(round.batches, &consumer, &h).await {
                Ok(()) => {
                    for ((topic, partition), offset) in round.offsets {
                        // A partition given up meanwhile refuses: its new owner reads it again.
                        if consumer.store_offset(&topic, partition, offset).is_ok() {
                            self.metrics.set_stored(&topic, partition, offset + 1);
                        }
                    }
                }
                // Stopping: nothing of this round is stored; it is read again after the restart.
                Err(()) => break,
            }
        }
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        let name = self.name.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(t) = poller {
                let _ = t.join();
            }
            if let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
                tracing::debug!("{name}: last commit at stop: {e}");
            }
        })
        .await;
    }

    /// Turns messages into batches by tag.
    fn read(&self, polled: &poll::Polled) -> Round {
        let mut batches = Batches::default();
        // By the round's topic index: no allocation per message.
        let mut last: BTreeMap<(usize, i32), i64> = BTreeMap::new();
        let mut topic_tags: Vec<Option<Arc<str>>> = vec![None; polled.topics().len()];
        let mut record_tags: BTreeMap<String, Arc<str>> = BTreeMap::new();
        let mut rec = Record::new();
        let now = EventTime::now();
        for m in polled.iter() {
            last.insert((m.topic_index(), m.partition()), m.offset());
            let time = match self.record(m, &mut rec, now) {
                Ok(t) => t,
                Err(why) => {
                    self.metrics.invalid.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = self.invalid_log.allow() {
                        let payload = m.payload();
                        let shown = String::from_utf8_lossy(&payload[..payload.len().min(256)]);
                        tracing::warn!(
                            "{}: {}[{}] offset {}: {why}: {shown:?}: skipped{s}",
                            self.name,
                            m.topic(),
                            m.partition(),
                            m.offset()
                        );
                    }
                    continue;
                }
            };
            let from_record = self
                .config
                .record_tag_key
                .as_deref()
                .and_then(|key| record_str(&rec, key));
            let tag = match from_record {
                Some(text) => record_tags
                    .entry(text)
                    .or_insert_with_key(|t| Arc::from(t.as_str()))
                    .clone(),
                None => topic_tags[m.topic_index()]
                    .get_or_insert_with(|| Arc::from(self.config.tag_for(m.topic())))
                    .clone(),
            };
            rec.write_entry(batches.entries_for(&tag), time);
        }
        let offsets = last
            .into_iter()
            .map(|((topic, partition), offset)| {
                ((polled.topics()[topic].clone(), partition), offset)
            })
            .collect();
        Round { batches, offsets }
    }

    /// One message's record into `rec`, and its event time.
    fn record(
        &self,
        m: poll::Polled1<'_>,
        rec: &mut Record,
        now: EventTime,
    ) -> Result<EventTime, String> {
        rec.clear();
        let payload = m.payload();
        let c = &self.config;
        let mut time = None;
        match &c.payload {
            Payload::Json => {
                time = self.json.parse(payload, rec).map_err(|e| e.to_string())?;
            }
            Payload::Text => rec.str(&c.message_key, payload),
            Payload::Msgpack => {
                let pairs = ferry_proto::records::pairs(payload)
                    .map_err(|e| format!("not a msgpack map: {e}"))?;
                for (k, v) in pairs {
                    if let TimeSource::Record(spec) = &c.time_source
                        && record_key_is(k, spec.key.as_deref())
                    {
                        time = read_time(v, spec);
                    }
                    rec.buf().extend_from_slice(k);
                    rec.buf().extend_from_slice(v);
                    rec.add_field();
                }
            }
            Payload::Parse(p) => {
                time = p.parse(payload, rec).map_err(|e| e.to_string())?;
            }
        }
        if c.add_headers {
            for (name, value) in m.headers() {
                rec.str(&String::from_utf8_lossy(name), value);
            }
        }
        if let (Some(field), Some(key)) = (&c.kafka_message_key, m.key()) {
            rec.str(field, key);
        }
        Ok(match &c.time_source {
            TimeSource::Now => now,
            TimeSource::Kafka => m
                .timestamp_ms()
                .and_then(|ms| u128::try_from(ms).ok())
                .and_then(|ms| EventTime::from_unix_nanos(ms * 1_000_000))
                .unwrap_or(now),
            TimeSource::Record(_) => time.unwrap_or(now),
        })
    }

    /// Commits every batch of a round; while a buffer refuses, the partitions are paused (the
    /// poller keeps the consumer in its group meanwhile). `Err` when stopping.
    async fn commit(
        &self,
        batches: Batches,
        consumer: &GroupConsumer,
        h: &TaskHandle,
    ) -> Result<(), ()> {
        let m = &self.metrics;
        let mut paused: Option<TopicPartitionList> = None;
        for (tag, entries, records) in batches.into_parts() {
            let size = entries.len() as u64;
            let batch = Batch::new(tag, entries.freeze(), records);
            loop {
                let (held, result) = self
                    .routing
                    .emit_holding(self.config.label.as_deref(), &batch, HOLD, h.cancel_token())
                    .await;
                m.held_ms
                    .fetch_add(held.as_millis() as u64, Ordering::Relaxed);
                match result {
                    Ok(_) => {
                        m.emit_records.fetch_add(records, Ordering::Relaxed);
                        m.emit_size.fetch_add(size, Ordering::Relaxed);
                        break;
                    }
                    Err(EmitError::Buffer { .. }) if !h.cancel_token().is_cancelled() => {
                        if paused.is_none()
                            && let Ok(list) = consumer.assignment()
                        {
                            if consumer.pause(&list).is_ok() {
                                m.pauses.fetch_add(1, Ordering::Relaxed);
                                tracing::info!(
                                    "{}: a buffer is full: {} paused until it takes events again",
                                    self.name,
                                    partitions_text(&list)
                                );
                            }
                            paused = Some(list);
                        }
                        h.set("paused: a buffer is full");
                    }
                    Err(EmitError::ShuttingDown | EmitError::Buffer { .. }) => return Err(()),
                    Err(e) => {
                        m.not_committed.fetch_add(records, Ordering::Relaxed);
                        if let Some(s) = self.commit_log.allow() {
                            tracing::warn!(
                                "{}: {records} events were not committed: {e}; their offsets are passed{s}",
                                self.name
                            );
                        }
                        break;
                    }
                }
            }
        }
        if let Some(list) = paused {
            let _ = consumer.resume(&list);
            tracing::info!("{}: resumed {}", self.name, partitions_text(&list));
        }
        Ok(())
    }
}

fn record_key_is(raw: &[u8], key: Option<&str>) -> bool {
    key.is_some_and(|key| {
        ferry_proto::msgpack::Reader::new(raw)
            .str_or_bin()
            .is_ok_and(|(k, _)| k == key.as_bytes())
    })
}

fn read_time(raw: &[u8], spec: &crate::parse::TimeSpec) -> Option<EventTime> {
    use ferry_proto::msgpack::Value;
    match Value::decode(raw).ok()?.0 {
        Value::UInt(n) => spec.from_number(n as f64),
        Value::Int(n) => spec.from_number(n as f64),
        Value::F64(f) => spec.from_number(f),
        Value::Str(s) => spec.read(&s).ok(),
        _ => None,
    }
}

/// A string field of the record being built.
fn record_str(rec: &Record, key: &str) -> Option<String> {
    use ferry_proto::msgpack::Value;
    rec.pairs().find_map(|(k, v)| {
        (k.as_str_bytes() == Some(key.as_bytes()))
            .then(|| match v {
                Value::Str(s) => Some(String::from_utf8_lossy(&s).into_owned()),
                _ => None,
            })
            .flatten()
    })
}
