//! The parts of lines a container runtime split (CRI `P`/`F`, Docker's 16 KiB json-file
//! parts), joined per stream before the line is parsed ([`crate::parse::partial`]).

use super::{Built, LineDecoder};
use crate::parse::Record;
use crate::parse::partial::{CriLine, Held, Joined, Stream};
use ferry_proto::time::EventTime;
use std::time::Duration;

/// The most a decoder's scratch storage keeps between lines.
pub(super) const KEEP_CAPACITY: usize = 64 * 1024;

/// What a held part keeps of the first part of its line.
#[derive(Debug)]
pub(super) enum First {
    /// The CRI time and stream fields.
    Cri {
        time: Vec<u8>,
        stream: &'static [u8],
    },
    /// The parsed record of a Docker json-file part, and its time.
    Docker(Box<Record>, Option<EventTime>),
}

/// What is left to do with a part once [`LineDecoder::settle`] emitted what it ended.
enum Settled {
    /// Held, or it ended a joined line: nothing.
    Done,
    /// A whole line with nothing held: emit it as it is.
    Alone,
    /// The held parts were cut at the bound: offer the part again.
    Again,
}

impl LineDecoder {
    /// A CRI line: a `P` part is held, an `F` part ends its stream's line.
    pub(super) fn cri_part(&mut self, line: &[u8], start: u64, now: EventTime, out: &mut Built) {
        let Some(l) = CriLine::split(line) else {
            self.unit(line, start, now, out);
            return;
        };
        let stream = Stream::of(l.stream);
        loop {
            let joined = self
                .partials
                .part(stream, l.is_partial(), l.message, start, || First::Cri {
                    time: l.time.to_vec(),
                    stream: stream.name(),
                });
            match self.settle(joined, now, out) {
                Settled::Done => return,
                Settled::Alone => return self.unit(line, start, now, out),
                Settled::Again => {}
            }
        }
    }

    /// A Docker json-file line: a `log` without a trailing newline is a part.
    pub(super) fn docker_part(&mut self, line: &[u8], start: u64, now: EventTime, out: &mut Built) {
        let time = match self.setup.parse(line, &mut self.rec) {
            Ok(time) => time,
            Err(e) => return self.unmatched(line, e, now, out),
        };
        loop {
            let Some(log) = self.rec.get_str(b"log") else {
                // Not a json-file record: an event as it is.
                return self.parsed(time, line, start, now, out);
            };
            let partial = !log.ends_with(b"\n");
            if !partial && self.partials.is_empty() {
                // The common line: whole, and nothing held to end.
                return self.parsed(time, line, start, now, out);
            }
            let stream = Stream::of(self.rec.get_str(b"stream").unwrap_or_default());
            let rec = &self.rec;
            let joined = self.partials.part(stream, partial, log, start, || {
                First::Docker(Box::new(rec.clone()), time)
            });
            match self.settle(joined, now, out) {
                Settled::Done => return,
                Settled::Alone => return self.parsed(time, line, start, now, out),
                Settled::Again => {}
            }
        }
    }

    /// Emits what a part ended: a joined line, or the parts held when the bound cut them.
    fn settle(&mut self, joined: Joined<First>, now: EventTime, out: &mut Built) -> Settled {
        match joined {
            Joined::Held => Settled::Done,
            Joined::Whole(None) => Settled::Alone,
            Joined::Whole(Some(held)) => {
                out.partials_joined += 1;
                self.held(held, now, out);
                Settled::Done
            }
            Joined::Cut(held) => {
                out.partials_cut += 1;
                self.held(held, now, out);
                Settled::Again
            }
        }
    }

    /// Emits a line joined from its parts (or the parts held when it was cut or timed out).
    fn held(&mut self, held: Held<First>, now: EventTime, out: &mut Built) {
        match held.first {
            First::Cri { time, stream } => {
                let mut line = std::mem::take(&mut self.scratch);
                line.clear();
                line.extend_from_slice(&time);
                line.push(b' ');
                line.extend_from_slice(stream);
                line.extend_from_slice(b" F ");
                line.extend_from_slice(&held.text);
                self.unit(&line, held.start, now, out);
                // A decoder lives as long as its file is followed: storage grown for a long
                // line is not kept (200 containers that each once wrote a 200 KiB line would
                // hold 80 MB between them).
                if line.capacity() <= KEEP_CAPACITY {
                    self.scratch = line;
                }
                if self.rec.capacity() > KEEP_CAPACITY {
                    self.rec = Record::new();
                }
            }
            First::Docker(mut rec, time) => {
                rec.set_str("log", &held.text);
                std::mem::swap(&mut self.rec, &mut rec);
                self.parsed(time, &held.text, held.start, now, out);
                std::mem::swap(&mut self.rec, &mut rec);
            }
        }
    }

    /// Emits the parts held longer than the partial timeout (all of them with `None`), each as
    /// the event it would have been with its end.
    pub fn expire(&mut self, timeout: Option<Duration>, now: EventTime, out: &mut Built) {
        if self.partials.is_empty() {
            return;
        }
        for held in self.partials.take_expired(timeout) {
            out.partials_unfinished += 1;
            self.held(held, now, out);
        }
    }

    /// When parts wait too long for the rest of their line.
    pub fn partial_timeout(&self) -> Duration {
        self.partial_timeout
    }
}
