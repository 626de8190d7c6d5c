//! `@type stdout`: prints each event as a line on standard output.
//!
//! Unbuffered, like Fluentd's: an event is committed once its line is written. Lines of one
//! batch are written with a single `write_all` under a lock, so batches from concurrent
//! connections never interleave within a line.

use super::SinkError;
use crate::format::{FormatConfig, FormatKind};
use ferry_config::Section;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

#[derive(Debug, Clone, PartialEq)]
pub struct StdoutConfig {
    pub format: FormatConfig,
}

impl StdoutConfig {
    pub fn from_section(section: &Section<'_>) -> Self {
        Self {
            format: FormatConfig::from_section(section, FormatKind::Stdout),
        }
    }
}

#[derive(Debug)]
pub struct Stdout {
    pub id: String,
    config: StdoutConfig,
    out: Mutex<tokio::io::Stdout>,
    pub broken_entries: AtomicU64,
}

impl Stdout {
    pub fn new(id: String, config: StdoutConfig) -> Self {
        Self {
            id,
            config,
            out: Mutex::new(tokio::io::stdout()),
            broken_entries: AtomicU64::new(0),
        }
    }

    /// Prints the events of one entry stream.
    pub async fn write_stream(&self, tag: &str, stream: &[u8]) -> Result<(), SinkError> {
        let mut text = Vec::with_capacity(stream.len() * 2);
        let broken = self.config.format.write_stream(tag, stream, &mut text);
        if broken > 0 {
            self.broken_entries.fetch_add(broken, Ordering::Relaxed);
            tracing::error!(output = %self.id, tag = %tag, broken, "entries could not be formatted");
        }
        let mut out = self.out.lock().await;
        let written = async {
            out.write_all(&text).await?;
            out.flush().await
        };
        written.await.map_err(SinkError::Io)
    }
}
