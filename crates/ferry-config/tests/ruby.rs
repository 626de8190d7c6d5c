//! `"#{...}"`: Fluentd's embedded-Ruby idioms through the public parse API, each with its
//! variables set, unset and set to the empty string; the expressions that are refused; and
//! property tests (no panic, nothing read but the lookup, `||` chains as Ruby evaluates them).

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use ferry_config::{
    ByteSize, ConfigError, Element, Errors, Lookup, ParseOptions, Section, Unset, fuzzing,
    parse_file_with, parse_str_with,
};
use proptest::prelude::*;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ruby")
        .join(rel)
}

/// How the variables a fixture names are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Env {
    /// Each variable holds its name in lower case (`PORT` holds `24230`).
    Set,
    Unset,
    Empty,
}

const ALL: [Env; 3] = [Env::Set, Env::Unset, Env::Empty];

/// A fixed lookup: the variables as `env` says (`NEVER_*` are never set), host `node-7`,
/// directory `/srv/ferry`, pid 4242.
fn options(env: Env) -> ParseOptions {
    ParseOptions::new().with_lookup(move |q| match q {
        Lookup::Env(name) if name.starts_with("NEVER_") => None,
        Lookup::Env(name) => match env {
            Env::Set if name == "PORT" => Some("24230".to_string()),
            Env::Set => Some(name.to_lowercase()),
            Env::Unset => None,
            Env::Empty => Some(String::new()),
        },
        Lookup::Hostname => Some("node-7".to_string()),
        Lookup::Pwd => Some("/srv/ferry".to_string()),
        Lookup::Pid => Some("4242".to_string()),
    })
}

/// A lookup holding exactly `vars` and the same host facts as [`options`].
fn with_vars(vars: &[(&str, &str)]) -> ParseOptions {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ParseOptions::new().with_lookup(move |q| match q {
        Lookup::Env(name) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
        Lookup::Hostname => Some("node-7".to_string()),
        Lookup::Pwd => Some("/srv/ferry".to_string()),
        Lookup::Pid => Some("4242".to_string()),
    })
}

fn load(rel: &str, opts: &ParseOptions) -> Element {
    match parse_file_with(&fixture(rel), opts) {
        Ok(root) => root,
        Err(e) => panic!("{rel} did not parse:\n{e}"),
    }
}

/// What a parameter holds: a value, or no value ([`Unset`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Text(&'static str),
    Unset(Unset),
}

use Want::Text;

impl Want {
    fn as_result(&self) -> Result<String, Unset> {
        match self {
            Want::Text(t) => Ok(t.to_string()),
            Want::Unset(u) => Err(*u),
        }
    }
}

/// The value of `key`, or how it is unset.
fn held(e: &Element, key: &str) -> Result<String, Unset> {
    let p = e
        .param(key)
        .unwrap_or_else(|| panic!("{key} is not written"));
    match p.unset {
        Some(u) => {
            assert_eq!(p.value, "", "{key}");
            Err(u)
        }
        None => Ok(p.value.clone()),
    }
}

