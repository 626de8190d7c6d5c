//! `@type concat`: the lines of one multi-line message (a stack trace, a pretty-printed object)
//! joined into one event, with fluent-plugin-concat's parameters and semantics, per stream.
//!
//! A filter that holds events cannot keep ferry's promise: the input that read them has
//! committed them (a tail moved its position, a forward client got its ack), so a crash loses
//! what the filter held. ferry therefore runs a `concat` filter inside the tail input that
//! reads the lines ([`Concat`], one per file): lines held there are not committed, and the
//! position stays at the first of them until the joined event is. The tail asks the routing
//! for the first `concat` filter on its tag's route ([`crate::router::Router::concat_for`]);
//! in the chain itself the filter passes events on unchanged. Events that reach a `concat`
//! filter from any other input are passed on unchanged and counted, with a warning naming the
//! filter (`ferry_filter_concat_not_applied_total`).
//!
//! Modes, as the plugin has them: `n_lines`; `multiline_start_regexp` /
//! `multiline_end_regexp` / `continuous_line_regexp`; `partial_key` + `partial_value`;
//! `use_partial_cri_logtag`. ferry adds `multiline_rules`: built-in rules for Java, Python and
//! Go stack traces, which hold only lines that can start a trace (other lines go on at once).
//!
//! Streams: lines are joined per `stream_identity_key` (or `partial_cri_stream_key`); when
//! neither is set, per the record's `stream` field where it has one (stdout and stderr of a
//! container never mix), within one file (one container).

use crate::parse::Record;
use ferry_config::Section;
use ferry_proto::time::EventTime;
use regex::bytes::Regex;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Languages whose stack traces `multiline_rules` knows.
pub const RULES: &[&str] = &["java", "python", "go"];

/// Why fluent-plugin-concat's partial-metadata parameters are refused.
const NO_PARTIAL_METADATA: &str = "Docker's partial metadata comes from its fluentd log driver, which writes no files; ferry joins json-file parts in the tail's <parse> (@type docker)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Java,
    Python,
    Go,
}

#[derive(Debug)]
enum Mode {
    Lines(usize),
    Regexp {
        start: Option<Regex>,
        end: Option<Regex>,
        cont: Option<Regex>,
    },
    Partial {
        key: String,
        value: Vec<u8>,
        keep_key: bool,
    },
    Rules(Vec<Lang>),
}

/// A configured `concat` filter.
#[derive(Debug)]
pub struct ConcatRule {
    pub key: String,
    separator: Vec<u8>,
    mode: Mode,
    stream_key: Option<String>,
    /// `flush_interval` (seconds; 0: never). `None`: never.
    pub flush_interval: Option<Duration>,
    /// Where events joined at a timeout go (`None`: on, as the others).
    pub timeout_label: Option<String>,
    use_first_timestamp: bool,
    /// Where the filter is written (`file:line`), for the log.
    pub location: String,
    warned: std::sync::atomic::AtomicBool,
}

