//! An output's progress within a chunk, kept as buffer notes ([`ferry_buffer::Note`]) so that
//! the attempt after a failure, or after a crash, repeats only what was not done.
//!
//! | code | output | says | `small` | `a` | `b` |
//! |---|---|---|---|---|---|
//! | 1 | forward | a request was written | run | payload offset | length |
//! | 2 | forward | the server acknowledged it | run | payload offset | length |
//! | 3 | scribe | a slice's `Log` call was answered `OK` | | entry offset | length |
//! | 16 | file | a new file was published | part | | |
//! | 17 | file | an append to a file begins | file number | path hash | length before |
//! | 18 | file | the whole chunk is written and synced | | | |
//! | 19 | file | the appends noted before were undone | | | |
//!
//! Every output's codes are here so that they never collide: a chunk can meet two outputs,
//! its own and the `<secondary>`. `run` is a number drawn at each start of the process
//! ([`run_id`]): a request written by an earlier run and not acknowledged is one a crash
//! interrupted, and sending it again may duplicate its events downstream (counted).

use ferry_buffer::{Chunk, Note};
use std::sync::OnceLock;

/// What a note says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    RequestSent = 1,
    RequestAcked = 2,
    ScribeSliceOk = 3,
    FilePublished = 16,
    AppendBegun = 17,
    WriteDone = 18,
    AppendsUndone = 19,
}

impl Code {
    pub fn note(self, small: u32, a: u64, b: u64) -> Note {
        Note {
            code: self as u8,
            small,
            a,
            b,
        }
    }

    pub fn is(self, note: &Note) -> bool {
        note.code == self as u8
    }
}

/// A number drawn once per process start.
pub fn run_id() -> u32 {
    static RUN: OnceLock<u32> = OnceLock::new();
    *RUN.get_or_init(|| rand::random::<u32>() | 1)
}

/// Keeps a note, logging (not failing) when it cannot be written: a lost note only repeats
/// work.
pub fn keep(chunk: &Chunk, note: Note) {
    if let Err(e) = chunk.note(note) {
        let id = chunk.id();
        tracing::debug!(chunk = %id, error = %e, "could not keep a progress note");
    }
}

/// Payload ranges, merged: which bytes of a chunk a kind of note covers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// The ranges (`a` = offset, `b` = length) of the notes with `code` that `keep` accepts.
    pub fn of(notes: &[Note], code: Code, keep: impl Fn(&Note) -> bool) -> Self {
        let mut v: Vec<(u64, u64)> = notes
            .iter()
            .filter(|n| code.is(n) && keep(n) && n.b > 0)
            .map(|n| (n.a, n.a.saturating_add(n.b)))
            .collect();
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for (s, e) in v {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        Self(merged)
    }

    /// Whether `offset..offset + len` lies wholly inside the ranges.
    pub fn covers(&self, offset: u64, len: u64) -> bool {
        let end = offset.saturating_add(len);
        let i = self.0.partition_point(|&(s, _)| s <= offset);
        i > 0 && self.0[i - 1].1 >= end
    }

    /// Whether any byte of `offset..offset + len` is inside the ranges.
    pub fn touches(&self, offset: u64, len: u64) -> bool {
        let end = offset.saturating_add(len);
        self.0.iter().any(|&(s, e)| s < end && offset < e)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn acked(ranges: &[(u64, u64)]) -> Vec<Note> {
        ranges
            .iter()
            .map(|&(a, b)| Code::RequestAcked.note(1, a, b))
            .collect()
    }

    #[test]
    fn ranges_merge_and_cover() {
        let r = Ranges::of(
            &acked(&[(10, 5), (0, 10), (20, 5)]),
            Code::RequestAcked,
            |_| true,
        );
        assert!(r.covers(0, 15));
        assert!(r.covers(3, 4));
        assert!(!r.covers(0, 16));
        assert!(!r.covers(15, 5));
        assert!(r.covers(20, 5));
        assert!(r.touches(14, 10));
        assert!(!r.touches(15, 5));
        let sent = Ranges::of(&acked(&[(0, 10)]), Code::RequestSent, |_| true);
        assert!(sent.is_empty(), "other codes are not read");
    }

    proptest! {
        /// `covers` agrees with a byte-by-byte model.
        #[test]
        fn covers_agrees_with_a_byte_model(
            ranges in proptest::collection::vec((0u64..200, 0u64..40), 0..12),
            offset in 0u64..240,
            len in 1u64..40,
        ) {
            let r = Ranges::of(&acked(&ranges), Code::RequestAcked, |_| true);
            let byte_in = |x: u64| ranges.iter().any(|&(a, b)| a <= x && x < a + b);
            let model = (offset..offset + len).all(byte_in);
            prop_assert_eq!(r.covers(offset, len), model);
            let touched = (offset..offset + len).any(byte_in);
            prop_assert_eq!(r.touches(offset, len), touched);
        }
    }
}
