//! JSON rendering of a [`Value`] (for stdout-style outputs). Always valid JSON:
//! - str and bin are rendered as strings, non-UTF-8 bytes replaced (lossy);
//! - map keys that are not str are rendered as a string holding the JSON text of the key, in
//!   which non-str keys nested deeper appear as bare text (so escaping happens once and the
//!   output stays linear in the input);
//! - NaN and infinities become `null`;
//! - an EventTime extension (type 0, 8 bytes) becomes the number `sec.nnnnnnnnn`; any other
//!   extension becomes `{"ext": type, "hex": "..."}`.

use std::fmt::Write as _;

use super::Value;

impl Value {
    /// Append the JSON rendering of this value to `out`.
    pub fn write_json(&self, out: &mut String) {
        self.render(out, false);
    }

    /// `key_text`: rendering the text of a non-str map key. Non-str keys nested inside it are
    /// written as their bare text, not as escaped strings, so the text is escaped once (by the
    /// outermost key) and its length stays linear in the input: escaping at every level of
    /// nesting would double it per level.
    fn render(&self, out: &mut String, key_text: bool) {
        match self {
            Value::Nil => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(v) => push_display(out, v),
            Value::UInt(v) => push_display(out, v),
            Value::F32(v) => write_float(out, f64::from(*v)),
            Value::F64(v) => write_float(out, *v),
            Value::Str(s) | Value::Bin(s) => write_json_str(out, &String::from_utf8_lossy(s)),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.render(out, key_text);
                }
                out.push(']');
            }
            Value::Map(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match k {
                        Value::Str(s) => write_json_str(out, &String::from_utf8_lossy(s)),
                        other if key_text => other.render(out, true),
                        other => {
                            let mut key = String::new();
                            other.render(&mut key, true);
                            write_json_str(out, &key);
                        }
                    }
                    out.push(':');
                    v.render(out, key_text);
                }
                out.push('}');
            }
            Value::Ext(0, data) if data.len() == 8 => {
                let sec = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let nsec = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                if nsec < 1_000_000_000 {
                    let _ = write!(out, "{sec}.{nsec:09}");
                } else {
                    push_display(out, &sec);
                }
            }
            Value::Ext(ty, data) => {
                let _ = write!(out, "{{\"ext\":{ty},\"hex\":\"{}\"}}", hex::encode(data));
            }
        }
    }

    /// The JSON rendering as a new string.
    pub fn to_json_string(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }
}

fn push_display(out: &mut String, v: &dyn std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn write_float(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push_str("null");
    } else if v == v.trunc() && v.abs() < 1e16 {
        // Keep a decimal point so the reader sees a float, as Ruby's to_json does (250.0).
        let _ = write!(out, "{v:.1}");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Append `s` as a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn keys_nested_in_keys_are_escaped_once_and_render_in_linear_size() {
        let one = Value::Map(vec![(Value::UInt(1), Value::UInt(2))]);
        let two = Value::Map(vec![(one.clone(), Value::UInt(3))]);
        let mut s = String::new();
        Value::Map(vec![(two, Value::UInt(4))]).write_json(&mut s);
        assert_eq!(s, r#"{"{{1:2}:3}":4}"#);

        // 200 levels of maps used as keys: escaping at every level would double the text per
        // level; escaped once it grows by a few bytes per level.
        let mut v = one;
        for _ in 0..200 {
            v = Value::Map(vec![(v, Value::UInt(1))]);
        }
        let mut s = String::new();
        Value::Map(vec![(v, Value::Nil)]).write_json(&mut s);
        assert!(s.len() < 200 * 8, "{} bytes", s.len());
    }

    #[test]
    fn renders_valid_json_for_awkward_values() {
        let v = Value::Map(vec![
            (
                Value::Str(Bytes::from_static(b"q\"\n")),
                Value::F64(f64::NAN),
            ),
            (Value::UInt(1), Value::Str(Bytes::from_static(b"\xff\x01"))),
            (
                Value::Str(Bytes::from_static(b"t")),
                Value::Ext(0, Bytes::from_static(&[0x65, 0x53, 0xf1, 0, 0, 0, 0, 5])),
            ),
            (Value::Str(Bytes::from_static(b"f")), Value::F64(250.0)),
        ]);
        assert_eq!(
            v.to_json_string(),
            "{\"q\\\"\\n\":null,\"1\":\"\u{fffd}\\u0001\",\"t\":1700000000.000000005,\"f\":250.0}"
        );
    }
}
