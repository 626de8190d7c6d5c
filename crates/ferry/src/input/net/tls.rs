//! `<transport tls>`: the rustls server configuration (ring provider).
//!
//! - `cert_path`: PEM certificate chain, server certificate first.
//! - `private_key_path`: PEM key (PKCS#8, PKCS#1 RSA or SEC1 EC). An encrypted key
//!   (`ENCRYPTED PRIVATE KEY`, or a legacy `Proc-Type: 4,ENCRYPTED` header) is refused at
//!   start-up with instructions: ferry does not decrypt keys, so `private_key_passphrase` can
//!   only be used with a key that is not encrypted (it is then ignored).
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
            private_key_passphrase: None,
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
