//! Reading a buffered chunk segment by segment (segments end on append boundaries, so each is
//! whole entries), decompressing gzip chunks: memory stays bounded by one segment, whatever the
//! chunk size.

use super::SinkError;
use bytes::Bytes;
use ferry_buffer::Chunk;
use ferry_proto::compress::decompress;
use ferry_proto::options::Compression;
use std::io::{self, Read};

/// The largest decompressed segment a sink reads from a gzip chunk.
const MAX_SEGMENT_DECOMPRESSED: usize = 512 * 1024 * 1024;

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
/// The segments of an uncompressed memory chunk are handed out as they are stored, without a
/// copy.
pub struct SegmentReader {
    reader: Option<ferry_buffer::ChunkReader>,
    lens: std::vec::IntoIter<u64>,
    gzip: bool,
    /// An uncompressed memory chunk's segments.
    stored: Option<std::vec::IntoIter<Bytes>>,
}

impl SegmentReader {
    pub fn new(chunk: &Chunk) -> Result<Self, SinkError> {
        let lens: Vec<u64> = chunk.segments().iter().map(|s| s.len).collect();
        let in_memory = !chunk.compressed() && chunk.memory_slices(0, 0).is_some();
        let stored = if in_memory {
            let mut segments = Vec::with_capacity(lens.len());
            for s in chunk.segments() {
                let len = usize::try_from(s.len)
                    .map_err(|_| SinkError::BadChunk("segment too large".into()))?;
                segments.push(
                    chunk
                        .read_range(s.offset, len)
                        .map_err(SinkError::ReadChunk)?,
                );
            }
            Some(segments.into_iter())
        } else {
            None
        };
        Ok(Self {
            reader: Some(chunk.reader().map_err(SinkError::ReadChunk)?),
            lens: lens.into_iter(),
            gzip: chunk.compressed(),
            stored,
        })
    }

    /// The next segment's entry stream, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, SinkError> {
        if let Some(stored) = &mut self.stored {
            return Ok(stored.next());
        }
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
        if let Some(stored) = &mut self.stored {
            return Ok(stored.next());
        }
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
