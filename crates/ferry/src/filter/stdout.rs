//! `@type stdout` as a filter (Fluentd's filter_stdout): prints each event that passes, in
//! the stdout output's format (`time tag: {json}` unless a `<format>` says otherwise), and
//! passes it on unchanged. For watching a route while it runs.

use super::Outcome;
use crate::format::{FormatConfig, FormatKind};
use ferry_config::Section;
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;
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

    pub fn apply(&self, tag: &str, time: EventTime, record: &[(Value, Value)]) -> Outcome {
        let mut entry = bytes::BytesMut::new();
        let record = Value::Map(record.to_vec()).to_bytes();
        ferry_proto::encode::write_entry(&mut entry, time, false, &record);
        let mut text = Vec::new();
        self.format.write_stream(tag, &entry, &mut text);
        // One write per event: lines of concurrent batches never interleave within a line.
        if let Err(e) = std::io::stdout().lock().write_all(&text) {
            tracing::debug!("stdout filter: {e}");
        }
        Outcome::keep()
    }
}
