use super::*;
use proptest::prelude::*;

fn yaml(text: &str) -> Result<Vec<Service>, FileError> {
    parse(
        Path::new("/etc/fluent/sd.yaml"),
        text.as_bytes(),
        Encoding::Utf8,
        FileFormat::Yaml,
    )
}

fn json(text: &str) -> Result<Vec<Service>, FileError> {
    parse(
        Path::new("/etc/fluent/sd.json"),
        text.as_bytes(),
        Encoding::Utf8,
        FileFormat::Json,
    )
}

#[test]
fn fluentds_example_yaml_gives_its_two_servers() {
    let got = yaml(
        "- 'host': 127.0.0.1\n  'port': 24224\n  'weight': 1\n  'name': server1\n\
         - 'host': 127.0.0.1\n  'port': 24225\n  'weight': 1\n  'name': server2\n",
    )
    .unwrap();
    assert_eq!(
        got,
        [
            Service {
                host: "127.0.0.1".into(),
                port: 24224,
                name: Some("server1".into()),
                weight: 1,
                standby: false,
                shared_key: None,
                username: String::new(),
                password: String::new(),
            },
            Service {
                host: "127.0.0.1".into(),
                port: 24225,
                name: Some("server2".into()),
                weight: 1,
                standby: false,
                shared_key: None,
                username: String::new(),
                password: String::new(),
            },
        ]
    );
}

#[test]
fn every_entry_key_is_read_and_weight_defaults_to_60() {
    let got = json(
        r#"[{"host": "agg.example", "port": "24230", "name": "a", "standby": true,
             "shared_key": "k", "username": "u", "password": "p"},
            {"host": "b", "port": 1, "weight": null}]"#,
    )
    .unwrap();
    assert_eq!(
        got[0],
        Service {
            host: "agg.example".into(),
            port: 24230,
            name: Some("a".into()),
            weight: 60,
            standby: true,
            shared_key: Some("k".into()),
            username: "u".into(),
            password: "p".into(),
        }
    );
    assert_eq!((got[1].weight, got[1].name.as_deref()), (60, None));
}

#[test]
fn errors_name_the_path_and_the_entry() {
    let cases: &[(&str, &str)] = &[
        (
            "- host: a\n",
            "sd_file: path=/etc/fluent/sd.yaml: entry 1: key not found: \"port\". Service must have `host` and `port`",
        ),
        ("- port: 1\n", "entry 1: key not found: \"host\""),
        (
            "- host: a\n  port: 1\n- host: b\n  port: 70000\n",
            "entry 2: port 70000 is out of range",
        ),
        (
            "- host: a\n  port: 1\n  wieght: 3\n",
            "entry 1: unknown key 'wieght' (did you mean 'weight'?)",
        ),
        (
            "- host: a\n  port: 1\n  standby: maybe\n",
            "entry 1: standby must be true or false",
        ),
        (
            "- host: a\n  port: 1\n  weight: 1.5\n",
            "entry 1: weight must be a number, not a float",
        ),
        (
            "- host: [a]\n  port: 1\n",
            "entry 1: host must be a string, not a list",
        ),
        (
            "host: a\nport: 1\n",
            "sd_file: path=/etc/fluent/sd.yaml: the file must hold a list of servers",
        ),
        ("", "the file must hold a list of servers"),
        (
            "- host: a\n  port: 1\n - x: [\n",
            "sd_file: path=/etc/fluent/sd.yaml: YAML: ",
        ),
        (
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]",
            "nested deeper than 32 levels",
        ),
    ];
    for (text, want) in cases {
        let e = yaml(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(e.starts_with("sd_file: path=/etc/fluent/sd.yaml"), "{e}");
    }
    let e = json("[{\"host\": \"a\", \"port\": 1},")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("sd_file: path=/etc/fluent/sd.json: JSON: "),
        "{e}"
    );
    let e = json("{\"host\": \"a\"}").unwrap_err().to_string();
    assert!(e.ends_with("the file must hold a list of servers"), "{e}");
}

#[test]
fn the_format_is_chosen_by_what_follows_the_first_dot_of_the_file_name() {
    for (path, want) in [
        ("/x/sd.yaml", FileFormat::Yaml),
        ("/x/sd.yml", FileFormat::Yaml),
        ("/x/sd.json", FileFormat::Json),
        ("/x/sd", FileFormat::Yaml),
        ("/x.json/sd", FileFormat::Yaml),
        // Fluentd splits at the first dot: "servers.sd.json" is "sd.json", read as YAML.
        ("/x/servers.sd.json", FileFormat::Yaml),
    ] {
        assert_eq!(FileFormat::of(Path::new(path)), want, "{path}");
    }
}

