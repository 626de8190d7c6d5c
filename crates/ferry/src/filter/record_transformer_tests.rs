use super::*;
use crate::filter::raw::check_written;
use crate::plugin::read_section;
use crate::record::str_value;
use std::sync::Arc;

fn transformer(conf: &str) -> RecordTransformer {
    read_section(conf, RecordTransformer::from_section)
        .unwrap()
        .unwrap()
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
    (event.time, check_written(&event.record))
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
