//! Lines → entries: the parts of split lines joined ([`crate::parse::partial`]), the parser,
//! multiline assembly, `path_key` and `emit_unmatched_lines`, writing a PackedForward entry
//! stream.
//!
//! `@type none` without `path_key` has a fast path: each entry is written straight from the
//! line (`[now, {"message": line}]`), with the constant bytes prepared once per batch.

use crate::filter::concat::{self, Concat, ConcatRule, Fed};
use crate::parse::partial::{CriLine, Held, Joined, PartialFormat, Partials, Stream};
use crate::parse::{ParseError, ParseSetup, Record};
use bytes::{BufMut, BytesMut};
use ferry_proto::msgpack::{write_map_len, write_str};
use ferry_proto::time::EventTime;
use std::sync::Arc;
use std::time::Duration;

pub use crate::parse::UNMATCHED_KEY;

/// The most a decoder's scratch storage keeps between lines.
const KEEP_CAPACITY: usize = 64 * 1024;

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

/// What a held part keeps of the first part of its line.
#[derive(Debug)]
enum First {
    /// The CRI time and stream fields.
    Cri {
        time: Vec<u8>,
        stream: &'static [u8],
    },
    /// The parsed record of a Docker json-file part, and its time.
    Docker(Box<Record>, Option<EventTime>),
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
    concat: Option<(Arc<ConcatRule>, concat::HeldMessages)>,
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
    joined: Vec<concat::Joined>,
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

