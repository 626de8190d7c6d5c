//! The records ferry-bench sends and writes, and how they are read back.
//!
//! Every record carries its stream and its sequence number within that stream, so whoever sits
//! at the end of a pipeline can count loss and duplicates:
//!
//! ```text
//! msgpack: 83 a3 "seq" <uint> a6 "stream" <uint> a3 "pad" <str>
//! json:    {"seq":N,"stream":S,"pad":"..."}\n
//! ```
//!
//! The pad brings a record to about the requested size. Reading back never trusts the input:
//! a record without both numbers is `None`, never a panic.

use bytes::BytesMut;
use ferry_proto::msgpack::{self, Head, Reader};

/// Record key of the sequence number.
pub const SEQ_KEY: &str = "seq";
/// Record key of the stream number.
pub const STREAM_KEY: &str = "stream";
/// Record key of the padding.
pub const PAD_KEY: &str = "pad";

/// Bytes of a record besides its pad (map header, keys, a 9-byte seq, a small stream, the pad's
/// str header).
const OVERHEAD: usize = 28;

/// The shape of generated records: their padding.
#[derive(Debug, Clone)]
pub struct RecordShape {
    pad: String,
}

impl RecordShape {
    /// Records of about `record_size` bytes (msgpack; the JSON form is a few bytes longer).
    pub fn new(record_size: usize) -> Self {
        let len = record_size.saturating_sub(OVERHEAD);
        let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let pad = (0..len)
            .map(|i| char::from(alphabet[i % alphabet.len()]))
            .collect();
        RecordShape { pad }
    }

    /// Append the msgpack map of record `seq` of `stream`.
    pub fn write_msgpack(&self, out: &mut BytesMut, stream: u32, seq: u64) {
        msgpack::write_map_len(out, 3);
        msgpack::write_str(out, SEQ_KEY.as_bytes());
        msgpack::write_uint(out, seq);
        msgpack::write_str(out, STREAM_KEY.as_bytes());
        msgpack::write_uint(out, u64::from(stream));
        msgpack::write_str(out, PAD_KEY.as_bytes());
        msgpack::write_str(out, self.pad.as_bytes());
    }

    /// Append the JSON line (with its newline) of record `seq` of `stream`.
    pub fn write_json_line(&self, out: &mut Vec<u8>, stream: u32, seq: u64) {
        out.extend_from_slice(b"{\"seq\":");
        out.extend_from_slice(seq.to_string().as_bytes());
        out.extend_from_slice(b",\"stream\":");
        out.extend_from_slice(stream.to_string().as_bytes());
        out.extend_from_slice(b",\"pad\":\"");
        out.extend_from_slice(self.pad.as_bytes());
        out.extend_from_slice(b"\"}\n");
    }
}

/// `(stream, seq)` of a msgpack record map, or `None` when it lacks either or is not a map.
pub fn seq_from_msgpack(record: &[u8]) -> Option<(u32, u64)> {
    let mut r = Reader::new(record);
    let pairs = match r.peek().ok()? {
        Head::Map(_) => r.map_len().ok()?,
        _ => return None,
    };
    let (mut seq, mut stream) = (None, None);
    for _ in 0..pairs {
        let key = match r.peek().ok()? {
            Head::Str(_) => Some(r.str().ok()?),
            _ => {
                r.raw_value().ok()?;
                None
            }
        };
        match key {
            Some(k) if k == SEQ_KEY.as_bytes() => seq = Some(r.uint().ok()?),
            Some(k) if k == STREAM_KEY.as_bytes() => {
                stream = u32::try_from(r.uint().ok()?).ok();
            }
            _ => {
                r.raw_value().ok()?;
            }
        }
    }
    Some((stream?, seq?))
}

/// `(stream, seq)` of a JSON line holding `"seq":N` and `"stream":S` (as ferry's JSON formats
/// write them, with or without a space after the colon), without parsing the whole line.
pub fn seq_from_json(line: &[u8]) -> Option<(u32, u64)> {
    let seq = json_uint_field(line, b"\"seq\":")?;
    let stream = u32::try_from(json_uint_field(line, b"\"stream\":")?).ok()?;
    Some((stream, seq))
}

fn json_uint_field(line: &[u8], key: &[u8]) -> Option<u64> {
    let at = line.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = line.get(at..)?;
    let digits: &[u8] = {
        let start = rest.iter().position(|b| *b != b' ')?;
        let rest = rest.get(start..)?;
        let end = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        rest.get(..end)?
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_records_read_back_their_stream_and_seq() {
        let shape = RecordShape::new(200);
        let mut out = BytesMut::new();
        shape.write_msgpack(&mut out, 7, 123_456_789_012);
        assert!((190..=210).contains(&out.len()), "{} bytes", out.len());
        assert_eq!(seq_from_msgpack(&out), Some((7, 123_456_789_012)));
    }

    #[test]
    fn json_lines_read_back_their_stream_and_seq() {
        let shape = RecordShape::new(100);
        let mut out = Vec::new();
        shape.write_json_line(&mut out, 3, 42);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["seq"], 42);
        assert_eq!(v["stream"], 3);
        assert_eq!(seq_from_json(&out), Some((3, 42)));
        assert_eq!(
            seq_from_json(br#"{"stream": 9, "seq": 10, "pad":"x"}"#),
            Some((9, 10))
        );
    }

    #[test]
    fn records_without_both_numbers_are_refused() {
        assert_eq!(seq_from_json(br#"{"seq":1}"#), None);
        assert_eq!(seq_from_json(br#"{"seq":"1","stream":2}"#), None);
        assert_eq!(seq_from_msgpack(&[0x80]), None);
        assert_eq!(seq_from_msgpack(&[0x93, 1, 2, 3]), None);
        assert_eq!(seq_from_msgpack(&[0x82, 0xa3, b's', b'e', b'q']), None);
    }
}
