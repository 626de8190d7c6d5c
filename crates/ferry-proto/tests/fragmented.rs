//! Frames arriving in fragments: results do not depend on how reads are cut, pending lengths are
//! known early, and the decoder's work stays linear however small the reads are.

use bytes::{Bytes, BytesMut};
use ferry_proto::encode::{encode_forward, encode_packed_forward, write_entry};
use ferry_proto::handshake::{Ping, encode_helo};
use ferry_proto::{Compression, EventTime, FrameDecoder, Limits, Mode, Request, ack, entries};

fn record(i: u64) -> Vec<u8> {
    let mut r = BytesMut::new();
    ferry_proto::msgpack::write_map_len(&mut r, 2);
    ferry_proto::msgpack::write_str(&mut r, b"message");
    ferry_proto::msgpack::write_str(
        &mut r,
        format!("line number {i} of the test log").as_bytes(),
    );
    ferry_proto::msgpack::write_str(&mut r, b"n");
    ferry_proto::msgpack::write_uint(&mut r, i);
    r.to_vec()
}

fn stream_of(n: u64) -> BytesMut {
    let mut s = BytesMut::new();
    for i in 0..n {
        write_entry(
            &mut s,
            EventTime::new(1_700_000_000 + i as u32, i as u32),
            false,
            &record(i),
        );
    }
    s
}

#[test]
fn a_4_mib_frame_arriving_a_byte_at_a_time_costs_linear_work() {
    // Forward mode: every entry header must be scanned, none of it can be jumped over.
    let mut entries = BytesMut::new();
    let mut count = 0;
    while entries.len() < 4 << 20 {
        write_entry(
            &mut entries,
            EventTime::new(count, 0),
            count % 2 == 0,
            &record(u64::from(count)),
        );
        count += 1;
    }
    let mut frame = BytesMut::new();
    encode_forward(&mut frame, "big", &entries, u64::from(count), None);
    let mut d = FrameDecoder::new(8 << 20);
    let mut buf = BytesMut::with_capacity(frame.len());
    let mut got = None;
    for (i, b) in frame.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        if let Some(f) = d.decode(&mut buf).unwrap() {
            assert_eq!(i, frame.len() - 1, "frame completed early");
            got = Some(f);
        }
    }
    let got = got.expect("frame completed");
    assert_eq!(got.len(), frame.len());
    let scanned = d.scanned_bytes();
    assert!(
        scanned <= 2 * frame.len() as u64,
        "scanned {scanned} bytes for a {} byte frame",
        frame.len()
    );
    let Request::Events(batch) = Request::parse(got, &Limits::default()).unwrap() else {
        panic!()
    };
    assert_eq!(
        entries::validate(&batch.entries).unwrap().count,
        u64::from(count)
    );
}

#[test]
fn a_packed_payload_is_jumped_over_and_its_size_known_from_the_header() {
    let entries = stream_of(2000);
    let mut frame = BytesMut::new();
    encode_packed_forward(&mut frame, "app", &entries, 2000, None, Compression::Text);
    let mut d = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::from(&frame[..20]);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    // Header seen: the decoder knows the frame spans the whole payload and one more value
    // (the options map, 25 bytes here).
    assert!(d.pending_len() <= frame.len(), "{}", d.pending_len());
    assert_eq!(frame.len() - d.pending_len(), 25 - 1);
    for chunk in frame[20..].chunks(1000) {
        buf.extend_from_slice(chunk);
        if let Some(f) = d.decode(&mut buf).unwrap() {
            assert_eq!(f, frame);
        }
    }
    assert!(
        d.scanned_bytes() < 100,
        "payload bytes were scanned: {}",
        d.scanned_bytes()
    );
    assert_eq!(d.pending_len(), 0);
}

#[test]
fn a_connection_transcript_decodes_the_same_for_any_read_size() {
    // HELO, PING-like client traffic, requests, nil keepalives and acks on one byte stream.
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&encode_helo(&[7; 16], &[9; 16], true));
    let ping = Ping {
        hostname: Bytes::from_static(b"client"),
        shared_key_salt: Bytes::from_static(b"salt"),
        shared_key_hexdigest: Bytes::from_static(b"00"),
        username: Bytes::new(),
        password_hexdigest: Bytes::new(),
    };
    wire.extend_from_slice(&ping.encode());
    let chunk = ferry_proto::ChunkId::str("abc");
    encode_packed_forward(
        &mut wire,
        "a.b",
        &stream_of(50),
        50,
        Some(&chunk),
        Compression::Text,
    );
    wire.extend_from_slice(&[0xc0]);
    encode_forward(&mut wire, "a.c", &stream_of(3), 3, None);
    wire.extend_from_slice(&ack::encode_ack(&chunk));
    let reference = split(&wire, wire.len());
    assert_eq!(reference.len(), 6);
    for read_size in [1, 2, 3, 5, 7, 64, 1000] {
        assert_eq!(split(&wire, read_size), reference, "read size {read_size}");
    }
    let Request::Events(b) = Request::parse(reference[2].clone(), &Limits::default()).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (b.mode, b.tag.as_str(), b.options.chunk),
        (Mode::PackedForward, "a.b", Some(chunk))
    );
    assert_eq!(
        Request::parse(reference[3].clone(), &Limits::default()).unwrap(),
        Request::Nil
    );
}

fn split(wire: &[u8], read_size: usize) -> Vec<Bytes> {
    let mut d = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for read in wire.chunks(read_size) {
        buf.extend_from_slice(read);
        while let Some(f) = d.decode(&mut buf).expect("valid stream") {
            frames.push(f);
        }
    }
    assert!(buf.is_empty() && !d.in_frame());
    frames
}
