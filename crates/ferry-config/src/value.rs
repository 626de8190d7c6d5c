//! Scanners for keys, section arguments and parameter values: unquoted, `"double-quoted"`
//! (escapes, line continuation, `#{ENV['NAME']}`) and `'single-quoted'` text.
//!
//! Rules, as in Fluentd v1:
//! - An unquoted value runs to the end of the line; a `#` preceded by a blank starts a comment,
//!   a `#` inside a word (or as the first character of the value) is literal; trailing blanks
//!   are dropped.
//! - In double quotes, `\"` `\'` `\\` `\n` `\t` `\r` `\f` `\b` are escapes, a backslash before
//!   any other symbol yields the symbol (`\#` is how to write a literal `#{`), a backslash before
//!   a letter or digit is an error, a backslash at the end of a line joins the next line, and a
//!   newline inside the quotes is kept.
//! - `#{...}` inside double quotes is Ruby code in Fluentd. ferry evaluates no code: only
//!   `#{ENV['NAME']}`, `#{ENV["NAME"]}` and `#{ENV['NAME'] || 'default'}` are accepted (an unset
//!   variable without a default is the empty string, as Ruby's `nil` interpolates); anything
//!   else is an error.
//! - Single quotes end on their line; only `\'` and `\\` are escapes.

use crate::cursor::Cursor;

/// Looks up an environment variable for `#{ENV['NAME']}`.
pub(crate) type EnvLookup = dyn Fn(&str) -> Option<String>;

/// Why a quoted string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ValueError {
    #[error("unterminated double-quoted string")]
    UnterminatedDouble,
    #[error("unterminated single-quoted string (single quotes must close on the same line)")]
    UnterminatedSingle,
    #[error(
        "bad escape '\\{0}' in a double-quoted string (valid escapes: \\\" \\' \\\\ \\n \\t \\r \\f \\b, or a backslash before a symbol)"
    )]
    BadEscape(char),
    #[error(
        "embedded code \"#{{{0}}}\" is not evaluated: ferry accepts only \"#{{ENV['NAME']}}\" (optionally with || 'default')"
    )]
    EmbeddedCode(String),
    #[error("'{0}' is not a valid environment variable name")]
    BadEnvName(String),
}

impl ValueError {
    /// True when the string never closed, so the cursor is at the end of the text and the
    /// caller must resume after the line where the string started.
    pub(crate) fn is_unterminated(&self) -> bool {
        matches!(
            self,
            ValueError::UnterminatedDouble | ValueError::UnterminatedSingle
        )
    }
}

/// A scanner failure and the line it concerns.
pub(crate) type Failure = (u32, ValueError);

