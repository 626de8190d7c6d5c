//! Delivery reports: librdkafka tells the producer context, once per message, whether the
//! broker acknowledged it; the context settles the message in its chunk's [`ChunkDelivery`].
//!
//! A chunk is delivered when every message produced for it has a successful report. Each
//! message carries an `Arc<Pending>` (one per chunk and topic, shared by that chunk's messages)
//! as its delivery opaque, so a report costs a reference count and a few atomics, no lookup.

use super::metrics::TopicCounters;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Why a kafka2 output did not deliver a chunk.
#[derive(Debug, thiserror::Error)]
pub enum KafkaOutputError {
    #[error("cannot create the Kafka producer: {0}")]
    Client(#[source] KafkaError),
    #[error("producing to topic {topic}: {source}")]
    Produce {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("{failed} of {produced} messages were not delivered; first error: {first}")]
    Delivery {
        failed: u64,
        produced: u64,
        first: KafkaError,
    },
    #[error("{outstanding} of {produced} messages had no delivery report after {waited:?}")]
    Timeout {
        outstanding: u64,
        produced: u64,
        waited: Duration,
    },
    #[error("cannot learn the partitions of topic {topic}: {source}")]
    Metadata {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

impl KafkaOutputError {
    /// Whether the same chunk may be delivered later. A message the broker will never take (too
    /// large, an invalid topic name) makes its chunk undeliverable: it goes to the secondary or
    /// the quarantine at once instead of retrying for `retry_timeout`.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Produce { source, .. } | Self::Delivery { first: source, .. } => {
                !is_permanent(source)
            }
            Self::Client(_) | Self::Timeout { .. } | Self::Metadata { .. } => true,
        }
    }

    /// Messages got no delivery report in time (librdkafka's `message.timeout.ms`, or ferry's
    /// own wait).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Delivery { first, .. } => {
                first.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut)
            }
            _ => false,
        }
    }

    /// A short class name for log lines.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Client(_) => "KafkaClientError",
            Self::Produce { .. } => "KafkaProduceError",
            Self::Delivery { .. } => "KafkaDeliveryError",
            Self::Timeout { .. } => "KafkaDeliveryTimeout",
            Self::Metadata { .. } => "KafkaMetadataError",
        }
    }
}

fn is_permanent(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Nul(_))
        || matches!(
            e.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::MessageSizeTooLarge
                    | RDKafkaErrorCode::InvalidMessageSize
                    | RDKafkaErrorCode::InvalidRecord
                    | RDKafkaErrorCode::InvalidTopic
            )
        )
}

/// The delivery state of one chunk's messages.
#[derive(Debug, Default)]
pub struct ChunkDelivery {
    produced: AtomicU64,
    outstanding: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<KafkaError>>,
    settled: Notify,
}

impl ChunkDelivery {
    /// Counts a message about to be produced.
    pub fn add(&self) {
        self.produced.fetch_add(1, Ordering::Relaxed);
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes back a message librdkafka refused to enqueue.
    pub fn remove(&self) {
        self.produced.fetch_sub(1, Ordering::Relaxed);
        self.settle();
    }

    fn settle(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            // notify_one keeps a permit when nobody waits yet: no report is missed.
            self.settled.notify_one();
        }
    }

    fn fail(&self, error: &KafkaError) {
        self.failed.fetch_add(1, Ordering::AcqRel);
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(error.clone());
        }
    }

    pub fn produced(&self) -> u64 {
        self.produced.load(Ordering::Relaxed)
    }

    /// Whether a message of the chunk already failed: producing the rest is wasted work.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire) > 0
    }

    /// The failure so far, if any.
    pub fn error(&self) -> Option<KafkaOutputError> {
        let failed = self.failed.load(Ordering::Acquire);
        if failed == 0 {
            return None;
        }
        let first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        Some(KafkaOutputError::Delivery {
            failed,
            produced: self.produced(),
            first,
        })
    }

    /// Waits until every produced message has a report, or `timeout`; then `Ok` only if all
    /// were delivered.
    pub async fn wait(&self, timeout: Duration) -> Result<(), KafkaOutputError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.outstanding.load(Ordering::Acquire) > 0 {
            if tokio::time::timeout_at(deadline, self.settled.notified())
                .await
                .is_err()
            {
                return Err(KafkaOutputError::Timeout {
                    outstanding: self.outstanding.load(Ordering::Acquire),
                    produced: self.produced(),
                    waited: timeout,
                });
            }
        }
        match self.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// What each message carries to its delivery report.
