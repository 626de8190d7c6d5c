//! `<system>` as Fluentd operators write it, against the real `ferry` binary: JSON log lines
//! with a custom time format, the process name, the configuration printed at start with its
//! secrets masked (or not at all), and `without_source`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{AckedSender, Ferry, free_port};
use std::time::{Duration, Instant};

fn lines_until(ferry: &Ferry, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while !done(&lines) {
        assert!(Instant::now() < deadline, "{lines:#?}");
        lines.extend(ferry.stderr.try_iter());
        std::thread::sleep(Duration::from_millis(20));
    }
    lines
}

#[test]
fn json_logs_a_process_name_and_a_masked_configuration_dump() {
    let port = free_port();
    let conf = format!(
        "<system>\n  process_name ferry-under-test\n  <log>\n    format json\n    time_format %Y-%m-%dT%H:%M:%S%z\n  </log>\n</system>\n\
         <source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n  <security>\n    self_hostname here\n    shared_key very-secret-key\n  </security>\n</source>\n\
         <match **>\n  @type null\n</match>\n"
    );
    let ferry = Ferry::start(&conf, port);
    let lines = lines_until(&ferry, |l| l.iter().any(|l| l.contains(" started")));
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let time = v["time"].as_str().unwrap();
        assert_eq!(time.len(), "2026-12-06T20:00:00+0000".len(), "{line}");
        assert!(time.contains('T') && time.ends_with("+0000"), "{line}");
        assert!(["info", "warn", "error", "debug"].contains(&v["level"].as_str().unwrap()));
        assert!(v["message"].is_string());
    }
    let dump = lines
        .iter()
        .find(|l| l.contains("using configuration:"))
        .expect("the configuration is printed at start");
    assert!(dump.contains("shared_key xxxxxx"), "{dump}");
    assert!(!dump.contains("very-secret-key"), "{dump}");
    assert!(dump.contains("self_hostname here"), "{dump}");
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", ferry.child.id())).unwrap();
    assert_eq!(
        comm.trim(),
        "ferry-under-tes",
        "the first 15 bytes, as the kernel keeps them"
    );
}

#[test]
fn suppress_config_dump_prints_no_configuration() {
    let port = free_port();
    let conf = format!(
        "<system>\n  suppress_config_dump true\n</system>\n\
         <source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n<match **>\n  @type null\n</match>\n"
    );
    let ferry = Ferry::start(&conf, port);
    let lines = lines_until(&ferry, |l| l.iter().any(|l| l.contains(" started")));
    assert!(
        !lines.iter().any(|l| l.contains("using configuration:")),
        "{lines:#?}"
    );
}

#[test]
fn without_source_starts_no_input_and_drains_what_the_buffers_hold() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = |system: &str| {
        format!(
            "{system}<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
             <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n\
             <buffer>\n    @type file\n    path {}\n    flush_interval 1h\n  </buffer>\n</match>\n",
            dir.path().join("buf").display()
        )
    };
    // Events staged in the file buffer, then a stop.
    let mut ferry = Ferry::start(&conf(""), port);
    AckedSender::connect(port)
        .unwrap()
        .send("drain.me", 0..25, 10)
        .unwrap();
    common::signal(ferry.child.id(), "TERM");
    assert!(ferry.child.wait().unwrap().success());
    drop(ferry);
    // Without sources: nothing listens, and the buffer is delivered.
    let ferry = Ferry::start_logged(&conf("<system>\n  without_source true\n</system>\n"), &[]);
    let lines = ferry.stdout_lines(25, Duration::from_secs(15));
    assert_eq!(common::seqs_of(&lines), (0..25).collect::<Vec<_>>());
    assert!(
        !ferry_bench::ferryproc::listening(port),
        "no <source> is started"
    );
    assert!(
        ferry
            .stderr_so_far()
            .iter()
            .any(|l| l.contains("without_source")),
        "ferry says it started no source"
    );
}

