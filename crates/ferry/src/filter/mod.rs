//! Filters: `<filter PATTERN>` directives, applied in order to the events whose tag they match
//! before the `<match>` that takes them. The only stages that look inside records on the way.
//!
//! | module | filter |
//! |---|---|
//! | [`grep`] | keep or drop events by regular expressions over fields |
//! | [`record_transformer`] | add, rewrite and remove fields (`${tag}`, `${record["k"]}`, ...) |
//! | [`parser`] | parse one field with a `<parse>` section |
//! | [`concat`] | join the lines of a multi-line message (run by the tail input that reads them) |
//! | [`kubernetes_metadata`] | add a container log's pod, namespace, container and pod uid, from the tag and the file system |
//! | [`stdout`] | print each event that passes (in a `<format>`), unchanged |
//! | [`chain`] | runs the filters of a route over a batch: view, filter, splice |
//! | [`raw`] | the record as filters see it: its bytes read in place, edits as an overlay |
//! | [`accessor`] | Fluentd's record accessor (`$.a.b[0]`) |
//!
//! Filters form a closed enum dispatched with `match`. Each takes one [`Event`] (its time, its
//! record as a [`raw::RawRecord`]) and says whether to keep it, whether it changed it, and
//! whether a copy of the event as it came in goes to the `@ERROR` label ([`Outcome`]).

pub mod accessor;
pub mod chain;
pub mod concat;
pub mod grep;
pub mod kubernetes_metadata;
pub mod parser;
pub mod raw;
pub mod record_transformer;
pub mod stdout;

use bytes::BytesMut;
use ferry_config::Section;
use ferry_proto::time::EventTime;
use raw::RawRecord;
use std::sync::Arc;

/// Filter plugin types this build of ferry provides.
pub const FILTER_TYPES: &[&str] = &[
    "grep",
    "record_transformer",
    "parser",
    "stdout",
    "concat",
    "kubernetes_metadata",
];

/// Fluentd filter types that ferry does not provide: refused with a clear message.
pub const FOREIGN_FILTER_TYPES: &[&str] = &[
    "prometheus",
    "geoip",
    "typecast",
    "rewrite_tag_filter",
    "throttle",
];

/// One configured filter.
#[derive(Debug, Clone)]
pub enum Filter {
    Grep(grep::Grep),
    RecordTransformer(record_transformer::RecordTransformer),
    Parser(Box<parser::ParserFilter>),
    Stdout(Box<stdout::StdoutFilter>),
    Concat(Arc<concat::ConcatRule>),
    KubernetesMetadata(Box<kubernetes_metadata::KubernetesMetadata>),
}

/// Whether an event goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Drop,
}

/// What a filter did to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The time or the record changed (the event must be re-encoded).
    pub modified: bool,
    /// A copy of the event as the filter received it goes to `@ERROR`, for this reason. A
    /// filter that reports an error has not changed the event.
    pub error: Option<String>,
}

impl Outcome {
    pub fn keep() -> Self {
        Self {
            verdict: Verdict::Keep,
            modified: false,
            error: None,
        }
    }
    pub fn drop() -> Self {
        Self {
            verdict: Verdict::Drop,
            ..Self::keep()
        }
    }
    pub fn modified() -> Self {
        Self {
            modified: true,
            ..Self::keep()
        }
    }
}

/// What filters may read about the batch being filtered.
#[derive(Debug, Clone)]
pub struct TagContext {
    pub tag: Arc<str>,
    pub parts: Vec<String>,
    pub hostname: Arc<str>,
    /// The input ran the first `concat` filter of the route ([`crate::event::Batch`]).
    pub joined_by_input: bool,
}

impl TagContext {
    pub fn new(tag: Arc<str>, hostname: Arc<str>) -> Self {
        let parts = tag.split('.').map(str::to_string).collect();
        Self {
            tag,
            parts,
            hostname,
            joined_by_input: false,
        }
    }
}

/// One event on its way through the filters: its time, its record, and buffers the filters
/// reuse from one event to the next. A chain loads each entry of a batch into the same `Event`,
/// so filtering allocates nothing per event once the buffers have grown.
#[derive(Debug, Default)]
pub struct Event<'a> {
    pub time: EventTime,
    pub record: RawRecord<'a>,
    pub scratch: Scratch,
}

/// Buffers a filter may use while it handles one event (their content means nothing after).
#[derive(Debug, Default)]
pub struct Scratch {
    pub bytes: BytesMut,
    pub text: String,
    pub parsed: crate::parse::Record,
}

impl<'a> Event<'a> {
    /// An event of `time` and the record `bytes` (a msgpack map).
    pub fn try_new(
        time: EventTime,
        bytes: &'a [u8],
    ) -> Result<Self, ferry_proto::msgpack::MsgpackError> {
        let mut event = Self::default();
        event.load(time, bytes)?;
        Ok(event)
    }