#[test]
fn every_idiom_gives_rubys_value_with_its_variables_set_unset_and_empty() {
    let default = Want::Unset(Unset::Default);
    let nil = Want::Unset(Unset::Nil);
    // key, then the value with the variables set, unset, set to "".
    let table: &[(&str, [Want; 3])] = &[
        ("either", [Text("a"), Text(""), Text("")]),
        ("second", [Text("b"), Text(""), Text("")]),
        ("plain", [Text("a"), Text(""), Text("")]),
        ("double_quoted_name", [Text("a"), Text(""), Text("")]),
        ("spaced", [Text("a"), Text("x"), Text("")]),
        ("or_literal", [Text("a"), Text("fallback"), Text("")]),
        ("or_default", [Text("x"), default.clone(), Text("")]),
        ("or_nil", [Text("x"), nil, Text("")]),
        ("fetch_default", [Text("x"), Text("default"), Text("")]),
        ("fetch_chain", [Text("x"), Text("b-default"), Text("")]),
        (
            "pos_file",
            [
                Text("/var/log/dir/x.pos"),
                Text("/var/log/x.pos"),
                Text("/var/log/x.pos"),
            ],
        ),
        ("or_true", [Text("v"), Text("true"), Text("")]),
        ("or_false", [Text("v"), Text("false"), Text("")]),
        ("or_nil_literal", [Text("v"), Text(""), Text("")]),
        ("or_number", [Text("24230"), Text("24224"), Text("")]),
        ("or_float", [Text("rate"), Text("0.5"), Text("")]),
        ("host", [Text("node-7"), Text("node-7"), Text("node-7")]),
        ("host_var", [Text("node-7"), Text("node-7"), Text("node-7")]),
        (
            "pwd",
            [Text("/srv/ferry"), Text("/srv/ferry"), Text("/srv/ferry")],
        ),
        ("pid", [Text("4242"), Text("4242"), Text("4242")]),
        ("worker", [Text("0"), Text("0"), Text("0")]),
        (
            "path",
            [
                Text("host-node-7-pod.log"),
                Text("host-node-7-x.log"),
                Text("host-node-7-.log"),
            ],
        ),
        (
            "nested",
            [Text("b-suffix"), Text("none-suffix"), Text("-suffix")],
        ),
        (
            "escapes",
            [
                Text("tab\there:it's"),
                Text("tab\there:it's"),
                Text("tab\there:it's"),
            ],
        ),
        ("multi_line", [Text("a"), Text("fallback"), Text("")]),
        ("after_multi_line", [Text("b"), Text(""), Text("")]),
        ("port", [Text("24230"), default, Text("")]),
    ];
    for (i, env) in ALL.into_iter().enumerate() {
        let root = load("idioms.conf", &options(env));
        let source = &root.children[0];
        let keys: Vec<&str> = source.params.iter().map(|p| p.key.as_str()).collect();
        let listed: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, listed, "the table covers the fixture");
        for (key, wants) in table {
            let want = wants[i].as_result();
            assert_eq!(held(source, key), want, "{key} with variables {env:?}");
        }
        // The code spanning two lines keeps the lines after it right.
        let line = |key: &str| source.param(key).map(|p| p.span.line);
        assert_eq!(
            (line("multi_line"), line("after_multi_line")),
            (Some(27), Some(29))
        );
    }
}

#[test]
fn an_unset_parameter_is_absent_to_every_reader_but_still_a_written_key() {
    let root = load("idioms.conf", &options(Env::Unset));
    let errors = Errors::new();
    let s = Section::new(&root.children[0], &errors);
    assert_eq!(s.u64_or("port", 24224), 24224);
    assert!(!s.has("or_default"));
    assert_eq!(s.str_or("or_nil", "dflt"), "dflt");
    assert_eq!(s.opt_bool("or_nil"), None);
    assert!(s.params().all(|p| p.unset.is_none()));
    assert_eq!(root.children[0].value("port"), None);
    assert_eq!(s.required_str("or_default"), None);
    s.finish();
    let err = errors.into_result(()).unwrap_err();
    let messages: Vec<String> = err.iter().map(|e| e.message.clone()).collect();
    assert_eq!(
        messages,
        ["missing required parameter 'or_default' in <source>: use_default gives it no value"]
    );
    assert_eq!(err.0[0].span.as_ref().map(|s| s.line), Some(9));

    // With the variable set, the same reader reads the value.
    let root = load("idioms.conf", &options(Env::Set));
    let errors = Errors::new();
    let s = Section::new(&root.children[0], &errors);
    assert_eq!(s.u64_or("port", 24224), 24230);
}

#[test]
fn a_misspelt_or_repeated_unset_parameter_is_still_reported() {
    let text = "<source>\n  prot \"#{ENV['PORT'] || use_default}\"\n  \
                tag a\n  tag \"#{use_nil}\"\n</source>\n";
    let root = parse_str_with(text, "t.conf", &options(Env::Unset)).unwrap();
    let errors = Errors::new();
    let s = Section::new(&root.children[0], &errors);
    let _ = s.u64_or("port", 1);
    assert_eq!(s.str("tag"), None, "the later line wins, as in Fluentd");
    s.finish();
    let err = errors.into_result(()).unwrap_err().to_string();
    assert!(
        err.contains("t.conf:2: unknown parameter 'prot' in <source>; did you mean 'port'?"),
        "{err}"
    );
    assert!(
        err.contains("t.conf:4: parameter 'tag' is written twice"),
        "{err}"
    );
}

