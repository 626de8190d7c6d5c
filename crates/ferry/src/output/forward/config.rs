//! `<match> @type forward`: parameters with Fluentd's names and defaults, plus ferry's own
//! (`max_request_size`, `resolve_timeout`, `standby_policy`). Everything is checked here, before
//! anything connects: TLS files are read and each server's TLS client is built, so
//! `ferry --dry-run` reports an unreadable certificate with its file and line.

use super::discovery::{self, SourceConfig};
use super::server::read_server;
pub use super::server::{Secret, ServerConfig};
use crate::tls::client::{self as tls, TlsOptions, TlsVersion};
use ferry_config::{ByteSize, Section};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest request sent to a server when `max_request_size` is not set, with
/// `require_ack_response`: chunks are cut into requests of at most this size on append
/// boundaries. A crash re-sends the requests in flight, so this bounds the duplicates a crash
/// causes; 1 MiB measured as fast as 8 MiB in the two-tier benchmark with file buffers
/// (docs/benchmarks.md, scenario 8).
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 1024 * 1024;
/// The same without acks: requests go one after the other, each on its own connection unless
/// `keepalive`, so they stay large (Fluentd's memory chunks are 8 MiB; Fluent Bit's in_forward
/// refuses more than 6 MB by default).
pub const DEFAULT_MAX_REQUEST_SIZE_NO_ACK: u64 = 8 * 1024 * 1024;

/// `transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
}

/// `heartbeat_type`: how a server's liveness is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatType {
    /// A successful connection (with TLS and handshake when configured) is a heartbeat. With
    /// `keepalive`, an idle cached connection is probed by writing a msgpack `nil` (ignored by
    /// receivers) instead of opening a new connection: cheaper, but it proves the peer's kernel
    /// and the connection alive, not that the peer process is responsive.
    Transport,
    /// A datagram `0x00` to the server's port; the peer process answers `0x00`. Detects a hung
    /// process (SIGSTOP, a blocked event loop); lost datagrams raise phi on lossy networks.
    Udp,
    /// No probes: every server is always considered healthy (for a load balancer in front).
    None,
}

/// `standby_policy` (ferry): when `standby` servers take load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandbyPolicy {
    /// Standby servers take load only while no regular server is healthy. Gains: standby
    /// aggregators stay idle as long as any regular one works. Loses: the surviving regular
    /// servers carry the lost share.
    WhenAllDown,
    /// Fluentd's rule: available standby servers are promoted one by one until they cover
    /// the weight of the regular servers that are down. Gains: capacity stays constant.
    /// Loses: a standby takes load as soon as any one regular server is down.
    CoverLostWeight,
}

/// `<security>`: the shared-key handshake, as the client.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    pub self_hostname: String,
    pub shared_key: Secret,
}

/// `compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    Text,
    Gzip,
}

/// A checked `@type forward` output.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// `<server>`s and the services of `<service_discovery> @type static`.
    pub servers: Vec<ServerConfig>,
    /// The `<service_discovery>`s whose lists change while ferry runs (file, srv).
    pub discovery: Vec<SourceConfig>,
    /// The TLS parameters, loaded (`transport tls`): discovered servers get their TLS client
    /// from them.
    pub tls: Option<TlsOptions>,
    pub transport: Transport,
    pub send_timeout: Duration,
    pub connect_timeout: Option<Duration>,
    pub heartbeat_type: HeartbeatType,
    pub heartbeat_interval: Duration,
    pub recover_wait: Duration,
    pub hard_timeout: Duration,
    pub phi_threshold: f64,
    pub phi_failure_detector: bool,
    pub require_ack_response: bool,
    pub ack_response_timeout: Duration,
    /// `None`: cache until a connect fails or the server is detached; `Some(0)`: never cache.
    pub expire_dns_cache: Option<Duration>,
    pub dns_round_robin: bool,
    pub ignore_network_errors_at_startup: bool,
    pub verify_connection_at_startup: bool,
    pub compress: Compress,
    pub keepalive: bool,
    pub keepalive_timeout: Option<Duration>,
    pub send_keepalive_packet: bool,
    pub time_as_integer: bool,
    pub security: Option<SecurityConfig>,
    pub max_request_size: u64,
    pub resolve_timeout: Duration,
    pub standby_policy: StandbyPolicy,
}

