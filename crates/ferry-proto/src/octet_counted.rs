//! RFC 6587 octet counting (`MSG-LEN SP SYSLOG-MSG`), the framing syslog senders use over TCP
//! besides a newline after each message, and [`Framing`], which tells the two apart from a
//! connection's first byte (a digit starts a length; a syslog message starts with `<`).
//!
//! A message longer than the limit is skipped byte by byte as it arrives, never held, and
//! counted once. A length that is not a number (or longer than 10 digits) cannot be resynced:
//! [`OctetCounted::drain`] returns an error and the connection should be closed.

use crate::delimited::{Delimited, Drained};
use bytes::BytesMut;

/// The length prefix was not `NONZERO-DIGIT *DIGIT SP`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("octet counting: {0:?} does not start with a message length")]
pub struct BadLength(pub String);

/// The state of one octet-counted connection.
#[derive(Debug, Clone)]
pub struct OctetCounted {
    limit: usize,
    /// Bytes still to skip of a message over the limit.
    skipping: usize,
}

impl OctetCounted {
    pub fn new(limit: usize) -> Self {
        Self { limit, skipping: 0 }
    }

    /// Hands every whole message at the front of `buf` to `each` and removes it; what is left
    /// is an unfinished length or message (a message only while it is within the limit).
    pub fn drain(
        &mut self,
        buf: &mut BytesMut,
        mut each: impl FnMut(&[u8]),
    ) -> Result<Drained, BadLength> {
        let mut out = Drained::default();
        loop {
            if self.skipping > 0 {
                let n = self.skipping.min(buf.len());
                let _ = buf.split_to(n);
                self.skipping -= n;
                if self.skipping > 0 {
                    return Ok(out);
                }
            }
            let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == buf.len() {
                // An unfinished length (or nothing).
                if digits > 10 || (digits > 0 && buf[0] == b'0') {
                    return Err(BadLength(shown(buf)));
                }
                return Ok(out);
            }
            if digits == 0 || digits > 10 || buf[0] == b'0' || buf[digits] != b' ' {
                return Err(BadLength(shown(buf)));
            }
            let len: usize = std::str::from_utf8(&buf[..digits])
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| BadLength(shown(buf)))?;
            let start = digits + 1;
            if len > self.limit {
                out.oversize += 1;
                let _ = buf.split_to(start);
                self.skipping = len;
                continue;
            }
            if buf.len() < start + len {
                return Ok(out);
            }
            each(&buf[start..start + len]);
            out.messages += 1;
            let _ = buf.split_to(start + len);
        }
    }
}

fn shown(buf: &[u8]) -> String {
    String::from_utf8_lossy(&buf[..buf.len().min(32)]).into_owned()
}

/// A syslog connection's framing, chosen by its first byte.
#[derive(Debug, Clone)]
pub enum Framing {
    /// Nothing received yet.
    Unknown {
        delimiter: Vec<u8>,
        limit: usize,
    },
    Delimited(Delimited),
    OctetCounted(OctetCounted),
}

impl Framing {
    pub fn new(delimiter: &[u8], limit: usize) -> Self {
        Self::Unknown {
            delimiter: delimiter.to_vec(),
            limit,
        }
    }

    /// Whether the connection turned out to use octet counting.
    pub fn is_octet_counted(&self) -> bool {
        matches!(self, Self::OctetCounted(_))
    }

    /// [`Delimited::drain`] or [`OctetCounted::drain`], after choosing from the first byte.
    pub fn drain(
        &mut self,
        buf: &mut BytesMut,
        each: impl FnMut(&[u8]),
    ) -> Result<Drained, BadLength> {
        if let Self::Unknown { delimiter, limit } = self {
            match buf.first() {
                None => return Ok(Drained::default()),
                Some(b) if b.is_ascii_digit() => {
                    *self = Self::OctetCounted(OctetCounted::new(*limit))
                }
                Some(_) => *self = Self::Delimited(Delimited::new(delimiter, *limit)),
            }
        }
        match self {
            Self::Delimited(d) => Ok(d.drain(buf, each)),
            Self::OctetCounted(o) => o.drain(buf, each),
            Self::Unknown { .. } => Ok(Drained::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(limit: usize, reads: &[&[u8]]) -> (Vec<Vec<u8>>, u64, Result<(), BadLength>) {
        let mut f = OctetCounted::new(limit);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut over = 0;
        for r in reads {
            buf.extend_from_slice(r);
            match f.drain(&mut buf, |m| got.push(m.to_vec())) {
                Ok(d) => over += d.oversize,
                Err(e) => return (got, over, Err(e)),
            }
            assert!(buf.len() <= limit + 11, "{} held", buf.len());
        }
        (got, over, Ok(()))
    }

    #[test]
    fn messages_and_lengths_split_across_reads_are_whole() {
        let (got, over, r) = run(100, &[b"5 he", b"llo1", b"2 <13>hi the", b"re3 abc"]);
        assert_eq!(
            got,
            vec![b"hello".to_vec(), b"<13>hi there".to_vec(), b"abc".to_vec()]
        );
        assert_eq!((over, r), (0, Ok(())));
    }

    #[test]
    fn an_oversize_message_is_skipped_as_it_arrives_and_counted_once() {
        let big = vec![b'x'; 300];
        let (got, over, r) = run(10, &[b"300 ", &big[..100], &big[100..], b"2 ok"]);
        assert_eq!((got, over, r), (vec![b"ok".to_vec()], 1, Ok(())));
    }

    #[test]
    fn a_length_that_is_not_a_number_is_an_error() {
        assert!(run(10, &[b"abc def"]).2.is_err());
        assert!(run(10, &[b"05 hello"]).2.is_err());
        assert!(run(10, &[b"12345678901 x"]).2.is_err());
        assert!(run(10, &[b"3x abc"]).2.is_err());
    }

    #[test]
    fn the_first_byte_chooses_the_framing() {
        let mut f = Framing::new(b"\n", 100);
        let mut buf = BytesMut::from(&b"<13>a\n<14>b\n"[..]);
        let mut got = Vec::new();
        f.drain(&mut buf, |m| got.push(m.to_vec())).unwrap();
        assert_eq!(got, vec![b"<13>a".to_vec(), b"<14>b".to_vec()]);
        assert!(!f.is_octet_counted());
        let mut f = Framing::new(b"\n", 100);
        let mut buf = BytesMut::from(&b"5 <13>a3 xyz"[..]);
        let mut got = Vec::new();
        f.drain(&mut buf, |m| got.push(m.to_vec())).unwrap();
        assert_eq!(got, vec![b"<13>a".to_vec(), b"xyz".to_vec()]);
        assert!(f.is_octet_counted());
    }
}
