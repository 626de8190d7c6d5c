//! The `<security>` handshake, server side, exactly as Fluentd's in_forward does it.
//!
//! 1. Right after accept (after TLS, when configured) the server writes
//!    `["HELO", {"nonce": bin16, "auth": bin16, "keepalive": !deny_keepalive}]`: two fresh
//!    random values per connection; `auth` is sent even without `user_auth`, as Fluentd does.
//! 2. The client's first message must be a PING. Checks, in Fluentd's order: a 6-element array
//!    starting with "PING" ("invalid ping message"); the peer matches a `<client>` or
//!    `allow_anonymous_source` is true ("anonymous source host '<addr>' denied"); the
//!    shared-key digest, with the matching client's own key if it has one ("shared_key
//!    mismatch"); with `user_auth`, some `<user>` (restricted to the client's `users`) matches
//!    the name and password digest ("username/password mismatch").
//! 3. The server answers `["PONG", true, "", self_hostname, digest]`, or
//!    `["PONG", false, reason, "", ""]` and closes.
//!
//! Each message is written with one write call: Fluent Bit reads HELO and PONG with a single
//! 512-byte read. Wire formats and digests: [`ferry_proto::handshake`].

use super::HandshakeFailure;
use super::config::{Network, Secret, SecurityConfig, UserConfig};
use super::conn::{ConnError, Connection, End, Read};
use bytes::Bytes;
use ferry_proto::frame::FrameDecoder;
use ferry_proto::handshake::{
    PingRejection, Pong, REASON_INVALID_PING, check_ping, encode_helo, random_nonce,
    shared_key_digest,
};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Largest first message read while waiting for a PING (a PING is about 320 bytes). Anything
/// larger is refused as "invalid ping message" as soon as its size is known.
pub(super) const MAX_PING_BYTES: usize = 16 * 1024;

/// A `<client>` with its addresses resolved.
#[derive(Debug)]
struct Client {
    networks: Vec<Network>,
    shared_key: Option<Secret>,
    users: Option<Vec<String>>,
}

/// The server side of `<security>`, ready to check PINGs.
#[derive(Debug)]
pub(crate) struct Security {
    self_hostname: String,
    shared_key: Secret,
    user_auth: bool,
    allow_anonymous_source: bool,
    users: Vec<UserConfig>,
    clients: Vec<Client>,
}

/// What this connection's HELO carried, needed to check the PING.
#[derive(Debug)]
pub(crate) struct Helo {
    pub bytes: Bytes,
    nonce: [u8; 16],
    auth: [u8; 16],
}

/// A refused PING: the PONG to send, the counter and a detail for the log line.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub failure: HandshakeFailure,
    pub pong: Bytes,
    pub reason: String,
    pub hostname: String,
    pub username: String,
}

/// An accepted PING.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub pong: Bytes,
    pub hostname: String,
}

impl Security {
    /// Resolves every `<client> host` (once, like Fluentd; an unknown host fails start-up).
    pub async fn build(cfg: &SecurityConfig) -> anyhow::Result<Self> {
        let mut clients = Vec::with_capacity(cfg.clients.len());
        for c in &cfg.clients {
            let networks = crate::input::net::acl::resolve(&c.source).await?;
            clients.push(Client {
                networks,
                shared_key: c.shared_key.clone(),
                users: c.users.clone(),
            });
        }
        Ok(Self {
            self_hostname: cfg.self_hostname.clone(),
            shared_key: cfg.shared_key.clone(),
            user_auth: cfg.user_auth,
            allow_anonymous_source: cfg.allow_anonymous_source,
            users: cfg.users.clone(),
            clients,
        })
    }

    /// A fresh HELO for one connection.
    pub fn helo(&self, keepalive: bool) -> Helo {
        let nonce = random_nonce();
        let auth = random_nonce();
        Helo {
            bytes: encode_helo(&nonce, &auth, keepalive),
            nonce,
            auth,
        }
    }

