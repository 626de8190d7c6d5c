//! Buffer parameters with Fluentd's names and defaults, and their validation.

use std::path::PathBuf;
use std::time::Duration;

use crate::retry::{RetryConfig, RetryConfigError, RetryPolicy};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Where chunks live (`@type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BufferType {
    /// `@type memory`: chunks are lost when the process dies.
    Memory,
    /// `@type file`: one payload file and one journal file per chunk under `path`.
    File { path: PathBuf },
}

/// What is durable when [`crate::Buffer::append`] returns `Ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Memory buffer: the append is in the bounded in-memory queue. A crash loses it.
    Memory,
    /// File buffer: payload and journal are `fdatasync`ed before the append returns; concurrent
    /// appends to one chunk share one sync (group commit). Survives a power cut.
    Fsync,
    /// File buffer: written to the OS page cache only. Survives a process kill, not a power cut;
    /// after a power cut recovery truncates whatever tail did not reach the disk.
    OsCache,
}

/// When staged chunks are queued (`flush_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlushMode {
    /// `lazy` when `timekey` is set, else `interval`.
    #[default]
    Default,
    /// Queue a chunk when it is full or older than `flush_interval`.
    Interval,
    /// Queue each chunk right after the append that created it.
    Immediate,
    /// Queue a chunk when it is full or, with `timekey`, once `timekey + timekey_wait` passed.
    Lazy,
}

/// What an append does when the buffer holds `total_limit_size` bytes (`overflow_action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverflowAction {
    /// Refuse the append with [`crate::AppendError::Overflow`]. Gains: the input learns at once
    /// and can refuse its client (no ack), nothing buffered is lost, no thread waits.
    /// Loses: the events are not taken; the sender must retry (Fluentd's default).
    #[default]
    ThrowException,
    /// Wait until acks free space (or the deadline passes). Gains: back-pressure that loses
    /// nothing. Loses: the appending thread (and the input behind it) stalls while the
    /// destination is down.
    Block,
    /// Delete the oldest queued chunk (or, with nothing queued, the oldest staged one) to make
    /// room; every drop is counted and returned. Gains: fresh events keep flowing and the
    /// input never stalls. Loses: the dropped chunk's events, for good.
    DropOldestChunk,
}

/// `compress`: how each append is stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compress {
    /// Bytes as given.
    #[default]
    Text,
    /// Each append is one gzip member, so the chunk payload is a multi-member gzip stream.
    Gzip,
}

/// All buffer parameters. Build with [`BufferConfig::memory`] or [`BufferConfig::file`] and
/// adjust fields; [`crate::Buffer::open`] validates.
#[derive(Clone, Debug)]
pub struct BufferConfig {
    pub buffer_type: BufferType,
    pub durability: Durability,
    pub chunk_limit_size: u64,
    pub chunk_limit_records: Option<u64>,
    pub chunk_full_threshold: f64,
    pub total_limit_size: u64,
    /// If set, `total_limit_size` becomes `chunk_limit_size × queue_limit_length`.
    pub queue_limit_length: Option<u64>,
    pub flush_mode: FlushMode,
    pub flush_interval: Duration,
    /// `None`: true for memory, false for file (Fluentd's default).
    pub flush_at_shutdown: Option<bool>,
    /// Length of a time slice when `time` is a chunk key.
    pub timekey: Option<Duration>,
    pub timekey_wait: Duration,
    pub overflow_action: OverflowAction,
    /// Longest wait of a blocked append (`None`: until space frees or the buffer closes).
    pub overflow_block_timeout: Option<Duration>,
    pub compress: Compress,
    pub retry: RetryConfig,
    /// Memory buffer: where [`crate::Buffer::quarantine`] writes chunks (else only reported).
    pub quarantine_dir: Option<PathBuf>,
    /// Adjacent appends are reported as one [`crate::Segment`] up to this size, which bounds the
    /// per-chunk bookkeeping whatever the append size.
    pub segment_target_size: u64,
}

impl BufferConfig {
    /// `@type memory` with Fluentd's defaults.
    pub fn memory() -> Self {
        BufferConfig {
            buffer_type: BufferType::Memory,
            durability: Durability::Memory,
            chunk_limit_size: 8 * MIB,
            chunk_limit_records: None,
            chunk_full_threshold: 0.95,
            total_limit_size: 512 * MIB,
            queue_limit_length: None,
            flush_mode: FlushMode::Default,
            flush_interval: Duration::from_secs(60),
            flush_at_shutdown: None,
            timekey: None,
            timekey_wait: Duration::from_secs(600),
            overflow_action: OverflowAction::ThrowException,
            overflow_block_timeout: None,
            compress: Compress::Text,
            retry: RetryConfig::default(),
            quarantine_dir: None,
            segment_target_size: MIB,
        }
    }

    /// `@type file` under `path` with Fluentd's defaults and [`Durability::Fsync`].
    pub fn file(path: impl Into<PathBuf>) -> Self {
        BufferConfig {
            buffer_type: BufferType::File { path: path.into() },
            durability: Durability::Fsync,
            chunk_limit_size: 256 * MIB,
            total_limit_size: 64 * GIB,
            ..BufferConfig::memory()
        }
    }

