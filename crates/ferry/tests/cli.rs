//! The `ferry` command's own behaviour: version, dry runs, configuration errors.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::dry_run;
use std::process::Command;

#[test]
fn version_prints_the_package_version() {
    let out = Command::new(common::ferry_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

#[test]
fn dry_run_accepts_a_correct_configuration() {
    let (ok, stdout, stderr) = dry_run(
        "<source>\n  @type forward\n  port 24299\n</source>\n<match app.**>\n  @type null\n</match>\n<match **>\n  @type stdout\n</match>\n",
    );
    assert!(ok, "stderr: {stderr}");
    assert!(
        stdout.contains("is valid (1 sources, 2 matches"),
        "{stdout}"
    );
}

#[test]
fn dry_run_of_the_embedded_default_configuration_succeeds() {
    let out = Command::new(common::ferry_bin())
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dry_run_reports_three_mistakes_with_file_and_line_and_fails() {
    let config = "\
<source>
  @type forward
  prot 24224
</source>

<souce>
  @type forward
</souce>

<match **>
  @type stdout
  <format>
    @type json
  </format>
</match>

<match app.**>
  @type stdot
</match>
";
    let (ok, _, stderr) = dry_run(config);
    assert!(!ok, "a configuration with mistakes must fail");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ferry.conf:"))
        .collect();
    assert_eq!(errors.len(), 3, "expected three errors, got:\n{stderr}");
    assert!(
        errors[0].contains("ferry.conf:3:") && errors[0].contains("prot"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("did you mean 'port'"), "{}", errors[0]);
    assert!(
        errors[1].contains("ferry.conf:6:") && errors[1].contains("souce"),
        "{}",
        errors[1]
    );
    assert!(errors[1].contains("did you mean 'source'"), "{}", errors[1]);
    assert!(
        errors[2].contains("ferry.conf:18:") && errors[2].contains("stdot"),
        "{}",
        errors[2]
    );
    assert!(errors[2].contains("did you mean 'stdout'"), "{}", errors[2]);
}

#[test]
fn plugins_ferry_does_not_provide_are_refused_not_ignored() {
    let (ok, _, stderr) = dry_run("<match **>\n  @type elasticsearch\n</match>\n");
    assert!(!ok);
    assert!(
        stderr.contains("ferry.conf:2:") && stderr.contains("'elasticsearch' is not available"),
        "{stderr}"
    );
}

#[test]
fn workers_above_one_load_with_a_warning_at_their_line_and_zero_is_refused() {
    let conf = |workers: &str| {
        format!("<system>\n  workers {workers}\n</system>\n<match **>\n  @type null\n</match>\n")
    };
    let (ok, _, stderr) = dry_run(&conf("4"));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("ferry.conf:2:") && stderr.contains("each directive runs once"),
        "{stderr}"
    );
    let (ok, _, stderr) = dry_run(&conf("0"));
    assert!(!ok);
    assert!(stderr.contains("ferry.conf:2:"), "{stderr}");
    let (ok, _, stderr) = dry_run(&conf("1"));
    assert!(ok && !stderr.contains("workers"), "{stderr}");
}

#[test]
fn a_missing_configuration_file_is_an_error_naming_it() {
    let out = Command::new(common::ferry_bin())
        .args(["--dry-run", "-c", "/nonexistent/ferry.conf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ferry.conf"));
}

#[test]
fn a_port_in_use_fails_start_up_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.conf");
    std::fs::write(
        &path,
        format!("<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n<match **>\n  @type null\n</match>\n"),
    )
    .unwrap();
    let out = Command::new(common::ferry_bin())
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on tcp 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn parameters_that_have_no_effect_are_named_with_their_line_by_dry_run_and_at_start() {
    let conf = "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n  skip_invalid_event false\n</source>\n\
                <match **>\n  @type null\n  <buffer>\n    flush_thread_interval 0.5\n    disable_chunk_backup true\n  </buffer>\n</match>\n";
    let (ok, _, err) = common::dry_run(&conf.replace("{port}", "24224"));
    assert!(ok, "notes do not fail the configuration: {err}");
    for (line, key) in [
        (5, "skip_invalid_event"),
        (10, "flush_thread_interval"),
        (11, "disable_chunk_backup"),
    ] {
        assert!(
            err.lines().any(|l| l.starts_with("ferry: warning: ")
                && l.contains(&format!(
                    "ferry.conf:{line}: '{key}' has no effect in ferry: "
                ))),
            "{key} at line {line}: {err}"
        );
    }
    // A value that is what ferry does anyway is not noted.
    let (ok, _, err) = common::dry_run(
        "<source>\n  @type forward\n  port 24224\n  skip_invalid_event true\n</source>\n<match **>\n  @type null\n</match>\n",
    );
    assert!(ok && !err.contains("warning"), "{err}");
    // At start, each note is one warning in the log.
    let port = common::free_port();
    let ferry = common::Ferry::start(&conf.replace("{port}", &port.to_string()), port);
    let mut seen = Vec::new();
    let line = ferry.wait_stderr(
        "'flush_thread_interval' has no effect in ferry",
        std::time::Duration::from_secs(5),
        &mut seen,
    );
    assert!(
        line.contains("[warn]") && line.contains("ferry.conf:10:"),
        "{line}"
    );
}

#[test]
fn dry_run_prints_every_input_route_and_output_with_its_line() {
    let (ok, stdout, stderr) = dry_run(
        "<source>\n  @type sample\n  @id gen\n  tag app.x\n</source>\n\
         <filter app.**>\n  @type grep\n  <regexp>\n    key message\n    pattern /./\n  </regexp>\n</filter>\n\
         <match app.**>\n  @type copy\n  <store>\n    @type null\n    @id a\n  </store>\n  <store>\n    @type relabel\n    @label @L\n  </store>\n</match>\n\
         <label @L>\n  <match **>\n    @type stdout\n    @id b\n  </match>\n</label>\n",
    );
    assert!(ok, "{stderr}");
    for line in [
        "  gen (sample)  at ",
        "    filter app.**  grep_",
        "    match app.**  copy_",
        "(copy: a (null), relabel -> @L)",
        "  @L:\n    match **  b (stdout)  at ",
    ] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("ferry.conf:1\n") && stdout.contains("ferry.conf:13\n"),
        "{stdout}"
    );
}
