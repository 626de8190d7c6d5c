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
    source: Source,
    gzip: bool,
}

enum Source {
    /// An uncompressed memory chunk's segments.
    Stored(std::vec::IntoIter<Bytes>),
    /// The payload, read a segment's length at a time (`None` while a read is away on a
    /// blocking thread, or after one failed there).
    Read {
        reader: Option<ferry_buffer::ChunkReader>,
        lens: std::vec::IntoIter<u64>,
    },
}

fn segment_len(len: u64) -> Result<usize, SinkError> {
    usize::try_from(len).map_err(|_| SinkError::BadChunk("segment too large".into()))
}

impl SegmentReader {
    pub fn new(chunk: &Chunk) -> Result<Self, SinkError> {
        let gzip = chunk.compressed();
        let source = if !gzip && chunk.memory_slices(0, 0).is_some() {
            let mut segments = Vec::with_capacity(chunk.segments().len());
            for s in chunk.segments() {
                let len = segment_len(s.len)?;
                segments.push(
                    chunk
                        .read_range(s.offset, len)
                        .map_err(SinkError::ReadChunk)?,
                );
            }
            Source::Stored(segments.into_iter())
        } else {
            let lens: Vec<u64> = chunk.segments().iter().map(|s| s.len).collect();
            Source::Read {
                reader: Some(chunk.reader().map_err(SinkError::ReadChunk)?),
                lens: lens.into_iter(),
            }
        };
        Ok(Self { source, gzip })
    }

    /// The next segment's entry stream, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, SinkError> {
        let (reader, lens) = match &mut self.source {
            Source::Stored(stored) => return Ok(stored.next()),
            Source::Read { reader, lens } => (reader, lens),
        };
        let Some(len) = lens.next() else {
            return Ok(None);
        };
        let Some(mut taken) = reader.take() else {
            return Ok(None);
        };
        let len = segment_len(len)?;
        let (taken, data) = tokio::task::spawn_blocking(move || {
            let read = read_segment(&mut taken, len);
            (taken, read)
        })
        .await
        .map_err(|e| SinkError::ReadChunk(io::Error::other(e)))?;
        *reader = Some(taken);
        self.decode(data.map_err(SinkError::ReadChunk)?)
    }

    /// [`Self::next`] on the calling thread, for sinks that already run on a blocking thread.
    pub fn next_blocking(&mut self) -> Result<Option<Bytes>, SinkError> {
        let (reader, lens) = match &mut self.source {
            Source::Stored(stored) => return Ok(stored.next()),
            Source::Read { reader, lens } => (reader, lens),
        };
        let Some(len) = lens.next() else {
            return Ok(None);
        };
        let Some(reader) = reader.as_mut() else {
            return Ok(None);
        };
        let buf = read_segment(reader, segment_len(len)?).map_err(SinkError::ReadChunk)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_buffer::{Buffer, BufferConfig, ChunkKey};

    fn entries(n: u8) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        for i in 0..n {
            let time = ferry_proto::time::EventTime::new(u32::from(i), 0);
            ferry_proto::encode::write_entry(&mut out, time, false, &[0x81, 0xa1, b'k', i]);
        }
        out.to_vec()
    }

    fn segments_of(config: BufferConfig) -> Vec<Vec<u8>> {
        let (buffer, _) = Buffer::open(config, "b").unwrap();
        for n in 1..=3 {
            buffer
                .append(&ChunkKey::tag("t"), &entries(n), u64::from(n))
                .unwrap();
        }
        buffer.flush_all();
        let chunk = buffer.take(std::time::SystemTime::now()).unwrap();
        let mut reader = SegmentReader::new(&chunk).unwrap();
        let mut out = Vec::new();
        while let Some(s) = reader.next_blocking().unwrap() {
            out.push(s.to_vec());
        }
        out
    }

    #[test]
    fn memory_and_file_chunks_hand_out_every_appended_byte_in_whole_entries() {
        let want: Vec<u8> = (1..=3).flat_map(entries).collect();
        let dir = tempfile::tempdir().unwrap();
        for config in [BufferConfig::memory(), BufferConfig::file(dir.path())] {
            let segments = segments_of(config);
            assert!(!segments.is_empty());
            for s in &segments {
                assert!(
                    ferry_proto::entries::iter(s).all(|e| e.is_ok()),
                    "whole entries"
                );
            }
            assert_eq!(segments.concat(), want);
        }
    }
}
