//! The http input's counters.

use crate::input::net::NetMetrics;
use crate::metrics::names::{INPUT_EMIT_RECORDS, INPUT_EMIT_SIZE, INPUT_NUM_RECORDS};
use crate::metrics::{Exposition, load};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The status codes the http input answers, each counted.
pub const CODES: &[u16] = &[200, 204, 400, 403, 405, 408, 413, 415, 500, 503];

/// Counters of one http input.
#[derive(Debug, Default)]
pub struct HttpInputMetrics {
    pub net: Arc<NetMetrics>,
    pub emit_records: AtomicU64,
    pub emit_size: AtomicU64,
    /// Body bytes read, as sent.
    pub body_bytes: AtomicU64,
    /// Milliseconds requests waited for room in a full buffer.
    pub held_ms: AtomicU64,
    /// Requests whose connection failed before they could be answered (a body shorter than
    /// its Content-Length, a reset).
    pub broken: AtomicU64,
    /// Answers by status code, in the order of [`CODES`].
    answered: [AtomicU64; 10],
}

impl HttpInputMetrics {
    pub fn answered(&self, code: u16) {
        if let Some(i) = CODES.iter().position(|c| *c == code)
            && let Some(n) = self.answered.get(i)
        {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn answered_with(&self, code: u16) -> u64 {
        CODES
            .iter()
            .position(|c| *c == code)
            .and_then(|i| self.answered.get(i))
            .map_or(0, load)
    }

    pub fn export(&self, id: &str, out: &mut Exposition) {
        use crate::metrics::names::{
            FERRY_HTTP_INPUT_REQUEST_BYTES, FERRY_HTTP_INPUT_REQUESTS, FERRY_INPUT_HELD_SECONDS,
            FERRY_NETWORK_INPUT_CONNECTIONS, FERRY_NETWORK_INPUT_REFUSED,
        };
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "http")];
        out.counter(INPUT_EMIT_RECORDS, &labels, load(&self.emit_records));
        out.counter(INPUT_EMIT_SIZE, &labels, load(&self.emit_size));
        out.counter(INPUT_NUM_RECORDS, &labels, load(&self.emit_records));
        out.counter(
            FERRY_HTTP_INPUT_REQUEST_BYTES,
            &labels,
            load(&self.body_bytes),
        );
        out.counter_seconds(FERRY_INPUT_HELD_SECONDS, &labels, load(&self.held_ms));
        for code in CODES {
            let code_text = code.to_string();
            let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "http"), ("code", &code_text)];
            out.counter(FERRY_HTTP_INPUT_REQUESTS, &l, self.answered_with(*code));
        }
        out.gauge(
            FERRY_NETWORK_INPUT_CONNECTIONS,
            &labels,
            load(&self.net.connections_active) as f64,
        );
        for (reason, n) in [
            ("broken_request", load(&self.broken)),
            ("tls_handshake", load(&self.net.tls_failures)),
            (
                "max_connections_wait",
                load(&self.net.connection_limit_waits),
            ),
            ("fd_exhausted", load(&self.net.fd_exhaustion_episodes)),
        ] {
            let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "http"), ("reason", reason)];
            out.counter(FERRY_NETWORK_INPUT_REFUSED, &l, n);
        }
    }
}
