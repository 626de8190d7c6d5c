//! Fluentd's JSON convenience mode: a connection whose first byte is `[` or `{` carries JSON
//! requests (`["tag", time, {record}, {"chunk": "..."}]`, or Forward mode with an array of
//! entries) back to back, and gets JSON acks (`{"ack":"..."}`).
//!
//! - [`JsonSplitter`] finds where each top-level value ends, incrementally: it keeps its scan
//!   position, string and escape state and nesting depth between calls, so a value arriving a
//!   byte at a time costs O(length) in total. Limits: the value size (`chunk_size_limit`) and
//!   [`MAX_DEPTH`] levels of nesting. Anything but an array or object at the top level, or
//!   nesting beyond the limit, is fatal for the connection (framing is lost).
//! - [`to_msgpack`] turns one complete value into the equivalent msgpack frame, keeping object
//!   key order, so the request goes through the same path as a msgpack one. Integers become
//!   msgpack integers (so an integer time is a valid time), other numbers float64 (a float time
//!   is an invalid event, as in Fluentd). Strings must be valid UTF-8, as Fluentd's yajl wants.
//! - Not with `<security>`: the handshake is msgpack.

use bytes::{Bytes, BytesMut};
use ferry_proto::ChunkId;

/// Deepest nesting accepted in a JSON request.
pub(super) const MAX_DEPTH: u32 = 64;

/// Why the JSON stream cannot go on. Every variant is fatal for the connection: the end of the
/// broken value cannot be known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("JSON request larger than the limit of {max} bytes")]
    TooLarge { max: usize },
    #[error("JSON value at the top level is not an array or object (byte 0x{byte:02x})")]
    NotContainer { byte: u8 },
    #[error("JSON nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0}")]
    Invalid(String),
}

/// Splits a byte stream into top-level JSON arrays and objects. See the module doc.
#[derive(Debug)]
pub(super) struct JsonSplitter {
    max: usize,
    pos: usize,
    depth: u32,
    in_string: bool,
    escape: bool,
}

impl JsonSplitter {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            pos: 0,
            depth: 0,
            in_string: false,
            escape: false,
        }
    }

    /// The next complete value, `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, JsonError> {
        if self.depth == 0 {
            let ws = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            let _ = buf.split_to(ws);
            let Some(&first) = buf.first() else {
                return Ok(None);
            };
            if first != b'[' && first != b'{' {
                return Err(JsonError::NotContainer { byte: first });
            }
            self.pos = 0;
        }
        while let Some(&b) = buf.get(self.pos) {
            self.pos += 1;
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(JsonError::TooDeep);
                    }
                }
                b']' | b'}' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        let end = self.pos;
                        self.pos = 0;
                        return Ok(Some(buf.split_to(end).freeze()));
                    }
                }
                _ => {}
            }
        }
        if self.pos > self.max {
            return Err(JsonError::TooLarge { max: self.max });
        }
        Ok(None)
    }
}

/// The JSON ack for `chunk`: `{"ack":"<chunk>"}`, one buffer.
pub(super) fn encode_ack(chunk: &ChunkId) -> Bytes {
    let text = String::from_utf8_lossy(&chunk.bytes);
    let quoted = serde_json::to_string(&text).unwrap_or_else(|_| "\"\"".to_string());
    Bytes::from(format!("{{\"ack\":{quoted}}}"))
}

/// Converts one complete JSON value to msgpack, with the one JSON conversion of ferry
/// ([`crate::parse::json::to_msgpack`]).
pub(super) fn to_msgpack(json: &[u8]) -> Result<Bytes, JsonError> {
    let mut out = BytesMut::with_capacity(json.len());
    crate::parse::json::to_msgpack(json, &mut out)
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::request::{Limits, Request};

    #[test]
    fn splits_values_arriving_a_byte_at_a_time() {
        let input = br#" ["a", 1, {"s": "x]\"}"}] {"k": [1, {"n": null}]}"#;
        let mut s = JsonSplitter::new(1024);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in input {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = s.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0][..], br#"["a", 1, {"s": "x]\"}"}]"#);
        assert_eq!(&frames[1][..], br#"{"k": [1, {"n": null}]}"#);
    }

    proptest::proptest! {
        #[test]
        fn any_split_of_a_stream_gives_the_same_values(cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let input: &[u8] = br#"["a", 1, {"s": "x]\"}"}]  {"k": [1, {"n": null, "e": "\u00e9"}]} [["t", [[1, {}]]]]"#;
            let whole = {
                let mut s = JsonSplitter::new(1024);
                let mut buf = BytesMut::from(input);
                std::iter::from_fn(|| s.decode(&mut buf).unwrap()).collect::<Vec<_>>()
            };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % input.len()).collect();
            cuts.sort_unstable();
            let mut s = JsonSplitter::new(1024);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([input.len()]) {
                buf.extend_from_slice(&input[at..cut.max(at)]);
                at = cut.max(at);
                while let Some(f) = s.decode(&mut buf).unwrap() {
                    got.push(f);
                }
            }
            proptest::prop_assert_eq!(got, whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut s = JsonSplitter::new(128);
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(f)) = s.decode(&mut buf) {
                let _ = to_msgpack(&f);
            }
            let _ = to_msgpack(&data);
        }
    }

    #[test]
    fn limits_and_bad_starts_are_fatal() {
        let mut s = JsonSplitter::new(8);
        let mut buf = BytesMut::from(&b"[\"0123456789\""[..]);
        assert_eq!(s.decode(&mut buf), Err(JsonError::TooLarge { max: 8 }));
        let mut s = JsonSplitter::new(1024);
        assert!(matches!(
            s.decode(&mut BytesMut::from(&b"42"[..])),
            Err(JsonError::NotContainer { byte: b'4' })
        ));
        let deep = "[".repeat(MAX_DEPTH as usize + 1);
        assert_eq!(
            JsonSplitter::new(1024).decode(&mut BytesMut::from(deep.as_bytes())),
            Err(JsonError::TooDeep)
        );
    }

    #[test]
    fn a_json_message_becomes_a_msgpack_request_with_its_chunk() {
        let frame =
            to_msgpack(br#"["py.json", 1700000108, {"n": 1, "t": "h\u00e9 \ud83d\ude00"}, {"chunk": "anNvbi0x"}]"#)
                .unwrap();
        let Request::Events(batch) = Request::parse(frame, &Limits::default()).unwrap() else {
            panic!("not events")
        };
        assert_eq!(batch.tag, "py.json");
        let chunk = batch.options.chunk.unwrap();
        assert_eq!(&chunk.bytes[..], b"anNvbi0x");
        assert_eq!(&encode_ack(&chunk)[..], br#"{"ack":"anNvbi0x"}"#);
        let s = ferry_proto::entries::validate(&batch.entries).unwrap();
        assert_eq!((s.count, s.invalid), (1, 0));
        assert!(to_msgpack(br#"["a", tru]"#).is_err());
        assert!(to_msgpack(br#"{"a" 1}"#).is_err());
    }
}
