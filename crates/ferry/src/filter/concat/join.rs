//! One file's messages being joined, per stream: the state a `concat` filter keeps in the
//! tail input that runs it.

use super::rules::{self, Continue, Lang};
use super::{ConcatRule, Mode};
use crate::parse::Record;
use ferry_proto::time::EventTime;
use std::sync::Arc;
use std::time::Instant;

/// A message being joined.
#[derive(Debug)]
pub struct Pending {
    /// The first line's record and time.
    pub rec: Record,
    pub time: Option<EventTime>,
    /// The lines' `key` values joined with the separator.
    pub text: Vec<u8>,
    /// Where the first line starts in its file.
    pub start: u64,
    since: Instant,
    lines: usize,
    /// The built-in rule that started it, and how far its trace is.
    lang: Option<(Lang, u8)>,
}

/// A joined event to emit.
#[derive(Debug)]
pub struct Joined {
    pub rec: Record,
    /// `None`: the current time.
    pub time: Option<EventTime>,
    /// Emitted because its end did not come within `flush_interval`.
    pub timed_out: bool,
    /// Emitted because it reached the size bound.
    pub cut: bool,
}

/// What [`Concat::feed`] did with a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// The record is not part of a joined message: emit it as it is (after any joined events).
    Alone,
    /// The record was taken (held, or joined into an event given out).
    Taken,
}

/// Messages being joined, each with its stream.
pub type HeldMessages = Vec<(Vec<u8>, Pending)>;

/// One file's messages being joined, per stream.
#[derive(Debug)]
pub struct Concat {
    rule: Arc<ConcatRule>,
    held: HeldMessages,
    max: usize,
}

/// One record offered to [`Concat::feed`].
struct Line<'r> {
    rec: &'r Record,
    time: Option<EventTime>,
    /// Its `key` value.
    text: &'r [u8],
    stream: &'r [u8],
    start: u64,
}

/// What gives a message out, and so which time it gets: the line that ended it (its time,
/// as fluent-plugin-concat stamps it), or the flush interval (now). With
/// `use_first_timestamp`, the first line's time either way.
#[derive(Clone, Copy)]
enum Trigger {
    Line(Option<EventTime>),
    Timeout,
}

/// The held messages and the rule, borrowed apart for one call.
struct Messages<'a> {
    rule: &'a ConcatRule,
    held: &'a mut HeldMessages,
    max: usize,
    out: &'a mut Vec<Joined>,
}

impl Messages<'_> {
    /// Adds `line` to the message held at `at`, or starts one (`lang`: the rule that starts
    /// it). Returns where the message is. A message that would pass the bound is given out
    /// first (cut), and the line starts the next one.
    fn add(&mut self, at: Option<usize>, line: &Line<'_>, lang: Option<(Lang, u8)>) -> usize {
        if let Some(i) = at {
            let sep = &self.rule.separator;
            let p = &mut self.held[i].1;
            if p.text.len() + sep.len() + line.text.len() <= self.max {
                p.text.extend_from_slice(sep);
                p.text.extend_from_slice(line.text);
                p.lines += 1;
                return i;
            }
            let lang = p.lang;
            self.give_out(i, Trigger::Line(line.time), true);
            return self.add(None, line, lang);
        }
        self.held.push((
            line.stream.to_vec(),
            Pending {
                rec: line.rec.clone(),
                time: line.time,
                text: line.text.to_vec(),
                start: line.start,
                since: Instant::now(),
                lines: 1,
                lang,
            },
        ));
        self.held.len() - 1
    }

    /// Gives out the message at `i`.
    fn give_out(&mut self, i: usize, trigger: Trigger, cut: bool) {
        let (_, p) = self.held.remove(i);
        let mut rec = p.rec;
        rec.set_str(&self.rule.key, &p.text);
        let time = match trigger {
            _ if self.rule.use_first_timestamp => p.time,
            Trigger::Line(t) => t.or(p.time),
            Trigger::Timeout => None,
        };
        self.out.push(Joined {
            rec,
            time,
            timed_out: matches!(trigger, Trigger::Timeout),
            cut,
        });
    }
}

impl Concat {
    /// `max`: the largest joined text held (the tail's `max_line_size`).
    pub fn new(rule: Arc<ConcatRule>, max: usize) -> Self {
        Self {
            rule,
            held: Vec::new(),
            max: max.max(1),
        }
    }

    pub fn rule(&self) -> &Arc<ConcatRule> {
        &self.rule
    }

