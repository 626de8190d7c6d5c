//! Path templates: where a chunk's events are written.
//!
//! A template holds `strftime` directives (`%Y%m%d%H`, formatted from the chunk's time slice,
//! in the buffer's `timekey_zone`), placeholders filled from the chunk key — `${tag}`, `${tag[N]}` and
//! `${tag_parts[N]}` (negative N counts from the end), `${KEY}` for a record chunk key,
//! `${chunk_id}` — and an index slot for the file number.
//!
//! Values filled in from events are made safe for a path: `/` and NUL become `_`, and a value
//! that starts with `.` gets a `_` in front, so a tag can never name a parent directory.

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

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(Strftime),
    Tag,
    TagPart(i64),
    Key(String),
    ChunkId,
    Index,
}

/// A compiled path template.
#[derive(Debug, Clone, PartialEq)]
pub struct PathTemplate {
    source: String,
    pieces: Vec<Piece>,
    style: IndexStyle,
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

impl PathTemplate {
    /// Compiles `source`, in which the character NUL marks the index slot (the caller puts it
    /// where Fluentd's path rules put the file number); times are written in `zone`.
    pub fn parse(source: &str, style: IndexStyle, zone: Zone) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = source;
        let flush = |lit: &mut String, pieces: &mut Vec<Piece>| -> Result<(), String> {
            if !lit.is_empty() {
                pieces.push(Piece::Lit(
                    Strftime::parse(lit).map_err(|e| format!("'{lit}': {e}"))?,
                ));
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
            zone,
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
            match p {
                Piece::Lit(f) => f.write(time, &self.zone, target),
                Piece::Tag => target.push_str(&safe(tag)),
                Piece::TagPart(n) => {
                    let len = parts.len() as i64;
                    let i = if *n < 0 { len + n } else { *n };
                    if let Some(part) = usize::try_from(i).ok().and_then(|i| parts.get(i)) {
                        target.push_str(&safe(part));
                    }
                }
                Piece::Key(k) => {
                    let v = key
                        .variables
                        .iter()
                        .find(|(name, _)| name == k)
                        .map_or("", |(_, v)| v);
                    target.push_str(&safe(v));
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
        let t = PathTemplate::parse(
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
        let t =
            PathTemplate::parse("/logs/${tag}/${tag[1]}/x", IndexStyle::Dot, Zone::UTC).unwrap();
        let r = t.render(&key("../etc", 0), "id");
        assert_eq!(r.path(0, true), PathBuf::from("/logs/_.._etc/_/x"));
        let r = t.render(&key("a./", 0), "id");
        assert_eq!(r.path(0, true), PathBuf::from("/logs/a._/_/x"));
    }

    #[test]
    fn chunk_keys_must_provide_what_the_template_reads() {
        let t = PathTemplate::parse("/l/${tag}/%Y/${host}", IndexStyle::Dot, Zone::UTC).unwrap();
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
        assert!(PathTemplate::parse("/l/${a b}", IndexStyle::Dot, Zone::UTC).is_err());
        assert!(PathTemplate::parse("/l/${tag", IndexStyle::Dot, Zone::UTC).is_err());
        assert!(PathTemplate::parse("/l/%Q", IndexStyle::Dot, Zone::UTC).is_err());
    }
}
