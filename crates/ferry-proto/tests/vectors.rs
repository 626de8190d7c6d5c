//! Replays every capture in `shared/vectors/{fluentd,fluentbit}` (or `$FERRY_VECTORS`) through
//! ferry's decoders and compares with the capture's JSON description: frames at every split
//! point, modes, tags, times with nanoseconds, records, options with the msgpack type of
//! `chunk`, entries, handshake messages, acks and heartbeats.

mod support;

use bytes::Bytes;
use ferry_proto::entries::{self, EntryRef};
use ferry_proto::handshake::{Helo, Ping, Pong, parse_helo};
use ferry_proto::msgpack::{Head, Value, read_head};
use ferry_proto::{ChunkId, ChunkIdKind, EventBatch, Limits, Mode, Options, Request, ack};
use ferry_proto::{frame::is_json_start, heartbeat};
use serde_json::{Value as J, json};

use support::load::{Expected, Stream, Vector, load_all};
use support::render::{
    Convention, bin_view, check_wire_tree, entry_view, layout, raw_view, str_view, view,
};

/// What a described message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request(Mode),
    Helo,
    Ping,
    Pong,
    Ack,
}

/// A message as ferry decoded it.
#[derive(Debug)]
pub enum Msg {
    Batch(EventBatch),
    Helo(Helo),
    Ping(Ping),
    Pong(Pong),
    Ack(ChunkId),
}

/// A frame and what it decoded to.
#[derive(Debug)]
pub struct Decoded {
    pub frame: Bytes,
    pub msg: Msg,
}

fn kind_of(what: &str, msg: &J, conv: Convention) -> Kind {
    let label = match conv {
        Convention::Fluentd => msg["mode"].as_str(),
        Convention::FluentBit => msg["summary"]["mode"]
            .as_str()
            .or(msg["summary"]["kind"].as_str()),
    }
    .unwrap_or_else(|| panic!("{what}: message without a mode"));
    let first_word = label.split([' ', '(']).next().unwrap_or_default();
    match first_word {
        "Message" => Kind::Request(Mode::Message),
        "Forward" => Kind::Request(Mode::Forward),
        "PackedForward" => Kind::Request(Mode::PackedForward),
        "CompressedPackedForward" => Kind::Request(Mode::CompressedPackedForward),
        "HELO" => Kind::Helo,
        "PING" => Kind::Ping,
        "PONG" => Kind::Pong,
        "AckResponse" | "map" => Kind::Ack,
        _ => panic!("{what}: unknown message mode {label:?}"),
    }
}

/// The options of a batch in the vectors' JSON conventions.
fn options_view(o: &Options, conv: Convention) -> J {
    let mut m = serde_json::Map::new();
    if let Some(size) = o.size {
        m.insert("size".into(), json!(size));
    }
    if let Some(c) = &o.chunk {
        let v = match c.kind {
            ChunkIdKind::Str => str_view(&c.bytes, conv),
            ChunkIdKind::Bin => bin_view(&c.bytes, conv),
        };
        m.insert("chunk".into(), v);
    }
    if let Some(c) = o.compressed {
        m.insert("compressed".into(), json!(c.as_str()));
    }
    if let Some(s) = o.fluent_signal {
        m.insert("fluent_signal".into(), json!(s));
    }
    if let Some(meta) = &o.metadata {
        m.insert("metadata".into(), raw_view(meta, conv));
    }
    for (k, v) in &o.unknown {
        let J::String(k) = raw_view(k, conv) else {
            panic!("non-str option key")
        };
        m.insert(k, raw_view(v, conv));
    }
    J::Object(m)
}

/// Payload length of element 2 of a PackedForward frame.
fn payload_len(frame: &[u8]) -> usize {
    let (_, n) = read_head(frame, 0).expect("array header");
    let tag_end = ferry_proto::msgpack::skip_value(frame, n).expect("tag");
    let (h, _) = read_head(frame, tag_end).expect("payload header");
    assert!(matches!(h, Head::Str(_) | Head::Bin(_)));
    h.payload_len()
}

