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
}

impl StdoutFilter {
    pub fn from_section(s: &Section<'_>) -> Option<Self> {
        Some(Self {
            format: FormatConfig::from_section(s, FormatKind::Stdout),
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
            tracing::debug!("stdout filter: {e}");
        }
        Outcome::keep()
    }
}
