//! The load generator against the counting receiver over real sockets.
#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use ferry_bench::conn::Target;
use ferry_bench::receiver::{Receiver, ReceiverConfig};
use ferry_bench::record::RecordShape;
use ferry_bench::sender::{self, SendConfig, SendError, SendProgress};
use ferry_proto::encode::{
    encode_forward, encode_message, encode_packed_forward, gzip_compress, write_entry,
};
use ferry_proto::{ChunkId, Compression, EventTime, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn receiver(shared_key: Option<&str>) -> Receiver {
    Receiver::start(ReceiverConfig {
        bind: "127.0.0.1:0".into(),
        shared_key: shared_key.map(str::to_owned),
        self_hostname: "receiver".into(),
    })
    .await
    .unwrap()
}

fn config(port: u16, shared_key: Option<&str>) -> SendConfig {
    SendConfig {
        target: Target {
            to: format!("127.0.0.1:{port}"),
            tls_ca: None,
            shared_key: shared_key.map(str::to_owned),
            self_hostname: "sender".into(),
        },
        tag: "bench.test".into(),
        connections: 3,
        batch: 250,
        record_size: 120,
        acks: true,
        inflight: 4,
        rate: None,
        events: Some(10_001),
        duration: None,
        stream_base: 10,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_event_is_counted_once_with_no_loss() {
    let rx = receiver(None).await;
    let progress = Arc::new(SendProgress::default());
    let report = sender::run(
        config(rx.port, None),
        Arc::clone(&progress),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    assert_eq!(report.events, 10_001);
    assert_eq!(report.per_stream.len(), 3);
    assert_eq!(report.per_stream.values().sum::<u64>(), 10_001);
    assert_eq!(progress.acked_events.load(Ordering::Relaxed), 10_001);
    assert_eq!(report.acks.len() as u64, report.requests);
    let r = rx.state.snapshot().report(Some(&report.per_stream));
    assert_eq!(
        (r.received, r.distinct, r.lost, r.duplicated, r.unexpected),
        (10_001, 10_001, 0, 0, 0)
    );
    assert_eq!(rx.state.unnumbered.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_key_handshake_admits_the_right_key_and_refuses_a_wrong_one() {
    let rx = receiver(Some("s3cret")).await;
    let mut cfg = config(rx.port, Some("s3cret"));
    cfg.events = Some(2000);
    let report = sender::run(
        cfg,
        Arc::new(SendProgress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    let r = rx.state.snapshot().report(Some(&report.per_stream));
    assert_eq!((r.distinct, r.lost, r.duplicated), (2000, 0, 0));

    let mut bad = config(rx.port, Some("wrong"));
    bad.connections = 1;
    let err = sender::run(
        bad,
        Arc::new(SendProgress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SendError::Conn { .. }), "{err}");
    assert!(err.to_string().contains("shared_key mismatch"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_and_a_duration_bound_a_run_without_acks() {
    let rx = receiver(None).await;
    let mut cfg = config(rx.port, None);
    cfg.acks = false;
    cfg.events = None;
    cfg.connections = 2;
    cfg.batch = 50;
    cfg.rate = Some(2000.0);
    cfg.duration = Some(Duration::from_millis(800));
    let report = sender::run(
        cfg,
        Arc::new(SendProgress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    // 2000 events/s for 0.8 s, in requests of 50 per connection: about 1600.
    assert!(
        (1200..=1800).contains(&report.events),
        "{} events",
        report.events
    );
    assert!(report.acks.is_empty());
    let done = tokio::time::timeout(Duration::from_secs(5), async {
        while rx.state.snapshot().distinct() < report.events {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(done.is_ok(), "the receiver got every event");
    let r = rx.state.snapshot().report(Some(&report.per_stream));
    assert_eq!((r.lost, r.duplicated), (0, 0));
}

fn entries(stream: u32, seqs: std::ops::Range<u64>) -> BytesMut {
    let shape = RecordShape::new(60);
    let mut out = BytesMut::new();
    for seq in seqs {
        let mut rec = BytesMut::new();
        shape.write_msgpack(&mut rec, stream, seq);
        write_entry(&mut out, EventTime::new(1_700_000_000, 0), false, &rec);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_modes_are_decoded_acked_and_counted() {
    let rx = receiver(None).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", rx.port))
        .await
        .unwrap();
    let chunk = |id: &str| ChunkId::str(id.as_bytes().to_vec());
    let mut req = BytesMut::new();
    // Message mode: one event.
    let shape = RecordShape::new(60);
    let mut rec = BytesMut::new();
    shape.write_msgpack(&mut rec, 1, 0);
    let opts = Options {
        chunk: Some(chunk("m")),
        ..Options::default()
    };
    encode_message(
        &mut req,
        "t",
        EventTime::new(1, 0),
        false,
        &rec,
        Some(&opts),
    );
    // Forward mode: events 1..11.
    let opts = Options {
        chunk: Some(chunk("f")),
        ..Options::default()
    };
    encode_forward(&mut req, "t", &entries(1, 1..11), 10, Some(&opts));
    // PackedForward: 11..111.
    encode_packed_forward(
        &mut req,
        "t",
        &entries(1, 11..111),
        100,
        Some(&chunk("p")),
        Compression::Text,
    );
    // A nil keepalive, then CompressedPackedForward: 111..1111.
    req.extend_from_slice(&[0xc0]);
    let gz = gzip_compress(&entries(1, 111..1111));
    encode_packed_forward(
        &mut req,
        "t",
        &gz,
        1000,
        Some(&chunk("c")),
        Compression::Gzip,
    );
    s.write_all(&req).await.unwrap();
    let mut acks = Vec::new();
    let expected = ferry_proto::ack::encode_ack(&chunk("m")).len() * 4;
    while acks.len() < expected {
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {} ack bytes", acks.len());
        acks.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        acks,
        b"\x81\xa3ack\xa1m\x81\xa3ack\xa1f\x81\xa3ack\xa1p\x81\xa3ack\xa1c"
    );
    let r = rx
        .state
        .snapshot()
        .report(Some(&[(1, 1111)].into_iter().collect()));
    assert_eq!((r.received, r.lost, r.duplicated), (1111, 0, 0));
    assert_eq!(rx.state.requests.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn heartbeats_are_answered_on_the_same_port() {
    let rx = receiver(None).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(&[0], ("127.0.0.1", rx.port)).await.unwrap();
    let mut buf = [9u8; 8];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], &[0]);
}