#[test]
fn a_v0_12_configuration_is_read_through_fluentds_compatibility_layer_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "{\"msg\":\"hello\",\"n\":1}\n").unwrap();
    let conf = format!(
        "<source>\n  type tail\n  path {}\n  pos_file {}\n  tag app\n  read_from_head true\n  format json\n</source>\n\
         <match app>\n  type stdout\n  format json\n  include_tag_key true\n  tag_key source_tag\n</match>\n\
         <match never>\n  type forward\n  buffer_type file\n  buffer_path {}\n  flush_interval 1s\n  buffer_queue_full_action exception\n  <server>\n    host 127.0.0.1\n    port 1\n  </server>\n</match>\n",
        log.display(),
        dir.path().join("pos").display(),
        dir.path().join("fwd-buffer").display()
    );
    let ferry = Ferry::start_logged(&conf, &[]);
    let line = ferry.stdout_lines(1, Duration::from_secs(10)).remove(0);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["msg"], "hello", "{line}");
    assert_eq!(v["source_tag"], "app", "{line}");
    let notes = ferry.stderr_so_far();
    assert!(
        notes
            .iter()
            .any(|l| l.contains("'type' is deprecated parameter name. use '@type' instead.")),
        "{notes:#?}"
    );
    assert!(
        dir.path().join("fwd-buffer").is_dir(),
        "buffer_path is the buffer's path"
    );
}

#[test]
fn worker_sections_run_once_with_worker_id_zero_and_a_shared_address_is_refused() {
    let conf = "<system>\n  workers 4\n</system>\n\
        <worker 0>\n  <source>\n    @type sample\n    tag w.zero\n    rate 10\n  </source>\n</worker>\n\
        <worker 1-3>\n  <match w.**>\n    @type stdout\n    <format>\n      @type json\n    </format>\n    <inject>\n      worker_id_key worker_id\n    </inject>\n  </match>\n</worker>\n";
    let (ok, _, stderr) = common::dry_run(conf);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("ferry.conf:4:") && stderr.contains("<worker 0>: ferry is one process"),
        "{stderr}"
    );
    let ferry = Ferry::start_logged(conf, &[]);
    let line = ferry.stdout_lines(1, Duration::from_secs(5)).remove(0);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["worker_id"], 0, "{line}");
    drop(ferry);
    // What several processes would each bind is one address bound twice here.
    let port = free_port();
    let twice = format!(
        "<worker 0>\n  <source>\n    @type forward\n    port {port}\n  </source>\n</worker>\n\
         <worker 1>\n  <source>\n    @type forward\n    port {port}\n  </source>\n</worker>\n\
         <match **>\n  @type null\n</match>\n"
    );
    let (ok, _, stderr) = common::dry_run(&twice);
    assert!(!ok);
    assert!(
        stderr.contains("ferry.conf:8:")
            && stderr.contains("as the source at")
            && stderr.contains("ferry.conf:2"),
        "{stderr}"
    );
    let (ok, _, stderr) = common::dry_run("<worker 2-1>\n</worker>\n");
    assert!(
        !ok && stderr.contains("a worker is a number or a range"),
        "{stderr}"
    );
}

