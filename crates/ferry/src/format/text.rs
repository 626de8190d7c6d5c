//! The formats that need a record's fields by name: `ltsv`, `csv`, `single_value`, and
//! `msgpack` with injected fields. They decode the record into a [`Value`].

use crate::record::{self, text};
use ferry_proto::msgpack::Value;

/// `ltsv`: `label:value` pairs joined by the delimiter. Delimiters inside labels and values are
/// replaced by `replacement`, so a line always splits back into the same pairs.
pub fn write_ltsv(
    pairs: &[(Value, Value)],
    delimiter: &str,
    label_delimiter: &str,
    replacement: &str,
    out: &mut Vec<u8>,
) {
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(delimiter.as_bytes());
        }
        let clean = |s: &str| {
            let mut s = s.replace(delimiter, replacement);
            if !label_delimiter.is_empty() {
                s = s.replace(label_delimiter, replacement);
            }
            s.replace('\n', replacement)
        };
        out.extend_from_slice(clean(&text(k)).as_bytes());
        out.extend_from_slice(label_delimiter.as_bytes());
        let value = text(v);
        let value = value
            .replace(delimiter, replacement)
            .replace('\n', replacement);
        out.extend_from_slice(value.as_bytes());
    }
}

/// Ruby's `inspect` of a record, as Fluentd's stdout `output_type hash` prints it:
/// `{"k"=>"v", "n"=>1, "a"=>[1, nil]}`.
pub fn write_ruby_inspect(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.extend_from_slice(b"nil"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
        Value::F32(f) => out.extend_from_slice(record::float_text(f64::from(*f)).as_bytes()),
        Value::F64(f) => out.extend_from_slice(record::float_text(*f).as_bytes()),
        Value::Str(b) | Value::Bin(b) => ruby_string(&String::from_utf8_lossy(b), out),
        Value::Ext(..) => ruby_string(&text(v), out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_ruby_inspect(item, out);
            }
            out.push(b']');
        }
        Value::Map(pairs) => {
            out.push(b'{');
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_ruby_inspect(k, out);
                out.extend_from_slice(b"=>");
                write_ruby_inspect(val, out);
            }
            out.push(b'}');
        }
    }
}

/// Ruby's `String#inspect`.
fn ruby_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\u{1b}' => out.extend_from_slice(b"\\e"),
            '#' if matches!(chars.peek(), Some('{' | '$' | '@')) => out.extend_from_slice(b"\\#"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.extend_from_slice(format!("\\x{:02X}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// `csv`: the values of `fields` in order, as Ruby's CSV writes them. With `force_quotes`
/// every field is quoted (a missing one as `""`); without, only fields holding the delimiter,
/// a quote or a line break, and empty strings.
pub fn write_csv(
    pairs: &[(Value, Value)],
    fields: &[String],
    delimiter: &str,
    force_quotes: bool,
    out: &mut Vec<u8>,
) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(delimiter.as_bytes());
        }
        let value = record::get(pairs, field);
        let s = value.map(text).unwrap_or_default();
        let empty_string = matches!(value, Some(Value::Str(b)) if b.is_empty());
        let quote =
            force_quotes || empty_string || s.contains(delimiter) || s.contains(['"', '\r', '\n']);
        if quote {
            out.push(b'"');
            out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// `single_value`: the text of one field (empty when missing).
pub fn write_single_value(pairs: &[(Value, Value)], key: &str, out: &mut Vec<u8>) {
    if let Some(v) = record::get(pairs, key) {
        out.extend_from_slice(text(v).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::str_value;

    fn rec() -> Vec<(Value, Value)> {
        vec![
            (str_value("a"), str_value("x\ty")),
            (str_value("b"), Value::UInt(2)),
            (str_value("c"), str_value("say \"hi\", ok")),
            (str_value("e"), str_value("")),
        ]
    }

    #[test]
    fn ruby_inspect_is_what_fluentds_hash_output_type_prints() {
        let v = Value::Map(vec![
            (
                record::str_value("msg"),
                record::str_value("a \"q\" #{x}\n"),
            ),
            (record::str_value("n"), Value::UInt(1)),
            (record::str_value("f"), Value::F64(1.5)),
            (
                record::str_value("a"),
                Value::Array(vec![Value::Int(-2), Value::Nil, Value::Bool(true)]),
            ),
        ]);
        let mut out = Vec::new();
        write_ruby_inspect(&v, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"msg"=>"a \"q\" \#{x}\n", "n"=>1, "f"=>1.5, "a"=>[-2, nil, true]}"#
        );
    }

    #[test]
    fn ltsv_joins_labels_and_values_and_replaces_delimiters() {
        let mut out = Vec::new();
        write_ltsv(&rec()[..2], "\t", ":", " ", &mut out);
        assert_eq!(out, b"a:x y\tb:2");
    }

    #[test]
    fn csv_quotes_like_rubys_csv() {
        let fields: Vec<String> = ["a", "b", "c", "missing", "e"].map(String::from).to_vec();
        let mut out = Vec::new();
        write_csv(&rec(), &fields, ",", true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""x	y","2","say ""hi"", ok","","""#
        );
        let mut out = Vec::new();
        write_csv(&rec(), &fields, ",", false, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"x	y,2,"say ""hi"", ok",,"""#
        );
    }

    #[test]
    fn single_value_writes_one_field_or_nothing() {
        let mut out = Vec::new();
        write_single_value(&rec(), "b", &mut out);
        write_single_value(&rec(), "missing", &mut out);
        assert_eq!(out, b"2");
    }
}
