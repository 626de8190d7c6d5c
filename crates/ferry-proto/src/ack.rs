//! The acknowledgement `{"ack": chunk}`.
//!
//! A server answers a request that carried the `chunk` option with a one-entry map:
//! `81 a3 61 63 6b <chunk>`, the chunk re-sent with the **same msgpack type and bytes** it arrived
//! with (str as str, bin as bin). A request without `chunk` gets no reply.
//!
//! A client reads the reply as a map that contains the key `"ack"` with a str or bin value; any
//! other reply (Vector's negative ack `{}`, a map without `"ack"`, a non-map) is an [`AckError`],
//! which the client treats as a failed delivery. Comparing the returned id with the one it sent
//! is the client's job (a different id means the connection is out of step and must be dropped).

use bytes::{Bytes, BytesMut};

use crate::msgpack::{self, Head, MsgpackError, Reader};
use crate::options::ChunkId;

/// Why a reply is not an ack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("ack reply is a {found}, not a map")]
    NotMap { found: &'static str },
    #[error("reply map has no \"ack\" key (negative ack)")]
    NoAck,
    #[error("ack value is a {found}, not a str or bin")]
    BadChunk { found: &'static str },
    #[error("malformed ack reply: {0}")]
    Malformed(#[from] MsgpackError),
}

/// The reply for a request that carried `chunk`.
pub fn encode_ack(chunk: &ChunkId) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + chunk.bytes.len());
    msgpack::write_map_len(&mut out, 1);
    msgpack::write_str(&mut out, b"ack");
    chunk.encode(&mut out);
    out.freeze()
}

/// Read an ack reply (one complete msgpack value).
pub fn parse_ack(frame: &[u8]) -> Result<ChunkId, AckError> {
    let mut r = Reader::new(frame);
    let pairs = match r.peek()? {
        Head::Map(_) => r.map_len()?,
        other => {
            return Err(AckError::NotMap {
                found: other.type_name(),
            });
        }
    };
    let mut found = None;
    for _ in 0..pairs {
        let is_ack = match r.peek()? {
            Head::Str(_) => r.str()? == b"ack",
            _ => {
                r.raw_value()?;
                false
            }
        };
        if !is_ack {
            r.raw_value()?;
            continue;
        }
        let head = r.peek()?;
        match r.str_or_bin() {
            Ok((bytes, true)) => found = Some(ChunkId::str(Bytes::copy_from_slice(bytes))),
            Ok((bytes, false)) => found = Some(ChunkId::bin(Bytes::copy_from_slice(bytes))),
            Err(MsgpackError::Unexpected { .. }) => {
                return Err(AckError::BadChunk {
                    found: head.type_name(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    found.ok_or(AckError::NoAck)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_echoes_the_chunk_type() {
        let s = ChunkId::str(&b"abc"[..]);
        assert_eq!(&encode_ack(&s)[..], b"\x81\xa3ack\xa3abc");
        let b = ChunkId::bin(&b"abc"[..]);
        assert_eq!(&encode_ack(&b)[..], b"\x81\xa3ack\xc4\x03abc");
        assert_eq!(parse_ack(&encode_ack(&s)).unwrap(), s);
        assert_eq!(parse_ack(&encode_ack(&b)).unwrap(), b);
    }

    #[test]
    fn anything_but_an_ack_is_an_error() {
        assert_eq!(parse_ack(b"\x80"), Err(AckError::NoAck));
        assert_eq!(parse_ack(b"\x90"), Err(AckError::NotMap { found: "array" }));
        assert_eq!(
            parse_ack(b"\x81\xa3ack\x01"),
            Err(AckError::BadChunk { found: "int" })
        );
        assert!(matches!(
            parse_ack(b"\x81\xa3ack"),
            Err(AckError::Malformed(_))
        ));
        let other_key_first = b"\x82\xa1x\x01\xa3ack\xa1z";
        assert_eq!(parse_ack(other_key_first).unwrap(), ChunkId::str(&b"z"[..]));
    }
}
