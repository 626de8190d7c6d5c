//! Chunk key placeholders: text filled in from a chunk's key (Fluentd's
//! `extract_placeholders`), for the file output's paths, the secondary file's paths and the
//! http output's endpoint and headers.
//!
//! A template holds `strftime` directives (`%Y%m%d%H`, formatted from the chunk's time slice,
//! in the buffer's `timekey_zone`), placeholders filled from the chunk key — `${tag}`,
//! `${tag[N]}` and `${tag_parts[N]}` (negative N counts from the end), `${KEY}` for a record
//! chunk key, `${chunk_id}` — and, in a path, an index slot for the file number.
//!
//! Values filled in from events are escaped as the text they land in needs ([`Escape`]): in a
//! path, `/` and NUL become `_`, and a value that starts with `.` gets a `_` in front, so a tag
//! can never name a parent directory; in a URL, bytes a URL cannot hold are percent-encoded.
//!
//! A path is always a `strftime` format. Other text is one only when `time` is a chunk key, as
//! in Fluentd: `%20` in an endpoint stays `%20` unless the chunks are cut by time.

use crate::output::buffer_section::ChunkKeys;
use crate::time::{Strftime, Zone};
use ferry_buffer::ChunkKey;
use ferry_proto::time::EventTime;
use std::path::PathBuf;

/// How the index slot is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexStyle {
    /// out_file: `_0`, `_1`, ...; with `optional_zero`, index 0 writes nothing.
    Underscore,
    /// secondary_file: `.0`, `.1`, ...
    Dot,
}

/// How values from a chunk key are written into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// A file path: a value never adds a directory level or names a parent.
    Path,
    /// A URL: bytes a URL cannot hold (space, controls, `"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`, non-ASCII) are
    /// percent-encoded; the rest is written as it is, as Fluentd writes it.
    Url,
    /// As it is (header values; the caller checks what it cannot send).
    None,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(Strftime),
    Text(String),
    Tag,
    TagPart(i64),
    Key(String),
    ChunkId,
    Index,
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
    style: IndexStyle,
    escape: Escape,
    /// The zone the time slice is written in.
    zone: Zone,
}

/// What a template needs from the chunk key, checked against the buffer's chunk keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub time: bool,
    pub tag: bool,
    pub keys: Vec<String>,
}

impl Template {
    /// Compiles the path `source`, in which the character NUL marks the index slot (the caller
    /// puts it where Fluentd's path rules put the file number); times are written in `zone`.
    pub fn parse(source: &str, style: IndexStyle, zone: Zone) -> Result<Self, String> {
        Self::compile(source, style, Escape::Path, Some(zone))
    }

    /// Compiles text that is not a path (an endpoint, a header value): a `strftime` format
    /// only when `time` is `Some` (the chunks are cut by time; times written in that zone).
    pub fn parse_text(source: &str, escape: Escape, time: Option<Zone>) -> Result<Self, String> {
        Self::compile(source, IndexStyle::Dot, escape, time)
    }

