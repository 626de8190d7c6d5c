//! The kafka_group input's counters, and per partition its lag and offsets.

use crate::metrics::names::{INPUT_EMIT_RECORDS, INPUT_EMIT_SIZE, INPUT_NUM_RECORDS};
use crate::metrics::{Exposition, load};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};

/// Per partition: the lag librdkafka reported, the offset it committed, the offset ferry stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub lag: i64,
    pub committed: i64,
    pub stored: i64,
}

#[derive(Debug, Default)]
pub struct KafkaGroupMetrics {
    pub messages: AtomicU64,
    pub emit_records: AtomicU64,
    pub emit_size: AtomicU64,
    /// Messages that made no record: passed.
    pub invalid: AtomicU64,
    /// Events the outputs refused for good (not a full buffer): passed.
    pub not_committed: AtomicU64,
    /// Times the partitions were paused for a full buffer.
    pub pauses: AtomicU64,
    pub held_ms: AtomicU64,
    pub rebalances: AtomicU64,
    pub commits: AtomicU64,
    pub commit_errors: AtomicU64,
    partitions: Mutex<BTreeMap<(String, i32), PartitionState>>,
    assignment: Mutex<String>,
}

impl KafkaGroupMetrics {
    /// librdkafka's statistics: lag and committed offset of each partition it holds.
    pub fn set_partitions(&self, reported: BTreeMap<(String, i32), (i64, i64)>) {
        let mut p = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        p.retain(|k, _| reported.contains_key(k));
        for (k, (lag, committed)) in reported {
            let e = p.entry(k).or_default();
            e.lag = lag;
            e.committed = committed;
        }
    }

    pub fn set_stored(&self, topic: &str, partition: i32, offset: i64) {
        let mut p = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        p.entry((topic.to_string(), partition)).or_default().stored = offset;
    }

    pub fn set_assignment(&self, text: &str) {
        *self
            .assignment
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = text.to_string();
    }

    pub fn assignment(&self) -> String {
        self.assignment
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn partitions(&self) -> BTreeMap<(String, i32), PartitionState> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn export(&self, id: &str, out: &mut Exposition) {
        use crate::metrics::names::{
            FERRY_INPUT_HELD_SECONDS, FERRY_KAFKA_CONSUMER_COMMITS,
            FERRY_KAFKA_CONSUMER_COMMITTED_OFFSET, FERRY_KAFKA_CONSUMER_LAG,
            FERRY_KAFKA_CONSUMER_MESSAGES, FERRY_KAFKA_CONSUMER_PAUSES,
            FERRY_KAFKA_CONSUMER_REBALANCES, dropped,
        };
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "kafka_group")];
        out.counter(INPUT_EMIT_RECORDS, &labels, load(&self.emit_records));
        out.counter(INPUT_EMIT_SIZE, &labels, load(&self.emit_size));
        out.counter(INPUT_NUM_RECORDS, &labels, load(&self.emit_records));
        out.counter(FERRY_KAFKA_CONSUMER_MESSAGES, &labels, load(&self.messages));
        out.counter(FERRY_KAFKA_CONSUMER_PAUSES, &labels, load(&self.pauses));
        out.counter(
            FERRY_KAFKA_CONSUMER_REBALANCES,
            &labels,
            load(&self.rebalances),
        );
        out.counter(FERRY_KAFKA_CONSUMER_COMMITS, &labels, load(&self.commits));
        out.counter_seconds(FERRY_INPUT_HELD_SECONDS, &labels, load(&self.held_ms));
        out.dropped(id, "kafka_group", dropped::INVALID, load(&self.invalid));
        out.dropped(
            id,
            "kafka_group",
            dropped::NOT_COMMITTED,
            load(&self.not_committed),
        );
        for ((topic, partition), s) in self.partitions() {
            let partition = partition.to_string();
            let l: [(&str, &str); 4] = [
                ("plugin_id", id),
                ("type", "kafka_group"),
                ("topic", &topic),
                ("partition", &partition),
            ];
            out.gauge(FERRY_KAFKA_CONSUMER_LAG, &l, s.lag as f64);
            out.gauge(
                FERRY_KAFKA_CONSUMER_COMMITTED_OFFSET,
                &l,
                s.committed as f64,
            );
        }
    }
}
