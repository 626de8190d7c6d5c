//! `<match> @type kafka2` parameters, named as fluent-plugin-kafka's `kafka2` output names them,
//! and their translation into librdkafka properties.
//!
//! Every librdkafka property ferry derives, and every raw one from `rdkafka_options`, is checked
//! by librdkafka itself while the configuration is read (`--dry-run` included), so a misspelt
//! property is reported with its file:line before anything connects.

use super::format::KafkaFormat;
use crate::output::buffer_section::{BufferDefaults, BufferSetup};
use crate::root_dir::RootDir;
use ferry_config::Section;
use rdkafka::ClientConfig;
use std::time::Duration;

/// `required_acks`: how many replicas must have a message before the broker acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequiredAcks {
    /// `0`: the broker sends no acknowledgement. Fastest; a message lost by the broker (or on
    /// the wire) is never known to ferry, so ferry's no-loss guarantee does not hold.
    None,
    /// `1`: the partition leader has the message. Lost if the leader dies before followers
    /// copy it.
    Leader,
    /// `-1` (the default): every in-sync replica has the message.
    All,
}

impl RequiredAcks {
    fn as_property(self) -> &'static str {
        match self {
            Self::None => "0",
            Self::Leader => "1",
            Self::All => "all",
        }
    }
}

/// `compression_codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub const NAMES: &'static [&'static str] = &["none", "gzip", "snappy", "lz4", "zstd"];

    fn from_name(name: &str) -> Self {
        match name {
            "gzip" => Self::Gzip,
            "snappy" => Self::Snappy,
            "lz4" => Self::Lz4,
            "zstd" => Self::Zstd,
            _ => Self::None,
        }
    }

    fn as_property(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

/// Where each record goes and what travels with it (fluent-plugin-kafka's record fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    /// `topic`: every record to this topic (`${tag}` is replaced by the tag).
    pub topic: Option<String>,
    /// `topic_key` (default `topic`): the record field naming the topic when `topic` is unset.
    pub topic_key: String,
    /// `default_topic`: for records without `topic_key`; the tag when unset too.
    pub default_topic: Option<String>,
    /// `partition_key` (default `partition`): the record field holding an explicit partition.
    pub partition_key: String,
    /// `default_partition`: for records without `partition_key`.
    pub default_partition: Option<i32>,
    /// `partition_key_key` (default `partition_key`): the record field whose value chooses the
    /// partition by hash, as a message key would, without becoming the message key.
    pub partition_key_key: String,
    pub default_partition_key: Option<String>,
    /// `message_key_key` (default `message_key`): the record field that becomes the message key.
    pub message_key_key: String,
    pub default_message_key: Option<String>,
    pub exclude_topic_key: bool,
    pub exclude_partition: bool,
    pub exclude_partition_key: bool,
    pub exclude_message_key: bool,
    /// `headers`: static headers on every message.
    pub headers: Vec<(String, String)>,
    /// `headers_from_record`: header name → record accessor (`$.a.b` or a top-level key).
    pub headers_from_record: Vec<(String, Vec<String>)>,
}

/// A checked `<match> @type kafka2`.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub routing: RoutingConfig,
    pub format: KafkaFormat,
    pub required_acks: RequiredAcks,
    pub compression_codec: Codec,
    pub idempotent: bool,
    /// How long librdkafka tries to deliver a message before reporting it failed
    /// (`message.timeout.ms`); the chunk is then retried by the buffer.
    pub delivery_timeout: Duration,
    /// Every librdkafka property, derived ones first, `rdkafka_options` last (they win).
    pub properties: Vec<(String, String)>,
}

