//! The configuration syntax, feature by feature, and the errors for each way to get it wrong.

use ferry_config::{ConfigErrors, Element, ParseOptions, parse_str, parse_str_with};

fn parse(text: &str) -> Element {
    match parse_str(text, "test.conf") {
        Ok(root) => root,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse_str(text, "test.conf") {
        Ok(root) => panic!("expected errors, parsed:\n{root}"),
        Err(ConfigErrors(list)) => list.iter().map(ToString::to_string).collect(),
    }
}

fn values(e: &Element) -> Vec<(&str, &str)> {
    e.params
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect()
}

#[test]
fn sections_nest_and_keep_order_names_args_and_lines() {
    let root = parse(
        "<source>\n  @type forward\n  port 24224\n</source>\n\n\
         <match app.** system.*>\n  @type forward\n  <buffer tag, time>\n    timekey 1h\n  \
         </buffer>\n  <server>\n    host a\n  </server>\n  <server>\n    host b\n  </server>\n\
         </match>\n",
    );
    assert_eq!(root.name, "ROOT");
    let names: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["source", "match"]);
    let source = &root.children[0];
    assert_eq!(values(source), [("@type", "forward"), ("port", "24224")]);
    assert_eq!(source.span.to_string(), "test.conf:1");
    assert_eq!(source.params[1].span.to_string(), "test.conf:3");
    let m = &root.children[1];
    assert_eq!(m.arg, "app.** system.*");
    assert_eq!(m.span.line, 6);
    let kids: Vec<(&str, &str, u32)> = m
        .children
        .iter()
        .map(|c| (c.name.as_str(), c.arg.as_str(), c.span.line))
        .collect();
    assert_eq!(
        kids,
        [
            ("buffer", "tag, time", 8),
            ("server", "", 11),
            ("server", "", 14)
        ]
    );
    assert_eq!(m.children[2].value("host"), Some("b"));
}

#[test]
fn deep_nesting_is_kept() {
    let mut text = String::new();
    for i in 0..10 {
        text.push_str(&format!("<s{i} a{i}>\nk{i} v{i}\n"));
    }
    for i in (0..10).rev() {
        text.push_str(&format!("</s{i}>\n"));
    }
    let root = parse(&text);
    let mut e = &root;
    for i in 0..10 {
        e = &e.children[0];
        assert_eq!(
            (e.name.as_str(), e.arg.as_str()),
            (format!("s{i}").as_str(), format!("a{i}").as_str())
        );
        assert_eq!(e.value(&format!("k{i}")), Some(format!("v{i}").as_str()));
    }
}

#[test]
fn values_run_to_end_of_line_with_comments_and_blanks_handled() {
    let root = parse(
        "# leading comment\n<source>   # after a tag\n  path /var/log/a b.log   \n  \
         exp /a#b/ # comment\n  color #ff0000\n  flag\n  tab\tx\t\n  \"quoted key\" v\n</source>  # end\n",
    );
    let s = &root.children[0];
    assert_eq!(
        values(s),
        [
            ("path", "/var/log/a b.log"),
            ("exp", "/a#b/"),
            ("color", "#ff0000"),
            ("flag", ""),
            ("tab", "x"),
            ("quoted key", "v"),
        ]
    );
}

#[test]
fn reserved_at_params_are_ordinary_keys() {
    let root = parse("<match a>\n@type stdout\n@id out1\n@label @X\n@log_level debug\n</match>\n");
    assert_eq!(
        values(&root.children[0]),
        [
            ("@type", "stdout"),
            ("@id", "out1"),
            ("@label", "@X"),
            ("@log_level", "debug")
        ]
    );
}

#[test]
fn double_quoted_values_unescape_and_may_span_lines() {
    let root = parse(
        "<s>\n  a \"x\\\"y\\\\z\\n\\t\\r\\#{not code}\"\n  b \"line one\nline two\"\n  \
         c \"joined \\\n  here\" # comment\n  d \"\"\n  e \"  padded  \"\n</s>\n",
    );
    let s = &root.children[0];
    assert_eq!(
        values(s),
        [
            ("a", "x\"y\\z\n\t\r#{not code}"),
            ("b", "line one\nline two"),
            ("c", "joined   here"),
            ("d", ""),
            ("e", "  padded  "),
        ]
    );
    assert_eq!(s.param("c").map(|p| p.span.line), Some(5));
}

#[test]
fn single_quoted_values_only_unescape_quote_and_backslash() {
    let root = parse("<s>\n  a 'it\\'s \\\\ \\n #{ENV[\"X\"]} # kept'\n</s>\n");
    assert_eq!(
        root.children[0].value("a"),
        Some("it's \\ \\n #{ENV[\"X\"]} # kept")
    );
}

