//! Inputs: where events enter. Each input type is a variant of the closed [`InputConfig`]
//! enum, dispatched with `match`. [`net`] holds what every network input shares (sockets, accept
//! loops, slots, TLS, a connection's bytes); a network input supplies its framing and request
//! handling as a [`net::Service`] (see `docs/adding-an-input.md`).

pub mod forward;
pub mod http;
pub mod kafka_group;
pub mod lines;
pub mod net;
pub mod sample;
pub mod scribe;
pub mod syslog;
pub mod tail;
pub mod tcp;
pub mod udp;

use crate::router::Routing;
use crate::task::Tasks;
use ferry_config::Section;
use std::sync::Arc;

/// Input plugin types this build of ferry provides.
pub const INPUT_TYPES: &[&str] = &[
    "forward",
    "tail",
    "sample",
    "dummy",
    "tcp",
    "udp",
    "syslog",
    "http",
    "scribe",
    "kafka_group",
];

/// Fluentd input types that ferry does not provide (yet): refused with a clear message.
pub const FOREIGN_INPUT_TYPES: &[&str] =
    &["prometheus", "monitor_agent", "unix", "windows_eventlog"];

/// A parsed `<source>`.
#[derive(Debug, Clone)]
pub enum InputConfig {
    Forward(Box<forward::ForwardInputConfig>),
    Tail(Box<tail::TailInputConfig>),
    /// `sample`, and its older name `dummy`.
    Sample(Box<sample::SampleConfig>),
    Tcp(Box<tcp::TcpInputConfig>),
    Udp(Box<udp::UdpInputConfig>),
    Syslog(Box<syslog::SyslogInputConfig>),
    Http(Box<http::HttpInputConfig>),
    Scribe(Box<scribe::ScribeInputConfig>),
    KafkaGroup(Box<kafka_group::KafkaGroupConfig>),
}

impl InputConfig {
    /// Builds the input named by the section's `@type`; the caller finishes the section.
    pub fn from_section(section: &Section<'_>) -> Option<Self> {
        let kind = crate::plugin::plugin_type(section, "input", INPUT_TYPES, FOREIGN_INPUT_TYPES)?;
        match kind {
            "forward" => Some(Self::Forward(Box::new(
                forward::ForwardInputConfig::from_section(section),
            ))),
            "tail" => Some(Self::Tail(Box::new(tail::TailInputConfig::from_section(
                section,
            )))),
            "sample" | "dummy" => Some(Self::Sample(Box::new(sample::SampleConfig::from_section(
                section,
            )))),
            "tcp" => Some(Self::Tcp(Box::new(tcp::TcpInputConfig::from_section(
                section,
            )))),
            "udp" => Some(Self::Udp(Box::new(udp::UdpInputConfig::from_section(
                section,
            )))),
            "syslog" => Some(Self::Syslog(Box::new(
                syslog::SyslogInputConfig::from_section(section),
            ))),
            "http" => Some(Self::Http(Box::new(http::HttpInputConfig::from_section(
                section,
            )))),
            "scribe" => Some(Self::Scribe(Box::new(
                scribe::ScribeInputConfig::from_section(section),
            ))),
            "kafka_group" => Some(Self::KafkaGroup(Box::new(
                kafka_group::KafkaGroupConfig::from_section(section),
            ))),
            _ => None,
        }
    }

    /// Whether the input tells its source that events are safe (forward: acks and the
    /// connection itself; tail: the position file): such events must not sit only in memory.
    pub fn acknowledges(&self) -> bool {
        match self {
            // http and scribe: the answer comes after the commit.
            // kafka_group: offsets are committed after the buffer commit.
            Self::Forward(_)
            | Self::Tail(_)
            | Self::Http(_)
            | Self::Scribe(_)
            | Self::KafkaGroup(_) => true,
            // Plain TCP carries no acknowledgement.
            Self::Sample(_) | Self::Tcp(_) | Self::Udp(_) | Self::Syslog(_) => false,
        }
    }

