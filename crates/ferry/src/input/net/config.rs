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
    pub cert_path: PathBuf,
    pub private_key_path: PathBuf,
    pub ca_path: Option<PathBuf>,
    pub client_cert_auth: bool,
    /// `version` / `min_version`: the lowest version accepted.
    pub min_version: TlsVersion,
    /// `max_version`: the highest version accepted.
    pub max_version: TlsVersion,
    /// `ciphers`: an OpenSSL cipher list choosing the TLS 1.2 suites accepted.
    pub ciphers: Option<String>,
}

/// Fluentd `<transport tls>` parameters that make it generate certificates.
const CERT_GENERATION: &[&str] = &[
    "ca_cert_path",
    "ca_private_key_path",
    "ca_private_key_passphrase",
    "cert_verifier",
    "generate_private_key_length",
    "generate_cert_country",
    "generate_cert_state",
    "generate_cert_locality",
    "generate_cert_common_name",
    "generate_cert_expiration",
    "generate_cert_digest",
];

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
    for key in CERT_GENERATION {
        if t.has(key) {
            t.error(
                Some(key),
                format!(
                    "'{key}': ferry does not generate certificates; give cert_path and private_key_path"
                ),
            );
        }
    }
    if t.has("private_key_passphrase") {
        t.error(
            Some("private_key_passphrase"),
            "ferry does not decrypt private keys: write a decrypted copy readable only by ferry (`openssl pkey -in server.key.enc -out server.key`), point private_key_path at it and remove private_key_passphrase",
        );
    }
    if t.bool_or("insecure", false) {
        t.error(
            Some("insecure"),
            "insecure true is not supported: ferry accepts TLS 1.2 and 1.3 only",
        );
    }
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
        TransportConfig::Tls(TlsConfig {
            cert_path: t.required_str("cert_path").unwrap_or_default().into(),
            private_key_path: t
                .required_str("private_key_path")
                .unwrap_or_default()
                .into(),
            ca_path,
            client_cert_auth,
            min_version,
            max_version,
            ciphers,
        })
    } else {
        TransportConfig::Tcp
    };
    t.finish();
    transport
}
