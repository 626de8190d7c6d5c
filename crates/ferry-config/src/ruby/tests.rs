use super::*;

fn lookup(q: Lookup<'_>) -> Option<String> {
    match q {
        Lookup::Env("SET") => Some("v".to_string()),
        Lookup::Env("EMPTY") => Some(String::new()),
        Lookup::Env(_) => None,
        Lookup::Hostname => Some("node-1".to_string()),
        Lookup::Pwd => Some("/srv".to_string()),
        Lookup::Pid => Some("4242".to_string()),
    }
}

/// Evaluates `code}` and returns the outcome and the bytes used.
fn run(code: &str) -> (usize, Result<Interpolated, RubyError>) {
    interpolate(code.as_bytes(), &Inputs::new(&lookup))
}

fn text(code: &str) -> String {
    match run(code).1 {
        Ok(Interpolated::Text(t)) => t,
        other => panic!("{code}: {other:?}"),
    }
}

fn refusal(code: &str) -> Refusal {
    match run(code).1 {
        Err(RubyError {
            problem: Problem::Refused(r),
            ..
        }) => r,
        other => panic!("{code}: {other:?}"),
    }
}

#[test]
fn values_interpolate_as_ruby_to_s() {
    let cases = [
        ("}", ""),
        (" nil }", ""),
        ("true}", "true"),
        ("false}", "false"),
        ("42}", "42"),
        ("-7}", "-7"),
        ("-0}", "0"),
        ("1_000}", "1000"),
        ("1.50}", "1.5"),
        ("1e3}", "1000.0"),
        ("-2.5E-5}", "-2.5e-05"),
        ("'it\\'s \\n'}", "it's \\n"),
        (
            "\"a\\tb\\s\\x41\\101\\u00e9\\u{1F600 41}\\q\"}",
            "a\tb AA\u{e9}\u{1F600}Aq",
        ),
        ("\"x#{ENV['SET']}y#{}z\"}", "xvyz"),
        ("\"#{\"#{'deep'}\"}\"}", "deep"),
        ("Process.pid}", "4242"),
        ("Dir.pwd()}", "/srv"),
        ("Socket.gethostname}", "node-1"),
        ("hostname}", "node-1"),
        ("worker_id}", "0"),
        ("File.join}", ""),
        ("(ENV['NOPE'] || 'b')}", "b"),
    ];
    for (code, want) in cases {
        assert_eq!(text(code), want, "{code}");
    }
}

#[test]
fn or_follows_ruby_truth() {
    assert_eq!(text("ENV['EMPTY'] || 'b'}"), "");
    assert_eq!(text("ENV['NOPE'] || ENV['SET']}"), "v");
    assert_eq!(text("false || nil}"), "");
    assert_eq!(text("nil || false}"), "false");
    assert_eq!(text("ENV['NOPE'] ||\n  'b'}"), "b");
    assert_eq!(text("ENV['NOPE'] || 0 || 'x'}"), "0");
}

#[test]
fn use_default_and_use_nil_stop_where_evaluation_reaches_them() {
    let unset = |code: &str| run(code).1;
    assert_eq!(
        unset("ENV['NOPE'] || use_default}"),
        Ok(Interpolated::Unset(Unset::Default))
    );
    assert_eq!(
        unset("ENV['SET'] || use_nil()}"),
        Ok(Interpolated::Text("v".into()))
    );
    // Arguments are evaluated before the call, as in Ruby.
    assert_eq!(
        unset("ENV.fetch('SET', use_nil)}"),
        Ok(Interpolated::Unset(Unset::Nil))
    );
    assert_eq!(
        unset("File.join('a', use_default)}"),
        Ok(Interpolated::Unset(Unset::Default))
    );
}

#[test]
fn the_span_covers_the_code_and_its_brace() {
    assert_eq!(run("ENV['SET']} rest").0, 11);
    assert_eq!(run("'}' || 1} rest").0, 9);
    // Refused code: through the matching brace, quotes respected, or to the line end.
    assert_eq!(run("x.each { |y| '}' } } rest").0, 20);
    assert_eq!(run("system('x'\nnext").0, 10);
}

