//! `@type kafka2`: writes events to Kafka, committing a chunk only on delivery.
//!
//! Built on librdkafka (the `rdkafka` crate, with its bundled librdkafka). The output is
//! always buffered (`<buffer tag>` unless the configuration says otherwise); a flusher hands a
//! chunk to [`Kafka::write_chunk`], which:
//!
//! 1. streams the chunk segment by segment ([`SegmentReader`]): memory is bounded by one
//!    segment plus librdkafka's queue, whatever the chunk size;
//! 2. turns each event into a message ([`record`]: topic, key, partition, headers, payload in
//!    the `<format>`; the event time becomes the message timestamp) and produces it. When
//!    librdkafka's queue is full (`QueueFull`) the flusher waits for deliveries to make room:
//!    the back-pressure reaches the buffer, which holds events until the flusher takes more;
//! 3. returns `Ok` only once **every** message of the chunk has a successful delivery report
//!    from the broker ([`delivery::ChunkDelivery`]). A failed or timed-out delivery returns a
//!    retryable error: the buffer keeps the chunk and retries it with backoff, then the
//!    `<secondary>`, then the quarantine. A retry produces the whole chunk again, so a message
//!    whose report was lost can reach Kafka twice: delivery is at least once. (The idempotent
//!    producer removes duplicates from librdkafka's own retries, not from a chunk retry.)
//!
//! After a failed write the producer is replaced by a new one when it hit a fatal error, or
//! when it is idempotent and its messages timed out: its session may be one the broker lost
//! (see `Kafka::after_failure`).
//!
//! Counters per topic and partition are in [`metrics`], reached with [`Kafka::metrics`].

pub mod config;
pub mod delivery;
pub mod format;
pub mod metrics;
pub mod record;

use super::SinkError;
use super::segment::SegmentReader;
use bytes::Bytes;
pub use config::{KafkaConfig, buffer_setup};
use delivery::{ChunkDelivery, DeliveryContext, KafkaOutputError, Pending};
use ferry_buffer::Chunk;
use ferry_proto::entries;
use metrics::KafkaMetrics;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use record::{MessageBuilder, OutMessage, partition_for_key};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

type KafkaProducer = ThreadedProducer<DeliveryContext>;

/// How long a produce call waits before trying again when librdkafka's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(2);

/// How long a topic's partition count is trusted before it is asked again.
const PARTITION_COUNT_TTL: Duration = Duration::from_secs(60);

/// Extra time, beyond `delivery_timeout`, to wait for the last delivery reports of a chunk.
const REPORT_GRACE: Duration = Duration::from_secs(10);

pub struct Kafka {
    pub id: String,
    config: KafkaConfig,
    producer: Mutex<Option<Arc<KafkaProducer>>>,
    partition_counts: Mutex<HashMap<String, (i32, Instant)>>,
    metrics: Arc<KafkaMetrics>,
    /// Messages of fully delivered chunks since start.
    delivered: AtomicU64,
    /// Entries that could not be decoded (a bug or a damaged buffer, never valid input).
    pub broken_entries: AtomicU64,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("id", &self.id)
            .field("brokers", &self.config.brokers)
            .finish_non_exhaustive()
    }
}

/// One write (a chunk or a batch): its delivery state and one opaque per topic.
struct Write {
    delivery: Arc<ChunkDelivery>,
    pending: HashMap<Arc<str>, Arc<Pending>>,
    retry: bool,
}

impl Kafka {
    /// Creates the output and its producer. A producer librdkafka refuses (say, an unreadable
    /// certificate) is logged and built again at the next write, which fails until then.
    pub fn new(id: String, config: KafkaConfig) -> Self {
        let kafka = Self {
            id,
            config,
            producer: Mutex::new(None),
            partition_counts: Mutex::new(HashMap::new()),
            metrics: Arc::default(),
            delivered: AtomicU64::new(0),
            broken_entries: AtomicU64::new(0),
        };
        if let Err(e) = kafka.producer() {
            tracing::error!("output {}: {e}", kafka.id);
        }
        kafka
    }

    /// Counters per topic and partition.
    pub fn metrics(&self) -> &Arc<KafkaMetrics> {
        &self.metrics
    }