    fn compile(
        source: &str,
        style: IndexStyle,
        escape: Escape,
        time: Option<Zone>,
    ) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = source;
        let strftime = time.is_some();
        let flush = |lit: &mut String, pieces: &mut Vec<Piece>| -> Result<(), String> {
            if !lit.is_empty() {
                pieces.push(if strftime {
                    Piece::Lit(Strftime::parse(lit).map_err(|e| format!("'{lit}': {e}"))?)
                } else {
                    Piece::Text(lit.clone())
                });
                lit.clear();
            }
            Ok(())
        };
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('\u{0}') {
                flush(&mut lit, &mut pieces)?;
                pieces.push(Piece::Index);
                rest = r;
                continue;
            }
            if let Some(r) = rest.strip_prefix("${") {
                let end = r
                    .find('}')
                    .ok_or_else(|| format!("unterminated '${{' in '{source}'"))?;
                flush(&mut lit, &mut pieces)?;
                pieces.push(placeholder(&r[..end])?);
                rest = &r[end + 1..];
                continue;
            }
            let c = rest.chars().next().unwrap_or_default();
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        flush(&mut lit, &mut pieces)?;
        Ok(Self {
            source: source.to_string(),
            pieces,
            style,
            escape,
            zone: time.unwrap_or(Zone::UTC),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// What the template reads from a chunk key.
    pub fn needs(&self) -> Needs {
        let mut n = Needs::default();
        for p in &self.pieces {
            match p {
                Piece::Lit(f) => n.time |= f.has_directives(),
                Piece::Tag | Piece::TagPart(_) => n.tag = true,
                Piece::Key(k) if !n.keys.contains(k) => n.keys.push(k.clone()),
                _ => {}
            }
        }
        n
    }

    /// Whether the template has strftime directives.
    pub fn has_time(&self) -> bool {
        self.needs().time
    }

    /// Reports what the template needs that the chunk keys do not provide.
    pub fn check(&self, keys: &ChunkKeys) -> Result<(), String> {
        let n = self.needs();
        if n.time && !keys.time {
            return Err(format!(
                "'{}' has time placeholders but 'time' is not a chunk key",
                self.source
            ));
        }
        if n.tag && !keys.tag {
            return Err(format!(
                "'{}' has ${{tag}} placeholders but 'tag' is not a chunk key",
                self.source
            ));
        }
        if let Some(k) = n.keys.iter().find(|k| !keys.record.contains(k)) {
            return Err(format!(
                "'{}' has ${{{k}}} but '{k}' is not a chunk key",
                self.source
            ));
        }
        Ok(())
    }

    /// The template filled from `key`, split at the index slot.
    pub fn render(&self, key: &ChunkKey, chunk_id: &str) -> Rendered {
        let time = EventTime {
            sec: u32::try_from(key.timekey.unwrap_or(0).max(0)).unwrap_or(u32::MAX),
            nsec: 0,
        };
        let tag = key.tag.as_deref().unwrap_or("");
        let parts: Vec<&str> = tag.split('.').collect();
        let mut out = Rendered {
            head: String::new(),
            tail: String::new(),
            style: self.style,
            indexed: false,
        };
        for p in &self.pieces {
            let target = if out.indexed {
                &mut out.tail
            } else {
                &mut out.head
            };
            let escape = self.escape;
            match p {
                Piece::Lit(f) => f.write(time, &self.zone, target),
                Piece::Text(t) => target.push_str(t),
                Piece::Tag => push_value(target, tag, escape),
                Piece::TagPart(n) => {
                    let len = parts.len() as i64;
                    let i = if *n < 0 { len + n } else { *n };
                    if let Some(part) = usize::try_from(i).ok().and_then(|i| parts.get(i)) {
                        push_value(target, part, escape);
                    }
                }
                Piece::Key(k) => {
                    let v = key
                        .variables
                        .iter()
                        .find(|(name, _)| name == k)
                        .map_or("", |(_, v)| v);
                    push_value(target, v, escape);
                }
                Piece::ChunkId => target.push_str(chunk_id),
                Piece::Index => out.indexed = true,
            }
        }
        out
    }
}

/// A filled template: `head`, the index, `tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub head: String,
    pub tail: String,
    pub style: IndexStyle,
    /// The template had an index slot (else every index names the same file).
    pub indexed: bool,
}

impl Rendered {
    /// The path of file number `index`; with `zero_bare`, index 0 has no number (append mode).
    pub fn path(&self, index: u32, zero_bare: bool) -> PathBuf {
        let slot = match (self.style, zero_bare && index == 0) {
            (_, true) => String::new(),
            (IndexStyle::Underscore, false) => format!("_{index}"),
            (IndexStyle::Dot, false) => format!(".{index}"),
        };
        PathBuf::from(format!("{}{slot}{}", self.head, self.tail))
    }

    /// A name for the whole family of indexed files (the cache key of the next index).
    pub fn family(&self) -> String {
        format!("{}\u{0}{}", self.head, self.tail)
    }

    /// The filled text of a template without an index slot.
    pub fn text(self) -> String {
        let mut text = self.head;
        text.push_str(&self.tail);
        text
    }
}

fn placeholder(inner: &str) -> Result<Piece, String> {
    let index = |name: &str| {
        inner
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix('['))
            .and_then(|r| r.strip_suffix(']'))
            .map(|n| {
                n.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("bad index in '${{{inner}}}'"))
            })
    };
    match inner {
        "tag" => Ok(Piece::Tag),
        "chunk_id" => Ok(Piece::ChunkId),
        _ => {
            if let Some(n) = index("tag").or_else(|| index("tag_parts")) {
                return n.map(Piece::TagPart);
            }
            let valid = !inner.is_empty()
                && inner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
            if valid {
                Ok(Piece::Key(inner.to_string()))
            } else {
                Err(format!("unknown placeholder '${{{inner}}}'"))
            }
        }
    }
}

