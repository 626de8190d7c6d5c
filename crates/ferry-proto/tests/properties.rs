//! Property tests: roundtrips of values and of event batches in all four modes, frame splitting
//! at arbitrary points, and no panic on arbitrary or mutated input.

use bytes::{Bytes, BytesMut};
use ferry_proto::encode::{
    encode_forward, encode_message, encode_packed_forward, gzip_compress, write_entry,
};
use ferry_proto::msgpack::Value;
use ferry_proto::{
    ChunkId, Compression, EventTime, FrameDecoder, Limits, Mode, Options, Request, entries, fuzzing,
};
use proptest::prelude::*;

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        (i64::MIN..0).prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        any::<f32>().prop_map(Value::F32),
        any::<f64>().prop_map(Value::F64),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Str(b.into())),
        ".{0,40}".prop_map(|s| Value::Str(Bytes::from(s))),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| Value::Bin(b.into())),
        (any::<i8>(), prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(t, b)| Value::Ext(t, b.into())),
    ];
    leaf.prop_recursive(4, 64, 20, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner), 0..20).prop_map(Value::Map),
        ]
    })
}

fn record_strategy() -> impl Strategy<Value = Value> {
    prop::collection::vec(("[a-z_]{1,12}", value_strategy()), 0..8).prop_map(|pairs| {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::Str(Bytes::from(k)), v))
                .collect(),
        )
    })
}

fn chunk_strategy() -> impl Strategy<Value = Option<ChunkId>> {
    prop::option::of(
        (prop::collection::vec(any::<u8>(), 0..40), any::<bool>())
            .prop_map(|(b, s)| if s { ChunkId::str(b) } else { ChunkId::bin(b) }),
    )
}

fn mode_strategy() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::Message),
        Just(Mode::Forward),
        Just(Mode::PackedForward),
        Just(Mode::CompressedPackedForward),
    ]
}

type Event = (EventTime, bool, Value);

fn event_strategy() -> impl Strategy<Value = Event> {
    (
        (any::<u32>(), 0u32..1_000_000_000).prop_map(|(s, n)| EventTime::new(s, n)),
        any::<bool>(),
        record_strategy(),
    )
}

