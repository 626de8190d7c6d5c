//! The poller's side of the kafka_group input: librdkafka polled on a thread of its own (as a
//! plain consumer polls it), each message copied into one arena per round ([`Polled`]), rounds
//! handed to the committer over a channel of one.
//!
//! The arena is the point: a message detached from librdkafka one by one costs three
//! allocations (payload, topic, key) and as many frees on the committer's thread; a round of
//! thousands shares one buffer that grows a few times and is dropped once.

use crate::logging::LogLimiter;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Messages taken into one round.
pub const ROUND: usize = 5000;
/// How long the poller waits for a message, or for the committer, before it polls again.
const WAIT: Duration = Duration::from_millis(100);

/// What of a message besides its payload, topic, partition and offset a round keeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    pub key: bool,
    pub headers: bool,
    pub timestamp: bool,
}

/// One round of messages, copied out of librdkafka.
#[derive(Debug, Default)]
pub struct Polled {
    data: Vec<u8>,
    topics: Vec<String>,
    messages: Vec<Meta>,
    /// Header names and values, as ranges of `data`; a message's are `Meta::headers`.
    headers: Vec<(Range<usize>, Option<Range<usize>>)>,
}

#[derive(Debug)]
struct Meta {
    topic: usize,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    payload: Range<usize>,
    key: Option<Range<usize>>,
    headers: Range<usize>,
}

/// One message of a [`Polled`] round.
#[derive(Clone, Copy)]
pub struct Polled1<'a> {
    round: &'a Polled,
    meta: &'a Meta,
}

impl Polled {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The topics of the round; [`Polled1::topic_index`] indexes them.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    pub fn iter(&self) -> impl Iterator<Item = Polled1<'_>> {
        self.messages
            .iter()
            .map(|meta| Polled1 { round: self, meta })
    }

    fn put(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        start..self.data.len()
    }

    /// Copies `m` (its key and headers as `keep` says).
    pub fn push(&mut self, m: &BorrowedMessage<'_>, keep: Keep) {
        let topic = match self.topics.iter().position(|t| t == m.topic()) {
            Some(i) => i,
            None => {
                self.topics.push(m.topic().to_string());
                self.topics.len() - 1
            }
        };
        let payload = self.put(m.payload().unwrap_or_default());
        let key = if keep.key {
            m.key().map(|k| self.put(k))
        } else {
            None
        };
        let first = self.headers.len();
        if keep.headers
            && let Some(headers) = m.headers()
        {
            for h in headers.iter() {
                let name = self.put(h.key.as_bytes());
                let value = h.value.map(|v| self.put(v));
                self.headers.push((name, value));
            }
        }
        self.messages.push(Meta {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: if keep.timestamp {
                m.timestamp().to_millis()
            } else {
                None
            },
            payload,
            key,
            headers: first..self.headers.len(),
        });
    }
}

impl<'a> Polled1<'a> {
    pub fn topic(&self) -> &'a str {
        &self.round.topics[self.meta.topic]
    }

    pub fn topic_index(&self) -> usize {
        self.meta.topic
    }

    pub fn partition(&self) -> i32 {
        self.meta.partition
    }

    pub fn offset(&self) -> i64 {
        self.meta.offset
    }

    /// Kafka's timestamp of the message, in milliseconds since the epoch, when the round keeps
    /// timestamps.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.meta.timestamp_ms
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.round.data[self.meta.payload.clone()]
    }

    /// The message's key, when the round keeps keys.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.meta.key.clone().map(|r| &self.round.data[r])
    }

    /// The message's headers (name, value), when the round keeps headers.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        let round = self.round;
        round.headers[self.meta.headers.clone()]
            .iter()
            .map(move |(name, value)| {
                (
                    &round.data[name.clone()],
                    value.clone().map_or(&[][..], |v| &round.data[v]),
                )
            })
    }
}

/// The poller's thread: rounds of up to [`ROUND`] messages, handed over as the committer takes
/// them (it says so on `taken`). While the committer works, the round keeps filling; while it
/// waits longer (a full buffer), the consumer is still polled every [`WAIT`] (its paused
/// partitions deliver nothing) so that it stays in its group. A message such a poll returns is
/// kept, never dropped: the offsets after it would pass it.
pub fn poll_loop<C: ConsumerContext>(
    name: &str,
    consumer: &BaseConsumer<C>,
    keep: Keep,
    tx: &tokio::sync::mpsc::Sender<Polled>,
    taken: &std::sync::mpsc::Receiver<()>,
    stop: &AtomicBool,
) {
    let errors = LogLimiter::default();
    let mut round = Polled::default();
    let poll = |timeout: Duration, round: &mut Polled| match consumer.poll(timeout) {
        Some(Ok(m)) => {
            round.push(&m, keep);
            true
        }
        Some(Err(e)) => {
            if let Some(s) = errors.allow() {
                tracing::warn!("{name}: {e}{s}");
            }
            false
        }
        None => false,
    };
    while !stop.load(Ordering::Relaxed) {
        if round.is_empty() {
            poll(WAIT, &mut round);
            continue;
        }
        if round.len() < ROUND && poll(Duration::ZERO, &mut round) {
            continue;
        }
        // A full round, or nothing more at hand: hand it over.
        loop {
            match tx.try_send(std::mem::take(&mut round)) {
                Ok(()) => break,
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
                Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                    round = back;
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if round.len() < ROUND && poll(Duration::ZERO, &mut round) {
                        continue;
                    }
                    if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        taken.recv_timeout(WAIT)
                    {
                        poll(Duration::ZERO, &mut round);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(topic: usize, payload: Range<usize>, headers: Range<usize>) -> Meta {
        Meta {
            topic,
            partition: 3,
            offset: 7,
            timestamp_ms: Some(1),
            payload,
            key: None,
            headers,
        }
    }

    #[test]
    fn messages_read_back_their_own_ranges_of_the_arena() {
        let mut p = Polled {
            topics: vec!["a".into(), "b".into()],
            ..Polled::default()
        };
        let first = p.put(b"one");
        let name = p.put(b"h");
        p.headers.push((name, None));
        let value = p.put(b"v");
        let name = p.put(b"k");
        p.headers.push((name, Some(value)));
        p.messages.push(meta(0, first, 0..2));
        let second = p.put(b"two");
        p.messages.push(meta(1, second, 2..2));
        let got: Vec<_> = p
            .iter()
            .map(|m| (m.topic(), m.payload(), m.headers().collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "a",
                    &b"one"[..],
                    vec![(&b"h"[..], &b""[..]), (&b"k"[..], &b"v"[..])]
                ),
                ("b", &b"two"[..], vec![]),
            ]
        );
    }
}
