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
//! pattern into a small automaton run over the tag with every state at once (Thompson's
//! construction), so matching time is linear in the tag's length whatever the pattern: a long
//! tag sent by a peer cannot make `a.**.b.**.c` backtrack. The router caches the route of each
//! tag, so a tag is matched once, not per event. A property test checks the matcher against a
//! regex built by Fluentd's rules.
//!
//! Stricter than Fluentd: an unterminated `{`, a `}` with no `{`, and a trailing `\` are
//! configuration errors (Fluentd builds a pattern that is rarely what was meant). Regular
//! expressions use Rust's `regex` syntax (no look-around or back-references).

use std::fmt;

/// The longest pattern accepted, in characters (the automaton grows with it).
const MAX_PATTERN_CHARS: usize = 1024;

/// One compiled `<match>` argument: any of its patterns may match.
#[derive(Debug, Clone)]
pub struct MatchPattern {
    source: String,
    alternatives: Vec<Alternative>,
}

#[derive(Debug, Clone)]
enum Alternative {
    Glob(Vec<Inst>),
    Regex(regex::Regex),
}

/// One instruction of a compiled glob: a small automaton run over the tag's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inst {
    Byte(u8),
    /// Any byte but `.`.
    NotDot,
    AnyByte,
    Split(usize, usize),
    Jmp(usize),
    /// Matches nothing, where the next byte is `.` or the tag ends.
    DotAhead,
    /// Matches nothing, at the start of the tag.
    Start,
    Match,
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
            let tokens = compile(&chars).map_err(|r| err(r.into()))?;
            alternatives.push(Alternative::Glob(program(&tokens)));
        }
        if alternatives.is_empty() {
            alternatives.push(Alternative::Glob(program(&[Token::Any])));
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
            Alternative::Glob(prog) => run(prog, bytes),
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

/// Compiles tokens into instructions (Thompson's construction).
fn program(tokens: &[Token]) -> Vec<Inst> {
    let mut prog = Vec::new();
    emit(tokens, &mut prog);
    prog.push(Inst::Match);
    prog
}

fn emit(tokens: &[Token], prog: &mut Vec<Inst>) {
    for token in tokens {
        match token {
            Token::Lit(bytes) => prog.extend(bytes.iter().map(|b| Inst::Byte(*b))),
            Token::Part => star(prog, Inst::NotDot),
            Token::Any => star(prog, Inst::AnyByte),
            Token::DotAhead => prog.push(Inst::DotAhead),
            Token::AnyDotOrStart => {
                // (?: \A | .* \. )
                let split = prog.len();
                prog.push(Inst::Split(split + 1, split + 3));
                prog.push(Inst::Start);
                let jump = prog.len();
                prog.push(Inst::Jmp(0));
                star(prog, Inst::AnyByte);
                prog.push(Inst::Byte(b'.'));
                let end = prog.len();
                prog[jump] = Inst::Jmp(end);
            }
            Token::Alt(alts) => {
                let mut jumps = Vec::new();
                for (i, alt) in alts.iter().enumerate() {
                    let last = i + 1 == alts.len();
                    let split = prog.len();
                    if !last {
                        prog.push(Inst::Split(split + 1, 0));
                    }
                    emit(alt, prog);
                    if !last {
                        jumps.push(prog.len());
                        prog.push(Inst::Jmp(0));
                        let next = prog.len();
                        prog[split] = Inst::Split(split + 1, next);
                    }
                }
                let end = prog.len();
                for j in jumps {
                    prog[j] = Inst::Jmp(end);
                }
            }
        }
    }
}

/// `x*`: try `x` then loop, or skip.
fn star(prog: &mut Vec<Inst>, x: Inst) {
    let split = prog.len();
    prog.push(Inst::Split(split + 1, split + 3));
    prog.push(x);
    prog.push(Inst::Jmp(split));
}

/// Runs the automaton over `tag`: every state at once, so the time is linear in the tag
/// length times the program length, whatever the pattern.
fn run(prog: &[Inst], tag: &[u8]) -> bool {
    let mut seen = vec![usize::MAX; prog.len()];
    let mut current = Vec::new();
    let mut next = Vec::new();
    let mut stack = Vec::new();
    follow(prog, tag, 0, 0, &mut seen, &mut current, &mut stack);
    for (at, &byte) in tag.iter().enumerate() {
        next.clear();
        for &pc in &current {
            let takes = match prog.get(pc) {
                Some(Inst::Byte(b)) => *b == byte,
                Some(Inst::NotDot) => byte != b'.',
                Some(Inst::AnyByte) => true,
                _ => false,
            };
            if takes {
                follow(prog, tag, pc + 1, at + 1, &mut seen, &mut next, &mut stack);
            }
        }
        std::mem::swap(&mut current, &mut next);
        if current.is_empty() {
            return false;
        }
    }
    current.iter().any(|pc| prog.get(*pc) == Some(&Inst::Match))
}

/// Adds the states reachable from `pc` at `at` without consuming a byte.
fn follow(
    prog: &[Inst],
    tag: &[u8],
    pc: usize,
    at: usize,
    seen: &mut [usize],
    list: &mut Vec<usize>,
    stack: &mut Vec<usize>,
) {
    stack.push(pc);
    while let Some(pc) = stack.pop() {
        match seen.get_mut(pc) {
            Some(s) if *s != at => *s = at,
            _ => continue,
        }
        match prog.get(pc) {
            Some(Inst::Jmp(t)) => stack.push(*t),
            Some(Inst::Split(a, b)) => {
                stack.push(*b);
                stack.push(*a);
            }
            Some(Inst::DotAhead) if matches!(tag.get(at), None | Some(b'.')) => {
                stack.push(pc + 1);
            }
            Some(Inst::Start) if at == 0 => stack.push(pc + 1),
            Some(Inst::DotAhead | Inst::Start) => {}
            Some(_) => list.push(pc),
            None => {}
        }
    }
}

#[cfg(test)]
#[path = "pattern_tests.rs"]
mod tests;