/// What a URL cannot hold as it is: controls, space and the characters RFC 3986 leaves out
/// (non-ASCII is always encoded).
const NOT_IN_URLS: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn push_value(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::Path => out.push_str(&safe(value)),
        Escape::None => out.push_str(value),
        Escape::Url => out.extend(percent_encoding::utf8_percent_encode(value, NOT_IN_URLS)),
    }
}

fn safe(value: &str) -> String {
    let mut s: String = value
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    if s.starts_with('.') || s.is_empty() {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tag: &str, timekey: i64) -> ChunkKey {
        ChunkKey {
            tag: Some(tag.to_string()),
            timekey: Some(timekey),
            variables: vec![("host".into(), "web1".into())],
        }
    }

    #[test]
    fn renders_time_tag_parts_keys_and_the_index_slot() {
        let t = Template::parse(
            "/logs/${tag[0]}/${tag_parts[-1]}/${host}/app.%Y%m%d%H\u{0}.log.gz",
            IndexStyle::Underscore,
            Zone::UTC,
        )
        .unwrap();
        let r = t.render(
            &key("app.web.access", 1_700_000_000 - 1_700_000_000 % 3600),
            "id",
        );
        assert_eq!(
            r.path(0, false),
            PathBuf::from("/logs/app/access/web1/app.2023111422_0.log.gz")
        );
        assert_eq!(
            r.path(0, true),
            PathBuf::from("/logs/app/access/web1/app.2023111422.log.gz")
        );
        assert_eq!(
            r.path(3, true),
            PathBuf::from("/logs/app/access/web1/app.2023111422_3.log.gz")
        );
        let needs = t.needs();
        assert!(needs.time && needs.tag);
        assert_eq!(needs.keys, vec!["host".to_string()]);
    }

    #[test]
    fn values_from_events_cannot_escape_the_directory() {
        let t = Template::parse("/logs/${tag}/${tag[1]}/x", IndexStyle::Dot, Zone::UTC).unwrap();
        let r = t.render(&key("../etc", 0), "id");
        assert_eq!(r.path(0, true), PathBuf::from("/logs/_.._etc/_/x"));
        let r = t.render(&key("a./", 0), "id");
        assert_eq!(r.path(0, true), PathBuf::from("/logs/a._/_/x"));
    }

    #[test]
    fn text_is_a_time_format_only_when_chunks_are_cut_by_time() {
        let k = key("app.web", 1_700_000_000 - 1_700_000_000 % 3600);
        let endpoint = "http://h/?query=INSERT%20INTO%20${tag[1]}&h=${host}";
        let t = Template::parse_text(endpoint, Escape::Url, None).unwrap();
        assert_eq!(
            t.render(&k, "id").text(),
            "http://h/?query=INSERT%20INTO%20web&h=web1"
        );
        assert!(!t.needs().time);
        let t = Template::parse_text("/d/%Y%m%d/${tag}", Escape::Url, Some(Zone::UTC)).unwrap();
        assert_eq!(t.render(&k, "id").text(), "/d/20231114/app.web");
        assert!(t.needs().time);
    }

    #[test]
    fn values_are_escaped_for_the_text_they_land_in() {
        let mut k = key("a b/c", 0);
        k.variables = vec![("v".into(), "x\"y{é}".into())];
        let url = Template::parse_text("/p/${tag}?v=${v}", Escape::Url, None).unwrap();
        assert_eq!(
            url.render(&k, "id").text(),
            "/p/a%20b/c?v=x%22y%7B%C3%A9%7D"
        );
        let raw = Template::parse_text("${tag} ${v}", Escape::None, None).unwrap();
        assert_eq!(raw.render(&k, "id").text(), "a b/c x\"y{é}");
    }

    #[test]
    fn chunk_keys_must_provide_what_the_template_reads() {
        let t = Template::parse("/l/${tag}/%Y/${host}", IndexStyle::Dot, Zone::UTC).unwrap();
        let mut keys = ChunkKeys {
            tag: true,
            time: true,
            record: vec![],
        };
        assert!(t.check(&keys).is_err());
        keys.record.push("host".into());
        assert!(t.check(&keys).is_ok());
        keys.time = false;
        assert!(t.check(&keys).is_err());
        assert!(Template::parse("/l/${a b}", IndexStyle::Dot, Zone::UTC).is_err());
        assert!(Template::parse("/l/${tag", IndexStyle::Dot, Zone::UTC).is_err());
        assert!(Template::parse("/l/%Q", IndexStyle::Dot, Zone::UTC).is_err());
    }
}
