//! The optional shared-key handshake (HELO → PING → PONG) and its SHA-512 digests.
//!
//! Messages (msgpack arrays, first element the message kind):
//!
//! | message | direction | layout |
//! |---|---|---|
//! | HELO | server → client, first | `["HELO", {"nonce": bin, "auth": bin, "keepalive": bool}]` |
//! | PING | client → server | `["PING", hostname, shared_key_salt, shared_key_hexdigest, username, password_hexdigest]` |
//! | PONG | server → client | `["PONG", ok, reason, hostname, shared_key_hexdigest]` |
//!
//! - [`encode_helo`] emits exactly Fluentd's HELO: `92 a4 HELO 83 a5 nonce c4 .. a4 auth c4 ..
//!   a9 keepalive c3|c2`. [`parse_helo`] also accepts Fluent Bit's form (nonce and auth as str
//!   holding raw bytes, no `keepalive`, which then defaults to true). A missing `auth` means no
//!   user authentication.
//! - PING and PONG elements are written as str (Fluentd's choice); str and bin are both read.
//!   A PING must have exactly 6 elements and a PONG exactly 5.
//! - A failed PONG is `["PONG", false, reason, "", ""]` with Fluentd's reasons
//!   ([`REASON_INVALID_PING`], [`REASON_SHARED_KEY_MISMATCH`], [`REASON_USER_MISMATCH`]); the
//!   server closes the connection after writing it.
//! - Every encoder returns the whole message as one buffer, to be written with one write: Fluent
//!   Bit reads handshake messages with a single 512-byte read.
//!
//! Digests are lowercase hex SHA-512 of raw byte concatenations (no separators):
//! PING `shared_key_hexdigest = H(salt ‖ client_hostname ‖ nonce ‖ shared_key)`,
//! PONG `shared_key_hexdigest = H(salt ‖ server_hostname ‖ nonce ‖ shared_key)`,
//! `password_hexdigest = H(auth ‖ username ‖ password)` (or "" when `auth` is empty).

use bytes::{Bytes, BytesMut};

use crate::msgpack::{self, Head, MsgpackError, Reader};

mod digest;

pub use digest::{
    PingRejection, PongRejection, check_ping, check_pong, digest_eq, password_digest, random_nonce,
    random_salt_hex, shared_key_digest,
};

/// PONG reason for a PING that is not a 6-element array starting with "PING".
pub const REASON_INVALID_PING: &str = "invalid ping message";
/// PONG reason for a wrong shared-key digest.
pub const REASON_SHARED_KEY_MISMATCH: &str = "shared_key mismatch";
/// PONG reason for a wrong user name or password digest.
pub const REASON_USER_MISMATCH: &str = "username/password mismatch";

/// Why a handshake message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("{kind} message is not an array (found {found})")]
    NotArray {
        kind: &'static str,
        found: &'static str,
    },
    #[error("{kind} message has {found} elements, expected {expected}")]
    WrongLength {
        kind: &'static str,
        expected: u32,
        found: u32,
    },
    #[error("expected a {kind} message")]
    WrongKind { kind: &'static str },
    #[error("{kind} field {field} must be {expected}")]
    BadField {
        kind: &'static str,
        field: &'static str,
        expected: &'static str,
    },
    #[error("malformed {kind} message: {source}")]
    Malformed {
        kind: &'static str,
        #[source]
        source: MsgpackError,
    },
}

impl HandshakeError {
    /// The PONG reason a server sends for this error (Fluentd's wording).
    pub fn reason(&self) -> &'static str {
        REASON_INVALID_PING
    }
}

/// The server's greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helo {
    pub nonce: Bytes,
    /// User-auth salt; empty = no user authentication.
    pub auth: Bytes,
    /// False: the server closes after one request.
    pub keepalive: bool,
}

/// The client's answer to HELO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub hostname: Bytes,
    pub shared_key_salt: Bytes,
    pub shared_key_hexdigest: Bytes,
    pub username: Bytes,
    pub password_hexdigest: Bytes,
}

