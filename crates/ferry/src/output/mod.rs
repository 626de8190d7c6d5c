//! Outputs: where routed events go. Each output type is a variant of the closed [`Output`]
//! enum, dispatched with `match`.
//!
//! An output's [`emit`](Output::emit) returns when the events are *committed* by that output:
//! written for an unbuffered output (stdout, null), in the buffer for a buffered one. Inputs
//! acknowledge only after every output a batch was routed to has committed it.

pub mod format;
pub mod null;
pub mod stdout;

use crate::event::Batch;
use ferry_config::Section;

/// Output plugin types this build of ferry provides.
pub const OUTPUT_TYPES: &[&str] = &["stdout", "null"];

/// Fluentd output types that ferry does not provide (yet): refused with a clear message.
pub const FOREIGN_OUTPUT_TYPES: &[&str] = &[
    "file",
    "forward",
    "kafka2",
    "kafka",
    "copy",
    "relabel",
    "secondary_file",
    "s3",
    "elasticsearch",
    "opensearch",
    "http",
    "exec",
    "rewrite_tag_filter",
    "roundrobin",
];

/// A parsed `<match>` output.
#[derive(Debug, Clone)]
pub enum OutputConfig {
    Stdout(stdout::StdoutConfig),
    Null(null::NullConfig),
}

impl OutputConfig {
    /// Builds the output named by the section's `@type`; reports an unknown type. The caller
    /// finishes the section, which reports unknown parameters.
    pub fn from_section(section: &Section<'_>) -> Option<Self> {
        let kind =
            crate::plugin::plugin_type(section, "output", OUTPUT_TYPES, FOREIGN_OUTPUT_TYPES)?;
        let cfg = match kind {
            "stdout" => Self::Stdout(stdout::StdoutConfig::from_section(section)),
            "null" => Self::Null(null::NullConfig::from_section(section)),
            _ => return None,
        };
        Some(cfg)
    }
}

/// Why an output did not commit a batch. The input does not acknowledge; the client re-sends.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("output {id}: {source}")]
    Io {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("shutting down")]
    ShuttingDown,
}

/// A running output.
#[derive(Debug)]
pub enum Output {
    Stdout(stdout::Stdout),
    Null(null::Null),
}

impl Output {
    pub fn build(id: String, config: &OutputConfig) -> Self {
        match config {
            OutputConfig::Stdout(c) => Self::Stdout(stdout::Stdout::new(id, c.clone())),
            OutputConfig::Null(_) => Self::Null(null::Null::new(id)),
        }
    }

    /// Commits `batch`; see the module docs.
    pub async fn emit(&self, batch: &Batch) -> Result<(), EmitError> {
        match self {
            Self::Stdout(o) => o.emit(batch).await,
            Self::Null(o) => {
                o.emit(batch);
                Ok(())
            }
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Stdout(o) => &o.id,
            Self::Null(o) => &o.id,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Stdout(_) => "stdout",
            Self::Null(_) => "null",
        }
    }
}