/// Feed `bytes` to a decoder in pieces cut at `cuts` (positions modulo the length).
fn frames_with_cuts(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut d = FrameDecoder::new(16 << 20);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for w in points.windows(2) {
        buf.extend_from_slice(&bytes[w[0]..w[1]]);
        while let Some(f) = d.decode(&mut buf).expect("valid stream") {
            frames.push(f);
        }
    }
    assert!(buf.is_empty());
    frames
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn value_encode_decode_roundtrip(v in value_strategy()) {
        let bytes = v.to_bytes();
        let (back, used) = Value::decode(&bytes).expect("decodes");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back.to_bytes(), bytes);
        let mut json = String::new();
        back.write_json(&mut json);
        prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok(), "invalid JSON {}", json);
    }

    #[test]
    fn event_batches_roundtrip_in_every_mode(
        tag in "[a-z0-9_.]{1,30}|\\PC{1,10}",
        events in prop::collection::vec(event_strategy(), 1..20),
        mode in mode_strategy(),
        chunk in chunk_strategy(),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let events = if mode == Mode::Message { &events[..1] } else { &events[..] };
        let mut stream = BytesMut::new();
        for (t, int_time, record) in events {
            write_entry(&mut stream, *t, *int_time, &record.to_bytes());
        }
        let count = events.len() as u64;
        let options = Options { chunk: chunk.clone(), ..Options::default() };
        let mut wire = BytesMut::new();
        match mode {
            Mode::Message => {
                let (t, int_time, record) = &events[0];
                encode_message(&mut wire, &tag, *t, *int_time, &record.to_bytes(), Some(&options));
            }
            Mode::Forward => encode_forward(&mut wire, &tag, &stream, count, Some(&options)),
            Mode::PackedForward => encode_packed_forward(&mut wire, &tag, &stream, count, chunk.as_ref(), Compression::Text),
            Mode::CompressedPackedForward => {
                encode_packed_forward(&mut wire, &tag, &gzip_compress(&stream), count, chunk.as_ref(), Compression::Gzip);
            }
        }
        // Two requests back to back, split anywhere.
        let mut two = wire.to_vec();
        two.extend_from_slice(&wire);
        let frames = frames_with_cuts(&two, &cuts);
        prop_assert_eq!(frames.len(), 2);
        for frame in frames {
            prop_assert_eq!(&frame[..], &wire[..]);
            let Request::Events(batch) = Request::parse(frame, &Limits::default()).expect("parses") else {
                panic!("nil");
            };
            prop_assert_eq!(&batch.tag, &tag);
            prop_assert_eq!(batch.mode, mode);
            prop_assert_eq!(&batch.entries[..], &stream[..]);
            prop_assert_eq!(&batch.options.chunk, &chunk);
            let summary = entries::validate(&batch.entries).expect("valid");
            prop_assert_eq!((summary.count, summary.invalid), (count, 0));
            for (e, (t, int_time, record)) in entries::iter(&batch.entries).zip(events) {
                let e = e.expect("valid entry");
                let want = if *int_time { EventTime::new(t.sec, 0) } else { *t };
                prop_assert_eq!((e.time, e.int_time), (want, *int_time));
                prop_assert_eq!(e.record, &record.to_bytes()[..]);
            }
        }
    }

    #[test]
    fn frame_decoder_gives_the_same_frames_at_any_split(
        values in prop::collection::vec(value_strategy(), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut bytes = Vec::new();
        for v in &values {
            bytes.extend_from_slice(&v.to_bytes());
        }
        let frames = frames_with_cuts(&bytes, &cuts);
        prop_assert_eq!(frames.len(), values.len());
        for (f, v) in frames.iter().zip(&values) {
            prop_assert_eq!(&f[..], &v.to_bytes()[..]);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        fuzzing::codec(&data);
        fuzzing::handshake(&data);
        fuzzing::delimited(&data);
        fuzzing::syslog_framing(&data);
        fuzzing::json_flat(&data);
    }

    #[test]
    fn json_shaped_lines_read_in_one_pass_are_what_the_full_parser_reads(
        body in prop::collection::vec(prop_oneof![
            Just(&b"{"[..]), Just(&b"}"[..]), Just(&b"\""[..]), Just(&b":"[..]), Just(&b","[..]),
            Just(&b"\\"[..]), Just(&b"-"[..]), Just(&b"0"[..]), Just(&b"7"[..]), Just(&b"."[..]),
            Just(&b"e"[..]), Just(&b" "[..]), Just(&b"\t"[..]), Just(&b"true"[..]), Just(&b"null"[..]),
            Just(&b"k"[..]), Just("é".as_bytes()), Just(&b"\xff"[..]), Just(&b"\x01"[..]),
            Just(&b"[1]"[..]), Just(&b"{\"a\":\"b\"}"[..]), Just(&b"\"k\":"[..]),
            Just(&b"\"v\","[..]), Just(&b"12345678901234567890"[..]),
        ], 0..40),
    ) {
        let mut data = b"{".to_vec();
        for piece in body {
            data.extend_from_slice(piece);
        }
        fuzzing::json_flat(&data);
    }

    #[test]
    fn line_streams_are_framed_as_whole_streams_are(
        head in prop::array::uniform3(any::<u8>()),
        body in prop::collection::vec(prop_oneof![Just(b'a'), Just(b'\r'), Just(b'\n'), Just(0u8)], 0..400),
    ) {
        let mut data = head.to_vec();
        data.extend_from_slice(&body);
        fuzzing::delimited(&data);
    }

    #[test]
    fn mutated_requests_and_handshakes_never_panic(
        events in prop::collection::vec(event_strategy(), 1..5),
        mode in mode_strategy(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut stream = BytesMut::new();
        for (t, int_time, record) in &events {
            write_entry(&mut stream, *t, *int_time, &record.to_bytes());
        }
        let mut wire = BytesMut::new();
        match mode {
            Mode::Forward => encode_forward(&mut wire, "t", &stream, events.len() as u64, None),
            Mode::CompressedPackedForward => encode_packed_forward(&mut wire, "t", &gzip_compress(&stream), events.len() as u64, None, Compression::Gzip),
            _ => encode_packed_forward(&mut wire, "t", &stream, events.len() as u64, Some(&ChunkId::str("c")), Compression::Text),
        }
        let mut bytes = wire.to_vec();
        for (at, b) in flips {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        fuzzing::codec(&bytes);
        let helo = ferry_proto::handshake::encode_helo(&[1; 16], &[2; 16], true);
        let mut h = helo.to_vec();
        let i = bytes.len() % h.len();
        h[i] = bytes[0];
        fuzzing::handshake(&h);
    }
}

/// Inputs the fuzzers once failed on (`tests/fuzz-regressions/<target>-<what>`), replayed on
/// every run.
#[test]
fn inputs_the_fuzzers_found_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match name.split('-').next() {
            Some("codec") => ferry_proto::fuzzing::codec(&data),
            Some("handshake") => ferry_proto::fuzzing::handshake(&data),
            Some("delimited") => ferry_proto::fuzzing::delimited(&data),
            Some("syslog_framing") => ferry_proto::fuzzing::syslog_framing(&data),
            Some("json_flat") => ferry_proto::fuzzing::json_flat(&data),
            _ => panic!("{name}: name it after its fuzz target (codec-..., handshake-...)"),
        }
        replayed += 1;
    }
    assert!(replayed >= 1, "no regression inputs in {}", dir.display());
}