#[test]
fn unset_prints_back_as_the_code_that_makes_it() {
    let root = load("idioms.conf", &options(Env::Unset));
    let printed = root.to_string();
    assert!(
        printed.contains("  or_default \"#{use_default}\"\n"),
        "{printed}"
    );
    assert!(printed.contains("  or_nil \"#{use_nil}\"\n"), "{printed}");
    let again = parse_str_with(&printed, "printed.conf", &options(Env::Set)).unwrap();
    assert!(root.same_content(&again));
}

#[test]
fn a_kubernetes_collector_config_reads_with_and_without_its_variables() {
    let read = |opts: &ParseOptions| {
        let root = load("daemonset.conf", opts);
        let errors = Errors::new();
        let tail = Section::new(&root.children[0], &errors);
        let out = Section::new(&root.children[1], &errors);
        let server = out.child("server").expect("<server>");
        let security = out.child("security").expect("<security>");
        let buffer = out.child("buffer").expect("<buffer>");
        let parse = tail.child("parse").expect("<parse>");
        let values = (
            tail.str("pos_file"),
            tail.array("exclude_path"),
            parse.plugin_type().map(str::to_string),
            server.u64_or("port", 24224),
            security.str("self_hostname"),
            security.str("shared_key"),
            buffer.str("path"),
            buffer.duration_or("flush_interval", Duration::from_secs(60)),
            buffer.size_or("chunk_limit_size", ByteSize::mib(8)),
            buffer.bool_or("retry_forever", false),
        );
        assert!(errors.is_empty());
        values
    };
    let unset = read(&with_vars(&[]));
    assert_eq!(
        unset,
        (
            Some("/var/log/fluentd-containers.log.pos".to_string()),
            None,
            Some("json".to_string()),
            24224,
            Some("node-7".to_string()),
            Some("changeme".to_string()),
            Some("/var/log/fluentd-buffers/forward.buffer".to_string()),
            Duration::from_secs(5),
            ByteSize::mib(2),
            true,
        )
    );
    let set = read(&with_vars(&[
        ("FLUENT_POS_EXTRA_DIR", "extra"),
        (
            "FLUENT_CONTAINER_TAIL_EXCLUDE_PATH",
            r#"["/var/log/containers/skip-*.log"]"#,
        ),
        ("FLUENT_CONTAINER_TAIL_PARSER_TYPE", "cri"),
        ("FLUENT_FORWARD_PORT", "24225"),
        ("FLUENT_HOSTNAME", "collector-1"),
        ("FLUENT_SHARED_KEY", "s3cret"),
        ("FLUENT_BUFFER_NAME", "k8s"),
        ("FLUENT_FORWARD_FLUSH_INTERVAL", "1s"),
        ("FLUENT_FORWARD_CHUNK_LIMIT_SIZE", "4M"),
        ("FLUENT_FORWARD_RETRY_FOREVER", "false"),
    ]));
    assert_eq!(
        set,
        (
            Some("/var/log/extra/fluentd-containers.log.pos".to_string()),
            Some(vec!["/var/log/containers/skip-*.log".to_string()]),
            Some("cri".to_string()),
            24225,
            Some("collector-1".to_string()),
            Some("s3cret".to_string()),
            Some("/var/log/fluentd-buffers/k8s.buffer".to_string()),
            Duration::from_secs(1),
            ByteSize::mib(4),
            false,
        )
    );
    // Set to the empty string: still set, as in Ruby.
    let empty = read(&with_vars(&[
        ("FLUENT_POS_EXTRA_DIR", ""),
        ("FLUENT_SHARED_KEY", ""),
        ("FLUENT_HOSTNAME", ""),
    ]));
    assert_eq!(
        empty.0.as_deref(),
        Some("/var/log/fluentd-containers.log.pos")
    );
    assert_eq!(
        (empty.4.as_deref(), empty.5.as_deref()),
        (Some(""), Some(""))
    );
}

