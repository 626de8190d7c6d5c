//! Lines a container runtime split: the one home of joining them.
//!
//! containerd and CRI-O write a line longer than their limit (16 KiB by default) as `P` parts
//! and a final `F` part (`TIME STREAM P|F MESSAGE`). Docker's json-file driver writes
//! `{"log":..,"stream":..,"time":..}` parts whose `log` does not end with `\n`; the last part's
//! does. stdout and stderr parts of one container interleave in one file, so parts are held per
//! stream and never mix.
//!
//! A caller (the tail input's decoder) feeds every line through [`Partials`]: a part is held, a
//! final part returns the whole text. What is held is bounded: when a joined text would pass
//! the bound, what is held is handed out as one event and counted as cut, and joining goes on
//! with the next part. Parts whose end never comes are handed out after a timeout and counted.

use std::time::{Duration, Instant};

/// How a runtime marks parts of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialFormat {
    /// CRI (containerd, CRI-O): the logtag's first field is `P` or `F`.
    Cri,
    /// Docker json-file: `log` without a trailing `\n` is a part.
    Docker,
}

/// How long parts wait for their end when nothing says otherwise.
pub const DEFAULT_PARTIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The stream a part belongs to: parts of different streams never join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    Other,
}

impl Stream {
    pub fn of(name: &[u8]) -> Self {
        match name {
            b"stdout" => Self::Stdout,
            b"stderr" => Self::Stderr,
            _ => Self::Other,
        }
    }

    /// The name CRI and Docker write (empty for another stream).
    pub fn name(self) -> &'static [u8] {
        match self {
            Self::Stdout => b"stdout",
            Self::Stderr => b"stderr",
            Self::Other => b"",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One CRI line's fields (`TIME STREAM LOGTAG MESSAGE`), or `None` when the line is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub time: &'a [u8],
    pub stream: &'a [u8],
    pub logtag: &'a [u8],
    pub message: &'a [u8],
}

impl<'a> CriLine<'a> {
    pub fn split(line: &'a [u8]) -> Option<Self> {
        let mut parts = line.splitn(4, |b| *b == b' ');
        let (Some(time), Some(stream), Some(logtag)) = (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if !matches!(stream, b"stdout" | b"stderr") {
            return None;
        }
        Some(Self {
            time,
            stream,
            logtag,
            message: parts.next().unwrap_or_default(),
        })
    }

    /// A `P` part (the logtag's first `:`-separated field); anything else ends a line.
    pub fn is_partial(&self) -> bool {
        self.logtag.split(|b| *b == b':').next() == Some(b"P")
    }
}

/// What one stream holds: the first part's own data (`T`: its time, or its whole record), the
/// text joined so far, and where the first part starts in the file.
#[derive(Debug)]
pub struct Held<T> {
    pub first: T,
    pub text: Vec<u8>,
    pub start: u64,
    pub since: Instant,
    pub parts: u32,
}

/// What [`Partials::part`] did with a part.
#[derive(Debug)]
pub enum Joined<T> {
    /// Held; more parts are expected.
    Held,
    /// The line is whole: the first part's data and the joined text (`None` when the line came
    /// in one piece, so the caller uses it as it is).
    Whole(Option<Held<T>>),
    /// The bound was reached: this is what was held, handed out as one event (cut). The part
    /// given was not consumed: give it again.
    Cut(Held<T>),
}

/// Parts held per stream.
#[derive(Debug)]
pub struct Partials<T> {
    held: [Option<Held<T>>; 3],
    max: usize,
}

impl<T> Partials<T> {
    /// `max`: the largest joined text held.
    pub fn new(max: usize) -> Self {
        Self {
            held: [None, None, None],
            max: max.max(1),
        }
    }

    /// One part of `stream`: `partial` when more parts follow. `first` makes the first part's
    /// data, called only when this part starts a new line.
    pub fn part(
        &mut self,
        stream: Stream,
        partial: bool,
        text: &[u8],
        start: u64,
        first: impl FnOnce() -> T,
    ) -> Joined<T> {
        let slot = &mut self.held[stream.index()];
        match slot {
            None if !partial => Joined::Whole(None),
            None => {
                let mut held = Held {
                    first: first(),
                    text: Vec::with_capacity(text.len().min(self.max) * 2),
                    start,
                    since: Instant::now(),
                    parts: 1,
                };
                // A single part over the bound: the reader's max_line_size already bounds it.
                held.text.extend_from_slice(text);
                *slot = Some(held);
                Joined::Held
            }
            Some(held) if held.text.len() + text.len() > self.max => {
                Joined::Cut(slot.take().expect("matched Some"))
            }
            Some(held) => {
                held.text.extend_from_slice(text);
                held.parts += 1;
                if partial {
                    Joined::Held
                } else {
                    Joined::Whole(slot.take())
                }
            }
        }
    }

    /// Where the earliest held part starts.
    pub fn start(&self) -> Option<u64> {
        self.held.iter().flatten().map(|h| h.start).min()
    }

