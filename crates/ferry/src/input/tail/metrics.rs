//! Counters of one tail input. Names are Fluentd's (in_tail and fluent-plugin-prometheus'
//! `prometheus_tail_monitor`) where Fluentd has one; the hot path touches atomics only.

use crate::metrics::names::*;
use crate::metrics::{Exposition, load};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub const FILES_OPENED: &str = "fluentd_input_files_opened_total";
pub const FILES_CLOSED: &str = "fluentd_input_files_closed_total";
pub const FILES_ROTATED: &str = "fluentd_input_files_rotated_total";
pub const FILES_THROTTLED: &str = "fluentd_input_files_throttled_total";
pub const FILES_TRACKED: &str = "fluentd_input_files_tracked_count";
pub const FILE_POSITION: &str = "fluentd_tail_file_position";
pub const FILE_INODE: &str = "fluentd_tail_file_inode";
pub const POLLING_FALLBACKS: &str = "ferry_tail_polling_fallback_total";
pub const LONG_LINES_SKIPPED: &str = "ferry_tail_long_lines_skipped_total";
pub const UNMATCHED_LINES: &str = "ferry_tail_unmatched_lines_total";
pub const EMIT_RETRIES: &str = "ferry_tail_emit_retries_total";
pub const RECORDS_DROPPED: &str = "ferry_tail_records_dropped_total";

/// Position and inode of one tailed path (labelled by path when exported).
#[derive(Debug, Default)]
pub struct FileGauge {
    pub position: AtomicU64,
    pub inode: AtomicU64,
}

#[derive(Debug, Default)]
pub struct TailMetrics {
    pub files_opened: AtomicU64,
    pub files_closed: AtomicU64,
    pub files_rotated: AtomicU64,
    pub files_throttled: AtomicU64,
    pub files_tracked: AtomicI64,
    /// Times inotify could not be used (no instance, no watch, queue overflow) and polling
    /// took over.
    pub polling_fallbacks: AtomicU64,
    pub long_lines_skipped: AtomicU64,
    pub unmatched_lines: AtomicU64,
    /// Of those, the ones dropped (no `emit_unmatched_lines`).
    pub unparsed_dropped: AtomicU64,
    /// Lines a copytruncate rotation removed before they were read (counted where the
    /// rotated copy does not hold them any more).
    pub rotation_lost: AtomicU64,
    pub emit_records: AtomicU64,
    pub emit_retries: AtomicU64,
    /// Milliseconds the reads waited because an output's buffer was full.
    pub held_ms: AtomicU64,
    /// Records no output could ever take (larger than a buffer chunk): dropped and logged.
    pub records_dropped: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Lines a container runtime split, joined from their parts.
    pub partials_joined: AtomicU64,
    /// Joined lines cut at `max_line_size` (each piece emitted).
    pub partials_cut: AtomicU64,
    /// Parts whose end did not come within the timeout (or before their file ended).
    pub partials_unfinished: AtomicU64,
    /// Events the route's concat filter joined here; cut at the bound; given out on a timeout.
    pub concat_joined: AtomicU64,
    pub concat_cut: AtomicU64,
    pub concat_timeouts: AtomicU64,
    files: Mutex<BTreeMap<String, Arc<FileGauge>>>,
}

impl TailMetrics {
    /// The gauge of `path`, created on first use.
    pub fn gauge(&self, path: &str) -> Arc<FileGauge> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(files.entry(path.to_string()).or_default())
    }

    /// Forgets the gauge of a path no longer tailed.
    pub fn drop_gauge(&self, path: &str) {
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(path);
    }

    /// (path, position, inode) of every tailed path.
    pub fn file_positions(&self) -> Vec<(String, u64, u64)> {
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(p, g)| {
                (
                    p.clone(),
                    g.position.load(Ordering::Relaxed),
                    g.inode.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

// What the tail input exports (names in `crate::metrics::names`).
impl TailMetrics {
    /// Writes this input's samples (`id` is its plugin id).
    pub fn export(&self, id: &str, out: &mut Exposition) {
        let m = self;
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "tail")];
        out.counter(INPUT_EMIT_RECORDS, &labels, load(&m.emit_records));
        out.counter(INPUT_NUM_RECORDS, &labels, load(&m.emit_records));
        out.counter(TAIL_FILES_OPENED, &labels, load(&m.files_opened));
        out.counter(TAIL_FILES_CLOSED, &labels, load(&m.files_closed));
        out.counter(TAIL_FILES_ROTATED, &labels, load(&m.files_rotated));
        out.counter(TAIL_FILES_THROTTLED, &labels, load(&m.files_throttled));
        out.gauge(
            TAIL_FILES_TRACKED,
            &labels,
            m.files_tracked.load(Ordering::Relaxed) as f64,
        );
        out.counter(
            FERRY_TAIL_INOTIFY_FALLBACKS,
            &labels,
            load(&m.polling_fallbacks),
        );
        out.counter(FERRY_TAIL_LONG_LINES, &labels, load(&m.long_lines_skipped));
        out.counter(
            FERRY_TAIL_UNMATCHED_LINES,
            &labels,
            load(&m.unmatched_lines),
        );
        out.counter(FERRY_TAIL_EMIT_RETRIES, &labels, load(&m.emit_retries));
        out.counter_seconds(
            crate::metrics::names::FERRY_INPUT_HELD_SECONDS,
            &labels,
            load(&m.held_ms),
        );
        out.counter(
            FERRY_TAIL_RECORDS_DROPPED,
            &labels,
            load(&m.records_dropped),
        );
        out.counter(FERRY_TAIL_BYTES_READ, &labels, load(&m.bytes_read));
        out.counter(
            FERRY_TAIL_PARTIALS_JOINED,
            &labels,
            load(&m.partials_joined),
        );
        out.counter(FERRY_TAIL_PARTIALS_CUT, &labels, load(&m.partials_cut));
        out.counter(FERRY_TAIL_MULTILINE_JOINED, &labels, load(&m.concat_joined));
        out.counter(FERRY_TAIL_MULTILINE_CUT, &labels, load(&m.concat_cut));
        out.counter(
            FERRY_TAIL_MULTILINE_TIMEOUTS,
            &labels,
            load(&m.concat_timeouts),
        );
        out.counter(
            FERRY_TAIL_PARTIALS_UNFINISHED,
            &labels,
            load(&m.partials_unfinished),
        );
        out.dropped(id, "tail", dropped::TOO_LARGE, load(&m.records_dropped));
        out.dropped(id, "tail", dropped::LONG_LINE, load(&m.long_lines_skipped));
        out.dropped(
            id,
            "tail",
            dropped::UNPARSED_LINE,
            load(&m.unparsed_dropped),
        );
        out.dropped(id, "tail", dropped::ROTATION, load(&m.rotation_lost));
        for (path, position, inode) in m.file_positions() {
            let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "tail"), ("path", &path)];
            out.gauge(TAIL_FILE_POSITION, &l, position as f64);
            out.gauge(TAIL_FILE_INODE, &l, inode as f64);
        }
    }
}
