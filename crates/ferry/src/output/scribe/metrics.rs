//! The scribe output's counters.

use crate::metrics::{Exposition, load};
use std::sync::atomic::AtomicU64;

#[derive(Debug, Default)]
pub struct ScribeOutputMetrics {
    /// `Log` calls answered `OK`.
    pub calls_ok: AtomicU64,
    /// `Log` calls answered `TRY_LATER`.
    pub calls_try_later: AtomicU64,
    /// `Log` calls that failed (connection, timeout, exception).
    pub calls_failed: AtomicU64,
    /// Messages answered `OK`.
    pub messages: AtomicU64,
    /// Message bytes answered `OK`.
    pub bytes: AtomicU64,
    /// Connections opened.
    pub connections: AtomicU64,
    /// Events without `field_ref`, not sent.
    pub skipped: AtomicU64,
}

impl ScribeOutputMetrics {
    pub fn export(&self, id: &str, out: &mut Exposition) {
        use crate::metrics::names::{
            FERRY_SCRIBE_OUTPUT_BYTES, FERRY_SCRIBE_OUTPUT_CALLS, FERRY_SCRIBE_OUTPUT_CONNECTIONS,
            FERRY_SCRIBE_OUTPUT_MESSAGES,
        };
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "scribe")];
        for (answer, n) in [
            ("ok", load(&self.calls_ok)),
            ("try_later", load(&self.calls_try_later)),
            ("failed", load(&self.calls_failed)),
        ] {
            let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "scribe"), ("answer", answer)];
            out.counter(FERRY_SCRIBE_OUTPUT_CALLS, &l, n);
        }
        out.counter(FERRY_SCRIBE_OUTPUT_MESSAGES, &labels, load(&self.messages));
        out.counter(FERRY_SCRIBE_OUTPUT_BYTES, &labels, load(&self.bytes));
        out.counter(
            FERRY_SCRIBE_OUTPUT_CONNECTIONS,
            &labels,
            load(&self.connections),
        );
        out.dropped(id, "scribe", "no_field", load(&self.skipped));
    }
}
