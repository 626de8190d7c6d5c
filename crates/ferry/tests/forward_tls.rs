//! `<transport tls>` end to end, with a CA and certificates made by the test (rcgen) and a
//! rustls client: server verification, acks over TLS, client certificate authentication and
//! the minimum protocol version.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use bytes::BytesMut;
use common::{Ferry, Pki, free_port};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn config(port: u16, pki: &Pki, extra: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n  <transport tls>\n    cert_path {}\n    private_key_path {}\n{extra}\n  </transport>\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n",
        pki.server_cert.display(),
        pki.server_key.display()
    )
}

fn certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls_pemfile::certs(&mut std::fs::read(path).unwrap().as_slice())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn client_config(
    ca: &Path,
    client: Option<&Pki>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca) {
        roots.add(c).unwrap();
    }
    let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        Some(pki) => {
            let key = rustls_pemfile::private_key(
                &mut std::fs::read(&pki.client_key).unwrap().as_slice(),
            )
            .unwrap()
            .unwrap();
            b.with_client_auth_cert(certs(&pki.client_cert), key)
                .unwrap()
        }
        None => b.with_no_client_auth(),
    })
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(port: u16, cfg: Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, tcp)
}

fn request(chunk: &str) -> Vec<u8> {
    common::packed_request(
        "tls.test",
        &common::str_record(&[("msg", b"over tls")]),
        1,
        chunk,
    )
}

/// Sends one request and returns the ack's chunk id, or the error that stopped it.
fn send(s: &mut Tls, chunk: &str) -> std::io::Result<Vec<u8>> {
    s.write_all(&request(chunk))?;
    s.flush()?;
    common::read_ack(s, &mut BytesMut::new())
}

#[test]
fn a_client_trusting_the_ca_sends_over_tls_and_gets_its_ack() {
    let pki = Pki::new();
    let port = free_port();
    let ferry = Ferry::start(&config(port, &pki, ""), port);
    let cfg = client_config(&pki.ca_cert, None, rustls::DEFAULT_VERSIONS);
    let mut s = connect(port, cfg);
    assert_eq!(send(&mut s, "tls-1").unwrap(), b"tls-1");
    assert_eq!(send(&mut s, "tls-2").unwrap(), b"tls-2");
    let lines = ferry.stdout_lines(2, Duration::from_secs(10));
    assert!(lines.iter().all(|l| l.contains("over tls")), "{lines:?}");
}

#[test]
fn a_client_that_does_not_trust_the_server_certificate_cannot_connect() {
    let pki = Pki::new();
    let port = free_port();
    let _ferry = Ferry::start(&config(port, &pki, ""), port);
    let cfg = client_config(&pki.other_ca_cert, None, rustls::DEFAULT_VERSIONS);
    let mut s = connect(port, cfg);
    let err = send(&mut s, "x").unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[test]
fn client_cert_auth_refuses_a_client_without_a_certificate_and_accepts_one_with() {
    let pki = Pki::new();
    let port = free_port();
    let extra = format!(
        "    client_cert_auth true\n    ca_path {}",
        pki.ca_cert.display()
    );
    let ferry = Ferry::start(&config(port, &pki, &extra), port);
    // TLS 1.3 only reports the refusal after the client's first write, so the client sees
    // it on the read of its ack.
    let mut anonymous = connect(
        port,
        client_config(&pki.ca_cert, None, rustls::DEFAULT_VERSIONS),
    );
    assert!(
        send(&mut anonymous, "no-cert").is_err(),
        "a client without a certificate got an ack"
    );
    let mut seen = Vec::new();
    let line = ferry.wait_stderr(
        "TLS handshake with 127.0.0.1:",
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(line.contains("[warn]"), "{line}");
    let mut with_cert = connect(
        port,
        client_config(&pki.ca_cert, Some(&pki), rustls::DEFAULT_VERSIONS),
    );
    assert_eq!(send(&mut with_cert, "with-cert").unwrap(), b"with-cert");
}

#[test]
fn version_tls1_3_refuses_a_tls1_2_client() {
    let pki = Pki::new();
    let port = free_port();
    let _ferry = Ferry::start(&config(port, &pki, "    version TLSv1_3"), port);
    let mut old = connect(
        port,
        client_config(&pki.ca_cert, None, &[&rustls::version::TLS12]),
    );
    assert!(send(&mut old, "old").is_err());
    let mut new = connect(
        port,
        client_config(&pki.ca_cert, None, &[&rustls::version::TLS13]),
    );
    assert_eq!(send(&mut new, "new").unwrap(), b"new");
}

#[test]
fn an_encrypted_private_key_stops_start_up_with_a_clear_error() {
    let pki = Pki::new();
    let port = free_port();
    let key = pki._dir.path().join("encrypted.key");
    std::fs::write(
        &key,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ferry.conf");
    std::fs::write(
        &conf,
        format!(
            "<source>\n  @type forward\n  port {port}\n  <transport tls>\n    cert_path {}\n    private_key_path {}\n  </transport>\n</source>\n<match **>\n  @type null\n</match>\n",
            pki.server_cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::ferry_bin())
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is encrypted") && err.contains("openssl pkey"),
        "{err}"
    );
}

#[test]
fn a_client_that_resets_mid_handshake_is_named_and_a_good_client_still_gets_its_ack() {
    let pki = Pki::new();
    let port = free_port();
    let ferry = Ferry::start(&config(port, &pki, ""), port);
    // A real ClientHello, then a reset (SO_LINGER 0) before the handshake can finish.
    let cfg = client_config(&pki.ca_cert, None, rustls::DEFAULT_VERSIONS);
    let mut conn =
        ClientConnection::new(cfg.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_addr = tcp.local_addr().unwrap();
    tcp.write_all(&hello).unwrap();
    // Wait for the ServerHello, so the reset lands in the middle of the handshake.
    let mut first = [0u8; 1];
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(std::io::Read::read(&mut tcp, &mut first).unwrap(), 1);
    socket2::SockRef::from(&tcp)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(tcp);
    let mut seen = Vec::new();
    let line = ferry.wait_stderr(
        &format!("TLS handshake with {client_addr} failed"),
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(
        line.contains("[warn]") && line.contains("reset") && line.contains("connection closed"),
        "{line}"
    );
    let mut s = connect(port, cfg);
    assert_eq!(send(&mut s, "after-reset").unwrap(), b"after-reset");
}