impl ConcatRule {
    pub fn from_section(s: &Section<'_>) -> Option<Self> {
        let refuse = |key: &str| {
            if s.get(key).is_some() {
                s.error(
                    Some(key),
                    format!("{key} is not supported: {NO_PARTIAL_METADATA}"),
                );
            }
        };
        refuse("use_partial_metadata");
        refuse("keep_partial_metadata");
        refuse("partial_metadata_format");
        let key = s.required_str("key")?;
        let separator = s.str_or("separator", "\n").into_bytes();
        let regex = |name: &str| {
            s.str(name)
                .and_then(|e| crate::parse::compile_regex(s, name, &e))
        };
        let n_lines = s.opt_u64("n_lines");
        let start = regex("multiline_start_regexp");
        let end = regex("multiline_end_regexp");
        let cont = regex("continuous_line_regexp");
        let partial_key = s.str("partial_key");
        let partial_value = s.str("partial_value");
        let keep_key = s.bool_or("keep_partial_key", false);
        let cri = s.bool_or("use_partial_cri_logtag", false);
        let cri_key = s.str_or("partial_cri_logtag_key", "logtag");
        let cri_stream = s.str("partial_cri_stream_key");
        let rules = s.array("multiline_rules").unwrap_or_default();
        let mut modes = Vec::new();
        if let Some(n) = n_lines {
            modes.push(("n_lines", Mode::Lines(n.max(1) as usize)));
        }
        if start.is_some() || end.is_some() || cont.is_some() {
            modes.push(("multiline_start_regexp", Mode::Regexp { start, end, cont }));
        }
        match (partial_key, partial_value) {
            (Some(key), Some(value)) => modes.push((
                "partial_key",
                Mode::Partial {
                    key,
                    value: value.into_bytes(),
                    keep_key,
                },
            )),
            (None, None) => {}
            _ => s.error(None, "partial_key and partial_value go together"),
        }
        if cri {
            modes.push((
                "use_partial_cri_logtag",
                Mode::Partial {
                    key: cri_key,
                    value: b"P".to_vec(),
                    keep_key,
                },
            ));
        }
        if !rules.is_empty() {
            let mut langs = Vec::new();
            for r in &rules {
                match r.as_str() {
                    "java" => langs.push(Lang::Java),
                    "python" => langs.push(Lang::Python),
                    "go" => langs.push(Lang::Go),
                    other => s.error(
                        Some("multiline_rules"),
                        format!("unknown rule '{other}' (rules: {})", RULES.join(", ")),
                    ),
                }
            }
            modes.push(("multiline_rules", Mode::Rules(langs)));
        }
        if modes.len() > 1 {
            let names: Vec<&str> = modes.iter().map(|(n, _)| *n).collect();
            s.error(
                None,
                format!("{} are exclusive: give one of them", names.join(", ")),
            );
        }
        let Some((_, mode)) = modes.pop() else {
            s.error(
                None,
                "give one of n_lines, multiline_start_regexp, multiline_end_regexp, continuous_line_regexp, partial_key, use_partial_cri_logtag, multiline_rules",
            );
            return None;
        };
        let flush_interval = s
            .opt_duration("flush_interval")
            .unwrap_or(Duration::from_secs(60));
        let stream_key = s.str("stream_identity_key").or(cri_stream);
        Some(Self {
            key,
            separator,
            mode,
            stream_key,
            flush_interval: (!flush_interval.is_zero()).then_some(flush_interval),
            timeout_label: s.str("timeout_label"),
            use_first_timestamp: s.bool_or("use_first_timestamp", false),
            location: s.span().to_string(),
            warned: Default::default(),
        })
    }

    /// In a filter chain: the events go on unchanged; the chain counts them (see the module
    /// docs).
    pub fn pass(&self, tag: &str) -> super::Outcome {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "filter concat at {}: events of tag \"{tag}\" did not come from a tail input whose route starts with this filter, so their lines are not joined (they go on unchanged; counted in ferry_filter_concat_not_applied_total). ferry joins lines only where it reads them, so that no held line is lost in a crash",
                self.location
            );
        }
        super::Outcome::keep()
    }
}

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
    lang: Option<(Lang, u8)>,
}

/// A joined event to emit.
#[derive(Debug)]
pub struct Joined {
    pub rec: Record,
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