impl ForwardConfig {
    /// Fluentd's defaults with `servers`; for tests and programmatic use.
    pub fn with_servers(servers: Vec<ServerConfig>) -> Self {
        Self {
            servers,
            discovery: Vec::new(),
            tls: None,
            transport: Transport::Tcp,
            send_timeout: Duration::from_secs(60),
            connect_timeout: None,
            heartbeat_type: HeartbeatType::Transport,
            heartbeat_interval: Duration::from_secs(1),
            recover_wait: Duration::from_secs(10),
            hard_timeout: Duration::from_secs(60),
            phi_threshold: 16.0,
            phi_failure_detector: true,
            require_ack_response: false,
            ack_response_timeout: Duration::from_secs(190),
            expire_dns_cache: None,
            dns_round_robin: false,
            ignore_network_errors_at_startup: false,
            verify_connection_at_startup: false,
            compress: Compress::Text,
            keepalive: false,
            keepalive_timeout: None,
            send_keepalive_packet: false,
            time_as_integer: false,
            security: None,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE_NO_ACK,
            resolve_timeout: Duration::from_secs(5),
            standby_policy: StandbyPolicy::WhenAllDown,
        }
    }

    /// The bound on one connection attempt: `connect_timeout`, else `send_timeout`.
    pub fn connect_limit(&self) -> Duration {
        self.connect_timeout.unwrap_or(self.send_timeout)
    }

    /// Reads the output's parameters and `<server>`, `<security>` sections (the caller reads
    /// `<buffer>` and `<secondary>`).
    pub fn from_section(section: &Section<'_>) -> Self {
        let mut c = Self::with_servers(Vec::new());
        let s = section;
        c.transport = match s.enum_or("transport", &["tcp", "tls"], "tcp") {
            "tls" => Transport::Tls,
            _ => Transport::Tcp,
        };
        c.send_timeout = s.duration_or("send_timeout", c.send_timeout);
        c.connect_timeout = s.opt_duration("connect_timeout");
        c.heartbeat_type = match s.enum_or(
            "heartbeat_type",
            &["transport", "tcp", "udp", "none"],
            "transport",
        ) {
            "udp" => HeartbeatType::Udp,
            "none" => HeartbeatType::None,
            _ => HeartbeatType::Transport,
        };
        c.heartbeat_interval = s.duration_or("heartbeat_interval", c.heartbeat_interval);
        if c.heartbeat_interval.is_zero() {
            s.error(
                Some("heartbeat_interval"),
                "heartbeat_interval must be above 0",
            );
            c.heartbeat_interval = Duration::from_secs(1);
        }
        c.recover_wait = s.duration_or("recover_wait", c.recover_wait);
        c.hard_timeout = s.duration_or("hard_timeout", c.hard_timeout);
        c.phi_threshold = s.f64_or("phi_threshold", c.phi_threshold);
        c.phi_failure_detector = s.bool_or("phi_failure_detector", true);
        c.require_ack_response = s.bool_or("require_ack_response", false);
        c.ack_response_timeout = s.duration_or("ack_response_timeout", c.ack_response_timeout);
        // Fluentd polls sockets with these; ferry's reads are event-driven and bounded.
        let _ = s.opt_u64("read_interval_msec");
        let _ = s.opt_size("read_length");
        let replies = "ferry reads acks and handshake replies as they arrive, whatever their size";
        s.no_effect("read_interval_msec", replies);
        s.no_effect("read_length", replies);
        c.expire_dns_cache = s.opt_duration("expire_dns_cache");
        c.dns_round_robin = s.bool_or("dns_round_robin", false);
        if c.dns_round_robin && c.heartbeat_type == HeartbeatType::Udp {
            s.error(
                Some("dns_round_robin"),
                "heartbeat_type must be 'transport' or 'none' when dns_round_robin is enabled",
            );
        }
        c.ignore_network_errors_at_startup = s.bool_or("ignore_network_errors_at_startup", false);
        c.verify_connection_at_startup = s.bool_or("verify_connection_at_startup", false);
        c.compress = match s.enum_or("compress", &["text", "gzip", "zstd"], "text") {
            "gzip" => Compress::Gzip,
            "zstd" => {
                s.error(
                    Some("compress"),
                    "compress zstd is not available for the forward output (use gzip)",
                );
                Compress::Text
            }
            _ => Compress::Text,
        };
        c.keepalive = s.bool_or("keepalive", false);
        c.keepalive_timeout = s.opt_duration("keepalive_timeout");
        c.send_keepalive_packet = s.bool_or("send_keepalive_packet", false);
        if c.send_keepalive_packet && !c.keepalive {
            s.error(
                Some("send_keepalive_packet"),
                "send_keepalive_packet needs keepalive true",
            );
        }
        c.time_as_integer = s.bool_or("time_as_integer", false);
        let default_max = if c.require_ack_response {
            DEFAULT_MAX_REQUEST_SIZE
        } else {
            DEFAULT_MAX_REQUEST_SIZE_NO_ACK
        };
        c.max_request_size = s.size_or("max_request_size", ByteSize(default_max)).0;
        if c.max_request_size < 1024 || c.max_request_size > u64::from(u32::MAX) {
            s.error(
                Some("max_request_size"),
                "max_request_size must be between 1k and 4g",
            );
            c.max_request_size = default_max;
        }
        c.resolve_timeout = s.duration_or("resolve_timeout", c.resolve_timeout);
        c.standby_policy = match s.enum_or(
            "standby_policy",
            &["when_all_down", "cover_lost_weight"],
            "when_all_down",
        ) {
            "cover_lost_weight" => StandbyPolicy::CoverLostWeight,
            _ => StandbyPolicy::WhenAllDown,
        };
        c.security = s.child("security").map(|sec| {
            let cfg = SecurityConfig {
                self_hostname: sec.required_str("self_hostname").unwrap_or_default(),
                shared_key: Secret(sec.required_str("shared_key").unwrap_or_default()),
            };
            sec.finish();
            cfg
        });
        let tls = read_tls(s, c.transport);
        for server in s.children("server") {
            if let Some(sc) = read_server(&server, tls.as_ref()) {
                c.servers.push(sc);
            }
            server.finish();
        }
        let refused = discovery::read(s, tls.as_ref(), &mut c.servers, &mut c.discovery);
        let known = c.servers.len() + c.discovery.iter().map(|d| d.initial().len()).sum::<usize>();
        let later = c.discovery.iter().any(SourceConfig::is_looked_up);
        if known == 0 && !later && refused == 0 {
            s.error(
                None,
                "the forward output needs at least one server: add <server> or <service_discovery>",
            );
        }
        c.tls = tls;
        c
    }
}