    /// Checks the parameters and resolves the defaults that depend on others.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        let file = matches!(self.buffer_type, BufferType::File { .. });
        match (file, self.durability) {
            (false, Durability::Memory) | (true, Durability::Fsync | Durability::OsCache) => {}
            (_, durability) => return Err(ConfigError::Durability { durability, file }),
        }
        if self.chunk_limit_size == 0 {
            return Err(ConfigError::Zero("chunk_limit_size"));
        }
        if self.chunk_limit_records == Some(0) {
            return Err(ConfigError::Zero("chunk_limit_records"));
        }
        if self.segment_target_size == 0 {
            return Err(ConfigError::Zero("segment_target_size"));
        }
        let t = self.chunk_full_threshold;
        if !(t > 0.0 && t <= 1.0) {
            return Err(ConfigError::FullThreshold(t));
        }
        let total = match self.queue_limit_length {
            Some(0) => return Err(ConfigError::Zero("queue_limit_length")),
            Some(n) => self.chunk_limit_size.saturating_mul(n),
            None => self.total_limit_size,
        };
        if total < self.chunk_limit_size {
            return Err(ConfigError::TotalBelowChunk {
                total,
                chunk: self.chunk_limit_size,
            });
        }
        // `flush_interval 0` (Fluentd accepts it): a staged chunk is due at once, queued at the
        // flusher's next wake.
        if self.timekey.is_some_and(|t| t.as_secs() == 0) {
            return Err(ConfigError::Zero("timekey"));
        }
        let policy = RetryPolicy::try_new(&self.retry)?;
        let flush_mode = match self.flush_mode {
            FlushMode::Default if self.timekey.is_some() => FlushMode::Lazy,
            FlushMode::Default => FlushMode::Interval,
            other => other,
        };
        Ok(ValidConfig {
            total_limit_size: total,
            flush_mode,
            flush_at_shutdown: self.flush_at_shutdown.unwrap_or(!file),
            policy,
            config: self.clone(),
        })
    }
}

/// A checked [`BufferConfig`] with its defaults resolved.
#[derive(Clone, Debug)]
pub struct ValidConfig {
    pub total_limit_size: u64,
    /// Never [`FlushMode::Default`].
    pub flush_mode: FlushMode,
    pub flush_at_shutdown: bool,
    pub policy: RetryPolicy,
    pub config: BufferConfig,
}

impl ValidConfig {
    /// Bytes at which a chunk counts as full.
    pub fn full_bytes(&self) -> u64 {
        (self.config.chunk_limit_size as f64 * self.config.chunk_full_threshold).ceil() as u64
    }

    /// Records at which a chunk counts as full.
    pub fn full_records(&self) -> Option<u64> {
        let t = self.config.chunk_full_threshold;
        self.config
            .chunk_limit_records
            .map(|r| ((r as f64 * t).ceil() as u64).max(1))
    }
}

/// Why a [`BufferConfig`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} must be positive")]
    Zero(&'static str),
    #[error("chunk_full_threshold must be in (0, 1], got {0}")]
    FullThreshold(f64),
    #[error("total_limit_size {total} is smaller than chunk_limit_size {chunk}")]
    TotalBelowChunk { total: u64, chunk: u64 },
    #[error("durability {durability:?} does not apply to a {} buffer", if *file { "file" } else { "memory" })]
    Durability { durability: Durability, file: bool },
    #[error("retry parameters: {0}")]
    Retry(#[from] RetryConfigError),
    /// [`crate::Buffer::reconfigure`] with another buffer type or path.
    #[error("a running buffer cannot change its type or path")]
    TypeChange,
}

impl ConfigError {
    /// Configuration errors never go away by retrying.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_fluentd() {
        let m = BufferConfig::memory().validate().unwrap();
        assert_eq!(m.config.chunk_limit_size, 8 * MIB);
        assert_eq!(m.total_limit_size, 512 * MIB);
        assert!(m.flush_at_shutdown);
        assert_eq!(m.flush_mode, FlushMode::Interval);
        let f = BufferConfig::file("/x").validate().unwrap();
        assert_eq!(f.config.chunk_limit_size, 256 * MIB);
        assert_eq!(f.total_limit_size, 64 * GIB);
        assert!(!f.flush_at_shutdown);
    }

    #[test]
    fn timekey_makes_the_default_flush_mode_lazy() {
        let mut c = BufferConfig::memory();
        c.timekey = Some(Duration::from_secs(3600));
        assert_eq!(c.validate().unwrap().flush_mode, FlushMode::Lazy);
    }

    #[test]
    fn queue_limit_length_sets_the_total_limit() {
        let mut c = BufferConfig::memory();
        c.queue_limit_length = Some(4);
        assert_eq!(c.validate().unwrap().total_limit_size, 32 * MIB);
    }

    #[test]
    fn inconsistent_parameters_are_refused() {
        let mut c = BufferConfig::memory();
        c.durability = Durability::Fsync;
        assert!(matches!(c.validate(), Err(ConfigError::Durability { .. })));
        let mut c = BufferConfig::memory();
        c.total_limit_size = MIB;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TotalBelowChunk { .. })
        ));
        let mut c = BufferConfig::memory();
        c.chunk_full_threshold = 1.5;
        assert!(matches!(c.validate(), Err(ConfigError::FullThreshold(_))));
        let mut c = BufferConfig::memory();
        c.retry.retry_wait = Duration::ZERO;
        assert!(matches!(c.validate(), Err(ConfigError::Retry(_))));
    }
}