#[test]
fn arrays_and_hashes_span_lines_and_are_stored_compact() {
    let root = parse(
        "<client>\n  users [\"alice\",   # first\n         \"bob\"\n  ]\n  \
         headers {\"X-A\": \"1\",\n    \"X-B\": {\"n\": [1, 2]}}\n  after yes\n</client>\n",
    );
    let c = &root.children[0];
    assert_eq!(
        values(c),
        [
            ("users", r#"["alice","bob"]"#),
            ("headers", r#"{"X-A":"1","X-B":{"n":[1,2]}}"#),
            ("after", "yes"),
        ]
    );
    assert_eq!(c.param("after").map(|p| p.span.line), Some(7));
}

#[test]
fn env_interpolation_reads_the_given_environment() {
    let opts = ParseOptions::new().with_env(|name| match name {
        "FERRY_TEST_HOST" => Some("agg-1".to_string()),
        _ => None,
    });
    let text = "<security>\n  self_hostname \"#{ENV['FERRY_TEST_HOST']}.local\"\n  \
                a \"#{ENV[\"FERRY_TEST_HOST\"]}\"\n  b \"#{ENV['UNSET_X']}\"\n  \
                c \"#{ENV['UNSET_X'] || 'fallback'}\"\n  d '#{ENV[\"FERRY_TEST_HOST\"]}'\n  \
                e #{ENV['FERRY_TEST_HOST']}\n</security>\n";
    let root = parse_str_with(text, "env.conf", &opts).unwrap();
    assert_eq!(
        values(&root.children[0]),
        [
            ("self_hostname", "agg-1.local"),
            ("a", "agg-1"),
            ("b", ""),
            ("c", "fallback"),
            ("d", "#{ENV[\"FERRY_TEST_HOST\"]}"),
            ("e", "#{ENV['FERRY_TEST_HOST']}"),
        ]
    );
}

/// Runs in a child process that has the variable set (setting it here would need `unsafe`).
#[test]
#[ignore = "run by env_interpolation_reads_the_process_environment in a child process"]
fn child_reads_ferry_test_var() {
    let root = parse("<s>\n  v \"#{ENV['FERRY_CONFIG_TEST_VAR']}\"\n</s>\n");
    assert_eq!(root.children[0].value("v"), Some("from the environment"));
}

#[test]
fn env_interpolation_reads_the_process_environment() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "child_reads_ferry_test_var",
            "--ignored",
            "--test-threads=1",
        ])
        .env("FERRY_CONFIG_TEST_VAR", "from the environment")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
fn embedded_code_outside_the_grammar_is_rejected_at_its_line() {
    let errs = errors(
        "<security>\n  self_hostname \"#{Socket.gethostname.upcase}\"\n  shared_key \"#{`cat /etc/key`}\"\n</security>\n",
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "test.conf:2: embedded code \"#{Socket.gethostname.upcase}\" is not evaluated"
        ),
        "{errs:?}"
    );
    assert!(errs[1].starts_with("test.conf:3: embedded code \"#{`cat /etc/key`}\""));
}

#[test]
fn crlf_line_endings_parse_like_lf() {
    let root = parse("<source>\r\n  port 1\r\n  flag\r\n  s \"q\"\r\n</source>\r\n");
    assert_eq!(
        values(&root.children[0]),
        [("port", "1"), ("flag", ""), ("s", "q")]
    );
}

#[test]
fn tag_without_blank_before_argument_and_quoted_arguments() {
    let root = parse("<match\"a b\">\n</match>\n<label    @X   >\n</label>\n");
    assert_eq!(root.children[0].arg, "a b");
    assert_eq!(root.children[1].arg, "@X");
}

#[test]
fn unterminated_section_is_reported_at_its_open_tag() {
    let errs = errors("<source>\n  port 1\n<match a>\n");
    assert_eq!(
        errs,
        [
            "test.conf:1: section <source> is not closed: expected </source> before the end of the file",
            "test.conf:3: section <match> is not closed: expected </match> before the end of the file",
        ]
    );
}

#[test]
fn mismatched_close_tag_is_reported_and_parsing_resyncs() {
    let errs = errors("<match a>\n  <buffer>\n  </bufer>\n</match>\n<source>\n</source>\n");
    assert_eq!(
        errs,
        ["test.conf:3: close tag </bufer> does not match <buffer> opened at line 2"]
    );
    let errs = errors("<match a>\n  <buffer>\n</match>\n<source>\n</source>\n");
    assert_eq!(
        errs,
        [
            "test.conf:2: section <buffer> is not closed: expected </buffer> before </match> at line 3"
        ]
    );
}

#[test]
fn close_tag_without_open_is_reported() {
    let errs = errors("</source>\n<system>\n</system>\n");
    assert_eq!(
        errs,
        ["test.conf:1: close tag </source> has no open section"]
    );
}

