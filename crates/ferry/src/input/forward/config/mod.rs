//! `<source> @type forward`: parameters, read with Fluentd's names and defaults, plus ferry's own
//! limits. Everything is checked here, before anything binds; files (certificates, keys) are
//! read at start-up by [`crate::input::net::tls`].
//!
//! | module | sections |
//! |---|---|
//! | this one | the `<source>` parameters |
//! | [`security`] | `<security>`, `<user>`, `<client>` |
//! | [`crate::input::net::config`] | `<transport tls>` (shared by every network input) |

mod security;

pub use crate::input::net::acl::{ClientSource, Network};
pub use crate::input::net::config::{TlsConfig, TlsVersion, TransportConfig};
pub use security::{ClientConfig, SecurityConfig, UserConfig};

use ferry_config::{ByteSize, Section};
use std::path::PathBuf;
use std::time::Duration;

/// The largest request accepted when `chunk_size_limit` is not set: Fluentd's largest default
/// chunk (a file buffer's `chunk_limit_size`), so default forwarders are never refused.
pub const DEFAULT_MAX_REQUEST: u64 = 256 * 1024 * 1024;
/// Default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;
/// Default `handshake_timeout`: from accept to the end of the TLS and shared-key handshakes.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `resolve_timeout`: the longest a request waits for its peer's reverse DNS name.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

pub use crate::plugin::Secret;

/// `<source> @type forward`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardInputConfig {
    pub bind: String,
    pub port: u16,
    /// False when only `unix_path` is given: no TCP listener and no UDP heartbeat socket.
    pub listen_tcp: bool,
    /// `backlog`: the kernel's accept queue length (tokio's 1024 when unset).
    pub backlog: Option<u32>,
    /// `unix_path` (Fluent Bit's name): also listen on this Unix socket.
    pub unix_path: Option<PathBuf>,
    /// `unix_perm`: octal permissions of the socket file (`0660`).
    pub unix_perm: Option<u32>,
    pub label: Option<String>,
    /// `tag`: replaces every incoming tag.
    pub tag: Option<String>,
    /// `add_tag_prefix`: `prefix.` + incoming tag.
    pub add_tag_prefix: Option<String>,
    pub chunk_size_limit: Option<ByteSize>,
    pub chunk_size_warn_limit: Option<ByteSize>,
    pub decompression_size_limit: ByteSize,
    /// `source_address_key`: add the peer's IP address to every record under this key.
    pub source_address_key: Option<String>,
    /// `source_hostname_key`: add the peer's reverse-DNS name to every record under this key.
    pub source_hostname_key: Option<String>,
    /// `resolve_hostname`: true when `source_hostname_key` is set, the only thing peers' names
    /// are looked up for (log lines show addresses); `true` without it is noted as without effect.
    pub resolve_hostname: bool,
    /// `resolve_timeout` (ferry): the longest a request waits for its peer's name.
    pub resolve_timeout: Duration,
    /// `deny_keepalive`: close each connection after its first request.
    pub deny_keepalive: bool,
    /// `send_keepalive_packet`: TCP keepalive probes on accepted connections.
    pub send_keepalive_packet: bool,
    /// `max_connections` (ferry): connections served at once; more wait in the backlog.
    /// `None`: [`DEFAULT_MAX_CONNECTIONS`], lowered at start-up to fit the open file limit.
    pub max_connections: Option<usize>,
    /// `idle_timeout` (ferry): close a connection that sent nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// `handshake_timeout` (ferry): TLS plus shared-key handshake must finish within this.
    pub handshake_timeout: Duration,
    pub security: Option<SecurityConfig>,
    pub transport: TransportConfig,
}

