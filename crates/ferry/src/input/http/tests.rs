use super::serve::{origin_matches, tag_of};
use super::*;
use ferry_config::Section;

fn config(body: &str) -> Result<HttpInputConfig, String> {
    let text = format!("<source>\n@type http\n{body}\n</source>\n");
    let root = ferry_config::parse_str(&text, "http.conf").unwrap();
    let errors = ferry_config::Errors::new();
    let c = {
        let s = Section::new(&root.children[0], &errors);
        let _ = s.plugin_type();
        let c = HttpInputConfig::from_section(&s);
        s.finish();
        c
    };
    errors.into_result(c).map_err(|e| e.to_string())
}

#[test]
fn fluentds_defaults_and_parameters() {
    let c = config("").unwrap();
    assert_eq!((c.port, c.bind.as_str()), (9880, "0.0.0.0"));
    assert_eq!(c.body_size_limit, 32 * 1024 * 1024);
    assert_eq!(c.keepalive_timeout, Duration::from_secs(10));
    assert!(
        matches!(&c.parse, BodyParse::Default(t) if t.key.as_deref() == Some("time") && !t.keep)
    );
    let c = config("port 0\nbody_size_limit 1k\nadd_http_headers true\nadd_remote_addr true\nadd_query_params true\ncors_allow_origins [\"http://a.example\"]\ncors_allow_credentials true\nuse_204_response true\n<parse>\n@type in_http\ntime_key ts\nkeep_time_key true\n</parse>").unwrap();
    assert_eq!(c.body_size_limit, 1024);
    assert!(c.add_http_headers && c.add_remote_addr && c.add_query_params && c.use_204_response);
    assert_eq!(
        c.cors_allow_origins,
        Some(vec!["http://a.example".to_string()])
    );
    assert!(matches!(&c.parse, BodyParse::Default(t) if t.key.as_deref() == Some("ts") && t.keep));
    let c = config("<parse>\n@type none\n</parse>").unwrap();
    assert!(matches!(c.parse, BodyParse::Parser(_)));
}

#[test]
fn bad_settings_are_refused_naming_the_parameter() {
    let e = config("cors_allow_credentials true").unwrap_err();
    assert!(e.contains("cors_allow_credentials"), "{e}");
    let e = config("cors_allow_origins [\"*\"]\ncors_allow_credentials true").unwrap_err();
    assert!(e.contains("without specific origins"), "{e}");
    let e = config("body_size_limit 0").unwrap_err();
    assert!(e.contains("body_size_limit"), "{e}");
    let e = config("bogus 1").unwrap_err();
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn the_path_is_the_tag() {
    assert_eq!(tag_of("/app.access"), "app.access");
    assert_eq!(tag_of("/app/access"), "app.access");
    assert_eq!(tag_of("/"), "");
}

#[test]
fn cors_origins_match_exactly_by_wildcard_or_by_subdomain_pattern() {
    assert!(origin_matches("*", "http://a.example"));
    assert!(origin_matches("http://a.example", "http://a.example"));
    assert!(origin_matches(
        "https://*.example.com",
        "https://app.example.com"
    ));
    assert!(!origin_matches(
        "https://*.example.com",
        "https://example.com"
    ));
    assert!(!origin_matches(
        "https://*.example.com",
        "http://app.example.com"
    ));
    assert!(!origin_matches(
        "https://*.example.com",
        "https://evil.com/x.example.com"
    ));
}
