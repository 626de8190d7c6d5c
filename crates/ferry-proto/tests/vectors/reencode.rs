//! What ferry encodes for the content of each capture decodes back to the same events, and is
//! byte-for-byte what the real peer sent where ferry follows that peer's encoding choices
//! (Fluentd's PackedForward, fluent-logger's Message mode, every ack, HELO, PING and PONG).

use bytes::BytesMut;
use ferry_proto::encode::{encode_forward, encode_message, encode_packed_forward, gzip_compress};
use ferry_proto::handshake::encode_helo;
use ferry_proto::msgpack::{Reader, Value};
use ferry_proto::{Compression, EventBatch, Limits, Mode, Request, ack, entries};

use super::support::load::load_all;
use super::{Msg, decode_vector};

fn parse(bytes: BytesMut) -> EventBatch {
    match Request::parse(bytes.freeze(), &Limits::default()).expect("ferry's own encoding parses") {
        Request::Events(b) => b,
        Request::Nil => panic!("ferry's encoding parsed as nil"),
    }
}

/// Re-encode `batch` in every mode ferry can send and check each parses to the same events.
fn roundtrip_every_mode(what: &str, batch: &EventBatch) {
    let count = entries::validate(&batch.entries).expect("valid").count;
    let chunk = batch.options.chunk.as_ref();
    let mut out = BytesMut::new();
    encode_packed_forward(
        &mut out,
        &batch.tag,
        &batch.entries,
        count,
        chunk,
        Compression::Text,
    );
    let b = parse(out);
    assert_eq!(
        (b.mode, &b.tag, &b.entries),
        (Mode::PackedForward, &batch.tag, &batch.entries),
        "{what}"
    );
    assert_eq!(
        (b.options.size, b.options.chunk.as_ref()),
        (Some(count), chunk),
        "{what}"
    );

    let mut out = BytesMut::new();
    let gz = gzip_compress(&batch.entries);
    encode_packed_forward(&mut out, &batch.tag, &gz, count, chunk, Compression::Gzip);
    let b = parse(out);
    assert_eq!(
        (b.mode, &b.entries),
        (Mode::CompressedPackedForward, &batch.entries),
        "{what}"
    );

    let mut out = BytesMut::new();
    encode_forward(
        &mut out,
        &batch.tag,
        &batch.entries,
        count,
        Some(&batch.options),
    );
    let b = parse(out);
    assert_eq!(
        (b.mode, &b.entries, &b.options),
        (Mode::Forward, &batch.entries, &batch.options),
        "{what}"
    );

    if let [Ok(e)] = entries::iter(&batch.entries).collect::<Vec<_>>()[..] {
        if e.metadata.is_none() {
            let mut out = BytesMut::new();
            encode_message(
                &mut out,
                &batch.tag,
                e.time,
                e.int_time,
                e.record,
                Some(&batch.options),
            );
            let b = parse(out);
            assert_eq!(
                (b.mode, &b.entries),
                (Mode::Message, &batch.entries),
                "{what}"
            );
        }
    }
}

/// Keys of the options map of a request frame, in wire order (empty without options).
fn option_keys(frame: &[u8], mode: Mode) -> Vec<String> {
    let (v, _) = Value::decode(frame).expect("frame");
    let Value::Array(items) = v else {
        return vec![];
    };
    let at = if mode == Mode::Message { 3 } else { 2 };
    match items.get(at) {
        Some(Value::Map(pairs)) => pairs
            .iter()
            .map(|(k, _)| {
                String::from_utf8_lossy(k.as_str_bytes().unwrap_or_default()).into_owned()
            })
            .collect(),
        _ => vec![],
    }
}

/// The payload bytes of a PackedForward frame exactly as sent, and whether its header was str32.
fn payload_as_sent(frame: &[u8]) -> (&[u8], bool) {
    let mut r = Reader::new(frame);
    r.array_len().expect("array");
    r.str().expect("tag");
    let str32 = frame[r.pos()] == 0xdb;
    (r.str_or_bin().expect("payload").0, str32)
}

