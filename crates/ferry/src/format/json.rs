//! msgpack → JSON straight from the bytes, without building a [`Value`] tree: the hot path of
//! the `json`, `out_file` and `stdout` formats.
//!
//! The text is exactly what [`Value::write_json`] writes (a property test holds the two
//! together): str and bin as strings with invalid UTF-8 replaced, non-str map keys as a string
//! holding the JSON text of the key (non-str keys nested inside it as bare text, so the text is
//! escaped once and stays linear in the input), NaN and infinities as `null`, an EventTime extension as `sec.nnnnnnnnn`,
//! any other extension as `{"ext":type,"hex":"..."}`.
//!
//! [`Value`]: ferry_proto::msgpack::Value
//! [`Value::write_json`]: ferry_proto::msgpack::Value::write_json

use ferry_proto::msgpack::{Head, MAX_DEPTH, MsgpackError, read_head};
use ferry_proto::time::EventTime;
use std::io::Write as _;

/// A value added to a record on its way out (`<inject>`).
#[derive(Debug, Clone, PartialEq)]
pub enum Extra {
    Str(String),
    UInt(u64),
    F64(f64),
}

/// Writes the record map at the start of `record` as a JSON object, with `extra` pairs added at
/// the end (a key already in the record is written again: the later one wins for JSON readers,
/// as Fluentd's inject overwrites). Returns the bytes the record took.
pub fn write_record(
    record: &[u8],
    extra: &[(&str, Extra)],
    out: &mut Vec<u8>,
) -> Result<usize, MsgpackError> {
    let (head, hlen) = read_head(record, 0)?;
    let Head::Map(n) = head else {
        let mut pos = 0;
        write_value(record, &mut pos, out, 0)?;
        return Ok(pos);
    };
    let mut pos = hlen;
    out.push(b'{');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        write_key(record, &mut pos, out, 1, false)?;
        out.push(b':');
        write_value(record, &mut pos, out, 1)?;
    }
    for (i, (k, v)) in extra.iter().enumerate() {
        if n > 0 || i > 0 {
            out.push(b',');
        }
        write_str(k.as_bytes(), out);
        out.push(b':');
        match v {
            Extra::Str(s) => write_str(s.as_bytes(), out),
            Extra::UInt(u) => write_int(*u, out),
            Extra::F64(f) => write_float(*f, out),
        }
    }
    out.push(b'}');
    Ok(pos)
}

fn bytes_at<'a>(buf: &'a [u8], pos: &mut usize, n: u32) -> Result<&'a [u8], MsgpackError> {
    let start = *pos;
    let s = buf
        .get(start..start + n as usize)
        .ok_or(MsgpackError::Truncated { offset: start })?;
    *pos += n as usize;
    Ok(s)
}

/// A map key: a str as a JSON string; any other value as a string holding its JSON text, or,
/// inside such a text (`key_text`), as bare text.
fn write_key(
    buf: &[u8],
    pos: &mut usize,
    out: &mut Vec<u8>,
    depth: usize,
    key_text: bool,
) -> Result<(), MsgpackError> {
    let (head, hlen) = read_head(buf, *pos)?;
    if let Head::Str(n) = head {
        *pos += hlen;
        write_str(bytes_at(buf, pos, n)?, out);
        return Ok(());
    }
    if key_text {
        return render(buf, pos, out, depth, true);
    }
    let mut key = Vec::new();
    render(buf, pos, &mut key, depth, true)?;
    write_str(&key, out);
    Ok(())
}

/// Writes the value at `buf[*pos..]` and advances `pos` past it.
pub fn write_value(
    buf: &[u8],
    pos: &mut usize,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), MsgpackError> {
    render(buf, pos, out, depth, false)
}

/// [`write_value`]; `key_text`: inside the text of a non-str key (see [`write_key`]).
fn render(
    buf: &[u8],
    pos: &mut usize,
    out: &mut Vec<u8>,
    depth: usize,
    key_text: bool,
) -> Result<(), MsgpackError> {
    let start = *pos;
    if depth > MAX_DEPTH {
        return Err(MsgpackError::TooDeep {
            offset: start,
            max: MAX_DEPTH,
        });
    }
    let (head, hlen) = read_head(buf, start)?;
    *pos = start + hlen;
    match head {
        Head::Nil => out.extend_from_slice(b"null"),
        Head::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Head::UInt(v) => write_int(v, out),
        Head::Int(v) => write_int(v, out),
        Head::F32(v) => write_float(f64::from(v), out),
        Head::F64(v) => write_float(v, out),
        Head::Str(n) | Head::Bin(n) => write_str(bytes_at(buf, pos, n)?, out),
        Head::Array(n) => {
            out.push(b'[');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                render(buf, pos, out, depth + 1, key_text)?;
            }
            out.push(b']');
        }
        Head::Map(n) => {
            out.push(b'{');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                write_key(buf, pos, out, depth + 1, key_text)?;
                out.push(b':');
                render(buf, pos, out, depth + 1, key_text)?;
            }
            out.push(b'}');
        }
        Head::Ext(ty, n) => {
            let data = bytes_at(buf, pos, n)?;
            match (ty, <[u8; 8]>::try_from(data)) {
                (0, Ok(d)) => write_event_time(EventTime::from_ext_payload(d), out),
                _ => {
                    let _ = write!(out, "{{\"ext\":{ty},\"hex\":\"");
                    for b in data {
                        let _ = write!(out, "{b:02x}");
                    }
                    out.extend_from_slice(b"\"}");
                }
            }
        }
    }
    Ok(())
}