    /// One parsed record (`time`, read at offset `start`). Joined events are pushed to `out`,
    /// in order; they come before the record when it is [`Fed::Alone`].
    pub fn feed(
        &mut self,
        rec: &Record,
        time: Option<EventTime>,
        start: u64,
        out: &mut Vec<Joined>,
    ) -> Fed {
        let rule = Arc::clone(&self.rule);
        let Some(text) = rec.get_str(rule.key.as_bytes()) else {
            return Fed::Alone;
        };
        let stream = match &rule.stream_key {
            Some(k) => rec.get_str(k.as_bytes()).unwrap_or_default(),
            None => rec.get_str(b"stream").unwrap_or_default(),
        };
        let at = self.held.iter().position(|(s, _)| s == stream);
        let line = text.strip_suffix(b"\n").unwrap_or(text);
        let now_time = time;
        match &rule.mode {
            Mode::Lines(n) => {
                let i = self.add(at, stream, rec, time, text, start, None, now_time, out);
                if self.held[i].1.lines >= *n {
                    self.flush(i, now_time, false, out);
                }
                Fed::Taken
            }
            Mode::Partial {
                key,
                value,
                keep_key,
            } => {
                let partial = rec.get_str(key.as_bytes()) == Some(value.as_slice());
                if partial {
                    self.add(at, stream, rec, time, text, start, None, now_time, out);
                    return Fed::Taken;
                }
                let Some(i) = at else {
                    return Fed::Alone;
                };
                let i = self.add(Some(i), stream, rec, time, text, start, None, now_time, out);
                if !keep_key {
                    self.held[i].1.rec.remove(key);
                }
                self.flush(i, now_time, false, out);
                Fed::Taken
            }
            Mode::Regexp {
                start: s,
                end,
                cont,
            } => {
                let first = s.as_ref().is_some_and(|r| r.is_match(line));
                let last = end.as_ref().is_some_and(|r| r.is_match(line));
                if first {
                    if let Some(i) = at {
                        self.flush(i, now_time, false, out);
                    }
                    let i = self.add(None, stream, rec, time, text, start, None, now_time, out);
                    if last {
                        self.flush(i, now_time, false, out);
                    }
                    return Fed::Taken;
                }
                if last {
                    let i = self.add(at, stream, rec, time, text, start, None, now_time, out);
                    self.flush(i, now_time, false, out);
                    return Fed::Taken;
                }
                match at {
                    None if s.is_none() => {
                        self.add(None, stream, rec, time, text, start, None, now_time, out);
                        Fed::Taken
                    }
                    None => Fed::Alone,
                    Some(i) if cont.as_ref().is_none_or(|r| r.is_match(line)) => {
                        self.add(Some(i), stream, rec, time, text, start, None, now_time, out);
                        Fed::Taken
                    }
                    Some(i) => {
                        self.flush(i, now_time, false, out);
                        Fed::Alone
                    }
                }
            }
            Mode::Rules(langs) => {
                if let Some(i) = at {
                    let (lang, phase) = self.held[i].1.lang.unwrap_or((Lang::Java, 0));
                    match continues(lang, phase, line) {
                        Continue::Yes(phase) => {
                            let i = self.add(
                                Some(i),
                                stream,
                                rec,
                                time,
                                text,
                                start,
                                None,
                                now_time,
                                out,
                            );
                            if let Some(p) = self.held.get_mut(i) {
                                p.1.lang = Some((lang, phase));
                            }
                            return Fed::Taken;
                        }
                        Continue::Last => {
                            let i = self.add(
                                Some(i),
                                stream,
                                rec,
                                time,
                                text,
                                start,
                                None,
                                now_time,
                                out,
                            );
                            self.flush(i, now_time, false, out);
                            return Fed::Taken;
                        }
                        Continue::No => self.flush(i, now_time, false, out),
                    }
                }
                match langs.iter().find(|l| starts(**l, line)) {
                    Some(lang) => {
                        self.add(
                            None,
                            stream,
                            rec,
                            time,
                            text,
                            start,
                            Some((*lang, 0)),
                            now_time,
                            out,
                        );
                        Fed::Taken
                    }
                    None => Fed::Alone,
                }
            }
        }
    }

