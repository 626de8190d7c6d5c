use super::*;
use crate::parse::Record;
use ferry_proto::time::EventTime;
use std::sync::Arc;
use std::time::Duration;

fn rule(params: &str) -> Result<ConcatRule, String> {
    let text = format!("<filter **>\n@type concat\n{params}\n</filter>\n");
    let root = ferry_config::parse_str(&text, "t.conf").unwrap();
    let errors = ferry_config::Errors::new();
    let r = ConcatRule::from_section(&Section::new(&root.children[0], &errors));
    if errors.is_empty() {
        Ok(r.expect("a rule when there is no error"))
    } else {
        Err(format!("{errors:?}"))
    }
}

fn rec(key: &str, text: &str, stream: &str) -> Record {
    let mut r = Record::new();
    r.str(key, text.as_bytes());
    if !stream.is_empty() {
        r.str("stream", stream.as_bytes());
    }
    r
}

/// Feeds `(stream, text)` lines under key `message`; returns the events given out, as
/// `stream|text`, with the lines that went on alone in their place.
fn run(params: &str, lines: &[(&str, &str)]) -> (Vec<String>, Concat) {
    let mut c = Concat::new(Arc::new(rule(params).unwrap()), 1 << 20);
    let mut events = Vec::new();
    for (i, (stream, text)) in lines.iter().enumerate() {
        let r = rec("message", text, stream);
        let mut out = Vec::new();
        let fed = c.feed(&r, None, i as u64 * 100, &mut out);
        for j in out {
            events.push(show(&j.rec));
        }
        if fed == Fed::Alone {
            events.push(show(&r));
        }
    }
    (events, c)
}

fn show(r: &Record) -> String {
    format!(
        "{}|{}",
        String::from_utf8_lossy(r.get_str(b"stream").unwrap_or_default()),
        String::from_utf8_lossy(r.get_str(b"message").unwrap_or_default())
    )
}

#[test]
fn start_regexp_joins_until_the_next_start_per_stream() {
    let (events, c) = run(
        "key message\nmultiline_start_regexp /^\\d{4}-/",
        &[
            ("stdout", "orphan"),
            ("stdout", "2026-12-07 boom"),
            ("stderr", "2026-12-07 other"),
            ("stdout", "  at a"),
            ("stderr", "  err line"),
            ("stdout", "  at b"),
            ("stdout", "2026-12-07 next"),
        ],
    );
    assert_eq!(
        events,
        vec!["stdout|orphan", "stdout|2026-12-07 boom\n  at a\n  at b",]
    );
    assert_eq!(c.start(), Some(200), "stderr's message from line 2 is held");
}

#[test]
fn end_regexp_and_continuous_line_regexp() {
    let (events, _) = run(
        "key message\nmultiline_start_regexp /^START/\ncontinuous_line_regexp /^\\s/\nmultiline_end_regexp /END$/",
        &[
            ("", "START a"),
            ("", " b"),
            ("", "not continuous"),
            ("", "START c"),
            ("", " d END"),
        ],
    );
    assert_eq!(
        events,
        vec!["|START a\n b", "|not continuous", "|START c\n d END"]
    );
}

#[test]
fn n_lines_and_separator() {
    let (events, c) = run(
        "key message\nn_lines 2\nseparator \"\"",
        &[("", "a"), ("", "b"), ("", "c")],
    );
    assert_eq!(events, vec!["|ab"]);
    assert!(!c.is_empty());
}

#[test]
fn partial_key_joins_until_a_line_without_the_partial_value() {
    let mut c = Concat::new(
        Arc::new(rule("key message\npartial_key logtag\npartial_value P\nseparator \"\"").unwrap()),
        1 << 20,
    );
    let mut out = Vec::new();
    for (tag, text) in [("P", "ab"), ("P", "cd"), ("F", "ef"), ("F", "whole")] {
        let mut r = rec("message", text, "stdout");
        r.str("logtag", tag.as_bytes());
        if c.feed(&r, None, 0, &mut out) == Fed::Alone {
            assert_eq!(text, "whole");
        }
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rec.get_str(b"message"), Some(&b"abcdef"[..]));
    assert_eq!(
        out[0].rec.get_str(b"logtag"),
        None,
        "keep_partial_key false"
    );
}

