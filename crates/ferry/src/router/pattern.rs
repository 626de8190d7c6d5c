//! Fluentd's `<match>` and `<filter>` tag patterns.
//!
//! A directive's argument is one or more patterns separated by whitespace; a tag matches the
//! directive when it matches any of them. Within a pattern:
//!
//! | pattern | matches |
//! |---|---|
//! | `a.b` | exactly `a.b` |
//! | `*` | one tag part (a run of characters without `.`), possibly empty |
//! | `**` | zero or more tag parts (any run of characters) |
//! | `a.**` | `a`, `a.b`, `a.b.c` (the dot before `**` is optional, but `ab` does not match) |
//! | `**.b` | `b`, `a.b`, `x.y.b` (at the start of the tag the dot after `**` is optional) |
//! | `{a,b}.c` | `a.c` or `b.c`; alternatives may themselves hold patterns |
//! | `\*` | a literal `*` (a backslash escapes the next character) |
//! | `/app\.(web\|db)/` | a regular expression matched against the whole tag |
//!
//! The rules are those of Fluentd's `GlobMatchPattern`, which compiles a pattern to a regular
//! expression: a `.` is held back until the next character, so a `.` before `**` becomes "the
//! next character is `.` or the tag ends", `**.` becomes "anything ending in `.`, or the start
//! of the tag", and a `.` that ends the pattern is dropped (`a.` matches `a`). ferry compiles a
//! pattern into a small token list matched by backtracking (tags are short and the router
//! caches the route of each tag, so a tag is matched once, not per event); a property test
//! checks it against a regex built by Fluentd's rules.
//!
//! Stricter than Fluentd: an unterminated `{`, a `}` with no `{`, and a trailing `\` are
//! configuration errors (Fluentd builds a pattern that is rarely what was meant). Regular
//! expressions use Rust's `regex` syntax (no look-around or back-references).

use std::fmt;

/// The longest pattern accepted, in characters (backtracking cost grows with it).
const MAX_PATTERN_CHARS: usize = 1024;

/// One compiled `<match>` argument: any of its patterns may match.
#[derive(Debug, Clone)]
pub struct MatchPattern {
    source: String,
    alternatives: Vec<Alternative>,
}

#[derive(Debug, Clone)]
enum Alternative {
    Glob(Vec<Token>),
    Regex(regex::Regex),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Lit(Vec<u8>),
    /// `*`: characters other than `.`.
    Part,
    /// `**` not followed by `.`: any characters.
    Any,
    /// A `.` held back before `**`: matches nothing, where the next character is `.` or the
    /// tag ends.
    DotAhead,
    /// `**.`: nothing at the start of the tag, else any characters ending with `.`.
    AnyDotOrStart,
    Alt(Vec<Vec<Token>>),
}

/// Why a pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad tag pattern '{pattern}': {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

impl MatchPattern {
    /// Compiles a directive argument such as `app.** {web,db}.access`. An empty argument means
    /// `**`, as in Fluentd.
    pub fn parse(arg: &str) -> Result<Self, PatternError> {
        let mut alternatives = Vec::new();
        for word in arg.split_whitespace() {
            let err = |reason: String| PatternError {
                pattern: word.to_string(),
                reason,
            };
            if word.chars().count() > MAX_PATTERN_CHARS {
                return Err(err(format!("longer than {MAX_PATTERN_CHARS} characters")));
            }
            if let Some(inner) = word.strip_prefix('/').filter(|w| !w.is_empty()) {
                let Some(inner) = inner.strip_suffix('/') else {
                    return Err(err("a regular expression pattern must end with '/'".into()));
                };
                let re = regex::Regex::new(&format!(r"\A(?:{inner})\z"))
                    .map_err(|e| err(e.to_string()))?;
                alternatives.push(Alternative::Regex(re));
                continue;
            }
            let chars: Vec<char> = word.chars().collect();
            alternatives.push(Alternative::Glob(
                compile(&chars).map_err(|r| err(r.into()))?,
            ));
        }
        if alternatives.is_empty() {
            alternatives.push(Alternative::Glob(vec![Token::Any]));
        }
        Ok(Self {
            source: arg.trim().to_string(),
            alternatives,
        })
    }

