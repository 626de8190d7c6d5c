//! `<transport tls>`: the rustls server configuration (ring provider).
//!
//! - `cert_path`: PEM certificate chain, server certificate first. Without it, `insecure
//!   true` makes a self-signed certificate at start ([`crate::tls::self_signed`]), with
//!   Fluentd's warning.
//! - `private_key_path`: PEM key (PKCS#8, PKCS#1 RSA or SEC1 EC). An encrypted key
//!   (`ENCRYPTED PRIVATE KEY`, or a legacy `Proc-Type: 4,ENCRYPTED` header) is refused at
//!   start-up with instructions: ferry does not decrypt keys (`private_key_passphrase` is a
//!   configuration error).
//! - `client_cert_auth true`: every client must present a certificate that chains to a CA in
//!   `ca_path` (PEM, one or more certificates); without one the TLS handshake fails.
//! - `version`/`min_version` is the lowest protocol accepted (TLS 1.2 by default) and
//!   `max_version` the highest (TLS 1.3 by default).

use super::config::{ServerCert, TlsConfig};
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
    #[error("{0}")]
    Generate(#[from] crate::tls::GenerateError),
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
    let (certs, key) = match &cfg.cert {
        ServerCert::Files {
            cert_path,
            private_key_path,
        } => (
            load_certs(cert_path, "cert_path")?,
            load_key(private_key_path, "private_key_path")?,
        ),
        ServerCert::SelfSigned(generate) => crate::tls::self_signed(generate)?,
    };
    Ok(Arc::new(builder.with_single_cert(certs, key)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TlsVersion;
    use std::time::Duration;

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
            cert: ServerCert::Files {
                cert_path: dir.join("cert.pem"),
                private_key_path: dir.join("key.pem"),
            },
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

    fn files(cfg: &TlsConfig) -> (PathBuf, PathBuf) {
        match &cfg.cert {
            ServerCert::Files {
                cert_path,
                private_key_path,
            } => (cert_path.clone(), private_key_path.clone()),
            ServerCert::SelfSigned(_) => panic!("no files"),
        }
    }

    /// A server from the `<transport tls>` parameters `params` (certificate and key of `files`).
    fn server_from(files: &TlsConfig, params: &str) -> Arc<ServerConfig> {
        let (cert, key) = self::files(files);
        server_from_text(&format!(
            "cert_path {}\nprivate_key_path {}\n{params}",
            cert.display(),
            key.display()
        ))
    }

    /// A server from the `<transport tls>` parameters `params`.
    fn server_from_text(params: &str) -> Arc<ServerConfig> {
        let text = format!("<transport tls>\n{params}\n</transport>\n");
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
        let cert = &self::files(&files).0;
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
        let cert = &self::files(&files).0;
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
        cfg.cert = ServerCert::Files {
            cert_path: dir.path().join("nope.pem"),
            private_key_path: dir.path().join("key.pem"),
        };
        let err = server_config(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("cert_path") && err.contains("nope.pem"),
            "{err}"
        );
    }

    /// Accepts any server certificate and keeps it, to look at what a server presented.
    #[derive(Debug)]
    struct Keep(std::sync::Mutex<Option<rustls::pki_types::CertificateDer<'static>>>);

    impl rustls::client::danger::ServerCertVerifier for Keep {
        fn verify_server_cert(
            &self,
            end_entity: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            *self.0.lock().unwrap() = Some(end_entity.clone().into_owned());
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// The certificate `server` presents in a TLS 1.3 handshake it completes.
    fn presented(server: Arc<ServerConfig>) -> rustls::pki_types::CertificateDer<'static> {
        let keep = Arc::new(Keep(std::sync::Mutex::new(None)));
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&keep) as _)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut s = rustls::ServerConnection::new(server).unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            c.write_tls(&mut wire).unwrap();
            s.read_tls(&mut wire.as_slice()).unwrap();
            s.process_new_packets().unwrap();
            let mut wire = Vec::new();
            s.write_tls(&mut wire).unwrap();
            c.read_tls(&mut wire.as_slice()).unwrap();
            c.process_new_packets().unwrap();
            if !c.is_handshaking() && !s.is_handshaking() {
                break;
            }
        }
        assert!(!c.is_handshaking(), "the handshake did not end");
        keep.0.lock().unwrap().take().unwrap()
    }

    #[test]
    fn insecure_without_a_certificate_serves_one_made_at_start_from_the_generate_parameters() {
        let server = server_from_text(
            "insecure true\ngenerate_cert_common_name localhost\ngenerate_cert_country JP\n\
             generate_cert_state Tokyo\ngenerate_cert_locality Chiyoda\ngenerate_cert_expiration 30d",
        );
        let cert = presented(server);
        for part in ["JP", "Tokyo", "Chiyoda", "localhost"] {
            assert!(
                cert.windows(part.len()).any(|w| w == part.as_bytes()),
                "{part} is in the subject"
            );
        }
        // A valid server certificate for its common name, trusted as its own root, from now
        // until the expiration and not after.
        let mut roots = RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let at = |days: u64| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            rustls::pki_types::UnixTime::since_unix_epoch(now + Duration::from_secs(days * 86_400))
        };
        use rustls::client::danger::ServerCertVerifier;
        assert!(
            verifier
                .verify_server_cert(&cert, &[], &name, &[], at(0))
                .is_ok()
        );
        assert!(
            verifier
                .verify_server_cert(&cert, &[], &name, &[], at(29))
                .is_ok()
        );
        assert!(
            verifier
                .verify_server_cert(&cert, &[], &name, &[], at(31))
                .is_err()
        );
    }

    #[test]
    fn generate_cert_digest_chooses_the_signature_and_sha1_is_refused() {
        let sig = |digest: &str| {
            let cert = presented(server_from_text(&format!(
                "insecure true\ngenerate_cert_digest {digest}"
            )));
            // The signature algorithm's OID, as it ends the certificate's DER.
            let tail = &cert[cert.len().saturating_sub(120)..];
            if tail
                .windows(8)
                .any(|w| w == [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])
            {
                "ecdsa-with-SHA256"
            } else if tail
                .windows(8)
                .any(|w| w == [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03])
            {
                "ecdsa-with-SHA384"
            } else if tail.windows(3).any(|w| w == [0x2b, 0x65, 0x70]) {
                "Ed25519"
            } else {
                "other"
            }
        };
        assert_eq!(sig("sha256"), "ecdsa-with-SHA256");
        assert_eq!(sig("sha384"), "ecdsa-with-SHA384");
        assert_eq!(sig("sha512"), "Ed25519");
        let root = ferry_config::parse_str(
            "<transport tls>\ninsecure true\ngenerate_cert_digest sha1\n</transport>\n",
            "t.conf",
        )
        .unwrap();
        let errors = ferry_config::Errors::new();
        let _ = super::super::config::read(ferry_config::Section::new(&root.children[0], &errors));
        let errors = errors.into_result(()).unwrap_err().to_string();
        assert!(errors.contains("sha1 is refused"), "{errors}");
    }
}
