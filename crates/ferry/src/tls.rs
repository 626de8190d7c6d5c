//! What the TLS code of every plugin shares: reading PEM certificates and keys, and a reading
//! of handshake failures for the log line.
//!
//! PEM files are read whole (at most [`MAX_PEM_BYTES`]); an encrypted key (`ENCRYPTED PRIVATE
//! KEY`, or a legacy `Proc-Type: 4,ENCRYPTED` header) is refused with instructions, since ferry
//! does not decrypt keys. Every error names the parameter and the path.
//!
//! rustls names a handshake failure precisely (`received fatal alert: HandshakeFailure`,
//! `peer is incompatible: NoKxGroupsInCommon`) but not what the operator should look at. The
//! hint says that, from the error's kind, never from its text.
//!
//! A server without a certificate of its own (Fluentd's `insecure true`) gets one made at
//! start ([`Generate`], [`self_signed`]), as Fluentd makes it from its `generate_*` parameters.
//!
//! The protocol versions are read here too ([`read_versions`]): the forward input's
//! `<transport tls>` (`version`, `min_version`, `max_version`) and the forward output
//! (`tls_version`, `tls_min_version`, `tls_max_version`) name the same range.
//!
//! [`client`] is the client side every output shares (the forward and http outputs): the
//! rustls client configuration and the certificate checks the parameters ask for.

pub mod client;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, Error};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Largest PEM file read.
pub const MAX_PEM_BYTES: u64 = 16 * 1024 * 1024;