    /// Checks the client's first message against this connection's HELO.
    pub fn check(
        &self,
        frame: &[u8],
        peer_ip: Option<IpAddr>,
        peer: &str,
        helo: &Helo,
    ) -> Result<Accepted, Refusal> {
        let refuse = |failure, reason: String, hostname: &[u8], username: &[u8]| Refusal {
            failure,
            pong: Pong::failure(&reason).encode(),
            reason,
            hostname: String::from_utf8_lossy(hostname).into_owned(),
            username: String::from_utf8_lossy(username).into_owned(),
        };
        let ping = match ferry_proto::handshake::Ping::parse(frame) {
            Ok(p) => p,
            Err(_) => {
                return Err(refuse(
                    HandshakeFailure::InvalidPing,
                    REASON_INVALID_PING.to_string(),
                    b"",
                    b"",
                ));
            }
        };
        let client = peer_ip.and_then(|ip| {
            self.clients
                .iter()
                .find(|c| c.networks.iter().any(|n| n.contains(ip)))
        });
        if client.is_none() && !self.allow_anonymous_source {
            return Err(refuse(
                HandshakeFailure::AnonymousDenied,
                format!("anonymous source host '{peer}' denied"),
                &ping.hostname,
                &ping.username,
            ));
        }
        let shared_key = client
            .and_then(|c| c.shared_key.as_ref())
            .unwrap_or(&self.shared_key);
        let allowed: Vec<(&[u8], &[u8])>;
        let users = if self.user_auth {
            allowed = self
                .users
                .iter()
                .filter(|u| {
                    client
                        .and_then(|c| c.users.as_ref())
                        .is_none_or(|names| names.contains(&u.username))
                })
                .map(|u| (u.username.as_bytes(), u.password.as_bytes()))
                .collect();
            Some(allowed.as_slice())
        } else {
            None
        };
        match check_ping(&ping, &helo.nonce, &helo.auth, shared_key.as_bytes(), users) {
            Ok(()) => {
                let digest = shared_key_digest(
                    &ping.shared_key_salt,
                    self.self_hostname.as_bytes(),
                    &helo.nonce,
                    shared_key.as_bytes(),
                );
                Ok(Accepted {
                    pong: Pong::success(self.self_hostname.as_bytes(), digest.as_bytes()).encode(),
                    hostname: String::from_utf8_lossy(&ping.hostname).into_owned(),
                })
            }
            Err(rejection) => {
                let failure = match rejection {
                    PingRejection::SharedKeyMismatch => HandshakeFailure::SharedKeyMismatch,
                    PingRejection::UserMismatch => HandshakeFailure::UserMismatch,
                };
                Err(refuse(
                    failure,
                    rejection.reason().to_string(),
                    &ping.hostname,
                    &ping.username,
                ))
            }
        }
    }
}

