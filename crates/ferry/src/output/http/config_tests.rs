use super::*;
use crate::plugin::read_section;

fn read(body: &str) -> Result<HttpOutputConfig, Vec<String>> {
    let root = RootDir::resolve(None, None);
    read_section(&format!("<match **>\n{body}\n</match>\n"), |s| {
        HttpOutputConfig::from_section(s, "out", &root, false).map(|(c, _)| c)
    })
    .map(|c| c.expect("a configuration"))
}

fn errors(body: &str) -> String {
    match read(body) {
        Ok(_) => panic!("accepted: {body}"),
        Err(e) => e.join("\n"),
    }
}

#[test]
fn fluentds_defaults() {
    let c = read("endpoint http://127.0.0.1:9880/app").unwrap();
    assert_eq!(c.method, Method::POST);
    assert_eq!(c.content_type, "application/x-ndjson");
    assert!(!c.json_array);
    assert_eq!(c.compress, Compress::Text);
    assert_eq!(c.retryable_response_codes, vec![503]);
    assert_eq!(c.on_error_response, OnErrorResponse::SetAside);
    assert_eq!(
        (c.open_timeout, c.read_timeout),
        (DEFAULT_TIMEOUT, DEFAULT_TIMEOUT)
    );
    assert!(c.headers.is_empty() && c.authorization.is_none() && c.tls.is_none());
    assert_eq!(c.connections, 1);
}

#[test]
fn every_parameter_is_read_into_the_http_config() {
    let c = read(
        "endpoint http://h:1/${tag}\nhttp_method put\njson_array true\ncompress gzip\n\
         content_type application/json; charset=utf-8\n\
         headers {\"X-A\":\"1\",\"x-b\":\"two\"}\nheaders_from_placeholders {\"X-Tag\":\"${tag}\"}\n\
         open_timeout 3\nread_timeout 4s\nretryable_response_codes [429, 503]\n\
         error_response_as_unrecoverable false\n\
         <auth>\nmethod basic\nusername user\npassword pass\n</auth>\n<buffer tag>\n</buffer>",
    )
    .unwrap();
    assert_eq!(c.method, Method::PUT);
    assert!(c.json_array);
    assert_eq!(c.compress, Compress::Gzip);
    assert_eq!(c.content_type, "application/json; charset=utf-8");
    assert_eq!(
        c.headers,
        vec![
            (
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1")
            ),
            (
                HeaderName::from_static("x-b"),
                HeaderValue::from_static("two")
            ),
        ]
    );
    assert_eq!(c.headers_from_placeholders.len(), 1);
    assert_eq!(c.open_timeout, Duration::from_secs(3));
    assert_eq!(c.read_timeout, Duration::from_secs(4));
    assert_eq!(c.retryable_response_codes, vec![429, 503]);
    assert_eq!(c.on_error_response, OnErrorResponse::Drop);
    // base64("user:pass")
    assert_eq!(c.authorization.unwrap(), "Basic dXNlcjpwYXNz");
    let c = read("endpoint http://h/\n<auth>\n</auth>").unwrap();
    assert_eq!(c.authorization.unwrap(), "Basic Og==", "Fluentd's nil:nil");
}

#[test]
fn content_type_follows_the_format_as_in_fluentd() {
    for (format, json_array, want) in [
        ("json", true, "application/json"),
        ("json", false, "application/x-ndjson"),
        ("msgpack", false, "application/x-msgpack"),
        ("ltsv", false, "text/tab-separated-values"),
        ("single_value", false, "text/plain"),
        ("out_file", false, "text/plain"),
    ] {
        let c = read(&format!(
            "endpoint http://h/\njson_array {json_array}\n<format>\n@type {format}\n</format>\n<buffer tag>\n</buffer>"
        ))
        .unwrap();
        assert_eq!(c.content_type, want, "{format}");
    }
    let c = read("endpoint http://h/\n<format>\n@type csv\nfields a\n</format>").unwrap();
    assert_eq!(c.content_type, "text/csv");
}

#[test]
fn what_ferry_cannot_do_is_refused_at_its_line() {
    let e = errors("endpoint http://h/\nproxy http://proxy:3128");
    assert!(e.contains("does not go through a proxy"), "{e}");
    let e = errors("endpoint http://h/\njson_array true\n<format>\n@type msgpack\n</format>");
    assert!(
        e.contains("json_array could be used with the json format only"),
        "{e}"
    );
    let e = errors("endpoint https://h/\ntls_private_key_passphrase x");
    assert!(
        e.contains("encrypted private keys are not supported"),
        "{e}"
    );
    let e = errors("endpoint https://h/\ntls_version TLSv1_1");
    assert!(e.contains("TLS 1.1 is refused"), "{e}");
    let e = errors("endpoint http://h/\ntls_verify_mode none");
    assert!(e.contains("the endpoint is not https"), "{e}");
    let e = errors("endpoint https://h/\ntls_ciphers AES128-SHA");
    assert!(
        e.contains("selects none of the TLS 1.2 cipher suites"),
        "{e}"
    );
    let e = errors("endpoint http://h/\n<auth>\nmethod aws_sigv4\n</auth>");
    assert!(e.contains("aws_sigv4"), "{e}");
    let e = errors("endpoint http://h/\nretryable_response_codes 503,x");
    assert!(e.contains("'x' is not an HTTP status code"), "{e}");
    let e = errors("endpoint http://h/\nheaders {\"bad header\":\"v\"}");
    assert!(e.contains("'bad header' is not a header name"), "{e}");
    let e = errors("endpoint ftp://h/");
    assert!(e.contains("is not an http or https URL"), "{e}");
    let e = errors("endpoint https://h/\ntls_ca_cert_path /nonexistent/ca.pem");
    assert!(e.contains("tls_ca_cert_path /nonexistent/ca.pem"), "{e}");
    let e = errors("endpoint http://h/\nread_timeout 0");
    assert!(e.contains("read_timeout must be positive"), "{e}");
}

#[test]
fn placeholders_need_their_chunk_keys() {
    let e = errors("endpoint http://h/${tag}");
    assert!(e.contains("'tag' is not a chunk key"), "{e}");
    let e = errors(
        "endpoint http://h/\nheaders_from_placeholders {\"X\":\"${host}\"}\n<buffer tag>\n</buffer>",
    );
    assert!(e.contains("'host' is not a chunk key"), "{e}");
    assert!(read("endpoint http://h/${tag[0]}/${host}\n<buffer tag, host>\n</buffer>").is_ok());
    let c = read("endpoint http://h/?q=%20\n<inject>\ntag_key t\n</inject>").unwrap();
    assert!(c.endpoint.needs().tag || c.format.inject.tag_key.is_some());
}

#[test]
fn a_host_from_placeholders_needs_allowed_hosts() {
    let e = errors("endpoint http://${tag}:8080/\n<buffer tag>\n</buffer>");
    assert!(e.contains("allowed_hosts"), "{e}");
    let c =
        read("endpoint http://${tag}:8080/\nallowed_hosts a,b\n<buffer tag>\n</buffer>").unwrap();
    assert!(c.dynamic_host);
    assert_eq!(c.allowed_hosts, vec!["a".to_string(), "b".to_string()]);
    assert!(
        !read("endpoint http://h:1/${tag}\n<buffer tag>\n</buffer>")
            .unwrap()
            .dynamic_host
    );
}