fn bytes_to_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Scans a double-quoted string at the cursor (which is at `"`). After any error other than
/// an unterminated string, the cursor is past the closing quote.
pub(crate) fn double_quoted(cur: &mut Cursor<'_>, env: &EnvLookup) -> Result<String, Failure> {
    let start_line = cur.line();
    cur.bump();
    let mut out = Vec::new();
    let mut first_error: Option<Failure> = None;
    loop {
        match cur.peek() {
            None => return Err((start_line, ValueError::UnterminatedDouble)),
            Some(b'"') => {
                cur.bump();
                break;
            }
            Some(b'\\') => {
                let line = cur.line();
                cur.bump();
                if cur.eat(b"\n") || cur.eat(b"\r\n") {
                    continue;
                }
                let Some(b) = cur.bump() else {
                    return Err((start_line, ValueError::UnterminatedDouble));
                };
                match b {
                    b'r' => out.push(b'\r'),
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'f' => out.push(0x0c),
                    b'b' => out.push(0x08),
                    b if b.is_ascii_alphanumeric() => {
                        first_error.get_or_insert((line, ValueError::BadEscape(b as char)));
                    }
                    other => out.push(other),
                }
            }
            Some(b'#') if cur.peek_at(1) == Some(b'{') => {
                let line = cur.line();
                cur.bump();
                cur.bump();
                match embedded(cur, env) {
                    Ok(v) => out.extend_from_slice(v.as_bytes()),
                    Err(e) => {
                        first_error.get_or_insert((line, e));
                    }
                }
            }
            Some(b) => {
                cur.bump();
                out.push(b);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(bytes_to_string(out)),
    }
}

/// Scans a single-quoted string at the cursor (which is at `'`).
pub(crate) fn single_quoted(cur: &mut Cursor<'_>) -> Result<String, Failure> {
    let start_line = cur.line();
    cur.bump();
    let mut out = Vec::new();
    loop {
        match cur.peek() {
            None | Some(b'\n') => return Err((start_line, ValueError::UnterminatedSingle)),
            Some(b'\'') => {
                cur.bump();
                return Ok(bytes_to_string(out));
            }
            Some(b'\\') if matches!(cur.peek_at(1), Some(b'\'' | b'\\')) => {
                cur.bump();
                out.extend(cur.bump());
            }
            Some(b) => {
                cur.bump();
                out.push(b);
            }
        }
    }
}

/// A double- or single-quoted string when the cursor is at a quote, else `None`.
pub(crate) fn quoted(cur: &mut Cursor<'_>, env: &EnvLookup) -> Option<Result<String, Failure>> {
    match cur.peek() {
        Some(b'"') => Some(double_quoted(cur, env)),
        Some(b'\'') => Some(single_quoted(cur)),
        _ => None,
    }
}

/// An unquoted value: to the end of the line or to a comment (`#` after a blank), trailing
/// blanks dropped. The cursor stops before the comment or line end.
pub(crate) fn unquoted_value(cur: &mut Cursor<'_>) -> String {
    let start = cur.mark();
    let mut end = start;
    loop {
        match cur.peek() {
            None | Some(b'\n' | b'\r') => break,
            Some(b' ' | b'\t') => {
                let blanks = cur.mark();
                cur.skip_blanks();
                if cur.peek() == Some(b'#') {
                    cur.reset(blanks);
                    break;
                }
            }
            Some(_) => {
                cur.bump();
                end = cur.mark();
            }
        }
    }
    let here = cur.mark();
    cur.reset(end);
    let text = cur.since(start);
    cur.reset(here);
    text
}

/// An unquoted key: up to the first blank or line end.
pub(crate) fn unquoted_key(cur: &mut Cursor<'_>) -> String {
    let start = cur.mark();
    while !matches!(cur.peek(), None | Some(b' ' | b'\t' | b'\r' | b'\n')) {
        cur.bump();
    }
    cur.since(start)
}

/// An unquoted section argument: up to `>` or the line end, trailing blanks dropped.
pub(crate) fn unquoted_arg(cur: &mut Cursor<'_>) -> String {
    let start = cur.mark();
    let mut end = start;
    loop {
        match cur.peek() {
            None | Some(b'>' | b'\n' | b'\r') => break,
            Some(b' ' | b'\t') => {
                cur.bump();
            }
            Some(_) => {
                cur.bump();
                end = cur.mark();
            }
        }
    }
    let here = cur.mark();
    cur.reset(end);
    let text = cur.since(start);
    cur.reset(here);
    text
}

/// After `#{`: an ENV lookup, or an error naming the code (the cursor then skips past the
/// code's closing brace, or to the end of the line when there is none).
fn embedded(cur: &mut Cursor<'_>, env: &EnvLookup) -> Result<String, ValueError> {
    let start = cur.mark();
    match env_expr(cur, env) {
        Ok(v) => Ok(v),
        Err(Some(e)) => Err(e),
        Err(None) => {
            cur.reset(start);
            Err(ValueError::EmbeddedCode(skip_code(cur)))
        }
    }
}

fn quoted_literal(cur: &mut Cursor<'_>) -> Option<String> {
    let q = cur.peek().filter(|b| matches!(b, b'\'' | b'"'))?;
    cur.bump();
    let start = cur.mark();
    loop {
        match cur.peek() {
            None | Some(b'\n' | b'\\') => return None,
            Some(b) if b == q => break,
            Some(_) => {
                cur.bump();
            }
        }
    }
    let text = cur.since(start);
    cur.bump();
    Some(text)
}

/// `ENV['NAME']`, optionally `|| 'default'`, then `}`. `Err(None)` means "not this form".
fn env_expr(cur: &mut Cursor<'_>, env: &EnvLookup) -> Result<String, Option<ValueError>> {
    cur.skip_blanks();
    if !cur.eat(b"ENV") {
        return Err(None);
    }
    cur.skip_blanks();
    if !cur.eat(b"[") {
        return Err(None);
    }
    cur.skip_blanks();
    let name = quoted_literal(cur).ok_or(None)?;
    cur.skip_blanks();
    if !cur.eat(b"]") {
        return Err(None);
    }
    cur.skip_blanks();
    let mut default = None;
    if cur.eat(b"||") {
        cur.skip_blanks();
        default = Some(quoted_literal(cur).ok_or(None)?);
        cur.skip_blanks();
    }
    if !cur.eat(b"}") {
        return Err(None);
    }
    let valid = name
        .bytes()
        .enumerate()
        .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
    if name.is_empty() || !valid {
        return Err(Some(ValueError::BadEnvName(name)));
    }
    Ok(env(&name).or(default).unwrap_or_default())
}

/// Skips embedded code up to its matching `}` (quotes respected), returning the code (at most
/// 60 characters of it). Stops at the end of the line when the code never closes.
fn skip_code(cur: &mut Cursor<'_>) -> String {
    let start = cur.mark();
    let mut end = start;
    let mut depth = 1usize;
    while let Some(b) = cur.peek() {
        match b {
            b'\n' => break,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    cur.bump();
                    break;
                }
            }
            b'\'' | b'"' => {
                cur.bump();
                while let Some(c) = cur.peek() {
                    if c == b'\n' {
                        break;
                    }
                    cur.bump();
                    if c == b'\\' {
                        cur.bump();
                    } else if c == b {
                        break;
                    }
                }
                end = cur.mark();
                continue;
            }
            _ => {}
        }
        cur.bump();
        end = cur.mark();
    }
    let here = cur.mark();
    cur.reset(end);
    let code = cur.since(start);
    cur.reset(here);
    if code.chars().count() > 60 {
        format!("{}...", code.chars().take(60).collect::<String>())
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOME_DIR").then(|| "/home/ferry".to_string())
    }

    fn dq(text: &str) -> Result<String, Failure> {
        let mut c = Cursor::new(text);
        double_quoted(&mut c, &env)
    }

    #[test]
    fn double_quoted_escapes_follow_fluentd() {
        assert_eq!(
            dq(r##""a\"b\\c\nd\te\rf\#{x}\$""##).unwrap(),
            "a\"b\\c\nd\te\rf#{x}$"
        );
        assert_eq!(dq(r##""\f\b\'""##).unwrap(), "\u{c}\u{8}'");
    }

    #[test]
    fn letter_escapes_are_errors_and_the_string_is_still_consumed() {
        let mut c = Cursor::new("\"a\\qb\" tail");
        let err = double_quoted(&mut c, &env).unwrap_err();
        assert_eq!(err, (1, ValueError::BadEscape('q')));
        assert_eq!(c.rest_of_line(), "tail");
    }

    #[test]
    fn double_quotes_span_lines_and_backslash_newline_joins() {
        assert_eq!(dq("\"foo\nbar\"").unwrap(), "foo\nbar");
        assert_eq!(dq("\"foo \\\n bar\"").unwrap(), "foo  bar");
    }

    #[test]
    fn env_interpolation_accepts_both_quote_styles_and_defaults() {
        assert_eq!(dq(r##""#{ENV['HOME_DIR']}/x""##).unwrap(), "/home/ferry/x");
        assert_eq!(dq(r##""#{ENV["HOME_DIR"]}""##).unwrap(), "/home/ferry");
        assert_eq!(dq(r##""#{ ENV[ 'UNSET_VAR' ] }""##).unwrap(), "");
        assert_eq!(dq(r##""#{ENV['UNSET_VAR'] || 'dflt'}""##).unwrap(), "dflt");
        assert_eq!(
            dq(r##""#{ENV['HOME_DIR'] || "dflt"}""##).unwrap(),
            "/home/ferry"
        );
    }

    #[test]
    fn other_embedded_code_is_rejected_without_evaluation() {
        let mut c = Cursor::new(r##""host-#{Socket.gethostname}" x"##);
        let err = double_quoted(&mut c, &env).unwrap_err();
        assert_eq!(
            err,
            (1, ValueError::EmbeddedCode("Socket.gethostname".into()))
        );
        assert_eq!(c.rest_of_line(), "x");
        let err = dq(r##""#{`rm -rf /`}""##).unwrap_err();
        assert!(matches!(err.1, ValueError::EmbeddedCode(_)));
        let err = dq(r##""#{ENV['A-B']}""##).unwrap_err();
        assert_eq!(err.1, ValueError::BadEnvName("A-B".into()));
        let err = dq(r##""#{ENV['X'].upcase}""##).unwrap_err();
        assert!(matches!(err.1, ValueError::EmbeddedCode(ref c) if c == "ENV['X'].upcase"));
    }

    #[test]
    fn unterminated_strings_report_their_opening_line() {
        assert_eq!(
            dq("\"abc\n\ndef").unwrap_err(),
            (1, ValueError::UnterminatedDouble)
        );
        let mut c = Cursor::new("'abc\n'");
        assert_eq!(
            single_quoted(&mut c).unwrap_err(),
            (1, ValueError::UnterminatedSingle)
        );
    }

    #[test]
    fn single_quotes_only_unescape_quote_and_backslash() {
        let mut c = Cursor::new(r##"'a\'b\\c\nd#{ENV['X']}'"##);
        assert_eq!(single_quoted(&mut c).unwrap(), r##"a'b\c\nd#{ENV["##);
    }

    #[test]
    fn unquoted_value_stops_at_comments_after_blanks_only() {
        let mut c = Cursor::new("a#b c  # note\nnext");
        assert_eq!(unquoted_value(&mut c), "a#b c");
        assert!(c.eat_line_end());
        assert_eq!(c.rest_of_line(), "next");
        let mut c = Cursor::new("#literal   \n");
        assert_eq!(unquoted_value(&mut c), "#literal");
    }

    #[test]
    fn unquoted_arg_keeps_inner_spaces() {
        let mut c = Cursor::new("a.** b.{x,y}  >");
        assert_eq!(unquoted_arg(&mut c), "a.** b.{x,y}");
        assert_eq!(c.peek(), Some(b'>'));
    }
}
