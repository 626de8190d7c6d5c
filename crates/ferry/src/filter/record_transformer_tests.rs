use super::*;
use crate::filter::raw::check_written;
use crate::plugin::read_section;
use crate::record::str_value;
use crate::time::utc_fields;
use std::sync::Arc;

/// The transformer of `conf`, writing `${time}` in UTC whatever the host's zone.
fn transformer(conf: &str) -> RecordTransformer {
    let mut t = read_section(conf, RecordTransformer::from_section)
        .unwrap()
        .unwrap();
    t.time_text.1 = Zone::UTC;
    t
}

fn ctx() -> TagContext {
    TagContext::new(Arc::from("app.web.access"), Arc::from("box1"))
}

fn run(t: &RecordTransformer, rec: Vec<(Value, Value)>) -> (EventTime, Value) {
    let time = EventTime {
        sec: 1_700_000_000,
        nsec: 0,
    };
    let bytes = Value::Map(rec).to_bytes();
    let mut event = Event::try_new(time, &bytes).unwrap();
    let out = t.apply(&ctx(), &mut event);
    assert!(out.modified && out.error.is_none());
    // A record loaded as walked (indexed at the first edit) comes out the same.
    let mut walked = Event {
        time,
        ..Event::default()
    };
    walked.record.load_walked(&bytes).unwrap();
    assert_eq!(t.apply(&ctx(), &mut walked), out);
    assert_eq!(walked.time, event.time);
    let written = check_written(&event.record);
    assert_eq!(check_written(&walked.record).to_bytes(), written.to_bytes());
    (event.time, written)
}

fn input() -> Vec<(Value, Value)> {
    vec![
        (str_value("message"), str_value("hi")),
        (str_value("code"), Value::UInt(200)),
        (str_value("drop"), str_value("x")),
    ]
}

#[test]
fn placeholders_expand_tag_parts_host_time_and_fields() {
    let t = transformer(
        "<filter>\n<record>\n\
         host ${hostname}\n\
         where ${tag_parts[0]}/${tag_parts[-1]}/${tag_parts[9]}\n\
         prefix ${tag_prefix[1]}\n\
         suffix ${tag_suffix[-2]}\n\
         when ${time}\n\
         said ${tag}: ${record[\"message\"]} (${record[\"code\"]})\n\
         </record>\n</filter>",
    );
    let (_, v) = run(&t, input());
    assert_eq!(
        v.to_json_string(),
        "{\"message\":\"hi\",\"code\":200,\"drop\":\"x\",\"host\":\"box1\",\"where\":\"app/access/\",\
         \"prefix\":\"app.web\",\"suffix\":\"web.access\",\"when\":\"2023-11-14 22:13:20 +0000\",\
         \"said\":\"app.web.access: hi (200)\"}"
    );
}

#[test]
fn auto_typecast_keeps_the_type_of_a_lone_placeholder_and_json_values_are_templates() {
    let t = transformer(
        "<filter>\nauto_typecast true\n<record>\n\
         status ${record[\"code\"]}\n\
         missing ${record[\"none\"]}\n\
         nested {\"t\":\"${tag_parts[1]}\",\"n\":[1,\"${record[\\\"code\\\"]}\"]}\n\
         </record>\n</filter>",
    );
    let (_, v) = run(&t, input());
    assert_eq!(v.get("status"), Some(&Value::UInt(200)));
    assert_eq!(v.get("missing"), Some(&Value::Nil));
    assert_eq!(
        v.get("nested").unwrap().to_json_string(),
        "{\"t\":\"web\",\"n\":[1,200]}"
    );
}