/// An EventTime as a JSON number, `sec.nnnnnnnnn` (nine digits, so no precision is lost;
/// just `sec` when the nanoseconds are out of range).
pub fn write_event_time(t: EventTime, out: &mut Vec<u8>) {
    let _ = if t.nsec < 1_000_000_000 {
        write!(out, "{}.{:09}", t.sec, t.nsec)
    } else {
        write!(out, "{}", t.sec)
    };
}

fn write_float(v: f64, out: &mut Vec<u8>) {
    let _ = if !v.is_finite() {
        write!(out, "null")
    } else if v == v.trunc() && v.abs() < 1e16 {
        write!(out, "{v:.1}")
    } else {
        write!(out, "{v}")
    };
}

/// Writes an integer in decimal.
pub fn write_int(v: impl itoa::Integer, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Writes `bytes` as a JSON string literal (invalid UTF-8 replaced by U+FFFD).
pub fn write_str(bytes: &[u8], out: &mut Vec<u8>) {
    // Most log text is printable ASCII with no quote or backslash: one branch-free pass
    // checks both validity and escapes, and the bytes are copied whole.
    let plain = bytes.iter().fold(true, |ok, &b| {
        ok & (0x20..0x80).contains(&b) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => write_escaped(s.as_bytes(), out),
        Err(_) => write_escaped(String::from_utf8_lossy(bytes).as_bytes(), out),
    }
}

fn needs_escape(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Writes valid UTF-8 `bytes` as a JSON string literal.
fn write_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    const BLOCK: usize = 16;
    out.push(b'"');
    let mut plain = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Most text needs no escape: test a block at a time, branch-free, and skip it whole.
        if let Some(block) = bytes.get(i..i + BLOCK)
            && !block.iter().fold(false, |any, &b| any | needs_escape(b))
        {
            i += BLOCK;
            continue;
        }
        let b = bytes[i];
        if needs_escape(b) {
            out.extend_from_slice(&bytes[plain..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => {
                    let _ = write!(out, "\\u{b:04x}");
                }
            }
            plain = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ferry_proto::msgpack::Value;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|v| if v < 0 {
                Value::Int(v)
            } else {
                Value::UInt(v as u64)
            }),
            any::<u64>().prop_map(Value::UInt),
            any::<f32>().prop_map(Value::F32),
            any::<f64>().prop_map(Value::F64),
            prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| Value::Str(Bytes::from(b))),
            "[a-z\"\\\\\n\t\u{1}é]{0,8}".prop_map(|s| Value::Str(Bytes::from(s))),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(|b| Value::Bin(Bytes::from(b))),
            (any::<i8>(), prop::collection::vec(any::<u8>(), 0..10))
                .prop_map(|(t, d)| Value::Ext(t, Bytes::from(d))),
            (any::<u32>(), 0u32..1_200_000_000).prop_map(|(s, n)| {
                let mut d = s.to_be_bytes().to_vec();
                d.extend_from_slice(&n.to_be_bytes());
                Value::Ext(0, Bytes::from(d))
            }),
        ];
        leaf.prop_recursive(3, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((inner.clone(), inner), 0..5).prop_map(Value::Map),
            ]
        })
    }

    #[test]
    fn long_strings_are_escaped_wherever_the_special_bytes_are() {
        for at in 0..40 {
            for special in ["\"", "\\", "\n", "\u{1}", "é"] {
                let mut text = "x".repeat(40);
                text.insert_str(at, special);
                let mut out = Vec::new();
                write_str(text.as_bytes(), &mut out);
                let expected = Value::Str(Bytes::from(text.clone())).to_json_string();
                assert_eq!(String::from_utf8(out).unwrap(), expected);
            }
        }
    }

    proptest! {
        #[test]
        fn transcoding_writes_what_value_write_json_writes(v in arb_value()) {
            let bytes = v.to_bytes();
            let mut out = Vec::new();
            let mut pos = 0;
            write_value(&bytes, &mut pos, &mut out, 0).unwrap();
            prop_assert_eq!(pos, bytes.len());
            prop_assert_eq!(String::from_utf8(out).unwrap(), v.to_json_string());
        }
    }

    #[test]
    fn extra_pairs_are_appended_to_the_object() {
        let rec = Value::Map(vec![(Value::Str("a".into()), Value::UInt(1))]).to_bytes();
        let mut out = Vec::new();
        let extra = [("tag", Extra::Str("t.x".into())), ("time", Extra::F64(1.5))];
        write_record(&rec, &extra, &mut out).unwrap();
        assert_eq!(out, br#"{"a":1,"tag":"t.x","time":1.5}"#);
        out.clear();
        let empty = Value::Map(vec![]).to_bytes();
        write_record(&empty, &extra[..1], &mut out).unwrap();
        assert_eq!(out, br#"{"tag":"t.x"}"#);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let rec = Value::Map(vec![(Value::Str("a".into()), Value::Str("long".into()))]).to_bytes();
        let mut out = Vec::new();
        assert!(write_record(&rec[..rec.len() - 2], &[], &mut out).is_err());
    }
}