/// The handshake as a connection runs it, after TLS and before any request.
impl<S: AsyncRead + AsyncWrite + crate::input::net::stream::PeerSocket + Unpin + Send>
    Connection<'_, S>
{
    /// `Ok(None)`: the client is authenticated; `Ok(Some(end))`: the connection is over (the
    /// failure is already counted and logged).
    pub(super) async fn handshake(
        &mut self,
        sec: &Security,
        deadline: Instant,
    ) -> Result<Option<End>, ConnError> {
        self.h.set("handshake");
        let helo = sec.helo(!self.shared.config.deny_keepalive);
        match tokio::time::timeout_at(deadline, self.send(&helo.bytes)).await {
            Ok(r) => r?,
            Err(_) => return Ok(Some(self.handshake_timeout())),
        }
        let mut decoder = FrameDecoder::new(MAX_PING_BYTES);
        let frame = loop {
            match decoder.decode(&mut self.io.buf) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(_) => break Bytes::new(), // not a PING, whatever follows
            }
            match self.fill(Some(deadline)).await? {
                Read::Data => {}
                Read::Eof => {
                    return Ok(Some(End::Closed {
                        leftover: self.io.buf.len(),
                    }));
                }
                Read::Cancelled => return Ok(Some(End::Cancelled)),
                Read::TimedOut => return Ok(Some(self.handshake_timeout())),
            }
        };
        let peer_address = self.peer.address();
        match sec.check(&frame, self.peer.ip(), &peer_address, &helo) {
            Ok(accepted) => {
                self.send(&accepted.pong).await?;
                self.shared
                    .metrics
                    .handshakes
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "forward input {}: handshake with {} (hostname \"{}\") succeeded",
                    self.shared.id,
                    self.peer,
                    accepted.hostname
                );
                Ok(None)
            }
            Err(refusal) => {
                self.shared.metrics.count_handshake_failure(refusal.failure);
                if let Some(s) = self.shared.logs.handshake.allow() {
                    tracing::warn!(
                        "forward input {}: handshake with {} failed: {} (hostname=\"{}\" username=\"{}\"); connection closed{s}",
                        self.shared.id,
                        self.peer,
                        refusal.reason,
                        refusal.hostname,
                        refusal.username
                    );
                }
                let _ = self.send(&refusal.pong).await;
                self.io.linger().await;
                Ok(Some(End::Refused))
            }
        }
    }

    fn handshake_timeout(&self) -> End {
        self.shared
            .metrics
            .count_handshake_failure(HandshakeFailure::Timeout);
        if let Some(s) = self.shared.logs.handshake.allow() {
            tracing::warn!(
                "forward input {}: handshake with {} did not finish within handshake_timeout ({:?}); connection closed{s}",
                self.shared.id,
                self.peer,
                self.shared.config.handshake_timeout
            );
        }
        End::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::forward::config::ClientConfig;
    use crate::input::net::acl::ClientSource;
    use ferry_proto::handshake::{Ping, password_digest};

    fn security(user_auth: bool, anonymous: bool, clients: Vec<ClientConfig>) -> Security {
        let cfg = SecurityConfig {
            self_hostname: "server.example".into(),
            shared_key: Secret("k".into()),
            user_auth,
            allow_anonymous_source: anonymous,
            users: vec![
                UserConfig {
                    username: "alice".into(),
                    password: Secret("pw".into()),
                },
                UserConfig {
                    username: "bob".into(),
                    password: Secret("pb".into()),
                },
            ],
            clients,
        };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(Security::build(&cfg))
            .unwrap()
    }

    fn ping(helo: &Helo, key: &str, user: &str, password: &str) -> Bytes {
        let salt = b"0123456789abcdef0123456789abcdef";
        Ping {
            hostname: Bytes::from_static(b"client.example"),
            shared_key_salt: Bytes::from_static(salt),
            shared_key_hexdigest: shared_key_digest(
                salt,
                b"client.example",
                &helo.nonce,
                key.as_bytes(),
            )
            .into(),
            username: Bytes::copy_from_slice(user.as_bytes()),
            password_hexdigest: password_digest(&helo.auth, user.as_bytes(), password.as_bytes())
                .into(),
        }
        .encode()
    }

    fn reason(r: Result<Accepted, Refusal>) -> (HandshakeFailure, String) {
        let r = r.unwrap_err();
        let pong = Pong::parse(&r.pong).unwrap();
        assert!(!pong.ok);
        assert_eq!(pong.reason, r.reason);
        (r.failure, r.reason)
    }

    #[test]
    fn a_correct_ping_gets_a_pong_with_the_server_digest() {
        let s = security(true, true, vec![]);
        let helo = s.helo(true);
        let ok = s
            .check(&ping(&helo, "k", "alice", "pw"), None, "x", &helo)
            .unwrap();
        let pong = Pong::parse(&ok.pong).unwrap();
        assert!(pong.ok);
        assert_eq!(&pong.hostname[..], b"server.example");
        let want = shared_key_digest(
            b"0123456789abcdef0123456789abcdef",
            b"server.example",
            &helo.nonce,
            b"k",
        );
        assert_eq!(&pong.shared_key_hexdigest[..], want.as_bytes());
    }

    #[test]
    fn each_failure_gets_fluentds_reason() {
        let s = security(true, true, vec![]);
        let helo = s.helo(true);
        let check = |frame: &[u8]| reason(s.check(frame, None, "x", &helo));
        assert_eq!(
            check(&ping(&helo, "wrong", "alice", "pw")),
            (
                HandshakeFailure::SharedKeyMismatch,
                "shared_key mismatch".into()
            )
        );
        assert_eq!(
            check(&ping(&helo, "k", "alice", "nope")),
            (
                HandshakeFailure::UserMismatch,
                "username/password mismatch".into()
            )
        );
        assert_eq!(
            check(&ping(&helo, "k", "carol", "pw")),
            (
                HandshakeFailure::UserMismatch,
                "username/password mismatch".into()
            )
        );
        assert_eq!(
            check(b"\x93\xa1t\x01\x80"),
            (HandshakeFailure::InvalidPing, "invalid ping message".into())
        );
    }

    #[test]
    fn clients_pick_their_key_and_users_and_anonymous_sources_can_be_denied() {
        let s = security(
            true,
            false,
            vec![ClientConfig {
                source: ClientSource::Network(Network::parse("10.0.0.0/8").unwrap()),
                shared_key: Some(Secret("client-key".into())),
                users: Some(vec!["bob".into()]),
            }],
        );
        let helo = s.helo(true);
        let inside = Some("10.1.2.3".parse().unwrap());
        assert!(
            s.check(
                &ping(&helo, "client-key", "bob", "pb"),
                inside,
                "10.1.2.3",
                &helo
            )
            .is_ok()
        );
        assert_eq!(
            reason(s.check(&ping(&helo, "k", "bob", "pb"), inside, "10.1.2.3", &helo)).0,
            HandshakeFailure::SharedKeyMismatch
        );
        assert_eq!(
            reason(s.check(
                &ping(&helo, "client-key", "alice", "pw"),
                inside,
                "10.1.2.3",
                &helo
            ))
            .0,
            HandshakeFailure::UserMismatch
        );
        let outside = Some("192.168.1.1".parse().unwrap());
        assert_eq!(
            reason(s.check(
                &ping(&helo, "k", "alice", "pw"),
                outside,
                "192.168.1.1",
                &helo
            )),
            (
                HandshakeFailure::AnonymousDenied,
                "anonymous source host '192.168.1.1' denied".into()
            )
        );
    }
}
