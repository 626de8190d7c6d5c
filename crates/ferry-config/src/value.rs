//! Scanners for keys, section arguments and parameter values: unquoted, `"double-quoted"`
//! (escapes, line continuation, `#{...}`) and `'single-quoted'` text.
//!
//! Rules, as in Fluentd v1:
//! - An unquoted value runs to the end of the line; a `#` preceded by a blank starts a comment,
//!   a `#` inside a word (or as the first character of the value) is literal; trailing blanks
//!   are dropped.
//! - In double quotes, `\"` `\'` `\\` `\n` `\t` `\r` `\f` `\b` are escapes, a backslash before
//!   any other symbol yields the symbol (`\#` is how to write a literal `#{`), a backslash before
//!   a letter or digit is an error, a backslash at the end of a line joins the next line, and a
//!   newline inside the quotes is kept.
//! - `#{...}` inside double quotes is Ruby code in Fluentd. ferry evaluates the small grammar of
//!   `crate::ruby` (`ENV['NAME']`, `ENV.fetch`, `||`, literals, `File.join`,
//!   `Socket.gethostname`, `use_default`, ...) and refuses any other code. When a `#{...}` gives
//!   `use_nil` or `use_default`, the whole string is [`Unset`] (`use_nil` first), as in Fluentd.
//! - Single quotes end on their line; only `\'` and `\\` are escapes.

use crate::cursor::Cursor;
use crate::ruby::{self, Inputs, Interpolated, RubyError};
use crate::tree::Unset;

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
    #[error(transparent)]
    Ruby(#[from] RubyError),
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

/// A quoted string as scanned: its text, or [`Unset`] when embedded code gave `use_default` or
/// `use_nil` (the text is then empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scanned {
    pub(crate) text: String,
    pub(crate) unset: Option<Unset>,
}

impl Scanned {
    fn text(text: String) -> Self {
        Scanned { text, unset: None }
    }
}

/// Scans a double-quoted string at the cursor (which is at `"`), evaluating each `#{...}`
/// with `inputs`. After any error other than an unterminated string, the cursor is past the
/// closing quote.
pub(crate) fn double_quoted(cur: &mut Cursor<'_>, inputs: &Inputs<'_>) -> Result<Scanned, Failure> {
    let start_line = cur.line();
    cur.bump();
    let mut out = Vec::new();
    let mut unset = None;
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
                let (used, result) = ruby::interpolate(cur.rest(), inputs);
                cur.advance(used);
                match result {
                    Ok(Interpolated::Text(v)) => out.extend_from_slice(v.as_bytes()),
                    Ok(Interpolated::Unset(u)) => {
                        unset = Some(if unset == Some(Unset::Nil) {
                            Unset::Nil
                        } else {
                            u
                        });
                    }
                    Err(e) => {
                        first_error.get_or_insert((line, e.into()));
                    }
                }
            }
            Some(b) => {
                cur.bump();
                out.push(b);
            }
        }
    }
    match (first_error, unset) {
        (Some(e), _) => Err(e),
        (None, Some(unset)) => Ok(Scanned {
            text: String::new(),
            unset: Some(unset),
        }),
        (None, None) => Ok(Scanned::text(bytes_to_string(out))),
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
pub(crate) fn quoted(
    cur: &mut Cursor<'_>,
    inputs: &Inputs<'_>,
) -> Option<Result<Scanned, Failure>> {
    match cur.peek() {
        Some(b'"') => Some(double_quoted(cur, inputs)),
        Some(b'\'') => Some(single_quoted(cur).map(Scanned::text)),
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::options::Lookup;

    fn lookup(q: Lookup<'_>) -> Option<String> {
        match q {
            Lookup::Env("HOME_DIR") => Some("/home/ferry".to_string()),
            Lookup::Hostname => Some("node-1".to_string()),
            _ => None,
        }
    }

    fn scan(text: &str) -> (Result<Scanned, Failure>, String) {
        let mut c = Cursor::new(text);
        let result = double_quoted(&mut c, &Inputs::new(&lookup));
        (result, c.rest_of_line())
    }

    fn dq(text: &str) -> Result<String, Failure> {
        scan(text).0.map(|s| s.text)
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
        let (err, rest) = scan("\"a\\qb\" tail");
        assert_eq!(err.unwrap_err(), (1, ValueError::BadEscape('q')));
        assert_eq!(rest, "tail");
    }

    #[test]
    fn double_quotes_span_lines_and_backslash_newline_joins() {
        assert_eq!(dq("\"foo\nbar\"").unwrap(), "foo\nbar");
        assert_eq!(dq("\"foo \\\n bar\"").unwrap(), "foo  bar");
    }

    #[test]
    fn embedded_code_is_evaluated_in_place() {
        assert_eq!(dq(r##""#{ENV['HOME_DIR']}/x""##).unwrap(), "/home/ferry/x");
        assert_eq!(dq(r##""#{ENV["HOME_DIR"]}""##).unwrap(), "/home/ferry");
        assert_eq!(dq(r##""#{ ENV[ 'UNSET_VAR' ] }""##).unwrap(), "");
        assert_eq!(dq(r##""#{ENV['UNSET_VAR'] || 'dflt'}""##).unwrap(), "dflt");
        assert_eq!(
            dq(r##""a-#{Socket.gethostname}-#{ENV['HOME_DIR'] || "dflt"}""##).unwrap(),
            "a-node-1-/home/ferry"
        );
    }

    #[test]
    fn use_nil_anywhere_in_the_string_wins_over_use_default() {
        let unset = |text: &str| scan(text).0.unwrap().unset;
        assert_eq!(unset(r##""#{ENV['HOME_DIR'] || use_nil}""##), None);
        assert_eq!(unset(r##""x#{use_default}y""##), Some(Unset::Default));
        assert_eq!(unset(r##""#{use_nil}#{use_default}""##), Some(Unset::Nil));
        assert_eq!(unset(r##""#{use_default}#{use_nil}""##), Some(Unset::Nil));
    }

    #[test]
    fn refused_code_is_skipped_to_its_closing_brace() {
        let (err, rest) = scan(r##""host-#{Socket.gethostname.upcase}" x"##);
        let (line, err) = err.unwrap_err();
        assert_eq!(line, 1);
        assert!(
            err.to_string()
                .starts_with("embedded code \"#{Socket.gethostname.upcase}\" is not evaluated"),
            "{err}"
        );
        assert_eq!(rest, "x");
        let (err, rest) = scan(r##""#{`rm -rf /`} y" z"##);
        assert!(err.is_err());
        assert_eq!(rest, "z");
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
