//! Messages cut from a byte stream at a delimiter (ferry's `tcp` input, syslog's LF-delimited
//! framing), holding at most `limit` bytes of any message.
//!
//! A message longer than `limit` is never kept: once the bytes after the last delimiter pass
//! the limit they are dropped, and everything up to the next delimiter with them; the message
//! is counted once. The search resumes where the last one stopped, so a message arriving in
//! many reads is scanned once.

use bytes::BytesMut;

/// What one [`Delimited::drain`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Whole messages handed to the caller.
    pub messages: u64,
    /// Messages dropped for passing the limit.
    pub oversize: u64,
}

/// What [`Delimited::finish`] found after the last delimiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Last {
    /// Nothing, or the rest of a message already dropped and counted.
    Nothing,
    /// A message the end of the stream ended.
    Message(BytesMut),
    /// A message over the limit, dropped now.
    Oversize,
}

/// The framing state of one connection.
#[derive(Debug, Clone)]
pub struct Delimited {
    delimiter: Vec<u8>,
    limit: usize,
    /// Dropping the rest of an oversize message until its delimiter.
    discarding: bool,
    /// Bytes at the front of the buffer already searched without finding a delimiter.
    scanned: usize,
}

impl Delimited {
    /// `delimiter` must not be empty (configuration refuses an empty one).
    pub fn new(delimiter: &[u8], limit: usize) -> Self {
        Self {
            delimiter: if delimiter.is_empty() {
                b"\n".to_vec()
            } else {
                delimiter.to_vec()
            },
            limit,
            discarding: false,
            scanned: 0,
        }
    }

    /// Whether the bytes held are the rest of a message being dropped.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Hands every whole message at the front of `buf` to `each` (without its delimiter) and
    /// removes it; what is left is the start of the next message, at most `limit` bytes.
    pub fn drain(&mut self, buf: &mut BytesMut, mut each: impl FnMut(&[u8])) -> Drained {
        let mut out = Drained::default();
        let d = self.delimiter.len();
        let finder = memchr::memmem::Finder::new(&self.delimiter);
        let mut start = 0usize;
        let mut from = self.scanned;
        while let Some(at) = finder.find(&buf[from..]).map(|i| from + i) {
            let message = &buf[start..at];
            if self.discarding {
                self.discarding = false;
            } else if message.len() > self.limit {
                out.oversize += 1;
            } else {
                each(message);
                out.messages += 1;
            }
            start = at + d;
            from = start;
        }
        let _ = buf.split_to(start);
        // The tail may end with part of a delimiter: search again from there next time.
        self.scanned = buf.len().saturating_sub(d - 1);
        // Up to `d - 1` bytes may be the start of the delimiter after a message of `limit` bytes.
        if buf.len() > self.limit + d - 1 {
            if !self.discarding {
                out.oversize += 1;
                self.discarding = true;
            }
            // Keep only what could begin a delimiter.
            let keep = (d - 1).min(buf.len());
            let _ = buf.split_to(buf.len() - keep);
            self.scanned = 0;
        }
        out
    }

    /// What was left when the stream ended without a last delimiter; the buffer is emptied.
    pub fn finish(&mut self, buf: &mut BytesMut) -> Last {
        self.scanned = 0;
        let rest = buf.split();
        if std::mem::take(&mut self.discarding) || rest.is_empty() {
            Last::Nothing
        } else if rest.len() > self.limit {
            Last::Oversize
        } else {
            Last::Message(rest)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(delim: &[u8], limit: usize, reads: &[&[u8]]) -> (Vec<Vec<u8>>, u64, Option<Vec<u8>>) {
        let mut f = Delimited::new(delim, limit);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut oversize = 0;
        for r in reads {
            buf.extend_from_slice(r);
            oversize += f.drain(&mut buf, |m| got.push(m.to_vec())).oversize;
            assert!(buf.len() < limit + delim.len(), "{} held", buf.len());
        }
        let last = match f.finish(&mut buf) {
            Last::Nothing => None,
            Last::Message(m) => Some(m.to_vec()),
            Last::Oversize => {
                oversize += 1;
                None
            }
        };
        (got, oversize, last)
    }

    #[test]
    fn messages_split_across_reads_and_delimiters_split_across_reads_are_found() {
        let (got, over, last) = run(b"\r\n", 100, &[b"ab", b"c\r", b"\nde\r\nf"]);
        assert_eq!(got, vec![b"abc".to_vec(), b"de".to_vec()]);
        assert_eq!(over, 0);
        assert_eq!(last, Some(b"f".to_vec()));
    }

    #[test]
    fn a_message_of_exactly_the_limit_waiting_for_the_rest_of_its_delimiter_is_kept() {
        let (got, over, _) = run(b"\r\n", 3, &[b"abc\r", b"\nx\r\n"]);
        assert_eq!((got, over), (vec![b"abc".to_vec(), b"x".to_vec()], 0));
    }

    #[test]
    fn an_oversize_message_is_dropped_whole_and_counted_once_without_being_held() {
        let big = vec![b'x'; 50];
        let (got, over, last) = run(b"\n", 10, &[b"ok\n", &big, &big, b"tail\nnext\n"]);
        assert_eq!(got, vec![b"ok".to_vec(), b"next".to_vec()]);
        assert_eq!(over, 1);
        assert_eq!(last, None);
        // Within one read, too.
        let (got, over, _) = run(b"\n", 3, &[b"abcdef\nabc\n"]);
        assert_eq!((got, over), (vec![b"abc".to_vec()], 1));
    }

    proptest! {
        /// Any stream cut into any reads gives the same messages as splitting it whole, minus
        /// the oversize ones, and never holds more than the limit.
        #[test]
        fn any_reads_give_the_messages_of_the_whole_stream(
            parts in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'\r'), Just(b'\n')], 0..20), 0..20),
            limit in 1usize..12,
            crlf in any::<bool>(),
        ) {
            let delim: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let whole: Vec<u8> = parts.concat();
            let reads: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let (got, over, last) = run(delim, limit, &reads);
            let mut want = Vec::new();
            let mut want_over = 0;
            let mut rest: &[u8] = &whole;
            while let Some(i) = memchr::memmem::find(rest, delim) {
                if i > limit { want_over += 1 } else { want.push(rest[..i].to_vec()) }
                rest = &rest[i + delim.len()..];
            }
            // A tail over the limit is counted once, when it passes it or at the end.
            if rest.len() > limit { want_over += 1 }
            prop_assert_eq!(got, want);
            prop_assert_eq!(over, want_over);
            let want_last = (!rest.is_empty() && rest.len() <= limit).then(|| rest.to_vec());
            prop_assert_eq!(last, want_last);
        }
    }
}
