//! From one buffered event to one Kafka message: topic, key, partition, headers, payload and
//! timestamp, following fluent-plugin-kafka's record fields (see [`RoutingConfig`]).

use super::config::RoutingConfig;
use super::format::KafkaFormat;
use bytes::Bytes;
use ferry_proto::entries::EntryRef;
use ferry_proto::msgpack::Value;
use std::sync::Arc;

/// A message ready to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    /// Shared by every message of a chunk that goes to the same fixed or default topic.
    pub topic: Arc<str>,
    pub key: Option<Bytes>,
    /// An explicit partition (`partition_key` field or `default_partition`).
    pub partition: Option<i32>,
    /// Bytes whose hash chooses the partition (`partition_key_key` field or
    /// `default_partition_key`), when no explicit partition is given.
    pub partition_key: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
    pub payload: Bytes,
    /// Event time in milliseconds since the epoch: the message's create time.
    pub timestamp_ms: i64,
}

/// A record that cannot be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record at offset {offset} of its segment cannot be decoded: {reason}")]
pub struct BadRecord {
    pub offset: usize,
    pub reason: String,
}

/// Builds messages for one chunk; the scratch buffer is reused across its records.
pub struct MessageBuilder<'a> {
    routing: &'a RoutingConfig,
    format: &'a KafkaFormat,
    tag: &'a str,
    /// `topic` with `${tag}` replaced, computed once per chunk.
    fixed_topic: Option<Arc<str>>,
    /// The topic of records without `topic_key`: `default_topic`, else the tag.
    fallback_topic: Arc<str>,
    scratch: String,
}

impl<'a> MessageBuilder<'a> {
    pub fn new(routing: &'a RoutingConfig, format: &'a KafkaFormat, tag: &'a str) -> Self {
        Self {
            routing,
            format,
            tag,
            fixed_topic: routing
                .topic
                .as_ref()
                .map(|t| Arc::from(t.replace("${tag}", tag))),
            fallback_topic: Arc::from(routing.default_topic.as_deref().unwrap_or(tag)),
            scratch: String::new(),
        }
    }

    pub fn build(&mut self, entry: &EntryRef<'_>, offset: usize) -> Result<OutMessage, BadRecord> {
        let r = self.routing;
        let (mut record, _) = Value::decode(entry.record).map_err(|e| BadRecord {
            offset,
            reason: e.to_string(),
        })?;
        let topic_field = field(&mut record, &r.topic_key, r.exclude_topic_key);
        let partition_field = field(&mut record, &r.partition_key, r.exclude_partition);
        let partition_key_field = field(&mut record, &r.partition_key_key, r.exclude_partition_key);
        let key_field = field(&mut record, &r.message_key_key, r.exclude_message_key);

        let topic = match &self.fixed_topic {
            Some(t) => Arc::clone(t),
            None => topic_field
                .map(|v| text(&v))
                .filter(|t| !t.is_empty())
                .map_or_else(
                    || Arc::clone(&self.fallback_topic),
                    |t| Arc::from(String::from_utf8_lossy(&t)),
                ),
        };
        let partition = partition_field
            .as_ref()
            .and_then(as_partition)
            .or(r.default_partition);
        let partition_key = partition_key_field
            .map(|v| text(&v))
            .or_else(|| r.default_partition_key.as_deref().map(bytes_of));
        let key = key_field
            .map(|v| text(&v))
            .or_else(|| r.default_message_key.as_deref().map(bytes_of));
        let mut headers: Vec<(String, Bytes)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), bytes_of(v)))
            .collect();
        for (name, path) in &r.headers_from_record {
            if let Some(v) = lookup(&record, path) {
                headers.push((name.clone(), text(v)));
            }
        }
        self.format.inject(&mut record, self.tag, entry.time);
        let payload = self.format.payload(&record, &mut self.scratch);
        Ok(OutMessage {
            topic,
            key,
            partition,
            partition_key,
            headers,
            payload,
            timestamp_ms: i64::from(entry.time.sec) * 1000 + i64::from(entry.time.nsec / 1_000_000),
        })
    }
}

/// The partition librdkafka's consistent partitioner would give `key` among `count`
/// partitions (CRC-32 of the key), so a partition key and an equal message key agree.
pub fn partition_for_key(key: &[u8], count: i32) -> i32 {
    let count = u32::try_from(count.max(1)).unwrap_or(1);
    i32::try_from(crc32fast::hash(key) % count).unwrap_or(0)
}

