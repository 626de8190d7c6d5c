use super::*;
use proptest::prelude::*;

fn call(transport: Transport, entries: &[(&[u8], &[u8])]) -> BytesMut {
    let mut out = BytesMut::new();
    log_call(&mut out, 7, entries.iter().copied(), transport);
    out
}

#[test]
fn a_log_call_round_trips_on_both_transports_whole_or_in_pieces() {
    let entries: Vec<(&[u8], &[u8])> =
        vec![(b"app", b"hello"), (b"web.access", b""), (b"x", b"line\n")];
    for transport in [Transport::Framed, Transport::Unframed] {
        let bytes = call(transport, &entries);
        let mut d = Decoder::new(transport, 1 << 20);
        let mut buf = BytesMut::new();
        let mut got = None;
        for b in bytes.iter() {
            buf.put_u8(*b);
            if let Some(m) = d.decode(&mut buf).unwrap() {
                got = Some(m);
            }
        }
        let m = got.expect("a message");
        assert!(buf.is_empty());
        assert_eq!(
            (&m.name[..], m.kind, m.seqid, m.strict),
            (&b"Log"[..], CALL, 7, false)
        );
        assert_eq!(log_entries(&m.body).unwrap(), entries);
    }
}

#[test]
fn strict_headers_are_read_and_replies_use_the_callers_form() {
    // getStatus() with a strict header, framed.
    let mut out = BytesMut::new();
    out.put_u32(0);
    out.put_u32(0x8001_0001);
    out.put_i32(9);
    out.put_slice(b"getStatus");
    out.put_i32(42);
    out.put_u8(ttype::STOP);
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    let m = Decoder::new(Transport::Framed, 1024)
        .decode(&mut out)
        .unwrap()
        .unwrap();
    assert!(m.strict);
    assert_eq!(&m.name[..], b"getStatus");
    let mut r = BytesMut::new();
    reply(&mut r, &m, &Value::I32(2), Transport::Framed);
    let back = Decoder::new(Transport::Framed, 1024)
        .decode(&mut r)
        .unwrap()
        .unwrap();
    assert_eq!((back.kind, back.seqid, back.strict), (REPLY, 42, true));
    assert_eq!(answer(&back).unwrap(), Answer::I32(2));
}

#[test]
fn an_exception_reads_back_with_its_kind_and_message() {
    let mut r = BytesMut::new();
    exception(
        &mut r,
        b"Nope",
        3,
        false,
        UNKNOWN_METHOD,
        "unknown method Nope",
        Transport::Unframed,
    );
    let m = Decoder::new(Transport::Unframed, 1024)
        .decode(&mut r)
        .unwrap()
        .unwrap();
    assert_eq!(
        answer(&m).unwrap(),
        Answer::Exception {
            kind: UNKNOWN_METHOD,
            message: "unknown method Nope".into()
        }
    );
}

#[test]
fn bad_input_is_an_error_that_says_what() {
    // A frame over the limit is refused before it is held.
    let mut b = BytesMut::from(&[0u8, 0x10, 0, 0, 1][..]);
    let e = Decoder::new(Transport::Framed, 1024)
        .decode(&mut b)
        .unwrap_err();
    assert!(
        matches!(
            e,
            ThriftError::FrameTooLarge {
                size: 0x10_0000,
                ..
            }
        ),
        "{e}"
    );
    // An unframed message growing past the limit.
    let mut b = call(Transport::Unframed, &[(b"a", &[b'x'; 2000])]);
    b.truncate(1500);
    let e = Decoder::new(Transport::Unframed, 1024)
        .decode(&mut b)
        .unwrap_err();
    assert!(matches!(e, ThriftError::MessageTooLarge { .. }), "{e}");
    // A frame whose message ends early.
    let mut whole = call(Transport::Unframed, &[(b"a", b"b")]);
    whole.truncate(whole.len() - 3);
    let mut b = BytesMut::new();
    b.put_u32(whole.len() as u32);
    b.extend_from_slice(&whole);
    let e = Decoder::new(Transport::Framed, 1024)
        .decode(&mut b)
        .unwrap_err();
    // The string cut short is longer than what is left of the frame.
    assert!(
        matches!(e, ThriftError::Truncated | ThriftError::Length(_)),
        "{e}"
    );
    // Field 1 of Log's arguments is not a list.
    let args = [ttype::I32, 0, 1, 0, 0, 0, 5, ttype::STOP];
    assert!(matches!(
        log_entries(&args),
        Err(ThriftError::WrongType { field: 1, .. })
    ));
    // A list longer than its bytes.
    let args = [
        ttype::LIST,
        0,
        1,
        ttype::STRUCT,
        0x7f,
        0xff,
        0xff,
        0xff,
        ttype::STOP,
    ];
    assert!(matches!(log_entries(&args), Err(ThriftError::Length(_))));
    // An unframed client on a framed server.
    let mut b = BytesMut::from(&[0x80u8, 0x01, 0, 1, 0, 0, 0, 3][..]);
    let e = Decoder::new(Transport::Framed, 1024)
        .decode(&mut b)
        .unwrap_err();
    assert!(e.to_string().contains("is_framed false"), "{e}");
    // An unknown type inside a struct.
    let mut b = BytesMut::new();
    b.put_i32(3);
    b.put_slice(b"Log");
    b.put_u8(CALL);
    b.put_i32(1);
    b.put_slice(&[99, 0, 1, ttype::STOP]);
    let e = Decoder::new(Transport::Unframed, 1024)
        .decode(&mut b)
        .unwrap_err();
    assert_eq!(e, ThriftError::UnknownType(99));
}

proptest! {
    #[test]
    fn no_bytes_make_the_decoder_panic(data in proptest::collection::vec(any::<u8>(), 0..600), framed in any::<bool>()) {
        crate::fuzzing::thrift(&[&[u8::from(framed)], &data[..]].concat());
    }

    #[test]
    fn any_entries_round_trip(entries in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..200)), 0..30)) {
        let pairs: Vec<(&[u8], &[u8])> = entries.iter().map(|(c, m)| (&c[..], &m[..])).collect();
        for t in [Transport::Framed, Transport::Unframed] {
            let mut b = call(t, &pairs);
            let m = Decoder::new(t, 1 << 20).decode(&mut b).unwrap().unwrap();
            prop_assert_eq!(log_entries(&m.body).unwrap(), pairs.clone());
        }
    }
}
