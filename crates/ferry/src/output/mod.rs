//! Outputs: where routed events go.
//!
//! An [`Output`] is a [`Sink`] (the destination: a closed enum dispatched with `match`) and,
//! when the configuration has a `<buffer>` section (or the sink always buffers), a
//! [`buffered::Buffered`] path in front of it. [`Output::emit`] returns when the events are
//! *committed*: written, for an unbuffered sink; in the buffer, for a buffered one. Inputs
//! acknowledge only after that.

pub mod buffer_section;
pub mod buffered;
mod error;
pub mod feed;
pub mod file;
pub mod flusher;

pub mod forward;
pub mod handoff;
pub mod http;
pub mod kafka;
mod metrics;
pub mod null;
pub mod placeholders;
pub mod progress;
pub mod refusal;
pub mod scribe;
pub mod secondary_file;
pub mod segment;
pub mod sink;
mod split;
pub mod stdout;

use crate::event::Batch;
use crate::root_dir::RootDir;
use crate::task::Tasks;
use buffer_section::{BufferDefaults, BufferSetup};
pub use error::SinkError;
use ferry_config::Section;
pub use sink::Sink;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Output plugin types this build of ferry provides (`copy` and `relabel` are read by the
/// router, see [`crate::router::config`]).
pub const OUTPUT_TYPES: &[&str] = &[
    "stdout",
    "null",
    "file",
    "forward",
    "kafka2",
    "http",
    "scribe",
    "copy",
    "roundrobin",
    "relabel",
];

/// Fluentd output types that ferry does not provide (yet): refused with a clear message.
pub const FOREIGN_OUTPUT_TYPES: &[&str] = &[
    "kafka",
    "s3",
    "elasticsearch",
    "opensearch",
    "rewrite_tag_filter",
];

/// The destination part of a `<match>`.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    Stdout(stdout::StdoutConfig),
    Null(null::NullConfig),
    File(file::FileConfig),
    Forward(forward::ForwardConfig),
    SecondaryFile(secondary_file::SecondaryFileConfig),
    Kafka(Box<kafka::KafkaConfig>),
    Http(Box<http::HttpOutputConfig>),
    Scribe(Box<scribe::ScribeOutputConfig>),
}

impl SinkConfig {
    /// The `@type` it was configured with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Stdout(_) => "stdout",
            Self::Null(_) => "null",
            Self::File(_) => "file",
            Self::Forward(_) => "forward",
            Self::SecondaryFile(_) => "secondary_file",
            Self::Kafka(_) => "kafka2",
            Self::Http(_) => "http",
            Self::Scribe(_) => "scribe",
        }
    }
}

/// A parsed `<match>` output.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    pub sink: SinkConfig,
    /// `Some` when events go through a buffer.
    pub buffer: Option<BufferSetup>,
    /// `<secondary>`: where chunks go that the sink never took.
    pub secondary: Option<SinkConfig>,
    /// [`crate::plugin::fingerprint`] of the section: a reload keeps an output whose
    /// fingerprint did not change running as it is.
    pub fingerprint: String,
}

