use super::*;
use crate::filter::Verdict;
use crate::filter::raw::check_written;
use crate::plugin::read_section;
use crate::record::str_value;
use ferry_proto::msgpack::Value;

/// The filter of `conf`, its `<parse>` reading times without a zone in UTC unless it names a
/// zone, so that what these tests expect holds whatever the host's zone.
fn filter(conf: &str) -> ParserFilter {
    let conf = match conf.contains("utc") || conf.contains("localtime") || conf.contains("timezone")
    {
        true => conf.to_string(),
        false => conf.replace("</parse>", "utc true\n</parse>"),
    };
    read_section(&conf, ParserFilter::from_section)
        .unwrap()
        .unwrap()
}

const T0: EventTime = EventTime {
    sec: 1_600_000_000,
    nsec: 0,
};

fn run(f: &ParserFilter, rec: Vec<(Value, Value)>) -> (Outcome, EventTime, Value) {
    let bytes = Value::Map(rec).to_bytes();
    let mut event = Event::try_new(T0, &bytes).unwrap();
    let out = f.apply(&mut event);
    // A record loaded as walked (indexed at the first edit) comes out the same.
    let mut walked = Event {
        time: T0,
        ..Event::default()
    };
    walked.record.load_walked(&bytes).unwrap();
    assert_eq!(f.apply(&mut walked), out);
    let written = check_written(&event.record);
    assert_eq!(check_written(&walked.record).to_bytes(), written.to_bytes());
    if !f.parser.estimate_current_event || walked.time == T0 {
        assert_eq!(walked.time, event.time);
    }
    (out, event.time, written)
}

fn log(text: &str) -> Vec<(Value, Value)> {
    vec![
        (str_value("log"), str_value(text)),
        (str_value("stream"), str_value("stdout")),
    ]
}

