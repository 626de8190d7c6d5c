//! The forward output's TLS and shared-key handshake as a client, against in-process servers
//! with certificates made for each test, and against Fluentd's captured handshake and ack
//! bytes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod forward_support;

use bytes::BytesMut;
use ferry::output::forward::conn::Connection;
use ferry::output::forward::handshake::{Credentials, client_handshake};
use ferry::output::forward::send::await_ack;
use ferry::output::forward::{Forward, ForwardError};
use ferry_proto::frame::FrameDecoder;
use forward_support::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    Ca {
        cert: params.self_signed(&key).unwrap(),
        key,
    }
}

/// A certificate for `names` (IP addresses become IP SANs) signed by `ca`.
fn leaf(ca: &Ca, names: &[&str]) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    (params.signed_by(&key, &ca.cert, &ca.key).unwrap(), key)
}

fn server_tls(
    cert: &rcgen::Certificate,
    key: &KeyPair,
    client_ca: Option<&Ca>,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.cert.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    Arc::new(builder.with_single_cert(chain, key).unwrap())
}

fn write(dir: &Path, name: &str, pem: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p.display().to_string()
}

fn tls_conf(params: &str, host: &str, name: &str, port: u16) -> String {
    format!(
        "<match **>\n  @type forward\n  transport tls\n  require_ack_response true\n  heartbeat_type none\n{params}\
         <server>\n    host {host}\n    name {name}\n    port {port}\n  </server>\n</match>\n"
    )
}