    /// The `@type` it was configured with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Forward(_) => "forward",
            Self::Tail(_) => "tail",
            Self::Sample(_) => "sample",
            Self::Tcp(_) => "tcp",
            Self::Udp(_) => "udp",
            Self::Syslog(_) => "syslog",
            Self::Http(_) => "http",
            Self::Scribe(_) => "scribe",
            Self::KafkaGroup(_) => "kafka_group",
        }
    }

    pub fn label(&self) -> Option<&str> {
        match self {
            Self::Forward(c) => c.label.as_deref(),
            Self::Tail(c) => c.label.as_deref(),
            Self::Sample(c) => c.label.as_deref(),
            Self::Tcp(c) => c.label.as_deref(),
            Self::Udp(c) => c.label.as_deref(),
            Self::Syslog(c) => c.label.as_deref(),
            Self::Http(c) => c.label.as_deref(),
            Self::Scribe(c) => c.label.as_deref(),
            Self::KafkaGroup(c) => c.label.as_deref(),
        }
    }
}

/// A started input's handle: its counters.
#[derive(Debug, Clone)]
pub enum InputHandle {
    Forward(Arc<forward::ForwardInputMetrics>),
    Tail(Arc<tail::TailMetrics>),
    Sample(Arc<sample::SampleMetrics>),
    Tcp(Arc<lines::LineMetrics>),
    Udp(Arc<lines::LineMetrics>),
    Syslog(Arc<lines::LineMetrics>),
    Http(Arc<http::HttpInputMetrics>),
    Scribe(Arc<scribe::ScribeInputMetrics>),
    KafkaGroup(Arc<kafka_group::KafkaGroupMetrics>),
}

/// The task groups of a running input. `listen` holds what takes new work (accept loops, the
/// UDP heartbeat responder); `work` what serves it (connections, file watchers, the position
/// writer). A reload that gives an input's sockets to its successor stops `listen` only, so
/// established connections are served to their end.
#[derive(Debug, Clone)]
pub struct InputTasks {
    pub listen: Tasks,
    pub work: Tasks,
}

impl InputTasks {
    /// Two new groups under `tasks`.
    pub fn new(tasks: &Tasks) -> Self {
        Self {
            listen: tasks.group(),
            work: tasks.group(),
        }
    }
}

/// What an input is started with.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    /// Where its events go.
    pub routing: &'a Arc<Routing>,
    pub tasks: &'a InputTasks,
    /// Listening sockets kept across reloads.
    pub sockets: &'a net::listen::Sockets,
    /// This input's token as the holder of the sockets it takes ([`net::listen::Sockets::owner`]).
    pub owner: u64,
    /// The input this one replaces at a reload: its counters continue.
    pub previous: Option<&'a InputHandle>,
}

/// Binds an input's sockets (so bind errors surface at start-up) and spawns its tasks.
pub async fn start(
    id: String,
    config: &InputConfig,
    start: Start<'_>,
) -> anyhow::Result<InputHandle> {
    if start.routing.current().route_for(config.label()).is_none() {
        anyhow::bail!("input {id}: label {:?} is not defined", config.label());
    }
    match config {
        InputConfig::Forward(c) => forward::start(id, (**c).clone(), start)
            .await
            .map(InputHandle::Forward),
        InputConfig::Tail(c) => tail::start(id, (**c).clone(), start)
            .await
            .map(InputHandle::Tail),
        InputConfig::Sample(c) => Ok(InputHandle::Sample(sample::start(
            &id,
            (**c).clone(),
            start,
        ))),
        InputConfig::Tcp(c) => tcp::start(id, (**c).clone(), start)
            .await
            .map(InputHandle::Tcp),
        InputConfig::Udp(c) => udp::start(id, (**c).clone(), start)
            .await
            .map(InputHandle::Udp),
        InputConfig::Syslog(c) => syslog::start(id, (**c).clone(), start)
            .await
            .map(InputHandle::Syslog),
        InputConfig::Http(c) => http::start(id, (**c).clone(), start)
            .await
            .map(InputHandle::Http),
        InputConfig::Scribe(c) => scribe::start(id, (**c).clone(), start)
            .await
            .map(InputHandle::Scribe),
        InputConfig::KafkaGroup(c) => kafka_group::start(id, (**c).clone(), start)
            .await
            .map(InputHandle::KafkaGroup),
    }
}

/// A started input, as the metrics endpoint and monitor API see it.
#[derive(Debug)]
pub struct InputCollector {
    pub id: String,
    pub handle: InputHandle,
}

