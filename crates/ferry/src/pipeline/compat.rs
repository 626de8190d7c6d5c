//! Fluentd v1's compatibility layer for v0.12 parameters (`plugin_helper/compat_parameters.rb`):
//! top-level `buffer_type`, `buffer_path`, `flush_interval`, `time_slice_format`, `format`,
//! `include_time_key`, ... are moved into the `<buffer>`, `<parse>`, `<format>` and `<inject>`
//! sections Fluentd v1 derives from them, before the configuration is read, so the plugins see
//! only v1 sections. Each moved parameter keeps the line it was written on: a value the v1
//! section refuses is reported there.
//!
//! As in Fluentd, a converter runs only for the plugins that use it, and only when the plugin
//! has no v1 section of that kind already:
//!
//! | plugin | converters |
//! |---|---|
//! | `tail` input, `parser` filter | parser |
//! | `file` output | formatter, buffer (chunk key `time`, daily by default), inject |
//! | `forward` output | buffer (chunk key `tag`) |
//! | `stdout` output and filter | inject, formatter |

use ferry_config::{Element, Param, Span};

/// v0.12 buffer parameter → v1 `<buffer>` parameter.
const BUFFER: &[(&str, &str)] = &[
    ("buffer_type", "@type"),
    ("buffer_path", "path"),
    ("num_threads", "flush_thread_count"),
    ("flush_interval", "flush_interval"),
    ("try_flush_interval", "flush_thread_interval"),
    ("queued_chunk_flush_interval", "flush_thread_burst_interval"),
    ("disable_retry_limit", "retry_forever"),
    ("retry_limit", "retry_max_times"),
    ("max_retry_wait", "retry_max_interval"),
    ("buffer_chunk_limit", "chunk_limit_size"),
    ("buffer_queue_limit", "queue_limit_length"),
    ("buffer_queue_full_action", "overflow_action"),
    ("flush_at_shutdown", "flush_at_shutdown"),
    ("time_slice_wait", "timekey_wait"),
    ("timezone", "timekey_zone"),
];
/// Read by the buffer converter without a v1 name of their own.
const BUFFER_ONLY_READ: &[&str] = &["time_slice_format", "localtime", "utc"];

const PARSER: &[(&str, &str)] = &[
    ("keys", "keys"),
    ("time_key", "time_key"),
    ("time_format", "time_format"),
    ("delimiter", "delimiter"),
    ("keep_time_key", "keep_time_key"),
    ("null_empty_string", "null_empty_string"),
    ("null_value_pattern", "null_value_pattern"),
    ("json_parser", "json_parser"),
    ("label_delimiter", "label_delimiter"),
    ("format_firstline", "format_firstline"),
    ("message_key", "message_key"),
    ("with_priority", "with_priority"),
];
const PARSER_ONLY_READ: &[&str] = &[
    "format",
    "types",
    "types_delimiter",
    "types_label_delimiter",
    "localtime",
    "utc",
];

const INJECT: &[(&str, &str)] = &[
    ("time_key", "time_key"),
    ("time_format", "time_format"),
    ("timezone", "timezone"),
    ("tag_key", "tag_key"),
];
const INJECT_ONLY_READ: &[&str] = &[
    "include_time_key",
    "include_tag_key",
    "localtime",
    "utc",
    "time_as_epoch",
];

const FORMATTER: &[(&str, &str)] = &[
    ("format", "@type"),
    ("delimiter", "delimiter"),
    ("force_quotes", "force_quotes"),
    ("keys", "keys"),
    ("fields", "fields"),
    ("json_parser", "json_parser"),
    ("label_delimiter", "label_delimiter"),
    ("output_time", "output_time"),
    ("output_tag", "output_tag"),
    ("localtime", "localtime"),
    ("utc", "utc"),
    ("timezone", "timezone"),
    ("message_key", "message_key"),
    ("add_newline", "add_newline"),
    ("output_type", "output_type"),
];
const FORMATTER_ONLY_READ: &[&str] = &["time_as_epoch"];

