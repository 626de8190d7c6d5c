//! The options map: the optional last element of a Forward request.
//!
//! | key | type on the wire | meaning |
//! |---|---|---|
//! | `size` | uint | number of events (out_forward always sends it) |
//! | `chunk` | str (bin accepted) | asks for `{"ack": chunk}`; echoed with the same msgpack type |
//! | `compressed` | str `"text"`, `"gzip"`, `"zstd"` | payload compression (`text` = none) |
//! | `fluent_signal` | int | Fluent Bit event type (0 logs, 1 metrics, 2 traces) |
//! | `metadata` | any (a map from Fluent Bit) | kept as raw msgpack bytes |
//! | anything else | any | kept as raw key and value bytes in [`Options::unknown`] |
//!
//! A known key whose value is `nil` counts as absent. A known key with a value of the wrong type
//! is an error (the request is skipped, the connection goes on). Keys are compared as bytes; a
//! repeated key keeps its last value.
//!
//! Encoding order follows Fluentd's out_forward: `size`, `compressed`, `chunk`, then
//! `fluent_signal`, `metadata` and the unknown keys.

use bytes::{Bytes, BytesMut};

use crate::msgpack::{self, Head, MsgpackError, Reader};

/// The msgpack type a chunk id travelled as. An ack echoes it with the same type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkIdKind {
    Str,
    Bin,
}

/// The opaque chunk id of the `chunk` option.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkId {
    pub bytes: Bytes,
    pub kind: ChunkIdKind,
}

impl ChunkId {
    /// A chunk id sent as msgpack str (what Fluentd and Fluent Bit send).
    pub fn str(bytes: impl Into<Bytes>) -> Self {
        ChunkId {
            bytes: bytes.into(),
            kind: ChunkIdKind::Str,
        }
    }

    /// A chunk id sent as msgpack bin.
    pub fn bin(bytes: impl Into<Bytes>) -> Self {
        ChunkId {
            bytes: bytes.into(),
            kind: ChunkIdKind::Bin,
        }
    }

    /// The base64 rendering (24 chars, str) of a 16-byte unique id, the form Fluent Bit sends
    /// (Fluentd adds a trailing newline; receivers treat the id as opaque either way).
    pub fn from_unique_id(id: &[u8; 16]) -> Self {
        ChunkId::str(base64(id))
    }

    /// Write the id as msgpack, with its own type.
    pub fn encode(&self, out: &mut BytesMut) {
        match self.kind {
            ChunkIdKind::Str => msgpack::write_str(out, &self.bytes),
            ChunkIdKind::Bin => msgpack::write_bin(out, &self.bytes),
        }
    }
}

fn base64(data: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// Payload compression named by the `compressed` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `"text"`: not compressed.
    Text,
    /// `"gzip"`: one or more concatenated gzip members.
    Gzip,
    /// `"zstd"`: one or more concatenated zstd frames (Fluentd 1.19+, Fluent Bit).
    Zstd,
}