#[test]
fn what_ruby_would_raise_is_an_error_at_its_line() {
    let errs = |opts: &ParseOptions| -> Vec<(u32, String)> {
        match parse_file_with(&fixture("fetch.conf"), opts) {
            Ok(root) => panic!("expected errors, parsed:\n{root}"),
            Err(e) => e
                .into_iter()
                .map(|ConfigError { span, message }| {
                    let span = span.expect("a line");
                    assert!(span.file.ends_with("fixtures/ruby/fetch.conf"));
                    (span.line, message)
                })
                .collect(),
        }
    };
    assert_eq!(
        errs(&options(Env::Unset)),
        [
            (
                4,
                "embedded code \"#{ENV.fetch('FLUENT_SHARED_KEY')}\" failed: environment \
                 variable FLUENT_SHARED_KEY is not set (ENV.fetch without a default)"
                    .to_string()
            ),
            (
                5,
                "embedded code \"#{File.join('/run', ENV['POD_NAME'])}\" failed: argument 2 \
                 of File.join is nil, not a string"
                    .to_string()
            ),
        ]
    );
    let security = |env: Env| {
        let root = load("fetch.conf", &options(env));
        let s = root.children[0]
            .child("security")
            .cloned()
            .expect("<security>");
        (
            s.value("shared_key").map(str::to_string),
            s.value("self_hostname").map(str::to_string),
        )
    };
    assert_eq!(
        security(Env::Set),
        (
            Some("fluent_shared_key".to_string()),
            Some("/run/pod_name".to_string())
        )
    );
    assert_eq!(
        security(Env::Empty),
        (Some(String::new()), Some("/run/".to_string()))
    );
}

/// Code outside the grammar, each refused at its own line with the whole code quoted.
const REFUSED: &[&str] = &[
    "Socket.gethostname.upcase",
    "`hostname`",
    "%x(hostname)",
    "system('id')",
    "eval('1')",
    "require 'socket'",
    "IO.read('/etc/passwd')",
    "File.read('/etc/passwd')",
    "Dir.glob('*')",
    "Process.kill(9, 1)",
    "Kernel.exec('sh')",
    "open('|ls')",
    "Time.now",
    "exit",
    "__FILE__",
    "$0",
    "@x",
    "\"#{$0}\"",
    "\"#@x\"",
    "ENV['A'].upcase",
    "ENV['A'].to_s",
    "ENV.keys",
    "ENV.to_h",
    "ENV[ENV['A']]",
    "ENV['A' + 'B']",
    "ENV.fetch('A') { 'd' }",
    "ENV.fetch('A') do 'd' end",
    "ENV.fetch('A', 'b', 'c')",
    "x = 1",
    "ENV['A'] ||= 'b'",
    "ENV['A']; ENV['B']",
    "[1, 2].each { |x| x }",
    "'a'.then { 1 }",
    "ENV['A'] && 'b'",
    "ENV['A'] ? 'a' : 'b'",
    "1 + 1",
    "File.join('a', 'b').upcase",
    "010",
    "\"\\xff\"",
    "ENV['A'] # comment",
];

