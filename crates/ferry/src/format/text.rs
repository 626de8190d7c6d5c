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
