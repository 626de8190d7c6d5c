//! JSON array and hash values (`users ["a", "b"]`, `headers {"k": "v"}`).
//!
//! As in Fluentd, a value that starts with `[` or `{` is JSON and may span lines; a `#` outside
//! a JSON string starts a comment that runs to the end of the line. The parsed value is stored
//! in [`Param::value`](crate::Param::value) as compact JSON (Fluentd stores `JSON.dump` of it),
//! with object keys in the order written. Nesting is limited to [`MAX_JSON_DEPTH`] levels so
//! no input can exhaust the stack.

use crate::cursor::Cursor;

/// Deepest nesting of arrays and objects accepted in one value.
pub(crate) const MAX_JSON_DEPTH: usize = 32;

/// A JSON value; numbers keep the text they were written with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Why a JSON value was rejected, and on which line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub(crate) struct JsonError {
    pub(crate) line: u32,
    pub(crate) reason: String,
}

fn fail<T>(cur: &Cursor<'_>, reason: impl Into<String>) -> Result<T, JsonError> {
    Err(JsonError {
        line: cur.line(),
        reason: reason.into(),
    })
}

/// Parses one JSON value at the cursor (which is at `[` or `{` for configuration values).
pub(crate) fn parse_value(cur: &mut Cursor<'_>) -> Result<Json, JsonError> {
    value(cur, 0)
}

/// Parses a whole string as one JSON value.
pub(crate) fn parse_str(text: &str) -> Result<Json, String> {
    let mut cur = Cursor::new(text);
    let v = value(&mut cur, 0).map_err(|e| e.reason)?;
    skip_ws(&mut cur);
    if cur.eof() {
        Ok(v)
    } else {
        Err(format!(
            "unexpected '{}' after the JSON value",
            cur.rest_of_line()
        ))
    }
}

fn skip_ws(cur: &mut Cursor<'_>) {
    loop {
        match cur.peek() {
            Some(b' ' | b'\t' | b'\r' | b'\n') => {
                cur.bump();
            }
            Some(b'#') => cur.skip_to_eol(),
            _ => return,
        }
    }
}

fn value(cur: &mut Cursor<'_>, depth: usize) -> Result<Json, JsonError> {
    skip_ws(cur);
    match cur.peek() {
        Some(b'[' | b'{') if depth >= MAX_JSON_DEPTH => {
            fail(cur, format!("nested deeper than {MAX_JSON_DEPTH} levels"))
        }
        Some(b'[') => array(cur, depth + 1),
        Some(b'{') => object(cur, depth + 1),
        Some(b'"') => string(cur).map(Json::String),
        Some(b't') => literal(cur, "true", Json::Bool(true)),
        Some(b'f') => literal(cur, "false", Json::Bool(false)),
        Some(b'n') => literal(cur, "null", Json::Null),
        Some(b'-' | b'0'..=b'9') => number(cur),
        Some(_) => fail(cur, format!("unexpected '{}'", cur.rest_of_line())),
        None => fail(cur, "unexpected end of file"),
    }
}

fn literal(cur: &mut Cursor<'_>, word: &str, v: Json) -> Result<Json, JsonError> {
    if cur.eat(word.as_bytes()) {
        Ok(v)
    } else {
        fail(cur, format!("unexpected '{}'", cur.rest_of_line()))
    }
}

fn array(cur: &mut Cursor<'_>, depth: usize) -> Result<Json, JsonError> {
    cur.bump();
    let mut items = Vec::new();
    skip_ws(cur);
    if cur.eat(b"]") {
        return Ok(Json::Array(items));
    }
    loop {
        items.push(value(cur, depth)?);
        skip_ws(cur);
        match cur.bump() {
            Some(b',') => {}
            Some(b']') => return Ok(Json::Array(items)),
            Some(_) => return fail(cur, "expected ',' or ']' in the array"),
            None => return fail(cur, "unterminated array: expected ']'"),
        }
    }
}

fn object(cur: &mut Cursor<'_>, depth: usize) -> Result<Json, JsonError> {
    cur.bump();
    let mut entries = Vec::new();
    skip_ws(cur);
    if cur.eat(b"}") {
        return Ok(Json::Object(entries));
    }
    loop {
        skip_ws(cur);
        if cur.peek() != Some(b'"') {
            return match cur.peek() {
                None => fail(cur, "unterminated hash: expected '}'"),
                Some(_) => fail(cur, "expected a double-quoted key in the hash"),
            };
        }
        let key = string(cur)?;
        skip_ws(cur);
        if !cur.eat(b":") {
            return fail(cur, format!("expected ':' after the key \"{key}\""));
        }
        let v = value(cur, depth)?;
        entries.push((key, v));
        skip_ws(cur);
        match cur.bump() {
            Some(b',') => {}
            Some(b'}') => return Ok(Json::Object(entries)),
            Some(_) => return fail(cur, "expected ',' or '}' in the hash"),
            None => return fail(cur, "unterminated hash: expected '}'"),
        }
    }
}

