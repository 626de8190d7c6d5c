//! `<service_discovery> @type srv`: the servers named by the DNS SRV records of
//! `_service._proto.hostname` (Fluentd's `sd_srv`, RFC 2782).
//!
//! - Records are ordered by priority (lowest first; the order of the answer within a
//!   priority). As in Fluentd, every record is a regular server: priority orders the list,
//!   the record's weight is the server's `weight`. A record of weight 0 is given weight 1 (RFC
//!   2782 gives weight 0 the smallest share; ferry's weight 0 would mean "never").
//! - With `dns_lookup true` (the default) a record's target is resolved to its first address
//!   through the same name server and the server's `host` is that address; its `name` is the
//!   target either way, so TLS verifies the certificate against the target's name.
//! - The name server: `dns_server_host` (`host` or `host:port`, port 53 by default), else the
//!   system's (`/etc/resolv.conf`). Answers are never cached by ferry.
//! - A lookup is bounded by `resolve_timeout` and runs in the discovery task only, never on a
//!   flush ([`super::watch`]). A failed or empty lookup keeps the last list.

use super::Service;
use ferry_config::Section;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use std::net::IpAddr;
use std::time::Duration;

/// A checked `<service_discovery> @type srv`.
#[derive(Debug, Clone)]
pub struct SrvSource {
    pub service: String,
    pub proto: String,
    pub hostname: String,
    /// `dns_server_host`: host (an address or a name) and port.
    pub dns_server: Option<(String, u16)>,
    pub interval: Duration,
    pub dns_lookup: bool,
    pub shared_key: Option<String>,
    pub username: String,
    pub password: String,
}

impl SrvSource {
    /// The name queried: `_service._proto.hostname`.
    pub fn target(&self) -> String {
        format!("_{}._{}.{}", self.service, self.proto, self.hostname)
    }
}

/// Why a lookup gave no list.
#[derive(Debug, thiserror::Error)]
pub enum SrvError {
    #[error("sd_srv: {target}: no answer within {}s", after.as_secs_f64())]
    Timeout { target: String, after: Duration },
    #[error("sd_srv: {target}: {message}")]
    Lookup { target: String, message: String },
    #[error("sd_srv: {target}: no SRV records")]
    Empty { target: String },
    #[error("sd_srv: {target}: cannot resolve the record's target {host}: {message}")]
    Address {
        target: String,
        host: String,
        message: String,
    },
    #[error("sd_srv: dns_server_host {host}: {message}")]
    NameServer { host: String, message: String },
}

/// `host`, `host:port` or an IPv6 address: the name server and its port.
fn name_server(value: &str) -> Result<(String, u16), String> {
    if value.parse::<IpAddr>().is_ok() {
        return Ok((value.to_string(), 53));
    }
    match value.split_once(':') {
        None => Ok((value.to_string(), 53)),
        Some((host, port)) => match port.parse::<u16>() {
            Ok(p) if p > 0 && !host.is_empty() => Ok((host.to_string(), p)),
            _ => Err(format!(
                "dns_server_host {value}: give host or host:port (port 1-65535)"
            )),
        },
    }
}

pub fn read_config(s: &Section<'_>) -> Option<SrvSource> {
    let service = s.required_str("service");
    let hostname = s.required_str("hostname");
    let proto = s.str_or("proto", "tcp");
    let dns_server = match s.str("dns_server_host").map(|v| name_server(&v)) {
        None => None,
        Some(Ok(server)) => Some(server),
        Some(Err(e)) => {
            s.error(Some("dns_server_host"), e);
            return None;
        }
    };
    let interval = s.u64_or("interval", 60);
    if interval == 0 {
        s.error(Some("interval"), "interval must be at least 1 (seconds)");
        return None;
    }
    let source = SrvSource {
        service: service?,
        proto,
        hostname: hostname?,
        dns_server,
        interval: Duration::from_secs(interval),
        dns_lookup: s.bool_or("dns_lookup", true),
        shared_key: s.str("shared_key"),
        username: s.str_or("username", ""),
        password: s.str_or("password", ""),
    };
    Some(source)
}