fn bytes_of(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The value of a top-level `key`, removed from the record when `exclude`.
fn field(record: &mut Value, key: &str, exclude: bool) -> Option<Value> {
    let Value::Map(pairs) = record else {
        return None;
    };
    let at = pairs
        .iter()
        .position(|(k, _)| matches!(k, Value::Str(s) if s.as_ref() == key.as_bytes()))?;
    if exclude {
        Some(pairs.remove(at).1)
    } else {
        Some(pairs[at].1.clone())
    }
}

fn lookup<'v>(record: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(record, |v, key| v.get(key))
}

/// A value as message bytes: strings as they are, anything else as its JSON text.
fn text(v: &Value) -> Bytes {
    match v {
        Value::Str(s) | Value::Bin(s) => s.clone(),
        other => Bytes::from(other.to_json_string()),
    }
}

fn as_partition(v: &Value) -> Option<i32> {
    match v {
        Value::UInt(n) => i32::try_from(*n).ok(),
        Value::Str(s) => std::str::from_utf8(s).ok()?.trim().parse::<i32>().ok(),
        _ => None,
    }
    .filter(|p| *p >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::inject::InjectConfig;
    use crate::output::kafka::format::FormatKind;
    use ferry_proto::time::EventTime;

    fn routing() -> RoutingConfig {
        RoutingConfig {
            topic: None,
            topic_key: "topic".into(),
            default_topic: None,
            partition_key: "partition".into(),
            default_partition: None,
            partition_key_key: "partition_key".into(),
            default_partition_key: None,
            message_key_key: "message_key".into(),
            default_message_key: None,
            exclude_topic_key: false,
            exclude_partition: false,
            exclude_partition_key: false,
            exclude_message_key: false,
            headers: vec![("env".into(), "prod".into())],
            headers_from_record: vec![("host".into(), vec!["meta".into(), "host".into()])],
        }
    }

    fn json() -> KafkaFormat {
        KafkaFormat {
            kind: FormatKind::Json,
            inject: InjectConfig::default(),
        }
    }

    fn s(v: &str) -> Value {
        Value::Str(Bytes::copy_from_slice(v.as_bytes()))
    }

    fn entry_bytes(record: &Value) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        ferry_proto::encode::write_entry(
            &mut out,
            EventTime {
                sec: 1_700_000_000,
                nsec: 250_000_000,
            },
            false,
            &record.to_bytes(),
        );
        out.to_vec()
    }

    fn build(routing: &RoutingConfig, record: &Value) -> OutMessage {
        let raw = entry_bytes(record);
        let entry = ferry_proto::entries::iter(&raw)
            .next()
            .and_then(Result::ok)
            .expect("one valid entry");
        let format = json();
        MessageBuilder::new(routing, &format, "app.web")
            .build(&entry, 0)
            .expect("a message")
    }

    #[test]
    fn record_fields_choose_topic_key_and_partition() {
        let record = Value::Map(vec![
            (s("topic"), s("audit")),
            (s("message_key"), s("user-7")),
            (s("partition"), Value::UInt(2)),
            (s("meta"), Value::Map(vec![(s("host"), s("web-1"))])),
        ]);
        let m = build(&routing(), &record);
        assert_eq!(&*m.topic, "audit");
        assert_eq!(m.key.as_deref(), Some(&b"user-7"[..]));
        assert_eq!(m.partition, Some(2));
        assert_eq!(m.timestamp_ms, 1_700_000_000_250);
        assert_eq!(
            m.headers,
            vec![
                ("env".to_string(), Bytes::from_static(b"prod")),
                ("host".to_string(), Bytes::from_static(b"web-1")),
            ]
        );
    }

    #[test]
    fn without_fields_the_default_topic_then_the_tag_is_used() {
        let record = Value::Map(vec![(s("msg"), s("x"))]);
        assert_eq!(&*build(&routing(), &record).topic, "app.web");
        let mut r = routing();
        r.default_topic = Some("fallback".into());
        assert_eq!(&*build(&r, &record).topic, "fallback");
        r.topic = Some("logs.${tag}".into());
        assert_eq!(&*build(&r, &record).topic, "logs.app.web");
    }

    #[test]
    fn excluded_fields_leave_the_payload() {
        let mut r = routing();
        r.exclude_message_key = true;
        r.exclude_topic_key = true;
        let record = Value::Map(vec![
            (s("topic"), s("audit")),
            (s("message_key"), s("k")),
            (s("msg"), s("x")),
        ]);
        let m = build(&r, &record);
        assert_eq!(&*m.topic, "audit");
        assert_eq!(m.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(&m.payload[..], br#"{"msg":"x"}"#);
    }

    #[test]
    fn partition_key_hashes_like_librdkafka_consistent_partitioner() {
        // CRC-32 ("123456789") = 0xCBF43926, the standard check value.
        assert_eq!(
            partition_for_key(b"123456789", 7),
            (0xCBF4_3926u32 % 7) as i32
        );
        let record = Value::Map(vec![(s("partition_key"), s("tenant-3"))]);
        let m = build(&routing(), &record);
        assert_eq!(m.partition, None);
        assert_eq!(m.partition_key.as_deref(), Some(&b"tenant-3"[..]));
    }
}

#[cfg(test)]
mod configured {
    use super::*;
    use crate::output::kafka::config::KafkaConfig;
    use crate::plugin::read_section;
    use ferry_proto::time::EventTime;

    fn config(body: &str) -> KafkaConfig {
        read_section(
            &format!("<match>\n{body}\n</match>\n"),
            KafkaConfig::from_section,
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn s(v: &str) -> Value {
        Value::Str(Bytes::copy_from_slice(v.as_bytes()))
    }

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (s(k), v.clone())).collect())
    }

    fn build(c: &KafkaConfig, value: Value) -> OutMessage {
        let mut raw = bytes::BytesMut::new();
        ferry_proto::encode::write_entry(&mut raw, EventTime::new(1, 0), false, &value.to_bytes());
        let entry = ferry_proto::entries::iter(&raw)
            .next()
            .and_then(Result::ok)
            .expect("one valid entry");
        MessageBuilder::new(&c.routing, &c.format, "app.web")
            .build(&entry, 0)
            .expect("a message")
    }

    #[test]
    fn routing_parameters_choose_each_messages_topic_partition_and_key() {
        let c = config(
            "topic_key dest\ndefault_topic fallback\npartition_key part\ndefault_partition 1\n\
             partition_key_key tenant\ndefault_partition_key shared\nmessage_key_key user\n\
             default_message_key anonymous\nexclude_topic_key true\nexclude_partition true\n\
             exclude_partition_key true\nexclude_message_key true\n\
             headers {\"env\":\"prod\"}\nheaders_from_record {\"x-host\":\"$.meta.host\"}",
        );
        let m = build(
            &c,
            map(&[
                ("dest", s("audit")),
                ("part", Value::UInt(2)),
                ("tenant", s("t3")),
                ("user", s("u7")),
                ("meta", map(&[("host", s("web-1"))])),
                ("msg", s("x")),
            ]),
        );
        assert_eq!(&*m.topic, "audit");
        assert_eq!(m.partition, Some(2));
        assert_eq!(m.partition_key.as_deref(), Some(&b"t3"[..]));
        assert_eq!(m.key.as_deref(), Some(&b"u7"[..]));
        assert_eq!(
            m.headers,
            vec![
                ("env".to_string(), Bytes::from_static(b"prod")),
                ("x-host".to_string(), Bytes::from_static(b"web-1")),
            ]
        );
        assert_eq!(
            &m.payload[..],
            br#"{"meta":{"host":"web-1"},"msg":"x"}"#,
            "excluded fields leave the payload"
        );
        let m = build(&c, map(&[("msg", s("x"))]));
        assert_eq!(&*m.topic, "fallback");
        assert_eq!(m.partition, Some(1));
        assert_eq!(m.partition_key.as_deref(), Some(&b"shared"[..]));
        assert_eq!(m.key.as_deref(), Some(&b"anonymous"[..]));
        let kept = config("topic_key dest\nmessage_key_key user");
        let m = build(&kept, map(&[("dest", s("audit")), ("user", s("u7"))]));
        assert_eq!(
            &m.payload[..],
            br#"{"dest":"audit","user":"u7"}"#,
            "fields stay in the payload unless excluded"
        );
        let fixed = config("topic logs.${tag}\ntopic_key dest");
        assert_eq!(
            &*build(&fixed, map(&[("dest", s("audit"))])).topic,
            "logs.app.web"
        );
    }
}