/// Why a PEM file cannot be used. `what` is the parameter that names the file.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path} holds no PEM certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("{what} {path} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NoKey { what: &'static str, path: PathBuf },
    #[error(
        "private key {path} is encrypted; ferry does not decrypt private keys: write a decrypted copy readable only by ferry (`openssl pkey -in {path} -out server.key`) and point {what} at it"
    )]
    EncryptedKey { what: &'static str, path: PathBuf },
    #[error("bad PEM in {what} {path}: {source}")]
    Bad {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, PemError> {
    let read = |source| PemError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mut pem = Vec::new();
    let mut block = [0u8; 8192];
    loop {
        let n = file.read(&mut block).map_err(read)?;
        if n == 0 {
            return Ok(pem);
        }
        if (pem.len() + n) as u64 > MAX_PEM_BYTES {
            return Err(read(io::Error::other(format!(
                "larger than {MAX_PEM_BYTES} bytes: not a PEM file"
            ))));
        }
        pem.extend_from_slice(&block[..n]);
    }
}

/// TLS protocol versions ferry can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// The values Fluentd's version parameters take that ferry speaks (TLS 1.0 and 1.1 are
/// refused: they are broken).
pub const TLS_VERSIONS: &[&str] = &["TLSv1_2", "TLSv1_3"];

fn version_named(name: &str) -> TlsVersion {
    if name == "TLSv1_3" {
        TlsVersion::Tls13
    } else {
        TlsVersion::Tls12
    }
}

/// Reads a version range: `lowest` (Fluentd's `version`/`tls_version`) or `min`, and `max`;
/// TLS 1.2 to 1.3 by default. A `max` below the lowest is an error.
pub fn read_versions(
    s: &ferry_config::Section<'_>,
    lowest: &str,
    min: &str,
    max: &str,
) -> (TlsVersion, TlsVersion) {
    let version = s.opt_enum(lowest, TLS_VERSIONS);
    let min_name = s.opt_enum(min, TLS_VERSIONS);
    let max_name = s.opt_enum(max, TLS_VERSIONS);
    let low = version_named(min_name.or(version).unwrap_or("TLSv1_2"));
    let high = version_named(max_name.unwrap_or("TLSv1_3"));
    if high < low {
        s.error(Some(max), format!("{max} is lower than {min}"));
    }
    (low, high)
}

/// The rustls versions of the range `min..=max`.
pub fn protocol_versions(
    min: TlsVersion,
    max: TlsVersion,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    [
        (TlsVersion::Tls13, &rustls::version::TLS13),
        (TlsVersion::Tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter(|(v, _)| *v >= min && *v <= max)
    .map(|(_, p)| p)
    .collect()
}

/// Every certificate of the PEM file at `path` (the parameter `what`); at least one.
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = read_pem(path, what)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PemError::Bad {
            what,
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// True when a PEM file holds an encrypted key, in either PKCS#8 or the legacy OpenSSL form.
fn is_encrypted_key(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
}

/// The private key of the PEM file at `path` (the parameter `what`), not encrypted.
pub fn load_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, PemError> {
    let pem = read_pem(path, what)?;
    if is_encrypted_key(&pem) {
        return Err(PemError::EncryptedKey {
            what,
            path: path.to_path_buf(),
        });
    }
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| PemError::Bad {
            what,
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| PemError::NoKey {
            what,
            path: path.to_path_buf(),
        })
}

/// What ferry offers and accepts: the two ends must share one of these.
pub const OFFERED: &str = "TLS 1.3 or 1.2 with ECDHE key exchange and AES-GCM or \
                           ChaCha20-Poly1305";

/// A hint for a failed handshake, to follow the error in a log line; empty when the error
/// says enough by itself.
pub fn handshake_hint(e: &io::Error) -> String {
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) else {
        return String::new();
    };
    match tls {
        Error::PeerIncompatible(_)
        | Error::AlertReceived(
            AlertDescription::HandshakeFailure
            | AlertDescription::ProtocolVersion
            | AlertDescription::InsufficientSecurity,
        ) => format!(
            " (the two ends share no protocol version, cipher suite or key exchange group; \
             ferry offers {OFFERED})"
        ),
        Error::AlertReceived(AlertDescription::InternalError) => " (the peer failed on its own \
             side: its log says why)"
            .to_owned(),
        Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
            | AlertDescription::CertificateUnknown,
        ) => " (the peer refused the certificate ferry presented, or wanted one)".to_owned(),
        Error::InvalidCertificate(_) => {
            " (check the CA files and the name the certificate is for)".to_owned()
        }
        _ => String::new(),
    }
}

/// The TLS 1.2 suites ferry has, by their OpenSSL names, with the OpenSSL words that select
/// each: key exchange, authentication, cipher and MAC.
const TLS12_SUITES: &[(&str, rustls::CipherSuite, &[&str])] = &[
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        &[
            "ECDHE", "EECDH", "kECDHE", "ECDSA", "aECDSA", "AESGCM", "AES", "AES256", "SHA384",
        ],
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        &[
            "ECDHE", "EECDH", "kECDHE", "ECDSA", "aECDSA", "AESGCM", "AES", "AES128", "SHA256",
        ],
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        &[
            "ECDHE", "EECDH", "kECDHE", "ECDSA", "aECDSA", "CHACHA20", "SHA256",
        ],
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        &[
            "ECDHE", "EECDH", "kECDHE", "RSA", "aRSA", "AESGCM", "AES", "AES256", "SHA384",
        ],
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        &[
            "ECDHE", "EECDH", "kECDHE", "RSA", "aRSA", "AESGCM", "AES", "AES128", "SHA256",
        ],
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        &[
            "ECDHE", "EECDH", "kECDHE", "RSA", "aRSA", "CHACHA20", "SHA256",
        ],
    ),
];

/// Words that select every suite ferry has.
const EVERYTHING: &[&str] = &["ALL", "DEFAULT", "HIGH", "TLSv1.2"];

/// Reads an OpenSSL cipher list (`tls_ciphers`, `ciphers`) as OpenSSL does for TLS 1.2, and
/// returns the TLS 1.2 suites of ferry's it selects, in ferry's order. TLS 1.3 suites are not
/// chosen by a cipher list (OpenSSL keeps them apart), so they are always offered.
///
/// The list is words separated by `:`, `,` or spaces. A word is a suite's OpenSSL name, a
/// group (`ALL`, `DEFAULT`, `HIGH`, `ECDHE`, `AESGCM`, `CHACHA20`, `aRSA`, `SHA384`, ...), or
/// groups joined by `+` (all of them). `!WORD` removes for good, `-WORD` removes (a later
/// word may add back), `+WORD` only reorders (no effect here). A word that names only suites
/// ferry does not have (`AES128-SHA`, `kRSA`, `3DES`, `aNULL`, ...) selects nothing, as a word
/// OpenSSL does not know does.
pub fn tls12_suites(list: &str) -> Vec<rustls::CipherSuite> {
    let matches = |word: &str, name: &str, groups: &[&str]| {
        word.split('+')
            .filter(|w| !w.is_empty())
            .all(|w| w == name || EVERYTHING.contains(&w) || groups.contains(&w))
            && !word.is_empty()
    };
    let mut chosen = [false; TLS12_SUITES.len()];
    let mut banned = [false; TLS12_SUITES.len()];
    for word in list
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        let (op, word) = match word.as_bytes()[0] {
            b'!' | b'-' | b'+' => (word.as_bytes()[0], &word[1..]),
            _ => (b' ', word),
        };
        if word.starts_with('@') {
            continue; // @STRENGTH, @SECLEVEL=n: order and policy, not membership
        }
        for (i, (name, _, groups)) in TLS12_SUITES.iter().enumerate() {
            if !matches(word, name, groups) {
                continue;
            }
            match op {
                b'!' => banned[i] = true,
                b'-' => chosen[i] = false,
                b'+' => {}
                _ => chosen[i] = true,
            }
        }
    }
    TLS12_SUITES
        .iter()
        .enumerate()
        .filter(|(i, _)| chosen[*i] && !banned[*i])
        .map(|(_, (_, suite, _))| *suite)
        .collect()
}

/// `provider` offering the TLS 1.3 suites and the TLS 1.2 suites `list` selects (see
/// [`tls12_suites`]); with no list, every suite.
pub fn provider_for(list: Option<&str>) -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(list) = list {
        let tls12 = tls12_suites(list);
        provider.cipher_suites.retain(|s| match s {
            rustls::SupportedCipherSuite::Tls13(_) => true,
            rustls::SupportedCipherSuite::Tls12(_) => tls12.contains(&s.suite()),
        });
    }
    provider
}

