//! Fluentd's `<match>` tag patterns.
//!
//! A directive's argument is one or more patterns separated by whitespace; a tag matches the
//! directive when it matches any of them. Within a pattern:
//!
//! | pattern | matches |
//! |---|---|
//! | `a.b` | exactly `a.b` |
//! | `*` | one tag part (a run of characters without `.`), possibly empty |
//! | `**` | zero or more tag parts (any run of characters) |
//! | `a.**` | `a`, `a.b`, `a.b.c` (the dot before `**` is optional) |
//! | `**.b` | `b`, `a.b`, `x.y.b` (the dot after `**` is optional) |
//! | `{a,b}.c` | `a.c` or `b.c`; alternatives may themselves hold patterns |
//!
//! This is the same language Fluentd's `GlobMatchPattern` compiles to a regular expression.
//! Matching here is a backtracking walk over a small token list: tags are short, and the
//! router caches the route of each tag it has seen, so a tag is matched once, not per event.

use std::fmt;

/// One compiled `<match>` argument: any of its patterns may match.
#[derive(Debug, Clone)]
pub struct MatchPattern {
    source: String,
    alternatives: Vec<Vec<Token>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Lit(String),
    /// `*`: characters other than `.`.
    Part,
    /// `**`: any characters.
    Any,
    /// `.**`: nothing, or `.` followed by any characters.
    DotAny,
    /// `**.`: nothing, or any characters followed by `.`.
    AnyDot,
    Alt(Vec<Vec<Token>>),
}

/// Why a pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad tag pattern '{pattern}': {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: &'static str,
}

impl MatchPattern {
    /// Compiles a directive argument such as `app.** {web,db}.access`. An empty argument means
    /// `**`, as in Fluentd.
    pub fn parse(arg: &str) -> Result<Self, PatternError> {
        let mut alternatives = Vec::new();
        for word in arg.split_whitespace() {
            let chars: Vec<char> = word.chars().collect();
            let mut pos = 0;
            let tokens = parse_seq(&chars, &mut pos, false).map_err(|reason| PatternError {
                pattern: word.to_string(),
                reason,
            })?;
            if pos != chars.len() {
                return Err(PatternError {
                    pattern: word.to_string(),
                    reason: "unbalanced '}'",
                });
            }
            alternatives.push(tokens);
        }
        if alternatives.is_empty() {
            alternatives.push(vec![Token::Any]);
        }
        Ok(Self {
            source: arg.trim().to_string(),
            alternatives,
        })
    }

    /// Whether `tag` matches any of the patterns.
    pub fn matches(&self, tag: &str) -> bool {
        let tag = tag.as_bytes();
        self.alternatives
            .iter()
            .any(|seq| match_seq(seq, tag, 0, &mut |end| end == tag.len()))
    }
}

impl fmt::Display for MatchPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn parse_seq(chars: &[char], pos: &mut usize, in_alt: bool) -> Result<Vec<Token>, &'static str> {
    let mut tokens = Vec::new();
    let mut lit = String::new();
    let flush = |lit: &mut String, tokens: &mut Vec<Token>| {
        if !lit.is_empty() {
            tokens.push(Token::Lit(std::mem::take(lit)));
        }
    };
    while let Some(&c) = chars.get(*pos) {
        match c {
            '*' if chars.get(*pos + 1) == Some(&'*') => {
                if chars.get(*pos + 2) == Some(&'.') {
                    flush(&mut lit, &mut tokens);
                    tokens.push(Token::AnyDot);
                    *pos += 3;
                } else {
                    flush(&mut lit, &mut tokens);
                    tokens.push(Token::Any);
                    *pos += 2;
                }
            }
            '*' => {
                flush(&mut lit, &mut tokens);
                tokens.push(Token::Part);
                *pos += 1;
            }
            '.' if chars.get(*pos + 1) == Some(&'*')
                && chars.get(*pos + 2) == Some(&'*')
                && chars.get(*pos + 3) != Some(&'.') =>
            {
                flush(&mut lit, &mut tokens);
                tokens.push(Token::DotAny);
                *pos += 3;
            }
            '{' => {
                flush(&mut lit, &mut tokens);
                *pos += 1;
                let mut alts = vec![parse_seq(chars, pos, true)?];
                loop {
                    match chars.get(*pos) {
                        Some(',') => {
                            *pos += 1;
                            alts.push(parse_seq(chars, pos, true)?);
                        }
                        Some('}') => {
                            *pos += 1;
                            break;
                        }
                        _ => return Err("unterminated '{'"),
                    }
                }
                tokens.push(Token::Alt(alts));
            }
            ',' | '}' if in_alt => break,
            '}' => return Err("unbalanced '}'"),
            _ => {
                lit.push(c);
                *pos += 1;
            }
        }
    }
    flush(&mut lit, &mut tokens);
    Ok(tokens)
}

