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