#[test]
fn refused_code_is_quoted_whole_and_cut_when_long() {
    let (_, err) = run("ENV['SET'].upcase} rest");
    let err = err.unwrap_err();
    assert_eq!(err.code, "ENV['SET'].upcase");
    let long = format!("{}.x}}", "a".repeat(200));
    let err = run(&long).1.unwrap_err();
    assert_eq!(err.code.chars().count(), 123);
    assert!(err.code.ends_with("..."));
    let err = run("ENV['A'] ||\n bad}").1.unwrap_err();
    assert_eq!(err.code, "ENV['A'] ||");
}

#[test]
fn refusals_say_why() {
    let cases: &[(&str, Refusal)] = &[
        ("system('ls')}", Refusal::Name("system".into())),
        ("`ls`}", Refusal::Backtick),
        ("%x(ls)}", Refusal::Percent),
        ("ENV.keys}", Refusal::method("ENV", "keys")),
        ("File.read('/etc/passwd')}", Refusal::method("File", "read")),
        ("ENV['A'].upcase}", Refusal::ValueMethod(".upcase".into())),
        ("'abc'[0]}", Refusal::ValueMethod("[]".into())),
        ("ENV&.x}", Refusal::Receiver("ENV")),
        ("ENV ['A']}", Refusal::Receiver("ENV")),
        ("ENV.fetch('A') { 'd' }}", Refusal::FetchBlock),
        ("ENV.fetch('A') do 'd' end}", Refusal::FetchBlock),
        ("ENV.fetch('A', 'b', 'c')}", Refusal::FetchArity(3)),
        ("ENV[name]}", Refusal::EnvName("'name'".into())),
        ("ENV['A B']}", Refusal::EnvName("' '".into())),
        ("ENV[\"A#{1}\"]}", Refusal::EnvName("'#'".into())),
        ("\"#@x\"}", Refusal::VariableInterpolation),
        ("010}", Refusal::Number("010".into())),
        ("0x1f}", Refusal::Number("0x1f".into())),
        ("3r}", Refusal::Number("3r".into())),
        (
            "\"\\xff\"}",
            Refusal::Escape("\\xnn beyond ASCII (write the character itself or \\u)".into()),
        ),
        ("\"\\C-a\"}", Refusal::Escape("\\C".into())),
    ];
    for (code, want) in cases {
        assert_eq!(refusal(code), *want, "{code}");
    }
    for code in [
        "a = 1}",
        "ENV['A']; 1}",
        "ENV['A'] ||= 'b'}",
        "ENV['A'] && 'b'}",
        "ENV['A'] or 'b'}",
        "'a' 'b'}",
        "ENV.fetch ('A')}",
        "File.join 'a'}",
        "'unclosed}",
        "(1}",
    ] {
        assert!(
            matches!(refusal(code), Refusal::Expected { .. } | Refusal::Name(_)),
            "{code}: {:?}",
            refusal(code)
        );
    }
}

#[test]
fn nesting_and_length_are_bounded() {
    let deep = format!("{}1{}}}", "(".repeat(40), ")".repeat(40));
    assert_eq!(refusal(&deep), Refusal::TooDeep);
    let long = format!("'{}'}}", "a".repeat(MAX_CODE_BYTES));
    assert!(
        matches!(refusal(&long), Refusal::Expected { ref found, .. } if found.starts_with("more than"))
    );
}

#[test]
fn failures_name_what_ruby_would_raise() {
    let problem = |code: &str| run(code).1.unwrap_err().problem;
    assert_eq!(
        problem("ENV.fetch('NOPE')}"),
        Problem::FetchUnset("NOPE".into())
    );
    assert_eq!(
        problem("ENV.fetch('SET', ENV.fetch('NOPE'))}"),
        Problem::FetchUnset("NOPE".into())
    );
    assert_eq!(
        problem("File.join('/a', ENV['NOPE'])}"),
        Problem::JoinArgument {
            index: 2,
            found: "nil"
        }
    );
    assert_eq!(
        problem("File.join(1)}"),
        Problem::JoinArgument {
            index: 1,
            found: "an Integer"
        }
    );
}

#[test]
fn host_facts_are_asked_once_per_parse() {
    let asked = std::rc::Rc::new(std::cell::Cell::new(0));
    let count = asked.clone();
    let counting = move |q: Lookup<'_>| {
        count.set(count.get() + 1);
        lookup(q)
    };
    let inputs = Inputs::new(&counting);
    for _ in 0..3 {
        let (_, r) = interpolate(b"Socket.gethostname || hostname}", &inputs);
        assert_eq!(r, Ok(Interpolated::Text("node-1".into())));
    }
    assert_eq!(asked.get(), 1);
}
