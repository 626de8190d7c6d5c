//! Entry points for the fuzz targets (`fuzz/fuzz_targets/*.rs`) and the no-panic property
//! tests. Each takes arbitrary bytes, drives every decoder over them, and checks the invariants
//! that must hold for any input (a decoded handshake message re-encodes to one that decodes the
//! same). A panic here is a bug.

use bytes::{Bytes, BytesMut};

use crate::compress::decompress;
use crate::entries;
use crate::frame::FrameDecoder;
use crate::handshake::{Ping, Pong, encode_helo, parse_helo};
use crate::msgpack::Value;
use crate::options::Compression;
use crate::request::{Limits, Request};
use crate::{ack, heartbeat};

const MAX_FRAME: usize = 1 << 20;
const LIMITS: Limits = Limits {
    max_decompressed_bytes: 1 << 20,
};

/// The request path: the bytes split at a point chosen by the first byte, fed to a
/// [`FrameDecoder`] in two parts; every frame parsed into a request and its entries walked,
/// sanitized and rendered. Also the entry walker, the value decoder and the decompressors on the
/// raw bytes.
pub fn codec(data: &[u8]) {
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut decoder = FrameDecoder::new(MAX_FRAME);
    let mut buf = BytesMut::from(&data[..split]);
    let mut frames = Vec::new();
    let mut failed = drain(&mut decoder, &mut buf, &mut frames);
    if !failed {
        buf.extend_from_slice(&data[split..]);
        failed = drain(&mut decoder, &mut buf, &mut frames);
    }
    if !failed {
        assert!(decoder.pending_len() == 0 || decoder.in_frame());
    }
    for frame in frames {
        request(frame);
    }
    walk_entries(Bytes::copy_from_slice(data));
    if let Ok((v, used)) = Value::decode(data) {
        assert!(used <= data.len());
        let mut json = String::new();
        v.write_json(&mut json);
        // Compared as bytes: a NaN float decodes and re-encodes to the same bits but is not
        // equal to itself.
        let bytes = v.to_bytes();
        assert_eq!(
            Value::decode(&bytes).map(|(w, _)| w.to_bytes()),
            Ok(bytes.clone())
        );
    }
    for kind in [Compression::Gzip, Compression::Zstd] {
        if let Ok(out) = decompress(kind, data, 1 << 16) {
            assert!(out.len() <= 1 << 16);
        }
    }
}

/// Decode frames until more bytes are needed; true on a (fatal) frame error.
fn drain(decoder: &mut FrameDecoder, buf: &mut BytesMut, frames: &mut Vec<Bytes>) -> bool {
    loop {
        match decoder.decode(buf) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= MAX_FRAME);
                frames.push(frame);
            }
            Ok(None) => return false,
            Err(e) => {
                assert!(e.is_fatal());
                return true;
            }
        }
    }
}

fn request(frame: Bytes) {
    match Request::parse(frame, &LIMITS) {
        Ok(Request::Events(batch)) => walk_entries(batch.entries),
        Ok(Request::Nil) => {}
        Err(e) => {
            // A frame split by FrameDecoder is exactly one value: refusing it never loses sync.
            assert!(e.can_continue(), "{e}");
        }
    }
}

