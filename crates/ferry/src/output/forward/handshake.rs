//! The shared-key handshake as the client (`<security>`): read HELO, answer PING, check PONG.
//!
//! ```text
//! server → HELO  ["HELO", {"nonce": bin, "auth": bin, "keepalive": bool}]
//! client → PING  ["PING", self_hostname, salt, H(salt‖self_hostname‖nonce‖key), username,
//!                 H(auth‖username‖password) or "" when auth is empty]
//! server → PONG  ["PONG", ok, reason, server_hostname, H(salt‖server_hostname‖nonce‖key)]
//! ```
//!
//! The PONG is refused when it says no, when the server claims our own hostname (a loop), or
//! when its digest is wrong (the server does not know the key). Frames are read with a bounded
//! decoder ([`MAX_HANDSHAKE_FRAME`]); the caller bounds the whole exchange by `hard_timeout`.

use super::error::HandshakeFailure;
use bytes::BytesMut;
use ferry_proto::frame::FrameDecoder;
use ferry_proto::handshake::{Ping, check_pong, parse_helo, parse_pong, password_digest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest HELO or PONG accepted.
pub const MAX_HANDSHAKE_FRAME: usize = 64 * 1024;

/// What the client proves.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub self_hostname: &'a str,
    pub shared_key: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    /// The PING salt (32 hex characters).
    pub salt: &'a str,
}

/// Reads one complete msgpack value; `None` when the peer closed first.
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    decoder: &mut FrameDecoder,
) -> Result<Option<bytes::Bytes>, HandshakeFailure> {
    loop {
        if let Some(frame) = decoder.decode(buf)? {
            return Ok(Some(frame));
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(4096);
        }
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// Runs the handshake on a fresh connection. Returns whether the server keeps the connection
/// open for more requests (HELO `keepalive`).
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    creds: &Credentials<'_>,
) -> Result<bool, HandshakeFailure> {
    let mut buf = BytesMut::with_capacity(1024);
    let mut decoder = FrameDecoder::new(MAX_HANDSHAKE_FRAME);
    let helo = read_frame(stream, &mut buf, &mut decoder)
        .await?
        .ok_or(HandshakeFailure::Closed)?;
    let helo = parse_helo(&helo)?;
    let digest = ferry_proto::handshake::shared_key_digest(
        creds.salt.as_bytes(),
        creds.self_hostname.as_bytes(),
        &helo.nonce,
        creds.shared_key.as_bytes(),
    );
    let password = if helo.auth.is_empty() {
        String::new()
    } else {
        password_digest(
            &helo.auth,
            creds.username.as_bytes(),
            creds.password.as_bytes(),
        )
    };
    let ping = Ping {
        hostname: creds.self_hostname.as_bytes().to_vec().into(),
        shared_key_salt: creds.salt.as_bytes().to_vec().into(),
        shared_key_hexdigest: digest.into_bytes().into(),
        username: creds.username.as_bytes().to_vec().into(),
        password_hexdigest: password.into_bytes().into(),
    };
    stream.write_all(&ping.encode()).await?;
    stream.flush().await?;
    let pong = read_frame(stream, &mut buf, &mut decoder)
        .await?
        .ok_or(HandshakeFailure::Closed)?;
    let pong = parse_pong(&pong)?;
    check_pong(
        &pong,
        creds.self_hostname.as_bytes(),
        creds.salt.as_bytes(),
        &helo.nonce,
        creds.shared_key.as_bytes(),
    )?;
    Ok(helo.keepalive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::handshake::{Pong, check_ping, encode_helo, parse_ping};

    async fn server(
        mut s: tokio::io::DuplexStream,
        key: &'static str,
        hostname: &'static str,
    ) -> Option<String> {
        let nonce = [7u8; 16];
        let auth = [9u8; 16];
        s.write_all(&encode_helo(&nonce, &auth, true)).await.ok()?;
        let mut buf = BytesMut::new();
        let mut dec = FrameDecoder::new(MAX_HANDSHAKE_FRAME);
        let frame = read_frame(&mut s, &mut buf, &mut dec).await.ok()??;
        let ping = parse_ping(&frame).ok()?;
        let users: &[(&[u8], &[u8])] = &[(b"alice", b"pw")];
        let pong = match check_ping(&ping, &nonce, &auth, key.as_bytes(), Some(users)) {
            Ok(()) => {
                let d = ferry_proto::handshake::shared_key_digest(
                    &ping.shared_key_salt,
                    hostname.as_bytes(),
                    &nonce,
                    key.as_bytes(),
                );
                Pong::success(hostname.as_bytes(), d.as_bytes())
            }
            Err(r) => Pong::failure(r.reason()),
        };
        s.write_all(&pong.encode()).await.ok()?;
        Some(pong.reason)
    }

    fn creds(key: &'static str) -> Credentials<'static> {
        Credentials {
            self_hostname: "forwarder.example",
            shared_key: key,
            username: "alice",
            password: "pw",
            salt: "0123456789abcdef0123456789abcdef",
        }
    }

    #[tokio::test]
    async fn a_matching_key_and_user_complete_the_handshake() {
        let (mut client, srv) = tokio::io::duplex(4096);
        let server = tokio::spawn(server(srv, "secret", "aggregator.example"));
        let keepalive = client_handshake(&mut client, &creds("secret"))
            .await
            .unwrap();
        assert!(keepalive);
        assert_eq!(server.await.unwrap().as_deref(), Some(""));
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_by_the_server_and_reported() {
        let (mut client, srv) = tokio::io::duplex(4096);
        tokio::spawn(server(srv, "other", "aggregator.example"));
        let err = client_handshake(&mut client, &creds("secret"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("shared_key mismatch"), "{err}");
    }

    #[tokio::test]
    async fn a_server_claiming_our_own_hostname_is_refused() {
        let (mut client, srv) = tokio::io::duplex(4096);
        tokio::spawn(server(srv, "secret", "forwarder.example"));
        let err = client_handshake(&mut client, &creds("secret"))
            .await
            .unwrap_err();
        assert!(matches!(err, HandshakeFailure::Rejected(_)), "{err}");
    }
}
