//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_buffer::{Buffer, BufferConfig, Chunk, ChunkKey, Durability};

/// One msgpack `[time, {"id": id, "pad": "..."}]` entry of about `size` bytes.
pub fn entry(id: u64, size: usize) -> Vec<u8> {
    let pad = size.saturating_sub(30).min(60_000);
    let mut out = Vec::with_capacity(pad + 32);
    out.push(0x92);
    out.push(0xce);
    out.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    out.push(0x82);
    out.extend_from_slice(&[0xa2, b'i', b'd', 0xcf]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0xa3, b'p', b'a', b'd', 0xda]);
    out.extend_from_slice(&(pad as u16).to_be_bytes());
    out.extend((0..pad).map(|i| b'a' + (i % 26) as u8));
    out
}

/// Several entries in one append.
pub fn entries(ids: &[u64], size: usize) -> Vec<u8> {
    ids.iter().flat_map(|&id| entry(id, size)).collect()
}

/// The ids of a concatenation of [`entry`]s.
pub fn parse_ids(mut b: &[u8]) -> Vec<u64> {
    let mut ids = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 26, "truncated entry");
        assert_eq!(b[0], 0x92);
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[11..19]);
        ids.push(u64::from_be_bytes(id));
        let pad = u16::from_be_bytes([b[24], b[25]]) as usize;
        b = &b[26 + pad..];
    }
    ids
}

/// Streams a chunk's payload with a small buffer.
pub fn read_all(chunk: &Chunk) -> Vec<u8> {
    let mut r = chunk.reader().expect("reader");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = r.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

pub fn far_future() -> SystemTime {
    SystemTime::now() + Duration::from_secs(10 * 365 * 86_400)
}

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn tag(t: &str) -> ChunkKey {
    ChunkKey::tag(t)
}

/// A small file buffer config (no fsync, to keep tests quick where durability is not tested).
pub fn small_file_config(dir: &Path) -> BufferConfig {
    let mut c = BufferConfig::file(dir);
    c.durability = Durability::OsCache;
    c.chunk_limit_size = 64 * 1024;
    c.total_limit_size = 1024 * 1024;
    c
}

/// Takes every queued chunk (sealing staged ones first), returns (id, ids in it), and rolls
/// them all back.
pub fn drain_ids(buffer: &Buffer) -> Vec<(ferry_buffer::ChunkId, Vec<u64>)> {
    buffer.flush_all();
    let mut taken = Vec::new();
    while let Some(c) = buffer.take(far_future()) {
        taken.push(c);
    }
    let out = taken
        .iter()
        .map(|c| (c.id(), parse_ids(&read_all(c))))
        .collect();
    for c in taken {
        buffer.rollback(c);
    }
    out
}

/// Files under `dir` (not recursive) whose names end with `suffix`.
pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
