use super::*;
use bytes::BytesMut;
use ferry_config::Errors;
use ferry_proto::msgpack::Value;
use serde_json::json;

/// Times without a zone read in UTC unless `body` names a zone, so that what these tests expect
/// holds whatever the host's zone.
pub(super) fn in_utc(body: &str) -> String {
    if ["utc", "localtime", "timezone"]
        .iter()
        .any(|k| body.contains(k))
    {
        body.to_string()
    } else {
        format!("{body}\nutc true")
    }
}

pub(super) fn setup(body: &str) -> ParseSetup {
    let text = format!("<parse>\n{}\n</parse>\n", in_utc(body));
    let root = ferry_config::parse_str(&text, "test.conf").unwrap();
    let errors = Errors::new();
    let s = Section::new(&root.children[0], &errors);
    let setup = ParseSetup::from_section(&s);
    s.finish();
    assert!(
        errors.is_empty(),
        "config errors: {:?}",
        errors.into_result(())
    );
    setup
}

fn config_errors(body: &str) -> String {
    let text = format!("<parse>\n{body}\n</parse>\n");
    let root = ferry_config::parse_str(&text, "test.conf").unwrap();
    let errors = Errors::new();
    let s = Section::new(&root.children[0], &errors);
    let _ = ParseSetup::from_section(&s);
    s.finish();
    match errors.into_result(()) {
        Ok(()) => String::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

/// Parses `line` and returns the time and the record as JSON.
fn run(
    setup: &ParseSetup,
    line: &str,
) -> Result<(Option<EventTime>, serde_json::Value), ParseError> {
    let mut rec = Record::new();
    let time = setup.parser.parse(line.as_bytes(), &mut rec)?;
    let mut map = BytesMut::new();
    rec.write_map(&mut map);
    let (value, used) = Value::decode(&map).unwrap();
    assert_eq!(used, map.len(), "the record is one msgpack map");
    Ok((time, serde_json::from_str(&value.to_json_string()).unwrap()))
}

#[test]
fn none_puts_the_whole_line_under_the_message_key() {
    let s = setup("@type none");
    let (t, r) = run(&s, "plain text line").unwrap();
    assert_eq!(t, None);
    assert_eq!(r, json!({"message": "plain text line"}));
    let s = setup("@type none\nmessage_key log");
    assert_eq!(run(&s, "x").unwrap().1, json!({"log": "x"}));
}

#[test]
fn json_keeps_types_order_and_nesting_and_takes_the_time_key_out() {
    let s = setup("@type json");
    let line = r#"{"time":1700000000.5,"level":"info","n":-3,"big":18446744073709551615,"f":1.25,"ok":true,"none":null,"arr":[1,"a",{"k":[]}],"obj":{"x":{"y":"z"}}}"#;
    let (t, r) = run(&s, line).unwrap();
    assert_eq!(t, Some(EventTime::new(1_700_000_000, 500_000_000)));
    assert_eq!(
        r,
        json!({"level":"info","n":-3,"big":18446744073709551615u64,"f":1.25,"ok":true,"none":null,"arr":[1,"a",{"k":[]}],"obj":{"x":{"y":"z"}}})
    );
    let keys: Vec<_> = r.as_object().unwrap().keys().cloned().collect();
    assert!(keys.contains(&"level".to_string()));
}

#[test]
fn json_containers_of_any_size_are_valid_msgpack() {
    let s = setup("@type json");
    let items: Vec<String> = (0..70_000).map(|i| i.to_string()).collect();
    let line = format!(r#"{{"a":[{}],"b":"é\n\"q\""}}"#, items.join(","));
    let (_, r) = run(&s, &line).unwrap();
    assert_eq!(r["a"].as_array().unwrap().len(), 70_000);
    assert_eq!(r["a"][69_999], json!(69_999));
    assert_eq!(r["b"], json!("é\n\"q\""));
    let twenty: Vec<String> = (0..20).map(|i| format!("\"k{i}\":{i}")).collect();
    let (_, r) = run(&s, &format!("{{\"m\":{{{}}}}}", twenty.join(","))).unwrap();
    assert_eq!(r["m"]["k19"], json!(19));
}

#[test]
fn docker_json_file_lines_take_their_rfc3339_time() {
    let s = setup("@type json");
    let line =
        r#"{"log":"GET /healthz 200\n","stream":"stdout","time":"2019-05-29T16:58:49.123456789Z"}"#;
    let (t, r) = run(&s, line).unwrap();
    assert_eq!(t, Some(EventTime::new(1_559_149_129, 123_456_789)));
    assert_eq!(r, json!({"log":"GET /healthz 200\n","stream":"stdout"}));
    let kept = setup("@type json\nkeep_time_key true");
    let (_, r) = run(&kept, line).unwrap();
    assert_eq!(r["time"], json!("2019-05-29T16:58:49.123456789Z"));
}

#[test]
fn json_errors_are_per_line() {
    let s = setup("@type json");
    assert!(matches!(run(&s, "{\"a\":"), Err(ParseError::Json(_))));
    assert_eq!(run(&s, "[1,2]").unwrap_err(), ParseError::NotAnObject);
    assert_eq!(run(&s, "42").unwrap_err(), ParseError::NotAnObject);
    assert!(matches!(run(&s, "{} trailing"), Err(ParseError::Json(_))));
    assert!(matches!(
        run(&s, r#"{"time":"yesterday"}"#),
        Err(ParseError::Time(_))
    ));
    let deep = "[".repeat(10_000);
    assert!(run(&s, &format!("{{\"a\":{deep}")).is_err());
}

#[test]
fn regexp_uses_named_captures_time_format_and_types() {
    let s = setup(
        "@type regexp\nexpression /^(?<time>[^ ]+ [^ ]+) \\[(?<level>\\w+)\\] (?<msg>.*) took=(?<ms>\\d+)$/\ntime_format %Y-%m-%d %H:%M:%S.%N%z\ntypes ms:integer",
    );
    let (t, r) = run(
        &s,
        "2024-03-01 10:00:00.250+0100 [WARN] slow query took=1532",
    )
    .unwrap();
    assert_eq!(t, Some(EventTime::new(1_709_283_600, 250_000_000)));
    assert_eq!(r, json!({"level":"WARN","msg":"slow query","ms":1532}));
    assert_eq!(run(&s, "nope").unwrap_err(), ParseError::NoMatch);
    let keep = setup(
        "@type regexp\nexpression /^(?<time>\\d+) (?<m>.*)$/\ntime_type unixtime\nkeep_time_key true",
    );
    let (t, r) = run(&keep, "1700000000 hello").unwrap();
    assert_eq!(t.unwrap().sec, 1_700_000_000);
    assert_eq!(r, json!({"time":"1700000000","m":"hello"}));
}

#[test]
fn regexp_flags_and_bad_expressions() {
    let s = setup("@type regexp\nexpression /^(?<word>HELLO)$/i");
    assert_eq!(run(&s, "hello").unwrap().1, json!({"word":"hello"}));
    assert!(
        config_errors("@type regexp\nexpression /(?<a>[/").contains("invalid regular expression")
    );
    assert!(config_errors("@type regexp").contains("expression"));
    assert!(config_errors("@type regexp\nexpression /x/\ntime_format %Q").contains("%Q"));
    assert!(config_errors("@type jsn").contains("did you mean 'json'"));
}

#[test]
fn apache2_combined_log_lines() {
    let s = setup("@type apache2");
    let line = r#"192.168.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;
    let (t, r) = run(&s, line).unwrap();
    assert_eq!(t, Some(EventTime::new(971_211_336, 0)));
    assert_eq!(
        r,
        json!({"host":"192.168.0.1","user":"frank","method":"GET","path":"/apache_pb.gif?a=1","code":200,"size":2326,"referer":"http://www.example.com/start.html","agent":"Mozilla/4.08 [en] (Win98; I ;Nav)"})
    );
    let common = r#"::1 - - [10/Oct/2000:13:55:36 +0000] "POST /login HTTP/1.1" 304 -"#;
    let (_, r) = run(&s, common).unwrap();
    assert_eq!(
        r,
        json!({"host":"::1","user":null,"method":"POST","path":"/login","code":304,"size":null})
    );
}

#[test]
fn nginx_access_log_lines() {
    let s = setup("@type nginx");
    let line = r#"172.17.0.1 - - [21/Nov/2024:15:19:13 +0000] "GET /api/v1/items?page=2 HTTP/1.1" 404 153 "-" "curl/8.5.0" "10.0.0.7""#;
    let (t, r) = run(&s, line).unwrap();
    assert_eq!(t, Some(EventTime::new(1_732_202_353, 0)));
    assert_eq!(r["remote"], json!("172.17.0.1"));
    assert_eq!(r["code"], json!(404));
    assert_eq!(r["size"], json!(153));
    assert_eq!(r["agent"], json!("curl/8.5.0"));
    assert_eq!(r["path"], json!("/api/v1/items?page=2"));
    assert_eq!(r["referer"], json!("-"));
}

#[test]
fn syslog_rfc3164_with_and_without_priority() {
    let s = setup("@type syslog");
    let (t, r) = run(
        &s,
        "Nov 21 15:46:01 web01 CRON[12345]: (root) CMD (run-parts /etc/cron.hourly)",
    )
    .unwrap();
    assert!(t.is_some());
    assert_eq!(
        r,
        json!({"host":"web01","ident":"CRON","pid":"12345","message":"(root) CMD (run-parts /etc/cron.hourly)"})
    );
    let (_, r) = run(&s, "Feb  5 01:02:03 host kernel: [ 0.000] Linux version").unwrap();
    assert_eq!(r["ident"], json!("kernel"));
    assert_eq!(r["message"], json!("[ 0.000] Linux version"));
    let p = setup("@type syslog\nwith_priority true");
    let (_, r) = run(
        &p,
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    )
    .unwrap();
    assert_eq!(r["pri"], json!(34));
    assert_eq!(r["ident"], json!("su"));
}

#[test]
fn syslog_rfc5424_and_auto_detection() {
    let line = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event log entry"#;
    for body in [
        "@type syslog\nmessage_format rfc5424",
        "@type syslog\nmessage_format auto",
    ] {
        let s = setup(body);
        let (t, r) = run(&s, line).unwrap();
        assert_eq!(t, Some(EventTime::new(1_065_910_455, 3_000_000)));
        assert_eq!(
            r,
            json!({"pri":165,"host":"mymachine.example.com","ident":"evntslog","pid":"-","msgid":"ID47","extradata":"[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"]","message":"An application event log entry"})
        );
    }
    let auto = setup("@type syslog\nmessage_format auto");
    let (_, r) = run(&auto, "<13>Nov 21 15:46:01 host app[1]: legacy").unwrap();
    assert_eq!(r["message"], json!("legacy"));
    assert_eq!(r["pri"], json!(13));
}

#[test]
fn ltsv_lines() {
    let s =
        setup("@type ltsv\ntime_key time\ntime_format %d/%b/%Y:%H:%M:%S %z\ntypes status:integer");
    let (t, r) = run(
        &s,
        "time:10/Oct/2000:13:55:36 -0700\thost:127.0.0.1\treq:GET /a HTTP/1.1\tstatus:200\tua:x:y",
    )
    .unwrap();
    assert_eq!(t.unwrap().sec, 971_211_336);
    assert_eq!(
        r,
        json!({"host":"127.0.0.1","req":"GET /a HTTP/1.1","status":200,"ua":"x:y"})
    );
    assert_eq!(run(&s, "no label here").unwrap_err(), ParseError::NoMatch);
}

#[test]
fn csv_with_quotes_and_tsv() {
    let s = setup("@type csv\nkeys time,host,msg,n\ntime_key time\ntypes n:float");
    let (t, r) = run(
        &s,
        r#"2024-01-01T00:00:00Z,web01,"hello, ""world""",1.5,extra"#,
    )
    .unwrap();
    assert_eq!(t.unwrap().sec, 1_704_067_200);
    assert_eq!(r, json!({"host":"web01","msg":"hello, \"world\"","n":1.5}));
    assert_eq!(
        run(&s, r#"2024-01-01T00:00:00Z,"unclosed"#).unwrap_err(),
        ParseError::NoMatch
    );
    let short = run(&setup("@type csv\nkeys a,b,c"), "1,2").unwrap().1;
    assert_eq!(short, json!({"a":"1","b":"2"}));
    let t = setup("@type tsv\nkeys a,b");
    assert_eq!(
        run(&t, "x y\t\"z\"").unwrap().1,
        json!({"a":"x y","b":"\"z\""})
    );
    assert!(config_errors("@type csv").contains("keys"));
}

#[test]
fn cri_lines_from_containerd() {
    let s = setup("@type cri");
    let (t, r) = run(
        &s,
        "2016-10-06T00:17:09.669794202Z stdout F The content of the log entry 1",
    )
    .unwrap();
    assert_eq!(t, Some(EventTime::new(1_475_713_029, 669_794_202)));
    assert_eq!(
        r,
        json!({"stream":"stdout","logtag":"F","message":"The content of the log entry 1"})
    );
    let (_, r) = run(&s, "2016-10-06T00:17:09.669794202Z stderr P partial").unwrap();
    assert_eq!(r["logtag"], json!("P"));
    let (_, r) = run(&s, "2016-10-06T00:17:10.113242941Z stdout F ").unwrap();
    assert_eq!(r["message"], json!(""));
    assert_eq!(run(&s, "garbage").unwrap_err(), ParseError::NoMatch);
    assert!(matches!(
        run(&s, "notatime stdout F x"),
        Err(ParseError::Time(_))
    ));
}

#[test]
fn cri_message_key_and_merge_cri_fields() {
    let line = "2016-10-06T00:17:09.669794202Z stdout F entry";
    let s = setup("@type cri\nmessage_key log\nmerge_cri_fields false");
    assert_eq!(run(&s, line).unwrap().1, json!({"log": "entry"}));
    let s = setup("@type cri\nmerge_cri_fields true");
    assert_eq!(
        run(&s, line).unwrap().1,
        json!({"stream": "stdout", "logtag": "F", "message": "entry"})
    );
}

#[test]
fn ltsv_and_csv_delimiters_are_configurable() {
    let s = setup("@type ltsv\ndelimiter |\nlabel_delimiter =");
    assert_eq!(
        run(&s, "host=web01|code=200").unwrap().1,
        json!({"host": "web01", "code": "200"})
    );
    assert_eq!(
        run(&setup("@type ltsv"), "host=web01|code=200").unwrap_err(),
        ParseError::NoMatch,
        "the default delimiters are tab and colon"
    );
    let s = setup("@type csv\nkeys a,b\ndelimiter ;");
    assert_eq!(run(&s, "1,5;2").unwrap().1, json!({"a": "1,5", "b": "2"}));
}

#[test]
fn ignorecase_and_multiline_flags_apply_to_the_expression() {
    let plain = setup("@type regexp\nexpression /^(?<word>hello) (?<rest>.*)$/");
    assert_eq!(run(&plain, "HELLO x").unwrap_err(), ParseError::NoMatch);
    assert_eq!(run(&plain, "hello a\nb").unwrap_err(), ParseError::NoMatch);
    let s = setup("@type regexp\nexpression /^(?<word>hello) (?<rest>.*)$/\nignorecase true");
    assert_eq!(
        run(&s, "HELLO x").unwrap().1,
        json!({"word": "HELLO", "rest": "x"})
    );
    let s = setup("@type regexp\nexpression /^(?<word>hello) (?<rest>.*)$/\nmultiline true");
    assert_eq!(
        run(&s, "hello a\nb").unwrap().1,
        json!({"word": "hello", "rest": "a\nb"}),
        "with multiline, . matches a newline"
    );
}

#[test]
fn rfc5424_time_format_reads_the_rfc5424_timestamp() {
    let line = "<165>1 20031011T221415 host app - - - message";
    let s = setup("@type syslog\nmessage_format rfc5424\nrfc5424_time_format %Y%m%dT%H%M%S");
    let (t, r) = run(&s, line).unwrap();
    assert_eq!(t, Some(EventTime::new(1_065_910_455, 0)));
    assert_eq!(r["message"], json!("message"));
    let rfc3339 = setup("@type syslog\nmessage_format rfc5424");
    assert!(matches!(run(&rfc3339, line), Err(ParseError::Time(_))));
}

#[test]
fn timezone_reads_times_without_a_zone_in_that_zone() {
    let expr =
        "@type regexp\nexpression /^(?<time>[^ ]+ [^ ]+) (?<m>.*)$/\ntime_format %Y-%m-%d %H:%M:%S";
    let line = "2023-11-15 07:13:20 x";
    let utc = run(&setup(expr), line).unwrap().0.unwrap();
    assert_eq!(utc.sec, 1_700_032_400);
    let tokyo = run(&setup(&format!("{expr}\ntimezone +09:00")), line)
        .unwrap()
        .0
        .unwrap();
    assert_eq!(
        tokyo.sec, 1_700_000_000,
        "07:13:20 at +09:00 is 22:13:20 UTC"
    );
    let zoned = "2023-11-15 07:13:20+0000 x";
    let s = setup(
        "@type regexp\nexpression /^(?<time>[^ ]+ [^ ]+) (?<m>.*)$/\ntime_format %Y-%m-%d %H:%M:%S%z\ntimezone +09:00",
    );
    assert_eq!(
        run(&s, zoned).unwrap().0.unwrap().sec,
        1_700_032_400,
        "a time with its own zone keeps it"
    );
}

#[test]
fn multiline_joins_format_lines_into_one_expression() {
    let s = setup(
        "@type multiline\nformat_firstline /^\\d{4}-\\d{2}-\\d{2}/\nformat1 /^(?<time>\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}) (?<level>\\w+) /\nformat2 /(?<message>.*)/\ntime_format %Y-%m-%d %H:%M:%S",
    );
    let ml = s.multiline.as_ref().unwrap();
    assert!(ml.firstline.is_match(b"2024-01-01 00:00:00 ERROR boom"));
    assert!(!ml.firstline.is_match(b"  at Foo.bar(Foo.java:1)"));
    let (t, r) = run(
        &s,
        "2024-01-01 00:00:00 ERROR boom\n  at Foo.bar(Foo.java:1)\n  at Main.main",
    )
    .unwrap();
    assert_eq!(t.unwrap().sec, 1_704_067_200);
    assert_eq!(
        r,
        json!({"level":"ERROR","message":"boom\n  at Foo.bar(Foo.java:1)\n  at Main.main"})
    );
    assert!(config_errors("@type multiline\nformat1 /x/").contains("format_firstline"));
}

#[test]
fn every_parser_survives_arbitrary_bytes() {
    let bodies = [
        "@type none",
        "@type json",
        "@type apache2",
        "@type nginx",
        "@type syslog\nmessage_format auto",
        "@type ltsv",
        "@type csv\nkeys a,b",
        "@type tsv\nkeys a,b",
        "@type cri",
    ];
    let inputs: [&[u8]; 6] = [
        b"",
        b"\xff\xfe\x00{\"",
        b"<999999999999>1 x",
        b"\"\"\"",
        b"2016-10-06T00:17:09Z stdout",
        b"a:\tb\t:c",
    ];
    for body in bodies {
        let s = setup(body);
        for input in inputs {
            let mut rec = Record::new();
            let _ = s.parser.parse(input, &mut rec);
        }
    }
}

#[test]
fn an_unknown_time_format_directive_is_a_configuration_error_naming_it() {
    assert!(config_errors("@type regexp\nexpression /(?<time>.*)/\ntime_format %Q").contains("%Q"));
}

#[test]
fn the_built_in_parse_sections_of_the_inputs_read() {
    // The syslog input's default and kafka_group's `format ltsv`: neither falls back to none.
    assert!(matches!(
        ParseSetup::built_in("@type ltsv").parser,
        Parser::Ltsv(_)
    ));
    let syslog = ParseSetup::built_in("@type syslog\nwith_priority true");
    assert!(syslog.parser.has_capture("pri"), "{:?}", syslog.parser);
    assert!(matches!(
        ParseSetup::built_in("@type no_such_parser").parser,
        Parser::None { .. }
    ));
}