    fn producer(&self) -> Result<Arc<KafkaProducer>, KafkaOutputError> {
        let mut slot = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = &*slot {
            return Ok(Arc::clone(p));
        }
        let context = DeliveryContext::new(self.id.clone());
        let producer: KafkaProducer = self
            .config
            .client_config()
            .create_with_context(context)
            .map_err(KafkaOutputError::Client)?;
        let producer = Arc::new(producer);
        *slot = Some(Arc::clone(&producer));
        Ok(producer)
    }

    /// After a failed write, drops the producer so the next write builds a new one when it hit a
    /// fatal error, or when it is idempotent and its messages timed out: its session (producer
    /// id and sequence numbers) may be one the broker no longer knows, after the broker lost
    /// its state say, and librdkafka does not always recover such a session. A new producer
    /// starts a new session.
    async fn after_failure(&self, producer: Arc<KafkaProducer>, error: &SinkError) {
        let why = match producer.client().fatal_error() {
            Some((code, reason)) => format!("a fatal error ({code}: {reason})"),
            None if self.config.idempotent
                && matches!(error, SinkError::Kafka(e) if e.is_timeout()) =>
            {
                "delivery timeouts".to_string()
            }
            None => return,
        };
        {
            let mut slot = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
            if !slot.as_ref().is_some_and(|p| Arc::ptr_eq(p, &producer)) {
                return;
            }
            *slot = None;
        }
        self.metrics
            .producer_restarts
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "output {}: starting a new Kafka producer after {why}",
            self.id
        );
        // Dropping the last handle purges, flushes and joins librdkafka's threads: blocking.
        let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
    }

    /// Writes one buffered chunk; `Ok` only when every message is delivered.
    pub async fn write_chunk(&self, chunk: &Chunk) -> Result<(), SinkError> {
        let tag = chunk.key().tag.clone().unwrap_or_default();
        let producer = self.producer()?;
        let mut write = Write {
            delivery: Arc::default(),
            pending: HashMap::new(),
            retry: chunk.retry().first_failure.is_some(),
        };
        let mut segments = SegmentReader::new(chunk)?;
        let mut produced = Ok(());
        while let Some(stream) = segments.next().await? {
            produced = self
                .produce_stream(&producer, &tag, &stream, &mut write)
                .await;
            if produced.is_err() {
                break;
            }
        }
        let result = self.settle(produced, &write).await;
        match &result {
            Ok(()) => {
                let n = write.delivery.produced();
                let total = self.delivered.fetch_add(n, Ordering::Relaxed) + n;
                tracing::debug!(
                    "output {}: chunk {} delivered: {n} messages ({total} since start)",
                    self.id,
                    chunk.id().to_hex()
                );
            }
            Err(e) => self.after_failure(producer, e).await,
        }
        result
    }

    /// Writes one batch as it arrives: the same commit-on-delivery as a chunk.
    pub async fn write_batch(&self, tag: &str, stream: &Bytes) -> Result<(), SinkError> {
        let producer = self.producer()?;
        let mut write = Write {
            delivery: Arc::default(),
            pending: HashMap::new(),
            retry: false,
        };
        let produced = self
            .produce_stream(&producer, tag, stream, &mut write)
            .await;
        let result = self.settle(produced, &write).await;
        if let Err(e) = &result {
            self.after_failure(producer, e).await;
        }
        result
    }

    /// Waits for the reports of what was produced; a produce error wins over them.
    async fn settle(
        &self,
        produced: Result<(), SinkError>,
        write: &Write,
    ) -> Result<(), SinkError> {
        produced?;
        let timeout = self.config.delivery_timeout + REPORT_GRACE;
        write.delivery.wait(timeout).await.map_err(SinkError::from)
    }

    async fn produce_stream(
        &self,
        producer: &Arc<KafkaProducer>,
        tag: &str,
        stream: &[u8],
        write: &mut Write,
    ) -> Result<(), SinkError> {
        let mut builder = MessageBuilder::new(&self.config.routing, &self.config.format, tag);
        for (index, entry) in entries::iter(stream).enumerate() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if e.is_structural() => return Err(SinkError::BadChunk(e.to_string())),
                Err(e) => {
                    self.broken_entries.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("output {}: entry skipped: {e}", self.id);
                    continue;
                }
            };
            let message = builder
                .build(&entry, index)
                .map_err(|e| SinkError::BadChunk(e.to_string()))?;
            self.produce(producer, message, write).await?;
            if let Some(e) = write.delivery.error() {
                // A message of this write already failed: the write will be retried whole.
                return Err(e.into());
            }
        }
        Ok(())
    }

    async fn produce(
        &self,
        producer: &Arc<KafkaProducer>,
        message: OutMessage,
        write: &mut Write,
    ) -> Result<(), KafkaOutputError> {
        let partition = match (message.partition, &message.partition_key) {
            (Some(p), _) => Some(p),
            (None, Some(key)) => {
                let count = self.partition_count(producer, &message.topic).await?;
                Some(partition_for_key(key, count))
            }
            (None, None) => None,
        };
        let pending = match write.pending.get(&*message.topic) {
            Some(p) => Arc::clone(p),
            None => {
                let p = Arc::new(Pending {
                    chunk: Arc::clone(&write.delivery),
                    topic: self.metrics.topic(&message.topic),
                });
                write
                    .pending
                    .insert(Arc::clone(&message.topic), Arc::clone(&p));
                p
            }
        };
        let topic = Arc::clone(&pending.topic);
        topic.produced.fetch_add(1, Ordering::Relaxed);
        if write.retry {
            topic.retries.fetch_add(1, Ordering::Relaxed);
        }
        let mut record = BaseRecord::with_opaque_to(&message.topic, pending)
            .payload(&message.payload[..])
            .timestamp(message.timestamp_ms);
        if let Some(key) = &message.key {
            record = record.key(&key[..]);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if !message.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
            for (name, value) in &message.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(&value[..]),
                });
            }
            record = record.headers(headers);
        }
        write.delivery.add();
        topic.in_flight.fetch_add(1, Ordering::Relaxed);
        loop {
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.metrics
                        .queue_full_waits
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(e) = write.delivery.error() {
                        topic.in_flight.fetch_sub(1, Ordering::Relaxed);
                        write.delivery.remove();
                        return Err(e);
                    }
                    tokio::time::sleep(QUEUE_FULL_WAIT).await;
                }
                Err((source, _)) => {
                    topic.in_flight.fetch_sub(1, Ordering::Relaxed);
                    topic
                        .partition(partition.unwrap_or(-1))
                        .errors
                        .fetch_add(1, Ordering::Relaxed);
                    write.delivery.remove();
                    return Err(KafkaOutputError::Produce {
                        topic: message.topic.to_string(),
                        source,
                    });
                }
            }
        }
    }

    /// The number of partitions of `topic`, from the broker's metadata (cached).
    async fn partition_count(
        &self,
        producer: &Arc<KafkaProducer>,
        topic: &str,
    ) -> Result<i32, KafkaOutputError> {
        {
            let counts = self
                .partition_counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((n, at)) = counts.get(topic)
                && at.elapsed() < PARTITION_COUNT_TTL
            {
                return Ok(*n);
            }
        }
        let p = Arc::clone(producer);
        let name = topic.to_string();
        let metadata_error = |source| KafkaOutputError::Metadata {
            topic: topic.to_string(),
            source,
        };
        let count = tokio::task::spawn_blocking(move || {
            let metadata = p
                .client()
                .fetch_metadata(Some(&name), Duration::from_secs(10))?;
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .filter(|t| t.error().is_none())
                .map_or(0, |t| t.partitions().len());
            Ok(i32::try_from(partitions).unwrap_or(i32::MAX))
        })
        .await
        .map_err(|_| metadata_error(KafkaError::Canceled))?
        .map_err(metadata_error)?;
        if count == 0 {
            return Err(metadata_error(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            )));
        }
        self.partition_counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_string(), (count, Instant::now()));
        Ok(count)
    }
}

impl From<KafkaOutputError> for SinkError {
    fn from(e: KafkaOutputError) -> Self {
        SinkError::Kafka(e)
    }
}
