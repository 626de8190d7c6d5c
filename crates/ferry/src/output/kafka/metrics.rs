//! Counters of a kafka2 output, per topic and per partition.
//!
//! Handles are created the first time a topic or partition is seen and kept: the produce path
//! and librdkafka's delivery callback touch atomics (and a read lock to find the handle) only.
//! The set of topics and partitions is bounded by what the configuration and records name.

use crate::metrics::names::*;
use crate::metrics::{Exposition, load};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Counters of one partition of a topic.
#[derive(Debug, Default)]
pub struct PartitionCounters {
    /// Messages the broker acknowledged.
    pub delivered: AtomicU64,
    /// Payload bytes of those messages.
    pub delivered_bytes: AtomicU64,
    /// Messages whose delivery failed (the chunk is retried).
    pub errors: AtomicU64,
}

/// Counters of one topic.
#[derive(Debug, Default)]
pub struct TopicCounters {
    /// Messages handed to librdkafka and not yet reported delivered or failed.
    pub in_flight: AtomicU64,
    /// Messages produced again because their chunk is being retried.
    pub retries: AtomicU64,
    /// Messages produced (first attempts and retries).
    pub produced: AtomicU64,
    /// Per partition; partition `-1` holds failures that happened before a partition was chosen
    /// (an unknown topic, say).
    partitions: RwLock<BTreeMap<i32, Arc<PartitionCounters>>>,
}

impl TopicCounters {
    pub fn partition(&self, partition: i32) -> Arc<PartitionCounters> {
        if let Some(p) = self
            .partitions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&partition)
        {
            return Arc::clone(p);
        }
        let mut map = self
            .partitions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(partition).or_default())
    }
}

/// Every topic a kafka2 output has produced to.
#[derive(Debug, Default)]
pub struct KafkaMetrics {
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    /// Times a produce call found librdkafka's queue full and waited.
    pub queue_full_waits: AtomicU64,
    /// Producers rebuilt after a fatal producer error.
    pub producer_restarts: AtomicU64,
}

/// A copy of one topic-partition's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    pub topic: String,
    pub partition: i32,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub errors: u64,
}

/// A copy of one topic's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    pub topic: String,
    pub produced: u64,
    pub in_flight: u64,
    pub retries: u64,
    pub partitions: Vec<PartitionStats>,
}

impl KafkaMetrics {
    /// The counters of `topic`, created on first use.
    pub fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        if let Some(t) = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
        {
            return Arc::clone(t);
        }
        let mut map = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(topic.to_string()).or_default())
    }

    /// Every topic's counters, sorted by topic.
    pub fn snapshot(&self) -> Vec<TopicStats> {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<TopicStats> = topics
            .iter()
            .map(|(name, t)| {
                let partitions = t
                    .partitions
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .map(|(p, c)| PartitionStats {
                        topic: name.clone(),
                        partition: *p,
                        delivered: c.delivered.load(Ordering::Relaxed),
                        delivered_bytes: c.delivered_bytes.load(Ordering::Relaxed),
                        errors: c.errors.load(Ordering::Relaxed),
                    })
                    .collect();
                TopicStats {
                    topic: name.clone(),
                    produced: t.produced.load(Ordering::Relaxed),
                    in_flight: t.in_flight.load(Ordering::Relaxed),
                    retries: t.retries.load(Ordering::Relaxed),
                    partitions,
                }
            })
            .collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }
}

impl KafkaMetrics {
    /// Writes this output's topic and partition samples (`id` is its plugin id).
    pub fn export(&self, id: &str, out: &mut Exposition) {
        let m = self;
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "kafka2")];
        out.counter(FERRY_KAFKA_QUEUE_FULL, &labels, load(&m.queue_full_waits));
        out.counter(
            FERRY_KAFKA_PRODUCER_RESTARTS,
            &labels,
            load(&m.producer_restarts),
        );
        for t in m.snapshot() {
            let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "kafka2"), ("topic", &t.topic)];
            out.counter(FERRY_KAFKA_PRODUCED, &l, t.produced);
            out.gauge(FERRY_KAFKA_IN_FLIGHT, &l, t.in_flight as f64);
            out.counter(FERRY_KAFKA_RETRIES, &l, t.retries);
            for p in &t.partitions {
                let partition = p.partition.to_string();
                let l: [(&str, &str); 4] = [
                    ("plugin_id", id),
                    ("type", "kafka2"),
                    ("topic", &t.topic),
                    ("partition", &partition),
                ];
                out.counter(FERRY_KAFKA_DELIVERED, &l, p.delivered);
                out.counter(FERRY_KAFKA_DELIVERED_BYTES, &l, p.delivered_bytes);
                out.counter(FERRY_KAFKA_ERRORS, &l, p.errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lists_topics_and_partitions_with_their_counts() {
        let m = KafkaMetrics::default();
        let logs = m.topic("logs");
        logs.produced.fetch_add(3, Ordering::Relaxed);
        logs.partition(2).delivered.fetch_add(2, Ordering::Relaxed);
        logs.partition(2)
            .delivered_bytes
            .fetch_add(10, Ordering::Relaxed);
        logs.partition(-1).errors.fetch_add(1, Ordering::Relaxed);
        m.topic("audit");
        let snap = m.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].topic, "audit");
        let logs = &snap[1];
        assert_eq!(logs.produced, 3);
        assert_eq!(logs.partitions.len(), 2);
        assert_eq!(logs.partitions[0].partition, -1);
        assert_eq!(logs.partitions[0].errors, 1);
        assert_eq!(logs.partitions[1].delivered, 2);
        assert_eq!(logs.partitions[1].delivered_bytes, 10);
    }
}