#[test]
fn renew_record_keep_keys_remove_keys_and_renew_time_key() {
    let t = transformer(
        "<filter>\nrenew_record true\nkeep_keys message,code\nremove_keys code\n\
         renew_time_key at\n<record>\nat 1700000100.5\n</record>\n</filter>",
    );
    let (time, v) = run(&t, input());
    assert_eq!(
        v.to_json_string(),
        "{\"message\":\"hi\",\"at\":\"1700000100.5\"}"
    );
    assert_eq!(
        time,
        EventTime {
            sec: 1_700_000_100,
            nsec: 500_000_000
        }
    );
    let t = transformer("<filter>\nremove_keys drop,$.none\n</filter>");
    let (_, v) = run(&t, input());
    assert_eq!(v.to_json_string(), "{\"message\":\"hi\",\"code\":200}");
}

#[test]
fn code_and_unknown_placeholders_are_configuration_errors() {
    let bad = |conf: &str| read_section(conf, RecordTransformer::from_section).is_err();
    assert!(bad("<filter>\nenable_ruby true\n</filter>"));
    assert!(bad(
        "<filter>\n<record>\nx ${message}\n</record>\n</filter>"
    ));
    assert!(bad(
        "<filter>\n<record>\nx ${tag_parts[a]}\n</record>\n</filter>"
    ));
    assert!(bad("<filter>\nkeep_keys a\n</filter>"));
    assert!(!bad(
        "<filter>\nenable_ruby false\n<record>\nx y\n</record>\n</filter>"
    ));
}

/// The filter as it was on decoded pairs, before records were read raw: the model the
/// combinations below are held to.
fn decoded_model(
    t: &RecordTransformer,
    ctx: &TagContext,
    time: &mut EventTime,
    rec: &mut Vec<(Value, Value)>,
) {
    use crate::record;
    fn resolve(
        p: &Placeholder,
        ctx: &TagContext,
        time: EventTime,
        rec: &[(Value, Value)],
    ) -> Option<Value> {
        let parts = &ctx.parts;
        let index = |n: i64| -> Option<usize> {
            let len = i64::try_from(parts.len()).ok()?;
            let i = if n < 0 { len + n } else { n };
            usize::try_from(i).ok().filter(|i| *i < parts.len())
        };
        match p {
            Placeholder::Tag => Some(str_value(&ctx.tag)),
            Placeholder::Hostname => Some(str_value(&ctx.hostname)),
            Placeholder::TagPart(n) => index(*n).map(|i| str_value(&parts[i])),
            Placeholder::TagPrefix(n) => index(*n).map(|i| str_value(&parts[..=i].join("."))),
            Placeholder::TagSuffix(n) => index(*n).map(|i| str_value(&parts[i..].join("."))),
            Placeholder::Time => {
                let (y, mo, d, h, mi, s) = utc_fields(time.sec);
                Some(str_value(&format!(
                    "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000"
                )))
            }
            Placeholder::Field(k) => record::get(rec, k).cloned(),
        }
    }
    let text_of = |tpl: &Template, rec: &[(Value, Value)]| -> String {
        let mut out = String::new();
        for piece in &tpl.0 {
            match piece {
                Piece::Lit(l) => out.push_str(l),
                Piece::Ph(p) => {
                    if let Some(v) = resolve(p, ctx, *time, rec) {
                        out.push_str(&text(&v));
                    }
                }
            }
        }
        out
    };
    fn expand(
        v: &TValue,
        typecast: bool,
        text_of: &dyn Fn(&Template) -> String,
        resolve: &dyn Fn(&Placeholder) -> Option<Value>,
    ) -> Value {
        match v {
            TValue::Text(t) => match t.0.as_slice() {
                [Piece::Ph(p)] if typecast => resolve(p).unwrap_or(Value::Nil),
                _ => str_value(&text_of(t)),
            },
            TValue::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| expand(v, typecast, text_of, resolve))
                    .collect(),
            ),
            TValue::Map(pairs) => Value::Map(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        (
                            str_value(&text_of(k)),
                            expand(v, typecast, text_of, resolve),
                        )
                    })
                    .collect(),
            ),
            TValue::Scalar(v) => v.clone(),
        }
    }
    let input = rec.clone();
    let expanded: Vec<(String, Value)> = t
        .fields
        .iter()
        .map(|(k, v)| {
            (
                text_of(k, &input),
                expand(v, t.auto_typecast, &|tpl| text_of(tpl, &input), &|p| {
                    resolve(p, ctx, *time, &input)
                }),
            )
        })
        .collect();
    if t.renew_record {
        let old = std::mem::take(rec);
        for k in &t.keep_keys {
            if let Some(v) = record::get(&old, k) {
                rec.push((str_value(k), v.clone()));
            }
        }
    }
    for (k, v) in expanded {
        record::set(rec, &k, v);
    }
    if let Some(key) = &t.renew_time_key
        && let Some(v) = record::get(rec, key)
    {
        let secs = match v {
            Value::UInt(u) => *u as f64,
            Value::Int(i) => *i as f64,
            Value::F64(f) => *f,
            Value::F32(f) => f64::from(*f),
            other => leading_float(&text(other)),
        };
        let secs = secs.clamp(0.0, f64::from(u32::MAX));
        *time = EventTime {
            sec: secs.trunc() as u32,
            nsec: ((secs - secs.trunc()) * 1e9) as u32,
        };
    }
    for k in &t.remove_keys {
        k.delete_decoded(rec);
    }
}

