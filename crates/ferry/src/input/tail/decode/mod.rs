//! Lines → entries: the parts of split lines joined ([`crate::parse::partial`]), the parser,
//! multiline assembly, `path_key` and `emit_unmatched_lines`, writing a PackedForward entry
//! stream.
//!
//! `@type none` without `path_key` has a fast path: each entry is written straight from the
//! line (`[now, {"message": line}]`), with the constant bytes prepared once per batch.

mod messages;
mod parts;

use crate::filter::concat::{Concat, ConcatRule, Fed, HeldMessages, Joined as JoinedMessage};
use crate::parse::partial::{Held, PartialFormat, Partials, Stream};
use crate::parse::{ParseError, ParseSetup, Record};
use bytes::{BufMut, BytesMut};
use ferry_proto::msgpack::{write_map_len, write_str};
use ferry_proto::time::EventTime;
use parts::First;
use std::sync::Arc;
use std::time::Duration;

pub use crate::parse::UNMATCHED_KEY;

/// Entries built from one read.
#[derive(Debug, Default)]
pub struct Built {
    pub entries: BytesMut,
    pub records: u64,
    /// Lines that did not parse (dropped, or emitted as `unmatched_line`).
    pub unmatched: u64,
    pub first_error: Option<(ParseError, String)>,
    /// Lines made of several parts, joined.
    pub partials_joined: u64,
    /// Joined lines cut at the bound (each piece is an event).
    pub partials_cut: u64,
    /// Parts whose end did not come in time (or before the file ended), emitted as they were.
    pub partials_unfinished: u64,
    /// Events the concat filter joined; of those, cut at the bound, and given out on a timeout.
    pub concat_joined: u64,
    pub concat_cut: u64,
    pub concat_timed_out: u64,
    /// Joined events that timed out, for the concat filter's `timeout_label`.
    pub timeout_entries: BytesMut,
    pub timeout_records: u64,
    /// The route's first concat filter ran over these entries.
    pub joined_by_input: bool,
}

/// Lines held back by multiline assembly.
#[derive(Debug)]
struct Pending {
    text: Vec<u8>,
    start: u64,
}

/// The lines a decoder holds, taken to be continued in the next file of a rotated path.
#[derive(Debug)]
pub struct HeldLines {
    partials: Vec<Held<First>>,
    streams: Vec<Stream>,
    multiline: Option<Pending>,
    concat: Option<(Arc<ConcatRule>, HeldMessages)>,
}

/// Turns lines into entries for one file.
#[derive(Debug)]
pub struct LineDecoder {
    /// The `<parse>` section: parser, multiline assembly, value rules, `estimate_current_event`.
    setup: ParseSetup,
    path_field: Option<(String, Vec<u8>)>,
    emit_unmatched: bool,
    max_event: usize,
    pending: Option<Pending>,
    /// Parts of split lines, per stream.
    partials: Partials<First>,
    /// How long parts wait for the rest of their line.
    partial_timeout: Duration,
    /// A joined CRI line.
    scratch: Vec<u8>,
    /// The route's first concat filter, run here (per stream).
    concat: Option<Concat>,
    /// Events the concat filter gave out (reused).
    joined: Vec<JoinedMessage>,
    rec: Record,
    /// `0x92` + time + map header + key, for the fast path.
    prefix: Vec<u8>,
}

impl LineDecoder {
    pub fn new(
        setup: ParseSetup,
        path_field: Option<(String, Vec<u8>)>,
        emit_unmatched: bool,
        max_event: usize,
        partial_timeout: Duration,
    ) -> Self {
        Self {
            setup,
            path_field,
            emit_unmatched,
            max_event,
            pending: None,
            partials: Partials::new(max_event),
            partial_timeout,
            scratch: Vec::new(),
            concat: None,
            joined: Vec::new(),
            rec: Record::new(),
            prefix: Vec::new(),
        }
    }

    /// Where the lines held (parts of split lines, multiline assembly) start: they are not
    /// committed yet.
    pub fn pending_start(&self) -> Option<u64> {
        let multiline = self.pending.as_ref().map(|p| p.start);
        let concat = self.concat.as_ref().and_then(Concat::start);
        [multiline, self.partials.start(), concat]
            .into_iter()
            .flatten()
            .min()
    }

    /// Forgets the lines held (they came from a file rewritten under us).
    pub fn clear_pending(&mut self) {
        self.pending = None;
        self.partials.clear();
        if let Some(c) = &mut self.concat {
            c.clear();
        }
    }

    /// Takes the lines held: a rotated file at its end hands them to the next file of its path,
    /// where the message they begin goes on (a stack trace written across a rotation).
    pub fn take_held(&mut self) -> HeldLines {
        HeldLines {
            streams: self.partials.streams(),
            partials: self.partials.take_all(),
            multiline: self.pending.take(),
            concat: self
                .concat
                .as_mut()
                .map(|c| (Arc::clone(c.rule()), c.take_all())),
        }
    }

