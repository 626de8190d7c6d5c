//! Per-stream sequence accounting: received, distinct, duplicated, lost.
//!
//! Each stream's sequence numbers are kept in a bitmap that grows as numbers arrive (one bit per
//! number up to the highest seen). A number at or above [`MAX_SEQ`] is counted as out of range
//! and not stored, so a corrupt record cannot make the bitmap allocate without bound.
//!
//! Loss is known only at the end: given how many events each stream sent (numbered from 0), the
//! numbers below that count never seen are lost; without the count, the gaps below the highest
//! number seen are.

use std::collections::BTreeMap;

use serde::Serialize;

/// Sequence numbers at or above this are counted as out of range (1 Gi numbers: a 128 MiB
/// bitmap per stream at most).
pub const MAX_SEQ: u64 = 1 << 30;

#[derive(Debug, Clone, Default)]
struct Stream {
    bits: Vec<u64>,
    received: u64,
    distinct: u64,
    max: Option<u64>,
}

impl Stream {
    fn record(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.bits.len() <= word {
            let grown = (word + 1).max(self.bits.len() * 2);
            self.bits.resize(grown, 0);
        }
        self.received += 1;
        self.max = Some(self.max.map_or(seq, |m| m.max(seq)));
        let mask = 1u64 << bit;
        let fresh = self.bits[word] & mask == 0;
        self.bits[word] |= mask;
        if fresh {
            self.distinct += 1;
        }
        fresh
    }

    fn distinct_below(&self, end: u64) -> u64 {
        let full = (end / 64) as usize;
        let mut n: u64 = self
            .bits
            .iter()
            .take(full)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let rest = end % 64;
        if rest > 0
            && let Some(w) = self.bits.get(full)
        {
            n += u64::from((w & ((1u64 << rest) - 1)).count_ones());
        }
        n
    }
}

/// Counts of one or more streams.
#[derive(Debug, Clone, Default)]
pub struct SeqCounter {
    streams: BTreeMap<u32, Stream>,
    out_of_range: u64,
}

/// The accounting at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SeqReport {
    /// Records received, duplicates included.
    pub received: u64,
    /// Distinct sequence numbers received.
    pub distinct: u64,
    /// Records received more than once (`received - distinct`).
    pub duplicated: u64,
    /// Sequence numbers expected and never received.
    pub lost: u64,
    /// Distinct numbers at or beyond a stream's expected count (an unknown stream counts whole).
    pub unexpected: u64,
    /// Numbers at or above [`MAX_SEQ`], not tracked.
    pub out_of_range: u64,
}

impl SeqCounter {
    pub fn new() -> Self {
        SeqCounter::default()
    }

    /// Count record `seq` of `stream`; true when it was the first time.
    pub fn record(&mut self, stream: u32, seq: u64) -> bool {
        if seq >= MAX_SEQ {
            self.out_of_range += 1;
            return false;
        }
        self.streams.entry(stream).or_default().record(seq)
    }

    /// Records received so far, duplicates included.
    pub fn received(&self) -> u64 {
        self.streams.values().map(|s| s.received).sum()
    }

    /// Distinct records received so far.
    pub fn distinct(&self) -> u64 {
        self.streams.values().map(|s| s.distinct).sum()
    }

    /// Distinct records received so far on the given streams.
    pub fn distinct_of(&self, streams: impl IntoIterator<Item = u32>) -> u64 {
        streams
            .into_iter()
            .filter_map(|s| self.streams.get(&s))
            .map(|s| s.distinct)
            .sum()
    }

    /// Merge another counter into this one (a record seen by both counts as a duplicate).
    pub fn merge(&mut self, other: &SeqCounter) {
        self.out_of_range += other.out_of_range;
        for (id, s) in &other.streams {
            let mine = self.streams.entry(*id).or_default();
            let dup_before = s.received - s.distinct;
            for (w, word) in s.bits.iter().enumerate() {
                let mut bits = *word;
                while bits != 0 {
                    let b = u64::from(bits.trailing_zeros());
                    mine.record(w as u64 * 64 + b);
                    bits &= bits - 1;
                }
            }
            mine.received += dup_before;
        }
    }

    /// The accounting against `expected` (events sent per stream, numbered from 0). With
    /// `None`, every stream is expected to hold 0..=its highest number.
    pub fn report(&self, expected: Option<&BTreeMap<u32, u64>>) -> SeqReport {
        let mut r = SeqReport {
            received: self.received(),
            distinct: self.distinct(),
            out_of_range: self.out_of_range,
            ..SeqReport::default()
        };
        r.duplicated = r.received - r.distinct;
        match expected {
            Some(expected) => {
                for (id, count) in expected {
                    let have = self.streams.get(id).map_or(0, |s| s.distinct_below(*count));
                    r.lost += count - have;
                }
                for (id, s) in &self.streams {
                    let inside = expected.get(id).map_or(0, |c| s.distinct_below(*c));
                    r.unexpected += s.distinct - inside;
                }
            }
            None => {
                for s in self.streams.values() {
                    let span = s.max.map_or(0, |m| m + 1);
                    r.lost += span - s.distinct;
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(pairs: &[(u32, u64)]) -> BTreeMap<u32, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn a_complete_stream_has_no_loss_and_no_duplicates() {
        let mut c = SeqCounter::new();
        for seq in (0..1000).rev() {
            assert!(c.record(1, seq));
        }
        let r = c.report(Some(&expect(&[(1, 1000)])));
        assert_eq!(
            (r.received, r.distinct, r.lost, r.duplicated),
            (1000, 1000, 0, 0)
        );
        assert_eq!(r.unexpected, 0);
    }

    #[test]
    fn gaps_and_a_missing_tail_are_lost_and_repeats_are_duplicates() {
        let mut c = SeqCounter::new();
        for seq in 0..100 {
            if seq % 10 != 3 {
                c.record(0, seq);
            }
        }
        assert!(!c.record(0, 5));
        assert!(!c.record(0, 5));
        c.record(2, 0);
        // Stream 0 sent 120: 10 gaps plus 20 at the end never came; stream 2 sent 1; stream 5
        // sent 4 and none came.
        let r = c.report(Some(&expect(&[(0, 120), (2, 1), (5, 4)])));
        assert_eq!(r.received, 90 + 2 + 1);
        assert_eq!(r.distinct, 91);
        assert_eq!(r.duplicated, 2);
        assert_eq!(r.lost, 10 + 20 + 4);
        // Without the sent counts only the gaps below the highest number are seen.
        let r = c.report(None);
        assert_eq!(r.lost, 10);
    }

    #[test]
    fn numbers_beyond_what_was_sent_are_unexpected_and_huge_ones_out_of_range() {
        let mut c = SeqCounter::new();
        c.record(0, 0);
        c.record(0, 7);
        c.record(9, 1);
        assert!(!c.record(0, MAX_SEQ));
        let r = c.report(Some(&expect(&[(0, 1)])));
        assert_eq!(r.unexpected, 2);
        assert_eq!(r.out_of_range, 1);
        assert_eq!(r.lost, 0);
    }

    #[test]
    fn merging_counts_records_seen_by_both_as_duplicates() {
        let (mut a, mut b) = (SeqCounter::new(), SeqCounter::new());
        for seq in 0..50 {
            a.record(1, seq);
        }
        for seq in 40..100 {
            b.record(1, seq);
        }
        b.record(1, 99);
        a.merge(&b);
        let r = a.report(Some(&expect(&[(1, 100)])));
        assert_eq!((r.distinct, r.duplicated, r.lost), (100, 11, 0));
        assert_eq!(r.received, 50 + 61);
    }
}