    /// Whether `tag` matches any of the patterns.
    pub fn matches(&self, tag: &str) -> bool {
        let bytes = tag.as_bytes();
        self.alternatives.iter().any(|alt| match alt {
            Alternative::Glob(seq) => match_seq(seq, bytes, 0, &mut |end| end == bytes.len()),
            Alternative::Regex(re) => re.is_match(tag),
        })
    }
}

impl fmt::Display for MatchPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Fluentd's state machine: a pending `.`, a pending escape, a stack of `{` groups.
fn compile(chars: &[char]) -> Result<Vec<Token>, &'static str> {
    // Each open `{` holds its finished alternatives; `current` is the sequence being built.
    let mut groups: Vec<(Vec<Vec<Token>>, Vec<Token>)> = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    let mut dot = false;
    let mut escape = false;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if escape {
            push_lit(&mut current, c);
            escape = false;
            i += 1;
            continue;
        }
        if c == '*' && chars.get(i + 1) == Some(&'*') {
            if dot {
                current.push(Token::DotAhead);
                dot = false;
            }
            if chars.get(i + 2) == Some(&'.') {
                current.push(Token::AnyDotOrStart);
                i += 3;
            } else {
                current.push(Token::Any);
                i += 2;
            }
            continue;
        }
        if dot {
            push_lit(&mut current, '.');
            dot = false;
        }
        match c {
            '\\' => escape = true,
            '.' => dot = true,
            '*' => current.push(Token::Part),
            '{' => groups.push((Vec::new(), std::mem::take(&mut current))),
            ',' if !groups.is_empty() => {
                if let Some((alts, _)) = groups.last_mut() {
                    alts.push(std::mem::take(&mut current));
                }
            }
            '}' => {
                let Some((mut alts, outer)) = groups.pop() else {
                    return Err("'}' without a matching '{'");
                };
                alts.push(std::mem::replace(&mut current, outer));
                current.push(Token::Alt(alts));
            }
            _ => push_lit(&mut current, c),
        }
        i += 1;
    }
    if escape {
        return Err("ends with '\\'");
    }
    if !groups.is_empty() {
        return Err("unterminated '{'");
    }
    // A held-back `.` at the very end is dropped, as in Fluentd.
    Ok(current)
}

fn push_lit(tokens: &mut Vec<Token>, c: char) {
    let mut buf = [0u8; 4];
    let bytes = c.encode_utf8(&mut buf).as_bytes();
    if let Some(Token::Lit(lit)) = tokens.last_mut() {
        lit.extend_from_slice(bytes);
    } else {
        tokens.push(Token::Lit(bytes.to_vec()));
    }
}

/// Matches `tokens` against `tag[at..]`, calling `rest` with each end position reached; true
/// as soon as `rest` accepts one.
fn match_seq(tokens: &[Token], tag: &[u8], at: usize, rest: &mut dyn FnMut(usize) -> bool) -> bool {
    let Some((first, tail)) = tokens.split_first() else {
        return rest(at);
    };
    let mut next = |end: usize| match_seq(tail, tag, end, rest);
    match first {
        Token::Lit(s) => tag.get(at..at + s.len()) == Some(s.as_slice()) && next(at + s.len()),
        Token::Part => {
            let mut end = at;
            loop {
                if next(end) {
                    return true;
                }
                match tag.get(end) {
                    Some(b'.') | None => return false,
                    Some(_) => end += 1,
                }
            }
        }
        Token::Any => (at..=tag.len()).rev().any(&mut next),
        Token::DotAhead => matches!(tag.get(at), None | Some(b'.')) && next(at),
        Token::AnyDotOrStart => {
            (at == 0 && next(0))
                || (at..tag.len()).any(|dot| tag.get(dot) == Some(&b'.') && next(dot + 1))
        }
        Token::Alt(alts) => alts.iter().any(|alt| match_seq(alt, tag, at, &mut next)),
    }
}

#[cfg(test)]
#[path = "pattern_tests.rs"]
mod tests;