    /// Makes this the event of `time` and `bytes`, keeping the buffers.
    pub fn load(
        &mut self,
        time: EventTime,
        bytes: &'a [u8],
    ) -> Result<(), ferry_proto::msgpack::MsgpackError> {
        self.time = time;
        self.record.load(bytes)
    }

    /// Makes this the event of an entry `entries::iter` yielded (see
    /// [`RawRecord::load_walked`]), keeping the buffers.
    pub fn load_entry(
        &mut self,
        entry: &ferry_proto::entries::EntryRef<'a>,
    ) -> Result<(), ferry_proto::msgpack::MsgpackError> {
        self.time = entry.time;
        self.record.load_walked(entry.record)
    }
}

impl Filter {
    /// Builds the filter named by the section's `@type`; the caller finishes the section.
    pub fn from_section(section: &Section<'_>) -> Option<Self> {
        let kind =
            crate::plugin::plugin_type(section, "filter", FILTER_TYPES, FOREIGN_FILTER_TYPES)?;
        match kind {
            "grep" => grep::Grep::from_section(section).map(Self::Grep),
            "record_transformer" => record_transformer::RecordTransformer::from_section(section)
                .map(Self::RecordTransformer),
            "parser" => {
                parser::ParserFilter::from_section(section).map(|p| Self::Parser(Box::new(p)))
            }
            "stdout" => {
                stdout::StdoutFilter::from_section(section).map(|p| Self::Stdout(Box::new(p)))
            }
            "concat" => {
                concat::ConcatRule::from_section(section).map(|r| Self::Concat(Arc::new(r)))
            }
            "kubernetes_metadata" => kubernetes_metadata::KubernetesMetadata::from_section(section)
                .map(|k| Self::KubernetesMetadata(Box::new(k))),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Grep(_) => "grep",
            Self::RecordTransformer(_) => "record_transformer",
            Self::Parser(_) => "parser",
            Self::Stdout(_) => "stdout",
            Self::Concat(_) => "concat",
            Self::KubernetesMetadata(_) => "kubernetes_metadata",
        }
    }

    /// Filters one event.
    pub fn apply(&self, ctx: &TagContext, event: &mut Event<'_>) -> Outcome {
        match self {
            Self::Grep(g) => g.apply(&event.record),
            Self::RecordTransformer(r) => r.apply(ctx, event),
            Self::Parser(p) => p.apply(event),
            Self::Stdout(p) => p.apply(&ctx.tag, event),
            Self::Concat(c) => {
                if ctx.joined_by_input {
                    Outcome::keep()
                } else {
                    c.pass(&ctx.tag)
                }
            }
            Self::KubernetesMetadata(k) => k.apply(ctx, event),
        }
    }
}

/// A compiled expression matched from many threads at once without contention: each thread
/// matches with its own clone of the expression. A `regex::Regex` keeps its matching caches in
/// a pool whose first user takes a cache without a lock while every other thread locks the
/// pool twice per match; a clone has a pool of its own, so every thread is its clone's first
/// user. The clones live in a small per-thread list (cleared when it grows past
/// [`Pattern::PER_THREAD`] expressions, as after many reloads).
#[derive(Debug, Clone)]
pub struct Pattern {
    re: regex::Regex,
    id: u64,
}

impl Pattern {
    const PER_THREAD: usize = 64;

    pub fn new(re: regex::Regex) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            re,
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub fn is_match(&self, text: &str) -> bool {
        thread_local! {
            // A few expressions per thread: a linear scan beats hashing the id.
            static CLONES: std::cell::RefCell<Vec<(u64, regex::Regex)>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        CLONES.with(|clones| {
            let mut clones = clones.borrow_mut();
            if let Some((_, re)) = clones.iter().find(|(id, _)| *id == self.id) {
                return re.is_match(text);
            }
            if clones.len() >= Self::PER_THREAD {
                clones.clear();
            }
            let re = self.re.clone();
            let matched = re.is_match(text);
            clones.push((self.id, re));
            matched
        })
    }

    pub fn as_str(&self) -> &str {
        self.re.as_str()
    }
}

/// Compiles a Fluentd regexp parameter for text values: `/pattern/flags` (flags `i`, `m`, `x`;
/// Ruby's `m` is "dot matches newline") or a bare pattern, read by
/// [`crate::parse::strip_slashes`] as every `<parse>` expression is. The syntax is Rust's
/// `regex`: no look-around, no back-references.
pub fn ruby_regex(text: &str, ignorecase: bool, multiline: bool) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&crate::parse::strip_slashes(text))
        .case_insensitive(ignorecase)
        .dot_matches_new_line(multiline)
        .build()
        .map_err(|e| format!("invalid regular expression '{text}': {e}"))
}
