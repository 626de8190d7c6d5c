//! Typed reading: `Section` accessors, unknown keys with suggestions, `directives`, and error
//! collection across a whole configuration.

use std::fs;
use std::time::Duration;

use ferry_config::{ByteSize, ConfigErrors, Errors, Section, directives, parse_file, parse_str};

fn messages(result: Result<(), ConfigErrors>) -> Vec<String> {
    match result {
        Ok(()) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// Reads a forward source and a forward match the way a plugin would.
fn read_pipeline(root: &ferry_config::Element, errors: &Errors) {
    let d = directives(root, errors);
    for s in d.sources {
        let _ = s.plugin_type();
        let _ = s.u64_or("port", 24224);
        let _ = s.str_or("bind", "0.0.0.0");
        s.finish();
    }
    for m in d.matches {
        let _ = m.plugin_type();
        if let Some(b) = m.child("buffer") {
            let _ = b.plugin_type();
            let _ = b.duration_or("flush_interval", Duration::from_secs(60));
            let _ = b.size_or("chunk_limit_size", ByteSize::mib(8));
            b.finish();
        }
        for s in m.children("server") {
            let _ = s.required_str("host");
            let _ = s.u64_or("port", 24224);
            s.finish();
        }
        m.finish();
    }
}

#[test]
fn three_mistakes_give_exactly_three_errors_with_lines_and_suggestions() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ferry.conf");
    let text = "\
<souce>
  @type forward
</souce>
<source>
  @type forward
  prot 24224
</source>
<match app.**>
  @type forward
  <buffer>
    flush_interval abc
  </buffer>
  <server>
    host 10.0.0.1
  </server>
</match>
";
    fs::write(&path, text).unwrap();
    let root = parse_file(&path).unwrap();
    let errors = Errors::new();
    read_pipeline(&root, &errors);
    let msgs = messages(errors.into_result(()));
    let p = path.display();
    assert_eq!(
        msgs,
        [
            format!("{p}:1: unknown directive <souce>; did you mean 'source'?"),
            format!("{p}:6: unknown parameter 'prot' in <source>; did you mean 'port'?"),
            format!(
                "{p}:11: invalid value for 'flush_interval' in <buffer>: 'abc' is not a duration \
                 (expected seconds or a number with ms, s, m, h or d, e.g. 60s)"
            ),
        ]
    );
}

#[test]
fn reader_errors_are_reported_in_file_order_whatever_the_reading_order() {
    let root = parse_str(
        "<match a>\n  @type x\n  z_bad 1\n  <buffer>\n    flush_interval nope\n  </buffer>\n  a_bad 2\n</match>\n",
        "t.conf",
    )
    .unwrap();
    let errors = Errors::new();
    let m = Section::new(&root.children[0], &errors);
    let _ = m.plugin_type();
    let b = m.child("buffer").unwrap();
    let _ = b.opt_duration("flush_interval");
    b.finish();
    m.finish();
    let lines: Vec<u32> = errors
        .into_result(())
        .unwrap_err()
        .iter()
        .map(|e| e.span.as_ref().unwrap().line)
        .collect();
    assert_eq!(lines, [3, 5, 7]);
}

fn section_errors(text: &str, read: impl FnOnce(&Section<'_>)) -> Vec<String> {
    let root = parse_str(text, "t.conf").expect("test text parses");
    let errors = Errors::new();
    let s = Section::new(&root.children[0], &errors);
    read(&s);
    s.finish();
    messages(errors.into_result(()))
}

#[test]
fn typed_accessors_read_values_and_fall_back_to_defaults() {
    let text = "<match a.**>\n  @type forward\n  @id out\n  @label @L\n  @log_level warn\n  \
                flag\n  no_flag no\n  count 12\n  delta -3\n  ratio 0.8\n  size 8m\n  wait 1.5\n  \
                timeout 72h\n  mode drop_oldest_chunk\n  users [\"a\", \"b\"]\n  list a, b\n  \
                headers {\"k\": \"v\"}\n  pairs k1:v1,k2:v2\n  name x\n</match>\n";
    let errs = section_errors(text, |s| {
        assert_eq!(s.name(), "match");
        assert_eq!(s.arg(), "a.**");
        assert_eq!(s.span().line, 1);
        assert_eq!(s.plugin_type(), Some("forward"));
        assert_eq!(s.id(), Some("out"));
        assert_eq!(s.label(), Some("@L"));
        assert_eq!(s.log_level(), Some("warn"));
        assert!(s.bool_or("flag", false));
        assert!(!s.bool_or("no_flag", true));
        assert!(s.bool_or("absent_flag", true));
        assert_eq!(s.u64_or("count", 0), 12);
        assert_eq!(s.opt_u64("absent"), None);
        assert_eq!(s.i64_or("delta", 0), -3);
        assert_eq!(s.f64_or("ratio", 0.0), 0.8);
        assert_eq!(s.opt_f64("absent"), None);
        assert_eq!(s.size_or("size", ByteSize(0)), ByteSize::mib(8));
        assert_eq!(s.opt_size("absent"), None);
        assert_eq!(
            s.duration_or("wait", Duration::ZERO),
            Duration::from_millis(1500)
        );
        assert_eq!(
            s.opt_duration("timeout"),
            Some(Duration::from_secs(72 * 3600))
        );
        let modes = ["block", "drop_oldest_chunk", "throw_exception"];
        assert_eq!(s.enum_or("mode", &modes, "block"), "drop_oldest_chunk");
        assert_eq!(s.enum_or("absent_mode", &modes, "block"), "block");
        assert_eq!(
            s.array("users"),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            s.array("list"),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            s.hash("headers"),
            Some(vec![("k".to_string(), "v".to_string())])
        );
        assert_eq!(s.hash("pairs").map(|h| h.len()), Some(2));
        assert_eq!(s.str("name"), Some("x".to_string()));
        assert_eq!(s.str_or("absent", "d"), "d");
        assert_eq!(s.param_span("count").line, 8);
        assert_eq!(s.param_span("absent").line, 1);
    });
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn bad_values_are_reported_at_their_line_and_defaults_are_used() {
    let text = "<buffer>\n  a maybe\n  b -1\n  c x\n  d nan\n  e 1.5m\n  f soon\n  g drop_oldest\n  \
                h \"[1,\"\n  i novalue\n</buffer>\n";
    let errs = section_errors(text, |s| {
        assert!(s.bool_or("a", true));
        assert_eq!(s.u64_or("b", 7), 7);
        assert_eq!(s.i64_or("c", 7), 7);
        assert_eq!(s.f64_or("d", 1.0), 1.0);
        assert_eq!(s.size_or("e", ByteSize(1)), ByteSize(1));
        assert_eq!(s.duration_or("f", Duration::ZERO), Duration::ZERO);
        let actions = ["block", "drop_oldest_chunk", "throw_exception"];
        assert_eq!(s.enum_or("g", &actions, "block"), "block");
        assert_eq!(s.array("h"), None);
        assert_eq!(s.hash("i"), None);
    });
    assert_eq!(errs.len(), 9, "{errs:?}");
    for (i, e) in errs.iter().enumerate() {
        assert!(
            e.starts_with(&format!("t.conf:{}: invalid value for", i + 2)),
            "{e}"
        );
    }
    assert!(errs[6].ends_with(
        "'drop_oldest' is not one of block, drop_oldest_chunk, throw_exception; did you mean 'drop_oldest_chunk'?"
    ));
}

#[test]
fn missing_required_parameter_is_reported_at_the_section() {
    let errs = section_errors("\n<server>\n  port 1\n</server>\n", |s| {
        assert_eq!(s.required_str("host"), None);
        let _ = s.u64_or("port", 0);
    });
    assert_eq!(
        errs,
        ["t.conf:2: missing required parameter 'host' in <server>"]
    );
}

#[test]
fn unknown_params_and_sections_are_reported_with_suggestions() {
    let text = "<match a>\n  @type forward\n  hearbeat_interval 1\n  totally_unrelated 1\n  \
                <bufer>\n  </bufer>\n  <serer>\n  </serer>\n</match>\n";
    let errs = section_errors(text, |s| {
        let _ = s.plugin_type();
        let _ = s.opt_duration("heartbeat_interval");
        let _ = s.child("buffer");
        let _ = s.children("server");
    });
    assert_eq!(
        errs,
        [
            "t.conf:3: unknown parameter 'hearbeat_interval' in <match>; did you mean 'heartbeat_interval'?",
            "t.conf:4: unknown parameter 'totally_unrelated' in <match>",
            "t.conf:5: unknown section <bufer> in <match>; did you mean 'buffer'?",
            "t.conf:7: unknown section <serer> in <match>; did you mean 'server'?",
        ]
    );
}

#[test]
fn old_type_alias_is_accepted() {
    let errs = section_errors("<source>\n  type forward\n</source>\n", |s| {
        assert_eq!(s.plugin_type(), Some("forward"));
    });
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn free_form_sections_accept_every_key() {
    let errs = section_errors(
        "<record>\n  host ${hostname}\n  tag ${tag}\n</record>\n",
        |s| {
            let keys: Vec<&str> = s.params().map(|p| p.key.as_str()).collect();
            assert_eq!(keys, ["host", "tag"]);
        },
    );
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn duplicate_keys_and_single_sections_are_reported() {
    let text = "<match a>\n  port 1\n  port 2\n  <buffer>\n  </buffer>\n  <buffer>\n  </buffer>\n</match>\n";
    let errs = section_errors(text, |s| {
        assert_eq!(s.u64_or("port", 0), 2);
        let _ = s.child("buffer");
        let _ = s.child("buffer");
    });
    assert_eq!(
        errs,
        [
            "t.conf:3: parameter 'port' is written twice in <match> (first at t.conf:2)",
            "t.conf:6: only one <buffer> section is allowed in <match> (first at t.conf:4)",
        ]
    );
}

#[test]
fn custom_errors_point_at_the_param_or_the_section() {
    let errs = section_errors("<source>\n  port 99999\n</source>\n", |s| {
        let _ = s.u64_or("port", 0);
        s.error(Some("port"), "port must be below 65536");
        s.error(None, "source needs a tag");
    });
    assert_eq!(
        errs,
        [
            "t.conf:1: source needs a tag",
            "t.conf:2: port must be below 65536"
        ]
    );
}

#[test]
fn a_value_read_twice_is_reported_once() {
    let errs = section_errors("<s>\n  n x\n</s>\n", |s| {
        let _ = s.opt_u64("n");
        let _ = s.opt_u64("n");
    });
    assert_eq!(errs.len(), 1);
}

#[test]
fn directives_split_the_top_level_and_check_labels() {
    let text = "\
<system>
</system>
<source>
</source>
<filter a.**>
</filter>
<match a.**>
</match>
<label @ERROR>
  <filter **>
  </filter>
  <match **>
  </match>
</label>
<label @OTHER>
  <match **>
  </match>
</label>
";
    let root = parse_str(text, "t.conf").unwrap();
    let errors = Errors::new();
    let d = directives(&root, &errors);
    assert!(d.system.is_some());
    assert_eq!(
        (d.sources.len(), d.filters.len(), d.matches.len()),
        (1, 1, 1)
    );
    let labels: Vec<(&str, usize, usize, u32)> = d
        .labels
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.filters.len(),
                l.matches.len(),
                l.span.line,
            )
        })
        .collect();
    assert_eq!(labels, [("@ERROR", 1, 1, 9), ("@OTHER", 0, 1, 15)]);
    drop(d);
    assert!(errors.is_empty());
}

#[test]
fn directive_mistakes_are_all_reported() {
    let text = "\
stray value
<system>
</system>
<system>
</system>
<label>
</label>
<label NOAT>
</label>
<label @X>
  key v
  <source>
  </source>
  <mach **>
  </mach>
</label>
<label @X>
</label>
<worker 0>
</worker>
<matc a>
</matc>
@inlcude x.conf
";
    let root = parse_str(text, "t.conf").unwrap();
    let errors = Errors::new();
    let d = directives(&root, &errors);
    assert_eq!(
        d.labels.len(),
        3,
        "a name without '@' is a label, as in Fluentd"
    );
    drop(d);
    assert_eq!(
        messages(errors.into_result(())),
        [
            "t.conf:1: parameter 'stray' is outside any section",
            "t.conf:4: only one <system> section is allowed (first at t.conf:2)",
            "t.conf:6: <label> needs a name: <label @NAME>",
            "t.conf:11: parameter 'key' is not allowed in <label>: only <filter> and <match> are",
            "t.conf:12: <source> is not allowed in <label @X>: only <filter> and <match> are",
            "t.conf:14: <mach> is not allowed in <label @X>: only <filter> and <match> are; did you mean 'match'?",
            "t.conf:17: label @X is defined twice (first at t.conf:10)",
            "t.conf:19: <worker> is not supported: ferry runs one process; remove the <worker> wrapper",
            "t.conf:21: unknown directive <matc>; did you mean 'match'?",
            "t.conf:23: parameter '@inlcude' is outside any section; did you mean '@include'?",
        ]
    );
}

#[test]
fn a_parameter_with_no_effect_is_a_note_at_its_line_not_an_error_nor_unknown() {
    let root = parse_str(
        "<match **>\n  @type forward\n  read_length 1k\n  other 1\n</match>\n",
        "n.conf",
    )
    .unwrap();
    let errors = Errors::new();
    let d = directives(&root, &errors);
    for m in d.matches {
        let _ = m.plugin_type();
        m.no_effect("read_length", "replies are read as they arrive");
        m.no_effect("absent_key", "never noted: not written");
        m.finish();
    }
    let notes: Vec<String> = errors
        .take_notes()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        notes,
        vec!["n.conf:3: 'read_length' has no effect in ferry: replies are read as they arrive"]
    );
    assert!(errors.take_notes().is_empty(), "taken once");
    // The noted key is read (not unknown); the other key still is.
    let msgs = messages(errors.into_result(()));
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].contains("'other'"), "{msgs:?}");
}