fn check_entries(
    what: &str,
    batch: &EventBatch,
    exp: &Expected,
    value: &J,
    conv: Convention,
) -> usize {
    let list: Vec<EntryRef<'_>> = entries::iter(&batch.entries)
        .map(|e| e.unwrap_or_else(|err| panic!("{what}: entry error {err}")))
        .collect();
    let summary = entries::validate(&batch.entries).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(summary.count, list.len() as u64, "{what}: validate count");
    assert_eq!(
        summary.invalid, 0,
        "{what}: real captures hold no invalid event"
    );
    assert_eq!(
        summary.min_time,
        list.iter().map(|e| e.time).min(),
        "{what}"
    );
    assert_eq!(
        summary.max_time,
        list.iter().map(|e| e.time).max(),
        "{what}"
    );
    let (clean, again) = entries::sanitize(batch.entries.clone()).expect("sanitize");
    assert_eq!(again, summary);
    assert_eq!(
        clean.as_ptr(),
        batch.entries.as_ptr(),
        "{what}: sanitize copied a valid stream"
    );
    let views: Vec<J> = list.iter().map(|e| entry_view(e, conv)).collect();
    // Where the description lists the entries, compare each one, raw and rebuilt.
    let listed: Option<Vec<J>> = match (conv, batch.mode) {
        (_, Mode::Message) => Some(vec![json!([value[1], value[2]])]),
        (_, Mode::Forward) => Some(value[1].as_array().expect("entries array").clone()),
        (Convention::Fluentd, _) => Some(
            exp.msg["entries"]
                .as_array()
                .expect("entries list")
                .iter()
                .map(|e| e["value"].clone())
                .collect(),
        ),
        (Convention::FluentBit, _) => None,
    };
    if let Some(listed) = listed {
        assert_eq!(views, listed, "{what}: entries");
    }
    if let (Convention::Fluentd, Some(described)) = (conv, exp.msg.get("entries")) {
        let described = described.as_array().expect("entries");
        assert_eq!(described.len(), list.len(), "{what}: entry count");
        for (e, d) in list.iter().zip(described) {
            let offset = e.raw.as_ptr() as usize - batch.entries.as_ptr() as usize;
            assert_eq!(
                offset as u64,
                d["offset"].as_u64().expect("offset"),
                "{what}: entry offset"
            );
            assert_eq!(
                e.raw.len() as u64,
                d["len"].as_u64().expect("len"),
                "{what}: entry length"
            );
            assert_eq!(raw_view(e.raw, conv), d["value"], "{what}: raw entry");
            assert_eq!(layout(e.raw), d["layout"], "{what}: entry layout");
        }
        if let Some(n) = exp.msg.get("decompressed_len") {
            assert_eq!(
                batch.entries.len() as u64,
                n.as_u64().expect("decompressed_len"),
                "{what}"
            );
        }
    }
    if conv == Convention::FluentBit {
        check_fluentbit_summary(what, batch, &exp.msg["summary"], &list, conv);
    }
    list.len()
}

fn check_fluentbit_summary(
    what: &str,
    batch: &EventBatch,
    s: &J,
    list: &[EntryRef<'_>],
    conv: Convention,
) {
    assert_eq!(s["tag"], batch.tag, "{what}: summary tag");
    for key in ["entries", "packed_entries"] {
        if let Some(n) = s.get(key) {
            assert_eq!(n.as_u64(), Some(list.len() as u64), "{what}: summary {key}");
        }
    }
    if let Some(n) = s.get("uncompressed_len") {
        assert_eq!(
            n.as_u64(),
            Some(batch.entries.len() as u64),
            "{what}: uncompressed_len"
        );
    }
    if let Some(o) = s.get("options") {
        assert_eq!(
            options_view(&batch.options, conv),
            *o,
            "{what}: summary options"
        );
    }
    let time_type = |e: &EntryRef<'_>| {
        if e.int_time {
            "integer"
        } else {
            "ext type 0 len 8 (EventTime)"
        }
    };
    if let Some(t) = s.get("time_type") {
        assert_eq!(t, time_type(&list[0]), "{what}: time_type");
    }
    if let Some(shape) = s.get("entry0_shape") {
        let e = &list[0];
        assert_eq!(shape["time_type"], time_type(e), "{what}: entry0 time_type");
        let format = if e.metadata.is_some() {
            "[[time, metadata], record]  (Fluent Bit v2 event format)"
        } else {
            "[time, record]"
        };
        assert_eq!(shape["format"], format, "{what}: entry0 format");
        let (Value::Map(pairs), _) = Value::decode(e.record).expect("record") else {
            panic!("{what}: record is not a map")
        };
        let keys: Vec<J> = pairs.iter().map(|(k, _)| view(k, conv)).collect();
        assert_eq!(
            shape["record_keys"],
            J::Array(keys),
            "{what}: record keys in wire order"
        );
        if let Some(meta) = shape.get("metadata") {
            assert_eq!(
                raw_view(e.metadata.expect("metadata"), conv),
                *meta,
                "{what}: metadata"
            );
        }
    }
}