impl KafkaConfig {
    pub fn from_section(section: &Section<'_>) -> Self {
        let brokers = section.str_or("brokers", "localhost:9092");
        let required_acks = match section.i64_or("required_acks", -1) {
            0 => RequiredAcks::None,
            1 => RequiredAcks::Leader,
            -1 => RequiredAcks::All,
            other => {
                section.error(
                    Some("required_acks"),
                    format!("required_acks must be -1 (all replicas), 1 or 0, not {other}"),
                );
                RequiredAcks::All
            }
        };
        let idempotent = section.bool_or("idempotent", true);
        if idempotent && required_acks != RequiredAcks::All {
            section.error(
                Some("required_acks"),
                "an idempotent producer needs required_acks -1; set idempotent false to use 0 or 1",
            );
        }
        let compression_codec =
            Codec::from_name(section.enum_or("compression_codec", Codec::NAMES, "none"));
        let delivery_timeout = section.duration_or("delivery_timeout", Duration::from_secs(60));
        let routing = read_routing(section);
        let format = KafkaFormat::from_section(section);

        let mut properties: Vec<(String, String)> = vec![
            ("bootstrap.servers".into(), brokers.clone()),
            ("client.id".into(), section.str_or("client_id", "ferry")),
            ("acks".into(), required_acks.as_property().into()),
            ("enable.idempotence".into(), idempotent.to_string()),
            (
                "compression.codec".into(),
                compression_codec.as_property().into(),
            ),
            (
                "message.timeout.ms".into(),
                delivery_timeout.as_millis().to_string(),
            ),
            // librdkafka's own default is 1 GiB of queued messages; ferry's buffer is where
            // events wait, so the producer queue stays small and QueueFull pushes back on it.
            ("queue.buffering.max.kbytes".into(), "65536".into()),
        ];
        if let Some(n) = section.opt_u64("max_send_retries") {
            properties.push(("message.send.max.retries".into(), n.to_string()));
        }
        if let Some(t) = section.opt_duration("ack_timeout") {
            properties.push(("request.timeout.ms".into(), t.as_millis().to_string()));
        }
        crate::kafka::read_security(section, &mut properties);
        if let Some(raw) = section.hash("rdkafka_options") {
            properties.extend(raw);
        }
        crate::kafka::check_properties(section, &properties);
        Self {
            brokers,
            routing,
            format,
            required_acks,
            compression_codec,
            idempotent,
            delivery_timeout,
            properties,
        }
    }

    /// The librdkafka configuration of the producer.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }
}

fn read_routing(section: &Section<'_>) -> RoutingConfig {
    let default_partition = section.opt_i64("default_partition").and_then(|p| {
        let p = i32::try_from(p).ok().filter(|p| *p >= 0);
        if p.is_none() {
            section.error(
                Some("default_partition"),
                "default_partition must be a partition number",
            );
        }
        p
    });
    let headers_from_record = section
        .hash("headers_from_record")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, accessor)| match parse_accessor(&accessor) {
            Some(path) => Some((name, path)),
            None => {
                section.error(
                    Some("headers_from_record"),
                    format!("'{accessor}' is not a record accessor ($.key or $.key.nested)"),
                );
                None
            }
        })
        .collect();
    RoutingConfig {
        topic: section.str("topic"),
        topic_key: section.str_or("topic_key", "topic"),
        default_topic: section.str("default_topic"),
        partition_key: section.str_or("partition_key", "partition"),
        default_partition,
        partition_key_key: section.str_or("partition_key_key", "partition_key"),
        default_partition_key: section.str("default_partition_key"),
        message_key_key: section.str_or("message_key_key", "message_key"),
        default_message_key: section.str("default_message_key"),
        exclude_topic_key: section.bool_or("exclude_topic_key", false),
        exclude_partition: section.bool_or("exclude_partition", false),
        exclude_partition_key: section.bool_or("exclude_partition_key", false),
        exclude_message_key: section.bool_or("exclude_message_key", false),
        headers: section.hash("headers").unwrap_or_default(),
        headers_from_record,
    }
}

/// `$.a.b` or `$['a']['b']`-free dotted form, or a plain top-level key.
pub fn parse_accessor(accessor: &str) -> Option<Vec<String>> {
    let a = accessor.trim();
    let path: Vec<String> = match a.strip_prefix("$.") {
        Some(rest) => rest.split('.').map(str::to_string).collect(),
        None if a.starts_with('$') => return None,
        None => vec![a.to_string()],
    };
    (!path.iter().any(String::is_empty)).then_some(path)
}