fn read_tls(s: &Section<'_>, transport: Transport) -> Option<TlsOptions> {
    let (version, max_version) =
        crate::tls::read_versions(s, "tls_version", "tls_min_version", "tls_max_version");
    // An OpenSSL cipher list, read as OpenSSL reads it for TLS 1.2 (TLS 1.3 suites are not
    // chosen by it). Fluentd's default, `ALL:!aNULL:!eNULL:!SSLv2`, selects every suite ferry has.
    let ciphers = s.str("tls_ciphers");
    if let Some(list) = &ciphers
        && version == TlsVersion::Tls12
        && let Err(e) = crate::tls::check_cipher_list("tls_ciphers", list)
    {
        s.error(Some("tls_ciphers"), e);
    }
    let mut ca = s.array("tls_cert_path").unwrap_or_default();
    ca.extend(s.array("tls_ca_cert_path").unwrap_or_default());
    let options = TlsOptions {
        params: tls::TlsParams::FORWARD,
        version,
        max_version,
        ca_paths: ca.into_iter().map(PathBuf::from).collect(),
        client_cert: s.str("tls_client_cert_path").map(PathBuf::from),
        client_key: s.str("tls_client_private_key_path").map(PathBuf::from),
        verify_hostname: s.bool_or("tls_verify_hostname", true),
        insecure: s.bool_or("tls_insecure_mode", false),
        allow_self_signed: s.bool_or("tls_allow_self_signed_cert", false),
        ciphers,
        material: None,
    };
    if s.has("tls_client_private_key_passphrase") {
        s.error(
            Some("tls_client_private_key_passphrase"),
            "encrypted private keys are not supported: give an unencrypted PEM key",
        );
    }
    for windows in [
        "tls_cert_thumbprint",
        "tls_cert_logical_store_name",
        "tls_cert_use_enterprise_store",
    ] {
        if s.has(windows) {
            s.error(
                Some(windows),
                "the Windows certificate store is not supported",
            );
        }
    }
    if options.client_cert.is_some() != options.client_key.is_some() {
        s.error(
            None,
            "tls_client_cert_path and tls_client_private_key_path go together",
        );
    }
    if transport != Transport::Tls {
        return None;
    }
    match tls::load(&options) {
        Ok(material) => Some(TlsOptions {
            material: Some(Arc::new(material)),
            ..options
        }),
        Err(e) => {
            s.error(None, format!("transport tls: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::read_section;

    fn read(body: &str) -> Result<ForwardConfig, Vec<String>> {
        read_section(
            &format!("<match>\n{body}\n</match>\n"),
            ForwardConfig::from_section,
        )
    }

    #[test]
    fn every_parameter_is_read_into_the_forward_config() {
        let c = read(
            "send_timeout 7s\nconnect_timeout 3s\nheartbeat_type udp\nheartbeat_interval 2s\n\
             recover_wait 20s\nhard_timeout 30s\nphi_threshold 8\nphi_failure_detector false\n\
             require_ack_response true\nack_response_timeout 40s\nexpire_dns_cache 15s\n\
             ignore_network_errors_at_startup true\nverify_connection_at_startup true\n\
             compress gzip\nkeepalive true\nkeepalive_timeout 50s\nsend_keepalive_packet true\n\
             time_as_integer true\nmax_request_size 2m\nresolve_timeout 1s\n\
             standby_policy cover_lost_weight\n\
             <security>\nself_hostname fwd\nshared_key k\n</security>\n\
             <server>\nhost agg.example\nport 24225\nname a\nweight 10\nstandby true\n\
             shared_key sk\nusername u\npassword p\n</server>",
        )
        .unwrap();
        assert_eq!(c.send_timeout, Duration::from_secs(7));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.heartbeat_type, HeartbeatType::Udp);
        assert_eq!(c.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(c.recover_wait, Duration::from_secs(20));
        assert_eq!(c.hard_timeout, Duration::from_secs(30));
        assert_eq!(c.phi_threshold, 8.0);
        assert!(!c.phi_failure_detector);
        assert!(c.require_ack_response);
        assert_eq!(c.ack_response_timeout, Duration::from_secs(40));
        assert_eq!(c.expire_dns_cache, Some(Duration::from_secs(15)));
        assert!(c.ignore_network_errors_at_startup && c.verify_connection_at_startup);
        assert_eq!(c.compress, Compress::Gzip);
        assert!(c.keepalive && c.send_keepalive_packet);
        assert_eq!(c.keepalive_timeout, Some(Duration::from_secs(50)));
        assert!(c.time_as_integer);
        assert_eq!(c.max_request_size, 2 * 1024 * 1024);
        assert_eq!(c.resolve_timeout, Duration::from_secs(1));
        assert_eq!(c.standby_policy, StandbyPolicy::CoverLostWeight);
        let security = c.security.unwrap();
        assert_eq!(
            (
                security.self_hostname.as_str(),
                security.shared_key.0.as_str()
            ),
            ("fwd", "k")
        );
        let s = &c.servers[0];
        assert_eq!(
            (s.host.as_str(), s.port, s.name.as_str()),
            ("agg.example", 24225, "a")
        );
        assert_eq!((s.weight, s.standby), (10, true));
        assert_eq!(s.shared_key.as_ref().map(|k| k.0.as_str()), Some("sk"));
        assert_eq!((s.username.as_str(), s.password.0.as_str()), ("u", "p"));
        let dns = read("dns_round_robin true\n<server>\nhost a\n</server>").unwrap();
        assert!(dns.dns_round_robin);
        assert_eq!(
            dns.servers[0].name, "a:24224",
            "a server is named host:port by default"
        );
    }

    #[test]
    fn encrypted_keys_and_the_windows_certificate_store_are_refused() {
        for (line, want) in [
            (
                "tls_client_private_key_passphrase x",
                "encrypted private keys",
            ),
            ("tls_cert_thumbprint ab12", "Windows certificate store"),
            (
                "tls_cert_logical_store_name MY",
                "Windows certificate store",
            ),
            (
                "tls_cert_use_enterprise_store true",
                "Windows certificate store",
            ),
        ] {
            let errs = read(&format!("{line}\n<server>\nhost a\n</server>")).unwrap_err();
            assert!(
                errs.iter()
                    .any(|e| e.starts_with("test.conf:2:") && e.contains(want)),
                "{line}: {errs:?}"
            );
        }
    }
}
