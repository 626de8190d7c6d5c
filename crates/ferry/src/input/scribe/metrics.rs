//! The scribe input's counters.

use crate::input::net::NetMetrics;
use crate::metrics::names::{INPUT_EMIT_RECORDS, INPUT_EMIT_SIZE, INPUT_NUM_RECORDS};
use crate::metrics::{Exposition, load};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Counters of one scribe input.
#[derive(Debug, Default)]
pub struct ScribeInputMetrics {
    pub net: Arc<NetMetrics>,
    pub emit_records: AtomicU64,
    pub emit_size: AtomicU64,
    /// Milliseconds calls waited for room in a full buffer.
    pub held_ms: AtomicU64,
    /// `Log` calls answered `OK`.
    pub log_ok: AtomicU64,
    /// `Log` calls answered `TRY_LATER`: a buffer refused, or a message made no record.
    pub log_try_later: AtomicU64,
    /// Messages received in `Log` calls.
    pub messages: AtomicU64,
    /// Messages that made no record (skipped with `ignore_invalid_record`, else the call was
    /// answered `TRY_LATER`).
    pub invalid: AtomicU64,
    /// Of those, skipped (`ignore_invalid_record`): dropped.
    pub skipped: AtomicU64,
    /// fb303 calls answered.
    pub status_calls: AtomicU64,
    /// `Log` calls whose arguments are not a list of entries, answered with an exception.
    pub bad_calls: AtomicU64,
    /// Calls of a method Scribe does not have, answered with an exception.
    pub unknown_methods: AtomicU64,
    /// Connections closed for bytes that are not Thrift (an oversize frame, a broken message).
    pub broken: AtomicU64,
}

impl ScribeInputMetrics {
    /// fb303's `getCounters`: this input's counters by name.
    pub fn counters(&self) -> Vec<(String, i64)> {
        [
            ("scribe.messages", &self.messages),
            ("scribe.records", &self.emit_records),
            ("scribe.log_ok", &self.log_ok),
            ("scribe.log_try_later", &self.log_try_later),
            ("scribe.invalid", &self.invalid),
            ("scribe.unknown_methods", &self.unknown_methods),
            ("scribe.bad_calls", &self.bad_calls),
            ("scribe.broken_connections", &self.broken),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), i64::try_from(load(v)).unwrap_or(i64::MAX)))
        .collect()
    }

    pub fn export(&self, id: &str, out: &mut Exposition) {
        use crate::metrics::names::{
            FERRY_INPUT_HELD_SECONDS, FERRY_NETWORK_INPUT_CONNECTIONS, FERRY_NETWORK_INPUT_REFUSED,
            FERRY_SCRIBE_INPUT_CALLS, dropped,
        };
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "scribe")];
        out.counter(INPUT_EMIT_RECORDS, &labels, load(&self.emit_records));
        out.counter(INPUT_EMIT_SIZE, &labels, load(&self.emit_size));
        out.counter(INPUT_NUM_RECORDS, &labels, load(&self.emit_records));
        out.counter_seconds(FERRY_INPUT_HELD_SECONDS, &labels, load(&self.held_ms));
        for (answer, n) in [
            ("ok", load(&self.log_ok)),
            ("try_later", load(&self.log_try_later)),
            ("status", load(&self.status_calls)),
            ("unknown_method", load(&self.unknown_methods)),
            ("bad_call", load(&self.bad_calls)),
        ] {
            let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "scribe"), ("answer", answer)];
            out.counter(FERRY_SCRIBE_INPUT_CALLS, &l, n);
        }
        out.dropped(id, "scribe", dropped::INVALID, load(&self.skipped));
        out.gauge(
            FERRY_NETWORK_INPUT_CONNECTIONS,
            &labels,
            load(&self.net.connections_active) as f64,
        );
        for (reason, n) in [
            ("broken_request", load(&self.broken)),
            (
                "max_connections_wait",
                load(&self.net.connection_limit_waits),
            ),
            ("fd_exhausted", load(&self.net.fd_exhaustion_episodes)),
        ] {
            let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "scribe"), ("reason", reason)];
            out.counter(FERRY_NETWORK_INPUT_REFUSED, &l, n);
        }
    }
}
