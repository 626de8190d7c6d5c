//! What the TLS code of every plugin shares: a reading of handshake failures for the log line.
//!
//! rustls names a failure precisely (`received fatal alert: HandshakeFailure`,
//! `peer is incompatible: NoKxGroupsInCommon`) but not what the operator should look at. The
//! hint says that, from the error's kind, never from its text.

use rustls::{AlertDescription, Error};
use std::io;

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