/// Every top-level parameter each converter reads (moved into its section, or read to derive
/// one).
const BUFFER_KEYS: &[&str] = &[
    "buffer_type",
    "buffer_path",
    "num_threads",
    "flush_interval",
    "try_flush_interval",
    "queued_chunk_flush_interval",
    "disable_retry_limit",
    "retry_limit",
    "max_retry_wait",
    "buffer_chunk_limit",
    "buffer_queue_limit",
    "buffer_queue_full_action",
    "flush_at_shutdown",
    "time_slice_wait",
    "timezone",
    "time_slice_format",
    "localtime",
    "utc",
];
const PARSER_KEYS: &[&str] = &[
    "keys",
    "time_key",
    "time_format",
    "delimiter",
    "keep_time_key",
    "null_empty_string",
    "null_value_pattern",
    "json_parser",
    "label_delimiter",
    "format_firstline",
    "message_key",
    "with_priority",
    "format",
    "types",
    "types_delimiter",
    "types_label_delimiter",
    "localtime",
    "utc",
];
const INJECT_KEYS: &[&str] = &[
    "time_key",
    "time_format",
    "timezone",
    "tag_key",
    "include_time_key",
    "include_tag_key",
    "localtime",
    "utc",
    "time_as_epoch",
];
const FORMATTER_KEYS: &[&str] = &[
    "format",
    "delimiter",
    "force_quotes",
    "keys",
    "fields",
    "json_parser",
    "label_delimiter",
    "output_time",
    "output_tag",
    "localtime",
    "utc",
    "timezone",
    "message_key",
    "add_newline",
    "output_type",
    "time_as_epoch",
];

/// A v0.12 configuration error (Fluentd raises the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatError {
    pub span: Span,
    pub message: String,
}

/// Converts every plugin section of `root` (in labels too, and `<store>`s of `copy`).
pub fn convert(root: &mut Element) -> Vec<CompatError> {
    let mut errors = Vec::new();
    for e in &mut root.children {
        match e.name.as_str() {
            "source" => convert_plugin(e, "source", &mut errors),
            "filter" | "match" => convert_directive(e, &mut errors),
            "label" => {
                for c in &mut e.children {
                    if c.name == "filter" || c.name == "match" {
                        convert_directive(c, &mut errors);
                    }
                }
            }
            _ => {}
        }
    }
    errors
}

fn convert_directive(e: &mut Element, errors: &mut Vec<CompatError>) {
    let kind = e.name.clone();
    convert_plugin(e, &kind, errors);
    if matches!(plugin_type(e), Some("copy" | "roundrobin")) {
        for store in e.children.iter_mut().filter(|c| c.name == "store") {
            convert_plugin(store, "match", errors);
        }
    }
}

fn plugin_type(e: &Element) -> Option<&str> {
    e.value("@type").or_else(|| e.value("type"))
}

fn convert_plugin(e: &mut Element, directive: &str, errors: &mut Vec<CompatError>) {
    let Some(kind) = plugin_type(e).map(str::to_string) else {
        return;
    };
    // The tcp and syslog inputs' own `delimiter` (where messages end) is not the parser's.
    let own = if kind == "tcp" || kind == "syslog" {
        let at = e.params.iter().position(|p| p.key == "delimiter");
        at.map(|i| e.params.remove(i))
    } else {
        None
    };
    // Every converter reads the parameters as written (some read the same ones: `localtime`,
    // `timezone`, ...); the moved ones go once all have read them.
    let (sections, moved): (Vec<Option<Element>>, Vec<&[&str]>) = match (directive, kind.as_str()) {
        ("source", "tail" | "tcp" | "udp" | "syslog" | "http") | ("filter", "parser") => {
            (vec![parser(e, errors)], vec![PARSER_KEYS])
        }
        ("match", "file") => (
            vec![formatter(e), buffer(e, "time", errors), inject(e, errors)],
            vec![FORMATTER_KEYS, BUFFER_KEYS, INJECT_KEYS],
        ),
        ("match", "forward") => (vec![buffer(e, "tag", errors)], vec![BUFFER_KEYS]),
        ("match", "stdout") | ("filter", "stdout") => (
            vec![inject(e, errors), formatter(e)],
            vec![INJECT_KEYS, FORMATTER_KEYS],
        ),
        _ => return,
    };
    let mut used = Vec::new();
    for (section, keys) in sections.into_iter().zip(moved) {
        if let Some(s) = section {
            used.extend_from_slice(keys);
            e.children.push(s);
        }
    }
    e.params.retain(|p| !used.contains(&p.key.as_str()));
    e.params.extend(own);
}