impl crate::metrics::Collector for InputCollector {
    fn collect(&self, out: &mut crate::metrics::Exposition) {
        match &self.handle {
            InputHandle::Forward(m) => m.export(&self.id, out),
            InputHandle::Tail(m) => m.export(&self.id, out),
            InputHandle::Sample(m) => m.export(&self.id, out),
            InputHandle::Tcp(m) => m.export(&self.id, "tcp", out),
            InputHandle::Udp(m) => m.export(&self.id, "udp", out),
            InputHandle::Syslog(m) => m.export(&self.id, "syslog", out),
            InputHandle::Http(m) => m.export(&self.id, out),
            InputHandle::Scribe(m) => m.export(&self.id, out),
            InputHandle::KafkaGroup(m) => m.export(&self.id, out),
        }
    }

    fn plugin_info(&self) -> Option<crate::metrics::PluginInfo> {
        let (type_name, records, size) = match &self.handle {
            InputHandle::Forward(m) => (
                "forward",
                crate::metrics::load(&m.emit_records),
                crate::metrics::load(&m.emit_size),
            ),
            InputHandle::Tail(m) => (
                "tail",
                crate::metrics::load(&m.emit_records),
                crate::metrics::load(&m.bytes_read),
            ),
            InputHandle::Sample(m) => ("sample", crate::metrics::load(&m.emit_records), 0),
            InputHandle::Tcp(m) => (
                "tcp",
                crate::metrics::load(&m.emit_records),
                crate::metrics::load(&m.emit_size),
            ),
            InputHandle::Syslog(m) => (
                "syslog",
                crate::metrics::load(&m.emit_records),
                crate::metrics::load(&m.emit_size),
            ),
            InputHandle::KafkaGroup(m) => (
                "kafka_group",
                crate::metrics::load(&m.emit_records),
                crate::metrics::load(&m.emit_size),
            ),
            InputHandle::Scribe(m) => (
                "scribe",
                crate::metrics::load(&m.emit_records),
                crate::metrics::load(&m.emit_size),
            ),
            InputHandle::Http(m) => (
                "http",
                crate::metrics::load(&m.emit_records),
                crate::metrics::load(&m.emit_size),
            ),
            InputHandle::Udp(m) => (
                "udp",
                crate::metrics::load(&m.emit_records),
                crate::metrics::load(&m.emit_size),
            ),
        };
        use crate::metrics::load;
        let mut fields = vec![
            ("emit_records", serde_json::json!(records)),
            ("emit_size", serde_json::json!(size)),
        ];
        match &self.handle {
            InputHandle::Http(m) => {
                let answers: serde_json::Map<String, serde_json::Value> = http::metrics::CODES
                    .iter()
                    .map(|c| (c.to_string(), m.answered_with(*c)))
                    .filter(|(_, n)| *n > 0)
                    .map(|(c, n)| (c, serde_json::json!(n)))
                    .collect();
                fields.push(("answers", serde_json::Value::Object(answers)));
                fields.push((
                    "connections",
                    serde_json::json!(load(&m.net.connections_active)),
                ));
            }
            InputHandle::KafkaGroup(m) => {
                let partitions: Vec<serde_json::Value> = m
                    .partitions()
                    .into_iter()
                    .map(|((topic, partition), s)| {
                        serde_json::json!({"topic": topic, "partition": partition, "lag": s.lag, "committed": s.committed, "stored": s.stored})
                    })
                    .collect();
                fields.push(("assigned", serde_json::json!(m.assignment())));
                fields.push(("partitions", serde_json::json!(partitions)));
                fields.push(("pauses", serde_json::json!(load(&m.pauses))));
                fields.push(("rebalances", serde_json::json!(load(&m.rebalances))));
            }
            InputHandle::Scribe(m) => {
                fields.push(("log_ok", serde_json::json!(load(&m.log_ok))));
                fields.push(("log_try_later", serde_json::json!(load(&m.log_try_later))));
                fields.push((
                    "connections",
                    serde_json::json!(load(&m.net.connections_active)),
                ));
            }
            InputHandle::Tcp(m) | InputHandle::Syslog(m) | InputHandle::Udp(m) => {
                let dropped = load(&m.oversize)
                    + load(&m.unparsed).saturating_sub(load(&m.unmatched_kept))
                    + load(&m.uncommitted);
                fields.push(("dropped", serde_json::json!(dropped)));
                fields.push((
                    "connections",
                    serde_json::json!(load(&m.net.connections_active)),
                ));
            }
            _ => {}
        }
        Some(crate::metrics::PluginInfo {
            plugin_id: self.id.clone(),
            category: "input",
            type_name,
            output_plugin: false,
            fields,
        })
    }
}
