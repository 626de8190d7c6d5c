use super::*;
use crate::format::FormatKind;
use crate::plugin::read_section;
use bytes::BytesMut;
use ferry_proto::encode::write_entry;
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;
use proptest::prelude::*;
use std::io::Read as _;

fn format(conf: &str) -> FormatConfig {
    read_section(&format!("<match>\n{conf}\n</match>\n"), |s| {
        FormatConfig::from_section(s, FormatKind::Json)
    })
    .unwrap()
}

fn record(n: u64, text: &str) -> Value {
    Value::Map(vec![
        (Value::Str("n".into()), Value::UInt(n)),
        (
            Value::Str("text".into()),
            Value::Str(text.to_string().into()),
        ),
    ])
}

/// One segment's entry stream with the records `from..to`.
fn segment(records: &[Value]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for r in records {
        write_entry(
            &mut out,
            EventTime { sec: 1, nsec: 0 },
            false,
            &r.to_bytes(),
        );
    }
    out.to_vec()
}

/// The whole body for `records` cut into segments at `cuts`.
fn body(
    f: &FormatConfig,
    json_array: bool,
    compress: Compress,
    records: &[Value],
    cuts: &[usize],
) -> Vec<u8> {
    let mut w = BodyWriter::new(f, json_array, compress);
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&records.len())) {
        let cut = cut.clamp(from, records.len());
        out.extend_from_slice(&w.segment("t", &segment(&records[from..cut])));
        from = cut;
    }
    out.extend_from_slice(&w.finish());
    out
}

#[allow(clippy::disallowed_methods)] // bounded by `take`
fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .take(1 << 30)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn json_array_is_one_array_across_segments_as_fluentd_writes_it() {
    let f = format("");
    let records: Vec<Value> = (0..3).map(|n| record(n, "a")).collect();
    let b = body(&f, true, Compress::Text, &records, &[1, 1, 2]);
    assert_eq!(
        String::from_utf8(b.clone()).unwrap(),
        "[{\"n\":0,\"text\":\"a\"}\n,{\"n\":1,\"text\":\"a\"}\n,{\"n\":2,\"text\":\"a\"}\n]"
    );
    let parsed: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 3);
    assert_eq!(body(&f, true, Compress::Text, &[], &[]), b"[]");
}

#[test]
fn json_is_one_object_per_line() {
    let records: Vec<Value> = (0..2).map(|n| record(n, "x")).collect();
    let b = body(&format(""), false, Compress::Text, &records, &[1]);
    assert_eq!(
        String::from_utf8(b).unwrap(),
        "{\"n\":0,\"text\":\"x\"}\n{\"n\":1,\"text\":\"x\"}\n"
    );
}

#[test]
fn msgpack_is_maps_back_to_back() {
    let records: Vec<Value> = (0..3).map(|n| record(n, "m")).collect();
    let b = body(
        &format("<format>\n@type msgpack\n</format>"),
        false,
        Compress::Text,
        &records,
        &[2],
    );
    let mut rest = &b[..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let (v, used) = Value::decode(rest).unwrap();
        got.push(v);
        rest = &rest[used..];
    }
    assert_eq!(got, records);
}

#[test]
fn gzip_is_one_member_of_the_plain_body() {
    let f = format("");
    let records: Vec<Value> = (0..500).map(|n| record(n, "compressible text")).collect();
    let plain = body(&f, true, Compress::Text, &records, &[100, 250]);
    let gz = body(&f, true, Compress::Gzip, &records, &[100, 250]);
    assert!(gz.len() < plain.len() / 4);
    assert_eq!(gunzip(&gz), plain);
}

proptest! {
    /// However a chunk is cut into segments, the body is the one a single segment gives, and it
    /// holds every event once.
    #[test]
    fn segment_boundaries_do_not_show_in_the_body(
        texts in prop::collection::vec("[a-z\"\\\\é ]{0,12}", 0..40),
        cuts in prop::collection::vec(0usize..40, 0..6),
        json_array in any::<bool>(),
        gzip in any::<bool>(),
        msgpack in any::<bool>(),
    ) {
        let f = if msgpack { format("<format>\n@type msgpack\n</format>") } else { format("") };
        let json_array = json_array && !msgpack;
        let records: Vec<Value> = texts.iter().enumerate().map(|(i, t)| record(i as u64, t)).collect();
        let mut cuts = cuts;
        cuts.sort_unstable();
        let compress = if gzip { Compress::Gzip } else { Compress::Text };
        let whole = body(&f, json_array, Compress::Text, &records, &[]);
        let mut cut = body(&f, json_array, compress, &records, &cuts);
        if gzip {
            cut = gunzip(&cut);
        }
        prop_assert_eq!(&cut, &whole);
        let count = if msgpack {
            let mut rest = &cut[..];
            let mut n = 0;
            while !rest.is_empty() {
                let (_, used) = Value::decode(rest).unwrap();
                rest = &rest[used..];
                n += 1;
            }
            n
        } else if json_array {
            serde_json::from_slice::<serde_json::Value>(&cut).unwrap().as_array().unwrap().len()
        } else {
            let lines: Vec<&[u8]> = cut.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
            for l in &lines {
                serde_json::from_slice::<serde_json::Value>(l).unwrap();
            }
            lines.len()
        };
        prop_assert_eq!(count, records.len());
    }
}