/// The server's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pong {
    pub ok: bool,
    pub reason: String,
    pub hostname: Bytes,
    pub shared_key_hexdigest: Bytes,
}

/// The HELO message, byte for byte as Fluentd sends it.
pub fn encode_helo(nonce: &[u8], auth: &[u8], keepalive: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(32 + nonce.len() + auth.len());
    msgpack::write_array_len(&mut out, 2);
    msgpack::write_str(&mut out, b"HELO");
    msgpack::write_map_len(&mut out, 3);
    msgpack::write_str(&mut out, b"nonce");
    msgpack::write_bin(&mut out, nonce);
    msgpack::write_str(&mut out, b"auth");
    msgpack::write_bin(&mut out, auth);
    msgpack::write_str(&mut out, b"keepalive");
    msgpack::write_bool(&mut out, keepalive);
    out.freeze()
}

/// Read the header of a `[KIND, ...]` message; returns its element count.
fn open(r: &mut Reader<'_>, kind: &'static str) -> Result<u32, HandshakeError> {
    let malformed = |source| HandshakeError::Malformed { kind, source };
    let n = match r.peek().map_err(malformed)? {
        Head::Array(_) => r.array_len().map_err(malformed)?,
        other => {
            return Err(HandshakeError::NotArray {
                kind,
                found: other.type_name(),
            });
        }
    };
    if n == 0 {
        return Err(HandshakeError::WrongKind { kind });
    }
    match r.str_or_bin() {
        Ok((k, _)) if k == kind.as_bytes() => Ok(n),
        Ok(_) | Err(MsgpackError::Unexpected { .. }) => Err(HandshakeError::WrongKind { kind }),
        Err(source) => Err(HandshakeError::Malformed { kind, source }),
    }
}

/// A str or bin field, as an owned slice of the frame.
fn bytes_field(
    r: &mut Reader<'_>,
    kind: &'static str,
    field: &'static str,
) -> Result<Bytes, HandshakeError> {
    match r.str_or_bin() {
        Ok((b, _)) => Ok(Bytes::copy_from_slice(b)),
        Err(MsgpackError::Unexpected { .. }) => Err(HandshakeError::BadField {
            kind,
            field,
            expected: "str or bin",
        }),
        Err(source) => Err(HandshakeError::Malformed { kind, source }),
    }
}

fn expect_len(kind: &'static str, found: u32, expected: u32) -> Result<(), HandshakeError> {
    if found == expected {
        Ok(())
    } else {
        Err(HandshakeError::WrongLength {
            kind,
            expected,
            found,
        })
    }
}

/// Parse a HELO frame.
pub fn parse_helo(frame: &[u8]) -> Result<Helo, HandshakeError> {
    const K: &str = "HELO";
    let malformed = |source| HandshakeError::Malformed { kind: K, source };
    let mut r = Reader::new(frame);
    let n = open(&mut r, K)?;
    expect_len(K, n, 2)?;
    let pairs = match r.peek().map_err(malformed)? {
        Head::Map(_) => r.map_len().map_err(malformed)?,
        _ => {
            return Err(HandshakeError::BadField {
                kind: K,
                field: "options",
                expected: "a map",
            });
        }
    };
    let mut helo = Helo {
        nonce: Bytes::new(),
        auth: Bytes::new(),
        keepalive: true,
    };
    let mut have_nonce = false;
    for _ in 0..pairs {
        let key = r.str_or_bin().map(|(k, _)| k);
        match key {
            Ok(b"nonce") => {
                helo.nonce = bytes_field(&mut r, K, "nonce")?;
                have_nonce = true;
            }
            Ok(b"auth") => helo.auth = bytes_field(&mut r, K, "auth")?,
            Ok(b"keepalive") => {
                helo.keepalive = match r.peek().map_err(malformed)? {
                    Head::Nil => r.head().map(|_| true).map_err(malformed)?,
                    _ => r.bool().map_err(|_| HandshakeError::BadField {
                        kind: K,
                        field: "keepalive",
                        expected: "a bool",
                    })?,
                }
            }
            _ => {
                r.raw_value().map_err(malformed)?;
            }
        }
    }
    if !have_nonce {
        return Err(HandshakeError::BadField {
            kind: K,
            field: "nonce",
            expected: "present",
        });
    }
    Ok(helo)
}