    /// Adds a line to the message held for `stream` (at `at`), or starts one. Returns where the
    /// message is. A message that would pass the bound is given out first (cut).
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        at: Option<usize>,
        stream: &[u8],
        rec: &Record,
        time: Option<EventTime>,
        text: &[u8],
        start: u64,
        lang: Option<(Lang, u8)>,
        now_time: Option<EventTime>,
        out: &mut Vec<Joined>,
    ) -> usize {
        if let Some(i) = at {
            let sep = self.rule.separator.len();
            if self.held[i].1.text.len() + sep + text.len() <= self.max {
                let p = &mut self.held[i].1;
                p.text.extend_from_slice(&self.rule.separator);
                p.text.extend_from_slice(text);
                p.lines += 1;
                return i;
            }
            let lang = self.held[i].1.lang;
            self.flush(i, now_time, false, out);
            if let Some(j) = out.last_mut() {
                j.cut = true;
            }
            return self.add(None, stream, rec, time, text, start, lang, now_time, out);
        }
        self.held.push((
            stream.to_vec(),
            Pending {
                rec: rec.clone(),
                time,
                text: text.to_vec(),
                start,
                since: Instant::now(),
                lines: 1,
                lang,
            },
        ));
        self.held.len() - 1
    }

    /// Gives out the message at `i`.
    fn flush(
        &mut self,
        i: usize,
        now_time: Option<EventTime>,
        timed_out: bool,
        out: &mut Vec<Joined>,
    ) {
        let (_, p) = self.held.remove(i);
        let mut rec = p.rec;
        rec.set_str(&self.rule.key, &p.text);
        let time = if self.rule.use_first_timestamp {
            p.time
        } else {
            now_time.or(p.time)
        };
        out.push(Joined {
            rec,
            time,
            timed_out,
            cut: false,
        });
    }

    /// Gives out the messages held `flush_interval` or longer (all of them with `all`).
    pub fn expire(&mut self, all: bool, out: &mut Vec<Joined>) {
        let interval = self.rule.flush_interval;
        let mut i = 0;
        while i < self.held.len() {
            let due = all || interval.is_some_and(|d| self.held[i].1.since.elapsed() >= d);
            if due {
                // The time of a message flushed on a timeout is its first line's when
                // use_first_timestamp, else now (the caller's current time).
                self.flush(i, None, true, out);
                if !self.rule.use_first_timestamp
                    && let Some(j) = out.last_mut()
                {
                    j.time = None;
                }
            } else {
                i += 1;
            }
        }
    }
}

/// Whether a line continues a trace of `lang` in `phase`.
enum Continue {
    Yes(u8),
    /// It does, and it is the trace's last line.
    Last,
    No,
}

fn re(cell: &'static std::sync::OnceLock<Regex>, e: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(e).expect("built-in expression"))
}

fn starts(lang: Lang, line: &[u8]) -> bool {
    static JAVA: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    static PYTHON: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    static GO: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    match lang {
        // `java.lang.IllegalStateException: boom`, `Exception in thread "main" ...`,
        // `java.lang.OutOfMemoryError`.
        Lang::Java => re(&JAVA, r"^\S.*(?:Exception|Error|Throwable)(?::|$)").is_match(line),
        Lang::Python => re(&PYTHON, r"^Traceback \(most recent call last\):$").is_match(line),
        Lang::Go => re(&GO, r"^(?:panic: |fatal error: )").is_match(line),
    }
}

fn continues(lang: Lang, phase: u8, line: &[u8]) -> Continue {
    static JAVA: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    static GO: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    static PY_CHAIN: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    match lang {
        Lang::Java => {
            let cont = re(
                &JAVA,
                r"^(?:\s+at\s|\s*\.\.\. \d+ (?:more|common frames omitted)$|\s*Caused by: |\s*Suppressed: )",
            );
            if cont.is_match(line) {
                Continue::Yes(0)
            } else {
                Continue::No
            }
        }
        Lang::Python => {
            // Phase 0: frames (indented) until the exception line, which ends the trace;
            // phase 1: after "During handling ...", a blank line and a new Traceback follow.
            let chain = re(
                &PY_CHAIN,
                r"^(?:During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:|Traceback \(most recent call last\):)$",
            );
            if line.first().is_some_and(|b| b.is_ascii_whitespace()) {
                Continue::Yes(0)
            } else if line.is_empty() || chain.is_match(line) {
                Continue::Yes(1)
            } else if phase == 1 {
                Continue::No
            } else {
                Continue::Last
            }
        }
        Lang::Go => {
            let cont = re(
                &GO,
                r"^(?:$|\s|goroutine \d+ \[|\[signal |created by |exit status \d+$|[\w./*()\[\]{}-]+\(.*\)$)",
            );
            if cont.is_match(line) {
                Continue::Yes(0)
            } else {
                Continue::No
            }
        }
    }
}

#[cfg(test)]
#[path = "concat_tests.rs"]
mod tests;