async fn send_one(fwd: &Forward) -> Result<(), ForwardError> {
    let buffer = memory_buffer_with("tls", 1, 20, 10);
    let chunk = take_all(&buffer).pop().unwrap();
    fwd.write_chunk(&chunk).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_naming_the_server_by_ip_address_is_verified_against_its_ip_san() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("ferry test CA");
    let (cert, key) = leaf(&ca, &["127.0.0.1"]);
    let agg =
        FakeAggregator::start_with(AckPolicy::Ack, Some(server_tls(&cert, &key, None)), None).await;
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.pem());
    let conf = tls_conf(
        &format!("  tls_cert_path {ca_path}\n"),
        "127.0.0.1",
        "agg",
        agg.port,
    );
    let fwd = Forward::new("tls", forward_config(&conf));
    send_one(&fwd).await.unwrap();
    assert_eq!(agg.state.seqs().len(), 20);

    // The same certificate for a server reached by another address fails verification, and
    // the failure is an ordinary retryable connection error naming the server.
    let (other, other_key) = leaf(&ca, &["10.9.9.9"]);
    let agg2 = FakeAggregator::start_with(
        AckPolicy::Ack,
        Some(server_tls(&other, &other_key, None)),
        None,
    )
    .await;
    let conf = tls_conf(
        &format!("  tls_cert_path {ca_path}\n"),
        "127.0.0.1",
        "wrong-ip",
        agg2.port,
    );
    let fwd = Forward::new("tls2", forward_config(&conf));
    let err = send_one(&fwd).await.unwrap_err();
    assert!(matches!(err, ForwardError::Tls { .. }), "{err}");
    assert!(err.is_retryable() && !err.rolls_back());
    assert_eq!(err.class(), "OpenSSL::SSL::SSLError");
    assert!(err.to_string().contains("'wrong-ip'"), "{err}");
    assert!(agg2.state.requests().is_empty());
    assert!(
        fwd.nodes()[0].is_available(),
        "a TLS failure alone does not detach"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_ca_fails_and_insecure_mode_or_the_right_ca_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, stranger) = (ca("ferry test CA"), ca("stranger CA"));
    let (cert, key) = leaf(&ca, &["127.0.0.1"]);
    let agg =
        FakeAggregator::start_with(AckPolicy::Ack, Some(server_tls(&cert, &key, None)), None).await;
    let stranger_path = write(dir.path(), "stranger.pem", &stranger.cert.pem());
    let conf = tls_conf(
        &format!("  tls_cert_path {stranger_path}\n"),
        "127.0.0.1",
        "a",
        agg.port,
    );
    let err = send_one(&Forward::new("t", forward_config(&conf)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let conf = tls_conf(
        &format!("  tls_cert_path {stranger_path}\n  tls_insecure_mode true\n"),
        "127.0.0.1",
        "a",
        agg.port,
    );
    send_one(&Forward::new("t", forward_config(&conf)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_host_accepts_a_certificate_for_its_server_name_and_hostname_checks_can_be_off() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("ferry test CA");
    let (cert, key) = leaf(&ca, &["aggregator.test"]);
    let agg =
        FakeAggregator::start_with(AckPolicy::Ack, Some(server_tls(&cert, &key, None)), None).await;
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.pem());
    let params = format!("  tls_cert_path {ca_path}\n");
    // Fluentd verifies an IP host against <server> name: so does ferry, after the IP SANs.
    let fwd = Forward::new(
        "n",
        forward_config(&tls_conf(&params, "127.0.0.1", "aggregator.test", agg.port)),
    );
    send_one(&fwd).await.unwrap();
    let fwd = Forward::new(
        "n",
        forward_config(&tls_conf(&params, "127.0.0.1", "other.test", agg.port)),
    );
    assert!(send_one(&fwd).await.is_err());
    let params = format!("  tls_cert_path {ca_path}\n  tls_verify_hostname false\n");
    let fwd = Forward::new(
        "n",
        forward_config(&tls_conf(&params, "127.0.0.1", "other.test", agg.port)),
    );
    send_one(&fwd).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_when_the_server_requires_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("ferry test CA");
    let (cert, key) = leaf(&ca, &["127.0.0.1"]);
    let (client, client_key) = leaf(&ca, &["forwarder.test"]);
    let agg = FakeAggregator::start_with(
        AckPolicy::Ack,
        Some(server_tls(&cert, &key, Some(&ca))),
        None,
    )
    .await;
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.pem());
    let without = format!("  tls_cert_path {ca_path}\n");
    let err = send_one(&Forward::new(
        "m",
        forward_config(&tls_conf(&without, "127.0.0.1", "a", agg.port)),
    ))
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let with = format!(
        "  tls_cert_path {ca_path}\n  tls_client_cert_path {}\n  tls_client_private_key_path {}\n",
        write(dir.path(), "client.pem", &client.pem()),
        write(dir.path(), "client.key", &client_key.serialize_pem())
    );
    send_one(&Forward::new(
        "m",
        forward_config(&tls_conf(&with, "127.0.0.1", "a", agg.port)),
    ))
    .await
    .unwrap();
    assert_eq!(agg.state.seqs().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_key_handshake_runs_once_per_kept_alive_connection_and_a_wrong_key_is_retryable()
{
    let security = FakeSecurity {
        shared_key: "s3cr3t".into(),
        hostname: "aggregator.test".into(),
        users: Vec::new(),
    };
    let agg = FakeAggregator::start_with(AckPolicy::Ack, None, Some(security)).await;
    let conf = |key: &str| {
        format!(
            "<match **>\n  @type forward\n  require_ack_response true\n  keepalive true\n  heartbeat_type none\n\
             <security>\n    self_hostname forwarder.test\n    shared_key {key}\n  </security>\n{}</match>\n",
            server("secure", agg.port, "")
        )
    };
    let fwd = Forward::new("hs", forward_config(&conf("s3cr3t")));
    let buffer = memory_buffer_with("hs", 3, 10, 10);
    for chunk in take_all(&buffer) {
        fwd.write_chunk(&chunk).await.unwrap();
        buffer.ack(chunk).unwrap();
    }
    assert_eq!(agg.state.handshakes_ok.load(Ordering::SeqCst), 1);
    assert_eq!(agg.state.seqs().len(), 30);

    let fwd = Forward::new("hs", forward_config(&conf("wrong")));
    let err = send_one(&fwd).await.unwrap_err();
    assert!(matches!(err, ForwardError::Handshake { .. }), "{err}");
    assert!(
        err.to_string().contains("'secure'") && err.to_string().contains("shared_key mismatch")
    );
    assert!(err.is_retryable() && !err.detaches_node());
    assert_eq!(err.class(), "Fluent::Plugin::ForwardOutput::PingpongError");
    assert_eq!(fwd.metrics().handshake_failures.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_username_password_and_shared_key_are_what_it_authenticates_with() {
    let security = FakeSecurity {
        shared_key: "s3cr3t".into(),
        hostname: "aggregator.test".into(),
        users: vec![("alice".into(), "p@ss".into())],
    };
    let agg = FakeAggregator::start_with(AckPolicy::Ack, None, Some(security)).await;
    let conf = |server_params: &str| {
        format!(
            "<match **>\n  @type forward\n  require_ack_response true\n  heartbeat_type none\n\
             <security>\n    self_hostname forwarder.test\n    shared_key not-this-one\n  </security>\n{}</match>\n",
            server("secure", agg.port, server_params)
        )
    };
    let good = "    shared_key s3cr3t\n    username alice\n    password p@ss\n";
    send_one(&Forward::new("u", forward_config(&conf(good))))
        .await
        .unwrap();
    assert_eq!(agg.state.handshakes_ok.load(Ordering::SeqCst), 1);
    for (params, reason) in [
        (
            "    shared_key s3cr3t\n    username alice\n    password wrong\n",
            "username/password mismatch",
        ),
        (
            "    shared_key s3cr3t\n    username bob\n    password p@ss\n",
            "username/password mismatch",
        ),
        (
            "    username alice\n    password p@ss\n",
            "shared_key mismatch",
        ),
    ] {
        let err = send_one(&Forward::new("u", forward_config(&conf(params))))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(reason), "{params}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ca_cert_path_names_the_ca_as_tls_cert_path_does() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, stranger) = (ca("ferry test CA"), ca("stranger CA"));
    let (cert, key) = leaf(&ca, &["127.0.0.1"]);
    let agg =
        FakeAggregator::start_with(AckPolicy::Ack, Some(server_tls(&cert, &key, None)), None).await;
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.pem());
    let stranger_path = write(dir.path(), "stranger.pem", &stranger.cert.pem());
    let send = |param: &str| {
        let conf = tls_conf(&format!("  {param}\n"), "127.0.0.1", "a", agg.port);
        async move { send_one(&Forward::new("t", forward_config(&conf))).await }
    };
    send(&format!("tls_ca_cert_path {ca_path}")).await.unwrap();
    let err = send(&format!("tls_ca_cert_path {stranger_path}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_server_certificate_is_accepted_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let agg =
        FakeAggregator::start_with(AckPolicy::Ack, Some(server_tls(&cert, &key, None)), None).await;
    let stranger_path = write(dir.path(), "stranger.pem", &ca("stranger CA").cert.pem());
    let conf = |extra: &str| {
        tls_conf(
            &format!("  tls_cert_path {stranger_path}\n{extra}"),
            "127.0.0.1",
            "a",
            agg.port,
        )
    };
    let err = send_one(&Forward::new("s", forward_config(&conf(""))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    send_one(&Forward::new(
        "s",
        forward_config(&conf("  tls_allow_self_signed_cert true\n")),
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_version_tls1_3_refuses_a_server_that_speaks_only_tls1_2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("ferry test CA");
    let (cert, key) = leaf(&ca, &["127.0.0.1"]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls12_only = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let agg = FakeAggregator::start_with(AckPolicy::Ack, Some(Arc::new(tls12_only)), None).await;
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.pem());
    let conf = |version: &str| {
        tls_conf(
            &format!("  tls_cert_path {ca_path}\n  tls_version {version}\n"),
            "127.0.0.1",
            "a",
            agg.port,
        )
    };
    send_one(&Forward::new("v", forward_config(&conf("TLSv1_2"))))
        .await
        .unwrap();
    let err = send_one(&Forward::new("v", forward_config(&conf("TLSv1_3"))))
        .await
        .unwrap_err();
    assert!(matches!(err, ForwardError::Tls { .. }), "{err}");
}

/// A stream that plays back `s2c` and records what the client writes.
struct Replay {
    input: std::io::Cursor<Vec<u8>>,
    written: Vec<u8>,
}

impl tokio::io::AsyncRead for Replay {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let pos = self.input.position() as usize;
        let data = self.input.get_ref();
        let n = buf.remaining().min(data.len() - pos);
        buf.put_slice(&data[pos..pos + n]);
        self.input.set_position((pos + n) as u64);
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Replay {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.written.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

fn vector(name: &str) -> (serde_json::Value, Vec<u8>, Vec<u8>) {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors/fluentd");
    let json =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let c2s = std::fs::read(dir.join(format!("{name}.c2s.bin"))).unwrap();
    let s2c = std::fs::read(dir.join(format!("{name}.s2c.bin"))).unwrap();
    (json, c2s, s2c)
}

fn vectors_named(prefixes: &[&str]) -> Vec<String> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors/fluentd");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".c2s.bin").map(str::to_string))
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn fluentds_captured_handshakes_are_reproduced_byte_for_byte() {
    let names = vectors_named(&["handshake_shared_key.", "handshake_user_auth."]);
    assert!(names.len() >= 4, "vectors: {names:?}");
    for name in names {
        let (json, c2s, s2c) = vector(&name);
        let inputs = &json["digest_verification"]["inputs"];
        // The captured PING tells the salt out_forward chose; with the same salt, ferry's PING
        // must be Fluentd's byte for byte, and Fluentd's PONG must satisfy ferry's checks.
        let mut dec = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&c2s[..]);
        let ping_bytes = dec.decode(&mut buf).unwrap().unwrap();
        let ping = ferry_proto::handshake::parse_ping(&ping_bytes).unwrap();
        let salt = String::from_utf8(ping.shared_key_salt.to_vec()).unwrap();
        let creds = Credentials {
            self_hostname: inputs["client_self_hostname"].as_str().unwrap(),
            shared_key: inputs["shared_key"].as_str().unwrap(),
            username: inputs["username"].as_str().unwrap_or(""),
            password: inputs["password"].as_str().unwrap_or(""),
            salt: &salt,
        };
        let mut replay = Replay {
            input: std::io::Cursor::new(s2c),
            written: Vec::new(),
        };
        let keepalive = client_handshake(&mut replay, &creds).await.unwrap();
        assert!(keepalive, "{name}");
        assert_eq!(replay.written, ping_bytes.to_vec(), "{name}: PING differs");
    }
}

#[tokio::test]
async fn fluentds_captured_acks_settle_the_requests_they_answer() {
    let names = vectors_named(&["packed_forward_ack.", "packed_forward_keepalive_ack"]);
    assert!(!names.is_empty());
    for name in names {
        let (_, c2s, s2c) = vector(&name);
        // Each request of the capture, in order, with the ack Fluentd's in_forward sent for it.
        let mut requests = BytesMut::from(&c2s[..]);
        let mut dec = FrameDecoder::new(1 << 24);
        let mut replay = tokio::io::join(std::io::Cursor::new(s2c), tokio::io::sink());
        let mut answered = 0;
        let mut buf = BytesMut::new();
        let mut reply_dec = FrameDecoder::new(64 * 1024);
        while let Some(frame) = dec.decode(&mut requests).unwrap() {
            let req = ferry_proto::request::Request::parse(frame, &Default::default()).unwrap();
            let ferry_proto::request::Request::Events(batch) = req else {
                continue;
            };
            let Some(id) = batch.options.chunk else {
                continue;
            };
            let frame = ferry::output::forward::handshake::read_frame(
                &mut replay,
                &mut buf,
                &mut reply_dec,
            )
            .await
            .unwrap()
            .unwrap();
            let got = ferry_proto::ack::parse_ack(&frame).unwrap();
            assert_eq!(
                got.bytes, id.bytes,
                "{name}: Fluentd echoes the id with its newline"
            );
            answered += 1;
        }
        assert!(answered >= 1, "{name}");
    }
    // And ferry's own ack wait accepts a Fluentd ack for the id it sent.
    let (_, c2s, s2c) = vector("packed_forward_ack.app_db");
    let mut requests = BytesMut::from(&c2s[..]);
    let frame = FrameDecoder::new(1 << 24)
        .decode(&mut requests)
        .unwrap()
        .unwrap();
    let req = ferry_proto::request::Request::parse(frame, &Default::default()).unwrap();
    let ferry_proto::request::Request::Events(batch) = req else {
        panic!("not events")
    };
    let id = batch.options.chunk.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, &s2c)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut conn = Connection {
        stream: tokio_util::either::Either::Left(tcp),
        peer: addr,
        buf: BytesMut::new(),
        decoder: FrameDecoder::new(64 * 1024),
        reusable: true,
        opened: tokio::time::Instant::now(),
    };
    await_ack(&mut conn, "fluentd", &id, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    server.await.unwrap();
}

/// A server that speaks only `versions`.
fn server_tls_only(
    cert: &rcgen::Certificate,
    key: &KeyPair,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_min_version_and_tls_max_version_bound_what_the_client_offers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("ferry test CA");
    let (cert, key) = leaf(&ca, &["127.0.0.1"]);
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.pem());
    let only13 = FakeAggregator::start_with(
        AckPolicy::Ack,
        Some(server_tls_only(&cert, &key, &[&rustls::version::TLS13])),
        None,
    )
    .await;
    let only12 = FakeAggregator::start_with(
        AckPolicy::Ack,
        Some(server_tls_only(&cert, &key, &[&rustls::version::TLS12])),
        None,
    )
    .await;
    let send = |params: &str, port: u16| {
        let conf = tls_conf(
            &format!("  tls_cert_path {ca_path}\n{params}"),
            "127.0.0.1",
            "agg",
            port,
        );
        async move { send_one(&Forward::new("t", forward_config(&conf))).await }
    };
    // By default the client offers 1.2 and 1.3: both servers take it.
    send("", only13.port).await.unwrap();
    send("", only12.port).await.unwrap();
    // tls_max_version TLSv1_2: the 1.3-only server is refused.
    let err = send("  tls_max_version TLSv1_2\n", only13.port)
        .await
        .unwrap_err();
    assert!(matches!(err, ForwardError::Tls { .. }), "{err}");
    send("  tls_max_version TLSv1_2\n", only12.port)
        .await
        .unwrap();
    // tls_min_version TLSv1_3 (as tls_version TLSv1_3): the 1.2-only server is refused.
    for params in ["  tls_min_version TLSv1_3\n", "  tls_version TLSv1_3\n"] {
        let err = send(params, only12.port).await.unwrap_err();
        assert!(matches!(err, ForwardError::Tls { .. }), "{params}: {err}");
        send(params, only13.port).await.unwrap();
    }
    assert_eq!(only13.state.seqs().len(), 60);
    assert_eq!(only12.state.seqs().len(), 40);
}