/// Why a cipher list cannot be used when TLS 1.2 may be negotiated: it selects none of the
/// TLS 1.2 suites ferry has, so every TLS 1.2 handshake would fail.
pub fn check_cipher_list(param: &str, list: &str) -> Result<(), String> {
    if tls12_suites(list).is_empty() {
        return Err(format!(
            "{param} '{list}' selects none of the TLS 1.2 cipher suites ferry has ({}), so every TLS 1.2 handshake would fail: name at least one of them, or allow TLS 1.3 only",
            tls12_suite_names()
        ));
    }
    Ok(())
}

/// The OpenSSL names of the TLS 1.2 suites ferry has (for error messages).
pub fn tls12_suite_names() -> String {
    TLS12_SUITES
        .iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn a_refused_cipher_or_version_gets_a_hint_naming_what_ferry_offers() {
        let refused = io(Error::AlertReceived(AlertDescription::HandshakeFailure));
        assert!(handshake_hint(&refused).contains(OFFERED));
        let incompatible = io(Error::PeerIncompatible(
            rustls::PeerIncompatible::NoKxGroupsInCommon,
        ));
        assert!(handshake_hint(&incompatible).contains("share no protocol version"));
    }

    #[test]
    fn an_error_that_is_not_a_tls_error_gets_no_hint() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(handshake_hint(&reset), "");
        assert_eq!(handshake_hint(&io::Error::other("eof")), "");
    }

    #[test]
    fn cipher_lists_select_suites_as_openssl_reads_them() {
        use rustls::CipherSuite as C;
        let all = tls12_suites("ALL:!aNULL:!eNULL:!SSLv2");
        assert_eq!(
            all.len(),
            6,
            "Fluentd's default list selects every suite ferry has"
        );
        assert_eq!(
            tls12_suites("ECDHE-RSA-AES128-GCM-SHA256"),
            vec![C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
        );
        assert_eq!(
            tls12_suites("ECDHE+AESGCM:!aECDSA:-AES128"),
            vec![C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
        );
        assert_eq!(
            tls12_suites("HIGH:!CHACHA20:@STRENGTH").len(),
            4,
            "@STRENGTH orders only"
        );
        // Suites ferry does not have select nothing; so do words OpenSSL does not know.
        assert!(tls12_suites("AES128-SHA:kRSA:3DES:nonsense").is_empty());
        assert!(tls12_suites("").is_empty());
        // `!` is for good, `-` can be undone.
        assert!(tls12_suites("!ECDHE:ALL").is_empty());
        assert_eq!(tls12_suites("-ECDHE:ALL").len(), 6);
    }

    #[test]
    fn a_provider_keeps_every_tls13_suite_whatever_the_list() {
        let p = provider_for(Some("AES128-SHA"));
        assert!(!p.cipher_suites.is_empty());
        assert!(
            p.cipher_suites
                .iter()
                .all(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_)))
        );
        let full = provider_for(None);
        assert!(full.cipher_suites.len() > p.cipher_suites.len());
    }

    #[test]
    fn version_ranges_are_read_checked_and_turned_into_protocols() {
        let read = |params: &str| {
            crate::plugin::read_section(&format!("<match x>\n{params}</match>\n"), |s| {
                read_versions(s, "tls_version", "tls_min_version", "tls_max_version")
            })
        };
        assert_eq!(read(""), Ok((TlsVersion::Tls12, TlsVersion::Tls13)));
        assert_eq!(
            read("  tls_version TLSv1_3\n"),
            Ok((TlsVersion::Tls13, TlsVersion::Tls13))
        );
        assert_eq!(
            read("  tls_max_version TLSv1_2\n"),
            Ok((TlsVersion::Tls12, TlsVersion::Tls12))
        );
        let e = read("  tls_min_version TLSv1_3\n  tls_max_version TLSv1_2\n").unwrap_err();
        assert!(
            e[0].contains("tls_max_version is lower than tls_min_version"),
            "{e:?}"
        );
        let e = read("  tls_version TLSv1_1\n").unwrap_err();
        assert!(e[0].contains("tls_version"), "{e:?}");
        assert_eq!(
            protocol_versions(TlsVersion::Tls12, TlsVersion::Tls12),
            vec![&rustls::version::TLS12]
        );
        assert_eq!(
            protocol_versions(TlsVersion::Tls12, TlsVersion::Tls13).len(),
            2
        );
    }
}

