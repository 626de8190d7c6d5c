//! Loading the captured vectors (`shared/vectors/`) and rendering ferry's decoded values in the
//! vectors' JSON conventions.
#![allow(dead_code)]

pub mod load;
pub mod render;

use bytes::{Bytes, BytesMut};
use ferry_proto::frame::FrameDecoder;

/// Largest frame accepted while replaying vectors.
pub const MAX_FRAME: usize = 8 << 20;

/// Split `bytes` into frames with the whole input at once, at every split point (two feeds) and
/// one byte at a time; all must agree. Panics (naming `what`) otherwise, or when bytes are left
/// over.
pub fn frames_every_way(what: &str, bytes: &[u8]) -> Vec<Bytes> {
    let whole = feed(what, &[bytes]);
    for k in 0..=bytes.len() {
        let split = feed(what, &[&bytes[..k], &bytes[k..]]);
        assert_eq!(split, whole, "{what}: split at {k} gives different frames");
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(
        feed(what, &singles),
        whole,
        "{what}: byte-by-byte gives different frames"
    );
    whole
}

/// Feed `parts` in order to one decoder; every byte must end up in a frame.
pub fn feed(what: &str, parts: &[&[u8]]) -> Vec<Bytes> {
    let mut d = FrameDecoder::new(MAX_FRAME);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        while let Some(f) = d
            .decode(&mut buf)
            .unwrap_or_else(|e| panic!("{what}: frame error {e}"))
        {
            frames.push(f);
        }
    }
    assert!(
        buf.is_empty() && !d.in_frame(),
        "{what}: {} trailing bytes do not form a complete msgpack value",
        buf.len()
    );
    frames
}