/// Matches `tokens` against `tag[at..]`, calling `rest` with each end position reached; true
/// as soon as `rest` accepts one.
fn match_seq(tokens: &[Token], tag: &[u8], at: usize, rest: &mut dyn FnMut(usize) -> bool) -> bool {
    let Some((first, tail)) = tokens.split_first() else {
        return rest(at);
    };
    let mut next = |end: usize| match_seq(tail, tag, end, rest);
    match first {
        Token::Lit(s) => {
            let s = s.as_bytes();
            tag.get(at..at + s.len()) == Some(s) && next(at + s.len())
        }
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
        Token::Any => (at..=tag.len()).any(&mut next),
        Token::DotAny => {
            next(at) || (tag.get(at) == Some(&b'.') && (at + 1..=tag.len()).any(&mut next))
        }
        Token::AnyDot => {
            next(at) || (at..tag.len()).any(|dot| tag.get(dot) == Some(&b'.') && next(dot + 1))
        }
        Token::Alt(alts) => alts.iter().any(|alt| match_seq(alt, tag, at, &mut next)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, tag: &str) -> bool {
        MatchPattern::parse(pattern).unwrap().matches(tag)
    }

    #[test]
    fn literal_patterns_match_only_the_same_tag() {
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "a.bc"));
        assert!(!m("a.b", "a"));
    }

    #[test]
    fn single_star_matches_exactly_one_part() {
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a.b.c"));
        assert!(!m("a.*", "a"));
        assert!(m("*.b", "x.b"));
        assert!(!m("*.b", "x.y.b"));
    }

    #[test]
    fn double_star_matches_zero_or_more_parts() {
        assert!(m("a.**", "a"));
        assert!(m("a.**", "a.b"));
        assert!(m("a.**", "a.b.c"));
        assert!(!m("a.**", "ab"));
        assert!(m("**", "anything.at.all"));
        assert!(m("**.b", "b"));
        assert!(m("**.b", "x.y.b"));
        assert!(!m("**.b", "xb"));
        assert!(m("a.**.c", "a.c"));
        assert!(m("a.**.c", "a.x.y.c"));
    }

    #[test]
    fn braces_and_several_patterns_are_alternatives() {
        assert!(m("{a,b}.c", "a.c"));
        assert!(m("{a,b}.c", "b.c"));
        assert!(!m("{a,b}.c", "c.c"));
        assert!(m("{a.*,b}.c", "a.x.c"));
        assert!(m("x.y app.**", "app.web"));
        assert!(m("x.y app.**", "x.y"));
        assert!(!m("x.y app.**", "x.z"));
    }

    #[test]
    fn empty_argument_matches_everything() {
        assert!(m("", "a.b"));
    }

    #[test]
    fn malformed_braces_are_errors() {
        assert!(MatchPattern::parse("{a,b.c").is_err());
        assert!(MatchPattern::parse("a}").is_err());
    }
}