impl ForwardInputConfig {
    pub fn from_section(section: &Section<'_>) -> Self {
        let port_given = section.has("port") || section.has("bind");
        let port = section.u64_or("port", 24224);
        let port = u16::try_from(port).unwrap_or_else(|_| {
            section.error(
                Some("port"),
                format!("port {port} is out of range (0-65535)"),
            );
            24224
        });
        let unix_path = section.str("unix_path").map(PathBuf::from);
        let unix_perm = section.str("unix_perm").and_then(|p| {
            let digits = p.trim().trim_start_matches("0o");
            match u32::from_str_radix(digits, 8) {
                Ok(v) if v <= 0o7777 => Some(v),
                _ => {
                    section.error(
                        Some("unix_perm"),
                        format!("unix_perm '{p}' is not an octal file mode (e.g. 0660)"),
                    );
                    None
                }
            }
        });
        if unix_perm.is_some() && unix_path.is_none() {
            section.error(Some("unix_perm"), "unix_perm needs unix_path");
        }
        let backlog = section.opt_u64("backlog").map(|b| {
            u32::try_from(b).unwrap_or_else(|_| {
                section.error(Some("backlog"), "backlog is too large");
                1024
            })
        });
        let source_hostname_key = section.str("source_hostname_key");
        let resolve_hostname = match section.opt_bool("resolve_hostname") {
            Some(false) if source_hostname_key.is_some() => {
                section.error(
                    Some("resolve_hostname"),
                    "resolve_hostname false cannot be combined with source_hostname_key",
                );
                true
            }
            Some(v) => v,
            None => source_hostname_key.is_some(),
        };
        if resolve_hostname && source_hostname_key.is_none() {
            section.no_effect(
                "resolve_hostname",
                "peers' names are looked up only for source_hostname_key; log lines name peers by address",
            );
        }
        let max_connections = section.opt_u64("max_connections");
        if max_connections == Some(0) {
            section.error(
                Some("max_connections"),
                "max_connections must be at least 1",
            );
        }
        let idle_timeout = section
            .opt_duration("idle_timeout")
            .filter(|d| !d.is_zero());
        let handshake_timeout = section.duration_or("handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT);
        if handshake_timeout.is_zero() {
            section.error(
                Some("handshake_timeout"),
                "handshake_timeout must be greater than 0",
            );
        }
        // `linger_timeout` is accepted for Fluentd configurations: ferry always closes with a
        // FIN after its last reply was written (see docs/forward-input.md).
        let _ = section.opt_duration("linger_timeout");
        section.no_effect_unless(
            "skip_invalid_event",
            true,
            "ferry always skips an invalid event (bad time, record not a map) and counts it in ferry_forward_input_invalid_events_total",
        );
        section.no_effect(
            "linger_timeout",
            "after its last reply ferry sends a FIN and drains what the client still sends, so the reply is not lost to a reset",
        );
        let cfg = Self {
            bind: section.str_or("bind", "0.0.0.0"),
            port,
            listen_tcp: unix_path.is_none() || port_given,
            backlog,
            unix_path,
            unix_perm,
            label: section.label().map(str::to_string),
            tag: section.str("tag"),
            add_tag_prefix: section.str("add_tag_prefix"),
            chunk_size_limit: section.opt_size("chunk_size_limit"),
            chunk_size_warn_limit: section.opt_size("chunk_size_warn_limit"),
            decompression_size_limit: section
                .size_or("decompression_size_limit", ByteSize(256 * 1024 * 1024)),
            source_address_key: section.str("source_address_key"),
            source_hostname_key,
            resolve_hostname,
            resolve_timeout: section.duration_or("resolve_timeout", DEFAULT_RESOLVE_TIMEOUT),
            deny_keepalive: section.bool_or("deny_keepalive", false),
            send_keepalive_packet: section.bool_or("send_keepalive_packet", false),
            max_connections: max_connections
                .map(|n| usize::try_from(n.max(1)).unwrap_or(usize::MAX)),
            idle_timeout,
            handshake_timeout: if handshake_timeout.is_zero() {
                DEFAULT_HANDSHAKE_TIMEOUT
            } else {
                handshake_timeout
            },
            security: section.child("security").map(security::read),
            transport: section
                .child("transport")
                .map(crate::input::net::config::read)
                .unwrap_or_default(),
        };
        if let (Some(limit), Some(warn)) = (cfg.chunk_size_limit, cfg.chunk_size_warn_limit)
            && warn > limit
        {
            section.error(
                Some("chunk_size_warn_limit"),
                "chunk_size_warn_limit is larger than chunk_size_limit",
            );
        }
        cfg
    }

    /// The largest request a peer may send before the connection is refused.
    pub fn max_request(&self) -> u64 {
        self.chunk_size_limit.map_or(DEFAULT_MAX_REQUEST, |s| s.0)
    }

    /// True when records get the peer's address or name (the one case the input rewrites
    /// entries besides a time of 0).
    pub fn injects_source(&self) -> bool {
        self.source_address_key.is_some() || self.source_hostname_key.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::InputConfig;

    fn parse(source: &str) -> Result<ForwardInputConfig, String> {
        let text = format!(
            "<source>\n@type forward\n{source}\n</source>\n<match **>\n@type null\n</match>\n"
        );
        let root = ferry_config::parse_str(&text, "t.conf").map_err(|e| e.to_string())?;
        let cfg = crate::pipeline::build(&root).map_err(|e| e.to_string())?;
        match cfg.sources[0].input.clone() {
            InputConfig::Forward(f) => Ok(*f),
            other => Err(format!("not a forward input: {other:?}")),
        }
    }

    #[test]
    fn security_transport_and_ferry_limits_are_read() {
        let cfg = parse(
            "port 0\nmax_connections 50\nidle_timeout 5m\nhandshake_timeout 3s\nsource_hostname_key host\n\
             <security>\nself_hostname me\nshared_key k\nuser_auth true\nallow_anonymous_source false\n\
             <user>\nusername a\npassword p\n</user>\n\
             <client>\nnetwork 10.0.0.0/8\nshared_key ck\nusers a\n</client>\n</security>\n\
             <transport tls>\ncert_path /c.pem\nprivate_key_path /k.pem\nversion TLSv1_3\nclient_cert_auth true\nca_path /ca.pem\n</transport>",
        )
        .unwrap();
        assert_eq!(cfg.max_connections, Some(50));
        assert_eq!(cfg.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(cfg.handshake_timeout, Duration::from_secs(3));
        assert!(cfg.resolve_hostname);
        let sec = cfg.security.unwrap();
        assert!(sec.user_auth && !sec.allow_anonymous_source);
        assert_eq!(sec.users[0].username, "a");
        assert_eq!(
            sec.clients[0].users.as_deref(),
            Some(&["a".to_string()][..])
        );
        assert!(
            !format!("{sec:?}").contains("\"k\""),
            "secrets are not printed"
        );
        let TransportConfig::Tls(tls) = cfg.transport else {
            panic!("not tls")
        };
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert!(tls.client_cert_auth);
        assert_eq!(parse("").unwrap().max_connections, None);
        assert_eq!(parse("").unwrap().idle_timeout, None);
    }

    #[test]
    fn mistakes_are_reported_with_their_line() {
        for (source, want) in [
            (
                "<security>\nself_hostname me\n</security>",
                "missing required parameter 'shared_key'",
            ),
            (
                "<security>\nself_hostname me\nshared_key k\n<client>\nhost a\nnetwork 10.0.0.0/8\n</client>\n</security>",
                "both of 'host' and 'network'",
            ),
            (
                "<security>\nself_hostname me\nshared_key k\nuser_auth true\n</security>",
                "at least one <user>",
            ),
            (
                "<transport tls>\ncert_path a\nprivate_key_path b\nciphers AES128-SHA:kRSA\n</transport>",
                "selects none of the TLS 1.2 cipher suites ferry has",
            ),
            (
                "<transport tls>\ncert_path a\nprivate_key_path b\nensure_fips true\n</transport>",
                "not FIPS-validated",
            ),
            (
                "<transport tls>\ncert_path a\nprivate_key_path b\nprivate_key_passphrase p\n</transport>",
                "ferry does not decrypt private keys",
            ),
            (
                "<transport tls>\ncert_path a\nprivate_key_path b\nclient_cert_auth true\n</transport>",
                "needs ca_path",
            ),
            (
                "<transport tls>\nprivate_key_path b\n</transport>",
                "no certificate: give cert_path and private_key_path, or insecure true",
            ),
            (
                "<transport tls>\ncert_path a\nprivate_key_path b\nca_cert_path c\n</transport>",
                "does not sign certificates with a CA",
            ),
            ("unix_path /s\nunix_perm 999", "octal"),
            ("max_connections 0", "at least 1"),
            (
                "resolve_hostname false\nsource_hostname_key h",
                "resolve_hostname false",
            ),
            (
                "chunk_size_limit 1k\nchunk_size_warn_limit 2k",
                "larger than chunk_size_limit",
            ),
        ] {
            let err = parse(source).unwrap_err();
            assert!(err.contains(want), "{source}: {err}");
            assert!(err.contains("t.conf:"), "{err}");
        }
    }

    #[test]
    fn ca_signing_and_cert_verifier_are_refused_and_generate_parameters_follow_insecure() {
        for (key, why) in [
            ("ca_cert_path", "does not sign certificates with a CA"),
            (
                "ca_private_key_path",
                "does not sign certificates with a CA",
            ),
            (
                "ca_private_key_passphrase",
                "does not sign certificates with a CA",
            ),
            ("cert_verifier", "names Ruby code to run"),
        ] {
            let err = parse(&format!(
                "<transport tls>\ncert_path a\nprivate_key_path b\n{key} x\n</transport>"
            ))
            .unwrap_err();
            assert!(err.contains("t.conf:6:") && err.contains(why), "{err}");
        }
        let generate = "generate_private_key_length 4096\ngenerate_cert_country JP\ngenerate_cert_state Tokyo\n\
                        generate_cert_locality Chiyoda\ngenerate_cert_common_name agg\ngenerate_cert_expiration 1d\n\
                        generate_cert_digest sha384";
        // With insecure and no files they make the certificate; with files they have no effect.
        let cfg = parse(&format!(
            "<transport tls>\ninsecure true\n{generate}\n</transport>"
        ))
        .unwrap();
        let TransportConfig::Tls(tls) = cfg.transport else {
            panic!("tls")
        };
        assert_eq!(
            tls.cert,
            crate::input::net::config::ServerCert::SelfSigned(crate::tls::Generate {
                country: "JP".into(),
                state: "Tokyo".into(),
                locality: "Chiyoda".into(),
                common_name: Some("agg".into()),
                expiration: std::time::Duration::from_secs(86_400),
                digest: crate::tls::Digest::Sha384,
            })
        );
        // Where no certificate is made they are refused, as is insecure with a certificate.
        let err = parse(&format!(
            "<transport tls>\ncert_path a\nprivate_key_path b\n{generate}\n</transport>"
        ))
        .unwrap_err();
        assert!(
            err.contains("t.conf:6: 'generate_private_key_length' makes a certificate only with insecure true"),
            "{err}"
        );
        let err =
            parse("<transport tls>\ncert_path a\nprivate_key_path b\ninsecure true\n</transport>")
                .unwrap_err();
        assert!(err.contains("TLS below 1.2 or weak ciphers"), "{err}");
        for fine in ["insecure false", "ensure_fips false"] {
            assert!(
                parse(&format!(
                    "<transport tls>\ncert_path a\nprivate_key_path b\n{fine}\n</transport>"
                ))
                .is_ok(),
                "{fine}"
            );
        }
    }

    #[test]
    fn resolve_hostname_without_source_hostname_key_is_noted_as_without_effect() {
        let text = "<source>\n@type forward\nresolve_hostname true\n</source>\n<match **>\n@type null\n</match>\n";
        let root = ferry_config::parse_str(text, "t.conf").unwrap();
        let cfg = crate::pipeline::build(&root).unwrap();
        assert_eq!(cfg.notes.len(), 1, "{:?}", cfg.notes);
        assert!(
            cfg.notes[0].starts_with("t.conf:3: 'resolve_hostname' has no effect"),
            "{:?}",
            cfg.notes
        );
        let with_key = text.replace(
            "resolve_hostname true",
            "resolve_hostname true\nsource_hostname_key h",
        );
        let root = ferry_config::parse_str(&with_key, "t.conf").unwrap();
        assert!(crate::pipeline::build(&root).unwrap().notes.is_empty());
    }
}