    pub fn is_empty(&self) -> bool {
        self.held.iter().all(Option::is_none)
    }

    /// Takes the held lines whose first part came `timeout` or longer ago (all of them when
    /// `timeout` is `None`), earliest first.
    pub fn take_expired(&mut self, timeout: Option<Duration>) -> Vec<Held<T>> {
        let mut out: Vec<Held<T>> = self
            .held
            .iter_mut()
            .filter(|h| {
                h.as_ref()
                    .is_some_and(|h| timeout.is_none_or(|t| h.since.elapsed() >= t))
            })
            .filter_map(Option::take)
            .collect();
        out.sort_by_key(|h| h.start);
        out
    }

    /// Takes every held line (to hand them to the next file of a rotated path).
    pub fn take_all(&mut self) -> Vec<Held<T>> {
        self.held.iter_mut().filter_map(Option::take).collect()
    }

    /// Holds lines taken from another file, as if they started at `at` in this one. A stream
    /// this one already holds keeps its own.
    pub fn adopt(&mut self, held: Vec<Held<T>>, streams: &[Stream], at: u64) {
        for (mut h, stream) in held.into_iter().zip(streams) {
            let slot = &mut self.held[stream.index()];
            if slot.is_none() {
                h.start = at;
                *slot = Some(h);
            }
        }
    }

    /// The streams of [`Self::take_all`]'s lines, in its order.
    pub fn streams(&self) -> Vec<Stream> {
        [Stream::Stdout, Stream::Stderr, Stream::Other]
            .into_iter()
            .filter(|s| self.held[s.index()].is_some())
            .collect()
    }

    /// Forgets what is held (the file was rewritten under it).
    pub fn clear(&mut self) {
        self.held = [None, None, None];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_split_into_their_four_fields() {
        let l = CriLine::split(b"2026-12-07T10:00:00.1Z stderr P:x part one").unwrap();
        assert_eq!(l.time, b"2026-12-07T10:00:00.1Z");
        assert_eq!(l.stream, b"stderr");
        assert!(l.is_partial());
        assert_eq!(l.message, b"part one");
        let f = CriLine::split(b"2026-12-07T10:00:00.1Z stdout F").unwrap();
        assert!(!f.is_partial());
        assert_eq!(f.message, b"");
        assert!(CriLine::split(b"2026 other F x").is_none());
        assert!(CriLine::split(b"no").is_none());
    }

    #[test]
    fn parts_join_per_stream_and_never_mix() {
        let mut p = Partials::new(100);
        assert!(matches!(
            p.part(Stream::Stdout, true, b"a1", 0, || 1),
            Joined::Held
        ));
        assert!(matches!(
            p.part(Stream::Stderr, true, b"b1", 10, || 2),
            Joined::Held
        ));
        assert_eq!(p.start(), Some(0));
        // A whole line of stderr in between would be out of order; only parts come here.
        let Joined::Whole(Some(out)) = p.part(Stream::Stdout, false, b"a2", 20, || 3) else {
            panic!("stdout ends")
        };
        assert_eq!((out.first, &out.text[..], out.parts), (1, &b"a1a2"[..], 2));
        assert_eq!(p.start(), Some(10));
        let Joined::Whole(Some(out)) = p.part(Stream::Stderr, false, b"b2", 30, || 4) else {
            panic!("stderr ends")
        };
        assert_eq!((out.first, &out.text[..]), (2, &b"b1b2"[..]));
        assert!(p.is_empty());
        assert!(matches!(
            p.part(Stream::Stdout, false, b"whole", 40, || 5),
            Joined::Whole(None)
        ));
    }

    #[test]
    fn a_joined_text_over_the_bound_is_cut_and_joining_goes_on() {
        let mut p = Partials::new(5);
        assert!(matches!(
            p.part(Stream::Stdout, true, b"abc", 0, || ()),
            Joined::Held
        ));
        let Joined::Cut(held) = p.part(Stream::Stdout, true, b"def", 4, || ()) else {
            panic!("cut")
        };
        assert_eq!(held.text, b"abc");
        assert!(p.is_empty(), "the part given is not consumed");
        assert!(matches!(
            p.part(Stream::Stdout, true, b"def", 4, || ()),
            Joined::Held
        ));
        let Joined::Whole(Some(h)) = p.part(Stream::Stdout, false, b"g", 8, || ()) else {
            panic!("whole")
        };
        assert_eq!(h.text, b"defg");
    }

    #[test]
    fn parts_whose_end_never_comes_are_taken_after_the_timeout() {
        let mut p = Partials::new(100);
        p.part(Stream::Stderr, true, b"late", 7, || ());
        p.part(Stream::Stdout, true, b"early", 3, || ());
        assert!(p.take_expired(Some(Duration::from_secs(60))).is_empty());
        let all = p.take_expired(Some(Duration::ZERO));
        assert_eq!(
            all.iter().map(|h| h.start).collect::<Vec<_>>(),
            vec![3, 7],
            "earliest first"
        );
        assert!(p.is_empty());
    }
}