#[test]
fn built_in_rules_join_java_python_and_go_traces_and_pass_other_lines_at_once() {
    let lines = [
        "plain line",
        "Exception in thread \"main\" java.lang.IllegalStateException: boom",
        "\tat com.example.App.run(App.java:10)",
        "\tat com.example.App.main(App.java:5)",
        "Caused by: java.io.IOException: disk",
        "\t... 2 more",
        "Traceback (most recent call last):",
        "  File \"app.py\", line 3, in <module>",
        "    main()",
        "ValueError: bad value",
        "after python",
        "panic: runtime error: index out of range [3] with length 2",
        "",
        "goroutine 1 [running]:",
        "main.main()",
        "\t/app/main.go:8 +0x1d",
        "exit status 2",
        "last plain line",
    ];
    let input: Vec<(&str, &str)> = lines.iter().map(|l| ("stderr", *l)).collect();
    let (events, c) = run("key message\nmultiline_rules java, python, go", &input);
    assert_eq!(
        events,
        vec![
            "stderr|plain line".to_string(),
            format!("stderr|{}", lines[1..6].join("\n")),
            format!("stderr|{}", lines[6..10].join("\n")),
            "stderr|after python".to_string(),
            format!("stderr|{}", lines[11..17].join("\n")),
            "stderr|last plain line".to_string(),
        ]
    );
    assert!(c.is_empty());
}

#[test]
fn a_message_over_the_bound_is_cut_and_one_whose_end_never_comes_is_given_out_on_time() {
    let mut c = Concat::new(
        Arc::new(rule("key message\nmultiline_start_regexp /^S/\nflush_interval 1").unwrap()),
        11,
    );
    let mut out = Vec::new();
    for text in ["S1234", "56789", "abc"] {
        c.feed(&rec("message", text, ""), None, 0, &mut out);
    }
    assert_eq!(out.len(), 1);
    assert!(out[0].cut);
    assert_eq!(out[0].rec.get_str(b"message"), Some(&b"S1234\n56789"[..]));
    out.clear();
    c.expire(false, &mut out);
    assert!(out.is_empty(), "not yet");
    std::thread::sleep(Duration::from_millis(1100));
    c.expire(false, &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].timed_out);
    assert_eq!(out[0].rec.get_str(b"message"), Some(&b"abc"[..]));
}

#[test]
fn parameters_are_checked() {
    assert!(
        rule("multiline_start_regexp /x/").is_err(),
        "key is required"
    );
    assert!(rule("key m").unwrap_err().contains("give one of"));
    let e = rule("key m\nn_lines 2\nmultiline_start_regexp /x/").unwrap_err();
    assert!(e.contains("exclusive"), "{e}");
    let e = rule("key m\nmultiline_rules java, cobol").unwrap_err();
    assert!(e.contains("cobol"), "{e}");
    for key in [
        "use_partial_metadata",
        "keep_partial_metadata",
        "partial_metadata_format",
    ] {
        let e = rule(&format!("key m\nn_lines 2\n{key} true")).unwrap_err();
        assert!(e.contains(key) && e.contains("not supported"), "{e}");
    }
    let r = rule("key m\nn_lines 2\nflush_interval 0\ntimeout_label @T").unwrap();
    assert_eq!(r.flush_interval, None);
    assert_eq!(r.timeout_label.as_deref(), Some("@T"));
    assert_eq!(r.location, "t.conf:1");
}

