//! SHA-512 digests of the handshake, random nonces and salts, and the checks each side makes.

use rand::RngCore;
use sha2::{Digest, Sha512};

use super::{Ping, Pong, REASON_SHARED_KEY_MISMATCH, REASON_USER_MISMATCH};

/// 16 random bytes, for a HELO nonce or auth salt.
pub fn random_nonce() -> [u8; 16] {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b
}

/// 32 lowercase hex characters from 16 random bytes: a PING `shared_key_salt`, as out_forward
/// makes it.
pub fn random_salt_hex() -> String {
    hex::encode(random_nonce())
}

/// `hex(SHA512(salt ‖ hostname ‖ nonce ‖ shared_key))`.
pub fn shared_key_digest(salt: &[u8], hostname: &[u8], nonce: &[u8], key: &[u8]) -> String {
    let mut h = Sha512::new();
    for part in [salt, hostname, nonce, key] {
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// `hex(SHA512(auth ‖ username ‖ password))`.
pub fn password_digest(auth: &[u8], username: &[u8], password: &[u8]) -> String {
    let mut h = Sha512::new();
    for part in [auth, username, password] {
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// Compare digests without an early exit on the first differing byte.
pub fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a server refuses a well-formed PING.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PingRejection {
    #[error("{}", REASON_SHARED_KEY_MISMATCH)]
    SharedKeyMismatch,
    #[error("{}", REASON_USER_MISMATCH)]
    UserMismatch,
}

impl PingRejection {
    /// The PONG reason, in Fluentd's words.
    pub fn reason(&self) -> &'static str {
        match self {
            PingRejection::SharedKeyMismatch => REASON_SHARED_KEY_MISMATCH,
            PingRejection::UserMismatch => REASON_USER_MISMATCH,
        }
    }
}

/// Server side: check a PING against the HELO this connection sent. `users` is `Some` when user
/// authentication is on (any `(username, password)` matching the digest is accepted).
pub fn check_ping(
    ping: &Ping,
    nonce: &[u8],
    auth: &[u8],
    shared_key: &[u8],
    users: Option<&[(&[u8], &[u8])]>,
) -> Result<(), PingRejection> {
    let expected = shared_key_digest(&ping.shared_key_salt, &ping.hostname, nonce, shared_key);
    if !digest_eq(expected.as_bytes(), &ping.shared_key_hexdigest) {
        return Err(PingRejection::SharedKeyMismatch);
    }
    if let Some(users) = users {
        let matches = users.iter().any(|(name, password)| {
            *name == &ping.username[..]
                && digest_eq(
                    password_digest(auth, name, password).as_bytes(),
                    &ping.password_hexdigest,
                )
        });
        if !matches {
            return Err(PingRejection::UserMismatch);
        }
    }
    Ok(())
}

/// Why a client refuses a PONG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PongRejection {
    #[error("authentication failed: {reason}")]
    AuthFailed { reason: String },
    #[error("same hostname between input and output: invalid configuration")]
    SameHostname,
    #[error("shared key mismatch")]
    SharedKeyMismatch,
}

/// Client side: check a PONG against this connection's HELO nonce and the PING's salt.
/// `own_hostname` is the client's `self_hostname`: a server claiming the same name is refused.
pub fn check_pong(
    pong: &Pong,
    own_hostname: &[u8],
    salt: &[u8],
    nonce: &[u8],
    shared_key: &[u8],
) -> Result<(), PongRejection> {
    if !pong.ok {
        return Err(PongRejection::AuthFailed {
            reason: pong.reason.clone(),
        });
    }
    if &pong.hostname[..] == own_hostname {
        return Err(PongRejection::SameHostname);
    }
    let expected = shared_key_digest(salt, &pong.hostname, nonce, shared_key);
    if !digest_eq(expected.as_bytes(), &pong.shared_key_hexdigest) {
        return Err(PongRejection::SharedKeyMismatch);
    }
    Ok(())
}