#[test]
fn json_field_replaces_the_record_and_its_time_becomes_the_event_time() {
    let f = filter("<filter>\nkey_name log\n<parse>\n@type json\n</parse>\n</filter>");
    let (out, time, v) = run(&f, log(r#"{"a":1,"time":"2023-11-14T22:13:20Z"}"#));
    assert_eq!(out, Outcome::modified());
    assert_eq!(v.to_json_string(), r#"{"a":1}"#);
    assert_eq!(time.sec, 1_700_000_000);
}

#[test]
fn reserve_data_merges_and_remove_key_name_field_drops_the_source() {
    let f = filter(
        "<filter>\nkey_name log\nreserve_data true\nremove_key_name_field true\nreserve_time true\n\
         inject_key_prefix p_\n<parse>\n@type ltsv\n</parse>\n</filter>",
    );
    let (out, time, v) = run(&f, log("a:1\tb:x"));
    assert_eq!(out.verdict, Verdict::Keep);
    assert_eq!(time, T0);
    assert_eq!(
        v.to_json_string(),
        r#"{"stream":"stdout","p_a":"1","p_b":"x"}"#
    );
}

#[test]
fn regexp_named_groups_types_and_time_format() {
    let f = filter(
        "<filter>\nkey_name log\nhash_value_field parsed\n<parse>\n@type regexp\n\
         expression /^(?<host>\\S+) (?<code>\\d+) (?<time>\\S+)$/\ntypes code:integer\n\
         time_format %d/%b/%Y:%H:%M:%S\n</parse>\n</filter>",
    );
    let (out, time, v) = run(&f, log("web1 503 14/Nov/2023:22:13:20"));
    assert_eq!(out, Outcome::modified());
    assert_eq!(time.sec, 1_700_000_000);
    assert_eq!(
        v.to_json_string(),
        r#"{"parsed":{"host":"web1","code":503}}"#
    );
}

#[test]
fn unmatched_text_goes_to_error_and_is_dropped_unless_reserve_data() {
    let conf = |reserve: bool| {
        format!(
            "<filter>\nkey_name log\nreserve_data {reserve}\n<parse>\n@type regexp\n\
             expression /^(?<n>\\d+)$/\n</parse>\n</filter>"
        )
    };
    let (out, _, v) = run(&filter(&conf(false)), log("abc"));
    assert_eq!(out.verdict, Verdict::Drop);
    assert!(out.error.unwrap().contains("pattern not matched"));
    assert_eq!(
        v,
        Value::Map(log("abc")),
        "an erroring filter leaves the event as it was"
    );
    let (out, _, v) = run(&filter(&conf(true)), log("abc"));
    assert_eq!(out.verdict, Verdict::Keep);
    assert!(out.error.is_some());
    assert_eq!(v, Value::Map(log("abc")));
}

#[test]
fn missing_key_and_unreadable_text_go_to_error() {
    let f = filter("<filter>\nkey_name log\n<parse>\n@type json\n</parse>\n</filter>");
    let (out, _, _) = run(&f, vec![(str_value("other"), str_value("x"))]);
    assert_eq!(out.verdict, Verdict::Drop);
    assert!(out.error.unwrap().contains("log does not exist"));
    let (out, _, _) = run(&f, log("{not json"));
    assert_eq!(out.verdict, Verdict::Drop);
    assert!(out.error.unwrap().starts_with("parse failed"));
    let quiet = filter(
        "<filter>\nkey_name log\nemit_invalid_record_to_error false\n<parse>\n@type json\n\
         </parse>\n</filter>",
    );
    let (out, _, _) = run(&quiet, log("[1]"));
    assert_eq!((out.verdict, out.error), (Verdict::Drop, None));
}

#[test]
fn none_parser_wraps_the_text_and_estimates_the_time_unless_told_not_to() {
    let f = filter(
        "<filter>\nkey_name log\n<parse>\n@type none\nmessage_key msg\n\
         estimate_current_event false\n</parse>\n</filter>",
    );
    let (_, time, v) = run(&f, log("plain text"));
    assert_eq!(time, T0);
    assert_eq!(v.to_json_string(), r#"{"msg":"plain text"}"#);
    let now = filter("<filter>\nkey_name log\n<parse>\n@type none\n</parse>\n</filter>");
    let (_, time, _) = run(&now, log("x"));
    assert!(time.sec > T0.sec);
}

#[test]
fn every_parser_of_the_tail_input_serves_the_filter() {
    let f = filter("<filter>\nkey_name log\n<parse>\n@type apache2\n</parse>\n</filter>");
    let (out, time, v) = run(
        &f,
        log(r#"192.168.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET /x HTTP/1.1" 200 777 "-" "curl""#),
    );
    assert_eq!(out, Outcome::modified());
    assert_eq!(time.sec, 1_700_000_000);
    assert_eq!(
        v.to_json_string(),
        r#"{"host":"192.168.0.1","user":null,"method":"GET","path":"/x","code":200,"size":777,"referer":null,"agent":"curl"}"#
    );
    let csv = filter(
        "<filter>\nkey_name log\n<parse>\n@type csv\nkeys a,b\ntypes b:integer\n</parse>\n</filter>",
    );
    let (_, _, v) = run(&csv, log("x,42"));
    assert_eq!(v.to_json_string(), r#"{"a":"x","b":42}"#);
    // Time codes that once worked only in the tail input (%j, %D, %R) or only here (%3N).
    for (format, text) in [
        ("%Y %j %H:%M:%S", "2023 318 22:13:20"),
        ("%D %R:%S", "11/14/23 22:13:20"),
        ("%Y-%m-%dT%H:%M:%S.%3N", "2023-11-14T22:13:20.250"),
    ] {
        let f = filter(&format!(
            "<filter>\nkey_name log\n<parse>\n@type regexp\nexpression /^(?<time>.+)$/\n\
             time_format {format}\n</parse>\n</filter>"
        ));
        let (out, time, _) = run(&f, log(text));
        assert_eq!(out, Outcome::modified(), "{format}");
        assert_eq!(time.sec, 1_700_000_000, "{format}");
    }
}

#[test]
fn null_value_pattern_and_null_empty_string_turn_values_into_nil() {
    let f = filter(
        "<filter>\nkey_name log\n<parse>\n@type ltsv\nnull_value_pattern /^(-|N\\/A)$/\n\
         null_empty_string true\n</parse>\n</filter>",
    );
    let (_, _, v) = run(&f, log("a:-\tb:N/A\tc:\td:x-"));
    assert_eq!(
        v.to_json_string(),
        r#"{"a":null,"b":null,"c":null,"d":"x-"}"#
    );
}

#[test]
fn unknown_parsers_and_missing_parse_are_configuration_errors() {
    let bad = |conf: &str| read_section(conf, ParserFilter::from_section).is_err();
    assert!(bad(
        "<filter>\nkey_name log\n<parse>\n@type apache3\n</parse>\n</filter>"
    ));
    assert!(bad("<filter>\nkey_name log\n</filter>"));
    assert!(bad("<filter>\n<parse>\n@type json\n</parse>\n</filter>"));
    assert!(bad(
        "<filter>\nkey_name log\n<parse>\n@type regexp\nexpression /(/\n</parse>\n</filter>"
    ));
    assert!(bad(
        "<filter>\nkey_name log\n<parse>\n@type json\ntypes a:date\n</parse>\n</filter>"
    ));
}

/// The filter as it was on decoded pairs, before records were read raw: the model every
/// combination of parameters is held to below.
fn decoded_model(f: &ParserFilter, time: &mut EventTime, rec: &mut Vec<(Value, Value)>) -> Outcome {
    use crate::record;
    let failed = |reason: String, keep: bool| Outcome {
        verdict: if keep { Verdict::Keep } else { Verdict::Drop },
        modified: false,
        error: f.emit_invalid_record_to_error.then_some(reason),
    };
    let merge = |rec: &mut Vec<(Value, Value)>, mut values: Vec<(Value, Value)>| {
        if let Some(prefix) = &f.inject_key_prefix {
            for (k, _) in values.iter_mut() {
                *k = str_value(&format!("{prefix}{}", record::text(k)));
            }
        }
        if let Some(field) = &f.hash_value_field {
            values = vec![(str_value(field), Value::Map(values))];
        }
        if f.reserve_data {
            for (k, v) in values {
                record::set(rec, &record::text(&k), v);
            }
        } else {
            *rec = values;
        }
        true
    };
    let raw = match f.key_name.get_decoded(rec) {
        None => {
            let reason = format!("{} does not exist", f.key_name.source());
            if f.reserve_data && f.hash_value_field.is_some() {
                let mut out = failed(reason, true);
                out.modified = merge(rec, Vec::new());
                return out;
            }
            return failed(reason, f.reserve_data);
        }
        Some(Value::Str(s)) => s.clone(),
        Some(other) => {
            let reason = format!(
                "parse failed: value of {} is not a string: {}",
                f.key_name.source(),
                other.to_json_string()
            );
            return failed(reason, false);
        }
    };
    let mut parsed = Record::new();
    match f.parser.parse(&raw, &mut parsed) {
        Ok(parsed_time) => {
            if let (false, Some(t)) = (f.reserve_time, parsed_time) {
                *time = t;
            }
            if f.reserve_data && f.remove_key_name_field {
                f.key_name.delete_decoded(rec);
            }
            merge(rec, parsed.pairs().collect());
            Outcome::modified()
        }
        Err(ParseError::NoMatch) => {
            let raw = String::from_utf8_lossy(&raw);
            let mut out = failed(
                format!("pattern not matched with data '{raw}'"),
                f.reserve_data,
            );
            if f.reserve_data && f.hash_value_field.is_some() {
                out.modified = merge(rec, Vec::new());
            }
            out
        }
        Err(e) => failed(format!("parse failed {e}"), false),
    }
}

#[test]
fn every_combination_of_parameters_does_what_the_filter_did_on_decoded_records() {
    let nested = |v: Value| Value::Map(vec![(str_value("log"), v)]);
    let json =
        str_value(r#"{"a":1,"a":2,"log":"again","b":{"c":[1,"x"]},"time":"2023-11-14T22:13:20Z"}"#);
    let records = [
        vec![
            (str_value("log"), json.clone()),
            (str_value("stream"), str_value("out")),
        ],
        vec![
            (str_value("a"), Value::UInt(0)),
            (str_value("log"), str_value("no match")),
        ],
        vec![
            (str_value("log"), Value::UInt(5)),
            (str_value("log"), json.clone()),
        ],
        vec![(str_value("other"), Value::Nil)],
        vec![
            (str_value("nest"), nested(json)),
            (str_value("log"), str_value("{}")),
        ],
        vec![(str_value("nest"), nested(str_value("12 x")))],
    ];
    let parsers = [
        "@type json\nestimate_current_event false",
        "@type regexp\nexpression /^(?<n>\\d+) (?<log>\\w+)$/\nestimate_current_event false",
    ];
    let mut combinations = 0;
    for key_name in ["log", "$.nest.log"] {
        for parser in parsers {
            for bits in 0..32u32 {
                let on = |bit: u32| bits & (1 << bit) != 0;
                let mut conf = format!("<filter>\nkey_name {key_name}\n");
                conf += &format!("reserve_data {}\nreserve_time {}\n", on(0), on(1));
                conf += &format!("remove_key_name_field {}\n", on(2));
                if on(3) {
                    conf += "inject_key_prefix p_\n";
                }
                if on(4) {
                    conf += "hash_value_field parsed\n";
                }
                conf += &format!("<parse>\n{parser}\n</parse>\n</filter>");
                let f = filter(&conf);
                for rec in &records {
                    let mut model_time = T0;
                    let mut model = rec.clone();
                    let expected = decoded_model(&f, &mut model_time, &mut model);
                    let (out, time, v) = run(&f, rec.clone());
                    assert_eq!(out, expected, "{conf}\n{rec:?}");
                    assert_eq!(time, model_time, "{conf}\n{rec:?}");
                    assert_eq!(v, Value::Map(model), "{conf}\n{rec:?}");
                    combinations += 1;
                }
            }
        }
    }
    assert_eq!(combinations, 2 * 2 * 32 * 6);
}
