//! The load generator over TLS: the server certificate is verified against `--tls-ca`.
#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ferry_bench::conn::{Target, ValueReader};
use ferry_bench::record::seq_from_msgpack;
use ferry_bench::sender::{self, SendConfig, SendError, SendProgress};
use ferry_bench::seq::SeqCounter;
use ferry_proto::{Limits, Request, entries};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;

struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone()];
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, PrivateKeyDer::try_from(key.serialize_der()).unwrap())
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

/// A one-connection TLS Forward server that counts and acks.
async fn serve_one(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
) -> SeqCounter {
    let (tcp, _) = listener.accept().await.unwrap();
    let stream = tokio_rustls::TlsAcceptor::from(tls)
        .accept(tcp)
        .await
        .unwrap();
    let (rd, mut wr) = tokio::io::split(stream);
    let mut frames = ValueReader::new(rd, 64 << 20);
    let mut counter = SeqCounter::new();
    while let Some(frame) = frames.next().await.unwrap() {
        let Request::Events(batch) = Request::parse(frame, &Limits::default()).unwrap() else {
            continue;
        };
        for e in entries::iter(&batch.entries) {
            let (stream, seq) = seq_from_msgpack(e.unwrap().record).unwrap();
            counter.record(stream, seq);
        }
        let chunk = batch.options.chunk.unwrap();
        wr.write_all(&ferry_proto::ack::encode_ack(&chunk))
            .await
            .unwrap();
    }
    counter
}

fn config(port: u16, ca: std::path::PathBuf) -> SendConfig {
    SendConfig {
        target: Target {
            to: format!("127.0.0.1:{port}"),
            tls_ca: Some(ca),
            shared_key: None,
            self_hostname: "sender".into(),
        },
        tag: "bench.tls".into(),
        connections: 1,
        batch: 100,
        record_size: 100,
        acks: true,
        inflight: 2,
        rate: None,
        events: Some(1000),
        duration: None,
        stream_base: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_over_tls_arrive_complete() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve_one(listener, pki.server));
    let report = sender::run(
        config(port, ca),
        Arc::new(SendProgress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    let counted = server.await.unwrap();
    let r = counted.report(Some(&report.per_stream));
    assert_eq!((r.received, r.lost, r.duplicated), (1000, 0, 0));
    assert_eq!(report.acks.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_the_ca_did_not_sign_is_refused() {
    let (trusted, server) = (pki(), pki());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, &trusted.ca_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = server.server;
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await;
    });
    let err = sender::run(
        config(port, ca),
        Arc::new(SendProgress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SendError::Conn { .. }), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
}