#[test]
fn conf_encoding_reads_the_text_in_that_encoding() {
    let latin1 = b"- host: a\n  port: 1\n  name: caf\xe9\n";
    let path = Path::new("/x/sd.yaml");
    let got = parse(path, latin1, Encoding::Latin1, FileFormat::Yaml).unwrap();
    assert_eq!(got[0].name.as_deref(), Some("café"));
    let e = parse(path, latin1, Encoding::Utf8, FileFormat::Yaml)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "sd_file: path=/x/sd.yaml: not utf-8 text (byte 31)");
    let e = parse(path, latin1, Encoding::Ascii, FileFormat::Yaml)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not us-ascii text"), "{e}");
    assert_eq!(Encoding::parse("UTF-8"), Some(Encoding::Utf8));
    assert_eq!(Encoding::parse("cp932"), None);
}

#[test]
fn a_missing_file_is_fluentds_not_found_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sd.yaml");
    let e = load(&path, Encoding::Utf8, FileFormat::Yaml).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("sd_file: path={} not found", path.display())
    );
    std::fs::write(&path, "- host: a\n  port: 9\n").unwrap();
    assert_eq!(
        load(&path, Encoding::Utf8, FileFormat::Yaml).unwrap().len(),
        1
    );
}

#[test]
fn the_section_reads_the_file_at_start_and_reports_a_bad_one_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("sd.json");
    std::fs::write(
        &good,
        r#"[{"host": "127.0.0.1", "port": 24230, "weight": 5}]"#,
    )
    .unwrap();
    let read = |path: &Path, extra: &str| {
        crate::plugin::read_section(
            &format!(
                "<match>\n<service_discovery>\n@type file\npath {}\n{extra}</service_discovery>\n</match>\n",
                path.display()
            ),
            crate::output::forward::ForwardConfig::from_section,
        )
    };
    let c = read(&good, "").unwrap();
    let super::super::SourceConfig::File(f) = &c.discovery[0] else {
        panic!("a file discovery");
    };
    assert_eq!(f.format, FileFormat::Json);
    assert_eq!(
        (f.initial[0].name.as_str(), f.initial[0].weight),
        ("127.0.0.1:24230", 5)
    );
    let errs = read(&dir.path().join("none.yaml"), "").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.starts_with("test.conf:4:") && e.contains("none.yaml not found")),
        "{errs:?}"
    );
    let errs = read(&good, "conf_encoding cp932\n").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("conf_encoding cp932 is not supported")),
        "{errs:?}"
    );
}

#[test]
fn conf_encoding_chooses_how_the_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sd.yaml");
    std::fs::write(
        &path,
        b"- host: 127.0.0.1\n  port: 24230\n  name: caf\xe9\n",
    )
    .unwrap();
    let read = |extra: &str| {
        crate::plugin::read_section(
            &format!(
                "<match>\n<service_discovery>\n@type file\npath {}\n{extra}</service_discovery>\n</match>\n",
                path.display()
            ),
            crate::output::forward::ForwardConfig::from_section,
        )
    };
    let c = read("conf_encoding iso-8859-1\n").unwrap();
    assert_eq!(c.discovery[0].initial()[0].name, "café");
    let errs = read("").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("sd.yaml: not utf-8 text (byte 43)")),
        "{errs:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_parser_never_panics_on_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        json_format in any::<bool>(),
        latin1 in any::<bool>(),
    ) {
        let format = if json_format { FileFormat::Json } else { FileFormat::Yaml };
        let encoding = if latin1 { Encoding::Latin1 } else { Encoding::Utf8 };
        let _ = parse(Path::new("/x/sd"), &bytes, encoding, format);
    }

    #[test]
    fn the_parser_never_panics_on_yaml_shaped_text(
        lines in proptest::collection::vec(
            proptest::sample::select(vec![
                "- host: a", "  port: 1", "  port: -1", "  port: 99999999999999999999",
                "  weight: 4294967296", "  standby: true", "  name: [", "- {host: b, port: 2}",
                "- &x {host: c}", "- *x", "  ? complex", "---", "...", "  password: ~",
                "[", "]", "{", "}", "- !!binary aGk=", "  host: 'q''uote'", "\t", "- - -",
            ]),
            0..24,
        ),
    ) {
        let text = lines.join("\n");
        let _ = yaml(&text);
        let _ = json(&text);
    }
}
