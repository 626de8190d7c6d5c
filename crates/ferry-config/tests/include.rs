//! `@include`: files, globs, relative paths, includes inside sections, cycles, missing files.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_config::{ConfigErrors, parse_file};

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create fixture directory");
    }
    fs::write(&path, text).expect("write fixture");
    path
}

fn messages(e: &ConfigErrors) -> Vec<String> {
    e.iter().map(ToString::to_string).collect()
}

#[test]
fn glob_includes_are_sorted_and_relative_to_the_including_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let main = write(
        d,
        "etc/ferry.conf",
        "<system>\n</system>\n@include conf.d/*.conf\n<match **>\n</match>\n",
    );
    write(d, "etc/conf.d/20-b.conf", "<source>\n  tag b\n</source>\n");
    write(
        d,
        "etc/conf.d/10-a.conf",
        "@include ../shared/common.conf\n<source>\n  tag a\n</source>\n",
    );
    write(d, "etc/conf.d/.hidden.conf", "<bogus>\n");
    write(
        d,
        "etc/shared/common.conf",
        "<filter **>\n  @type stdout\n</filter>\n",
    );
    let root = parse_file(&main).unwrap();
    let seen: Vec<(String, Option<&str>)> = root
        .children
        .iter()
        .map(|c| (c.name.clone(), c.value("tag")))
        .collect();
    assert_eq!(
        seen,
        [
            ("system".to_string(), None),
            ("filter".to_string(), None),
            ("source".to_string(), Some("a")),
            ("source".to_string(), Some("b")),
            ("match".to_string(), None),
        ]
    );
    // Spans name the file each element came from.
    let filter = &root.children[1];
    assert!(
        filter.span.file.ends_with("shared/common.conf"),
        "{}",
        filter.span
    );
    assert_eq!(filter.params[0].span.line, 2);
    assert!(root.children[3].span.file.ends_with("conf.d/20-b.conf"));
    assert_eq!(root.children[4].span.line, 4);
}

#[test]
fn include_inside_a_section_inserts_params_and_sections_there() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let main = write(
        d,
        "main.conf",
        "<match app.**>\n  @type forward\n  @include servers.conf\n  <buffer>\n    @include \"buffer settings.conf\"\n  </buffer>\n</match>\n",
    );
    write(
        d,
        "servers.conf",
        "require_ack_response true\n<server>\n  host a\n</server>\n<server>\n  host b\n</server>\n",
    );
    write(d, "buffer settings.conf", "flush_interval 5s\n");
    let root = parse_file(&main).unwrap();
    let m = &root.children[0];
    let keys: Vec<&str> = m.params.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["@type", "require_ack_response"]);
    let kids: Vec<(&str, Option<&str>)> = m
        .children
        .iter()
        .map(|c| (c.name.as_str(), c.value("host")))
        .collect();
    assert_eq!(
        kids,
        [
            ("server", Some("a")),
            ("server", Some("b")),
            ("buffer", None)
        ]
    );
    assert_eq!(m.children[2].value("flush_interval"), Some("5s"));
}

#[test]
fn missing_include_is_an_error_at_the_include_line() {
    let tmp = tempfile::tempdir().unwrap();
    let main = write(
        tmp.path(),
        "main.conf",
        "<system>\n</system>\n\n@include nothere.conf\n",
    );
    let err = parse_file(&main).unwrap_err();
    let msgs = messages(&err);
    assert_eq!(msgs.len(), 1);
    assert!(
        msgs[0].starts_with(&format!(
            "{}:4: cannot include 'nothere.conf': no such file",
            main.display()
        )),
        "{msgs:?}"
    );
}

#[test]
fn glob_matching_nothing_includes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let main = write(
        tmp.path(),
        "main.conf",
        "@include conf.d/*.conf\n<system>\n</system>\n",
    );
    let root = parse_file(&main).unwrap();
    assert_eq!(root.children.len(), 1);
}

#[test]
fn include_cycle_is_reported_with_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = write(d, "a.conf", "<system>\n</system>\n@include b.conf\n");
    write(d, "b.conf", "<source>\n</source>\n@include sub/c.conf\n");
    write(d, "sub/c.conf", "\n@include ../a.conf\n");
    let err = parse_file(&a).unwrap_err();
    let msgs = messages(&err);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let c = d.join("sub/c.conf");
    let expected = format!(
        "{}:2: include cycle: {} -> {} -> {} -> {}",
        c.display(),
        a.display(),
        d.join("b.conf").display(),
        c.display(),
        d.join("sub/../a.conf").display()
    );
    assert_eq!(msgs[0], expected);
}

#[test]
fn self_include_is_a_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write(tmp.path(), "a.conf", "@include *.conf\n");
    let err = parse_file(&a).unwrap_err();
    assert!(err.to_string().contains("include cycle"), "{err}");
}

#[test]
fn included_file_must_close_its_own_sections() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let main = write(
        d,
        "main.conf",
        "<match a>\n  @include part.conf\n</match>\n",
    );
    write(d, "part.conf", "<buffer>\n</match>\n");
    let msgs = messages(&parse_file(&main).unwrap_err());
    let part = d.join("part.conf");
    assert_eq!(
        msgs,
        [format!(
            "{}:2: close tag </match> does not match <buffer> opened at line 1",
            part.display()
        )]
    );
}

#[test]
fn errors_in_included_files_carry_their_own_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let main = write(
        d,
        "main.conf",
        "<source>\n  x \"\\q\"\n</source>\n@include inc.conf\n<system>\n  w \"\\w\"\n</system>\n",
    );
    write(d, "inc.conf", "\n\n<system>\n  y \"\\z\"\n</system>\n");
    let msgs = messages(&parse_file(&main).unwrap_err());
    assert_eq!(msgs.len(), 3);
    assert!(
        msgs[0].starts_with(&format!("{}:2: bad escape '\\q'", main.display())),
        "{msgs:?}"
    );
    assert!(
        msgs[1].starts_with(&format!(
            "{}:4: bad escape '\\z'",
            d.join("inc.conf").display()
        )),
        "{msgs:?}"
    );
    assert!(
        msgs[2].starts_with(&format!("{}:6: bad escape '\\w'", main.display())),
        "{msgs:?}"
    );
}

#[test]
fn unreadable_top_file_is_an_error_without_a_line() {
    let tmp = tempfile::tempdir().unwrap();
    let err = parse_file(&tmp.path().join("absent.conf")).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(err.0[0].span.is_none());
    assert!(
        err.to_string()
            .starts_with("cannot load configuration: cannot read"),
        "{err}"
    );
}

#[test]
fn including_a_directory_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("conf.d")).unwrap();
    let main = write(tmp.path(), "main.conf", "@include conf.d\n");
    let err = parse_file(&main).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}
