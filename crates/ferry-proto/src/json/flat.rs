//! The common shape of a JSON log line read in one pass: one object whose values are all
//! written plainly (strings without escapes, numbers, `true`, `false`, `null`). Anything else
//! (an escape, a nested value, a syntax error) is left to the full parser: [`flat_object`]
//! then gives `None`, and what it gives is exactly what the full parser would have read.

use crate::msgpack::{write_bool, write_f64, write_int, write_nil, write_str, write_uint};
use bytes::BytesMut;

/// A value of a flat object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// A string's bytes: valid UTF-8, no escapes.
    Str(&'a [u8]),
    /// A non-negative integer (the full parser's `u64`).
    UInt(u64),
    /// A negative integer (the full parser's `i64`).
    Int(i64),
    /// A number with a fraction or an exponent, read as the full parser reads it.
    Float(f64),
    Bool(bool),
    Null,
}

impl Scalar<'_> {
    /// The value as msgpack, as the full parser's transcoder writes it.
    pub fn write(self, out: &mut BytesMut) {
        match self {
            Scalar::Str(s) => write_str(out, s),
            Scalar::UInt(n) => write_uint(out, n),
            Scalar::Int(n) => write_int(out, n),
            Scalar::Float(f) => write_f64(out, f),
            Scalar::Bool(b) => write_bool(out, b),
            Scalar::Null => write_nil(out),
        }
    }
}

/// The string whose first byte (after the opening quote) is at `pos`, and the position after
/// its closing quote; `None` for an escape, a control character, invalid UTF-8 or no end.
#[inline]
fn plain_str(b: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = b.get(pos..)?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    let s = &rest[..end];
    // Both folds run over whole vectors (no early exit).
    let (low, high) = s
        .iter()
        .fold((u8::MAX, 0u8), |(lo, hi), &c| (lo.min(c), hi.max(c)));
    if low < 0x20 || (high >= 0x80 && std::str::from_utf8(s).is_err()) {
        return None;
    }
    Some((s, pos + end + 1))
}

/// A number as the full parser reads it, and the position after it; `None` for an integer it
/// reads as a float (`-0`, out of range) or a malformed number.
#[inline]
fn plain_int(b: &[u8], pos: usize) -> Option<(Scalar<'static>, usize)> {
    let neg = b.get(pos) == Some(&b'-');
    let start = pos + usize::from(neg);
    let mut i = start;
    let mut n: u64 = 0;
    while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    let digits = i - start;
    // No digits, a leading zero (not JSON), or a float.
    if digits == 0 || (digits > 1 && b[start] == b'0') {
        return None;
    }
    if matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
        // The token is read by serde_json itself, so the float is the same to the bit.
        let end = i + b
            .get(i..)?
            .iter()
            .take_while(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
            .count();
        let f = serde_json::from_slice::<f64>(b.get(pos..end)?).ok()?;
        return Some((Scalar::Float(f), end));
    }
    let value = if neg {
        // `-0` and the magnitudes past i64 are floats to the full parser.
        Scalar::Int(-i64::try_from(n).ok().filter(|n| *n > 0)?)
    } else {
        Scalar::UInt(n)
    };
    Some((value, i))
}