/// A certificate made at start for a server that has none (`insecure true`), from Fluentd's
/// `generate_*` parameters of `<transport tls>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generate {
    /// `generate_cert_country`, `generate_cert_state`, `generate_cert_locality`.
    pub country: String,
    pub state: String,
    pub locality: String,
    /// `generate_cert_common_name`, the host name when unset; also the certificate's DNS name.
    pub common_name: Option<String>,
    /// `generate_cert_expiration`: valid from now for this long.
    pub expiration: std::time::Duration,
    /// `generate_cert_digest`.
    pub digest: Digest,
}

/// `generate_cert_digest`: the hash the certificate's signature uses. ferry's key is not RSA
/// (see [`self_signed`]): SHA-256 is signed with ECDSA P-256, SHA-384 with ECDSA P-384,
/// SHA-512 with Ed25519 (whose signature hashes with SHA-512).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha256,
    Sha384,
    Sha512,
}

/// Fluentd's `generate_cert_digest` names; `sha1` is refused (no TLS library accepts SHA-1
/// signatures any more).
pub const DIGESTS: &[&str] = &["sha256", "sha384", "sha512"];

impl Generate {
    /// Reads the `generate_*` parameters of a `<transport tls>`, with Fluentd's defaults.
    pub fn read(t: &ferry_config::Section<'_>) -> Self {
        if t.opt_u64("generate_private_key_length").is_some() {
            t.no_effect(
                "generate_private_key_length",
                "ferry makes an elliptic-curve key (ECDSA P-256, P-384 or Ed25519 after generate_cert_digest), not RSA",
            );
        }
        let digest = if t.str("generate_cert_digest").as_deref() == Some("sha1") {
            t.error(
                Some("generate_cert_digest"),
                "sha1 is refused: TLS libraries no longer accept SHA-1 signatures; use sha256",
            );
            Digest::Sha256
        } else {
            match t.enum_or("generate_cert_digest", DIGESTS, "sha256") {
                "sha384" => Digest::Sha384,
                "sha512" => Digest::Sha512,
                _ => Digest::Sha256,
            }
        };
        Self {
            country: t.str_or("generate_cert_country", "US"),
            state: t.str_or("generate_cert_state", "CA"),
            locality: t.str_or("generate_cert_locality", "Mountain View"),
            common_name: t.str("generate_cert_common_name"),
            expiration: t.duration_or(
                "generate_cert_expiration",
                std::time::Duration::from_secs(10 * 365 * 86_400),
            ),
            digest,
        }
    }
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make a self-signed certificate: {0}")]
pub struct GenerateError(#[from] rcgen::Error);

/// A self-signed server certificate and its new key, made now as Fluentd's `insecure true`
/// makes one: the subject from the `generate_*` parameters, the common name also as the
/// certificate's DNS name, valid from now for `expiration`, for server authentication only.
pub fn self_signed(
    g: &Generate,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), GenerateError> {
    let alg = match g.digest {
        Digest::Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Digest::Sha384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Digest::Sha512 => &rcgen::PKCS_ED25519,
    };
    let key = rcgen::KeyPair::generate_for(alg)?;
    let common_name = g
        .common_name
        .clone()
        .unwrap_or_else(crate::plugin::hostname);
    let mut params = rcgen::CertificateParams::new(vec![common_name.clone()])?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CountryName, g.country.as_str());
    subject.push(rcgen::DnType::StateOrProvinceName, g.state.as_str());
    subject.push(rcgen::DnType::LocalityName, g.locality.as_str());
    subject.push(rcgen::DnType::CommonName, common_name.as_str());
    params.distinguished_name = subject;
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = now
        .checked_add(g.expiration)
        .unwrap_or(now + std::time::Duration::from_secs(10 * 365 * 86_400))
        .into();
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key)?;
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    Ok((vec![cert.der().clone()], key))
}