fn has_any(e: &Element, keys: &[(&str, &str)], read: &[&str]) -> bool {
    keys.iter().any(|(k, _)| e.param(k).is_some()) || read.iter().any(|k| e.param(k).is_some())
}

/// The mapped parameters of `e`, with their spans.
fn copy(e: &Element, keys: &[(&str, &str)]) -> Vec<Param> {
    keys.iter()
        .filter_map(|(old, new)| {
            e.param(old).map(|p| Param {
                key: (*new).to_string(),
                value: p.value.clone(),
                span: p.span.clone(),
                unset: p.unset,
            })
        })
        .collect()
}

fn set_default(params: &mut Vec<Param>, key: &str, value: &str, span: &Span) {
    if !params.iter().any(|p| p.key == key) {
        params.push(Param {
            key: key.to_string(),
            value: value.to_string(),
            span: span.clone(),
            unset: None,
        });
    }
}

/// The parameter `key` as written with a value (not `use_default` / `use_nil`).
fn written<'e>(e: &'e Element, key: &str) -> Option<&'e Param> {
    e.param(key).filter(|p| p.unset.is_none())
}

/// A v0.12 switch as Fluentd reads it: a value that is not a boolean counts as false.
fn truthy(v: &str) -> bool {
    ferry_config::parse_bool(v).unwrap_or(false)
}

/// `localtime` / `utc` at the top level as Fluentd reads them: `Some(localtime)`, or an error
/// when both are written.
fn local_time(e: &Element, errors: &mut Vec<CompatError>) -> Option<(bool, Span)> {
    match (written(e, "localtime"), written(e, "utc")) {
        (Some(l), Some(_)) => {
            errors.push(CompatError {
                span: l.span.clone(),
                message: "both of utc and localtime are specified, use only one of them".into(),
            });
            None
        }
        (Some(l), None) => Some((truthy(&l.value), l.span.clone())),
        (None, Some(u)) => Some((!truthy(&u.value), u.span.clone())),
        (None, None) => None,
    }
}

fn section(name: &str, arg: &str, params: Vec<Param>, at: &Element) -> Element {
    let mut s = Element::new(
        name,
        arg,
        params.first().map_or(at.span.clone(), |p| p.span.clone()),
    );
    s.params = params;
    s
}

fn buffer(e: &Element, default_key: &str, errors: &mut Vec<CompatError>) -> Option<Element> {
    if e.child("buffer").is_some() || !has_any(e, BUFFER, BUFFER_ONLY_READ) {
        return None;
    }
    let mut params = copy(e, BUFFER);
    for p in &mut params {
        if p.key == "overflow_action" && p.value == "exception" {
            p.value = "throw_exception".into();
        }
    }
    let mut chunk_key = default_key;
    if let Some(f) = written(e, "time_slice_format") {
        chunk_key = "time";
        let timekey = if f.value.contains("%S") {
            Some("1")
        } else if f.value.contains("%M") {
            Some("60")
        } else if f.value.contains("%H") {
            Some("3600")
        } else if f.value.contains("%d") {
            Some("86400")
        } else {
            errors.push(CompatError {
                span: f.span.clone(),
                message: "time_slice_format only with %Y or %m is too long".into(),
            });
            None
        };
        let span = f.span.clone();
        if let Some(t) = timekey {
            set_default(&mut params, "timekey", t, &span);
        }
        if let Some((local, span)) = local_time(e, errors) {
            set_default(
                &mut params,
                "timekey_use_utc",
                if local { "false" } else { "true" },
                &span,
            );
        }
    } else if chunk_key == "time" {
        // Fluentd's v0.12 time-sliced outputs sliced by day (`%Y%m%d`).
        let span = params.first().map_or(e.span.clone(), |p| p.span.clone());
        set_default(&mut params, "timekey", "86400", &span);
    }
    Some(section("buffer", chunk_key, params, e))
}