#[test]
fn refused_code_is_an_error_at_its_line_quoting_the_code() {
    let mut text = String::from("<source>\n");
    for (i, code) in REFUSED.iter().enumerate() {
        text.push_str(&format!("  k{i} \"#{{{code}}}\"\n"));
    }
    text.push_str("</source>\n");
    let asked = Rc::new(RefCell::new(Vec::new()));
    let record = asked.clone();
    let opts = ParseOptions::new().with_lookup(move |q| {
        record.borrow_mut().push(format!("{q:?}"));
        Some("1".to_string())
    });
    let errs: Vec<String> = match parse_str_with(&text, "refused.conf", &opts) {
        Ok(root) => panic!("expected errors, parsed:\n{root}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(errs.len(), REFUSED.len(), "{errs:#?}");
    for ((i, code), err) in REFUSED.iter().enumerate().zip(&errs) {
        let head = format!(
            "refused.conf:{}: embedded code \"#{{{code}}}\" is not evaluated: ",
            i + 2
        );
        assert!(err.starts_with(&head), "{code}:\n{err}");
        assert!(err.contains("; ferry evaluates only: 'string'"), "{err}");
    }
    assert_eq!(*asked.borrow(), Vec::<String>::new(), "nothing was read");
}

/// Fragments of code, glued at random: mostly outside the grammar, sometimes inside it.
fn code_soup() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("ENV['A']".to_string()),
        Just("ENV[\"B\"]".to_string()),
        Just("ENV.fetch('C'".to_string()),
        Just("ENV.fetch(\"D\", ".to_string()),
        Just("ENV[".to_string()),
        Just("ENV".to_string()),
        "[A-Z_]{1,3}".prop_map(|n| format!("ENV['{n}']")),
        Just(" || ".to_string()),
        Just("||".to_string()),
        Just(", ".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("#{".to_string()),
        Just("}".to_string()),
        Just("{".to_string()),
        Just("\\".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("'x'".to_string()),
        Just("\"y#{ENV['E']}\"".to_string()),
        Just("File.join(".to_string()),
        Just("Socket.gethostname".to_string()),
        Just("hostname".to_string()),
        Just("Dir.pwd".to_string()),
        Just("Process.pid".to_string()),
        Just("use_default".to_string()),
        Just("use_nil".to_string()),
        Just("nil".to_string()),
        Just("true".to_string()),
        Just("-1.5e3".to_string()),
        Just("42".to_string()),
        Just(".upcase".to_string()),
        Just("`".to_string()),
        Just(";".to_string()),
        Just("system".to_string()),
        "[ -~]{0,4}",
    ];
    proptest::collection::vec(fragment, 0..12).prop_map(|parts| parts.concat())
}

fn value_line(code: &str) -> String {
    format!("<source>\n  k \"#{{{code}}}\"\n</source>\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_code_never_panics(code in prop_oneof![any::<String>(), code_soup()]) {
        fuzzing::parse(value_line(&code).as_bytes());
        fuzzing::embedded(code.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_in_a_quoted_value_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        let mut text = b"<source>\n  k \"".to_vec();
        text.extend_from_slice(&bytes);
        text.extend_from_slice(b"\"\n</source>\n");
        fuzzing::parse(&text);
        fuzzing::embedded(&bytes);
    }

    /// Evaluation asks the lookup only for variables named by a literal in the code and for
    /// the host name, directory and process id (each at most once); refused code asks nothing.
    #[test]
    fn only_the_lookup_is_read(code in prop_oneof![code_soup(), any::<String>()]) {
        let asked = Rc::new(RefCell::new(Vec::new()));
        let record = asked.clone();
        let opts = ParseOptions::new().with_lookup(move |q| {
            let answer = match q {
                Lookup::Env(name) if name.len() % 2 == 0 => None,
                Lookup::Env(name) => Some(format!("v-{name}")),
                Lookup::Hostname => Some("node".to_string()),
                Lookup::Pwd => Some("/".to_string()),
                Lookup::Pid => Some("1".to_string()),
            };
            record.borrow_mut().push(match q {
                Lookup::Env(name) => Some(name.to_string()),
                _ => None,
            });
            answer
        });
        let text = value_line(&code);
        let result = parse_str_with(&text, "p.conf", &opts);
        let asked = asked.borrow();
        let facts = asked.iter().filter(|a| a.is_none()).count();
        prop_assert!(facts <= 3, "host facts asked more than once each: {facts}");
        for name in asked.iter().flatten() {
            let literal = code.contains(&format!("'{name}'")) || code.contains(&format!("\"{name}\""));
            prop_assert!(literal, "asked for {name}, not written in {code:?}");
        }
        let refused = match &result {
            Err(e) => e.iter().any(|e| e.message.contains("is not evaluated")),
            Ok(_) => false,
        };
        if refused && !code.contains("#{") {
            prop_assert!(asked.is_empty(), "refused code read {asked:?}");
        }
    }

    /// A generated `||` chain evaluates as a small model of Ruby says.
    #[test]
    fn or_chains_follow_rubys_semantics(
        chain in proptest::collection::vec(operand(), 1..6),
        vars in proptest::collection::vec(prop_oneof![Just(None), Just(Some(String::new())), "[a-z ]{1,4}".prop_map(Some)], 4),
        gaps in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("\t"), Just("\n    ")], 12),
        affixes in ("[a-z.-]{0,3}", "[a-z.-]{0,3}"),
    ) {
        let mut code = String::new();
        for (i, op) in chain.iter().enumerate() {
            if i > 0 {
                let before = gaps[(2 * i) % gaps.len()].trim_start_matches('\n');
                code.push_str(&format!("{before}||{}", gaps[(2 * i + 1) % gaps.len()]));
            }
            code.push_str(&op.ruby());
        }
        let text = format!("<s>\n  k \"{}#{{{code}}}{}\"\n</s>\n", affixes.0, affixes.1);
        let env = vars.clone();
        let opts = ParseOptions::new().with_lookup(move |q| match q {
            Lookup::Env(name) => name
                .strip_prefix('E')
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| env.get(i).cloned().flatten()),
            _ => None,
        });
        let root = match parse_str_with(&text, "chain.conf", &opts) {
            Ok(root) => root,
            Err(e) => return Err(TestCaseError::fail(format!("{code}: {e}"))),
        };
        let p = root.children[0].param("k").expect("k");
        match model(&chain, &vars) {
            Ok(text) => {
                prop_assert_eq!(p.unset, None, "{}", code);
                prop_assert_eq!(&p.value, &format!("{}{text}{}", affixes.0, affixes.1), "{}", code);
            }
            Err(unset) => prop_assert_eq!(p.unset, Some(unset), "{}", code),
        }
    }
}

/// An operand of a generated chain.
#[derive(Debug, Clone)]
enum Operand {
    /// `ENV['E<i>']`, in single or double quotes.
    Env(usize, bool),
    /// `ENV.fetch('E<i>', default)`.
    Fetch(usize, Box<Operand>),
    /// A string literal, in single or double quotes.
    Str(String, bool),
    Nil,
    Bool(bool),
    Int(i64),
    Unset(Unset),
}

fn leaf() -> impl Strategy<Value = Operand> {
    prop_oneof![
        (0..4usize, any::<bool>()).prop_map(|(i, dq)| Operand::Env(i, dq)),
        ("[a-z '\"\\\\#{}]{0,6}", any::<bool>()).prop_map(|(s, dq)| Operand::Str(s, dq)),
        Just(Operand::Nil),
        any::<bool>().prop_map(Operand::Bool),
        any::<i64>().prop_map(Operand::Int),
        Just(Operand::Unset(Unset::Default)),
        Just(Operand::Unset(Unset::Nil)),
    ]
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        4 => leaf(),
        1 => (0..4usize, leaf()).prop_map(|(i, d)| Operand::Fetch(i, Box::new(d))),
    ]
}