    /// Where the earliest held line starts.
    pub fn start(&self) -> Option<u64> {
        self.held.iter().map(|(_, p)| p.start).min()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn clear(&mut self) {
        self.held.clear();
    }

    /// Takes every held message (to hand them to the next file of a rotated path).
    pub fn take_all(&mut self) -> HeldMessages {
        std::mem::take(&mut self.held)
    }

    /// Holds messages taken from another file, as if they started at `at` in this one.
    pub fn adopt(&mut self, held: HeldMessages, at: u64) {
        for (stream, mut p) in held {
            if !self.held.iter().any(|(s, _)| *s == stream) {
                p.start = at;
                self.held.push((stream, p));
            }
        }
    }

    fn messages<'a>(&'a mut self, out: &'a mut Vec<Joined>) -> Messages<'a> {
        Messages {
            rule: &self.rule,
            held: &mut self.held,
            max: self.max,
            out,
        }
    }

    /// One parsed record (`time`, read at offset `start`). Joined events are pushed to `out`,
    /// in order; they come before the record when it is [`Fed::Alone`].
    pub fn feed(
        &mut self,
        rec: &Record,
        time: Option<EventTime>,
        start: u64,
        out: &mut Vec<Joined>,
    ) -> Fed {
        let mut m = self.messages(out);
        let rule = m.rule;
        let Some(text) = rec.get_str(rule.key.as_bytes()) else {
            return Fed::Alone;
        };
        let stream = rec
            .get_str(rule.stream_key.as_deref().unwrap_or("stream").as_bytes())
            .unwrap_or_default();
        let line = Line {
            rec,
            time,
            text,
            stream,
            start,
        };
        let at = m.held.iter().position(|(s, _)| s == stream);
        let trigger = Trigger::Line(time);
        // Expressions see a line without the newline Docker's `log` ends with.
        let bare = text.strip_suffix(b"\n").unwrap_or(text);
        match &rule.mode {
            Mode::Lines(n) => {
                let i = m.add(at, &line, None);
                if m.held[i].1.lines >= *n {
                    m.give_out(i, trigger, false);
                }
                Fed::Taken
            }
            Mode::Partial {
                key,
                value,
                keep_key,
            } => {
                if rec.get_str(key.as_bytes()) == Some(value.as_slice()) {
                    m.add(at, &line, None);
                    return Fed::Taken;
                }
                let Some(i) = at else {
                    return Fed::Alone;
                };
                let i = m.add(Some(i), &line, None);
                if !keep_key {
                    m.held[i].1.rec.remove(key);
                }
                m.give_out(i, trigger, false);
                Fed::Taken
            }
            Mode::Regexp {
                start: first_re,
                end,
                cont,
            } => {
                let first = first_re.as_ref().is_some_and(|r| r.is_match(bare));
                let last = end.as_ref().is_some_and(|r| r.is_match(bare));
                let continues = cont.as_ref().is_none_or(|r| r.is_match(bare));
                let i = match at {
                    Some(i) if first => {
                        m.give_out(i, trigger, false);
                        m.add(None, &line, None)
                    }
                    None if first || last || first_re.is_none() => m.add(None, &line, None),
                    None => return Fed::Alone,
                    Some(i) if last || continues => m.add(Some(i), &line, None),
                    Some(i) => {
                        m.give_out(i, trigger, false);
                        return Fed::Alone;
                    }
                };
                if last {
                    m.give_out(i, trigger, false);
                }
                Fed::Taken
            }
            Mode::Rules(langs) => {
                if let Some(i) = at {
                    let (lang, phase) = m.held[i].1.lang.unwrap_or((Lang::Java, 0));
                    let next = rules::continues(lang, phase, bare);
                    if let Continue::No = next {
                        m.give_out(i, trigger, false);
                    } else {
                        let i = m.add(Some(i), &line, None);
                        match next {
                            Continue::Yes(phase) => m.held[i].1.lang = Some((lang, phase)),
                            _ => m.give_out(i, trigger, false),
                        }
                        return Fed::Taken;
                    }
                }
                match langs.iter().find(|l| rules::starts(**l, bare)) {
                    Some(lang) => {
                        m.add(None, &line, Some((*lang, 0)));
                        Fed::Taken
                    }
                    None => Fed::Alone,
                }
            }
        }
    }

    /// Gives out the messages held `flush_interval` or longer (all of them with `all`).
    pub fn expire(&mut self, all: bool, out: &mut Vec<Joined>) {
        let interval = self.rule.flush_interval;
        let mut m = self.messages(out);
        let mut i = 0;
        while i < m.held.len() {
            if all || interval.is_some_and(|d| m.held[i].1.since.elapsed() >= d) {
                m.give_out(i, Trigger::Timeout, false);
            } else {
                i += 1;
            }
        }
    }
}
