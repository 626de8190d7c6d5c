//! Message payloads: `<format>` for Kafka (json, msgpack, ltsv, single_value) and `<inject>`.
//!
//! The shapes are those of fluent-plugin-kafka's `kafka2`: `json` and `ltsv` messages carry no
//! trailing newline (kafka2 dumps records with Oj and LTSV.dump), `msgpack` is the record map,
//! `single_value` is Fluentd's formatter (the value of `message_key`, with a newline unless
//! `add_newline false`). Values that are not strings are written as their JSON text in ltsv
//! and single_value.

use crate::format::inject::InjectConfig;
use crate::format::json::Extra;
use bytes::{Bytes, BytesMut};
use ferry_config::Section;
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;

/// `<format> @type ...` of a kafka2 output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatKind {
    /// One JSON object (the default).
    Json,
    /// The record as a msgpack map.
    Msgpack,
    /// `key:value` pairs joined by `delimiter`.
    Ltsv {
        delimiter: String,
        label_delimiter: String,
        add_newline: bool,
    },
    /// The value of one field.
    SingleValue {
        message_key: String,
        add_newline: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaFormat {
    pub kind: FormatKind,
    pub inject: InjectConfig,
}

const FORMATS: &[&str] = &["json", "msgpack", "ltsv", "single_value"];

impl KafkaFormat {
    /// Reads the `<format>` and `<inject>` children of the output section.
    pub fn from_section(section: &Section<'_>) -> Self {
        let kind = match section.child("format") {
            None => FormatKind::Json,
            Some(f) => {
                let kind = match f.enum_or("@type", FORMATS, "json") {
                    "msgpack" => FormatKind::Msgpack,
                    "ltsv" => FormatKind::Ltsv {
                        delimiter: f.str_or("delimiter", "\t"),
                        label_delimiter: f.str_or("label_delimiter", ":"),
                        add_newline: f.bool_or("add_newline", false),
                    },
                    "single_value" => FormatKind::SingleValue {
                        message_key: f.str_or("message_key", "message"),
                        add_newline: f.bool_or("add_newline", true),
                    },
                    _ => FormatKind::Json,
                };
                f.finish();
                kind
            }
        };
        let inject = InjectConfig::from_parent(section);
        Self { kind, inject }
    }

    /// Adds the `<inject>` fields to a record map; a key already in the record is replaced, as
    /// Fluentd's inject does.
    pub fn inject(&self, record: &mut Value, tag: &str, time: EventTime) {
        if self.inject.is_empty() {
            return;
        }
        let Value::Map(pairs) = record else { return };
        let mut extras = Vec::new();
        self.inject.extras(tag, time, &mut extras);
        for (key, extra) in extras {
            let value = match extra {
                Extra::Str(s) => str_value(&s),
                Extra::UInt(n) => Value::UInt(n),
                Extra::F64(f) => Value::F64(f),
            };
            pairs.retain(|(k, _)| !matches!(k, Value::Str(b) if b.as_ref() == key.as_bytes()));
            pairs.push((str_value(key), value));
        }
    }

    /// The message payload of one record; `scratch` is reused between records.
    pub fn payload(&self, record: &Value, scratch: &mut String) -> Bytes {
        scratch.clear();
        match &self.kind {
            FormatKind::Json => record.write_json(scratch),
            FormatKind::Msgpack => {
                let mut out = BytesMut::new();
                record.encode(&mut out);
                return out.freeze();
            }
            FormatKind::Ltsv {
                delimiter,
                label_delimiter,
                add_newline,
            } => {
                if let Value::Map(pairs) = record {
                    for (i, (k, v)) in pairs.iter().enumerate() {
                        if i > 0 {
                            scratch.push_str(delimiter);
                        }
                        push_ltsv_text(scratch, k);
                        scratch.push_str(label_delimiter);
                        push_ltsv_text(scratch, v);
                    }
                }
                if *add_newline {
                    scratch.push('\n');
                }
            }
            FormatKind::SingleValue {
                message_key,
                add_newline,
            } => {
                match record.get(message_key) {
                    Some(Value::Str(s)) => scratch.push_str(&String::from_utf8_lossy(s)),
                    Some(Value::Nil) | None => {}
                    Some(other) => other.write_json(scratch),
                }
                if *add_newline {
                    scratch.push('\n');
                }
            }
        }
        Bytes::copy_from_slice(scratch.as_bytes())
    }
}

/// A value as LTSV text: strings as they are with tab, newline and carriage return escaped
/// (they would split the line), anything else as JSON.
fn push_ltsv_text(out: &mut String, v: &Value) {
    let text = match v {
        Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
        other => other.to_json_string(),
    };
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn str_value(s: &str) -> Value {
    Value::Str(Bytes::copy_from_slice(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Value {
        Value::Map(vec![
            (str_value("message"), str_value("hello\tworld")),
            (str_value("n"), Value::UInt(7)),
        ])
    }

    fn format(kind: FormatKind) -> KafkaFormat {
        KafkaFormat {
            kind,
            inject: InjectConfig::default(),
        }
    }

    #[test]
    fn json_payload_is_one_object_without_newline() {
        let mut s = String::new();
        let p = format(FormatKind::Json).payload(&record(), &mut s);
        assert_eq!(&p[..], br#"{"message":"hello\tworld","n":7}"#);
    }

    #[test]
    fn msgpack_payload_decodes_to_the_record() {
        let mut s = String::new();
        let p = format(FormatKind::Msgpack).payload(&record(), &mut s);
        assert_eq!(Value::decode(&p).map(|(v, _)| v), Ok(record()));
    }

    #[test]
    fn ltsv_payload_escapes_tabs_inside_values() {
        let mut s = String::new();
        let kind = FormatKind::Ltsv {
            delimiter: "\t".into(),
            label_delimiter: ":".into(),
            add_newline: false,
        };
        let p = format(kind).payload(&record(), &mut s);
        assert_eq!(&p[..], b"message:hello\\tworld\tn:7");
    }

    #[test]
    fn single_value_payload_is_the_field_with_a_newline() {
        let mut s = String::new();
        let kind = FormatKind::SingleValue {
            message_key: "message".into(),
            add_newline: true,
        };
        let p = format(kind).payload(&record(), &mut s);
        assert_eq!(&p[..], b"hello\tworld\n");
    }

    #[test]
    fn format_parameters_shape_the_payload() {
        let payload = |format: &str| {
            let f = crate::plugin::read_section(
                &format!("<match>\n<format>\n{format}\n</format>\n</match>\n"),
                KafkaFormat::from_section,
            )
            .unwrap();
            let mut s = String::new();
            f.payload(&record(), &mut s).to_vec()
        };
        assert_eq!(
            payload("@type ltsv\ndelimiter |\nlabel_delimiter =\nadd_newline true"),
            b"message=hello\\tworld|n=7\n"
        );
        assert_eq!(payload("@type ltsv"), b"message:hello\\tworld\tn:7");
        assert_eq!(
            payload("@type single_value\nmessage_key n\nadd_newline false"),
            b"7"
        );
        assert_eq!(payload("@type single_value"), b"hello\tworld\n");
        assert_eq!(
            payload("@type json"),
            br#"{"message":"hello\tworld","n":7}"#
        );
    }

    #[test]
    fn inject_adds_tag_and_unixtime() {
        let mut f = format(FormatKind::Json);
        f.inject = InjectConfig {
            tag_key: Some("tag".into()),
            time_key: Some("time".into()),
            time_type: crate::format::inject::TimeType::Unixtime,
            ..InjectConfig::default()
        };
        let mut r = record();
        f.inject(&mut r, "app.web", EventTime { sec: 5, nsec: 0 });
        assert_eq!(r.get("tag"), Some(&str_value("app.web")));
        assert_eq!(r.get("time"), Some(&Value::UInt(5)));
    }
}