#[test]
fn stream_identity_key_keeps_the_streams_apart() {
    let lines = [
        ("a", "S1"),
        ("b", "S2"),
        ("a", " x"),
        ("b", " y"),
        ("a", "S3"),
    ];
    let feed = |params: &str| -> Vec<String> {
        let mut c = Concat::new(Arc::new(rule(params).unwrap()), 1 << 20);
        let mut out = Vec::new();
        for (who, text) in lines {
            let mut r = Record::new();
            r.str("message", text.as_bytes());
            r.str("who", who.as_bytes());
            c.feed(&r, None, 0, &mut out);
        }
        c.expire(true, &mut out);
        out.iter()
            .map(|j| String::from_utf8_lossy(j.rec.get_str(b"message").unwrap()).into_owned())
            .collect()
    };
    assert_eq!(
        feed("key message\nmultiline_start_regexp /^S/\nstream_identity_key who"),
        vec!["S1\n x", "S2\n y", "S3"]
    );
    // Without it (and without a `stream` field) the lines are one stream.
    assert_eq!(
        feed("key message\nmultiline_start_regexp /^S/"),
        vec!["S1", "S2\n x\n y", "S3"]
    );
}

#[test]
fn cri_logtags_join_per_cri_stream_and_keep_partial_key_keeps_the_tag() {
    let lines = [
        ("P", "out", "a"),
        ("P", "err", "1"),
        ("F", "out", "b"),
        ("F", "err", "2"),
    ];
    let feed = |params: &str| -> Vec<String> {
        let mut c = Concat::new(Arc::new(rule(params).unwrap()), 1 << 20);
        let mut out = Vec::new();
        for (tag, stream, text) in lines {
            let mut r = Record::new();
            r.str("msg", text.as_bytes());
            r.str("tag_field", tag.as_bytes());
            r.str("src", stream.as_bytes());
            c.feed(&r, None, 0, &mut out);
        }
        out.iter()
            .map(|j| {
                format!(
                    "{}:{}",
                    String::from_utf8_lossy(j.rec.get_str(b"msg").unwrap()),
                    String::from_utf8_lossy(j.rec.get_str(b"tag_field").unwrap_or(b"-"))
                )
            })
            .collect()
    };
    assert_eq!(
        feed(
            "key msg\nuse_partial_cri_logtag true\npartial_cri_logtag_key tag_field\npartial_cri_stream_key src\nseparator \"\""
        ),
        vec!["ab:-", "12:-"],
        "the logtag is removed"
    );
    assert_eq!(
        feed(
            "key msg\npartial_key tag_field\npartial_value P\nkeep_partial_key true\nstream_identity_key src\nseparator \"\""
        ),
        vec!["ab:P", "12:P"],
        "kept, as the first part had it"
    );
}

#[test]
fn use_first_timestamp_takes_the_first_lines_time() {
    for (params, want) in [("", 3), ("\nuse_first_timestamp true", 1)] {
        let mut c = Concat::new(
            Arc::new(rule(&format!("key message\nmultiline_start_regexp /^S/{params}")).unwrap()),
            1 << 20,
        );
        let mut out = Vec::new();
        for (sec, text) in [(1, "S1"), (2, " x"), (3, "S2")] {
            c.feed(
                &rec("message", text, ""),
                Some(EventTime::new(sec, 0)),
                0,
                &mut out,
            );
        }
        assert_eq!(out[0].time, Some(EventTime::new(want, 0)), "{params}");
    }
}

#[test]
fn in_a_filter_chain_events_pass_unchanged_and_are_counted_unless_the_input_joined_them() {
    use crate::filter::{Filter, chain};
    use ferry_proto::msgpack::Value;
    let filter = Arc::new(Filter::Concat(Arc::new(
        rule("key message\nmultiline_start_regexp /^S/").unwrap(),
    )));
    let record = Value::Map(vec![(
        Value::Str("message".into()),
        Value::Str(" x".into()),
    )]);
    let mut batch = chain::batch_of("k8s", &[(1, record.clone()), (2, record)]);
    let host: Arc<str> = Arc::from("h");
    let out = chain::run(std::slice::from_ref(&filter), &batch, &host);
    assert_eq!(out.concat_not_applied, 2, "from another input: counted");
    assert_eq!(
        out.kept.unwrap().entries,
        batch.entries,
        "and passed on unchanged"
    );
    batch.joined_by_input = true;
    let out = chain::run(std::slice::from_ref(&filter), &batch, &host);
    assert_eq!(out.concat_not_applied, 0, "the tail ran it");
    assert_eq!(out.kept.unwrap().entries, batch.entries);
}
