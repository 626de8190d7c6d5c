//! Why a sink did not take events, and what happens next (decided by methods, never by text).

use super::{forward, http, kafka, scribe};
use std::io;

/// Why a sink did not take events.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("write failed: {0}")]
    Io(#[source] io::Error),
    #[error("reading the chunk from the buffer failed: {0}")]
    ReadChunk(#[source] io::Error),
    #[error("chunk content is not valid: {0}")]
    BadChunk(String),
    #[error(transparent)]
    Forward(#[from] forward::ForwardError),
    /// The sink takes whole chunks only (it is always buffered, or only a secondary).
    #[error("{0} output takes buffered chunks only")]
    ChunksOnly(&'static str),
    #[error("{0}")]
    Kafka(#[source] kafka::delivery::KafkaOutputError),
    #[error(transparent)]
    Http(#[from] http::HttpOutputError),
    #[error(transparent)]
    Scribe(#[from] scribe::ScribeOutputError),
}

impl SinkError {
    /// Whether the same write may succeed later; a chunk whose content is broken never will.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::BadChunk(_) | Self::ChunksOnly(_) => false,
            Self::Forward(e) => e.is_retryable(),
            Self::Kafka(e) => e.is_retryable(),
            Self::Http(e) => e.is_retryable(),
            Self::Scribe(e) => e.is_retryable(),
            _ => true,
        }
    }

    /// The chunk goes back to the queue without counting a retry (the forward output lost an
    /// ack: the request goes elsewhere at once).
    pub fn rolls_back(&self) -> bool {
        matches!(self, Self::Forward(e) if e.rolls_back())
    }

    /// A short class name for log lines (`error_class=...`).
    pub fn class(&self) -> &'static str {
        match self {
            Self::Io(_) => "IOError",
            Self::ReadChunk(_) => "BufferReadError",
            Self::BadChunk(_) => "BrokenChunkError",
            Self::ChunksOnly(_) => "ConfigError",
            Self::Forward(e) => e.class(),
            Self::Kafka(e) => e.class(),
            Self::Http(e) => e.class(),
            Self::Scribe(e) => e.class(),
        }
    }
}
