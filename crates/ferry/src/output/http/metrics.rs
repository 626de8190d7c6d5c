//! Counters of an http output (atomics on the request path; the last error behind a lock taken
//! once per failed request).

use crate::metrics::names::*;
use crate::metrics::{Exposition, load};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// The status classes counted, `1xx` to `5xx`.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Default)]
pub struct HttpOutputMetrics {
    pub requests: AtomicU64,
    /// Answers by status class ([`CLASSES`]).
    pub responses: [AtomicU64; 5],
    pub bytes_sent: AtomicU64,
    /// Events in requests answered with a success.
    pub records_sent: AtomicU64,
    pub retryable_errors: AtomicU64,
    pub unrecoverable_errors: AtomicU64,
    pub connections_opened: AtomicU64,
    /// Requests sent again at once on a new connection because the server had closed the idle
    /// one before the request went out.
    pub stale_reconnects: AtomicU64,
    /// Events deleted after an error answer (`error_response_as_unrecoverable false`).
    pub dropped_records: AtomicU64,
    /// Events that could not be formatted (skipped).
    pub broken_entries: AtomicU64,
    last_error: Mutex<String>,
}

impl HttpOutputMetrics {
    /// Counts an answer with `status`.
    pub fn answered(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_last_error(&self, error: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }

    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Writes this output's samples (`id` is its plugin id).
    pub fn export(&self, id: &str, out: &mut Exposition) {
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "http")];
        out.counter(FERRY_HTTP_OUTPUT_REQUESTS, &labels, load(&self.requests));
        for (class, n) in CLASSES.iter().zip(&self.responses) {
            let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "http"), ("class", class)];
            out.counter(FERRY_HTTP_OUTPUT_RESPONSES, &l, load(n));
        }
        out.counter(FERRY_HTTP_OUTPUT_BYTES, &labels, load(&self.bytes_sent));
        out.counter(FERRY_HTTP_OUTPUT_RECORDS, &labels, load(&self.records_sent));
        out.counter(
            FERRY_HTTP_OUTPUT_RETRYABLE_ERRORS,
            &labels,
            load(&self.retryable_errors),
        );
        out.counter(
            FERRY_HTTP_OUTPUT_UNRECOVERABLE_ERRORS,
            &labels,
            load(&self.unrecoverable_errors),
        );
        out.counter(
            FERRY_HTTP_OUTPUT_CONNECTIONS,
            &labels,
            load(&self.connections_opened),
        );
        out.dropped(
            id,
            "http",
            dropped::ERROR_RESPONSE,
            load(&self.dropped_records),
        );
    }

    /// The fields of `/api/plugins.json` and the dump.
    pub fn info(&self, endpoint: &str) -> Vec<(&'static str, serde_json::Value)> {
        let c = |a: &AtomicU64| json!(load(a));
        let mut fields = vec![
            ("endpoint", json!(endpoint)),
            ("http_requests", c(&self.requests)),
            ("http_bytes_sent", c(&self.bytes_sent)),
            ("http_records_sent", c(&self.records_sent)),
            ("http_retryable_errors", c(&self.retryable_errors)),
            ("http_unrecoverable_errors", c(&self.unrecoverable_errors)),
            ("http_connections", c(&self.connections_opened)),
            ("http_dropped_records", c(&self.dropped_records)),
            ("http_last_error", json!(self.last_error())),
        ];
        let names = [
            "http_responses_1xx",
            "http_responses_2xx",
            "http_responses_3xx",
            "http_responses_4xx",
            "http_responses_5xx",
        ];
        for (name, n) in names.into_iter().zip(&self.responses) {
            fields.push((name, c(n)));
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_class_and_exported() {
        let m = HttpOutputMetrics::default();
        for s in [200, 204, 503, 400, 99, 700] {
            m.answered(s);
        }
        let mut out = Exposition::default();
        m.export("out", &mut out);
        let text = out.render();
        for (class, n) in [("1xx", 1), ("2xx", 2), ("4xx", 1), ("5xx", 2)] {
            let line = format!(
                "ferry_http_output_responses_total{{plugin_id=\"out\",type=\"http\",class=\"{class}\"}} {n}"
            );
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        let info = m.info("http://h/");
        assert!(info.contains(&("http_responses_5xx", json!(2))));
    }
}
