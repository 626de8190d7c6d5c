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

//!
//! | module | job |
//! |---|---|
//! | this one | the parameters ([`ConcatRule`]) |
//! | [`join`] | one file's messages being joined, per stream ([`Concat`]) |
//! | [`rules`] | the built-in Java, Python and Go rules |

mod join;
mod rules;

pub use join::{Concat, Fed, HeldMessages, Joined, Pending};
pub use rules::{Lang, RULES};

use ferry_config::Section;
use regex::bytes::Regex;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Why fluent-plugin-concat's partial-metadata parameters are refused.
const NO_PARTIAL_METADATA: &str = "Docker's partial metadata comes from its fluentd log driver, which writes no files; ferry joins json-file parts in the tail's <parse> (@type docker)";

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

#[cfg(test)]
mod tests;