impl OutputConfig {
    /// Builds the output named by the section's `@type`; reports an unknown type. The caller
    /// finishes the section, which reports unknown parameters.
    pub fn from_section(section: &Section<'_>, id: &str, root: &RootDir) -> Option<Self> {
        if section.plugin_type() == Some("secondary_file") {
            section.error(
                Some("@type"),
                "secondary_file can only be used in a <secondary> section",
            );
            return None;
        }
        let kind =
            crate::plugin::plugin_type(section, "output", OUTPUT_TYPES, FOREIGN_OUTPUT_TYPES)?;
        let has_secondary = section
            .element()
            .children
            .iter()
            .any(|c| c.name == "secondary");
        let (sink, buffer) = match kind {
            "file" => {
                let (c, setup) = file::FileConfig::from_section(section, id, root, has_secondary)?;
                (SinkConfig::File(c), Some(setup))
            }
            "forward" => {
                let f = forward::ForwardConfig::from_section(section);
                // The forward output always buffers, with `tag` as a chunk key (Fluentd's rule).
                let buffer_section = section.child("buffer");
                let defaults = BufferDefaults {
                    keys: "tag",
                    timekey: None,
                };
                let mut setup = BufferSetup::from_section(
                    buffer_section.as_ref(),
                    defaults,
                    id,
                    root,
                    has_secondary,
                );
                if let Some(b) = buffer_section {
                    b.finish();
                }
                if !setup.keys.tag {
                    section.error(None, "the forward output needs 'tag' among its chunk keys");
                }
                if f.compress == forward::config::Compress::Gzip {
                    setup.config.compress = ferry_buffer::Compress::Gzip;
                }
                (SinkConfig::Forward(f), Some(setup))
            }
            "kafka2" => {
                let config = kafka::KafkaConfig::from_section(section);
                let setup = kafka::buffer_setup(section, &config, id, root, has_secondary);
                (SinkConfig::Kafka(Box::new(config)), Some(setup))
            }
            "scribe" => {
                let c = scribe::ScribeOutputConfig::from_section(section);
                // Like the forward output: always buffered, the tag (the category) a chunk key.
                let buffer_section = section.child("buffer");
                let defaults = BufferDefaults {
                    keys: "tag",
                    timekey: None,
                };
                let setup = BufferSetup::from_section(
                    buffer_section.as_ref(),
                    defaults,
                    id,
                    root,
                    has_secondary,
                );
                if let Some(b) = buffer_section {
                    b.finish();
                }
                if !setup.keys.tag {
                    section.error(
                        None,
                        "the scribe output needs 'tag' among its chunk keys (it is the category)",
                    );
                }
                (SinkConfig::Scribe(Box::new(c)), Some(setup))
            }
            "http" => {
                let (c, setup) =
                    http::HttpOutputConfig::from_section(section, id, root, has_secondary)?;
                (SinkConfig::Http(Box::new(c)), Some(setup))
            }
            "stdout" | "null" => {
                let sink = match kind {
                    "stdout" => SinkConfig::Stdout(stdout::StdoutConfig::from_section(section)),
                    _ => SinkConfig::Null(null::NullConfig::from_section(section)),
                };
                // stdout and null buffer only when asked to, as in Fluentd.
                let buffer = section.child("buffer").map(|b| {
                    let defaults = BufferDefaults {
                        keys: "tag",
                        timekey: None,
                    };
                    let setup =
                        BufferSetup::from_section(Some(&b), defaults, id, root, has_secondary);
                    b.finish();
                    setup
                });
                (sink, buffer)
            }
            other => {
                section.error(
                    Some("@type"),
                    format!("{other} can only be used directly in <match>"),
                );
                return None;
            }
        };
        let secondary = section.child("secondary").and_then(|s| {
            let read = read_secondary(&s, buffer.as_ref(), id, root);
            match read {
                Some(_) => s.finish(),
                None => s.abandon(),
            }
            read
        });
        let fingerprint =
            crate::plugin::fingerprint(section.element(), &root.path.display().to_string());
        Some(Self {
            sink,
            buffer,
            secondary,
            fingerprint,
        })
    }
}

/// A `<secondary>` section: `secondary_file` (or `stdout`/`null`) for a buffered output.
fn read_secondary(
    s: &Section<'_>,
    buffer: Option<&BufferSetup>,
    id: &str,
    root: &RootDir,
) -> Option<SinkConfig> {
    let Some(buffer) = buffer else {
        s.error(
            None,
            "<secondary> needs a buffered output: add a <buffer> section",
        );
        return None;
    };
    let kinds = &["secondary_file", "file", "stdout", "null"];
    match crate::plugin::plugin_type(s, "secondary output", kinds, &["forward"])? {
        // The file output's own buffer settings do not apply: it writes the primary's chunks.
        "file" => file::FileConfig::from_section(s, &format!("{id}.secondary"), root, false)
            .map(|(c, _)| SinkConfig::File(c)),
        "secondary_file" => secondary_file::SecondaryFileConfig::from_section(s, buffer)
            .map(SinkConfig::SecondaryFile),
        "stdout" => Some(SinkConfig::Stdout(stdout::StdoutConfig::from_section(s))),
        _ => Some(SinkConfig::Null(null::NullConfig::from_section(s))),
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
        /// Set when the buffer was full: resolves once it freed room after the refusal.
        room: Option<buffered::Room>,
    },
    #[error("output {id}: {reason}")]
    Split { id: String, reason: String },
    /// The events passed through more labels than ferry follows (`relabel` in a cycle).
    #[error("events passed through {hops} labels, the last {label}: is there a relabel loop?")]
    LabelLoop { label: String, hops: u8 },
    #[error("shutting down")]
    ShuttingDown,
    /// The input's `@label` is not in the running configuration.
    #[error("label {label} is not defined")]
    NoLabel { label: String },
}

impl EmitError {
    /// For a full buffer: a signal that resolves once that buffer freed room after the
    /// refusal, so an input that can hold its sender retries then, not on a timer.
    pub fn room(&self) -> Option<buffered::Room> {
        match self {
            Self::Buffer { room, .. } => room.clone(),
            _ => None,
        }
    }

    /// Whether the same events may be committed later (the buffer has room again, the disk
    /// recovered, a new process runs). A non-retryable refusal goes to `@ERROR` if defined.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Sink { source, .. } => source.is_retryable(),
            Self::Buffer { source, .. } => {
                source.is_retryable() || matches!(source, ferry_buffer::AppendError::Closed)
            }
            Self::Split { .. } | Self::LabelLoop { .. } | Self::NoLabel { .. } => false,
            Self::ShuttingDown => true,
        }
    }
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
    /// Events a memory buffer could neither flush nor write to disk at a planned stop.
    pub lost_at_stop: AtomicU64,
    /// Refusal episodes (buffer full, disk error): see [`refusal`].
    pub refusals: refusal::Episodes,
}

