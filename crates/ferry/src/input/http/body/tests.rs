use super::*;
use crate::parse::default_time_spec;
use ferry_proto::msgpack::Value;
use proptest::prelude::*;

fn now() -> EventTime {
    EventTime::from_unix_nanos(1_700_000_000_000_000_000).unwrap()
}

fn run(
    format: Format,
    body: &[u8],
    time: Option<EventTime>,
) -> Result<Vec<(u128, Value)>, BodyError> {
    let spec = default_time_spec(Some("time"));
    let fields = vec![("REMOTE_ADDR".to_string(), "10.0.0.1".to_string())];
    let common = Common {
        time,
        now: now(),
        fields: &fields,
    };
    let mut out = Events::default();
    decode(format, body, &spec, &common, &mut out)?;
    let mut entries = Vec::new();
    let mut rest = &out.entries[..];
    while !rest.is_empty() {
        let (v, n) = Value::decode(rest).unwrap();
        rest = &rest[n..];
        let Value::Array(mut e) = v else {
            panic!("{v:?}")
        };
        let record = e.pop().unwrap();
        let t = match e.pop().unwrap() {
            Value::Ext(0, p) => {
                EventTime::from_ext_payload(p[..].try_into().unwrap()).as_unix_nanos()
            }
            other => panic!("{other:?}"),
        };
        entries.push((t, record));
    }
    assert_eq!(entries.len() as u64, out.records);
    Ok(entries)
}

fn get<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get(k)
}

#[test]
fn a_json_object_is_one_event_with_its_time_key_taken_out() {
    let e = run(Format::Json, br#"{"a":1,"time":1600000000.5}"#, None).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, 1_600_000_000_500_000_000);
    assert_eq!(get(&e[0].1, "a"), Some(&Value::UInt(1)));
    assert_eq!(get(&e[0].1, "time"), None);
    assert_eq!(
        get(&e[0].1, "REMOTE_ADDR").and_then(Value::as_str_bytes),
        Some(&b"10.0.0.1"[..])
    );
}

#[test]
fn a_json_array_is_one_event_per_object_and_a_time_parameter_wins() {
    let t = EventTime::from_unix_nanos(1_500_000_000_000_000_000).unwrap();
    let e = run(Format::Json, br#"[{"a":1,"time":1},{"b":"x"}]"#, Some(t)).unwrap();
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(|(ts, _)| *ts == t.as_unix_nanos()));
    let e = run(
        Format::Json,
        br#"[{"a":1},{"b":"x","time":"2020-01-02T03:04:05Z"}]"#,
        None,
    )
    .unwrap();
    assert_eq!(e[0].0, now().as_unix_nanos());
    assert_eq!(e[1].0, 1_577_934_245_000_000_000);
}

#[test]
fn ndjson_is_one_event_per_line_blank_lines_and_crlf_allowed() {
    let e = run(Format::Ndjson, b"{\"a\":1}\r\n\n{\"a\":2}\n{\"a\":3}", None).unwrap();
    assert_eq!(e.len(), 3);
    assert_eq!(get(&e[2].1, "a"), Some(&Value::UInt(3)));
}

#[test]
fn msgpack_maps_arrays_and_values_one_after_another_are_all_taken() {
    let mut body = BytesMut::new();
    Value::Map(vec![(Value::Str("a".into()), Value::UInt(1))]).encode(&mut body);
    Value::Array(vec![
        Value::Map(vec![(Value::Str("b".into()), Value::UInt(2))]),
        Value::Map(vec![
            (Value::Str("c".into()), Value::UInt(3)),
            (
                Value::Str("time".into()),
                Value::Ext(
                    0,
                    bytes::Bytes::copy_from_slice(
                        &EventTime::from_unix_nanos(5_000_000_007)
                            .unwrap()
                            .to_fixext8()[2..],
                    ),
                ),
            ),
        ]),
    ])
    .encode(&mut body);
    let e = run(Format::Msgpack, &body, None).unwrap();
    assert_eq!(e.len(), 3);
    assert_eq!(e[2].0, 5_000_000_007);
    assert_eq!(get(&e[2].1, "time"), None);
}

#[test]
fn bad_bodies_are_refused_whole_naming_what_was_wrong() {
    let cases: &[(Format, &[u8], &str)] = &[
        (Format::Json, b"{\"a\":", "invalid json"),
        (
            Format::Json,
            b"[{\"a\":1}, 2]",
            "element 1 is not an object but int",
        ),
        (
            Format::Json,
            b"\"text\"",
            "the body is not an object but str",
        ),
        (
            Format::Json,
            b"{\"time\":\"yesterday\"}",
            "invalid time in \"time\"",
        ),
        (Format::Ndjson, b"{\"a\":1}\n{oops}\n", "line 2"),
        (Format::Msgpack, b"\x81\xa1a", "invalid msgpack"),
        (Format::Msgpack, b"\xc1", "invalid msgpack"),
        (Format::Msgpack, b"", "the body is empty"),
    ];
    for (format, body, expected) in cases {
        let e = run(*format, body, None).unwrap_err().to_string();
        assert!(e.contains(expected), "{format:?} {body:?}: {e}");
    }
}

#[test]
fn the_time_parameter_is_seconds_and_zero_is_now() {
    assert_eq!(time_parameter("0", now()).unwrap(), now());
    assert_eq!(
        time_parameter("1600000000.25", now())
            .unwrap()
            .as_unix_nanos(),
        1_600_000_000_250_000_000
    );
    assert!(time_parameter("soon", now()).is_err());
    assert!(time_parameter("-5", now()).is_err());
}

proptest! {
    #[test]
    fn no_body_makes_the_decoder_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        for f in [Format::Json, Format::Ndjson, Format::Msgpack] {
            let _ = run(f, &body, None);
        }
    }

    #[test]
    fn every_object_of_an_array_becomes_one_event(values in proptest::collection::vec((any::<i64>(), "[a-z]{0,8}"), 0..50)) {
        let json = serde_json::Value::Array(values.iter().map(|(n, s)| serde_json::json!({"n": n, "s": s})).collect());
        let e = run(Format::Json, json.to_string().as_bytes(), None).unwrap();
        prop_assert_eq!(e.len(), values.len());
        let lines: Vec<String> = values.iter().map(|(n, s)| serde_json::json!({"n": n, "s": s}).to_string()).collect();
        let e = run(Format::Ndjson, lines.join("\n").as_bytes(), None).unwrap();
        prop_assert_eq!(e.len(), values.len());
    }
}
