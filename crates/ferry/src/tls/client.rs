//! TLS for the outputs (the forward output's `transport tls`, the http output's `https://`),
//! with rustls. Each output reads its own parameters into [`TlsOptions`]; the names below are
//! the forward output's, and [`TlsParams`] names the files in errors as each output calls them.
//!
//! What is verified:
//! - the certificate chain, against `tls_cert_path` / `tls_ca_cert_path` (PEM files), or the
//!   system bundle (`SSL_CERT_FILE`, then the usual distribution paths) when none is given;
//! - the name: a server given by IP address is checked against the certificate's IP SANs (no
//!   SNI is sent); a server given by name against its DNS SANs (the name is also the SNI). When
//!   the host is an IP address and `<server> name` is a DNS name, a certificate for that name is
//!   accepted too, as Fluentd does;
//! - `tls_verify_hostname false`: the chain still, the name not;
//! - `tls_allow_self_signed_cert true`: a self-signed server certificate is accepted (its name
//!   is still checked);
//! - `tls_insecure_mode true`: nothing (the handshake signatures are still checked against the
//!   presented key).
//!
//! Client certificates (`tls_client_cert_path` + `tls_client_private_key_path`) are sent when
//! the server asks.
//!
//! What the client offers: TLS 1.3 and 1.2 (1.3 only with `tls_version TLSv1_3`); SNI with the
//! server's name when it is a DNS name (none for an IP address); no ALPN; no session
//! resumption (see [`client_config`]), so no session ticket extension and no PSK. A failed
//! verification is an ordinary connection failure: logged with the server's name, retried with
//! backoff, never a reason to move a chunk aside.

use crate::tls::{load_certs, load_key};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// System CA bundles tried when no CA file is configured (the first that exists is used).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

pub use crate::tls::TlsVersion;

/// The parameters that name the files, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsParams {
    pub ca: &'static str,
    pub cert: &'static str,
    pub key: &'static str,
}

impl TlsParams {
    /// The forward output's names.
    pub const FORWARD: Self = Self {
        ca: "tls_cert_path",
        cert: "tls_client_cert_path",
        key: "tls_client_private_key_path",
    };
}

/// The TLS parameters of an output.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// What the output calls its files.
    pub params: TlsParams,
    /// `tls_version` / `tls_min_version`: the lowest version offered.
    pub version: TlsVersion,
    /// `tls_max_version`: the highest version offered.
    pub max_version: TlsVersion,
    pub ca_paths: Vec<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub verify_hostname: bool,
    pub insecure: bool,
    pub allow_self_signed: bool,
    /// `tls_ciphers`: an OpenSSL cipher list choosing the TLS 1.2 suites offered.
    pub ciphers: Option<String>,
    /// The files, once loaded.
    pub material: Option<Arc<TlsMaterial>>,
}

/// Certificates and keys read from the configured files.
#[derive(Debug)]
pub struct TlsMaterial {
    pub roots: Arc<RootCertStore>,
    pub client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

/// Why the TLS configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{0}")]
    Pem(#[from] crate::tls::PemError),
    #[error("no CA certificates: set {0} (no system bundle found, SSL_CERT_FILE unset)")]
    NoRoots(&'static str),
    #[error("{0}")]
    Rustls(#[from] Error),
    #[error("certificate verifier: {0}")]
    Verifier(String),
}

/// Reads the configured files.
pub fn load(options: &TlsOptions) -> Result<TlsMaterial, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    let mut paths = options.ca_paths.clone();
    if paths.is_empty() {
        let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
        let found = env
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
            .find(|p| p.is_file());
        paths.extend(found);
    }
    for path in &paths {
        for cert in load_certs(path, options.params.ca)? {
            // A bundle may hold certificates webpki cannot use as anchors; skip those.
            let _ = roots.add(cert);
        }
    }
    if roots.is_empty() && !options.insecure {
        return Err(TlsConfigError::NoRoots(options.params.ca));
    }
    let client = match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => Some((
            load_certs(cert, options.params.cert)?,
            load_key(key, options.params.key)?,
        )),
        _ => None,
    };
    Ok(TlsMaterial {
        roots: Arc::new(roots),
        client,
    })
}

/// `host` as an IP address when it is one (`[::1]` included).
pub fn host_ip(host: &str) -> Option<IpAddr> {
    host.trim_matches(['[', ']']).parse().ok()
}

/// The name the certificate must carry for a server at `host`.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsConfigError> {
    match host_ip(host) {
        Some(ip) => Ok(ServerName::IpAddress(ip.into())),
        None => ServerName::try_from(host.to_string())
            .map_err(|e| TlsConfigError::Verifier(format!("host {host:?}: {e}"))),
    }
}

/// The TLS client for one server at `host`; `named` is its `<server> name` when one was
/// configured (accepted as the certificate's name when `host` is an IP address).
pub fn client_config(
    options: &TlsOptions,
    host: &str,
    named: Option<&str>,
) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let provider = Arc::new(crate::tls::provider_for(options.ciphers.as_deref()));
    let material = match &options.material {
        Some(m) => Arc::clone(m),
        None => Arc::new(load(options)?),
    };
    let webpki = if material.roots.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(
                Arc::clone(&material.roots),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| TlsConfigError::Verifier(e.to_string()))?,
        )
    };
    let alt_name = match (host_ip(host), named) {
        (Some(_), Some(name)) => ServerName::try_from(name.to_string()).ok(),
        _ => None,
    };
    let verifier = Arc::new(Verifier {
        webpki,
        alt_name,
        verify_hostname: options.verify_hostname,
        allow_self_signed: options.allow_self_signed,
        insecure: options.insecure,
        provider: Arc::clone(&provider),
    });
    let versions = crate::tls::protocol_versions(options.version, options.max_version);
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &material.client {
        Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key())?,
        None => builder.with_no_client_auth(),
    };
    // Every connection is a full handshake. Fluentd's TLS server (Ruby's OpenSSL, no session id
    // context) refuses a resumed session, TLS 1.2 ticket or TLS 1.3 PSK alike, with a fatal
    // internal-error alert; a client that caches sessions then fails every connection after
    // the first. Resumption would save one certificate check per connection, a few per second.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// webpki verification with the relaxations the configuration asks for.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    alt_name: Option<ServerName<'static>>,
    verify_hostname: bool,
    allow_self_signed: bool,
    insecure: bool,
    provider: Arc<CryptoProvider>,
}

fn is_name_error(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl Verifier {
    fn check(
        &self,
        webpki: &WebPkiServerVerifier,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match webpki.verify_server_cert(end_entity, intermediates, name, &[], now) {
            Err(e) if is_name_error(&e) => {
                if !self.verify_hostname {
                    return Ok(ServerCertVerified::assertion());
                }
                match &self.alt_name {
                    Some(alt) => {
                        webpki.verify_server_cert(end_entity, intermediates, alt, &[], now)
                    }
                    None => Err(e),
                }
            }
            other => other,
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let result = match &self.webpki {
            Some(w) => self.check(w, end_entity, intermediates, server_name, now),
            None => Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        };
        match result {
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
                if self.allow_self_signed && intermediates.is_empty() =>
            {
                // Trust the presented certificate itself: accepted only if it is self-signed
                // and names the server.
                let mut own = RootCertStore::empty();
                own.add(end_entity.clone().into_owned())?;
                let w = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(own),
                    Arc::clone(&self.provider),
                )
                .build()
                .map_err(|e| Error::General(e.to_string()))?;
                self.check(&w, end_entity, &[], server_name, now)
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