/// A running output.
#[derive(Debug)]
pub struct Output {
    pub id: String,
    pub sink: Arc<Sink>,
    pub secondary: Option<Arc<Sink>>,
    pub buffered: Option<Arc<buffered::Buffered>>,
    pub metrics: Arc<OutputMetrics>,
    /// Set when a reload gave this output's buffer to its successor: its flushers stop
    /// without flushing at shutdown (the successor sends the chunks).
    pub handed_over: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the buffer is the predecessor's, not yet taken over ([`Self::take_over`]).
    adopted: bool,
}

impl Output {
    /// Builds the sink and opens (recovers) the buffer.
    pub async fn build(id: String, config: &OutputConfig) -> anyhow::Result<Self> {
        Self::build_after(id, config, None).await
    }

    /// [`Self::build`] for the successor of `previous` at a reload: its counters continue, and
    /// a buffer of the same type and path is the predecessor's own (adopted, not reopened;
    /// [`Self::take_over`] makes it this output's). Nothing of `previous` changes here, so a
    /// reload that fails later leaves it as it was.
    pub async fn build_after(
        id: String,
        config: &OutputConfig,
        previous: Option<&Output>,
    ) -> anyhow::Result<Self> {
        let sink = Arc::new(Sink::build(&id, &config.sink));
        sink.prepare()
            .await
            .map_err(|e| anyhow::anyhow!("output {id}: {e}"))?;
        let secondary = config
            .secondary
            .as_ref()
            .map(|s| Arc::new(Sink::build(&format!("{id}.secondary"), s)));
        let same_buffer = |setup: &BufferSetup| {
            previous
                .and_then(|p| p.buffered.as_ref())
                .filter(|b| b.buffer.config().config.buffer_type == setup.config.buffer_type)
                .map(|b| Arc::clone(&b.buffer))
        };
        let mut adopted = false;
        let buffered = match &config.buffer {
            Some(setup) => match same_buffer(setup) {
                Some(buffer) => {
                    adopted = true;
                    Some(Arc::new(buffered::Buffered::adopt(buffer, setup.clone())))
                }
                None => Some(Arc::new(
                    buffered::Buffered::open(&id, setup.clone()).await?,
                )),
            },
            None => None,
        };
        if let (Sink::File(f), Some(b), false) = (&*sink, &buffered, adopted) {
            // Before any flush: an append a crash interrupted is cut back first (its chunk is
            // written again). If that fails, starting would leave it to be cut later, over
            // what other chunks wrote after it.
            f.undo_interrupted(&b.buffer).await.map_err(|e| {
                anyhow::anyhow!("output {id}: cannot undo an interrupted append: {e}")
            })?;
        }
        Ok(Self {
            id,
            sink,
            secondary,
            buffered,
            metrics: previous.map_or_else(Arc::default, |p| Arc::clone(&p.metrics)),
            handed_over: Arc::default(),
            adopted,
        })
    }

    /// Whether this output's buffer is its predecessor's.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Makes an adopted buffer this output's (see [`Self::build_after`]).
    pub fn take_over(&self) -> Result<(), ferry_buffer::ConfigError> {
        match &self.buffered {
            Some(b) if self.adopted => b.take_over(),
            _ => Ok(()),
        }
    }

    /// Spawns the flushers of a buffered output.
    pub fn start(&self, tasks: &Tasks) {
        self.sink.start(tasks);
        let Some(buffered) = &self.buffered else {
            return;
        };
        if matches!(&*self.sink, Sink::Null(n) if n.never_flush) {
            return;
        }
        let flusher = Arc::new(flusher::Flusher {
            id: self.id.clone(),
            buffered: Arc::clone(buffered),
            sink: Arc::clone(&self.sink),
            secondary: self.secondary.clone(),
            metrics: Arc::clone(&self.metrics),
            failures: crate::logging::Episode::default(),
            handed_over: Arc::clone(&self.handed_over),
        });
        for n in 0..buffered.setup.flush_thread_count {
            let flusher = Arc::clone(&flusher);
            tasks.spawn(format!("output {} flusher {n}", self.id), move |h| {
                flusher.run(h)
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
        let now = std::time::Instant::now();
        match &result {
            Err(e) => {
                m.emit_refused.fetch_add(1, Ordering::Relaxed);
                if m.refusals.refused(now) {
                    tracing::error!(
                        "{e}; events are refused (not acknowledged, so clients re-send) until this clears; further refusals are counted in ferry_output_emit_refused_total"
                    );
                }
            }
            Ok(()) => {
                if let Some(end) = m.refusals.accepted(now) {
                    tracing::warn!(
                        "output {}: accepting events again after {} refusals over {:.1}s",
                        self.id,
                        end.refused,
                        end.lasted.as_secs_f64()
                    );
                }
            }
        }
        result
    }

    pub fn type_name(&self) -> &'static str {
        self.sink.type_name()
    }
}
