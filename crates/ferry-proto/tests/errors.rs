//! Each error class, and whether the connection can go on after it.

use bytes::{Bytes, BytesMut};
use ferry_proto::ack::{AckError, parse_ack};
use ferry_proto::compress::{CompressError, decompress, gzip_compress};
use ferry_proto::encode::{encode_message, encode_packed_forward, write_entry};
use ferry_proto::entries::{self, EntryError, InvalidReason};
use ferry_proto::handshake::{HandshakeError, Ping, Pong, REASON_INVALID_PING, parse_helo};
use ferry_proto::msgpack::{MsgpackError, Value};
use ferry_proto::options::OptionsError;
use ferry_proto::{
    Compression, EventTime, FrameDecoder, FrameError, Limits, Mode, Request, RequestError,
};

fn parse(bytes: &[u8]) -> Result<Request, RequestError> {
    Request::parse(Bytes::copy_from_slice(bytes), &Limits::default())
}

fn err(bytes: &[u8]) -> RequestError {
    parse(bytes).expect_err("refused")
}

#[test]
fn nil_is_a_no_op_request() {
    assert_eq!(parse(&[0xc0]).unwrap(), Request::Nil);
}

#[test]
fn refused_requests_keep_the_connection_in_sync() {
    type Case = (&'static [u8], fn(&RequestError) -> bool);
    let cases: Vec<Case> = vec![
        (b"\x01", |e| {
            matches!(e, RequestError::NotArray { found: "int" })
        }),
        (b"\x81\xa1k\x01", |e| {
            matches!(e, RequestError::NotArray { found: "map" })
        }),
        (b"\x91\xa1t", |e| {
            matches!(e, RequestError::BadArity { len: 1 })
        }),
        (b"\x95\xa1t\x01\x80\x80\x80", |e| {
            matches!(e, RequestError::BadArity { len: 5 })
        }),
        (b"\x92\xa1t\x01", |e| {
            matches!(e, RequestError::BadArity { len: 2 })
        }),
        (b"\x94\xa1t\x90\x80\x80", |e| {
            matches!(e, RequestError::BadArity { len: 4 })
        }),
        (b"\x93\x01\x90\x80", |e| {
            matches!(e, RequestError::TagNotStr { found: "int" })
        }),
        (b"\x92\xa2\xff\xfe\x90", |e| {
            matches!(e, RequestError::TagNotUtf8)
        }),
        (b"\x93\xa1t\x90\x01", |e| {
            matches!(e, RequestError::Options(OptionsError::NotMap { .. }))
        }),
        (b"\x93\xa1t\x90\x81\xa4size\xa1x", |e| {
            matches!(
                e,
                RequestError::Options(OptionsError::BadValue { key: "size", .. })
            )
        }),
        (b"\x93\xa1t\xc4\x03abc\x81\xaacompressed\xa3lz4", |e| {
            matches!(
                e,
                RequestError::Options(OptionsError::UnknownCompression { .. })
            )
        }),
        (b"\x93\xa1t\xc4\x03abc\x81\xaacompressed\xa4gzip", |e| {
            matches!(e, RequestError::Decompress(CompressError::Corrupt { .. }))
        }),
    ];
    for (bytes, check) in cases {
        let e = err(bytes);
        assert!(check(&e), "{bytes:02x?}: {e:?}");
        assert!(e.can_continue(), "{bytes:02x?}: {e}");
        assert!(!e.is_fatal());
    }
}

#[test]
fn bytes_that_are_not_one_value_are_fatal() {
    let truncated = err(b"\x93\xa1t\xc4\x05ab");
    assert!(matches!(
        truncated,
        RequestError::Malformed(MsgpackError::Truncated { .. })
    ));
    assert!(!truncated.can_continue());
    let trailing = err(b"\xc0\xc0");
    assert!(matches!(trailing, RequestError::TrailingBytes { extra: 1 }));
    assert!(trailing.is_fatal());
    assert!(matches!(
        err(b"\xc1"),
        RequestError::Malformed(MsgpackError::InvalidMarker { .. })
    ));
}

#[test]
fn a_decompression_bomb_is_refused_and_the_connection_goes_on() {
    let bomb = gzip_compress(&vec![0u8; 4 << 20]);
    let mut wire = BytesMut::new();
    encode_packed_forward(&mut wire, "t", &bomb, 1, None, Compression::Gzip);
    let limits = Limits {
        max_decompressed_bytes: 1 << 20,
    };
    let e = Request::parse(wire.freeze(), &limits).unwrap_err();
    assert!(
        matches!(&e, RequestError::Decompress(c) if c.is_too_large()),
        "{e}"
    );
    assert!(e.can_continue());
    assert!(
        decompress(Compression::Gzip, &bomb, 1 << 20)
            .unwrap_err()
            .is_too_large()
    );
}

#[test]
fn frame_errors_are_fatal_and_come_before_buffering() {
    // A str32 declaring 1 GiB with a 1 MiB limit: refused after its 5 header bytes.
    let mut d = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::from(&[0x93, 0xa1, b't', 0xdb, 0x40, 0x00, 0x00, 0x00][..]);
    let e = d.decode(&mut buf).unwrap_err();
    assert!(matches!(e, FrameError::TooLarge { needed, max: 1_048_576 } if needed > 1 << 30));
    assert!(e.is_fatal());
    // An array declaring 2^31 elements: each needs at least a byte.
    let mut d = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::from(&[0xdd, 0x80, 0x00, 0x00, 0x00][..]);
    assert!(matches!(
        d.decode(&mut buf),
        Err(FrameError::TooLarge { .. })
    ));
    // A header that is not complete yet is not an error.
    let mut d = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::from(&[0xdb, 0x40, 0x00][..]);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(&[0, 0]);
    assert!(d.decode(&mut buf).is_err());
}

#[test]
fn invalid_events_are_dropped_but_structural_breakage_is_an_error() {
    let mut s = BytesMut::new();
    write_entry(&mut s, EventTime::new(10, 1), false, b"\x81\xa1a\x01");
    let good_len = s.len();
    s.extend_from_slice(b"\x92\xcb\x41\xd9\x50\xd2\x00\x00\x00\x00\x80"); // float time
    s.extend_from_slice(b"\x92\xa3now\x80"); // str time
    s.extend_from_slice(b"\x92\x01\x91\x01"); // record not a map
    s.extend_from_slice(b"\x92\x92\x01\x01\x80"); // [time, metadata] with metadata not a map
    s.extend_from_slice(b"\x93\x01\x80\x80"); // not a 2-array
    s.extend_from_slice(b"\x92\xd3\xff\xff\xff\xff\xff\xff\xff\xff\x80"); // negative time
    s.extend_from_slice(b"\x92\x92\xc7\x08\x00\x00\x00\x00\x05\x00\x00\x00\x06\x81\xa1m\x01\x80"); // ext8 + metadata
    let stream = s.freeze();
    let reasons: Vec<_> = entries::iter(&stream)
        .filter_map(|e| match e {
            Err(EntryError::Invalid { reason, .. }) => Some(reason),
            Err(other) => panic!("{other}"),
            Ok(_) => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            InvalidReason::BadTimeType("float"),
            InvalidReason::BadTimeType("str"),
            InvalidReason::RecordNotMap("array"),
            InvalidReason::MetadataNotMap("int"),
            InvalidReason::NotAnEntry,
            InvalidReason::TimeOutOfRange,
        ]
    );
    let summary = entries::validate(&stream).unwrap();
    assert_eq!((summary.count, summary.invalid), (2, 6));
    assert_eq!(summary.min_time, Some(EventTime::new(5, 6)));
    let (clean, s2) = entries::sanitize(stream.clone()).unwrap();
    assert_eq!(s2, summary);
    let valid: Vec<_> = entries::iter(&clean).map(|e| e.unwrap()).collect();
    assert_eq!(valid.len(), 2);
    assert_eq!(valid[0].raw, &stream[..good_len]);
    assert_eq!(valid[1].metadata, Some(&b"\x81\xa1m\x01"[..]));

    let mut broken = stream.to_vec();
    broken.truncate(broken.len() - 1);
    let e = entries::validate(&broken).unwrap_err();
    assert!(e.is_structural());
    assert!(
        entries::sanitize(Bytes::from(broken))
            .unwrap_err()
            .is_structural()
    );
    assert!(
        entries::validate(b"\x92\x01\xc1")
            .unwrap_err()
            .is_structural()
    );
}

#[test]
fn message_mode_with_a_float_time_is_parsed_then_sanitized_away() {
    let mut wire = BytesMut::new();
    wire.extend_from_slice(b"\x93\xa1t\xcb\x41\xd9\x50\xd2\x00\x00\x00\x00\x81\xa1a\x01");
    let Request::Events(batch) = parse(&wire).unwrap() else {
        panic!()
    };
    assert_eq!(batch.mode, Mode::Message);
    let (clean, summary) = entries::sanitize(batch.entries).unwrap();
    assert_eq!((summary.count, summary.invalid, clean.len()), (0, 1, 0));
    let mut ok = BytesMut::new();
    encode_message(&mut ok, "t", EventTime::new(1, 0), true, b"\x80", None);
    assert_eq!(&ok[..], b"\x93\xa1t\x01\x80");
}

#[test]
fn ack_and_handshake_errors_are_classified() {
    assert_eq!(parse_ack(b"\x80"), Err(AckError::NoAck));
    assert!(matches!(
        parse_ack(b"\xa3ack"),
        Err(AckError::NotMap { found: "str" })
    ));
    let not_ping = b"\x93\xa7py.nohs\xd7\x00\x65\x53\xf2\x2c\x00\x00\x00\x00\x81\xa1n\x01";
    let e = Ping::parse(not_ping).unwrap_err();
    assert_eq!(e, HandshakeError::WrongKind { kind: "PING" });
    assert_eq!(e.reason(), REASON_INVALID_PING);
    let five = b"\x95\xa4PING\xa0\xa0\xa0\xa0";
    assert!(matches!(
        Ping::parse(five),
        Err(HandshakeError::WrongLength {
            expected: 6,
            found: 5,
            ..
        })
    ));
    assert!(matches!(
        Pong::parse(b"\x95\xa4PONG\x01\xa0\xa0\xa0"),
        Err(HandshakeError::BadField { .. })
    ));
    assert!(matches!(
        parse_helo(b"\x92\xa4HELO\x80"),
        Err(HandshakeError::BadField { field: "nonce", .. })
    ));
    let fluent_bit_helo = b"\x92\xa4HELO\x82\xa5nonce\xa2\xff\x00\xa4auth\xa0";
    let helo = parse_helo(fluent_bit_helo).unwrap();
    assert!(helo.keepalive);
    assert_eq!(&helo.nonce[..], b"\xff\x00");
    assert!(matches!(
        Ping::parse(b"\x96\xa4PI"),
        Err(HandshakeError::Malformed { .. })
    ));
    assert_eq!(
        Value::decode(b"\x91").unwrap_err(),
        MsgpackError::Truncated { offset: 0 }
    );
}

#[test]
fn handshake_checks_name_the_failure() {
    use ferry_proto::handshake::{
        PingRejection, PongRejection, check_ping, check_pong, password_digest, shared_key_digest,
    };
    let (nonce, auth, salt, key) = (&[1u8; 16][..], &[2u8; 16][..], b"salt", b"key");
    let ping = Ping {
        hostname: Bytes::from_static(b"client"),
        shared_key_salt: Bytes::from_static(salt),
        shared_key_hexdigest: shared_key_digest(salt, b"client", nonce, key).into(),
        username: Bytes::from_static(b"alice"),
        password_hexdigest: password_digest(auth, b"alice", b"pw").into(),
    };
    assert_eq!(check_ping(&ping, nonce, auth, key, None), Ok(()));
    let users: [(&[u8], &[u8]); 2] = [(b"bob", b"pw"), (b"alice", b"pw")];
    assert_eq!(check_ping(&ping, nonce, auth, key, Some(&users)), Ok(()));
    let wrong: [(&[u8], &[u8]); 1] = [(b"alice", b"other")];
    let e = check_ping(&ping, nonce, auth, key, Some(&wrong)).unwrap_err();
    assert_eq!(
        (e, e.reason()),
        (PingRejection::UserMismatch, "username/password mismatch")
    );
    let e = check_ping(&ping, nonce, auth, b"other key", None).unwrap_err();
    assert_eq!(
        (e, e.reason()),
        (PingRejection::SharedKeyMismatch, "shared_key mismatch")
    );

    let digest = shared_key_digest(salt, b"server", nonce, key);
    let pong = Pong::success(b"server", digest.as_bytes());
    assert_eq!(check_pong(&pong, b"client", salt, nonce, key), Ok(()));
    assert_eq!(
        check_pong(&pong, b"server", salt, nonce, key),
        Err(PongRejection::SameHostname)
    );
    assert_eq!(
        check_pong(&pong, b"client", salt, nonce, b"x"),
        Err(PongRejection::SharedKeyMismatch)
    );
    let failed = Pong::failure("shared_key mismatch");
    assert_eq!(
        &failed.encode()[..],
        b"\x95\xa4PONG\xc2\xb3shared_key mismatch\xa0\xa0"
    );
    assert!(matches!(
        check_pong(&failed, b"client", salt, nonce, key),
        Err(PongRejection::AuthFailed { reason }) if reason == "shared_key mismatch"
    ));
}