/// One SRV record as answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Without the trailing dot.
    pub target: String,
}

/// The records as services, ordered by priority; `host_of` gives each target's host.
pub fn services(
    source: &SrvSource,
    mut records: Vec<Record>,
    host_of: impl Fn(&str) -> String,
) -> Vec<Service> {
    records.sort_by_key(|r| r.priority);
    records
        .into_iter()
        .map(|r| Service {
            host: host_of(&r.target),
            port: r.port,
            name: Some(r.target),
            weight: u32::from(r.weight.max(1)),
            standby: false,
            shared_key: source.shared_key.clone(),
            username: source.username.clone(),
            password: source.password.clone(),
        })
        .collect()
}

/// A resolver for `source`, with no cache (every lookup asks the name server) and `limit` per
/// query.
pub async fn resolver(source: &SrvSource, limit: Duration) -> Result<TokioResolver, SrvError> {
    let mut builder = match &source.dns_server {
        None => TokioResolver::builder_tokio().map_err(|e| SrvError::NameServer {
            host: "(system)".into(),
            message: e.to_string(),
        })?,
        Some((host, port)) => {
            let ip = match host.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => first_address(host, *port, limit).await?,
            };
            let group = NameServerConfigGroup::from_ips_clear(&[ip], *port, true);
            let config = ResolverConfig::from_parts(None, vec![], group);
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        }
    };
    let mut opts = ResolverOpts::default();
    opts.timeout = limit;
    opts.attempts = 1;
    opts.cache_size = 0;
    *builder.options_mut() = opts;
    Ok(builder.build())
}

/// The name server's address when `dns_server_host` is a name (the system resolver, bounded).
async fn first_address(host: &str, port: u16, limit: Duration) -> Result<IpAddr, SrvError> {
    let fail = |message: String| SrvError::NameServer {
        host: host.to_string(),
        message,
    };
    match tokio::time::timeout(limit, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(fail(format!("no address within {}s", limit.as_secs_f64()))),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Ok(Ok(mut addrs)) => addrs
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| fail("no address".into())),
    }
}

/// Looks the records up and, with `dns_lookup`, their targets' addresses; all within `limit`.
pub async fn lookup(
    resolver: &TokioResolver,
    source: &SrvSource,
    limit: Duration,
) -> Result<Vec<Service>, SrvError> {
    let target = source.target();
    let work = async {
        let answer = resolver
            .srv_lookup(target.as_str())
            .await
            .map_err(|e| SrvError::Lookup {
                target: target.clone(),
                message: e.to_string(),
            })?;
        let records: Vec<Record> = answer
            .iter()
            .map(|r| Record {
                priority: r.priority(),
                weight: r.weight(),
                port: r.port(),
                target: r.target().to_utf8().trim_end_matches('.').to_string(),
            })
            .collect();
        if records.is_empty() {
            return Err(SrvError::Empty {
                target: target.clone(),
            });
        }
        let mut hosts: Vec<(String, String)> = Vec::new();
        if source.dns_lookup {
            for r in &records {
                if hosts.iter().any(|(t, _)| *t == r.target) {
                    continue;
                }
                let host = match r.target.parse::<IpAddr>() {
                    Ok(ip) => ip.to_string(),
                    Err(_) => address_of(resolver, &target, &r.target).await?,
                };
                hosts.push((r.target.clone(), host));
            }
        }
        Ok(services(source, records, |t| {
            hosts
                .iter()
                .find(|(name, _)| name == t)
                .map_or_else(|| t.to_string(), |(_, h)| h.clone())
        }))
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(SrvError::Timeout {
            target,
            after: limit,
        }),
    }
}