impl Compression {
    /// The option value on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Compression::Text => "text",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// From the option value on the wire.
    pub fn from_wire(v: &[u8]) -> Option<Self> {
        match v {
            b"text" => Some(Compression::Text),
            b"gzip" => Some(Compression::Gzip),
            b"zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// The decoded options map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub size: Option<u64>,
    pub chunk: Option<ChunkId>,
    pub compressed: Option<Compression>,
    pub fluent_signal: Option<i64>,
    /// Raw msgpack bytes of the `metadata` value.
    pub metadata: Option<Bytes>,
    /// Raw msgpack key bytes and raw value bytes of every other key, in wire order.
    pub unknown: Vec<(Bytes, Bytes)>,
}

/// Why an options element was refused. The request is skipped; the connection can go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("options is a {found}, not a map")]
    NotMap { found: &'static str },
    #[error("option {key:?} must be {expected}, found {found}")]
    BadValue {
        key: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("unknown compression {value:?}")]
    UnknownCompression { value: String },
    #[error("malformed options map: {0}")]
    Malformed(#[from] MsgpackError),
}

impl Options {
    /// Decode an options element: `buf` holds exactly one msgpack value, a map or nil.
    /// `metadata` and unknown entries are zero-copy slices of `buf`.
    pub fn decode(buf: &Bytes) -> Result<Options, OptionsError> {
        let mut r = Reader::new(buf);
        let pairs = match r.peek()? {
            Head::Nil => return Ok(Options::default()),
            Head::Map(_) => r.map_len()?,
            other => {
                return Err(OptionsError::NotMap {
                    found: other.type_name(),
                });
            }
        };
        let mut o = Options::default();
        for _ in 0..pairs {
            let key_start = r.pos();
            let key = match r.peek()? {
                Head::Str(_) => Some(r.str()?),
                _ => {
                    r.raw_value()?;
                    None
                }
            };
            let key_end = r.pos();
            let value_head = r.peek()?;
            if value_head == Head::Nil && matches!(key, Some(k) if is_known(k)) {
                r.head()?;
                continue;
            }
            let bad = |key: &'static str, expected: &'static str| OptionsError::BadValue {
                key,
                expected,
                found: value_head.type_name(),
            };
            match key {
                Some(b"size") => o.size = Some(r.uint().map_err(|_| bad("size", "uint"))?),
                Some(b"chunk") => {
                    let (bytes, is_str) = r.str_or_bin().map_err(|_| bad("chunk", "str or bin"))?;
                    let bytes = buf.slice_ref(bytes);
                    o.chunk = Some(if is_str {
                        ChunkId::str(bytes)
                    } else {
                        ChunkId::bin(bytes)
                    });
                }
                Some(b"compressed") => {
                    let v = r.str().map_err(|_| bad("compressed", "str"))?;
                    o.compressed = Some(Compression::from_wire(v).ok_or_else(|| {
                        OptionsError::UnknownCompression {
                            value: String::from_utf8_lossy(v).into_owned(),
                        }
                    })?);
                }
                Some(b"fluent_signal") => {
                    o.fluent_signal = Some(r.int().map_err(|_| bad("fluent_signal", "int"))?);
                }
                Some(b"metadata") => o.metadata = Some(buf.slice_ref(r.raw_value()?)),
                _ => {
                    let value = r.raw_value()?;
                    o.unknown
                        .push((buf.slice(key_start..key_end), buf.slice_ref(value)));
                }
            }
        }
        Ok(o)
    }

    /// Number of keys [`Options::encode`] writes.
    pub fn len(&self) -> usize {
        usize::from(self.size.is_some())
            + usize::from(self.compressed.is_some())
            + usize::from(self.chunk.is_some())
            + usize::from(self.fluent_signal.is_some())
            + usize::from(self.metadata.is_some())
            + self.unknown.len()
    }

    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write the options map in Fluentd's key order (size, compressed, chunk), then
    /// fluent_signal, metadata and unknown keys.
    pub fn encode(&self, out: &mut BytesMut) {
        msgpack::write_map_len(out, self.len());
        if let Some(size) = self.size {
            msgpack::write_str(out, b"size");
            msgpack::write_uint(out, size);
        }
        if let Some(c) = self.compressed {
            msgpack::write_str(out, b"compressed");
            msgpack::write_str(out, c.as_str().as_bytes());
        }
        if let Some(chunk) = &self.chunk {
            msgpack::write_str(out, b"chunk");
            chunk.encode(out);
        }
        if let Some(signal) = self.fluent_signal {
            msgpack::write_str(out, b"fluent_signal");
            msgpack::write_int(out, signal);
        }
        if let Some(meta) = &self.metadata {
            msgpack::write_str(out, b"metadata");
            out.extend_from_slice(meta);
        }
        for (k, v) in &self.unknown {
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
    }
}

fn is_known(key: &[u8]) -> bool {
    matches!(
        key,
        b"size" | b"chunk" | b"compressed" | b"fluent_signal" | b"metadata"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_a_unique_id_matches_the_standard_alphabet() {
        assert_eq!(base64(b"chunk-packed"), b"Y2h1bmstcGFja2Vk");
        assert_eq!(base64(b"json-1"), b"anNvbi0x");
        assert_eq!(base64(b"ab"), b"YWI=");
        assert_eq!(ChunkId::from_unique_id(&[0xff; 16]).bytes.len(), 24);
    }

    #[test]
    fn decodes_every_known_key_and_keeps_unknown_ones() {
        let mut b = BytesMut::new();
        let o = Options {
            size: Some(3),
            chunk: Some(ChunkId::bin(&b"\x01\x02"[..])),
            compressed: Some(Compression::Gzip),
            fluent_signal: Some(0),
            metadata: Some(Bytes::from_static(&[0x81, 0xa1, b'k', 0x01])),
            unknown: vec![(
                Bytes::from_static(b"\xaacustom_key"),
                Bytes::from_static(b"\xa1v"),
            )],
        };
        o.encode(&mut b);
        assert_eq!(Options::decode(&b.freeze()).unwrap(), o);
    }

    #[test]
    fn wrong_value_types_are_errors_and_nil_is_absent() {
        let chunk_int = Bytes::from_static(b"\x81\xa5chunk\x01");
        assert!(matches!(
            Options::decode(&chunk_int),
            Err(OptionsError::BadValue { key: "chunk", .. })
        ));
        let chunk_nil = Bytes::from_static(b"\x81\xa5chunk\xc0");
        assert_eq!(Options::decode(&chunk_nil).unwrap(), Options::default());
        let zip = Bytes::from_static(b"\x81\xaacompressed\xa3zip");
        assert!(matches!(
            Options::decode(&zip),
            Err(OptionsError::UnknownCompression { .. })
        ));
        let list = Bytes::from_static(b"\x90");
        assert_eq!(
            Options::decode(&list),
            Err(OptionsError::NotMap { found: "array" })
        );
    }
}
