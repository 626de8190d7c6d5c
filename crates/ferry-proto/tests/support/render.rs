//! ferry's decoded values rendered in the JSON conventions of the two vector folders, and the
//! msgpack encoding of raw bytes rendered as the vectors' layout strings / wire trees.

use ferry_proto::EventTime;
use ferry_proto::entries::EntryRef;
use ferry_proto::msgpack::{Head, Value, read_head};
use serde_json::{Value as J, json};

/// Which folder's JSON conventions to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// `$EventTime`, `$bin_hex`, `$packed_entries_bytes`.
    Fluentd,
    /// `$ext` + `EventTime`, `$bin_len` + `$bin_hex`, `$str_not_utf8_hex`.
    FluentBit,
}

fn event_time_json(t: EventTime) -> J {
    json!({"sec": t.sec, "nsec": t.nsec})
}

/// An EventTime as it appears in the vectors.
pub fn time_view(t: EventTime, conv: Convention) -> J {
    match conv {
        Convention::Fluentd => json!({ "$EventTime": event_time_json(t) }),
        Convention::FluentBit => {
            let mut payload = Vec::new();
            payload.extend_from_slice(&t.sec.to_be_bytes());
            payload.extend_from_slice(&t.nsec.to_be_bytes());
            json!({"$ext": 0, "len": 8, "hex": hex::encode(payload), "EventTime": event_time_json(t)})
        }
    }
}

/// A str's view: a JSON string when UTF-8.
pub fn str_view(s: &[u8], conv: Convention) -> J {
    match std::str::from_utf8(s) {
        Ok(s) => J::String(s.to_owned()),
        Err(_) => match conv {
            Convention::Fluentd => panic!("fluentd vectors have no convention for non-UTF-8 str"),
            Convention::FluentBit => json!({"$str_not_utf8_hex": hex::encode(s), "len": s.len()}),
        },
    }
}

/// A bin's view.
pub fn bin_view(b: &[u8], conv: Convention) -> J {
    match conv {
        Convention::Fluentd => json!({"$bin_hex": hex::encode(b)}),
        Convention::FluentBit => json!({"$bin_len": b.len(), "$bin_hex": hex::encode(b)}),
    }
}

/// A whole value's view.
pub fn view(v: &Value, conv: Convention) -> J {
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::F32(f) => json!(f64::from(*f)),
        Value::F64(f) => json!(f),
        Value::Str(s) => str_view(s, conv),
        Value::Bin(b) => bin_view(b, conv),
        Value::Array(items) => J::Array(items.iter().map(|i| view(i, conv)).collect()),
        Value::Map(pairs) => {
            let mut m = serde_json::Map::new();
            for (k, v) in pairs {
                let Value::Str(k) = k else {
                    panic!("map key {k:?} is not a str: the vectors have no convention for it")
                };
                let key = String::from_utf8(k.to_vec()).expect("map keys in the vectors are UTF-8");
                m.insert(key, view(v, conv));
            }
            J::Object(m)
        }
        Value::Ext(0, data) if data.len() == 8 => {
            let mut p = [0u8; 8];
            p.copy_from_slice(data);
            time_view(EventTime::from_ext_payload(p), conv)
        }
        Value::Ext(ty, data) => match conv {
            Convention::FluentBit => {
                json!({"$ext": ty, "len": data.len(), "hex": hex::encode(data)})
            }
            Convention::Fluentd => panic!("fluentd vectors have no convention for ext type {ty}"),
        },
    }
}

/// Decode raw msgpack bytes (exactly one value) and render it.
pub fn raw_view(raw: &[u8], conv: Convention) -> J {
    let (v, used) = Value::decode(raw).expect("raw value decodes");
    assert_eq!(used, raw.len(), "raw value has trailing bytes");
    view(&v, conv)
}

/// An entry rebuilt from what [`EntryRef`] exposes (time, int_time, metadata, record), not from
/// its raw bytes.
pub fn entry_view(e: &EntryRef<'_>, conv: Convention) -> J {
    let time = if e.int_time {
        assert_eq!(e.time.nsec, 0);
        json!(e.time.sec)
    } else {
        time_view(e.time, conv)
    };
    let time = match e.metadata {
        Some(meta) => json!([time, raw_view(meta, conv)]),
        None => time,
    };
    json!([time, raw_view(e.record, conv)])
}

fn head_at(bytes: &[u8], pos: usize) -> (Head, usize, u8) {
    let (h, n) = read_head(bytes, pos).expect("valid header");
    (h, n, bytes[pos])
}

fn width(marker: u8, fix: &str, w8: &str, w16: &str, w32: &str, fix_max: u8) -> String {
    match marker {
        m if m <= fix_max => fix.to_owned(),
        0xc4 | 0xd9 => w8.to_owned(),
        0xc5 | 0xda | 0xdc | 0xde => w16.to_owned(),
        _ => w32.to_owned(),
    }
}

fn scalar_name(marker: u8, head: Head) -> String {
    match (marker, head) {
        (0x00..=0x7f, _) => "positive_fixint".into(),
        (0xe0..=0xff, _) => "negative_fixint".into(),
        (0xc0, _) => "nil".into(),
        (0xc2, _) => "false".into(),
        (0xc3, _) => "true".into(),
        (0xca, _) => "float32".into(),
        (0xcb, _) => "float64".into(),
        (0xcc, _) => "uint8".into(),
        (0xcd, _) => "uint16".into(),
        (0xce, _) => "uint32".into(),
        (0xcf, _) => "uint64".into(),
        (0xd0, _) => "int8".into(),
        (0xd1, _) => "int16".into(),
        (0xd2, _) => "int32".into(),
        (0xd3, _) => "int64".into(),
        (m, h) => panic!("marker {m:02x} ({h:?}) is not a scalar"),
    }
}