#[test]
fn ferry_reencodes_captured_requests_to_the_same_events_and_bytes() {
    let mut roundtrips = 0;
    let mut identical = Vec::new();
    for v in load_all().vectors {
        let (c2s, _) = decode_vector(&v);
        for d in &c2s {
            let Msg::Batch(batch) = &d.msg else { continue };
            let what = format!("{}: {:?} request", v.name, batch.mode);
            roundtrip_every_mode(&what, batch);
            roundtrips += 1;
            let count = entries::validate(&batch.entries).expect("valid").count;
            let keys = option_keys(&d.frame, batch.mode);
            let fluentd_order =
                keys == ["size", "compressed"] || keys == ["size", "compressed", "chunk"];
            match batch.mode {
                Mode::PackedForward | Mode::CompressedPackedForward => {
                    let (payload, str32) = payload_as_sent(&d.frame);
                    if str32 && fluentd_order {
                        let mut out = BytesMut::new();
                        let compressed = batch.options.compressed.expect("compressed option");
                        let chunk = batch.options.chunk.as_ref();
                        encode_packed_forward(
                            &mut out, &batch.tag, payload, count, chunk, compressed,
                        );
                        assert_eq!(&out[..], &d.frame[..], "{what}: out_forward bytes");
                        assert_eq!(batch.options.size, Some(count), "{what}: size option");
                        identical.push(v.name.clone());
                    }
                }
                Mode::Message if keys.is_empty() && batch.options.is_empty() => {
                    let e = entries::iter(&batch.entries)
                        .next()
                        .expect("one entry")
                        .expect("valid");
                    let mut out = BytesMut::new();
                    encode_message(&mut out, &batch.tag, e.time, e.int_time, e.record, None);
                    if out[..] == d.frame[..] {
                        identical.push(v.name.clone());
                    } else {
                        assert_eq!(d.frame[0], 0x93, "{what}: only the array header may differ");
                    }
                }
                _ => {}
            }
        }
    }
    println!("{roundtrips} requests re-encoded in every mode; byte-identical: {identical:?}");
    assert!(roundtrips > 50, "{roundtrips}");
    let out_forward = identical
        .iter()
        .filter(|n| {
            n.starts_with("packed_forward")
                || n.starts_with("compressed")
                || n.starts_with("handshake_")
        })
        .count();
    assert!(
        out_forward >= 14,
        "Fluentd out_forward requests reproduced: {out_forward}"
    );
    assert!(
        identical.iter().any(|n| n.starts_with("fluent_logger")),
        "fluent-logger Message mode"
    );
}

#[test]
fn acks_helo_ping_and_pong_are_reproduced_byte_for_byte() {
    let (mut acks, mut helos, mut pings, mut pongs) = (0, 0, 0, 0);
    for v in load_all().vectors {
        let (c2s, s2c) = decode_vector(&v);
        let chunks: Vec<_> = c2s
            .iter()
            .filter_map(|d| match &d.msg {
                Msg::Batch(b) => b.options.chunk.clone(),
                _ => None,
            })
            .collect();
        let replies: Vec<_> = s2c
            .iter()
            .filter(|d| matches!(d.msg, Msg::Ack(_)))
            .collect();
        if v.s2c.is_some() && v.s2c.as_ref().is_some_and(|s| s.json_text.is_none()) {
            assert_eq!(
                replies.len(),
                chunks.len(),
                "{}: one ack per request with chunk",
                v.name
            );
        }
        for (chunk, reply) in chunks.iter().zip(&replies) {
            assert_eq!(ack::encode_ack(chunk), reply.frame, "{}: ack bytes", v.name);
            acks += 1;
        }
        for d in c2s.iter().chain(&s2c) {
            match &d.msg {
                Msg::Helo(h) => {
                    let fluentd_form = Value::decode(&d.frame).is_ok_and(|(v, _)| {
                        matches!(v, Value::Array(ref a) if matches!(a[1].get("nonce"), Some(Value::Bin(_))) && a[1].get("keepalive").is_some())
                    });
                    if fluentd_form {
                        assert_eq!(
                            encode_helo(&h.nonce, &h.auth, h.keepalive),
                            d.frame,
                            "{}: HELO",
                            v.name
                        );
                        helos += 1;
                    }
                }
                Msg::Ping(p) => {
                    assert_eq!(p.encode(), d.frame, "{}: PING", v.name);
                    pings += 1;
                }
                Msg::Pong(p) => {
                    assert_eq!(p.encode(), d.frame, "{}: PONG", v.name);
                    pongs += 1;
                }
                _ => {}
            }
        }
    }
    println!("reproduced {acks} acks, {helos} HELOs, {pings} PINGs, {pongs} PONGs");
    assert!(
        acks >= 14 && helos >= 14 && pings >= 12 && pongs >= 14,
        "{acks} {helos} {pings} {pongs}"
    );
}
