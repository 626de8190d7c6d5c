use super::*;

fn converted(text: &str) -> (Element, Vec<CompatError>) {
    let mut root = ferry_config::parse_str(text, "c.conf").unwrap();
    let errors = convert(&mut root);
    (root, errors)
}

/// The one plugin section of `text`, converted, in Fluentd syntax.
fn text(conf: &str) -> String {
    let (root, errors) = converted(conf);
    assert!(errors.is_empty(), "{errors:?}");
    root.children[0].to_string()
}

#[test]
fn every_v0_12_buffer_parameter_lands_in_buffer_under_its_v1_name() {
    let out = text(
        "<match **>\n  @type forward\n  buffer_type file\n  buffer_path /b\n  num_threads 4\n  flush_interval 5s\n  try_flush_interval 1s\n  queued_chunk_flush_interval 2s\n  disable_retry_limit true\n  retry_limit 9\n  max_retry_wait 30s\n  buffer_chunk_limit 8m\n  buffer_queue_limit 64\n  buffer_queue_full_action exception\n  flush_at_shutdown true\n  time_slice_wait 10m\n  <server>\n    host h\n  </server>\n</match>\n",
    );
    let expected = "<buffer tag>\n    @type file\n    path /b\n    flush_thread_count 4\n    flush_interval 5s\n    flush_thread_interval 1s\n    flush_thread_burst_interval 2s\n    retry_forever true\n    retry_max_times 9\n    retry_max_interval 30s\n    chunk_limit_size 8m\n    queue_limit_length 64\n    overflow_action throw_exception\n    flush_at_shutdown true\n    timekey_wait 10m\n  </buffer>";
    assert!(out.contains(expected), "{out}");
    assert!(!out.contains("buffer_type"), "moved, not copied: {out}");
}

#[test]
fn time_slice_format_gives_the_timekey_and_localtime_the_zone() {
    for (format, timekey) in [
        ("%Y%m%d%H%M%S", "1"),
        ("%Y%m%d%H%M", "60"),
        ("%Y%m%d%H", "3600"),
        ("%Y%m%d", "86400"),
    ] {
        let out = text(&format!(
            "<match **>\n  @type file\n  path /logs/app\n  time_slice_format {format}\n  utc\n</match>\n"
        ));
        assert!(out.contains("<buffer time>"), "{out}");
        assert!(out.contains(&format!("timekey {timekey}\n")), "{out}");
        assert!(out.contains("timekey_use_utc true"), "{out}");
    }
    let (_, errors) =
        converted("<match **>\n  @type file\n  path /l\n  time_slice_format %Y%m\n</match>\n");
    assert_eq!(
        errors[0].message,
        "time_slice_format only with %Y or %m is too long"
    );
    assert_eq!(errors[0].span.line, 4);
    let (_, errors) = converted(
        "<match **>\n  @type file\n  path /l\n  time_slice_format %Y%m%d\n  localtime\n  utc\n</match>\n",
    );
    assert!(
        errors[0].message.contains("both of utc and localtime"),
        "{errors:?}"
    );
}

#[test]
fn a_v0_12_file_output_slices_by_day_and_keeps_its_format_and_injection() {
    let out = text(
        "<match **>\n  @type file\n  path /logs/app\n  buffer_path /b\n  format json\n  include_time_key true\n  include_tag_key true\n  tag_key t\n</match>\n",
    );
    assert!(
        out.contains("<buffer time>\n    path /b\n    timekey 86400\n  </buffer>"),
        "{out}"
    );
    assert!(
        out.contains("<format>\n    @type json\n  </format>"),
        "{out}"
    );
    assert!(
        out.contains(
            "<inject>\n    tag_key t\n    time_key time\n    time_type string\n  </inject>"
        ),
        "{out}"
    );
    for moved in [
        "buffer_path",
        "include_time_key",
        "include_tag_key",
        "\n  format json",
    ] {
        assert!(!out.contains(moved), "{moved} stays at the top: {out}");
    }
}

