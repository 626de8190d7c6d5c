//! Client-side encoders for the three event modes.
//!
//! PackedForward is written exactly as Fluentd's out_forward writes it, so a Fluentd receiver sees
//! the same bytes:
//!
//! ```text
//! 93 | <tag str> | db LLLLLLLL <payload: entry stream, or its gzip/zstd> | <options map>
//! options = {"size": count, "compressed": "text"|"gzip"|"zstd", "chunk": id (only for acks)}
//! ```
//!
//! The payload always uses the str32 header (`db` + BE u32 length), whatever its size, for
//! compatibility with old receivers; [`packed_forward_header`] and [`packed_forward_trailer`]
//! give the bytes around the payload so a large payload can be written from disk without being
//! copied into the request.

use bytes::{BufMut, Bytes, BytesMut};

use crate::msgpack;
use crate::options::{ChunkId, Compression, Options};
use crate::time::EventTime;

pub use crate::compress::gzip_compress;

/// Append one entry `[time, record]`: `92`, the time (EventTime fixext8, or the integer seconds
/// when `time_as_integer`), then `record` (raw msgpack map bytes, copied as they are).
pub fn write_entry(out: &mut BytesMut, time: EventTime, time_as_integer: bool, record: &[u8]) {
    out.put_u8(0x92);
    write_time(out, time, time_as_integer);
    out.put_slice(record);
}

fn write_time(out: &mut BytesMut, time: EventTime, time_as_integer: bool) {
    if time_as_integer {
        msgpack::write_uint(out, u64::from(time.sec));
    } else {
        time.encode(out);
    }
}

/// The options out_forward sends with a PackedForward request.
pub fn packed_forward_options(
    count: u64,
    chunk: Option<&ChunkId>,
    compressed: Compression,
) -> Options {
    Options {
        size: Some(count),
        compressed: Some(compressed),
        chunk: chunk.cloned(),
        ..Options::default()
    }
}

/// Everything before the payload: `93`, the tag, and the str32 header for `payload_len` bytes.
pub fn packed_forward_header(tag: &str, payload_len: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(tag.len() + 10);
    write_packed_forward_header(&mut out, tag, payload_len);
    out.freeze()
}

fn write_packed_forward_header(out: &mut BytesMut, tag: &str, payload_len: usize) {
    out.put_u8(0x93);
    msgpack::write_str(out, tag.as_bytes());
    out.put_u8(0xdb);
    out.put_u32(
        u32::try_from(payload_len)
            .expect("payloads are below 4 GiB: chunk sizes are capped far lower"),
    );
}

/// Everything after the payload: the options map.
pub fn packed_forward_trailer(
    count: u64,
    chunk: Option<&ChunkId>,
    compressed: Compression,
) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    packed_forward_options(count, chunk, compressed).encode(&mut out);
    out.freeze()
}

/// Append a whole PackedForward request. `entries` is the payload as sent: the entry stream, or
/// its compressed form when `compressed` is not `Text`. `count` is the number of events.
pub fn encode_packed_forward(
    out: &mut BytesMut,
    tag: &str,
    entries: &[u8],
    count: u64,
    chunk: Option<&ChunkId>,
    compressed: Compression,
) {
    write_packed_forward_header(out, tag, entries.len());
    out.put_slice(entries);
    packed_forward_options(count, chunk, compressed).encode(out);
}

/// Append a Message-mode request `[tag, time, record, options?]` (`record` is raw map bytes).
pub fn encode_message(
    out: &mut BytesMut,
    tag: &str,
    time: EventTime,
    time_as_integer: bool,
    record: &[u8],
    options: Option<&Options>,
) {
    msgpack::write_array_len(out, 3 + usize::from(options.is_some()));
    msgpack::write_str(out, tag.as_bytes());
    write_time(out, time, time_as_integer);
    out.put_slice(record);
    if let Some(o) = options {
        o.encode(out);
    }
}

/// Append a Forward-mode request `[tag, [entries...], options?]`. `entries` is an entry stream of
/// exactly `count` entries (as built by [`write_entry`]); it is copied after the array header.
pub fn encode_forward(
    out: &mut BytesMut,
    tag: &str,
    entries: &[u8],
    count: u64,
    options: Option<&Options>,
) {
    msgpack::write_array_len(out, 2 + usize::from(options.is_some()));
    msgpack::write_str(out, tag.as_bytes());
    msgpack::write_array_len(
        out,
        usize::try_from(count)
            .expect("an entry count fits in usize: each entry takes bytes in memory"),
    );
    out.put_slice(entries);
    if let Some(o) = options {
        o.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_payload_and_trailer_concatenate_to_the_whole_request() {
        let mut entries = BytesMut::new();
        write_entry(&mut entries, EventTime::new(1, 2), false, &[0x80]);
        let chunk = ChunkId::str(&b"abc"[..]);
        let mut whole = BytesMut::new();
        encode_packed_forward(
            &mut whole,
            "t",
            &entries,
            1,
            Some(&chunk),
            Compression::Text,
        );
        let mut parts = BytesMut::new();
        parts.extend_from_slice(&packed_forward_header("t", entries.len()));
        parts.extend_from_slice(&entries);
        parts.extend_from_slice(&packed_forward_trailer(1, Some(&chunk), Compression::Text));
        assert_eq!(whole, parts);
        assert_eq!(&whole[..8], &[0x93, 0xa1, b't', 0xdb, 0, 0, 0, 12]);
    }

    #[test]
    fn integer_time_drops_nanoseconds() {
        let mut b = BytesMut::new();
        write_entry(&mut b, EventTime::new(1_700_000_003, 5), true, &[0x80]);
        assert_eq!(&b[..], &[0x92, 0xce, 0x65, 0x53, 0xf1, 0x03, 0x80]);
    }
}