/// The buffer of a kafka2 output: it always has one, `<buffer tag>` unless configured. Topics
/// are resolved per record, so `topic` needs no chunk key; the tag must be a chunk key when a
/// topic may come from it (`${tag}` in `topic`, or no `topic` and no `default_topic`).
pub fn buffer_setup(
    section: &Section<'_>,
    config: &KafkaConfig,
    id: &str,
    root: &RootDir,
    has_secondary: bool,
) -> BufferSetup {
    let defaults = BufferDefaults {
        keys: "tag",
        timekey: None,
    };
    let child = section.child("buffer");
    let setup = BufferSetup::from_section(child.as_ref(), defaults, id, root, has_secondary);
    let routing = &config.routing;
    let topic_from_tag = match &routing.topic {
        Some(t) => t.contains("${tag}"),
        None => routing.default_topic.is_none(),
    };
    if topic_from_tag && !setup.keys.tag {
        section.error(
            None,
            "the topic may come from the tag, so 'tag' must be a chunk key of <buffer> \
             (or set topic / default_topic)",
        );
    }
    if let Some(b) = child {
        b.finish();
    }
    setup
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::read_section;

    fn read(body: &str) -> KafkaConfig {
        read_section(
            &format!("<match>\n{body}\n</match>\n"),
            KafkaConfig::from_section,
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// The value librdkafka gets for `name`: the last one set.
    fn property<'c>(c: &'c KafkaConfig, name: &str) -> Option<&'c str> {
        c.properties
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn parameters_become_librdkafka_properties() {
        let c = read(
            "brokers b1:9092,b2:9092\nclient_id shipper\nrequired_acks 1\nidempotent false\n\
             compression_codec lz4\ndelivery_timeout 30s\nmax_send_retries 3\nack_timeout 5s\n\
             rdkafka_options {\"linger.ms\":\"50\",\"client.id\":\"raw\"}",
        );
        for (name, want) in [
            ("bootstrap.servers", "b1:9092,b2:9092"),
            ("acks", "1"),
            ("enable.idempotence", "false"),
            ("compression.codec", "lz4"),
            ("message.timeout.ms", "30000"),
            ("message.send.max.retries", "3"),
            ("request.timeout.ms", "5000"),
            ("linger.ms", "50"),
            ("client.id", "raw"),
            ("security.protocol", "plaintext"),
        ] {
            assert_eq!(property(&c, name), Some(want), "{name}");
        }
        assert!(
            c.properties
                .contains(&("client.id".into(), "shipper".into())),
            "client_id is set, and rdkafka_options, set last, wins"
        );
        let d = read("");
        assert_eq!(property(&d, "acks"), Some("all"));
        assert_eq!(property(&d, "enable.idempotence"), Some("true"));
        assert_eq!(property(&d, "message.send.max.retries"), None);
    }

    #[test]
    fn tls_and_sasl_parameters_become_librdkafka_properties() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, b"pem").unwrap();
            p.display().to_string()
        };
        let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
        let c = read(&format!(
            "ssl_ca_cert {ca}\nssl_client_cert {cert}\nssl_client_cert_key {key}\n\
             ssl_client_cert_key_password secret\nssl_verify_hostname false"
        ));
        for (name, want) in [
            ("ssl.ca.location", ca.as_str()),
            ("ssl.certificate.location", cert.as_str()),
            ("ssl.key.location", key.as_str()),
            ("ssl.key.password", "secret"),
            ("ssl.endpoint.identification.algorithm", "none"),
            ("security.protocol", "ssl"),
        ] {
            assert_eq!(property(&c, name), Some(want), "{name}");
        }
        let c = read("username u\npassword p\nscram_mechanism sha512\nsasl_over_ssl false");
        for (name, want) in [
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
            ("security.protocol", "sasl_plaintext"),
        ] {
            assert_eq!(property(&c, name), Some(want), "{name}");
        }
        let c = read("username u\npassword p\nssl_ca_certs_from_system true");
        assert_eq!(property(&c, "sasl.mechanism"), Some("PLAIN"));
        assert_eq!(property(&c, "ssl.ca.location"), Some("probe"));
        assert_eq!(property(&c, "security.protocol"), Some("sasl_ssl"));
    }

    #[test]
    fn accessors_name_a_path_of_record_keys() {
        assert_eq!(parse_accessor("$.a.b"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(parse_accessor("host"), Some(vec!["host".into()]));
        assert_eq!(parse_accessor("$['a']"), None);
        assert_eq!(parse_accessor("$.a..b"), None);
    }
}