#[test]
fn format_becomes_parse_with_regexps_types_and_the_time_zone() {
    let out = text(
        "<source>\n  @type tail\n  path /l\n  tag t\n  format /^(?<a>\\w+) (?<b>\\d+)$/\n  types b:integer,c:float\n  time_format %d/%b/%Y\n  localtime false\n</source>\n",
    );
    assert!(out.contains("@type regexp\n"), "{out}");
    assert!(out.contains("expression ^(?<a>\\w+) (?<b>\\d+)$"), "{out}");
    assert!(
        out.contains(r#"types "{\"b\":\"integer\",\"c\":\"float\"}""#),
        "{out}"
    );
    assert!(out.contains("time_format %d/%b/%Y"), "{out}");
    assert!(out.contains("localtime false"), "{out}");
    let out = text("<filter **>\n  @type parser\n  key_name log\n  format json\n</filter>\n");
    assert!(out.contains("<parse>\n    @type json\n  </parse>"), "{out}");
    assert!(out.contains("key_name log"), "{out}");
}

#[test]
fn a_v1_section_already_written_wins_and_other_plugins_are_untouched() {
    let conf = "<match **>\n  @type forward\n  flush_interval 1s\n  <buffer>\n    flush_interval 2s\n  </buffer>\n  <server>\n    host h\n  </server>\n</match>\n";
    let out = text(conf);
    assert!(
        out.contains("  flush_interval 1s\n"),
        "left for the reader to refuse: {out}"
    );
    assert_eq!(out.matches("<buffer").count(), 1, "{out}");
    let kafka = "<match **>\n  @type kafka2\n  format json\n</match>\n";
    assert!(
        text(kafka).contains("  format json\n"),
        "kafka2 does not convert"
    );
}

#[test]
fn stores_of_copy_and_matches_in_labels_are_converted() {
    let (root, errors) = converted(
        "<match **>\n  @type copy\n  <store>\n    @type stdout\n    format json\n  </store>\n</match>\n<label @L>\n  <match **>\n    @type forward\n    buffer_type memory\n  </match>\n</label>\n",
    );
    assert!(errors.is_empty());
    let text = root.to_string();
    assert!(
        text.contains("<store>\n    @type stdout\n    <format>\n      @type json"),
        "{text}"
    );
    assert!(text.contains("<buffer tag>\n      @type memory"), "{text}");
}

#[test]
fn the_stdout_filter_converts_as_the_stdout_output_does() {
    let out =
        text("<filter **>\n  @type stdout\n  format json\n  include_tag_key true\n</filter>\n");
    assert!(
        out.contains("<format>\n    @type json\n  </format>"),
        "{out}"
    );
    assert!(
        out.contains("<inject>\n    tag_key tag\n  </inject>"),
        "{out}"
    );
}

#[test]
fn v0_12_time_zone_parameters_build_into_working_v1_zones() {
    let conf = "<source>\n  @type tail\n  path /l/a.log\n  tag t\n  format /^(?<time>.+)$/\n  \
                time_format %Y-%m-%d %H:%M:%S\n  localtime true\n</source>\n\
                <match a>\n  @type file\n  path /l/out\n  time_slice_format %Y%m%d%H\n  \
                timezone Asia/Tokyo\n  localtime\n  include_time_key true\n</match>\n\
                <match b>\n  @type stdout\n  utc\n  include_time_key true\n</match>\n";
    let out = {
        let (root, errors) = converted(conf);
        assert!(errors.is_empty(), "{errors:?}");
        root.to_string()
    };
    assert!(out.contains("timekey_zone Asia/Tokyo"), "{out}");
    assert!(out.contains("timekey_use_utc false"), "{out}");
    let root = ferry_config::parse_str(conf, "c.conf").unwrap();
    let built = crate::pipeline::build(&root).unwrap_or_else(|e| panic!("{e}"));
    // Fluentd's stdout format too writes the host's zone whatever `utc` says.
    assert_eq!(built.notes.len(), 1, "{:?}", built.notes);
    assert!(
        built.notes[0].starts_with("c.conf:19: 'utc' has no effect"),
        "{:?}",
        built.notes
    );
}

#[test]
fn the_tcp_and_udp_inputs_format_becomes_parse_and_the_tcp_delimiter_stays_the_inputs() {
    let out = text(
        "<source>\n  @type tcp\n  tag t\n  format ltsv\n  delimiter \"\\r\\n\"\n  label_delimiter =\n</source>\n",
    );
    assert!(
        out.contains("<parse>\n    label_delimiter =\n    @type ltsv\n  </parse>"),
        "{out}"
    );
    assert!(out.contains("  delimiter \"\\r\\n\"\n  <parse>"), "{out}");
    assert!(!out.contains("format ltsv"), "{out}");
    let out = text("<source>\n  @type udp\n  tag t\n  format json\n</source>\n");
    assert!(out.contains("<parse>\n    @type json\n  </parse>"), "{out}");
}

#[test]
fn the_syslog_inputs_format_becomes_parse_and_its_delimiter_stays_the_inputs() {
    let out = text(
        "<source>\n  @type syslog\n  tag t\n  format syslog\n  message_format rfc5424\n  delimiter \"\\r\\n\"\n</source>\n",
    );
    assert!(out.contains("<parse>"), "{out}");
    assert!(
        out.contains("@type syslog") && out.contains("message_format rfc5424"),
        "{out}"
    );
    assert!(out.contains("  delimiter \"\\r\\n\"\n  <parse>"), "{out}");
}
