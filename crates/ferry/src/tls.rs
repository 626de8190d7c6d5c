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
}