fn inject(e: &Element, errors: &mut Vec<CompatError>) -> Option<Element> {
    if e.child("inject").is_some() || !has_any(e, INJECT, INJECT_ONLY_READ) {
        return None;
    }
    let mut params = copy(e, INJECT);
    if let Some(p) = written(e, "include_time_key").filter(|p| truthy(&p.value)) {
        let span = p.span.clone();
        set_default(&mut params, "time_key", "time", &span);
        set_default(&mut params, "time_type", "string", &span);
    }
    if let Some(p) = written(e, "time_as_epoch").filter(|p| truthy(&p.value)) {
        let span = p.span.clone();
        set_default(&mut params, "time_key", "time", &span);
        params.retain(|p| p.key != "time_type");
        set_default(&mut params, "time_type", "unixtime", &span);
    }
    if let Some((local, span)) = local_time(e, errors) {
        set_default(
            &mut params,
            "localtime",
            if local { "true" } else { "false" },
            &span,
        );
    }
    if let Some(p) = written(e, "include_tag_key").filter(|p| truthy(&p.value)) {
        let span = p.span.clone();
        set_default(&mut params, "tag_key", "tag", &span);
    }
    Some(section("inject", "", params, e))
}

fn formatter(e: &Element) -> Option<Element> {
    if e.child("format").is_some() || !has_any(e, FORMATTER, FORMATTER_ONLY_READ) {
        return None;
    }
    let mut params = copy(e, FORMATTER);
    if let Some(p) = written(e, "time_as_epoch").filter(|p| truthy(&p.value)) {
        let span = p.span.clone();
        set_default(&mut params, "time_type", "unixtime", &span);
    }
    Some(section("format", "", params, e))
}

fn parser(e: &Element, errors: &mut Vec<CompatError>) -> Option<Element> {
    if e.child("parse").is_some() || !has_any(e, PARSER, PARSER_ONLY_READ) {
        return None;
    }
    let mut params = copy(e, PARSER);
    if let Some(f) = written(e, "format") {
        let span = f.span.clone();
        let v = &f.value;
        if v.len() >= 2 && v.starts_with('/') && v.ends_with('/') {
            params.push(Param {
                key: "@type".into(),
                value: "regexp".into(),
                span: span.clone(),
                unset: None,
            });
            params.push(Param {
                key: "expression".into(),
                value: v[1..v.len() - 1].to_string(),
                span,
                unset: None,
            });
        } else {
            params.push(Param {
                key: "@type".into(),
                value: v.clone(),
                span,
                unset: None,
            });
        }
    }
    if let Some(t) = written(e, "types") {
        let delimiter = e.value("types_delimiter").unwrap_or(",");
        let label = e.value("types_label_delimiter").unwrap_or(":");
        let mut map = serde_json::Map::new();
        for pair in t.value.split(delimiter).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once(label).unwrap_or((pair, ""));
            map.insert(k.to_string(), serde_json::Value::String(v.to_string()));
        }
        params.push(Param {
            key: "types".into(),
            value: serde_json::Value::Object(map).to_string(),
            span: t.span.clone(),
            unset: None,
        });
    }
    if let Some((local, span)) = local_time(e, errors) {
        params.push(Param {
            key: "localtime".into(),
            value: if local { "true" } else { "false" }.into(),
            span,
            unset: None,
        });
    }
    Some(section("parse", "", params, e))
}

#[cfg(test)]
#[path = "compat_tests.rs"]
mod tests;
