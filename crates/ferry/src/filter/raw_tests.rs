//! The raw view against the decoded model: for any record and any edits, the spliced bytes are
//! what decoding, editing the pairs with `crate::record` and encoding gives; reads agree with the
//! model; no bytes make the reader panic.

use super::*;
use crate::filter::accessor::Accessor;
use crate::record::{self, str_value};
use bytes::Bytes;
use proptest::prelude::*;
use std::borrow::Cow;

/// Names the generated keys are drawn from, so that keys collide and edits find them.
const NAMES: &[&str] = &["a", "b", "c", "a.b", ""];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(str::to_string)
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Any value, in the form `Value::decode` gives (non-negative integers are `UInt`).
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        (i64::MIN..0).prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        (0u64..300).prop_map(Value::UInt),
        any::<f32>().prop_map(Value::F32),
        any::<f64>().prop_map(Value::F64),
        name().prop_map(|n| str_value(&n)),
        bytes(40).prop_map(Value::Str),
        bytes(8).prop_map(Value::Bin),
        (any::<i8>(), bytes(20)).prop_map(|(t, b)| Value::Ext(t, b)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(inner.clone()), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

/// Containers keyed by [`NAMES`], nested: what accessor paths find their way into.
fn tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        (0u64..3).prop_map(Value::UInt),
        name().prop_map(|n| str_value(&n)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((name().prop_map(|n| str_value(&n)), inner), 0..4)
                .prop_map(Value::Map),
        ]
    })
}

/// Mostly str keys from [`NAMES`], sometimes anything.
fn key(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop_oneof![4 => name().prop_map(|n| str_value(&n)), 1 => inner]
}

fn pairs() -> impl Strategy<Value = Vec<(Value, Value)>> {
    prop::collection::vec((key(value()), prop_oneof![value(), tree()]), 0..8)
}

/// An accessor over [`NAMES`] and small indexes: `a`, `$.a.b[1]`, `$['a.b'][0].c`, ...
fn accessor() -> impl Strategy<Value = Accessor> {
    let step = prop_oneof![
        name().prop_map(|n| format!("['{n}']")),
        prop::sample::select(&["a", "b", "c"][..]).prop_map(|n| format!(".{n}")),
        (0usize..3).prop_map(|i| format!("[{i}]")),
    ];
    prop_oneof![
        name().prop_filter("a plain key names something", |n| !n.is_empty()),
        prop::collection::vec(step.clone(), 1..4).prop_map(|s| format!("${}", s.concat())),
        (name(), prop::collection::vec(step, 1..3))
            .prop_map(|(first, s)| format!("$['{first}']{}", s.concat())),
    ]
    .prop_map(|source| Accessor::parse(&source).expect("generated accessors parse"))
}

#[derive(Debug, Clone)]
enum Edit {
    Set(String, Value),
    Push(String, Value),
    Remove(String),
    Renew,
    RenewKeeping(Vec<String>),
    Delete(Accessor),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (name(), prop_oneof![value(), tree()]).prop_map(|(k, v)| Edit::Set(k, v)),
        1 => (name(), value()).prop_map(|(k, v)| Edit::Push(k, v)),
        3 => name().prop_map(Edit::Remove),
        1 => Just(Edit::Renew),
        1 => prop::collection::vec(name(), 0..4).prop_map(Edit::RenewKeeping),
        3 => accessor().prop_map(Edit::Delete),
    ]
}

/// The edit on decoded pairs, as the filters did it before the raw view.
fn apply_model(model: &mut Vec<(Value, Value)>, edit: &Edit) {
    match edit {
        Edit::Set(k, v) => record::set(model, k, v.clone()),
        Edit::Push(k, v) => model.push((str_value(k), v.clone())),
        Edit::Remove(k) => {
            record::remove(model, k);
        }
        Edit::Renew => model.clear(),
        Edit::RenewKeeping(keys) => {
            let old = std::mem::take(model);
            for k in keys {
                if let Some(v) = record::get(&old, k) {
                    model.push((str_value(k), v.clone()));
                }
            }
        }
        Edit::Delete(a) => {
            a.delete_decoded(model);
        }
    }
}

