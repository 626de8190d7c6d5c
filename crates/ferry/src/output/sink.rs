//! Sinks: the destination part of an output, a closed enum dispatched with `match`.
//!
//! A sink takes events two ways: [`Sink::write_batch`] for an unbuffered output (one batch as
//! it arrives) and [`Sink::write_chunk`] for a buffered one (one chunk from the buffer). A sink
//! that needs records reads a chunk segment by segment (segments end on append boundaries, so
//! each is whole entries): memory stays bounded by one segment, whatever the chunk size.

use super::segment::SegmentReader;
use super::{
    SinkConfig, SinkError, file, forward, http, kafka, null, scribe, secondary_file, stdout,
};
use crate::event::Batch;
use crate::task::Tasks;
use ferry_buffer::Chunk;

// One sink per output, built once: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Sink {
    Stdout(stdout::Stdout),
    Null(null::Null),
    File(file::FileOut),
    Forward(forward::Forward),
    SecondaryFile(secondary_file::SecondaryFile),
    Kafka(Box<kafka::Kafka>),
    Http(Box<http::HttpOut>),
    Scribe(Box<scribe::ScribeOut>),
}

impl Sink {
    pub fn build(id: &str, config: &SinkConfig) -> Self {
        match config {
            SinkConfig::Stdout(c) => Self::Stdout(stdout::Stdout::new(id.to_string(), c.clone())),
            SinkConfig::Null(c) => Self::Null(null::Null::new(id.to_string(), c)),
            SinkConfig::File(c) => Self::File(file::FileOut::new(id.to_string(), c.clone())),
            SinkConfig::Forward(c) => Self::Forward(forward::Forward::new(id, c.clone())),
            SinkConfig::SecondaryFile(c) => Self::SecondaryFile(
                secondary_file::SecondaryFile::new(id.to_string(), c.clone()),
            ),
            SinkConfig::Kafka(c) => {
                Self::Kafka(Box::new(kafka::Kafka::new(id.to_string(), (**c).clone())))
            }
            SinkConfig::Scribe(c) => Self::Scribe(Box::new(scribe::ScribeOut::new(
                id.to_string(),
                (**c).clone(),
            ))),
            SinkConfig::Http(c) => {
                Self::Http(Box::new(http::HttpOut::new(id.to_string(), (**c).clone())))
            }
        }
    }

    /// Start-up checks that need the network (the forward output's DNS and connections).
    pub async fn prepare(&self) -> Result<(), SinkError> {
        match self {
            Self::Forward(f) => f.prepare().await.map_err(SinkError::Forward),
            _ => Ok(()),
        }
    }

    /// Spawns the sink's own tasks (the forward output's heartbeat timer).
    pub fn start(&self, tasks: &Tasks) {
        if let Self::Forward(f) = self {
            f.start(tasks);
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Stdout(_) => "stdout",
            Self::Null(_) => "null",
            Self::File(_) => "file",
            Self::Forward(_) => "forward",
            Self::SecondaryFile(_) => "secondary_file",
            Self::Kafka(_) => "kafka2",
            Self::Http(_) => "http",
            Self::Scribe(_) => "scribe",
        }
    }

    /// Writes one batch as it arrives (unbuffered outputs).
    pub async fn write_batch(&self, batch: &Batch) -> Result<(), SinkError> {
        match self {
            Self::Stdout(o) => o.write_stream(&batch.tag, &batch.entries).await,
            Self::Null(o) => {
                o.take(batch.records);
                Ok(())
            }
            Self::File(_)
            | Self::Forward(_)
            | Self::SecondaryFile(_)
            | Self::Http(_)
            | Self::Scribe(_) => Err(SinkError::ChunksOnly(self.type_name())),
            Self::Kafka(o) => o.write_batch(&batch.tag, &batch.entries).await,
        }
    }

    /// Writes one buffered chunk.
    pub async fn write_chunk(&self, chunk: &Chunk) -> Result<(), SinkError> {
        match self {
            Self::Null(o) => {
                o.take(chunk.records());
                Ok(())
            }
            Self::Stdout(o) => {
                let tag = chunk.key().tag.clone().unwrap_or_default();
                let mut segments = SegmentReader::new(chunk)?;
                while let Some(stream) = segments.next().await? {
                    o.write_stream(&tag, &stream).await?;
                }
                Ok(())
            }
            Self::File(o) => o.write_chunk(chunk).await,
            Self::Forward(f) => Ok(f.write_chunk(chunk).await?),
            Self::SecondaryFile(o) => o.write_chunk(chunk).await,
            Self::Kafka(o) => o.write_chunk(chunk).await,
            Self::Http(o) => o.write_chunk(chunk).await,
            Self::Scribe(o) => o.write_chunk(chunk).await,
        }
    }
}
