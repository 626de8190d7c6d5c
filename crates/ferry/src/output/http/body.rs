//! The request body of one chunk, written segment by segment: memory holds one segment's
//! formatted events (and the compressor's window), never the whole chunk.
//!
//! Byte layout, as Fluentd's out_http writes it:
//! - every format: the events formatted one after the other (`json`: one object and a newline
//!   each, the ndjson Fluentd sends; `msgpack`: maps back to back, no framing);
//! - `json_array true`: `[`, the formatted events joined by `,`, `]` (each object keeps the
//!   newline its format writes, as Fluentd's `[#{chunk.read.chop}]` does); a chunk of no events
//!   is `[]`;
//! - `compress gzip`: all of the above as one gzip member, compressed as it goes; a piece is
//!   what the compressor has written so far, and [`BodyWriter::finish`] writes the trailer.
//!
//! Segment boundaries are invisible in the body: the separators are kept across calls.

use super::config::Compress;
use crate::format::FormatConfig;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write as _;

/// Writes one chunk's body.
pub struct BodyWriter<'f> {
    format: &'f FormatConfig,
    json_array: bool,
    gzip: Option<GzEncoder<Vec<u8>>>,
    /// No event written yet (the next one gets no separator).
    first: bool,
    /// The opening bracket is written.
    opened: bool,
    /// Events that could not be formatted (skipped, counted).
    pub broken: u64,
    /// Bytes before compression.
    pub plain_bytes: u64,
}

impl<'f> BodyWriter<'f> {
    pub fn new(format: &'f FormatConfig, json_array: bool, compress: Compress) -> Self {
        Self {
            format,
            json_array,
            gzip: (compress == Compress::Gzip)
                .then(|| GzEncoder::new(Vec::new(), Compression::default())),
            first: true,
            opened: false,
            broken: 0,
            plain_bytes: 0,
        }
    }

    /// The body bytes for the events of one segment (`stream`, whole entries); may be empty
    /// when the compressor holds them back.
    pub fn segment(&mut self, tag: &str, stream: &[u8]) -> Bytes {
        let mut plain = Vec::with_capacity(stream.len() + stream.len() / 2);
        if self.json_array && !self.opened {
            plain.push(b'[');
            self.opened = true;
        }
        let separator: &[u8] = if self.json_array { b"," } else { b"" };
        self.broken +=
            self.format
                .write_stream_separated(tag, stream, separator, &mut self.first, &mut plain);
        self.emit(plain)
    }

    /// The rest of the body: the closing bracket, the compressor's last bytes.
    pub fn finish(mut self) -> Bytes {
        let mut plain = Vec::new();
        if self.json_array {
            if !self.opened {
                plain.push(b'[');
            }
            plain.push(b']');
        }
        let mut out = self.emit(plain).to_vec();
        if let Some(gz) = self.gzip.take() {
            // Writing to a Vec cannot fail.
            if let Ok(rest) = gz.finish() {
                out.extend_from_slice(&rest);
            }
        }
        Bytes::from(out)
    }

    fn emit(&mut self, plain: Vec<u8>) -> Bytes {
        self.plain_bytes += plain.len() as u64;
        match &mut self.gzip {
            None => Bytes::from(plain),
            Some(gz) => {
                // Writing to a Vec cannot fail.
                let _ = gz.write_all(&plain);
                Bytes::from(std::mem::take(gz.get_mut()))
            }
        }
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