fn apply_raw(rec: &mut RawRecord<'_>, edit: &Edit) -> bool {
    match edit {
        Edit::Set(k, v) => rec.set(k, v),
        Edit::Push(k, v) => rec.push_with(k.as_bytes(), |out| v.encode(out)),
        Edit::Remove(k) => return rec.remove(k),
        Edit::Renew => rec.renew(),
        Edit::RenewKeeping(keys) => rec.renew_keeping(keys),
        Edit::Delete(a) => return a.delete(rec),
    }
    true
}

/// `v` encoded with headers and numbers in wider forms than needed where `wide` says so: what a
/// sender may write and a decoder reads as the same value.
fn encode_wide(v: &Value, wide: &mut impl Iterator<Item = bool>, out: &mut BytesMut) {
    let mut w = || wide.next().unwrap_or(false);
    match v {
        Value::UInt(n) if w() => {
            out.put_u8(0xcf);
            out.put_u64(*n);
        }
        Value::Int(n) if w() => {
            out.put_u8(0xd3);
            out.put_i64(*n);
        }
        Value::Str(s) if w() => {
            out.put_u8(0xdb);
            out.put_u32(s.len() as u32);
            out.put_slice(s);
        }
        Value::Array(items) => {
            if w() {
                out.put_u8(0xdd);
                out.put_u32(items.len() as u32);
            } else {
                msgpack::write_array_len(out, items.len());
            }
            for item in items {
                encode_wide(item, wide, out);
            }
        }
        Value::Map(pairs) => {
            if w() {
                out.put_u8(0xde);
                out.put_u16(pairs.len() as u16);
            } else {
                msgpack::write_map_len(out, pairs.len());
            }
            for (k, v) in pairs {
                encode_wide(k, wide, out);
                encode_wide(v, wide, out);
            }
        }
        other => other.encode(out),
    }
}