fn ext_name(marker: u8) -> String {
    match marker {
        0xd4..=0xd8 => format!("fixext{}", 1u32 << (marker - 0xd4)),
        0xc7 => "ext8".into(),
        0xc8 => "ext16".into(),
        _ => "ext32".into(),
    }
}

/// Fluentd vectors' layout string, e.g.
/// `fixarray(2)[fixext8(type=0,len=8), fixmap(1){fixstr(len=1): positive_fixint}]`.
pub fn layout(bytes: &[u8]) -> String {
    let mut pos = 0;
    let s = layout_at(bytes, &mut pos);
    assert_eq!(pos, bytes.len(), "layout: trailing bytes");
    s
}

fn layout_at(bytes: &[u8], pos: &mut usize) -> String {
    let (head, hlen, marker) = head_at(bytes, *pos);
    *pos += hlen + head.payload_len();
    match head {
        Head::Str(n) => format!(
            "{}(len={n})",
            width(marker, "fixstr", "str8", "str16", "str32", 0xbf)
        ),
        Head::Bin(n) => format!(
            "{}(len={n})",
            width(marker, "", "bin8", "bin16", "bin32", 0)
        ),
        Head::Ext(ty, n) => format!("{}(type={ty},len={n})", ext_name(marker)),
        Head::Array(n) => {
            let items: Vec<String> = (0..n).map(|_| layout_at(bytes, pos)).collect();
            let w = width(marker, "fixarray", "", "array16", "array32", 0x9f);
            format!("{w}({n})[{}]", items.join(", "))
        }
        Head::Map(n) => {
            let items: Vec<String> = (0..n)
                .map(|_| {
                    let k = layout_at(bytes, pos);
                    let v = layout_at(bytes, pos);
                    format!("{k}: {v}")
                })
                .collect();
            let w = width(marker, "fixmap", "", "map16", "map32", 0x8f);
            format!("{w}({n}){{{}}}", items.join(", "))
        }
        _ => scalar_name(marker, head),
    }
}

/// Check raw bytes against a Fluent Bit `wire_encoding_tree`. Containers are
/// `{"fixarray[N]": [children]}` (map children flattened as key, value, ...); a child
/// `"... (K more)"` stands for the K remaining children.
pub fn check_wire_tree(bytes: &[u8], expected: &J) -> Result<(), String> {
    let mut pos = 0;
    wire_at(bytes, &mut pos, expected)?;
    if pos != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - pos));
    }
    Ok(())
}

fn wire_at(bytes: &[u8], pos: &mut usize, expected: &J) -> Result<(), String> {
    let (head, hlen, marker) = head_at(bytes, *pos);
    let at = *pos;
    *pos += hlen + head.payload_len();
    let leaf = |name: String| match expected {
        J::String(s) if *s == name => Ok(()),
        other => Err(format!(
            "offset {at}: ferry sees {name}, vector says {other}"
        )),
    };
    match head {
        Head::Str(n) => leaf(format!(
            "{}(len={n})",
            width(marker, "fixstr", "str8", "str16", "str32", 0xbf)
        )),
        Head::Bin(n) => leaf(format!(
            "{}(len={n})",
            width(marker, "", "bin8", "bin16", "bin32", 0)
        )),
        Head::Ext(ty, n) => leaf(format!("{}(type={ty})(len={n})", ext_name(marker))),
        Head::Array(n) | Head::Map(n) => {
            let is_map = matches!(head, Head::Map(_));
            let w = if is_map {
                width(marker, "fixmap", "", "map16", "map32", 0x8f)
            } else {
                width(marker, "fixarray", "", "array16", "array32", 0x9f)
            };
            let name = format!("{w}[{n}]");
            let children = match expected {
                J::Object(o) if o.len() == 1 && o.contains_key(&name) => o[&name]
                    .as_array()
                    .ok_or_else(|| format!("offset {at}: children of {name} are not a list"))?,
                other => {
                    return Err(format!(
                        "offset {at}: ferry sees {name}, vector says {other}"
                    ));
                }
            };
            let total = if is_map { 2 * n as usize } else { n as usize };
            let mut shown = 0;
            for child in children {
                if let Some(more) = child.as_str().and_then(|s| s.strip_prefix("... (")) {
                    let k: usize = more
                        .trim_end_matches(" more)")
                        .parse()
                        .map_err(|_| format!("offset {at}: bad truncation marker {more}"))?;
                    if shown + k != total {
                        return Err(format!("offset {at}: {shown} shown + {k} more != {total}"));
                    }
                    for _ in shown..total {
                        *pos = ferry_proto::msgpack::skip_value(bytes, *pos)
                            .map_err(|e| e.to_string())?;
                    }
                    return Ok(());
                }
                wire_at(bytes, pos, child)?;
                shown += 1;
            }
            if shown != total {
                return Err(format!("offset {at}: {name} lists {shown} children"));
            }
            Ok(())
        }
        Head::UInt(_) | Head::Int(_) if marker <= 0x7f || marker >= 0xe0 => leaf("fixint".into()),
        _ => leaf(scalar_name(marker, head)),
    }
}
