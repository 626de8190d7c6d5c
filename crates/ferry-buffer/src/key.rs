//! Chunk identity: the grouping key a chunk is filled under, and its unique id.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a chunk is grouped by (Fluentd's chunk keys).
///
/// The caller decides the key of each append: it splits batches by time slice (`timekey`, the
/// start of the slice in unix seconds) and by record keys (`variables`); the buffer only groups
/// appends with equal keys into the same staged chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    /// The event tag, when `tag` is a chunk key.
    pub tag: Option<String>,
    /// Start of the time slice in unix seconds, when `time` is a chunk key.
    pub timekey: Option<i64>,
    /// Record-key values, in the order the chunk keys name them.
    pub variables: Vec<(String, String)>,
}

impl ChunkKey {
    /// A key made of the tag alone (the forward output's default).
    pub fn tag(tag: impl Into<String>) -> Self {
        ChunkKey {
            tag: Some(tag.into()),
            timekey: None,
            variables: Vec::new(),
        }
    }
}

/// A chunk's 128-bit unique id: 8 bytes of creation time (unix microseconds, big-endian, so ids
/// sort roughly by age) followed by 8 random bytes. It is written in the chunk's journal header
/// and file names, so it is stable across restarts.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 16]);

impl ChunkId {
    /// A fresh id for a chunk created at `now`.
    pub fn generate(now: SystemTime) -> Self {
        let micros = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&micros.to_be_bytes());
        id[8..].copy_from_slice(&rand::random::<u64>().to_le_bytes());
        ChunkId(id)
    }

    /// The id as 32 lowercase hex digits (as used in file names).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(32);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s
    }

    /// Parses 32 hex digits; anything else is `None`.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0])?;
            let lo = hex_digit(pair[1])?;
            id[i] = (hi << 4) | lo;
        }
        Some(ChunkId(id))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip_preserves_the_id() {
        let id = ChunkId::generate(SystemTime::now());
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(ChunkId::from_hex("zz"), None);
        assert_eq!(ChunkId::from_hex(&"g".repeat(32)), None);
    }

    #[test]
    fn ids_of_chunks_created_later_sort_later() {
        let a = ChunkId::generate(UNIX_EPOCH + std::time::Duration::from_secs(10));
        let b = ChunkId::generate(UNIX_EPOCH + std::time::Duration::from_secs(11));
        assert!(a < b);
    }
}