/// Reads of the view agree with reads of the model.
fn check_reads(rec: &RawRecord<'_>, model: &[(Value, Value)], probes: &[Accessor]) {
    for n in NAMES {
        let raw = rec.get(n).map(|v| v.to_value().to_bytes());
        let decoded = record::get(model, n).map(Value::to_bytes);
        assert_eq!(raw, decoded, "get {n:?}");
    }
    for a in probes {
        let raw = a.get(rec);
        let decoded = a.get_decoded(model);
        assert_eq!(
            raw.map(|v| v.to_value().to_bytes()),
            decoded.map(Value::to_bytes),
            "get {}",
            a.source()
        );
        if let (Some(raw), Some(decoded)) = (raw, decoded) {
            assert_eq!(raw.text(), record::text(decoded), "text of {}", a.source());
        }
    }
    assert_eq!(rec.len(), model.len());
    for ((k, v), (mk, mv)) in rec.pairs().zip(model) {
        assert_eq!(k.text(), record::text(mk));
        assert_eq!(v.text(), record::text(mv));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn splicing_edits_gives_the_bytes_of_editing_the_decoded_pairs(
        original in pairs(),
        edits in prop::collection::vec(edit(), 0..8),
        probes in prop::collection::vec(accessor(), 0..4),
        walked in any::<bool>(),
    ) {
        let bytes = Value::Map(original.clone()).to_bytes();
        let mut rec = RawRecord::new();
        if walked {
            rec.load_walked(&bytes).unwrap();
        } else {
            rec.load(&bytes).unwrap();
        }
        let mut model = original;
        check_reads(&rec, &model, &probes);
        for edit in &edits {
            apply_raw(&mut rec, edit);
            apply_model(&mut model, edit);
            check_reads(&rec, &model, &probes);
        }
        let mut out = BytesMut::new();
        rec.write_map(&mut out);
        prop_assert_eq!(&out[..], &Value::Map(model).to_bytes()[..]);
    }

    #[test]
    fn original_pairs_keep_their_encoding_and_the_result_decodes_as_the_model(
        original in pairs(),
        widen in prop::collection::vec(any::<bool>(), 0..64),
        edits in prop::collection::vec(edit(), 0..6),
        walked in any::<bool>(),
    ) {
        let mut bytes = BytesMut::new();
        encode_wide(&Value::Map(original.clone()), &mut widen.into_iter(), &mut bytes);
        let mut rec = RawRecord::new();
        if walked {
            rec.load_walked(&bytes).unwrap();
        } else {
            rec.load(&bytes).unwrap();
        }
        let mut model = original;
        let mut edited = false;
        for edit in &edits {
            edited |= apply_raw(&mut rec, edit);
            apply_model(&mut model, edit);
        }
        let mut out = BytesMut::new();
        rec.write_map(&mut out);
        if !edited {
            prop_assert_eq!(&out[..], &bytes[..], "an unedited record is its own bytes");
        }
        let (spliced, used) = Value::decode(&out).unwrap();
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(spliced.to_bytes(), Value::Map(model).to_bytes());
    }

    #[test]
    fn the_reader_never_panics_and_agrees_with_the_decoder_on_any_bytes(
        garbage in prop::collection::vec(any::<u8>(), 0..200),
        probes in prop::collection::vec(accessor(), 0..4),
    ) {
        check_any_bytes(&garbage, &probes);
    }

    #[test]
    fn truncated_and_corrupted_records_are_refused_or_read_as_the_decoder_reads_them(
        original in pairs(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        probes in prop::collection::vec(accessor(), 0..4),
    ) {
        let whole = Value::Map(original).to_bytes().to_vec();
        check_any_bytes(&whole[..cut.index(whole.len() + 1)], &probes);
        let mut corrupt = whole;
        for (at, byte) in flips {
            let at = at.index(corrupt.len());
            corrupt[at] = byte;
        }
        check_any_bytes(&corrupt, &probes);
    }
}

/// Every path into `value` (map keys that are str, array indexes), `$`-accessor sources after
/// `prefix`, down to `depth` steps.
fn paths(value: &Value, prefix: &str, depth: usize, out: &mut Vec<String>) {
    if depth == 0 {
        return;
    }
    let mut step = |step: String, inner: &Value| {
        let path = format!("{prefix}{step}");
        paths(inner, &path, depth - 1, out);
        out.push(path);
    };
    match value {
        Value::Map(pairs) => {
            for (k, v) in pairs {
                if let Value::Str(s) = k {
                    step(format!("['{}']", String::from_utf8_lossy(s)), v);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                step(format!("[{i}]"), v);
            }
            step(format!("[{}]", items.len()), &Value::Nil);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn deleting_any_field_of_a_record_splices_what_the_model_deletes(original in pairs()) {
        let bytes = Value::Map(original.clone()).to_bytes();
        let mut sources = Vec::new();
        paths(&Value::Map(original.clone()), "$", 4, &mut sources);
        for (n, source) in sources.iter().enumerate() {
            let Ok(a) = Accessor::parse(source) else { continue };
            let mut rec = RawRecord::new();
            if n % 2 == 0 {
                rec.load_walked(&bytes).unwrap();
            } else {
                rec.load(&bytes).unwrap();
            }
            let mut model = original.clone();
            prop_assert_eq!(
                a.get(&rec).map(|v| v.to_value().to_bytes()),
                a.get_decoded(&model).map(Value::to_bytes),
                "get {}", source
            );
            prop_assert_eq!(a.delete(&mut rec), a.delete_decoded(&mut model), "delete {}", source);
            let mut out = BytesMut::new();
            rec.write_map(&mut out);
            prop_assert_eq!(&out[..], &Value::Map(model).to_bytes()[..], "delete {}", source);
        }
    }
}

/// `bytes` load exactly when they decode as a map, then read and edit as the decoded map does.
fn check_any_bytes(bytes: &[u8], probes: &[Accessor]) {
    let mut rec = RawRecord::new();
    let loaded = rec.load(bytes);
    match Value::decode(bytes) {
        Ok((Value::Map(model), _)) => {
            assert!(loaded.is_ok(), "{loaded:?}");
            let mut model = model;
            check_reads(&rec, &model, probes);
            for a in probes {
                assert_eq!(a.delete(&mut rec), a.delete_decoded(&mut model));
            }
            assert_eq!(check_written(&rec).to_bytes(), Value::Map(model).to_bytes());
        }
        _ => {
            assert!(loaded.is_err());
            assert!(rec.is_empty() && rec.get("a").is_none());
        }
    }
    // A record loaded as walked is never checked: reads and edits of any bytes are still safe.
    let mut walked = RawRecord::new();
    if walked.load_walked(bytes).is_ok() {
        let _ = (
            walked.len(),
            walked.pairs().count(),
            walked.get("a").map(RawValue::text),
        );
        for a in probes {
            let _ = a.get(&walked).map(RawValue::text);
        }
        walked.set("b", &Value::Nil);
        for a in probes {
            a.delete(&mut walked);
        }
        let mut out = BytesMut::new();
        walked.write_map(&mut out);
        assert!(
            Value::decode(&out).is_ok(),
            "an edited record is whole msgpack"
        );
    }
    // Every constructor and walk of a value is safe on any bytes.
    if let Ok(v) = RawValue::new(bytes) {
        let _ = v.text();
        let _ = (v.get("a"), v.index(1), v.map_pairs().count());
        let _ = v.write_without_key("a", &mut BytesMut::new());
        let _ = v.write_without_item(0, &mut BytesMut::new());
    }
}

#[test]
fn an_unedited_record_is_written_as_the_bytes_it_came_in() {
    // {"a": 1} with a map16 header and a str8 key: not how ferry would write it.
    let bytes = [0xde, 0x00, 0x01, 0xd9, 0x01, b'a', 0x01];
    let mut rec = RawRecord::new();
    rec.load(&bytes).unwrap();
    assert_eq!(rec.get("a").map(RawValue::bytes), Some(&[0x01][..]));
    let mut out = BytesMut::new();
    rec.write_map(&mut out);
    assert_eq!(&out[..], &bytes[..]);
    rec.set("b", &Value::Nil);
    out.clear();
    rec.write_map(&mut out);
    assert_eq!(
        &out[..],
        &[0x82, 0xd9, 0x01, b'a', 0x01, 0xa1, b'b', 0xc0][..],
        "a new header, the original pair as it was, then the new one"
    );
}

#[test]
fn set_replaces_where_the_key_stands_and_remove_takes_every_pair_of_the_key() {
    let bytes = Value::Map(vec![
        (str_value("a"), Value::UInt(1)),
        (str_value("b"), Value::UInt(2)),
        (str_value("a"), Value::UInt(3)),
    ])
    .to_bytes();
    let mut rec = RawRecord::new();
    rec.load(&bytes).unwrap();
    rec.set("a", &Value::UInt(9));
    assert_eq!(
        check_written(&rec).to_json_string(),
        r#"{"a":9,"b":2,"a":3}"#
    );
    assert!(rec.remove("a"));
    assert!(!rec.remove("a"));
    rec.set("a", &Value::Nil);
    assert_eq!(check_written(&rec).to_json_string(), r#"{"b":2,"a":null}"#);
}

#[test]
fn records_that_are_not_whole_maps_do_not_load() {
    let mut rec = RawRecord::new();
    assert!(rec.load(&[0x91, 0x01]).is_err(), "an array");
    assert!(
        rec.load(&[0x81, 0xa1, b'a']).is_err(),
        "a pair without its value"
    );
    assert!(rec.load(&[0x81, 0xa1, b'a', 0xc1]).is_err(), "marker c1");
    assert!(
        rec.load(&[0xdf, 0xff, 0xff, 0xff, 0xff]).is_err(),
        "a count beyond the bytes"
    );
    assert!(rec.load(&[]).is_err());
    let mut out = BytesMut::new();
    rec.write_map(&mut out);
    assert_eq!(
        &out[..],
        &[0x80],
        "a view that failed to load is of the empty map"
    );
}

#[test]
fn text_of_every_value_type_is_what_the_record_helpers_render() {
    let values = [
        Value::Nil,
        Value::Bool(false),
        Value::Int(-7),
        Value::UInt(42),
        Value::F32(0.5),
        Value::F64(3.0),
        Value::F64(f64::NAN),
        Value::Str(Bytes::from_static(b"caf\xc3\xa9 \xff")),
        Value::Bin(Bytes::from_static(b"bin")),
        Value::Ext(1, Bytes::from_static(b"xy")),
        Value::Array(vec![Value::UInt(1), str_value("x")]),
        Value::Map(vec![(Value::UInt(1), Value::Nil)]),
    ];
    for v in &values {
        let bytes = v.to_bytes();
        assert_eq!(
            RawValue::new(&bytes).unwrap().text(),
            record::text(v),
            "{v:?}"
        );
    }
    let valid = str_value("plain").to_bytes();
    assert!(matches!(
        RawValue::new(&valid).unwrap().text(),
        Cow::Borrowed("plain")
    ));
}