impl Operand {
    fn ruby(&self) -> String {
        match self {
            Operand::Env(i, false) => format!("ENV['E{i}']"),
            Operand::Env(i, true) => format!("ENV[\"E{i}\"]"),
            Operand::Fetch(i, d) => format!("ENV.fetch('E{i}', {})", d.ruby()),
            Operand::Str(s, false) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            Operand::Str(s, true) => {
                let escaped = s
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('#', "\\#");
                format!("\"{escaped}\"")
            }
            Operand::Nil => "nil".to_string(),
            Operand::Bool(b) => b.to_string(),
            Operand::Int(n) => n.to_string(),
            Operand::Unset(u) => u.name().to_string(),
        }
    }
}

/// Ruby's values, as far as the chains need them.
#[derive(Debug, Clone)]
enum Value {
    Nil,
    Bool(bool),
    Text(String),
}

fn value_of(op: &Operand, vars: &[Option<String>]) -> Result<Value, Unset> {
    Ok(match op {
        Operand::Env(i, _) => vars[*i].clone().map_or(Value::Nil, Value::Text),
        Operand::Fetch(i, d) => {
            let default = value_of(d, vars)?;
            vars[*i].clone().map_or(default, Value::Text)
        }
        Operand::Str(s, _) => Value::Text(s.clone()),
        Operand::Nil => Value::Nil,
        Operand::Bool(b) => Value::Bool(*b),
        Operand::Int(n) => Value::Text(n.to_string()),
        Operand::Unset(u) => return Err(*u),
    })
}

/// The first operand that is neither nil nor false, else the last; `to_s` of it.
fn model(chain: &[Operand], vars: &[Option<String>]) -> Result<String, Unset> {
    let mut last = Value::Nil;
    for op in chain {
        last = value_of(op, vars)?;
        if !matches!(last, Value::Nil | Value::Bool(false)) {
            break;
        }
    }
    Ok(match last {
        Value::Nil => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Text(s) => s,
    })
}