/// Decode one frame and compare it with its description.
fn check_message(v: &Vector, stream: &Stream, frame: &Bytes, exp: &Expected) -> Msg {
    let conv = v.conv;
    let what = format!("{} ({}) @{}", v.name, stream.file.display(), exp.offset);
    assert_eq!(frame.len(), exp.len, "{what}: frame length");
    let value = match conv {
        Convention::Fluentd => &exp.msg["value"],
        Convention::FluentBit => &exp.msg["decoded"],
    };
    let kind = kind_of(&what, &exp.msg, conv);
    let (mut decoded, used) = Value::decode(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(used, frame.len(), "{what}");
    let packed = matches!(
        kind,
        Kind::Request(Mode::PackedForward | Mode::CompressedPackedForward)
    );
    let fluentd_packed = conv == Convention::Fluentd && packed;
    if let (true, Value::Array(items)) = (fluentd_packed, &mut decoded) {
        // The fluentd descriptions show the payload only by its length.
        items[1] = Value::Nil;
    }
    let mut got = view(&decoded, conv);
    if fluentd_packed {
        got[1] = json!({"$packed_entries_bytes": payload_len(frame)});
    }
    assert_eq!(got, *value, "{what}: decoded value");
    match conv {
        Convention::Fluentd => assert_eq!(layout(frame), exp.msg["layout"], "{what}: layout"),
        Convention::FluentBit => check_wire_tree(frame, &exp.msg["wire_encoding_tree"])
            .unwrap_or_else(|e| panic!("{what}: wire tree: {e}")),
    }
    match kind {
        Kind::Request(mode) => {
            let req = Request::parse(frame.clone(), &Limits::default())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let Request::Events(batch) = req else {
                panic!("{what}: nil request")
            };
            assert_eq!(batch.mode, mode, "{what}: mode");
            assert_eq!(value[0], batch.tag, "{what}: tag");
            let arity = value.as_array().expect("request array").len();
            let options_at = if mode == Mode::Message { 3 } else { 2 };
            let expected_options = if arity > options_at {
                value[options_at].clone()
            } else {
                json!({})
            };
            assert_eq!(
                options_view(&batch.options, conv),
                expected_options,
                "{what}: options"
            );
            check_entries(&what, &batch, exp, value, conv);
            Msg::Batch(batch)
        }
        Kind::Helo => {
            let helo = parse_helo(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
            let opts = &value[1];
            let Value::Array(items) = decoded else {
                panic!("{what}: HELO is not an array")
            };
            let field = |b: &[u8], k: &str| match items[1].get(k) {
                Some(Value::Bin(_)) => bin_view(b, conv),
                _ => str_view(b, conv),
            };
            assert_eq!(field(&helo.nonce, "nonce"), opts["nonce"], "{what}: nonce");
            assert_eq!(field(&helo.auth, "auth"), opts["auth"], "{what}: auth");
            assert_eq!(
                helo.keepalive,
                opts.get("keepalive").is_none_or(|k| k == true),
                "{what}"
            );
            Msg::Helo(helo)
        }
        Kind::Ping => {
            let ping = Ping::parse(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
            let fields = [
                &ping.hostname,
                &ping.shared_key_salt,
                &ping.shared_key_hexdigest,
                &ping.username,
                &ping.password_hexdigest,
            ];
            for (i, f) in fields.into_iter().enumerate() {
                assert_eq!(
                    str_view(f, conv),
                    value[i + 1],
                    "{what}: PING field {}",
                    i + 1
                );
            }
            Msg::Ping(ping)
        }
        Kind::Pong => {
            let pong = Pong::parse(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(json!(pong.ok), value[1], "{what}");
            assert_eq!(json!(pong.reason), value[2], "{what}");
            assert_eq!(str_view(&pong.hostname, conv), value[3], "{what}");
            assert_eq!(
                str_view(&pong.shared_key_hexdigest, conv),
                value[4],
                "{what}"
            );
            Msg::Pong(pong)
        }
        Kind::Ack => {
            let chunk = ack::parse_ack(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
            let v = match chunk.kind {
                ChunkIdKind::Str => str_view(&chunk.bytes, conv),
                ChunkIdKind::Bin => bin_view(&chunk.bytes, conv),
            };
            assert_eq!(json!({"ack": v}), *value, "{what}: ack");
            Msg::Ack(chunk)
        }
    }
}

/// Decode every stream of a vector; returns (c2s, s2c) decoded messages in stream order.
pub fn decode_vector(v: &Vector) -> (Vec<Decoded>, Vec<Decoded>) {
    let mut out = (Vec::new(), Vec::new());
    for (dir, stream) in v.streams() {
        let what = format!("{} ({})", v.name, stream.file.display());
        let target = match dir {
            support::load::Dir::C2s => &mut out.0,
            support::load::Dir::S2c => &mut out.1,
        };
        if let Some(text) = &stream.json_text {
            assert_eq!(stream.bytes, text.as_bytes(), "{what}: JSON-mode text");
            assert!(
                is_json_start(stream.bytes[0]),
                "{what}: JSON mode is recognised from the first byte"
            );
            continue;
        }
        if let Some(datagrams) = &stream.datagrams {
            assert!(!datagrams.is_empty(), "{what}: no datagram described");
            for d in datagrams {
                assert_eq!(hex::encode(&stream.bytes), *d, "{what}: datagram");
            }
            assert!(heartbeat::is_heartbeat(&stream.bytes), "{what}");
            assert_eq!(heartbeat::reply(&stream.bytes), &stream.bytes[..], "{what}");
            continue;
        }
        for list in &stream.lists {
            assert_eq!(
                list.len(),
                stream.frames.len(),
                "{what}: described messages vs frames"
            );
        }
        for (i, frame) in stream.frames.iter().enumerate() {
            let mut first = None;
            for list in &stream.lists {
                let msg = check_message(v, stream, frame, &list[i]);
                first.get_or_insert(msg);
            }
            if let Some(msg) = first {
                target.push(Decoded {
                    frame: frame.clone(),
                    msg,
                });
            }
        }
        let mut offset = 0;
        for (i, frame) in stream.frames.iter().enumerate() {
            for list in &stream.lists {
                assert_eq!(list[i].offset, offset, "{what}: message {i} offset");
            }
            offset += frame.len();
        }
    }
    out
}

#[test]
fn every_captured_vector_decodes_to_its_description() {
    let loaded = load_all();
    let mut messages = 0;
    let mut bytes = 0;
    for v in &loaded.vectors {
        let (c2s, s2c) = decode_vector(v);
        messages += c2s.len() + s2c.len();
        bytes += v.streams().map(|(_, s)| s.bytes.len()).sum::<usize>();
    }
    let streams: usize = loaded.vectors.iter().map(|v| v.streams().count()).sum();
    println!(
        "checked {} vectors ({streams} captures, {bytes} bytes, {messages} messages); {} docs, {} index/summary files, {} statistics files",
        loaded.vectors.len(),
        loaded.docs,
        loaded.indexes,
        loaded.statistics
    );
    assert!(
        loaded.vectors.len() > 40,
        "too few vectors: {}",
        loaded.vectors.len()
    );
    assert!(messages > 100, "too few messages: {messages}");
}

#[path = "vectors/handshakes.rs"]
mod handshakes;
#[path = "vectors/reencode.rs"]
mod reencode;