#[test]
fn log_level_per_plugin_lets_one_plugin_speak_more_and_another_less() {
    let (normal, chatty, quiet) = (free_port(), free_port(), free_port());
    let conf = format!(
        "<source>\n  @type forward\n  @id normal\n  bind 127.0.0.1\n  port {normal}\n</source>\n\
         <source>\n  @type forward\n  @id chatty\n  @log_level debug\n  bind 127.0.0.1\n  port {chatty}\n</source>\n\
         <source>\n  @type forward\n  @id quiet\n  @log_level error\n  bind 127.0.0.1\n  port {quiet}\n</source>\n\
         <match **>\n  @type null\n  @log_level warn\n</match>\n"
    );
    let ferry = Ferry::start(&conf, quiet);
    for port in [normal, chatty, quiet] {
        // Closed without a byte: a debug line. Then a request of two elements: a warning.
        drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(&mut s, &[0x92, 0xa1, b'a', 0x7b]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = lines_until(&ferry, |l| {
        l.iter()
            .any(|l| l.contains("chatty: 127.0.0.1") && l.contains("closed without"))
            && l.iter()
                .any(|l| l.contains("normal: incoming chunk is broken"))
            && l.iter()
                .any(|l| l.contains("chatty: incoming chunk is broken"))
    });
    // The lines of the plugin at error wait as long as the others took; none may come.
    std::thread::sleep(Duration::from_millis(500));
    let lines: Vec<String> = lines.into_iter().chain(ferry.stderr_so_far()).collect();
    let about = |id: &str| -> Vec<&String> {
        lines
            .iter()
            .filter(|l| l.contains(&format!("input {id}")))
            .collect()
    };
    assert!(about("quiet").is_empty(), "{lines:#?}");
    assert!(
        about("normal").iter().all(|l| !l.contains("[debug]")),
        "the global level (info) keeps debug lines out: {lines:#?}"
    );
    assert!(
        about("normal").iter().any(|l| l.contains("listening port")),
        "{lines:#?}"
    );
    assert!(
        about("chatty")
            .iter()
            .any(|l| l.contains("[debug]") && l.contains("closed without sending anything")),
        "{lines:#?}"
    );
}

#[test]
fn a_log_level_that_fluentd_does_not_have_is_refused_with_its_place() {
    let (ok, _, stderr) = common::dry_run(
        "<source>\n  @type sample\n  tag t\n  @log_level verbose\n</source>\n<match **>\n  @type null\n</match>\n",
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("ferry.conf:4:") && stderr.contains("'verbose' is not one of"),
        "{stderr}"
    );
    let (ok, _, stderr) = common::dry_run(
        "<source>\n  @type sample\n  tag t\n  @log_level fatal\n</source>\n\
         <filter **>\n  @type stdout\n  @log_level debug\n</filter>\n\
         <match **>\n  @type copy\n  <store>\n    @type null\n    @log_level trace\n  </store>\n</match>\n",
    );
    assert!(ok, "{stderr}");
}

#[test]
fn a_filter_runs_at_its_own_log_level_inside_its_inputs_tasks() {
    let conf = "<source>\n  @type sample\n  tag t\n  rate 50\n</source>\n\
                <filter **>\n  @type stdout\n  @log_level debug\n</filter>\n\
                <match **>\n  @type null\n</match>\n";
    let mut ferry = Ferry::start_logged(conf, &[]);
    // Nobody reads ferry's stdout any more: the filter's writes fail, which it logs at debug,
    // below the global level (info) but at its own.
    let (_, closed) = std::sync::mpsc::channel();
    drop(std::mem::replace(&mut ferry.stdout, closed));
    let lines = lines_until(&ferry, |l| {
        l.iter()
            .any(|l| l.contains("[debug]: stdout filter:") && l.contains("Broken pipe"))
    });
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("[debug]") || l.contains("stdout filter")),
        "{lines:#?}"
    );
}

#[test]
fn plugins_that_run_programs_are_refused_with_the_reason_in_every_family() {
    for (section, close) in [
        (
            "<source>\n  @type exec\n  command date\n  tag t\n",
            "</source>",
        ),
        ("<match **>\n  @type exec\n  command cat\n", "</match>"),
        (
            "<match **>\n  @type exec_filter\n  command cat\n",
            "</match>",
        ),
    ] {
        let (ok, _, stderr) = common::dry_run(&format!(
            "{section}{close}\n<match never>\n  @type null\n</match>\n"
        ));
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains("ferry.conf:2:")
                && stderr.contains("is refused: it runs programs named in the configuration"),
            "{stderr}"
        );
    }
}
