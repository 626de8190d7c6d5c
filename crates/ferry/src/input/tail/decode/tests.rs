use super::parts::KEEP_CAPACITY;
use super::*;
use crate::parse::{MultilineSetup, Parser};
use ferry_proto::entries;
use ferry_proto::msgpack::Value;

fn records(built: &Built) -> Vec<(EventTime, String)> {
    entries::iter(&built.entries)
        .map(|e| {
            let e = e.unwrap();
            (e.time, Value::decode(e.record).unwrap().0.to_json_string())
        })
        .collect()
}

fn multiline() -> Option<MultilineSetup> {
    Some(MultilineSetup {
        firstline: regex::bytes::Regex::new(r"^\d").unwrap(),
    })
}

fn setup(parser: Parser, multiline: Option<MultilineSetup>) -> ParseSetup {
    let mut s = ParseSetup::plain(parser);
    s.multiline = multiline;
    s
}

fn regex_parser() -> Parser {
    let text = "<parse>\n@type regexp\nexpression /^(?<n>\\d+) (?<m>.*)$/m\n</parse>\n";
    let root = ferry_config::parse_str(text, "t").unwrap();
    let errors = ferry_config::Errors::new();
    crate::parse::ParseSetup::from_section(&ferry_config::Section::new(&root.children[0], &errors))
        .parser
}

