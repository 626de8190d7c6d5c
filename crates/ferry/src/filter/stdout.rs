//! `@type stdout` as a filter (Fluentd's filter_stdout): prints each event that passes, in
//! the stdout output's format (`time tag: {json}` unless a `<format>` says otherwise), and
//! passes it on unchanged. For watching a route while it runs.

use super::{Event, Outcome};
use crate::format::{FormatConfig, FormatKind};
use ferry_config::Section;
use std::io::Write;

#[derive(Debug, Clone)]
pub struct StdoutFilter {
    pub format: FormatConfig,
    /// `@log_level`: this filter runs inside its input's tasks, so its lines enter its own
    /// span ([`crate::logging::plugin_span`]) to be judged by it.
    log_level: Option<&'static str>,
}

impl StdoutFilter {
    pub fn from_section(s: &Section<'_>) -> Option<Self> {
        Some(Self {
            format: FormatConfig::from_section(s, FormatKind::Stdout),
            log_level: s.opt_enum("@log_level", crate::LOG_LEVELS),
        })
    }

    pub fn apply(&self, tag: &str, event: &mut Event<'_>) -> Outcome {
        let entry = &mut event.scratch.bytes;
        entry.clear();
        ferry_proto::encode::write_entry(entry, event.time, false, &[]);
        event.record.write_map(entry);
        let mut text = Vec::new();
        self.format.write_stream(tag, entry, &mut text);
        // One write per event: lines of concurrent batches never interleave within a line.
        if let Err(e) = std::io::stdout().lock().write_all(&text) {
            let span = match self.log_level {
                Some(level) => crate::logging::plugin_span("stdout filter", level),
                None => tracing::Span::none(),
            };
            span.in_scope(|| tracing::debug!("stdout filter: {e}"));
        }
        Outcome::keep()
    }
}
