//! Sinks: the destination part of an output, a closed enum dispatched with `match`.
//!
//! A sink takes events two ways: [`Sink::write_batch`] for an unbuffered output (one batch as
//! it arrives) and [`Sink::write_chunk`] for a buffered one (one chunk from the buffer). A sink
//! that needs records reads a chunk segment by segment (segments end on append boundaries, so
//! each is whole entries): memory stays bounded by one segment, whatever the chunk size.

use super::{SinkConfig, file, forward, kafka, null, secondary_file, stdout};
use crate::event::Batch;
use crate::task::Tasks;
use bytes::Bytes;
use ferry_buffer::Chunk;
use ferry_proto::compress::decompress;
use ferry_proto::options::Compression;
use std::io::{self, Read};

/// The largest decompressed segment a sink reads from a gzip chunk.
const MAX_SEGMENT_DECOMPRESSED: usize = 512 * 1024 * 1024;

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
}

impl SinkError {
    /// Whether the same write may succeed later; a chunk whose content is broken never will.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::BadChunk(_) | Self::ChunksOnly(_) => false,
            Self::Forward(e) => e.is_retryable(),
            Self::Kafka(e) => e.is_retryable(),
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
        }
    }
}

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
}

impl Sink {
    pub fn build(id: &str, config: &SinkConfig) -> Self {
        match config {
            SinkConfig::Stdout(c) => Self::Stdout(stdout::Stdout::new(id.to_string(), c.clone())),
            SinkConfig::Null(_) => Self::Null(null::Null::new(id.to_string())),
            SinkConfig::File(c) => Self::File(file::FileOut::new(id.to_string(), c.clone())),
            SinkConfig::Forward(c) => Self::Forward(forward::Forward::new(id, c.clone())),
            SinkConfig::SecondaryFile(c) => Self::SecondaryFile(
                secondary_file::SecondaryFile::new(id.to_string(), c.clone()),
            ),
            SinkConfig::Kafka(c) => {
                Self::Kafka(Box::new(kafka::Kafka::new(id.to_string(), (**c).clone())))
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
            Self::File(_) | Self::Forward(_) | Self::SecondaryFile(_) => {
                Err(SinkError::ChunksOnly(self.type_name()))
            }
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
        }
    }
}

/// Reads exactly `len` bytes into a new buffer (not zeroed first: it is filled by the read).
#[allow(clippy::disallowed_methods)] // bounded by `take`
fn read_segment(reader: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    reader.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "chunk payload ends {} bytes into a {len}-byte segment",
                buf.len()
            ),
        ));
    }
    Ok(buf)
}

/// Reads a chunk's segments one at a time on a blocking thread, decompressing gzip chunks.
pub struct SegmentReader {
    reader: Option<ferry_buffer::ChunkReader>,
    lens: std::vec::IntoIter<u64>,
    gzip: bool,
}

impl SegmentReader {
    pub fn new(chunk: &Chunk) -> Result<Self, SinkError> {
        let lens: Vec<u64> = chunk.segments().iter().map(|s| s.len).collect();
        Ok(Self {
            reader: Some(chunk.reader().map_err(SinkError::ReadChunk)?),
            lens: lens.into_iter(),
            gzip: chunk.compressed(),
        })
    }

    /// The next segment's entry stream, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, SinkError> {
        let Some(len) = self.lens.next() else {
            return Ok(None);
        };
        let Some(mut reader) = self.reader.take() else {
            return Ok(None);
        };
        let len =
            usize::try_from(len).map_err(|_| SinkError::BadChunk("segment too large".into()))?;
        let (reader, data) = tokio::task::spawn_blocking(move || {
            let read = read_segment(&mut reader, len);
            (reader, read)
        })
        .await
        .map_err(|e| SinkError::ReadChunk(io::Error::other(e)))?;
        self.reader = Some(reader);
        self.decode(data.map_err(SinkError::ReadChunk)?)
    }

    /// [`Self::next`] on the calling thread, for sinks that already run on a blocking thread.
    pub fn next_blocking(&mut self) -> Result<Option<Bytes>, SinkError> {
        let Some(len) = self.lens.next() else {
            return Ok(None);
        };
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let len =
            usize::try_from(len).map_err(|_| SinkError::BadChunk("segment too large".into()))?;
        let buf = read_segment(reader, len).map_err(SinkError::ReadChunk)?;
        self.decode(buf)
    }

    fn decode(&self, data: Vec<u8>) -> Result<Option<Bytes>, SinkError> {
        if self.gzip {
            let plain = decompress(Compression::Gzip, &data, MAX_SEGMENT_DECOMPRESSED)
                .map_err(|e| SinkError::BadChunk(e.to_string()))?;
            Ok(Some(Bytes::from(plain)))
        } else {
            Ok(Some(Bytes::from(data)))
        }
    }
}