#[test]
fn the_v0_12_names_type_and_id_are_read_with_fluentds_deprecation_warning() {
    let root = parse_str(
        "<match a>\n  type forward\n  id out\n</match>\n<match b>\n  @type null\n  @id other\n</match>\n<match c>\n  @type stdout\n  <record>\n    id 5\n  </record>\n</match>\n",
        "v.conf",
    )
    .unwrap();
    let errors = Errors::new();
    let d = directives(&root, &errors);
    let mut seen = Vec::new();
    for m in d.matches {
        seen.push((m.plugin_type(), m.id()));
        if let Some(r) = m.child("record") {
            let _ = r.params();
            r.finish();
        }
        m.finish();
    }
    assert_eq!(
        seen,
        vec![
            (Some("forward"), Some("out")),
            (Some("null"), Some("other")),
            (Some("stdout"), None)
        ]
    );
    let notes: Vec<String> = errors
        .take_notes()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        notes,
        vec![
            "v.conf:2: 'type' is deprecated parameter name. use '@type' instead.",
            "v.conf:3: 'id' is deprecated parameter name. use '@id' instead.",
        ]
    );
    assert!(errors.into_result(()).is_ok());
}

#[test]
fn a_duration_written_nil_is_zero_as_fluentd_reads_it_and_said() {
    let root = parse_str("<match **>\n  expire_dns_cache nil\n</match>\n", "d.conf").unwrap();
    let errors = Errors::new();
    let d = directives(&root, &errors);
    for m in d.matches {
        assert_eq!(
            m.opt_duration("expire_dns_cache"),
            Some(std::time::Duration::ZERO)
        );
        m.finish();
    }
    let notes: Vec<String> = errors
        .take_notes()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("d.conf:2: 'expire_dns_cache nil' is read as 0"),
        "{notes:?}"
    );
    assert!(errors.into_result(()).is_ok());
}
