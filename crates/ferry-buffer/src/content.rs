//! What a chunk holds: its committed size and segments, and the in-memory payload of a memory
//! chunk.

use bytes::{Bytes, BytesMut};
use std::sync::Arc;

/// A run of whole appends inside a chunk payload: `offset..offset + len` holds `records`
/// records. Adjacent appends are merged up to `segment_target_size`, so a caller can send a big
/// chunk in pieces on entry boundaries without parsing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub len: u64,
    pub records: u64,
}

/// Committed size of a chunk and its segment list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    pub bytes: u64,
    pub records: u64,
    pub segments: Vec<Segment>,
}

impl Content {
    /// Adds an append that starts at the current end.
    pub fn push(&mut self, len: u64, records: u64, target: u64) {
        match self.segments.last_mut() {
            Some(last) if last.len + len <= target => {
                last.len += len;
                last.records += records;
            }
            _ => self.segments.push(Segment {
                offset: self.bytes,
                len,
                records,
            }),
        }
        self.bytes += len;
        self.records += records;
    }

    /// Cuts the content back to `bytes` / `records`, an earlier append boundary.
    pub fn truncate(&mut self, bytes: u64, records: u64) {
        while self.segments.last().is_some_and(|s| s.offset >= bytes) {
            self.segments.pop();
        }
        let n = self.segments.len();
        let before: u64 = self.segments[..n.saturating_sub(1)]
            .iter()
            .map(|s| s.records)
            .sum();
        if let Some(last) = self.segments.last_mut() {
            last.len = last.len.min(bytes - last.offset);
            last.records = records.saturating_sub(before);
        }
        self.bytes = self.bytes.min(bytes);
        self.records = self.records.min(records);
    }
}

/// Small appends are gathered into pieces of about this size in a memory chunk.
const MEM_PIECE: usize = 64 * 1024;

/// A memory chunk's payload: a list of byte pieces, contiguous when read in order.
#[derive(Debug, Default)]
pub struct MemBody {
    pieces: Vec<Bytes>,
    tail: BytesMut,
}

impl MemBody {
    pub fn push(&mut self, data: Bytes) {
        if data.len() >= MEM_PIECE / 4 {
            self.flush_tail();
            self.pieces.push(data);
        } else {
            self.tail.extend_from_slice(&data);
            if self.tail.len() >= MEM_PIECE {
                self.flush_tail();
            }
        }
    }

    fn flush_tail(&mut self) {
        if !self.tail.is_empty() {
            let full = std::mem::take(&mut self.tail);
            self.pieces.push(full.freeze());
        }
    }

    /// The payload as an immutable piece list.
    pub fn freeze(&mut self) -> Arc<MemPayload> {
        self.flush_tail();
        let mut starts = Vec::with_capacity(self.pieces.len());
        let mut at = 0u64;
        for p in &self.pieces {
            starts.push(at);
            at += p.len() as u64;
        }
        Arc::new(MemPayload {
            pieces: std::mem::take(&mut self.pieces),
            starts,
        })
    }
}

/// A sealed memory chunk's payload.
#[derive(Debug, Default)]
pub struct MemPayload {
    pieces: Vec<Bytes>,
    starts: Vec<u64>,
}

impl MemPayload {
    /// Copies as much as fits of the bytes at `offset` into `buf`.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> usize {
        let i = self.starts.partition_point(|&s| s <= offset);
        let Some(i) = i.checked_sub(1) else { return 0 };
        let mut done = 0;
        let mut skip = (offset - self.starts[i]) as usize;
        for piece in &self.pieces[i..] {
            if done == buf.len() {
                break;
            }
            let src = piece.get(skip..).unwrap_or_default();
            let n = src.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&src[..n]);
            done += n;
            skip = 0;
        }
        done
    }

    /// The bytes at `offset..offset + len` as slices of the stored pieces (no copy), in order.
    pub(crate) fn slices(&self, offset: u64, len: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        let i = self.starts.partition_point(|&s| s <= offset);
        let Some(i) = i.checked_sub(1) else {
            return out;
        };
        let mut left = len;
        let mut skip = usize::try_from(offset - self.starts[i]).unwrap_or(usize::MAX);
        for piece in &self.pieces[i..] {
            if left == 0 {
                break;
            }
            let avail = piece.len().saturating_sub(skip);
            let n = avail.min(usize::try_from(left).unwrap_or(usize::MAX));
            if n > 0 {
                out.push(piece.slice(skip..skip + n));
            }
            left -= n as u64;
            skip = 0;
        }
        out
    }

    /// The bytes at `offset..offset + len`, without copying when they lie in one piece.
    pub(crate) fn slice(&self, offset: u64, len: usize) -> Bytes {
        let i = self.starts.partition_point(|&s| s <= offset);
        if let Some(i) = i.checked_sub(1) {
            let skip = (offset - self.starts[i]) as usize;
            if let Some(piece) = self.pieces.get(i) {
                if skip + len <= piece.len() {
                    return piece.slice(skip..skip + len);
                }
            }
        }
        let mut out = vec![0u8; len];
        let n = self.read_at(&mut out, offset);
        out.truncate(n);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn slices_are_the_bytes_read_at_the_same_range(
            pieces in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..8),
            offset in 0u64..300,
            len in 0u64..300,
        ) {
            let mut body = MemBody::default();
            for p in &pieces {
                body.push(Bytes::from(p.clone()));
            }
            let m = body.freeze();
            let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
            let want_len = len.min(total.saturating_sub(offset)) as usize;
            let mut want = vec![0u8; want_len];
            let n = m.read_at(&mut want, offset);
            want.truncate(n);
            let got: Vec<u8> = m.slices(offset, want_len as u64).concat();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn adjacent_appends_merge_into_segments_up_to_the_target() {
        let mut c = Content::default();
        for _ in 0..10 {
            c.push(30, 2, 100);
        }
        assert_eq!(c.bytes, 300);
        assert_eq!(c.records, 20);
        let lens: Vec<u64> = c.segments.iter().map(|s| s.len).collect();
        assert_eq!(lens, vec![90, 90, 90, 30]);
        assert_eq!(c.segments[1].offset, 90);
        c.push(500, 1, 100);
        assert_eq!(c.segments.last().unwrap().len, 500);
    }

    #[test]
    fn truncation_cuts_back_to_an_append_boundary() {
        let mut c = Content::default();
        for _ in 0..10 {
            c.push(30, 2, 100);
        }
        c.truncate(120, 8);
        assert_eq!(c.bytes, 120);
        assert_eq!(c.records, 8);
        assert_eq!(c.segments.len(), 2);
        assert_eq!(
            c.segments[1],
            Segment {
                offset: 90,
                len: 30,
                records: 2
            }
        );
        c.truncate(0, 0);
        assert!(c.segments.is_empty());
    }

    #[test]
    fn memory_payload_reads_across_pieces() {
        let mut body = MemBody::default();
        let mut expect = Vec::new();
        for i in 0..200u32 {
            let piece: Vec<u8> = (0..(i * 97 % 20_000)).map(|b| b as u8).collect();
            expect.extend_from_slice(&piece);
            body.push(Bytes::from(piece));
        }
        let frozen = body.freeze();
        let mut out = vec![0u8; expect.len()];
        let mut at = 0;
        while at < out.len() {
            let end = (at + 7777).min(out.len());
            at += frozen.read_at(&mut out[at..end], at as u64);
        }
        assert_eq!(out, expect);
        assert_eq!(&frozen.slice(12_345, 50_000)[..], &expect[12_345..62_345]);
    }
}
