//! Outputs: where routed events go.
//!
//! An [`Output`] is a [`Sink`] (the destination: a closed enum dispatched with `match`) and,
//! when the configuration has a `<buffer>` section (or the sink always buffers), a
//! [`buffered::Buffered`] path in front of it. [`Output::emit`] returns when the events are
//! *committed*: written, for an unbuffered sink; in the buffer, for a buffered one. Inputs
//! acknowledge only after that.

pub mod buffer_section;
pub mod buffered;
pub mod format;
pub mod kafka;
pub mod null;
pub mod sink;
pub mod stdout;

use crate::event::Batch;
use crate::task::Tasks;
use buffer_section::{BufferDefaults, BufferSetup};
use ferry_config::Section;
pub use sink::{Sink, SinkError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Output plugin types this build of ferry provides.
pub const OUTPUT_TYPES: &[&str] = &["stdout", "null", "kafka2"];

/// Fluentd output types that ferry does not provide (yet): refused with a clear message.
pub const FOREIGN_OUTPUT_TYPES: &[&str] = &[
    "file",
    "forward",
    "kafka",
    "copy",
    "relabel",
    "secondary_file",
    "s3",
    "elasticsearch",
    "opensearch",
    "http",
    "exec",
    "rewrite_tag_filter",
    "roundrobin",
];

/// The destination part of a `<match>`.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    Stdout(stdout::StdoutConfig),
    Null(null::NullConfig),
    Kafka(Box<kafka::KafkaConfig>),
}

/// A parsed `<match>` output.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    pub sink: SinkConfig,
    /// `Some` when events go through a buffer.
    pub buffer: Option<BufferSetup>,
}

impl OutputConfig {
    /// Builds the output named by the section's `@type`; reports an unknown type. The caller
    /// finishes the section, which reports unknown parameters.
    pub fn from_section(
        section: &Section<'_>,
        id: &str,
        root_dir: Option<&PathBuf>,
    ) -> Option<Self> {
        let kind =
            crate::plugin::plugin_type(section, "output", OUTPUT_TYPES, FOREIGN_OUTPUT_TYPES)?;
        let sink = match kind {
            "stdout" => SinkConfig::Stdout(stdout::StdoutConfig::from_section(section)),
            "null" => SinkConfig::Null(null::NullConfig::from_section(section)),
            "kafka2" => {
                let config = kafka::KafkaConfig::from_section(section);
                let buffer = kafka::buffer_setup(section, &config, id, root_dir);
                return Some(Self {
                    sink: SinkConfig::Kafka(Box::new(config)),
                    buffer: Some(buffer),
                });
            }
            _ => return None,
        };
        // stdout and null buffer only when asked to, as in Fluentd.
        let buffer = section.child("buffer").map(|b| {
            let defaults = BufferDefaults {
                keys: "tag",
                timekey: None,
            };
            let setup = BufferSetup::from_section(Some(&b), defaults, id, root_dir, false);
            b.finish();
            setup
        });
        Some(Self { sink, buffer })
    }
}

/// Why an output did not commit a batch. The input does not acknowledge; the client re-sends.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("output {id}: {source}")]
    Sink {
        id: String,
        #[source]
        source: SinkError,
    },
    #[error("output {id}: {source}")]
    Buffer {
        id: String,
        #[source]
        source: ferry_buffer::AppendError,
    },
    #[error("output {id}: {reason}")]
    Split { id: String, reason: String },
    #[error("shutting down")]
    ShuttingDown,
}

/// Counters of one output, under Fluentd's names (exported as
/// `fluentd_output_status_<name>`).
#[derive(Debug, Default)]
pub struct OutputMetrics {
    pub emit_count: AtomicU64,
    pub emit_records: AtomicU64,
    pub emit_size: AtomicU64,
    pub write_count: AtomicU64,
    pub write_secondary_count: AtomicU64,
    pub rollback_count: AtomicU64,
    pub num_errors: AtomicU64,
    pub retry_count: AtomicU64,
    pub slow_flush_count: AtomicU64,
    pub flush_time_ms: AtomicU64,
    pub emit_refused: AtomicU64,
}

/// A running output.
#[derive(Debug)]
pub struct Output {
    pub id: String,
    pub sink: Arc<Sink>,
    pub buffered: Option<Arc<buffered::Buffered>>,
    pub metrics: Arc<OutputMetrics>,
}

impl Output {
    /// Builds the sink and opens (recovers) the buffer.
    pub async fn build(id: String, config: &OutputConfig) -> anyhow::Result<Self> {
        let sink = Arc::new(Sink::build(&id, &config.sink));
        let buffered = match &config.buffer {
            Some(setup) => Some(Arc::new(
                buffered::Buffered::open(&id, setup.clone()).await?,
            )),
            None => None,
        };
        Ok(Self {
            id,
            sink,
            buffered,
            metrics: Arc::default(),
        })
    }

    /// Spawns the flushers of a buffered output.
    pub fn start(&self, tasks: &Tasks) {
        let Some(buffered) = &self.buffered else {
            return;
        };
        let ctx = Arc::new(buffered::FlushContext {
            id: self.id.clone(),
            buffered: Arc::clone(buffered),
            sink: Arc::clone(&self.sink),
            secondary: None,
            metrics: Arc::clone(&self.metrics),
        });
        for n in 0..buffered.setup.flush_thread_count {
            let ctx = Arc::clone(&ctx);
            tasks.spawn(format!("output {} flusher {n}", self.id), move |h| {
                buffered::flush_loop(ctx, h)
            });
        }
    }

    /// Commits `batch`; see the module docs.
    pub async fn emit(&self, batch: &Batch) -> Result<(), EmitError> {
        let m = &self.metrics;
        m.emit_count.fetch_add(1, Ordering::Relaxed);
        m.emit_records.fetch_add(batch.records, Ordering::Relaxed);
        m.emit_size
            .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
        let result = match &self.buffered {
            Some(b) => b.append(&self.id, batch).await,
            None => self
                .sink
                .write_batch(batch)
                .await
                .map(|()| {
                    m.write_count.fetch_add(1, Ordering::Relaxed);
                })
                .map_err(|source| EmitError::Sink {
                    id: self.id.clone(),
                    source,
                }),
        };
        if result.is_err() {
            m.emit_refused.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    pub fn type_name(&self) -> &'static str {
        self.sink.type_name()
    }
}
