//! `<transport>` of a network input: `tcp` (the default) or `tls` with its certificate files
//! and versions, as Fluentd's server plugin helper reads it.

use ferry_config::Section;
use std::path::PathBuf;

/// `<transport>`: `tcp` (the default) or `tls`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum TransportConfig {
    #[default]
    Tcp,
    Tls(TlsConfig),
}

pub use crate::tls::TlsVersion;

/// `<transport tls>`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub cert: ServerCert,
    pub ca_path: Option<PathBuf>,
    pub client_cert_auth: bool,
    /// `version` / `min_version`: the lowest version accepted.
    pub min_version: TlsVersion,
    /// `max_version`: the highest version accepted.
    pub max_version: TlsVersion,
    /// `ciphers`: an OpenSSL cipher list choosing the TLS 1.2 suites accepted.
    pub ciphers: Option<String>,
}

/// The server's certificate: files, or one made at start.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerCert {
    /// `cert_path` and `private_key_path`.
    Files {
        cert_path: PathBuf,
        private_key_path: PathBuf,
    },
    /// `insecure true` without `cert_path`: a self-signed certificate made at start from the
    /// `generate_*` parameters, as Fluentd makes one.
    SelfSigned(crate::tls::Generate),
}

/// The `generate_*` parameters: read with `insecure true` and no `cert_path`, where they make
/// the certificate. Elsewhere Fluentd ignores them; ferry refuses them ([`refuse_generate`]).
const GENERATE: &[&str] = &[
    "generate_private_key_length",
    "generate_cert_country",
    "generate_cert_state",
    "generate_cert_locality",
    "generate_cert_common_name",
    "generate_cert_expiration",
    "generate_cert_digest",
];

/// Refuses the `generate_*` parameters where no certificate is made (`why`).
fn refuse_generate(t: &Section<'_>, why: &str) {
    for key in GENERATE {
        if t.has(key) {
            t.error(
                Some(key),
                format!("'{key}' makes a certificate only with insecure true and no cert_path; here {why}"),
            );
        }
    }
}

pub fn read(t: Section<'_>) -> TransportConfig {
    let protocol = match t.arg().trim() {
        "" | "tcp" => "tcp",
        "tls" => "tls",
        other => {
            t.error(
                None,
                format!("<transport {other}> is not supported (tcp or tls)"),
            );
            "tcp"
        }
    };
    let _ = t.opt_duration("linger_timeout");
    t.no_effect(
        "linger_timeout",
        "after its last reply ferry sends a FIN and drains what the client still sends, so the reply is not lost to a reset",
    );
    for key in [
        "ca_cert_path",
        "ca_private_key_path",
        "ca_private_key_passphrase",
    ] {
        if t.has(key) {
            t.error(
                Some(key),
                format!(
                    "'{key}': ferry does not sign certificates with a CA at start; sign one with your CA and give cert_path and private_key_path (or insecure true for a self-signed one)"
                ),
            );
        }
    }
    if t.has("cert_verifier") {
        t.error(
            Some("cert_verifier"),
            "cert_verifier names Ruby code to run, and ferry runs none; use client_cert_auth with ca_path",
        );
    }
    if t.has("private_key_passphrase") {
        t.error(
            Some("private_key_passphrase"),
            "ferry does not decrypt private keys: write a decrypted copy readable only by ferry (`openssl pkey -in server.key.enc -out server.key`), point private_key_path at it and remove private_key_passphrase",
        );
    }
    let insecure = t.bool_or("insecure", false);
    if t.opt_bool("ensure_fips") == Some(true) {
        t.error(
            Some("ensure_fips"),
            "ensure_fips true: ferry's TLS library (rustls with ring) is not FIPS-validated",
        );
    }
    let transport = if protocol == "tls" {
        let (min_version, max_version) =
            crate::tls::read_versions(&t, "version", "min_version", "max_version");
        // An OpenSSL cipher list, read as OpenSSL reads it for TLS 1.2 (TLS 1.3 suites are not
        // chosen by it).
        let ciphers = t.str("ciphers");
        if let Some(list) = &ciphers
            && min_version == TlsVersion::Tls12
            && let Err(e) = crate::tls::check_cipher_list("ciphers", list)
        {
            t.error(Some("ciphers"), e);
        }
        let client_cert_auth = t.bool_or("client_cert_auth", false);
        let ca_path = t.str("ca_path").map(PathBuf::from);
        if client_cert_auth && ca_path.is_none() {
            t.error(
                Some("client_cert_auth"),
                "client_cert_auth true needs ca_path (the CA that signs client certificates)",
            );
        }
        // Fluentd's order: certificate files, else (insecure) one made at start.
        let cert = if t.has("cert_path") || !insecure {
            if !insecure && !t.has("cert_path") {
                t.error(
                    None,
                    "no certificate: give cert_path and private_key_path, or insecure true for a self-signed one made at start",
                );
            }
            if insecure {
                t.error(
                    Some("insecure"),
                    "insecure true with cert_path asks for TLS below 1.2 or weak ciphers, which ferry does not offer; remove it (insecure true without cert_path makes a self-signed certificate)",
                );
            }
            refuse_generate(&t, "a certificate is given by cert_path");
            ServerCert::Files {
                cert_path: t.str("cert_path").unwrap_or_default().into(),
                private_key_path: t
                    .required_str("private_key_path")
                    .unwrap_or_default()
                    .into(),
            }
        } else {
            t.warn(
                "insecure",
                "insecure TLS communication server is configured (using 'insecure' mode): a self-signed certificate is made at start, which clients cannot verify",
            );
            ServerCert::SelfSigned(crate::tls::Generate::read(&t))
        };
        TransportConfig::Tls(TlsConfig {
            cert,
            ca_path,
            client_cert_auth,
            min_version,
            max_version,
            ciphers,
        })
    } else {
        if insecure {
            t.error(Some("insecure"), "insecure applies to <transport tls> only");
        }
        refuse_generate(&t, "the transport is tcp");
        TransportConfig::Tcp
    };
    t.finish();
    transport
}