    /// Holds lines another file held, as if they started at `at` in this file (so this file's
    /// position stays there until they are emitted).
    pub fn adopt(&mut self, held: HeldLines, at: u64) {
        self.partials.adopt(held.partials, &held.streams, at);
        if self.pending.is_none() {
            self.pending = held.multiline.map(|mut p| {
                p.start = at;
                p
            });
        }
        if let Some((rule, messages)) = held.concat {
            let max = self.max_event;
            self.concat
                .get_or_insert_with(|| Concat::new(rule, max))
                .adopt(messages, at);
        }
    }

    /// Prepares the fast path's constant bytes for a batch stamped `now`.
    pub fn begin(&mut self, now: EventTime) {
        self.prefix.clear();
        let s = &self.setup;
        if let (Some(key), None, None, true, true, None) = (
            s.parser.none_key(),
            &s.multiline,
            &self.path_field,
            s.values.is_empty(),
            s.estimate_current_event,
            &self.concat,
        ) {
            let mut p = BytesMut::with_capacity(32);
            p.put_u8(0x92);
            now.encode(&mut p);
            write_map_len(&mut p, 1);
            write_str(&mut p, key.as_bytes());
            self.prefix.extend_from_slice(&p);
        }
    }

    /// One line from the reader.
    pub fn line(&mut self, line: &[u8], start: u64, now: EventTime, out: &mut Built) {
        if !self.prefix.is_empty() {
            out.entries.reserve(self.prefix.len() + 5 + line.len());
            out.entries.put_slice(&self.prefix);
            write_str(&mut out.entries, line);
            out.records += 1;
            return;
        }
        match self.setup.partials {
            Some(PartialFormat::Cri) => self.cri_part(line, start, now, out),
            Some(PartialFormat::Docker) => self.docker_part(line, start, now, out),
            None => self.unit(line, start, now, out),
        }
    }

    /// One whole line: multiline assembly, then the parser.
    fn unit(&mut self, line: &[u8], start: u64, now: EventTime, out: &mut Built) {
        let Some(ml) = &self.setup.multiline else {
            self.event(line, start, now, out);
            return;
        };
        if ml.firstline.is_match(line) {
            self.flush_multiline(now, out);
            self.pending = Some(Pending {
                text: line.to_vec(),
                start,
            });
            return;
        }
        match &mut self.pending {
            Some(p) if p.text.len() + 1 + line.len() <= self.max_event => {
                p.text.push(b'\n');
                p.text.extend_from_slice(line);
            }
            Some(_) => {
                // The event would exceed max_line_size: emit what is held, then this line alone.
                self.flush_multiline(now, out);
                self.unmatched(line, ParseError::NoMatch, now, out);
            }
            None => self.unmatched(line, ParseError::NoMatch, now, out),
        }
    }

    /// Emits every line held: parts of split lines, the multiline event being assembled, and
    /// the messages the concat filter holds.
    pub fn flush(&mut self, now: EventTime, out: &mut Built) {
        self.expire(None, now, out);
        self.flush_multiline(now, out);
        self.expire_concat(true, now, out);
    }

    /// Emits the multiline event being assembled (`format_firstline`), if any.
    pub fn flush_multiline(&mut self, now: EventTime, out: &mut Built) {
        if let Some(p) = self.pending.take() {
            self.event(&p.text, p.start, now, out);
        }
    }

    fn event(&mut self, text: &[u8], start: u64, now: EventTime, out: &mut Built) {
        match self.setup.parse(text, &mut self.rec) {
            Ok(time) => self.parsed(time, text, start, now, out),
            Err(e) => self.unmatched(text, e, now, out),
        }
    }

    /// Emits the record parsed from `text` (in `self.rec`), read at `start`: through the concat
    /// filter when the route has one.
    fn parsed(
        &mut self,
        time: Option<EventTime>,
        text: &[u8],
        start: u64,
        now: EventTime,
        out: &mut Built,
    ) {
        // Fluentd's in_tail takes a line without a time as unmatched when the parser does
        // not estimate one.
        if time.is_none() && !self.setup.estimate_current_event {
            return self.unmatched(text, ParseError::NoTime, now, out);
        }
        if let Some(c) = &mut self.concat {
            let mut joined = std::mem::take(&mut self.joined);
            let fed = c.feed(&self.rec, time, start, &mut joined);
            for j in joined.drain(..) {
                self.write_joined(j, now, out);
            }
            self.joined = joined;
            if fed == Fed::Taken {
                return;
            }
        }
        if let Some((key, path)) = &self.path_field {
            self.rec.str(key, path);
        }
        self.rec.write_entry(&mut out.entries, time.unwrap_or(now));
        out.records += 1;
    }

    fn unmatched(&mut self, text: &[u8], e: ParseError, now: EventTime, out: &mut Built) {
        out.unmatched += 1;
        if out.first_error.is_none() {
            let shown = &text[..text.len().min(256)];
            out.first_error = Some((e, String::from_utf8_lossy(shown).into_owned()));
        }
        if self.emit_unmatched {
            self.rec.clear();
            self.rec.str(UNMATCHED_KEY, text);
            if let Some((key, path)) = &self.path_field {
                self.rec.str(key, path);
            }
            self.rec.write_entry(&mut out.entries, now);
            out.records += 1;
        }
    }
}

#[cfg(test)]
mod tests;