    /// A CRI line: a `P` part is held, an `F` part ends its stream's line.
    fn cri_part(&mut self, line: &[u8], start: u64, now: EventTime, out: &mut Built) {
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
            match joined {
                Joined::Held => return,
                Joined::Whole(None) => return self.unit(line, start, now, out),
                Joined::Whole(Some(held)) => {
                    out.partials_joined += 1;
                    return self.held(held, now, out);
                }
                Joined::Cut(held) => {
                    out.partials_cut += 1;
                    self.held(held, now, out);
                }
            }
        }
    }

    /// A Docker json-file line: a `log` without a trailing newline is a part.
    fn docker_part(&mut self, line: &[u8], start: u64, now: EventTime, out: &mut Built) {
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
            match joined {
                Joined::Held => return,
                Joined::Whole(None) => return self.parsed(time, line, start, now, out),
                Joined::Whole(Some(held)) => {
                    out.partials_joined += 1;
                    return self.held(held, now, out);
                }
                Joined::Cut(held) => {
                    out.partials_cut += 1;
                    self.held(held, now, out);
                }
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

    /// Emits the messages the concat filter held `flush_interval` or longer (all with `all`).
    pub fn expire_concat(&mut self, all: bool, now: EventTime, out: &mut Built) {
        let Some(c) = &mut self.concat else {
            return;
        };
        if c.is_empty() {
            return;
        }
        let mut joined = std::mem::take(&mut self.joined);
        c.expire(all, &mut joined);
        for j in joined.drain(..) {
            self.write_joined(j, now, out);
        }
        self.joined = joined;
    }

    /// Runs `rule` from now on (the route's first concat filter, which a reload may change).
    /// The messages held under the rule before are emitted first.
    pub fn use_concat(&mut self, rule: Option<&Arc<ConcatRule>>, now: EventTime, out: &mut Built) {
        let same = match (&self.concat, rule) {
            (Some(c), Some(r)) => Arc::ptr_eq(c.rule(), r),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        self.expire_concat(true, now, out);
        self.concat = rule.map(|r| Concat::new(Arc::clone(r), self.max_event));
    }

    /// Whether the route's concat filter runs here.
    pub fn joins_messages(&self) -> bool {
        self.concat.is_some()
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

    /// Writes an event the concat filter joined: to `timeout_label`'s entries when it timed out
    /// and the filter names one.
    fn write_joined(&mut self, mut j: concat::Joined, now: EventTime, out: &mut Built) {
        if let Some((key, path)) = &self.path_field {
            j.rec.str(key, path);
        }
        out.concat_joined += 1;
        out.concat_cut += u64::from(j.cut);
        out.concat_timed_out += u64::from(j.timed_out);
        let to_label = j.timed_out
            && self
                .concat
                .as_ref()
                .is_some_and(|c| c.rule().timeout_label.is_some());
        if to_label {
            j.rec
                .write_entry(&mut out.timeout_entries, j.time.unwrap_or(now));
            out.timeout_records += 1;
        } else {
            j.rec.write_entry(&mut out.entries, j.time.unwrap_or(now));
            out.records += 1;
        }
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
mod tests {
    use super::*;
    use crate::parse::{MultilineSetup, Parser};
    use ferry_proto::entries;
    use ferry_proto::msgpack::Value;

    fn records(built: &Built) -> Vec<(EventTime, String)> {
        entries::iter(&built.entries)
            .map(|e| {
                let e = e.unwrap();
                (e.time, Value::decode(e.record).unwrap().0.to_json_string())
            })
            .collect()
    }

    fn multiline() -> Option<MultilineSetup> {
        Some(MultilineSetup {
            firstline: regex::bytes::Regex::new(r"^\d").unwrap(),
        })
    }

    fn setup(parser: Parser, multiline: Option<MultilineSetup>) -> ParseSetup {
        let mut s = ParseSetup::plain(parser);
        s.multiline = multiline;
        s
    }

    fn regex_parser() -> Parser {
        let text = "<parse>\n@type regexp\nexpression /^(?<n>\\d+) (?<m>.*)$/m\n</parse>\n";
        let root = ferry_config::parse_str(text, "t").unwrap();
        let errors = ferry_config::Errors::new();
        crate::parse::ParseSetup::from_section(&ferry_config::Section::new(
            &root.children[0],
            &errors,
        ))
        .parser
    }

    #[test]
    fn the_fast_path_writes_message_entries_stamped_with_the_batch_time() {
        let mut d = LineDecoder::new(
            ParseSetup::plain(Parser::None {
                key: "message".into(),
            }),
            None,
            false,
            100,
            Duration::from_secs(5),
        );
        let now = EventTime::new(7, 8);
        d.begin(now);
        let mut out = Built::default();
        d.line(b"hello", 0, now, &mut out);
        d.line(b"", 6, now, &mut out);
        assert_eq!(out.records, 2);
        assert_eq!(
            records(&out),
            vec![
                (now, r#"{"message":"hello"}"#.to_string()),
                (now, r#"{"message":""}"#.to_string())
            ]
        );
    }

    #[test]
    fn path_key_is_added_to_every_record() {
        let mut d = LineDecoder::new(
            ParseSetup::plain(Parser::None {
                key: "message".into(),
            }),
            Some(("path".into(), b"/var/log/a.log".to_vec())),
            false,
            100,
            Duration::from_secs(5),
        );
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        d.line(b"x", 0, now, &mut out);
        assert_eq!(
            records(&out)[0].1,
            r#"{"message":"x","path":"/var/log/a.log"}"#
        );
    }

    #[test]
    fn multiline_holds_lines_until_the_next_first_line_and_reports_where_they_start() {
        let mut d = LineDecoder::new(
            setup(regex_parser(), multiline()),
            None,
            false,
            1000,
            Duration::from_secs(5),
        );
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        d.line(b"orphan before any first line", 0, now, &mut out);
        d.line(b"1 boom", 29, now, &mut out);
        d.line(b"  at a", 36, now, &mut out);
        assert_eq!(out.records, 0);
        assert_eq!(d.pending_start(), Some(29));
        d.line(b"2 next", 43, now, &mut out);
        assert_eq!(
            records(&out),
            vec![(now, r#"{"n":"1","m":"boom\n  at a"}"#.to_string())]
        );
        assert_eq!(d.pending_start(), Some(43));
        assert_eq!(out.unmatched, 1, "the orphan line is counted");
        d.flush(now, &mut out);
        assert_eq!(out.records, 2);
        assert_eq!(d.pending_start(), None);
    }

    #[test]
    fn a_multiline_event_is_capped_at_the_event_limit() {
        let mut d = LineDecoder::new(
            setup(regex_parser(), multiline()),
            None,
            true,
            12,
            Duration::from_secs(5),
        );
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        d.line(b"1 abc", 0, now, &mut out);
        d.line(b"continued", 6, now, &mut out);
        assert_eq!(out.records, 2, "the held event and the overflowing line");
        assert_eq!(
            records(&out)[1].1,
            r#"{"unmatched_line":"continued"}"#.to_string()
        );
    }

    #[test]
    fn unmatched_lines_are_dropped_or_emitted() {
        let now = EventTime::new(1, 0);
        for emit in [false, true] {
            let mut d = LineDecoder::new(
                setup(regex_parser(), None),
                None,
                emit,
                100,
                Duration::from_secs(5),
            );
            d.begin(now);
            let mut out = Built::default();
            d.line(b"no number here", 0, now, &mut out);
            d.line(b"5 ok", 15, now, &mut out);
            assert_eq!(out.unmatched, 1);
            assert_eq!(out.first_error.as_ref().unwrap().1, "no number here");
            let got = records(&out);
            if emit {
                assert_eq!(got[0].1, r#"{"unmatched_line":"no number here"}"#);
                assert_eq!(got.len(), 2);
            } else {
                assert_eq!(got, vec![(now, r#"{"n":"5","m":"ok"}"#.to_string())]);
            }
        }
    }

    #[test]
    fn without_estimate_current_event_a_line_without_a_time_is_unmatched() {
        let mut s = setup(regex_parser(), None);
        s.estimate_current_event = false;
        let mut d = LineDecoder::new(s, None, true, 100, Duration::from_secs(5));
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        d.line(b"7 no time here", 0, now, &mut out);
        assert_eq!(out.unmatched, 1);
        assert_eq!(out.first_error.as_ref().unwrap().0, ParseError::NoTime);
        assert_eq!(
            records(&out),
            vec![(now, r#"{"unmatched_line":"7 no time here"}"#.to_string())]
        );
        // The none parser never has a time: without estimating, every line is unmatched
        // (the fast path, which stamps lines with the batch time, is off).
        let mut s = ParseSetup::plain(Parser::None {
            key: "message".into(),
        });
        s.estimate_current_event = false;
        let mut d = LineDecoder::new(s, None, false, 100, Duration::from_secs(5));
        d.begin(now);
        let mut out = Built::default();
        d.line(b"x", 0, now, &mut out);
        assert_eq!((out.records, out.unmatched), (0, 1));
    }

    fn container_decoder(parse: &str, max: usize) -> LineDecoder {
        let text = format!("<parse>\n{parse}\n</parse>\n");
        let root = ferry_config::parse_str(&text, "t").unwrap();
        let errors = ferry_config::Errors::new();
        let defaults = crate::parse::ParseDefaults {
            joins_partials: true,
            ..Default::default()
        };
        let setup = crate::parse::ParseSetup::from_section_with(
            &ferry_config::Section::new(&root.children[0], &errors),
            &defaults,
        );
        assert!(errors.is_empty(), "{errors:?}");
        LineDecoder::new(setup, None, false, max, Duration::from_secs(5))
    }

    #[test]
    fn cri_parts_join_per_stream_and_the_position_stays_at_the_first_part() {
        let mut d = container_decoder("@type cri", 1000);
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        d.line(b"2026-12-07T10:00:00.5Z stdout P out-a ", 0, now, &mut out);
        d.line(b"2026-12-07T10:00:01Z stderr P err-a ", 40, now, &mut out);
        d.line(b"2026-12-07T10:00:02Z stderr F err-b", 80, now, &mut out);
        assert_eq!(out.records, 1, "stderr is whole, stdout is not");
        assert_eq!(d.pending_start(), Some(0));
        d.line(b"2026-12-07T10:00:03Z stdout F out-b", 120, now, &mut out);
        d.line(b"2026-12-07T10:00:04Z stdout F whole", 160, now, &mut out);
        assert_eq!(d.pending_start(), None);
        assert_eq!(out.partials_joined, 2);
        let got = records(&out);
        assert_eq!(
            got.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
            vec![
                r#"{"stream":"stderr","logtag":"F","message":"err-a err-b"}"#,
                r#"{"stream":"stdout","logtag":"F","message":"out-a out-b"}"#,
                r#"{"stream":"stdout","logtag":"F","message":"whole"}"#,
            ]
        );
        assert_eq!(got[1].0.sec, 1_796_637_600, "the first part's time");
        assert_eq!(got[1].0.nsec, 500_000_000);
    }

    #[test]
    fn a_long_joined_line_leaves_no_large_storage_in_the_decoder() {
        let mut d = container_decoder("@type cri", 1024 * 1024);
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        let part = "x".repeat(16 * 1024);
        for i in 0..12 {
            let tag = if i == 11 { "F" } else { "P" };
            let line = format!("2026-12-07T10:00:00Z stdout {tag} {part}");
            d.line(line.as_bytes(), i * 20_000, now, &mut out);
        }
        d.line(
            b"2026-12-07T10:00:01Z stdout F short",
            240_000,
            now,
            &mut out,
        );
        assert_eq!((out.records, out.partials_joined), (2, 1));
        let got = records(&out);
        assert!(got[0].1.len() > 12 * 16 * 1024, "the long line is whole");
        assert!(got[1].1.contains(r#""message":"short""#));
        assert!(d.scratch.capacity() <= KEEP_CAPACITY);
        assert!(d.rec.capacity() <= KEEP_CAPACITY);
    }

    #[test]
    fn cri_joining_can_be_turned_off() {
        let mut d = container_decoder("@type cri\njoin_partial_lines false", 1000);
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        d.line(b"2026-12-07T10:00:00Z stdout P a", 0, now, &mut out);
        d.line(b"2026-12-07T10:00:00Z stdout F b", 40, now, &mut out);
        assert_eq!(out.records, 2);
        assert_eq!(d.pending_start(), None);
    }

    #[test]
    fn a_joined_line_over_the_bound_is_cut_and_counted() {
        let mut d = container_decoder("@type cri", 8);
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        for (i, part) in ["P 12345", "P 6789", "P abcd", "F ef"].iter().enumerate() {
            let line = format!("2026-12-07T10:00:00Z stdout {part}");
            d.line(line.as_bytes(), i as u64 * 40, now, &mut out);
        }
        let got: Vec<String> = records(&out).into_iter().map(|r| r.1).collect();
        assert_eq!(
            got,
            vec![
                r#"{"stream":"stdout","logtag":"F","message":"12345"}"#,
                r#"{"stream":"stdout","logtag":"F","message":"6789abcd"}"#,
                r#"{"stream":"stdout","logtag":"F","message":"ef"}"#,
            ]
        );
        assert_eq!(out.partials_cut, 2);
    }

    #[test]
    fn parts_whose_end_never_comes_are_emitted_after_the_timeout_or_at_the_end() {
        let mut d = container_decoder("@type docker", 1000);
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        d.line(
            br#"{"log":"no end","stream":"stdout","time":"2026-12-07T10:00:00Z"}"#,
            0,
            now,
            &mut out,
        );
        d.expire(Some(Duration::from_secs(60)), now, &mut out);
        assert_eq!(out.records, 0);
        d.expire(Some(Duration::ZERO), now, &mut out);
        assert_eq!((out.records, out.partials_unfinished), (1, 1));
        d.line(
            br#"{"log":"again","stream":"stderr","time":"2026-12-07T10:00:00Z"}"#,
            70,
            now,
            &mut out,
        );
        d.flush(now, &mut out);
        assert_eq!((out.records, out.partials_unfinished), (2, 2));
        assert_eq!(d.pending_start(), None);
    }

    #[test]
    fn docker_json_file_parts_join_on_the_log_key_per_stream() {
        let mut d = container_decoder("@type docker", 1000);
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        let lines: [&[u8]; 5] = [
            br#"{"log":"a-1 ","stream":"stdout","time":"2026-12-07T10:00:00.25Z"}"#,
            br#"{"log":"e-1\n","stream":"stderr","time":"2026-12-07T10:00:01Z"}"#,
            br#"{"log":"a-2 ","stream":"stdout","time":"2026-12-07T10:00:02Z"}"#,
            br#"{"log":"a-3\n","stream":"stdout","time":"2026-12-07T10:00:03Z"}"#,
            br#"{"log":"b\n","stream":"stdout","time":"2026-12-07T10:00:04Z"}"#,
        ];
        for (i, l) in lines.iter().enumerate() {
            d.line(l, i as u64 * 100, now, &mut out);
            if i == 2 {
                assert_eq!(d.pending_start(), Some(0));
            }
        }
        let got = records(&out);
        assert_eq!(
            got.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
            vec![
                r#"{"log":"e-1\n","stream":"stderr"}"#,
                r#"{"log":"a-1 a-2 a-3\n","stream":"stdout"}"#,
                r#"{"log":"b\n","stream":"stdout"}"#,
            ]
        );
        assert_eq!(got[1].0, EventTime::new(1_796_637_600, 250_000_000));
        assert_eq!(out.partials_joined, 1);
    }

    #[test]
    fn plain_json_joins_only_when_asked() {
        for (parse, records_then) in [
            ("@type json", 1),
            ("@type json\njoin_partial_lines true", 0),
        ] {
            let mut d = container_decoder(parse, 1000);
            let now = EventTime::new(1, 0);
            d.begin(now);
            let mut out = Built::default();
            d.line(br#"{"log":"part","stream":"stdout"}"#, 0, now, &mut out);
            assert_eq!(out.records, records_then, "{parse}");
        }
    }
}
