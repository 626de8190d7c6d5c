//! What the forward input exports (names in [`crate::metrics::names`]).

use super::{ForwardInputMetrics, HandshakeFailure};
use crate::metrics::names::*;
use crate::metrics::{Exposition, load};

impl ForwardInputMetrics {
    /// Writes this input's samples (`id` is its plugin id).
    pub fn export(&self, id: &str, out: &mut Exposition) {
        let m = self;
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "forward")];
        out.counter(INPUT_EMIT_RECORDS, &labels, load(&m.emit_records));
        out.counter(INPUT_EMIT_SIZE, &labels, load(&m.emit_size));
        out.counter(INPUT_NUM_RECORDS, &labels, load(&m.emit_records));
        out.gauge(
            FERRY_FORWARD_CONNECTIONS,
            &labels,
            load(&m.net.connections_active) as f64,
        );
        out.counter(FERRY_FORWARD_REQUESTS, &labels, load(&m.requests));
        out.counter_seconds(FERRY_INPUT_HELD_SECONDS, &labels, load(&m.held_ms));
        out.counter(FERRY_FORWARD_ACKS, &labels, load(&m.acks));
        out.counter(FERRY_FORWARD_HEARTBEATS, &labels, load(&m.heartbeats));
        out.counter(
            FERRY_FORWARD_INVALID_EVENTS,
            &labels,
            load(&m.invalid_events),
        );
        out.dropped(id, "forward", dropped::INVALID, load(&m.invalid_events));
        let refused = [
            ("chunk_size_limit", load(&m.oversize_requests)),
            ("broken_request", load(&m.broken_requests)),
            ("commit_failed", load(&m.commit_failures)),
            ("sender_gone", load(&m.sender_gone)),
            ("idle_timeout", load(&m.idle_closes)),
            ("max_connections_wait", load(&m.net.connection_limit_waits)),
            ("fd_exhausted", load(&m.net.fd_exhaustion_episodes)),
        ];
        for (reason, n) in refused {
            let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "forward"), ("reason", reason)];
            out.counter(FERRY_FORWARD_REFUSED, &l, n);
        }
        for reason in HandshakeFailure::ALL {
            let l: [(&str, &str); 3] = [
                ("plugin_id", id),
                ("type", "forward"),
                ("reason", reason.as_str()),
            ];
            out.counter(
                FERRY_FORWARD_HANDSHAKE_FAILURES,
                &l,
                m.handshake_failures(reason),
            );
        }
    }
}
