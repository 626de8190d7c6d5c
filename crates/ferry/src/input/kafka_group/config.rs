//! `<source> @type kafka_group` parameters, named as fluent-plugin-kafka's `kafka_group` input
//! names them, and their translation into librdkafka consumer properties.

use crate::parse::{ParseSetup, TimeSpec};
use ferry_config::Section;
use rdkafka::ClientConfig;

/// How a message's payload becomes a record.
#[derive(Debug, Clone)]
pub enum Payload {
    /// `format json`: the payload's object (`time_source record` takes its time key).
    Json,
    /// `format text`: `{message_key: payload}`.
    Text,
    /// `format msgpack`: the payload's map.
    Msgpack,
    /// `format ltsv`, or a `<parse>` section.
    Parse(Box<ParseSetup>),
}

/// Where an event's time comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeSource {
    /// When ferry read the message.
    Now,
    /// The message's Kafka timestamp.
    Kafka,
    /// The record's `record_time_key`, read with `time_format` (numbers are seconds).
    Record(TimeSpec),
}

/// A checked `<source> @type kafka_group`.
#[derive(Debug, Clone)]
pub struct KafkaGroupConfig {
    pub label: Option<String>,
    pub consumer_group: String,
    /// Topic names, and `/regex/` patterns (librdkafka's `^regex` subscriptions).
    pub topics: Vec<String>,
    pub payload: Payload,
    pub message_key: String,
    pub add_headers: bool,
    pub add_prefix: Option<String>,
    pub add_suffix: Option<String>,
    pub time_source: TimeSource,
    /// `tag_source record`: the tag from this record key (the topic when absent).
    pub record_tag_key: Option<String>,
    /// Add the message's Kafka key under this record key.
    pub kafka_message_key: Option<String>,
    /// Every librdkafka property, derived ones first, `rdkafka_options` last.
    pub properties: Vec<(String, String)>,
}