#[test]
fn the_fast_path_writes_message_entries_stamped_with_the_batch_time() {
    let mut d = LineDecoder::new(
        ParseSetup::plain(Parser::None {
            key: "message".into(),
        }),
        None,
        false,
        100,
        Duration::from_secs(5),
    );
    let now = EventTime::new(7, 8);
    d.begin(now);
    let mut out = Built::default();
    d.line(b"hello", 0, now, &mut out);
    d.line(b"", 6, now, &mut out);
    assert_eq!(out.records, 2);
    assert_eq!(
        records(&out),
        vec![
            (now, r#"{"message":"hello"}"#.to_string()),
            (now, r#"{"message":""}"#.to_string())
        ]
    );
}

#[test]
fn path_key_is_added_to_every_record() {
    let mut d = LineDecoder::new(
        ParseSetup::plain(Parser::None {
            key: "message".into(),
        }),
        Some(("path".into(), b"/var/log/a.log".to_vec())),
        false,
        100,
        Duration::from_secs(5),
    );
    let now = EventTime::new(1, 0);
    d.begin(now);
    let mut out = Built::default();
    d.line(b"x", 0, now, &mut out);
    assert_eq!(
        records(&out)[0].1,
        r#"{"message":"x","path":"/var/log/a.log"}"#
    );
}

#[test]
fn multiline_holds_lines_until_the_next_first_line_and_reports_where_they_start() {
    let mut d = LineDecoder::new(
        setup(regex_parser(), multiline()),
        None,
        false,
        1000,
        Duration::from_secs(5),
    );
    let now = EventTime::new(1, 0);
    d.begin(now);
    let mut out = Built::default();
    d.line(b"orphan before any first line", 0, now, &mut out);
    d.line(b"1 boom", 29, now, &mut out);
    d.line(b"  at a", 36, now, &mut out);
    assert_eq!(out.records, 0);
    assert_eq!(d.pending_start(), Some(29));
    d.line(b"2 next", 43, now, &mut out);
    assert_eq!(
        records(&out),
        vec![(now, r#"{"n":"1","m":"boom\n  at a"}"#.to_string())]
    );
    assert_eq!(d.pending_start(), Some(43));
    assert_eq!(out.unmatched, 1, "the orphan line is counted");
    d.flush(now, &mut out);
    assert_eq!(out.records, 2);
    assert_eq!(d.pending_start(), None);
}

#[test]
fn a_multiline_event_is_capped_at_the_event_limit() {
    let mut d = LineDecoder::new(
        setup(regex_parser(), multiline()),
        None,
        true,
        12,
        Duration::from_secs(5),
    );
    let now = EventTime::new(1, 0);
    d.begin(now);
    let mut out = Built::default();
    d.line(b"1 abc", 0, now, &mut out);
    d.line(b"continued", 6, now, &mut out);
    assert_eq!(out.records, 2, "the held event and the overflowing line");
    assert_eq!(
        records(&out)[1].1,
        r#"{"unmatched_line":"continued"}"#.to_string()
    );
}

#[test]
fn unmatched_lines_are_dropped_or_emitted() {
    let now = EventTime::new(1, 0);
    for emit in [false, true] {
        let mut d = LineDecoder::new(
            setup(regex_parser(), None),
            None,
            emit,
            100,
            Duration::from_secs(5),
        );
        d.begin(now);
        let mut out = Built::default();
        d.line(b"no number here", 0, now, &mut out);
        d.line(b"5 ok", 15, now, &mut out);
        assert_eq!(out.unmatched, 1);
        assert_eq!(out.first_error.as_ref().unwrap().1, "no number here");
        let got = records(&out);
        if emit {
            assert_eq!(got[0].1, r#"{"unmatched_line":"no number here"}"#);
            assert_eq!(got.len(), 2);
        } else {
            assert_eq!(got, vec![(now, r#"{"n":"5","m":"ok"}"#.to_string())]);
        }
    }
}

#[test]
fn without_estimate_current_event_a_line_without_a_time_is_unmatched() {
    let mut s = setup(regex_parser(), None);
    s.estimate_current_event = false;
    let mut d = LineDecoder::new(s, None, true, 100, Duration::from_secs(5));
    let now = EventTime::new(1, 0);
    d.begin(now);
    let mut out = Built::default();
    d.line(b"7 no time here", 0, now, &mut out);
    assert_eq!(out.unmatched, 1);
    assert_eq!(out.first_error.as_ref().unwrap().0, ParseError::NoTime);
    assert_eq!(
        records(&out),
        vec![(now, r#"{"unmatched_line":"7 no time here"}"#.to_string())]
    );
    // The none parser never has a time: without estimating, every line is unmatched
    // (the fast path, which stamps lines with the batch time, is off).
    let mut s = ParseSetup::plain(Parser::None {
        key: "message".into(),
    });
    s.estimate_current_event = false;
    let mut d = LineDecoder::new(s, None, false, 100, Duration::from_secs(5));
    d.begin(now);
    let mut out = Built::default();
    d.line(b"x", 0, now, &mut out);
    assert_eq!((out.records, out.unmatched), (0, 1));
}

fn container_decoder(parse: &str, max: usize) -> LineDecoder {
    let text = format!("<parse>\n{parse}\n</parse>\n");
    let root = ferry_config::parse_str(&text, "t").unwrap();
    let errors = ferry_config::Errors::new();
    let defaults = crate::parse::ParseDefaults {
        joins_partials: true,
        ..Default::default()
    };
    let setup = crate::parse::ParseSetup::from_section_with(
        &ferry_config::Section::new(&root.children[0], &errors),
        &defaults,
    );
    assert!(errors.is_empty(), "{errors:?}");
    LineDecoder::new(setup, None, false, max, Duration::from_secs(5))
}

#[test]
fn cri_parts_join_per_stream_and_the_position_stays_at_the_first_part() {
    let mut d = container_decoder("@type cri", 1000);
    let now = EventTime::new(1, 0);
    d.begin(now);
    let mut out = Built::default();
    d.line(b"2026-12-07T10:00:00.5Z stdout P out-a ", 0, now, &mut out);
    d.line(b"2026-12-07T10:00:01Z stderr P err-a ", 40, now, &mut out);
    d.line(b"2026-12-07T10:00:02Z stderr F err-b", 80, now, &mut out);
    assert_eq!(out.records, 1, "stderr is whole, stdout is not");
    assert_eq!(d.pending_start(), Some(0));
    d.line(b"2026-12-07T10:00:03Z stdout F out-b", 120, now, &mut out);
    d.line(b"2026-12-07T10:00:04Z stdout F whole", 160, now, &mut out);
    assert_eq!(d.pending_start(), None);
    assert_eq!(out.partials_joined, 2);
    let got = records(&out);
    assert_eq!(
        got.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        vec![
            r#"{"stream":"stderr","logtag":"F","message":"err-a err-b"}"#,
            r#"{"stream":"stdout","logtag":"F","message":"out-a out-b"}"#,
            r#"{"stream":"stdout","logtag":"F","message":"whole"}"#,
        ]
    );
    assert_eq!(got[1].0.sec, 1_796_637_600, "the first part's time");
    assert_eq!(got[1].0.nsec, 500_000_000);
}

#[test]
fn a_long_joined_line_leaves_no_large_storage_in_the_decoder() {
    let mut d = container_decoder("@type cri", 1024 * 1024);
    let now = EventTime::new(1, 0);
    d.begin(now);
    let mut out = Built::default();
    let part = "x".repeat(16 * 1024);
    for i in 0..12 {
        let tag = if i == 11 { "F" } else { "P" };
        let line = format!("2026-12-07T10:00:00Z stdout {tag} {part}");
        d.line(line.as_bytes(), i * 20_000, now, &mut out);
    }
    d.line(
        b"2026-12-07T10:00:01Z stdout F short",
        240_000,
        now,
        &mut out,
    );
    assert_eq!((out.records, out.partials_joined), (2, 1));
    let got = records(&out);
    assert!(got[0].1.len() > 12 * 16 * 1024, "the long line is whole");
    assert!(got[1].1.contains(r#""message":"short""#));
    assert!(d.scratch.capacity() <= KEEP_CAPACITY);
    assert!(d.rec.capacity() <= KEEP_CAPACITY);
}

#[test]
fn cri_joining_can_be_turned_off() {
    let mut d = container_decoder("@type cri\njoin_partial_lines false", 1000);
    let now = EventTime::new(1, 0);
    d.begin(now);
    let mut out = Built::default();
    d.line(b"2026-12-07T10:00:00Z stdout P a", 0, now, &mut out);
    d.line(b"2026-12-07T10:00:00Z stdout F b", 40, now, &mut out);
    assert_eq!(out.records, 2);
    assert_eq!(d.pending_start(), None);
}

#[test]
fn a_joined_line_over_the_bound_is_cut_and_counted() {
    let mut d = container_decoder("@type cri", 8);
    let now = EventTime::new(1, 0);
    d.begin(now);
    let mut out = Built::default();
    for (i, part) in ["P 12345", "P 6789", "P abcd", "F ef"].iter().enumerate() {
        let line = format!("2026-12-07T10:00:00Z stdout {part}");
        d.line(line.as_bytes(), i as u64 * 40, now, &mut out);
    }
    let got: Vec<String> = records(&out).into_iter().map(|r| r.1).collect();
    assert_eq!(
        got,
        vec![
            r#"{"stream":"stdout","logtag":"F","message":"12345"}"#,
            r#"{"stream":"stdout","logtag":"F","message":"6789abcd"}"#,
            r#"{"stream":"stdout","logtag":"F","message":"ef"}"#,
        ]
    );
    assert_eq!(out.partials_cut, 2);
}

#[test]
fn parts_whose_end_never_comes_are_emitted_after_the_timeout_or_at_the_end() {
    let mut d = container_decoder("@type docker", 1000);
    let now = EventTime::new(1, 0);
    d.begin(now);
    let mut out = Built::default();
    d.line(
        br#"{"log":"no end","stream":"stdout","time":"2026-12-07T10:00:00Z"}"#,
        0,
        now,
        &mut out,
    );
    d.expire(Some(Duration::from_secs(60)), now, &mut out);
    assert_eq!(out.records, 0);
    d.expire(Some(Duration::ZERO), now, &mut out);
    assert_eq!((out.records, out.partials_unfinished), (1, 1));
    d.line(
        br#"{"log":"again","stream":"stderr","time":"2026-12-07T10:00:00Z"}"#,
        70,
        now,
        &mut out,
    );
    d.flush(now, &mut out);
    assert_eq!((out.records, out.partials_unfinished), (2, 2));
    assert_eq!(d.pending_start(), None);
}

#[test]
fn docker_json_file_parts_join_on_the_log_key_per_stream() {
    let mut d = container_decoder("@type docker", 1000);
    let now = EventTime::new(1, 0);
    d.begin(now);
    let mut out = Built::default();
    let lines: [&[u8]; 5] = [
        br#"{"log":"a-1 ","stream":"stdout","time":"2026-12-07T10:00:00.25Z"}"#,
        br#"{"log":"e-1\n","stream":"stderr","time":"2026-12-07T10:00:01Z"}"#,
        br#"{"log":"a-2 ","stream":"stdout","time":"2026-12-07T10:00:02Z"}"#,
        br#"{"log":"a-3\n","stream":"stdout","time":"2026-12-07T10:00:03Z"}"#,
        br#"{"log":"b\n","stream":"stdout","time":"2026-12-07T10:00:04Z"}"#,
    ];
    for (i, l) in lines.iter().enumerate() {
        d.line(l, i as u64 * 100, now, &mut out);
        if i == 2 {
            assert_eq!(d.pending_start(), Some(0));
        }
    }
    let got = records(&out);
    assert_eq!(
        got.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        vec![
            r#"{"log":"e-1\n","stream":"stderr"}"#,
            r#"{"log":"a-1 a-2 a-3\n","stream":"stdout"}"#,
            r#"{"log":"b\n","stream":"stdout"}"#,
        ]
    );
    assert_eq!(got[1].0, EventTime::new(1_796_637_600, 250_000_000));
    assert_eq!(out.partials_joined, 1);
}

#[test]
fn plain_json_joins_only_when_asked() {
    for (parse, records_then) in [
        ("@type json", 1),
        ("@type json\njoin_partial_lines true", 0),
    ] {
        let mut d = container_decoder(parse, 1000);
        let now = EventTime::new(1, 0);
        d.begin(now);
        let mut out = Built::default();
        d.line(br#"{"log":"part","stream":"stdout"}"#, 0, now, &mut out);
        assert_eq!(out.records, records_then, "{parse}");
    }
}