fn string(cur: &mut Cursor<'_>) -> Result<String, JsonError> {
    cur.bump();
    let mut out = Vec::new();
    loop {
        match cur.peek() {
            None | Some(b'\n') => return fail(cur, "unterminated string in JSON"),
            Some(b'"') => {
                cur.bump();
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            Some(b'\\') => {
                cur.bump();
                let c = match cur.bump() {
                    Some(b'"') => '"',
                    Some(b'\\') => '\\',
                    Some(b'/') => '/',
                    Some(b'b') => '\u{8}',
                    Some(b'f') => '\u{c}',
                    Some(b'n') => '\n',
                    Some(b'r') => '\r',
                    Some(b't') => '\t',
                    Some(b'u') => unicode_escape(cur)?,
                    _ => return fail(cur, "bad escape in JSON string"),
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            Some(b) if b < 0x20 => return fail(cur, "control character in JSON string"),
            Some(b) => {
                cur.bump();
                out.push(b);
            }
        }
    }
}

fn hex4(cur: &mut Cursor<'_>) -> Result<u32, JsonError> {
    let mut v = 0u32;
    for _ in 0..4 {
        let d = match cur.bump() {
            Some(b) => (b as char).to_digit(16),
            None => None,
        };
        match d {
            Some(d) => v = v * 16 + d,
            None => return fail(cur, "bad \\u escape in JSON string"),
        }
    }
    Ok(v)
}

fn unicode_escape(cur: &mut Cursor<'_>) -> Result<char, JsonError> {
    let hi = hex4(cur)?;
    let code = if (0xD800..0xDC00).contains(&hi) {
        if !cur.eat(b"\\u") {
            return fail(cur, "unpaired surrogate in JSON string");
        }
        let lo = hex4(cur)?;
        if !(0xDC00..0xE000).contains(&lo) {
            return fail(cur, "unpaired surrogate in JSON string");
        }
        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
    } else {
        hi
    };
    match char::from_u32(code) {
        Some(c) => Ok(c),
        None => fail(cur, "unpaired surrogate in JSON string"),
    }
}

fn digits(cur: &mut Cursor<'_>) -> usize {
    let mut n = 0;
    while matches!(cur.peek(), Some(b'0'..=b'9')) {
        cur.bump();
        n += 1;
    }
    n
}

fn number(cur: &mut Cursor<'_>) -> Result<Json, JsonError> {
    let start = cur.mark();
    cur.eat(b"-");
    if cur.eat(b"0") {
        if matches!(cur.peek(), Some(b'0'..=b'9')) {
            return fail(cur, "leading zero in JSON number");
        }
    } else if digits(cur) == 0 {
        return fail(cur, "bad JSON number");
    }
    if cur.eat(b".") && digits(cur) == 0 {
        return fail(cur, "bad JSON number: digits expected after '.'");
    }
    if matches!(cur.peek(), Some(b'e' | b'E')) {
        cur.bump();
        if matches!(cur.peek(), Some(b'+' | b'-')) {
            cur.bump();
        }
        if digits(cur) == 0 {
            return fail(cur, "bad JSON number: digits expected in the exponent");
        }
    }
    Ok(Json::Number(cur.since(start)))
}

impl Json {
    /// Compact JSON text, keys in their original order.
    pub(crate) fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write_compact(&mut out);
        out
    }

    fn write_compact(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_compact(out);
                }
                out.push(']');
            }
            Json::Object(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    v.write_compact(out);
                }
                out.push('}');
            }
        }
    }

    /// A scalar as text (a string without its quotes); arrays and objects as compact JSON.
    pub(crate) fn to_text(&self) -> String {
        match self {
            Json::String(s) => s.clone(),
            other => other.to_compact(),
        }
    }
}

/// Writes `s` as a JSON string literal.
pub(crate) fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_array_with_comments_becomes_compact() {
        let mut c = Cursor::new("[\"a\", # first\n  \"b#c\",\n  1.5e3, true, null\n] rest");
        let v = parse_value(&mut c).unwrap();
        assert_eq!(v.to_compact(), r#"["a","b#c",1.5e3,true,null]"#);
        assert_eq!(c.line(), 4);
    }

    #[test]
    fn object_keeps_key_order_and_decodes_escapes() {
        let v = parse_str(r#"{"z": "\u00e9\n", "a": {"n": [1, -0.5]}}"#).unwrap();
        assert_eq!(v.to_compact(), r#"{"z":"é\n","a":{"n":[1,-0.5]}}"#);
    }

    #[test]
    fn surrogate_pairs_decode_and_lone_ones_fail() {
        assert_eq!(
            parse_str(r#"["\ud83d\ude00"]"#).unwrap(),
            Json::Array(vec![Json::String("😀".into())])
        );
        assert!(parse_str(r#"["\ud83d"]"#).is_err());
    }

    #[test]
    fn malformed_values_are_rejected_with_their_line() {
        for bad in [
            "[1,]",
            "[01]",
            "{a:1}",
            "[1 2]",
            "[\"x]",
            "{\"a\" 1}",
            "[tru]",
            "[-]",
        ] {
            assert!(parse_str(bad).is_err(), "{bad}");
        }
        let mut c = Cursor::new("[\n1,\n2\n");
        let e = parse_value(&mut c).unwrap_err();
        assert_eq!(e.line, 4);
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
        assert!(parse_str(&deep).unwrap_err().contains("nested deeper"));
        let ok = "[".repeat(MAX_JSON_DEPTH) + &"]".repeat(MAX_JSON_DEPTH);
        assert!(parse_str(&ok).is_ok());
    }
}
