//! Splitting a Forward TCP byte stream into top-level msgpack values ("frames").
//!
//! The Forward protocol has no length prefix: a connection carries msgpack values back to back
//! (requests, or handshake messages). [`FrameDecoder`] finds where each complete top-level value
//! ends, reading only headers: str/bin/ext payloads (such as a PackedForward payload of megabytes)
//! are jumped over by their declared length, never scanned.
//!
//! Invariants and limits:
//! - **Resumable**: the decoder keeps its scan position (the offset of the next header to read,
//!   which may lie beyond the bytes received while a payload arrives) and the counts of values
//!   still outstanding at each nesting level. Each header is decoded once, so a frame arriving a
//!   byte at a time costs O(frame length) in total; see [`FrameDecoder::scanned_bytes`].
//! - **Bounded**: the smallest size the frame can have (scan position + one byte per value still
//!   outstanding) is compared with `max_frame_bytes` after every header, so a frame that declares
//!   more than the limit fails as soon as the declaring header is in, before its bytes arrive.
//!   Nothing is allocated from a declared length; only the nesting stack grows, up to
//!   [`MAX_DEPTH`] entries.
//! - **Zero copy**: a complete frame is split off the front of the caller's `BytesMut` and
//!   returned as `Bytes`.
//!
//! Recovery: every [`FrameError`] is fatal for the connection: once a header is invalid or a frame
//! is refused the stream position of the next frame is unknown, so the connection must be closed.

use bytes::{Bytes, BytesMut};

use crate::msgpack::{Head, MAX_DEPTH, header_len, read_head};

/// Why the byte stream cannot be split into frames. The connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame needs at least {needed} bytes, more than the limit of {max}")]
    TooLarge { needed: u64, max: usize },
    #[error("invalid msgpack marker 0x{byte:02x} at frame offset {offset}")]
    InvalidMarker { offset: usize, byte: u8 },
    #[error("frame nests deeper than {max} containers at frame offset {offset}")]
    TooDeep { offset: usize, max: usize },
}

impl FrameError {
    /// Always true: framing is lost after any of these errors.
    pub fn is_fatal(&self) -> bool {
        true
    }
}

/// Incremental splitter of top-level msgpack values. See the module doc.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
    in_frame: bool,
    /// Offset (from the front of the buffer) of the next header to read.
    pos: usize,
    /// Values still to read at the current nesting level.
    remaining: u64,
    /// `remaining` of each enclosing level.
    stack: Vec<u64>,
    /// Values still to read at all levels (`remaining` + the sum of `stack`).
    outstanding: u64,
    scanned: u64,
}

impl FrameDecoder {
    /// A decoder refusing frames larger than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder {
            max_frame_bytes,
            in_frame: false,
            pos: 0,
            remaining: 0,
            stack: Vec::new(),
            outstanding: 0,
            scanned: 0,
        }
    }

    /// The frame size limit.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Split the next complete top-level value off the front of `buf`. `Ok(None)` means more
    /// bytes are needed (call again with the same buffer once more bytes were appended).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if !self.in_frame {
            if buf.is_empty() {
                return Ok(None);
            }
            self.in_frame = true;
            self.pos = 0;
            self.remaining = 1;
            self.outstanding = 1;
        }
        loop {
            while self.remaining == 0 {
                if let Some(r) = self.stack.pop() {
                    self.remaining = r;
                    continue;
                }
                if buf.len() < self.pos {
                    return Ok(None);
                }
                let frame = buf.split_to(self.pos).freeze();
                self.in_frame = false;
                self.pos = 0;
                return Ok(Some(frame));
            }
            let Some(&marker) = buf.get(self.pos) else {
                return Ok(None);
            };
            let Some(need) = header_len(marker) else {
                return Err(FrameError::InvalidMarker {
                    offset: self.pos,
                    byte: marker,
                });
            };
            if buf.len() - self.pos < need {
                self.scanned += 1;
                return Ok(None);
            }
            let (head, hlen) = match read_head(buf, self.pos) {
                Ok(h) => h,
                Err(_) => return Ok(None),
            };
            self.scanned += hlen as u64;
            let start = self.pos;
            self.remaining -= 1;
            self.outstanding -= 1;
            self.pos += hlen + head.payload_len();
            let children = match head {
                Head::Array(n) => u64::from(n),
                Head::Map(n) => 2 * u64::from(n),
                _ => 0,
            };
            if children > 0 {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(FrameError::TooDeep {
                        offset: start,
                        max: MAX_DEPTH,
                    });
                }
                self.stack.push(self.remaining);
                self.remaining = children;
                self.outstanding += children;
            }
            let needed = self.pos as u64 + self.outstanding;
            if needed > self.max_frame_bytes as u64 {
                return Err(FrameError::TooLarge {
                    needed,
                    max: self.max_frame_bytes,
                });
            }
        }
    }

    /// The smallest size the frame in progress can have, from what has been decoded so far
    /// (0 between frames).
    pub fn pending_len(&self) -> usize {
        if self.in_frame {
            self.pos
                .saturating_add(usize::try_from(self.outstanding).unwrap_or(usize::MAX))
        } else {
            0
        }
    }

    /// True while a frame has been started but not completed.
    pub fn in_frame(&self) -> bool {
        self.in_frame
    }

    /// Total bytes the decoder has examined since it was created (header bytes decoded, plus one
    /// marker byte per header found incomplete). Payload bytes are never examined. This is the
    /// decoder's work: it stays within a small multiple of the bytes framed, however the bytes
    /// are fragmented.
    pub fn scanned_bytes(&self) -> u64 {
        self.scanned
    }
}

/// True when `first`, the first byte of a connection, starts Fluentd's JSON convenience mode
/// (`[` or `{`), which ferry does not speak.
pub fn is_json_start(first: u8) -> bool {
    first == b'[' || first == b'{'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(d: &mut FrameDecoder, buf: &mut BytesMut) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(f) = d.decode(buf).unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn splits_back_to_back_values() {
        let mut buf = BytesMut::from(&[0xc0, 0x92, 0x01, 0xa1, b'x', 0x81, 0x01, 0x02][..]);
        let mut d = FrameDecoder::new(1024);
        let frames = decode_all(&mut d, &mut buf);
        assert_eq!(frames.len(), 3);
        assert_eq!(&frames[1][..], &[0x92, 0x01, 0xa1, b'x']);
        assert!(buf.is_empty());
        assert_eq!(d.pending_len(), 0);
    }

    #[test]
    fn waits_for_a_payload_without_rescanning() {
        let mut d = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&[0x92, 0xa1, b't', 0xc4, 100][..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(d.pending_len(), 105);
        let scanned = d.scanned_bytes();
        for _ in 0..99 {
            buf.extend_from_slice(&[7]);
            assert_eq!(d.decode(&mut buf).unwrap(), None);
        }
        assert_eq!(d.scanned_bytes(), scanned);
        buf.extend_from_slice(&[7]);
        assert_eq!(d.decode(&mut buf).unwrap().map(|f| f.len()), Some(105));
    }

    #[test]
    fn invalid_marker_and_depth_are_fatal() {
        let mut d = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&[0x92, 0xc1][..]);
        let err = d.decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            FrameError::InvalidMarker {
                offset: 1,
                byte: 0xc1
            }
        );
        assert!(err.is_fatal());
        let mut d = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&vec![0x91u8; MAX_DEPTH + 1][..]);
        assert!(matches!(
            d.decode(&mut buf),
            Err(FrameError::TooDeep { .. })
        ));
    }
}