#[test]
fn every_combination_of_parameters_does_what_the_filter_did_on_decoded_records() {
    let nested = Value::Map(vec![
        (
            str_value("b"),
            Value::Array(vec![Value::UInt(1), str_value("x")]),
        ),
        (str_value("b"), Value::Nil),
        (Value::UInt(7), Value::F64(2.5)),
    ]);
    let records = [
        input(),
        vec![
            (str_value("code"), Value::Int(-4)),
            (str_value("message"), Value::F64(1_700_000_123.25)),
            (str_value("a"), nested.clone()),
            (str_value("message"), str_value("dup")),
            (Value::Nil, str_value("odd key")),
        ],
        vec![
            (str_value("a"), nested),
            (str_value("at"), Value::F32(12.5)),
            (
                str_value("code"),
                Value::Bin(bytes::Bytes::from_static(b"\xff1")),
            ),
        ],
        vec![],
    ];
    let record_sections = [
        "",
        "message ${record[\"code\"]}-${record[\"a\"]}\nat ${record[\"message\"]}\n",
        "copy ${record[\"a\"]}\nt ${tag_parts[1]}\nj {\"k\":[\"${record[\\\"code\\\"]}\",2]}\n",
        "a ${hostname}\ndrop ${record[\"none\"]}\nmessage ${time}\n",
    ];
    let mut combinations = 0;
    for section in record_sections {
        for bits in 0..16u32 {
            let on = |bit: u32| bits & (1 << bit) != 0;
            let mut conf = format!("<filter>\nauto_typecast {}\n", on(0));
            if on(1) {
                conf += "renew_record true\nkeep_keys message,a,message,none\n";
            }
            if on(2) {
                conf += "remove_keys drop,$.a.b,$.a.b[0],$.copy.b[1],$['j']['k'][0]\n";
            }
            if on(3) {
                conf += "renew_time_key at\n";
            }
            conf += &format!("<record>\n{section}</record>\n</filter>");
            let t = transformer(&conf);
            for rec in &records {
                let mut model_time = EventTime {
                    sec: 1_700_000_000,
                    nsec: 0,
                };
                let mut model = rec.clone();
                decoded_model(&t, &ctx(), &mut model_time, &mut model);
                let (time, v) = run(&t, rec.clone());
                assert_eq!(time, model_time, "{conf}\n{rec:?}");
                assert_eq!(
                    v.to_bytes(),
                    Value::Map(model).to_bytes(),
                    "{conf}\n{rec:?}"
                );
                combinations += 1;
            }
        }
    }
    assert_eq!(combinations, 4 * 16 * 4);
}