#[derive(Debug)]
pub struct Pending {
    pub chunk: Arc<ChunkDelivery>,
    pub topic: Arc<TopicCounters>,
}

/// The producer's context: routes librdkafka's logs into ferry's and settles deliveries.
pub struct DeliveryContext {
    pub id: String,
    /// When the last client error was logged as a warning (ms since `started`).
    last_warning_ms: AtomicU64,
    started: Instant,
}

/// Client errors repeat (every reconnect attempt reports one): one warning per this interval,
/// the rest at debug level.
const CLIENT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

impl DeliveryContext {
    pub fn new(id: String) -> Self {
        Self {
            id,
            last_warning_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Whether a client error may be logged as a warning now.
    fn warning_due(&self) -> bool {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let interval = CLIENT_WARNING_INTERVAL.as_millis() as u64;
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= interval)
            && self
                .last_warning_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

impl ClientContext for DeliveryContext {
    /// librdkafka's own log lines. Its connection failures also arrive as client errors
    /// ([`Self::error`]), which are the ones logged as warnings.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        crate::kafka::log_line(&format!("output {}", self.id), level, fac, message);
    }

    /// Broker connection failures and the like: events wait in the buffer meanwhile, so they
    /// are warnings, not errors (ferry's ERROR lines mean data loss or operator action), and
    /// at most one per [`CLIENT_WARNING_INTERVAL`].
    fn error(&self, error: KafkaError, reason: &str) {
        if self.warning_due() {
            tracing::warn!("output {}: Kafka client: {error}: {reason}", self.id);
        } else {
            tracing::debug!("output {}: Kafka client: {error}: {reason}", self.id);
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Arc<Pending>) {
        match result {
            Ok(message) => {
                let p = pending.topic.partition(message.partition());
                p.delivered.fetch_add(1, Ordering::Relaxed);
                p.delivered_bytes
                    .fetch_add(message.payload_len() as u64, Ordering::Relaxed);
            }
            Err((error, message)) => {
                let p = pending.topic.partition(message.partition());
                p.errors.fetch_add(1, Ordering::Relaxed);
                pending.chunk.fail(error);
            }
        }
        pending.topic.in_flight.fetch_sub(1, Ordering::Relaxed);
        pending.chunk.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_chunk_is_delivered_only_when_every_message_is_settled() {
        let d = ChunkDelivery::default();
        d.add();
        d.add();
        d.settle();
        let waited =
            tokio::time::timeout(Duration::from_millis(50), d.wait(Duration::from_secs(5)));
        assert!(waited.await.is_err(), "one message is still outstanding");
        d.settle();
        assert!(d.wait(Duration::from_secs(5)).await.is_ok());
    }

    #[tokio::test]
    async fn one_failed_message_fails_the_chunk_with_its_error() {
        let d = ChunkDelivery::default();
        d.add();
        d.add();
        d.fail(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut,
        ));
        d.settle();
        d.settle();
        let err = d.wait(Duration::from_secs(5)).await.err();
        assert!(
            matches!(
                err,
                Some(KafkaOutputError::Delivery {
                    failed: 1,
                    produced: 2,
                    ..
                })
            ),
            "{err:?}"
        );
        assert!(err.is_some_and(|e| e.is_retryable()));
    }

    #[tokio::test]
    async fn missing_reports_time_out_as_a_retryable_error() {
        let d = ChunkDelivery::default();
        d.add();
        let err = d.wait(Duration::from_millis(50)).await.err();
        assert!(matches!(
            err,
            Some(KafkaOutputError::Timeout { outstanding: 1, .. })
        ));
        assert!(err.is_some_and(|e| e.is_retryable()));
    }

    #[test]
    fn oversized_messages_are_not_retried() {
        let e = KafkaOutputError::Delivery {
            failed: 1,
            produced: 1,
            first: KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
        };
        assert!(!e.is_retryable());
    }
}