fn walk_entries(stream: Bytes) {
    let summary = entries::validate(&stream);
    let mut valid = 0u64;
    for e in entries::iter(&stream) {
        match e {
            Ok(entry) => {
                valid += 1;
                if let Ok((record, _)) = Value::decode(entry.record) {
                    let mut json = String::new();
                    record.write_json(&mut json);
                }
            }
            Err(err) if err.is_structural() => break,
            Err(_) => {}
        }
    }
    match (summary, entries::sanitize(stream)) {
        (Ok(s), Ok((clean, s2))) => {
            assert_eq!(s, s2);
            assert_eq!(s.count, valid);
            let again = entries::validate(&clean).expect("a sanitized stream is valid");
            assert_eq!((again.count, again.invalid), (s.count, 0));
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("validate {a:?} and sanitize {b:?} disagree"),
    }
}

/// The handshake and ack parsers on arbitrary bytes; whatever parses must re-encode to bytes that
/// parse to the same message.
pub fn handshake(data: &[u8]) {
    if let Ok(helo) = parse_helo(data) {
        let again = parse_helo(&encode_helo(&helo.nonce, &helo.auth, helo.keepalive));
        assert_eq!(again, Ok(helo));
    }
    if let Ok(ping) = Ping::parse(data) {
        assert_eq!(Ping::parse(&ping.encode()), Ok(ping));
    }
    if let Ok(pong) = Pong::parse(data) {
        let again = Pong::parse(&pong.encode()).expect("an encoded PONG parses");
        assert_eq!((again.ok, &again.hostname), (pong.ok, &pong.hostname));
    }
    if let Ok(chunk) = ack::parse_ack(data) {
        assert_eq!(ack::parse_ack(&ack::encode_ack(&chunk)), Ok(chunk));
    }
    assert_eq!(heartbeat::reply(data), heartbeat::HEARTBEAT);
}

/// Arbitrary bytes cut into reads and framed at a delimiter: every message handed out is at
/// most the limit and holds no delimiter, the bytes held never pass the limit by more than a
/// delimiter's start, and the messages are those of the whole stream.
pub fn delimited(data: &[u8]) {
    use crate::delimited::{Delimited, Last};
    let [a, b, c, rest @ ..] = data else { return };
    let delim: &[u8] = match a % 3 {
        0 => b"\n",
        1 => b"\r\n",
        _ => b"\0\0\n",
    };
    let limit = usize::from(*b % 64) + 1;
    let cut = usize::from(*c % 16) + 1;
    let mut framer = Delimited::new(delim, limit);
    let mut buf = bytes::BytesMut::new();
    let mut got = Vec::new();
    let mut oversize = 0;
    for read in rest.chunks(cut) {
        buf.extend_from_slice(read);
        oversize += framer
            .drain(&mut buf, |m| {
                assert!(m.len() <= limit);
                assert!(!m.windows(delim.len()).any(|w| w == delim));
                got.push(m.to_vec());
            })
            .oversize;
        assert!(buf.len() < limit + delim.len());
    }
    match framer.finish(&mut buf) {
        Last::Message(m) => got.push(m.to_vec()),
        Last::Oversize => oversize += 1,
        Last::Nothing => {}
    }
    let mut want = Vec::new();
    let mut want_over = 0;
    let mut tail: &[u8] = rest;
    while let Some(i) = tail.windows(delim.len()).position(|w| w == delim) {
        if i > limit {
            want_over += 1;
        } else {
            want.push(tail[..i].to_vec());
        }
        tail = &tail[i + delim.len()..];
    }
    if tail.len() > limit {
        want_over += 1;
    } else if !tail.is_empty() {
        want.push(tail.to_vec());
    }
    assert_eq!(got, want);
    assert_eq!(oversize, want_over);
}

/// Arbitrary bytes, cut into reads, as a syslog TCP stream whose framing is chosen from its
/// first byte: no message over the limit, never more held than the limit and a length.
pub fn syslog_framing(data: &[u8]) {
    use crate::octet_counted::Framing;
    let [a, b, rest @ ..] = data else { return };
    let limit = usize::from(*a % 64) + 1;
    let cut = usize::from(*b % 16) + 1;
    let mut framer = Framing::new(b"\n", limit);
    let mut buf = bytes::BytesMut::new();
    for read in rest.chunks(cut) {
        buf.extend_from_slice(read);
        if framer
            .drain(&mut buf, |m| assert!(m.len() <= limit))
            .is_err()
        {
            return;
        }
        assert!(buf.len() <= limit + 11);
    }
}

/// The records of a document ([`crate::records`]): the first byte picks the format, the rest is
/// the document. Never panics; every record handed over is a whole map whose pairs read back.
pub fn records(data: &[u8]) {
    use crate::records::{Format, for_each, pairs};
    let Some((&pick, doc)) = data.split_first() else {
        return;
    };
    let format = match pick % 3 {
        0 => Format::Json,
        1 => Format::Ndjson,
        _ => Format::Msgpack,
    };
    let mut seen = 0u64;
    let result = for_each(format, doc, |_, map| {
        assert!(pairs(map).is_ok(), "a record handed over is a whole map");
        seen += 1;
        Ok::<(), String>(())
    });
    if let Ok(n) = result {
        assert_eq!(n, seen);
    }
}

/// Arbitrary bytes as a JSON log line read in one pass ([`crate::json::flat_object`]): never
/// panics, and a line it reads becomes exactly the msgpack map the full parser makes of it.
pub fn json_flat(data: &[u8]) {
    use crate::json::{Scalar, flat_object, to_msgpack};
    use crate::msgpack::{write_map_len, write_str};
    let mut pairs = bytes::BytesMut::new();
    let mut count = 0usize;
    let read = flat_object(data, |key, value| {
        assert!(std::str::from_utf8(key).is_ok(), "keys are UTF-8");
        if let Scalar::Str(s) = value {
            assert!(std::str::from_utf8(s).is_ok(), "strings are UTF-8");
        }
        write_str(&mut pairs, key);
        value.write(&mut pairs);
        count += 1;
        true
    });
    if read.is_some() {
        let mut mine = bytes::BytesMut::new();
        write_map_len(&mut mine, count);
        mine.extend_from_slice(&pairs);
        let mut full = bytes::BytesMut::new();
        assert!(to_msgpack(data, &mut full).is_ok(), "a flat object is JSON");
        assert_eq!(&mine[..], &full[..], "the same map as the full parser");
    }
}

/// Arbitrary bytes as a Scribe connection ([`crate::thrift`]): the first byte picks the
/// transport, the rest arrives in reads of a few bytes. Never panics; every call decoded has
/// whole entries when it is a `Log`, and its reply reads back.
pub fn thrift(data: &[u8]) {
    use crate::thrift::{Decoder, Transport, Value, answer, log_entries, reply};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let transport = if pick & 1 == 0 {
        Transport::Framed
    } else {
        Transport::Unframed
    };
    let mut decoder = Decoder::new(transport, 4096);
    let mut buf = bytes::BytesMut::new();
    for piece in rest.chunks(usize::from(pick >> 1) % 7 + 1) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(m)) => {
                    if &m.name[..] == b"Log" {
                        let _ = log_entries(&m.body);
                    }
                    let mut out = bytes::BytesMut::new();
                    reply(&mut out, &m, &Value::I32(0), transport);
                    let back = Decoder::new(transport, 1 << 20)
                        .decode(&mut out)
                        .expect("a reply decodes")
                        .expect("a whole reply");
                    assert_eq!(answer(&back), Ok(crate::thrift::Answer::I32(0)));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_and_handshake_entry_points_survive_sample_inputs() {
        let samples: [&[u8]; 6] = [
            b"",
            b"\x93\xa3tag\xdb\x00\x00\x00\x0c\x92\xd7\x00\x65\x53\xf1\x00\x00\x00\x00\x01\x80\x81\xa4size\x01",
            b"\x92\xa4HELO\x83\xa5nonce\xc4\x01x\xa4auth\xc4\x00\xa9keepalive\xc3",
            b"\x95\xa4PONG\xc2\xa3bad\xa0\xa0",
            b"\x81\xa3ack\xa2id",
            b"\xdb\xff\xff\xff\xff\xc1\xc1",
        ];
        for s in samples {
            codec(s);
            handshake(s);
        }
    }
}
