//! Buffer metrics: event counters as plain atomics, gauges computed on demand, all exported
//! together as a [`BufferStats`] snapshot with Fluentd's names.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::state::{Phase, State};

/// Monotonic counters, touched with relaxed atomics on the hot path.
#[derive(Debug, Default)]
pub struct Counters {
    pub dropped_chunks: AtomicU64,
    pub dropped_records: AtomicU64,
    pub quarantined_chunks: AtomicU64,
    /// Records of the chunks quarantined while running (a chunk found corrupt at recovery
    /// counts as a chunk only: its records cannot be trusted).
    pub quarantined_records: AtomicU64,
    pub append_errors: AtomicU64,
    pub disk_errors: AtomicU64,
    pub retry_count: AtomicU64,
    pub blocked_appends: AtomicU64,
    pub torn_tails: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// A snapshot of the buffer's gauges and counters (Fluentd's metric names).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BufferStats {
    /// Bytes held by all chunks (`stage_byte_size + queue_byte_size`).
    pub total_bytes: u64,
    /// Chunks still filling (including ones waiting for an append in progress to finish).
    pub stage_length: u64,
    pub stage_byte_size: u64,
    /// Queued chunks, including those in flight.
    pub queue_length: u64,
    pub queue_byte_size: u64,
    /// Queued chunks currently handed out by `take`.
    pub in_flight_length: u64,
    /// Records held by all chunks.
    pub total_records: u64,
    pub total_limit_size: u64,
    /// Free share of `total_limit_size`, in percent (0–100).
    pub available_space_ratio: f64,
    pub newest_timekey: Option<i64>,
    pub oldest_timekey: Option<i64>,
    /// Chunks deleted by `overflow_action drop_oldest_chunk`.
    pub dropped_chunks: u64,
    pub dropped_records: u64,
    /// Chunks moved to quarantine (corrupt at recovery or take, or given up by the caller).
    pub quarantined_chunks: u64,
    pub quarantined_records: u64,
    /// Appends refused for any reason (overflow, disk, size).
    pub append_errors: u64,
    /// Disk operations that failed (write, sync, remove, read).
    pub disk_errors: u64,
    /// Failed flushes reported with `nack`.
    pub retry_count: u64,
    /// Appends that had to wait under `overflow_action block`.
    pub blocked_appends: u64,
    /// Torn tails truncated at recovery.
    pub torn_tails: u64,
}

pub fn snapshot(state: &State, counters: &Counters, total_limit: u64) -> BufferStats {
    let mut s = BufferStats {
        total_limit_size: total_limit,
        ..BufferStats::default()
    };
    for e in state.entries.values() {
        let bytes = e.content.bytes;
        s.total_records += e.content.records;
        match e.phase {
            Phase::Staged | Phase::Sealing => {
                s.stage_length += 1;
                s.stage_byte_size += bytes;
            }
            Phase::Queued | Phase::InFlight => {
                s.queue_length += 1;
                s.queue_byte_size += bytes;
                if e.phase == Phase::InFlight {
                    s.in_flight_length += 1;
                }
            }
        }
        if let Some(tk) = e.key.timekey {
            s.newest_timekey = Some(s.newest_timekey.map_or(tk, |n| n.max(tk)));
            s.oldest_timekey = Some(s.oldest_timekey.map_or(tk, |o| o.min(tk)));
        }
    }
    s.total_bytes = s.stage_byte_size + s.queue_byte_size;
    let used = state.total_bytes.min(total_limit) as f64;
    s.available_space_ratio = if total_limit == 0 {
        0.0
    } else {
        100.0 * (1.0 - used / total_limit as f64)
    };
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    s.dropped_chunks = get(&counters.dropped_chunks);
    s.dropped_records = get(&counters.dropped_records);
    s.quarantined_chunks = get(&counters.quarantined_chunks);
    s.quarantined_records = get(&counters.quarantined_records);
    s.append_errors = get(&counters.append_errors);
    s.disk_errors = get(&counters.disk_errors);
    s.retry_count = get(&counters.retry_count);
    s.blocked_appends = get(&counters.blocked_appends);
    s.torn_tails = get(&counters.torn_tails);
    s
}