async fn address_of(
    resolver: &TokioResolver,
    target: &str,
    host: &str,
) -> Result<String, SrvError> {
    let fqdn = format!("{host}.");
    let fail = |message: String| SrvError::Address {
        target: target.to_string(),
        host: host.to_string(),
        message,
    };
    let answer = resolver
        .lookup_ip(fqdn.as_str())
        .await
        .map_err(|e| fail(e.to_string()))?;
    answer
        .iter()
        .next()
        .map(|ip| ip.to_string())
        .ok_or_else(|| fail("no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SrvSource {
        SrvSource {
            service: "fluentd".into(),
            proto: "tcp".into(),
            hostname: "example.test".into(),
            dns_server: None,
            interval: Duration::from_secs(60),
            dns_lookup: true,
            shared_key: Some("k".into()),
            username: "u".into(),
            password: "p".into(),
        }
    }

    fn record(priority: u16, weight: u16, port: u16, target: &str) -> Record {
        Record {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn records_are_ordered_by_priority_and_carry_their_weight_and_the_sections_credentials() {
        let got = services(
            &source(),
            vec![
                record(20, 5, 1002, "b.example.test"),
                record(10, 30, 1001, "a.example.test"),
                record(10, 0, 1003, "c.example.test"),
            ],
            |t| format!("ip-of-{t}"),
        );
        let seen: Vec<(&str, u16, u32)> = got
            .iter()
            .map(|s| (s.host.as_str(), s.port, s.weight))
            .collect();
        assert_eq!(
            seen,
            [
                ("ip-of-a.example.test", 1001, 30),
                ("ip-of-c.example.test", 1003, 1),
                ("ip-of-b.example.test", 1002, 5),
            ]
        );
        assert_eq!(got[0].name.as_deref(), Some("a.example.test"));
        assert!(got.iter().all(|s| s.shared_key.as_deref() == Some("k")
            && s.username == "u"
            && s.password == "p"
            && !s.standby));
    }

    #[test]
    fn the_name_server_is_a_host_or_host_and_port() {
        assert_eq!(name_server("10.0.0.2"), Ok(("10.0.0.2".into(), 53)));
        assert_eq!(
            name_server("127.0.0.1:8600"),
            Ok(("127.0.0.1".into(), 8600))
        );
        assert_eq!(
            name_server("ns.example:5353"),
            Ok(("ns.example".into(), 5353))
        );
        assert_eq!(name_server("::1"), Ok(("::1".into(), 53)));
        assert!(name_server("127.0.0.1:x").is_err());
        assert!(name_server("127.0.0.1:0").is_err());
    }

    #[test]
    fn every_parameter_is_read_into_the_srv_source() {
        let read = |body: &str| {
            crate::plugin::read_section(
                &format!("<service_discovery>\n{body}</service_discovery>\n"),
                read_config,
            )
        };
        let s = read(
            "service fluentd\nproto udp\nhostname example.test\ndns_server_host 127.0.0.1:8600\n\
             interval 5\ndns_lookup false\nshared_key k\nusername u\npassword p\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.target(), "_fluentd._udp.example.test");
        assert_eq!(s.dns_server, Some(("127.0.0.1".into(), 8600)));
        assert_eq!(s.interval, Duration::from_secs(5));
        assert!(!s.dns_lookup);
        assert_eq!(
            (
                s.shared_key.as_deref(),
                s.username.as_str(),
                s.password.as_str()
            ),
            (Some("k"), "u", "p")
        );
        let d = read("service fluentd\nhostname example.test\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                d.proto.as_str(),
                d.dns_server.clone(),
                d.interval,
                d.dns_lookup
            ),
            ("tcp", None, Duration::from_secs(60), true),
            "Fluentd's defaults"
        );
        let errs = read("hostname example.test\ninterval 0\n").unwrap_err();
        assert!(errs.iter().any(|e| e.contains("service")), "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.contains("interval must be at least 1")),
            "{errs:?}"
        );
    }

    #[test]
    fn the_query_is_rfc_2782s_name() {
        assert_eq!(source().target(), "_fluentd._tcp.example.test");
    }
}
