use super::*;
use ferry_config::Section;

fn config(body: &str) -> Result<ScribeInputConfig, String> {
    let text = format!("<source>\n@type scribe\n{body}\n</source>\n");
    let root = ferry_config::parse_str(&text, "scribe.conf").unwrap();
    let errors = ferry_config::Errors::new();
    let c = {
        let s = Section::new(&root.children[0], &errors);
        let _ = s.plugin_type();
        let c = ScribeInputConfig::from_section(&s);
        s.finish();
        c
    };
    errors.into_result(c).map_err(|e| e.to_string())
}

#[test]
fn fluent_plugin_scribes_defaults() {
    let c = config("").unwrap();
    assert_eq!((c.port, c.bind.as_str()), (1463, "0.0.0.0"));
    assert_eq!(c.transport, Transport::Framed);
    assert_eq!(c.body_size_limit, 32 * 1024 * 1024);
    assert!(matches!(c.msg_format, MsgFormat::Text));
    assert_eq!(c.msg_key, "message");
    assert!(!c.remove_newline && !c.ignore_invalid_record && c.add_prefix.is_none());
    let c = config("server_type thread_pool\nis_framed false\nmsg_format url_param").unwrap();
    assert_eq!(c.transport, Transport::Unframed);
    assert!(matches!(c.msg_format, MsgFormat::UrlParam));
}

#[test]
fn bad_settings_are_refused_naming_the_parameter() {
    for (body, needle) in [
        ("msg_format xml", "msg_format"),
        ("server_type forking", "server_type"),
        ("add_prefix \"\"", "add_prefix"),
        ("body_size_limit 0", "body_size_limit"),
        ("msg_format json\n<parse>\n@type none\n</parse>", "keep one"),
    ] {
        let e = config(body).unwrap_err();
        assert!(e.contains(needle), "{body}: {e}");
    }
}