impl KafkaGroupConfig {
    pub fn from_section(s: &Section<'_>) -> Self {
        let brokers = s.str_or("brokers", "localhost:9092");
        let consumer_group = s.required_str("consumer_group").unwrap_or_default();
        let topics: Vec<String> = s
            .required_str("topics")
            .unwrap_or_default()
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(
                |t| match t.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
                    Some(re) if re.starts_with('^') => re.to_string(),
                    Some(re) => format!("^.*{re}"),
                    None => t,
                },
            )
            .collect();
        if topics.is_empty() && s.has("topics") {
            s.error(Some("topics"), "topics names no topic");
        }
        let format = s.enum_or("format", &["json", "text", "ltsv", "msgpack"], "json");
        let time_source = match s.enum_or("time_source", &["now", "kafka", "record"], "now") {
            "kafka" => TimeSource::Kafka,
            "record" => {
                let mut spec =
                    crate::parse::default_time_spec(Some(&s.str_or("record_time_key", "time")));
                spec.keep = true;
                if let Some(f) = s.str("time_format") {
                    match crate::parse::time::TimeFormat::compile(&f) {
                        Ok(f) => spec.parse = crate::parse::TimeParse::Format(Some(f)),
                        Err(e) => s.error(Some("time_format"), e),
                    }
                }
                TimeSource::Record(spec)
            }
            _ => {
                for key in ["record_time_key", "time_format"] {
                    if s.has(key) {
                        s.error(Some(key), format!("{key} needs time_source record"));
                    }
                }
                TimeSource::Now
            }
        };
        let payload = match s.child("parse") {
            Some(p) => {
                if s.has("format") {
                    p.error(
                        None,
                        "format and <parse> both say how to read a message; keep one",
                    );
                }
                let setup = ParseSetup::from_section(&p);
                if setup.multiline.is_some() {
                    p.error(
                        Some("@type"),
                        "multiline assembles lines of a file; kafka_group parses each message alone",
                    );
                }
                p.finish();
                Payload::Parse(Box::new(setup))
            }
            None => match format {
                "text" => Payload::Text,
                "msgpack" => Payload::Msgpack,
                "ltsv" => Payload::Parse(Box::new(ParseSetup::built_in("@type ltsv"))),
                _ => Payload::Json,
            },
        };
        let record_tag_key = match s.enum_or("tag_source", &["topic", "record"], "topic") {
            "record" => Some(s.str_or("record_tag_key", "tag")),
            _ => None,
        };
        let mut properties: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), brokers),
            ("group.id".into(), consumer_group.clone()),
            ("client.id".into(), s.str_or("client_id", "kafka")),
            // Offsets are stored only once their events are committed to ferry's buffer, and
            // committed from there by librdkafka (and on every rebalance).
            ("enable.auto.commit".into(), "true".into()),
            ("enable.auto.offset.store".into(), "false".into()),
            (
                "auto.offset.reset".into(),
                if s.bool_or("start_from_beginning", true) {
                    "earliest".into()
                } else {
                    "latest".into()
                },
            ),
            // Consumer lag and the other per-partition figures come from librdkafka's statistics.
            ("statistics.interval.ms".into(), "5000".into()),
            // What librdkafka prefetches stays small: ferry's buffer is where events wait.
            ("queued.max.messages.kbytes".into(), "16384".into()),
            // Past that bound librdkafka would stop fetching for a whole second (its default);
            // one fetch response can pass it, so the fetcher looks again soon.
            ("fetch.queue.backoff.ms".into(), "10".into()),
        ];
        let seconds = |key: &str, property: &str, props: &mut Vec<(String, String)>| {
            if let Some(d) = s.opt_duration(key) {
                props.push((property.to_string(), d.as_millis().to_string()));
            }
        };
        seconds("max_wait_time", "fetch.wait.max.ms", &mut properties);
        seconds("session_timeout", "session.timeout.ms", &mut properties);
        seconds(
            "offset_commit_interval",
            "auto.commit.interval.ms",
            &mut properties,
        );
        seconds("socket_timeout", "socket.timeout.ms", &mut properties);
        seconds(
            "refresh_topic_interval",
            "topic.metadata.refresh.interval.ms",
            &mut properties,
        );
        if let Some(n) = s.opt_size("max_bytes") {
            properties.push(("max.partition.fetch.bytes".into(), n.0.to_string()));
        }
        if let Some(n) = s.opt_size("min_bytes") {
            properties.push(("fetch.min.bytes".into(), n.0.to_string()));
        }
        let _ = s.opt_u64("retry_emit_limit");
        s.no_effect(
            "retry_emit_limit",
            "while the buffer refuses, the partitions are paused until it takes events again; nothing is dropped",
        );
        let _ = s.opt_duration("connect_timeout");
        s.no_effect(
            "connect_timeout",
            "librdkafka connects under socket_timeout",
        );
        let _ = s.opt_duration("retry_wait_seconds");
        s.no_effect(
            "retry_wait_seconds",
            "librdkafka reconnects with its own backoff",
        );
        let _ = s.opt_bool("disable_retry_limit");
        s.no_effect(
            "disable_retry_limit",
            "librdkafka reconnects for as long as ferry runs",
        );
        let _ = s.opt_u64("retry_limit");
        s.no_effect(
            "retry_limit",
            "librdkafka reconnects for as long as ferry runs",
        );
        let _ = s.opt_u64("offset_commit_threshold");
        s.no_effect(
            "offset_commit_threshold",
            "offsets are committed every offset_commit_interval and at each rebalance",
        );
        let _ = s.opt_u64("fetcher_max_queue_size");
        s.no_effect(
            "fetcher_max_queue_size",
            "the prefetch queue is bounded in bytes (16 MiB)",
        );
        let _ = s.opt_bool("get_kafka_client_log");
        s.no_effect(
            "get_kafka_client_log",
            "librdkafka's log lines go to ferry's log",
        );
        crate::kafka::read_security(s, &mut properties);
        if let Some(raw) = s.hash("rdkafka_options") {
            properties.extend(raw);
        }
        crate::kafka::check_properties(s, &properties);
        Self {
            label: s.label().map(str::to_string),
            consumer_group,
            topics,
            payload,
            message_key: s.str_or("message_key", "message"),
            add_headers: s.bool_or("add_headers", false),
            add_prefix: s.str("add_prefix"),
            add_suffix: s.str("add_suffix"),
            time_source,
            record_tag_key,
            kafka_message_key: s.str("kafka_message_key"),
            properties,
        }
    }

    /// The librdkafka configuration of the consumer.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }

    /// The tag of a message from `topic` (before `tag_source record`).
    pub fn tag_for(&self, topic: &str) -> String {
        let mut tag = String::new();
        if let Some(p) = &self.add_prefix {
            tag.push_str(p);
            tag.push('.');
        }
        tag.push_str(topic);
        if let Some(sfx) = &self.add_suffix {
            tag.push('.');
            tag.push_str(sfx);
        }
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(body: &str) -> Result<KafkaGroupConfig, String> {
        let text = format!(
            "<source>\n@type kafka_group\nconsumer_group g\ntopics a, /^logs\\..*/\n{body}\n</source>\n"
        );
        let root = ferry_config::parse_str(&text, "kafka.conf").unwrap();
        let errors = ferry_config::Errors::new();
        let c = {
            let s = Section::new(&root.children[0], &errors);
            let _ = s.plugin_type();
            let c = KafkaGroupConfig::from_section(&s);
            s.finish();
            c
        };
        errors.into_result(c).map_err(|e| e.to_string())
    }

    fn property<'a>(c: &'a KafkaGroupConfig, key: &str) -> Option<&'a str> {
        c.properties
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn parameters_become_librdkafka_properties() {
        let c = config("").unwrap();
        assert_eq!(c.topics, vec!["a".to_string(), "^logs\\..*".to_string()]);
        assert_eq!(property(&c, "auto.offset.reset"), Some("earliest"));
        assert_eq!(property(&c, "enable.auto.offset.store"), Some("false"));
        assert_eq!(property(&c, "client.id"), Some("kafka"));
        let c = config(
            "client_id agg\nstart_from_beginning false\nmax_bytes 2m\nmin_bytes 10\nmax_wait_time 0.25\nsocket_timeout 7\nrefresh_topic_interval 30\nsession_timeout 12\noffset_commit_interval 3\nrdkafka_options {\"fetch.error.backoff.ms\":\"100\"}",
        )
        .unwrap();
        for (k, v) in [
            ("client.id", "agg"),
            ("auto.offset.reset", "latest"),
            ("max.partition.fetch.bytes", "2097152"),
            ("fetch.min.bytes", "10"),
            ("fetch.wait.max.ms", "250"),
            ("socket.timeout.ms", "7000"),
            ("topic.metadata.refresh.interval.ms", "30000"),
            ("session.timeout.ms", "12000"),
            ("auto.commit.interval.ms", "3000"),
            ("fetch.error.backoff.ms", "100"),
        ] {
            assert_eq!(property(&c, k), Some(v), "{k}");
        }
    }

    #[test]
    fn bad_settings_are_refused_naming_the_parameter() {
        for (body, needle) in [
            ("format xml", "format"),
            ("time_format %Y", "time_source record"),
            (
                "rdkafka_options {\"no.such.property\":\"1\"}",
                "librdkafka refuses",
            ),
            ("format json\n<parse>\n@type none\n</parse>", "keep one"),
        ] {
            let e = config(body).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
        let e = config("").map(|_| ()).and_then(|()| {
            let text = "<source>\n@type kafka_group\n</source>\n";
            let root = ferry_config::parse_str(text, "k.conf").unwrap();
            let errors = ferry_config::Errors::new();
            let s = Section::new(&root.children[0], &errors);
            let _ = s.plugin_type();
            let _ = KafkaGroupConfig::from_section(&s);
            s.finish();
            errors.into_result(()).map_err(|e| e.to_string())
        });
        let e = e.unwrap_err();
        assert!(e.contains("consumer_group") && e.contains("topics"), "{e}");
    }
}
