//! `<buffer CHUNK_KEYS>`: Fluentd's buffer parameters read into a [`ferry_buffer::BufferConfig`].
//!
//! Names and defaults are Fluentd's (memory: 8 MiB chunks, 512 MiB in total; file: 256 MiB
//! chunks, 64 GiB in total), with one deliberate difference: a buffer whose `@type` is not
//! written is a **file** buffer (Fluentd's is memory), in `<root>/buffer/<@id>` (see
//! [`crate::root_dir`]), so an event an input acknowledged survives a crash on defaults.
//! `@type memory` stays available. ferry adds `durability` for file buffers: `fsync` (the default: an
//! event is acknowledged only once it is on disk) or `os_cache` (in the page cache: survives a
//! crash of ferry, not of the machine).
//!
//! Time slices (chunk key `time`) are cut in `timekey_zone`, as Fluentd cuts them: UTC with
//! `timekey_use_utc true`, else `timekey_zone` (an offset or a zone name), else the host's UTC
//! offset when ferry starts (Fluentd's `Time.now.strftime('%z')`: a fixed offset, so slices do
//! not move when the host's clocks change for daylight saving). The same zone writes the times
//! of file names.

use crate::root_dir::RootDir;
use crate::time::{Zone, zone};
use ferry_buffer::{
    BufferConfig, BufferType, Compress, Durability, FlushMode, OverflowAction, RetryConfig,
    RetryType,
};
use ferry_config::{ByteSize, Section};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How events are grouped into chunks (`<buffer tag,time,key1>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkKeys {
    pub tag: bool,
    pub time: bool,
    /// Record keys: events with different values of these keys go to different chunks.
    pub record: Vec<String>,
}

/// A checked `<buffer>` section.
#[derive(Debug, Clone)]
pub struct BufferSetup {
    pub config: BufferConfig,
    pub keys: ChunkKeys,
    pub flush_thread_count: usize,
    pub slow_flush_log_threshold: Duration,
    /// Where a memory buffer is written at a planned stop, and taken back from at the next
    /// start ([`crate::output::handoff`]).
    pub spill_dir: PathBuf,
    /// The zone time slices are cut in and file names' times written in (module docs).
    pub timekey_zone: Zone,
}

/// What the output wants by default: out_forward needs `tag` as a chunk key, file outputs
/// default to `time`.
#[derive(Debug, Clone, Copy)]
pub struct BufferDefaults {
    pub keys: &'static str,
    pub timekey: Option<Duration>,
}

/// Where the file buffer an output gets when `<buffer>`, its `@type` or its `path` is not
/// written lives.
#[derive(Debug, Clone, Copy)]
pub enum DefaultBuffer<'p> {
    /// `<root>/buffer/<@id>`.
    UnderRoot,
    /// out_file's: under a root directory an operator chose, else in
    /// `fallback_dir/.ferry-buffer/<@id>`, beside the files it writes.
    BesideFiles { fallback_dir: &'p Path },
}

impl BufferSetup {
    /// Reads `section` (the output's `<buffer>`, or `None` for an output that buffers by
    /// default without one). `output_id` and `root_dir` give a file buffer its default path.
    pub fn from_section(
        section: Option<&Section<'_>>,
        defaults: BufferDefaults,
        output_id: &str,
        root: &RootDir,
        has_secondary: bool,
    ) -> Self {
        let default = DefaultBuffer::UnderRoot;
        Self::from_section_with(section, defaults, default, output_id, root, has_secondary)
    }

    /// [`Self::from_section`] for an output whose default buffer is `default`.
    pub fn from_section_with(
        section: Option<&Section<'_>>,
        defaults: BufferDefaults,
        default: DefaultBuffer<'_>,
        output_id: &str,
        root: &RootDir,
        has_secondary: bool,
    ) -> Self {
        let default_path = match default {
            DefaultBuffer::BesideFiles { fallback_dir } if !root.is_explicit() => {
                default_buffer_dir(fallback_dir, output_id)
            }
            _ => root.buffer_dir(output_id),
        };
        let Some(s) = section else {
            let mut config = BufferConfig::file(default_path);
            config.timekey = defaults.timekey;
            config.retry.has_secondary = has_secondary;
            return Self {
                config,
                keys: parse_keys(defaults.keys, None),
                flush_thread_count: 1,
                slow_flush_log_threshold: Duration::from_secs(20),
                spill_dir: root.spill_dir(output_id),
                timekey_zone: Zone::host_offset_now(),
            };
        };
        let arg = if s.arg().trim().is_empty() {
            defaults.keys
        } else {
            s.arg()
        };
        let keys = parse_keys(arg, Some(s));
        let mut config = match s.enum_or("@type", &["memory", "file"], "file") {
            "file" => {
                let path = s.str("path").map_or(default_path, PathBuf::from);
                let mut c = BufferConfig::file(path);
                c.durability = match s.enum_or("durability", &["fsync", "os_cache"], "fsync") {
                    "os_cache" => Durability::OsCache,
                    _ => Durability::Fsync,
                };
                c
            }
            _ => BufferConfig::memory(),
        };
        config.chunk_limit_size = s
            .size_or("chunk_limit_size", ByteSize(config.chunk_limit_size))
            .0;
        config.chunk_limit_records = s.opt_u64("chunk_limit_records");
        config.total_limit_size = s
            .size_or("total_limit_size", ByteSize(config.total_limit_size))
            .0;
        config.queue_limit_length = s.opt_u64("queue_limit_length");
        config.chunk_full_threshold = s.f64_or("chunk_full_threshold", 0.95);
        config.flush_mode = match s.enum_or(
            "flush_mode",
            &["default", "interval", "immediate", "lazy"],
            "default",
        ) {
            "interval" => FlushMode::Interval,
            "immediate" => FlushMode::Immediate,
            "lazy" => FlushMode::Lazy,
            _ => FlushMode::Default,
        };
        config.flush_interval = s.duration_or("flush_interval", Duration::from_secs(60));
        config.flush_at_shutdown = s.opt_bool("flush_at_shutdown");
        config.overflow_action = match s.enum_or(
            "overflow_action",
            &["throw_exception", "block", "drop_oldest_chunk"],
            "throw_exception",
        ) {
            "block" => OverflowAction::Block,
            "drop_oldest_chunk" => OverflowAction::DropOldestChunk,
            _ => OverflowAction::ThrowException,
        };
        config.compress = match s.enum_or("compress", &["text", "gzip"], "text") {
            "gzip" => Compress::Gzip,
            _ => Compress::Text,
        };
        config.timekey = s.opt_duration("timekey").or(defaults.timekey);
        if keys.time && config.timekey.is_none() {
            s.error(None, "'time' is a chunk key but 'timekey' is not set");
        }
        config.timekey_wait = s.duration_or("timekey_wait", Duration::from_secs(600));
        let named_zone = zone::read_zone(s, "timekey_zone");
        let timekey_zone = if s.bool_or("timekey_use_utc", false) {
            Zone::fixed(0)
        } else {
            named_zone.unwrap_or_else(Zone::host_offset_now)
        };
        config.retry = read_retry(s, has_secondary);
        // Accepted for Fluentd compatibility; ferry's flushers are woken by the buffer itself.
        let _ = s.opt_duration("flush_thread_interval");
        let _ = s.opt_duration("flush_thread_burst_interval");
        let _ = s.opt_duration("delayed_commit_timeout");
        let polling = "ferry's flushers wake when a chunk is queued or comes due; they do not poll";
        s.no_effect("flush_thread_interval", polling);
        s.no_effect("flush_thread_burst_interval", polling);
        s.no_effect(
            "delayed_commit_timeout",
            "a chunk is settled when its write returns (acks included); the forward output's wait is ack_response_timeout",
        );
        s.no_effect_unless(
            "disable_chunk_backup",
            false,
            "ferry never discards a chunk it cannot deliver: it goes to <secondary>, else to the quarantine directory",
        );
        let flush_thread_count = s.u64_or("flush_thread_count", 1);
        if flush_thread_count == 0 || flush_thread_count > 64 {
            s.error(
                Some("flush_thread_count"),
                "flush_thread_count must be 1 to 64",
            );
        }
        let slow_flush_log_threshold =
            s.duration_or("slow_flush_log_threshold", Duration::from_secs(20));
        if let Err(e) = config.validate() {
            s.error(None, format!("invalid buffer: {e}"));
        }
        Self {
            config,
            keys,
            flush_thread_count: flush_thread_count.clamp(1, 64) as usize,
            slow_flush_log_threshold,
            spill_dir: root.spill_dir(output_id),
            timekey_zone,
        }
    }

    pub fn is_file(&self) -> bool {
        matches!(self.config.buffer_type, BufferType::File { .. })
    }
}

fn read_retry(s: &Section<'_>, has_secondary: bool) -> RetryConfig {
    let d = RetryConfig::default();
    RetryConfig {
        retry_type: match s.enum_or(
            "retry_type",
            &["exponential_backoff", "periodic"],
            "exponential_backoff",
        ) {
            "periodic" => RetryType::Periodic,
            _ => RetryType::ExponentialBackoff,
        },
        retry_wait: s.duration_or("retry_wait", d.retry_wait),
        retry_exponential_backoff_base: s.f64_or(
            "retry_exponential_backoff_base",
            d.retry_exponential_backoff_base,
        ),
        retry_max_interval: s.opt_duration("retry_max_interval"),
        retry_randomize: s.bool_or("retry_randomize", d.retry_randomize),
        retry_timeout: s.duration_or("retry_timeout", d.retry_timeout),
        retry_max_times: s
            .opt_u64("retry_max_times")
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        retry_forever: s.bool_or("retry_forever", d.retry_forever),
        retry_secondary_threshold: s
            .f64_or("retry_secondary_threshold", d.retry_secondary_threshold),
        has_secondary,
    }
}

fn parse_keys(arg: &str, section: Option<&Section<'_>>) -> ChunkKeys {
    let mut keys = ChunkKeys::default();
    for key in arg.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        match key {
            "tag" => keys.tag = true,
            "time" => keys.time = true,
            k if k.starts_with('$') => {
                if let Some(s) = section {
                    s.error(None, format!("chunk key '{k}': record accessor syntax is not supported; name the top-level key"));
                }
            }
            k => keys.record.push(k.to_string()),
        }
    }
    keys
}

/// Where the default buffer of an output lives when there is no `root_dir`: beside the
/// output's files (`fallback`), in `.ferry-buffer/<id>`.
pub fn default_buffer_dir(fallback: &Path, id: &str) -> PathBuf {
    fallback.join(".ferry-buffer").join(id)
}

impl BufferSetup {
    /// The start of the time slice `sec` falls in: Fluentd's `calculate_timekey`, a multiple of
    /// `timekey` in `timekey_zone`'s local time.
    pub fn time_slice(&self, sec: u32) -> i64 {
        let timekey = self.config.timekey.map_or(1, |d| d.as_secs().max(1));
        let timekey = i64::try_from(timekey).unwrap_or(i64::MAX);
        let sec = i64::from(sec);
        let offset = i64::from(self.timekey_zone.offset_at(sec));
        sec - (sec + offset).rem_euclid(timekey)
    }
}

impl ChunkKeys {
    pub fn is_tag_only(&self) -> bool {
        self.tag && !self.time && self.record.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::read_section;

    fn setup(body: &str) -> BufferSetup {
        let text = format!("<buffer tag,time>\n{body}\n</buffer>\n");
        let root = RootDir::resolve(Some(Path::new("/r")), None);
        let defaults = BufferDefaults {
            keys: "tag",
            timekey: None,
        };
        read_section(&text, |s| {
            BufferSetup::from_section(Some(s), defaults, "out", &root, true)
        })
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn every_parameter_is_read_into_the_buffer_config() {
        let b = setup(
            "@type file\npath /b/out\ndurability os_cache\nchunk_limit_size 1m\n\
             chunk_limit_records 500\ntotal_limit_size 64m\nchunk_full_threshold 0.5\n\
             flush_mode interval\nflush_interval 5s\nflush_at_shutdown true\n\
             overflow_action drop_oldest_chunk\ncompress gzip\ntimekey 1h\ntimekey_wait 30s\n\
             retry_type periodic\nretry_wait 2s\nretry_exponential_backoff_base 3\n\
             retry_max_interval 1m\nretry_randomize false\nretry_timeout 1h\n\
             retry_max_times 7\nretry_forever true\nretry_secondary_threshold 0.5\n\
             flush_thread_count 3\nslow_flush_log_threshold 2s",
        );
        let c = &b.config;
        assert_eq!(
            c.buffer_type,
            BufferType::File {
                path: PathBuf::from("/b/out")
            }
        );
        assert_eq!(c.durability, Durability::OsCache);
        assert_eq!(c.chunk_limit_size, 1024 * 1024);
        assert_eq!(c.chunk_limit_records, Some(500));
        assert_eq!(c.total_limit_size, 64 * 1024 * 1024);
        assert_eq!(c.chunk_full_threshold, 0.5);
        assert_eq!(c.flush_mode, FlushMode::Interval);
        assert_eq!(c.flush_interval, Duration::from_secs(5));
        assert_eq!(c.flush_at_shutdown, Some(true));
        assert_eq!(c.overflow_action, OverflowAction::DropOldestChunk);
        assert_eq!(c.compress, Compress::Gzip);
        assert_eq!(c.timekey, Some(Duration::from_secs(3600)));
        assert_eq!(c.timekey_wait, Duration::from_secs(30));
        let r = &c.retry;
        assert_eq!(r.retry_type, RetryType::Periodic);
        assert_eq!(r.retry_wait, Duration::from_secs(2));
        assert_eq!(r.retry_exponential_backoff_base, 3.0);
        assert_eq!(r.retry_max_interval, Some(Duration::from_secs(60)));
        assert!(!r.retry_randomize);
        assert_eq!(r.retry_timeout, Duration::from_secs(3600));
        assert_eq!(r.retry_max_times, Some(7));
        assert!(r.retry_forever);
        assert_eq!(r.retry_secondary_threshold, 0.5);
        assert!(r.has_secondary);
        assert_eq!(b.flush_thread_count, 3);
        assert_eq!(b.slow_flush_log_threshold, Duration::from_secs(2));
        let queue = setup("@type memory\nchunk_limit_size 1m\nqueue_limit_length 4\ntimekey 1h");
        assert_eq!(queue.config.queue_limit_length, Some(4));
        assert_eq!(queue.config.buffer_type, BufferType::Memory);
    }

    #[test]
    fn a_buffer_without_type_or_path_is_a_file_buffer_under_the_root_directory() {
        let b = setup("timekey 1h");
        assert_eq!(
            b.config.buffer_type,
            BufferType::File {
                path: PathBuf::from("/r/buffer/out")
            }
        );
        assert_eq!(b.config.durability, Durability::Fsync);
    }
}
