//! `<transport tls>`: the rustls server configuration (ring provider).
//!
//! - `cert_path`: PEM certificate chain, server certificate first.
//! - `private_key_path`: PEM key (PKCS#8, PKCS#1 RSA or SEC1 EC). An encrypted key
//!   (`ENCRYPTED PRIVATE KEY`, or a legacy `Proc-Type: 4,ENCRYPTED` header) is refused at
//!   start-up with instructions: ferry does not decrypt keys (`private_key_passphrase` is a
//!   configuration error).
//! - `client_cert_auth true`: every client must present a certificate that chains to a CA in
//!   `ca_path` (PEM, one or more certificates); without one the TLS handshake fails.
//! - `version`/`min_version` is the lowest protocol accepted (TLS 1.2 by default) and
//!   `max_version` the highest (TLS 1.3 by default).

use super::config::TlsConfig;
use crate::tls::{load_certs, load_key};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the TLS configuration cannot be built. Every variant is fatal: it stops start-up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Pem(#[from] crate::tls::PemError),
    #[error("ca_path {path}: {detail}")]
    Ca { path: PathBuf, detail: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the server configuration; reads every file now, so mistakes stop start-up.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(crate::tls::provider_for(cfg.ciphers.as_deref()));
    let versions = crate::tls::protocol_versions(cfg.min_version, cfg.max_version);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)?;
    let builder = if cfg.client_cert_auth {
        let ca_path = cfg.ca_path.as_deref().unwrap_or(Path::new(""));
        let mut roots = RootCertStore::empty();
        for cert in load_certs(ca_path, "ca_path")? {
            roots.add(cert).map_err(|e| TlsError::Ca {
                path: ca_path.to_path_buf(),
                detail: e.to_string(),
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Ca {
                path: ca_path.to_path_buf(),
                detail: e.to_string(),
            })?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let certs = load_certs(&cfg.cert_path, "cert_path")?;
    let key = load_key(&cfg.private_key_path, "private_key_path")?;
    Ok(Arc::new(builder.with_single_cert(certs, key)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TlsVersion;

    fn config(dir: &Path, key_pem: &str) -> TlsConfig {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        let key_pem = if key_pem.is_empty() {
            key.serialize_pem()
        } else {
            key_pem.to_string()
        };
        std::fs::write(dir.join("key.pem"), key_pem).unwrap();
        TlsConfig {
            cert_path: dir.join("cert.pem"),
            private_key_path: dir.join("key.pem"),
            ca_path: None,
            client_cert_auth: false,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            ciphers: None,
        }
    }

    #[test]
    fn a_generated_certificate_and_key_build_a_server_configuration() {
        let dir = tempfile::tempdir().unwrap();
        assert!(server_config(&config(dir.path(), "")).is_ok());
    }

    #[test]
    fn an_encrypted_key_is_refused_with_instructions() {
        let dir = tempfile::tempdir().unwrap();
        let pem = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = server_config(&config(dir.path(), pem)).unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::Pem(crate::tls::PemError::EncryptedKey { .. })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("openssl pkey"), "{err}");
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let err = server_config(&config(dir.path(), legacy)).unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::Pem(crate::tls::PemError::EncryptedKey { .. })
            ),
            "{err}"
        );
    }

    /// The protocol version a client limited to `versions` (and to `suites`, unless empty)
    /// and trusting `cert` negotiates with `server`, or why the handshake failed.
    fn negotiate_with(
        server: Arc<ServerConfig>,
        cert: &Path,
        versions: &[&'static rustls::SupportedProtocolVersion],
        suites: &[rustls::CipherSuite],
    ) -> Result<rustls::ProtocolVersion, rustls::Error> {
        let mut roots = RootCertStore::empty();
        for c in load_certs(cert, "cert").unwrap() {
            roots.add(c).unwrap();
        }
        let mut provider = rustls::crypto::ring::default_provider();
        if !suites.is_empty() {
            provider
                .cipher_suites
                .retain(|s| suites.contains(&s.suite()));
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut s = rustls::ServerConnection::new(server).unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            c.write_tls(&mut wire).unwrap();
            s.read_tls(&mut wire.as_slice()).unwrap();
            let server_side = s.process_new_packets().map(|_| ());
            let mut wire = Vec::new();
            s.write_tls(&mut wire).unwrap();
            c.read_tls(&mut wire.as_slice()).unwrap();
            server_side?;
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(c.protocol_version().unwrap());
            }
        }
        panic!("the handshake did not end");
    }

    fn negotiate(
        server: Arc<ServerConfig>,
        cert: &Path,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<rustls::ProtocolVersion, rustls::Error> {
        negotiate_with(server, cert, versions, &[])
    }

    /// A server from the `<transport tls>` parameters `params` (certificate and key of `files`).
    fn server_from(files: &TlsConfig, params: &str) -> Arc<ServerConfig> {
        let text = format!(
            "<transport tls>\ncert_path {}\nprivate_key_path {}\n{params}\n</transport>\n",
            files.cert_path.display(),
            files.private_key_path.display()
        );
        let root = ferry_config::parse_str(&text, "t.conf").unwrap();
        let errors = ferry_config::Errors::new();
        let transport =
            super::super::config::read(ferry_config::Section::new(&root.children[0], &errors));
        assert!(errors.is_empty());
        let super::super::config::TransportConfig::Tls(cfg) = transport else {
            panic!("not tls")
        };
        server_config(&cfg).unwrap()
    }

    #[test]
    fn ciphers_choose_the_tls12_suites_a_server_accepts() {
        use rustls::CipherSuite::{
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 as AES128,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 as AES256,
        };
        let dir = tempfile::tempdir().unwrap();
        let files = config(dir.path(), "");
        let cert = &files.cert_path;
        let v12 = &[&rustls::version::TLS12][..];
        let only256 = || server_from(&files, "ciphers ECDHE-ECDSA-AES256-GCM-SHA384");
        assert!(negotiate_with(only256(), cert, v12, &[AES128]).is_err());
        assert!(negotiate_with(only256(), cert, v12, &[AES256]).is_ok());
        assert!(negotiate_with(server_from(&files, ""), cert, v12, &[AES128]).is_ok());
        assert!(
            negotiate(only256(), cert, &[&rustls::version::TLS13]).is_ok(),
            "TLS 1.3 suites are not chosen by the list"
        );
    }

    #[test]
    fn min_and_max_version_bound_the_versions_a_server_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let files = config(dir.path(), "");
        let server = |versions: &str| server_from(&files, versions);
        let (v12, v13) = (
            &[&rustls::version::TLS12][..],
            &[&rustls::version::TLS13][..],
        );
        let cert = &files.cert_path;
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(negotiate(server(""), cert, v12), Ok(TLSv1_2));
        assert_eq!(negotiate(server(""), cert, v13), Ok(TLSv1_3));
        assert!(negotiate(server("min_version TLSv1_3"), cert, v12).is_err());
        assert_eq!(
            negotiate(server("min_version TLSv1_3"), cert, v13),
            Ok(TLSv1_3)
        );
        assert!(negotiate(server("max_version TLSv1_2"), cert, v13).is_err());
        assert_eq!(
            negotiate(server("max_version TLSv1_2"), cert, v12),
            Ok(TLSv1_2)
        );
    }

    #[test]
    fn a_missing_certificate_file_names_the_parameter_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), "");
        cfg.cert_path = dir.path().join("nope.pem");
        let err = server_config(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("cert_path") && err.contains("nope.pem"),
            "{err}"
        );
    }
}
