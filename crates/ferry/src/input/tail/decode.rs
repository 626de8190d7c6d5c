//! Lines → entries: the parser, multiline assembly, `path_key` and `emit_unmatched_lines`,
//! writing a PackedForward entry stream.
//!
//! `@type none` without `path_key` has a fast path: each entry is written straight from the
//! line (`[now, {"message": line}]`), with the constant bytes prepared once per batch.

use crate::parse::{ParseError, ParseSetup, Record};
use bytes::{BufMut, BytesMut};
use ferry_proto::msgpack::{write_map_len, write_str};
use ferry_proto::time::EventTime;

pub use crate::parse::UNMATCHED_KEY;

/// Entries built from one read.
#[derive(Debug, Default)]
pub struct Built {
    pub entries: BytesMut,
    pub records: u64,
    /// Lines that did not parse (dropped, or emitted as `unmatched_line`).
    pub unmatched: u64,
    pub first_error: Option<(ParseError, String)>,
}

/// Lines held back by multiline assembly.
#[derive(Debug)]
struct Pending {
    text: Vec<u8>,
    start: u64,
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
    ) -> Self {
        Self {
            setup,
            path_field,
            emit_unmatched,
            max_event,
            pending: None,
            rec: Record::new(),
            prefix: Vec::new(),
        }
    }

    /// Where lines held for multiline assembly start (they are not committed yet).
    pub fn pending_start(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.start)
    }

    /// Forgets lines held by multiline assembly (they came from a file rewritten under us).
    pub fn clear_pending(&mut self) {
        self.pending = None;
    }

    /// Prepares the fast path's constant bytes for a batch stamped `now`.
    pub fn begin(&mut self, now: EventTime) {
        self.prefix.clear();
        let s = &self.setup;
        if let (Some(key), None, None, true, true) = (
            s.parser.none_key(),
            &s.multiline,
            &self.path_field,
            s.values.is_empty(),
            s.estimate_current_event,
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
        let Some(ml) = &self.setup.multiline else {
            self.event(line, now, out);
            return;
        };
        if ml.firstline.is_match(line) {
            self.flush(now, out);
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
                self.flush(now, out);
                self.unmatched(line, ParseError::NoMatch, now, out);
            }
            None => self.unmatched(line, ParseError::NoMatch, now, out),
        }
    }

    /// Emits the multiline event being assembled, if any.
    pub fn flush(&mut self, now: EventTime, out: &mut Built) {
        if let Some(p) = self.pending.take() {
            self.event(&p.text, now, out);
        }
    }

    fn event(&mut self, text: &[u8], now: EventTime, out: &mut Built) {
        match self.setup.parse(text, &mut self.rec) {
            // Fluentd's in_tail takes a line without a time as unmatched when the parser does
            // not estimate one.
            Ok(None) if !self.setup.estimate_current_event => {
                self.unmatched(text, ParseError::NoTime, now, out);
            }
            Ok(time) => {
                if let Some((key, path)) = &self.path_field {
                    self.rec.str(key, path);
                }
                self.rec.write_entry(&mut out.entries, time.unwrap_or(now));
                out.records += 1;
            }
            Err(e) => self.unmatched(text, e, now, out),
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
        let mut d = LineDecoder::new(setup(regex_parser(), multiline()), None, false, 1000);
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
        let mut d = LineDecoder::new(setup(regex_parser(), multiline()), None, true, 12);
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
            let mut d = LineDecoder::new(setup(regex_parser(), None), None, emit, 100);
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
        let mut d = LineDecoder::new(s, None, true, 100);
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
        let mut d = LineDecoder::new(s, None, false, 100);
        d.begin(now);
        let mut out = Built::default();
        d.line(b"x", 0, now, &mut out);
        assert_eq!((out.records, out.unmatched), (0, 1));
    }
}