impl Ping {
    /// The PING message (all fields as str).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(300);
        msgpack::write_array_len(&mut out, 6);
        msgpack::write_str(&mut out, b"PING");
        for f in [
            &self.hostname,
            &self.shared_key_salt,
            &self.shared_key_hexdigest,
            &self.username,
            &self.password_hexdigest,
        ] {
            msgpack::write_str(&mut out, f);
        }
        out.freeze()
    }

    /// Parse a PING frame: exactly 6 elements, the first "PING". Any error maps to the PONG
    /// reason [`REASON_INVALID_PING`].
    pub fn parse(frame: &[u8]) -> Result<Ping, HandshakeError> {
        const K: &str = "PING";
        let mut r = Reader::new(frame);
        let n = open(&mut r, K)?;
        expect_len(K, n, 6)?;
        Ok(Ping {
            hostname: bytes_field(&mut r, K, "hostname")?,
            shared_key_salt: bytes_field(&mut r, K, "shared_key_salt")?,
            shared_key_hexdigest: bytes_field(&mut r, K, "shared_key_hexdigest")?,
            username: bytes_field(&mut r, K, "username")?,
            password_hexdigest: bytes_field(&mut r, K, "password_hexdigest")?,
        })
    }
}

impl Pong {
    /// A successful PONG.
    pub fn success(hostname: &[u8], shared_key_hexdigest: &[u8]) -> Pong {
        Pong {
            ok: true,
            reason: String::new(),
            hostname: Bytes::copy_from_slice(hostname),
            shared_key_hexdigest: Bytes::copy_from_slice(shared_key_hexdigest),
        }
    }

    /// A failed PONG: `["PONG", false, reason, "", ""]`.
    pub fn failure(reason: &str) -> Pong {
        Pong {
            ok: false,
            reason: reason.to_owned(),
            hostname: Bytes::new(),
            shared_key_hexdigest: Bytes::new(),
        }
    }

    /// The PONG message.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(200);
        msgpack::write_array_len(&mut out, 5);
        msgpack::write_str(&mut out, b"PONG");
        msgpack::write_bool(&mut out, self.ok);
        msgpack::write_str(&mut out, self.reason.as_bytes());
        msgpack::write_str(&mut out, &self.hostname);
        msgpack::write_str(&mut out, &self.shared_key_hexdigest);
        out.freeze()
    }

    /// Parse a PONG frame: exactly 5 elements, the first "PONG".
    pub fn parse(frame: &[u8]) -> Result<Pong, HandshakeError> {
        const K: &str = "PONG";
        let mut r = Reader::new(frame);
        let n = open(&mut r, K)?;
        expect_len(K, n, 5)?;
        let ok = r.bool().map_err(|_| HandshakeError::BadField {
            kind: K,
            field: "auth_result",
            expected: "a bool",
        })?;
        let reason = bytes_field(&mut r, K, "reason")?;
        Ok(Pong {
            ok,
            reason: String::from_utf8_lossy(&reason).into_owned(),
            hostname: bytes_field(&mut r, K, "hostname")?,
            shared_key_hexdigest: bytes_field(&mut r, K, "shared_key_hexdigest")?,
        })
    }
}

/// Parse a PING frame (see [`Ping::parse`]).
pub fn parse_ping(frame: &[u8]) -> Result<Ping, HandshakeError> {
    Ping::parse(frame)
}

/// Parse a PONG frame (see [`Pong::parse`]).
pub fn parse_pong(frame: &[u8]) -> Result<Pong, HandshakeError> {
    Pong::parse(frame)
}