#[test]
fn unterminated_double_quote_is_reported_at_its_opening_line_and_parsing_resumes_after_it() {
    let errs = errors("<s>\n  a \"never closed\n  b 1\n</s>\n<t>\n</u>\n");
    assert_eq!(
        errs,
        [
            "test.conf:2: unterminated double-quoted string",
            "test.conf:6: close tag </u> does not match <t> opened at line 5",
        ]
    );
}

#[test]
fn unterminated_single_quote_is_reported_at_its_line() {
    let errs = errors("<s>\n  a 'open\n  b 'x'\n</s>\n</s>\n");
    assert_eq!(
        errs,
        [
            "test.conf:2: unterminated single-quoted string (single quotes must close on the same line)",
            "test.conf:5: close tag </s> has no open section",
        ]
    );
}

#[test]
fn unterminated_or_malformed_json_is_reported_and_parsing_resumes() {
    let errs = errors(
        "<s>\n  c [\"x\",\n  d 1\n  e {\"k\" 1}\n  f [a-z]+\n  g [\"y\",\n</s>\n<t>\n</u>\n",
    );
    assert_eq!(
        errs,
        [
            "test.conf:3: invalid JSON value for 'c': unexpected 'd 1' (quote the value if it is not JSON)",
            "test.conf:4: invalid JSON value for 'e': expected ':' after the key \"k\" (quote the value if it is not JSON)",
            "test.conf:5: invalid JSON value for 'f': unexpected 'a-z]+' (quote the value if it is not JSON)",
            "test.conf:7: invalid JSON value for 'g': unexpected '</s>' (quote the value if it is not JSON)",
            "test.conf:9: close tag </u> does not match <t> opened at line 8",
        ]
    );
}

#[test]
fn bad_escapes_and_trailing_text_are_reported() {
    let errs = errors("<s>\n  a \"C:\\path\"\n  b \"x\" y\n</s> z\n<t> extra\n</t>\n< >\n");
    assert_eq!(
        errs,
        [
            "test.conf:2: bad escape '\\p' in a double-quoted string (valid escapes: \\\" \\' \\\\ \\n \\t \\r \\f \\b, or a backslash before a symbol)",
            "test.conf:3: unexpected 'y' after the value of 'b'",
            "test.conf:4: unexpected 'z' after </s>",
            "test.conf:5: unexpected 'extra' after <t>",
            "test.conf:7: expected a section name after '<'",
        ]
    );
}

#[test]
fn many_errors_are_all_reported_in_file_order() {
    let mut text = String::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        let line = text.lines().count() + 2;
        text.push_str(&format!("<s{i}>\n  k{i} \"bad \\q\"\n</s{i}>\n"));
        expected.push(line);
    }
    text.push_str("<open>\n");
    let open_line = text.lines().count();
    let list = parse_str(&text, "many.conf").unwrap_err();
    let lines: Vec<u32> = list.iter().map(|e| e.span.as_ref().unwrap().line).collect();
    let mut want: Vec<u32> = expected.iter().map(|&l| l as u32).collect();
    want.push(open_line as u32);
    assert_eq!(lines, want);
    let unclosed = list.iter().last().unwrap();
    assert!(unclosed.message.contains("<open> is not closed"));
}

#[test]
fn sections_deeper_than_the_limit_are_reported_once_and_dropped() {
    let depth = ferry_config::MAX_DEPTH + 5;
    let mut text = String::new();
    for _ in 0..depth {
        text.push_str("<a>\n");
    }
    for _ in 0..depth {
        text.push_str("</a>\n");
    }
    let errs = errors(&text);
    assert_eq!(
        errs,
        [format!(
            "test.conf:{}: sections nested deeper than 32 levels",
            ferry_config::MAX_DEPTH + 1
        )]
    );
}

#[test]
fn error_count_is_capped() {
    let text = "</x>\n".repeat(ferry_config::MAX_ERRORS + 50);
    let list = parse_str(&text, "t.conf").unwrap_err();
    assert_eq!(list.len(), ferry_config::MAX_ERRORS + 1);
    assert!(
        list.iter()
            .last()
            .unwrap()
            .message
            .contains("too many errors")
    );
}

#[test]
fn include_can_be_disabled() {
    let opts = ParseOptions::new().without_includes();
    let err = parse_str_with("@include /etc/passwd\n", "t.conf", &opts).unwrap_err();
    assert_eq!(err.to_string(), "t.conf:1: @include is not allowed here");
}

#[test]
fn printing_a_parsed_tree_parses_back_to_the_same_tree() {
    let text = "<source>\n  @type forward\n  a \"x #y\"\n  b \"multi\nline\"\n  c [1, 2]\n  \
                d\n  \"k k\" ' v '\n  <security>\n    e \\#{x}\n  </security>\n</source>\n\
                <match \"a>b\">\n</match>\n";
    let root = parse(text);
    let again = parse(&root.to_string());
    assert!(root.same_content(&again), "{root}\n---\n{again}");
}