#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Reads `line` as a flat object, calling `field` with each key and value in order; `None`
/// when the line is not one (see the module docs) or when `field` returns `false`. `field` may
/// have been called for the first pairs before `None`: the caller undoes what it did.
pub fn flat_object<'a>(
    line: &'a [u8],
    mut field: impl FnMut(&'a [u8], Scalar<'a>) -> bool,
) -> Option<()> {
    let b = line;
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let (key, after) = plain_str(b, i + 1)?;
            i = skip_ws(b, after);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let (value, after) = match *b.get(i)? {
                b'"' => {
                    let (s, after) = plain_str(b, i + 1)?;
                    (Scalar::Str(s), after)
                }
                b'-' | b'0'..=b'9' => plain_int(b, i)?,
                b't' if b.get(i..i + 4) == Some(b"true") => (Scalar::Bool(true), i + 4),
                b'f' if b.get(i..i + 5) == Some(b"false") => (Scalar::Bool(false), i + 5),
                b'n' if b.get(i..i + 4) == Some(b"null") => (Scalar::Null, i + 4),
                _ => return None,
            };
            if !field(key, value) {
                return None;
            }
            i = skip_ws(b, after);
            match *b.get(i)? {
                b',' => i = skip_ws(b, i + 1),
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, i) == b.len()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(line: &str) -> Option<Vec<(String, Scalar<'static>)>> {
        let leaked: &'static [u8] = Box::leak(line.as_bytes().to_vec().into_boxed_slice());
        let mut out = Vec::new();
        flat_object(leaked, |k, v| {
            out.push((String::from_utf8(k.to_vec()).unwrap(), v));
            true
        })
        .map(|()| out)
    }

    #[test]
    fn plain_objects_are_read_in_one_pass() {
        let got =
            pairs(r#" { "a" : "x y", "n":42,"m":-7 ,"t":true,"f":false,"z":null,"e":""}"#).unwrap();
        let want = vec![
            ("a".to_string(), Scalar::Str(b"x y")),
            ("n".to_string(), Scalar::UInt(42)),
            ("m".to_string(), Scalar::Int(-7)),
            ("t".to_string(), Scalar::Bool(true)),
            ("f".to_string(), Scalar::Bool(false)),
            ("z".to_string(), Scalar::Null),
            ("e".to_string(), Scalar::Str(b"")),
        ];
        assert_eq!(got, want);
        let got = pairs(r#"{"f":1.5,"g":-2e-3,"h":0.1E+2}"#).unwrap();
        let want = vec![
            ("f".to_string(), Scalar::Float(1.5)),
            ("g".to_string(), Scalar::Float(-2e-3)),
            ("h".to_string(), Scalar::Float(10.0)),
        ];
        assert_eq!(got, want);
        assert_eq!(pairs("{}\r").unwrap(), vec![]);
        assert_eq!(
            pairs(r#"{"k":"日本語のログ","u":18446744073709551615}"#).unwrap(),
            vec![
                ("k".to_string(), Scalar::Str("日本語のログ".as_bytes())),
                ("u".to_string(), Scalar::UInt(u64::MAX)),
            ]
        );
    }

    #[test]
    fn anything_else_is_left_to_the_full_parser() {
        for line in [
            r#"{"a":"x\"y"}"#,
            r#"{"a":-0}"#,
            r#"{"a":1.}"#,
            r#"{"a":1.5.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":01}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":-9223372036854775808}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":tru}"#,
            r#"{"a" 1}"#,
            r#"{"a":1"#,
            r#"["a"]"#,
            "",
            "{",
            r#"{"a":"unterminated"#,
        ] {
            assert_eq!(pairs(line), None, "{line}");
        }
        let invalid_utf8 = b"{\"a\":\"\xff\xfe\"}";
        assert_eq!(flat_object(invalid_utf8, |_, _| true), None);
    }

    #[test]
    fn a_field_that_asks_to_stop_ends_the_read() {
        let mut seen = 0;
        let read = flat_object(br#"{"a":1,"b":2,"c":3}"#, |k, _| {
            seen += 1;
            k != b"b"
        });
        assert_eq!(read, None);
        assert_eq!(seen, 2);
    }

    #[test]
    fn every_special_byte_is_found_wherever_it_falls_in_a_word() {
        for at in 0..17 {
            for special in [b'"', b'\\', 0x01, 0x1f, 0x80] {
                let mut s = vec![b'a'; 17];
                s[at] = special;
                let mut line = b"{\"k\":\"".to_vec();
                line.extend_from_slice(&s);
                line.extend_from_slice(b"\"}");
                let read = flat_object(&line, |_, v| {
                    assert_eq!(v, Scalar::Str(&s[..at]), "special {special:#x} at {at}");
                    true
                });
                // A quote ends the string early (then the object is malformed); anything else
                // is left to the full parser.
                assert_eq!(read, None, "special {special:#x} at {at}");
            }
        }
    }
}
