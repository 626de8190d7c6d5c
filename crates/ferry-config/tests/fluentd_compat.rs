//! Realistic Fluentd forwarder and aggregator configurations parse into the expected trees and
//! read cleanly through `Section`.

use std::path::PathBuf;
use std::time::Duration;

use ferry_config::{ByteSize, Element, Errors, ParseOptions, Section, directives, parse_file_with};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn load(rel: &str) -> Element {
    // HOSTNAME is set; FLUENT_SHARED_KEY is not.
    let opts =
        ParseOptions::new().with_env(|name| (name == "HOSTNAME").then(|| "fwd-7".to_string()));
    match parse_file_with(&fixture(rel), &opts) {
        Ok(root) => root,
        Err(e) => panic!("{rel} did not parse:\n{e}"),
    }
}

fn outline(e: &Element) -> Vec<String> {
    e.children
        .iter()
        .map(|c| {
            format!(
                "<{} {}> @type={}",
                c.name,
                c.arg,
                c.value("@type").unwrap_or("-")
            )
        })
        .collect()
}

#[test]
fn forwarder_config_parses_into_the_expected_tree() {
    let root = load("forwarder/fluent.conf");
    assert_eq!(
        outline(&root),
        [
            "<system > @type=-",
            "<source > @type=tail",
            "<filter app.**> @type=record_transformer",
            "<match app.** system.**> @type=forward",
            "<source > @type=syslog",
            "<source > @type=monitor_agent",
        ]
    );
    let tail = &root.children[1];
    assert_eq!(
        tail.value("path"),
        Some("/var/log/app/*.log,/var/log/app/*.json")
    );
    assert_eq!(
        tail.value("exclude_path"),
        Some(r#"["/var/log/app/debug.log","/var/log/app/trace.log"]"#)
    );
    assert_eq!(tail.param("pos_file").map(|p| p.span.line), Some(12));
    let parse = tail.child("parse").unwrap();
    assert_eq!(parse.value("time_format"), Some("%Y-%m-%dT%H:%M:%S.%NZ"));

    let record = root.children[2].child("record").unwrap();
    let pairs: Vec<(&str, &str)> = record
        .params
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("hostname", "fwd-7"),
            ("tag", "${tag}"),
            ("service", "${tag_parts[1]}"),
            ("env", "production"),
        ]
    );

    let out = &root.children[3];
    let security = out.child("security").unwrap();
    assert_eq!(security.value("self_hostname"), Some("fwd-7"));
    assert_eq!(security.value("shared_key"), Some("changeme"));
    let servers: Vec<(&str, &str, Option<&str>)> = out
        .children_named("server")
        .map(|s| {
            (
                s.value("name").unwrap(),
                s.value("host").unwrap(),
                s.value("standby"),
            )
        })
        .collect();
    assert_eq!(
        servers,
        [
            ("agg1", "aggregator-0.logging.svc.cluster.local", None),
            ("agg2", "aggregator-1.logging.svc.cluster.local", None),
            ("backup", "10.0.9.9", Some("")),
        ]
    );
    let buffer = out.child("buffer").unwrap();
    assert_eq!(
        (buffer.arg.as_str(), buffer.value("@type")),
        ("tag", Some("file"))
    );
    assert_eq!(
        out.child("secondary").unwrap().value("basename"),
        Some("dump.${chunk_id}")
    );

    let syslog = &root.children[4];
    assert!(syslog.span.file.ends_with("conf.d/10-syslog.conf"));
    assert_eq!(
        syslog.child("transport").map(|t| t.arg.as_str()),
        Some("udp")
    );
    assert!(
        root.children[5]
            .span
            .file
            .ends_with("conf.d/20-monitor.conf")
    );
}

/// Reads the forward output the way the daemon does; every key is known, so no error.
fn read_forward_output(m: &Section<'_>) {
    assert_eq!(m.plugin_type(), Some("forward"));
    assert_eq!(m.id(), Some("out_forward_aggregators"));
    assert_eq!(
        m.duration_or("send_timeout", Duration::from_secs(60)),
        Duration::from_secs(60)
    );
    assert_eq!(
        m.duration_or("recover_wait", Duration::ZERO),
        Duration::from_secs(10)
    );
    assert_eq!(
        m.duration_or("hard_timeout", Duration::ZERO),
        Duration::from_secs(60)
    );
    let hb = m.enum_or(
        "heartbeat_type",
        &["transport", "tcp", "udp", "none"],
        "transport",
    );
    assert_eq!(hb, "transport");
    assert_eq!(
        m.duration_or("heartbeat_interval", Duration::ZERO),
        Duration::from_secs(1)
    );
    assert_eq!(m.f64_or("phi_threshold", 0.0), 16.0);
    assert!(m.bool_or("require_ack_response", false));
    assert_eq!(
        m.opt_duration("ack_response_timeout"),
        Some(Duration::from_secs(190))
    );
    assert_eq!(
        m.opt_duration("expire_dns_cache"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        m.enum_or("compress", &["text", "gzip", "zstd"], "text"),
        "gzip"
    );
    assert!(m.bool_or("keepalive", false));
    let security = m.child("security").expect("<security>");
    assert!(security.required_str("self_hostname").is_some());
    assert!(security.required_str("shared_key").is_some());
    security.finish();
    for s in m.children("server") {
        let _ = s.str("name");
        assert!(s.required_str("host").is_some());
        assert_eq!(s.u64_or("port", 24224), 24224);
        let _ = s.u64_or("weight", 60);
        let _ = s.bool_or("standby", false);
        s.finish();
    }
    let b = m.child("buffer").expect("<buffer>");
    assert_eq!(b.plugin_type(), Some("file"));
    let _ = b.str("path");
    assert_eq!(
        b.size_or("chunk_limit_size", ByteSize::mib(256)),
        ByteSize::mib(8)
    );
    assert_eq!(
        b.size_or("total_limit_size", ByteSize::gib(64)),
        ByteSize::gib(4)
    );
    assert_eq!(
        b.enum_or(
            "flush_mode",
            &["default", "lazy", "interval", "immediate"],
            "default"
        ),
        "interval"
    );
    assert_eq!(
        b.duration_or("flush_interval", Duration::from_secs(60)),
        Duration::from_secs(5)
    );
    assert_eq!(b.u64_or("flush_thread_count", 1), 2);
    let actions = ["throw_exception", "block", "drop_oldest_chunk"];
    assert_eq!(
        b.enum_or("overflow_action", &actions, "throw_exception"),
        "block"
    );
    let retry_types = ["exponential_backoff", "periodic"];
    assert_eq!(
        b.enum_or("retry_type", &retry_types, "exponential_backoff"),
        "exponential_backoff"
    );
    assert_eq!(
        b.duration_or("retry_wait", Duration::ZERO),
        Duration::from_secs(1)
    );
    assert_eq!(
        b.opt_duration("retry_max_interval"),
        Some(Duration::from_secs(60))
    );
    assert!(b.bool_or("retry_forever", false));
    b.finish();
    let secondary = m.child("secondary").expect("<secondary>");
    assert_eq!(secondary.plugin_type(), Some("secondary_file"));
    let _ = (secondary.str("directory"), secondary.str("basename"));
    secondary.finish();
}

#[test]
fn forwarder_config_reads_without_errors() {
    let root = load("forwarder/fluent.conf");
    let errors = Errors::new();
    let d = directives(&root, &errors);
    assert_eq!(
        (
            d.sources.len(),
            d.filters.len(),
            d.matches.len(),
            d.labels.len()
        ),
        (3, 1, 1, 0)
    );
    let system = d.system.unwrap();
    assert_eq!(
        system.enum_or(
            "log_level",
            &["trace", "debug", "info", "warn", "error"],
            "info"
        ),
        "info"
    );
    system.finish();
    let tail = &d.sources[0];
    assert_eq!(
        tail.array("exclude_path"),
        Some(vec![
            "/var/log/app/debug.log".to_string(),
            "/var/log/app/trace.log".to_string()
        ])
    );
    assert_eq!(
        tail.array("path"),
        Some(vec![
            "/var/log/app/*.log".to_string(),
            "/var/log/app/*.json".to_string()
        ])
    );
    for m in d.matches {
        read_forward_output(&m);
        m.finish();
    }
    let result = errors.into_result(());
    assert!(result.is_ok(), "{}", result.unwrap_err());
}

#[test]
fn aggregator_config_parses_into_the_expected_tree() {
    let root = load("aggregator/fluent.conf");
    assert_eq!(
        outline(&root),
        [
            "<system > @type=-",
            "<source > @type=forward",
            "<filter app.**> @type=grep",
            "<match app.**> @type=copy",
            "<label @ERROR> @type=-",
            "<label @FLUENT_LOG> @type=-",
            "<source > @type=prometheus",
            "<source > @type=prometheus_output_monitor",
        ]
    );
    let forward = &root.children[1];
    assert_eq!(
        forward.child("transport").map(|t| t.arg.as_str()),
        Some("tls")
    );
    let security = forward.child("security").unwrap();
    assert_eq!(
        security.value("shared_key"),
        Some(""),
        "unset variable interpolates as empty"
    );
    let users: Vec<(&str, &str)> = security
        .children_named("user")
        .map(|u| (u.value("username").unwrap(), u.value("password").unwrap()))
        .collect();
    assert_eq!(users, [("forwarder", "p@ss\"word#1"), ("ops", "o's #2")]);
    let clients: Vec<&Element> = security.children_named("client").collect();
    assert_eq!(clients.len(), 2);
    assert_eq!(clients[0].value("users"), Some(r#"["forwarder","ops"]"#));
    assert_eq!(clients[1].value("host"), Some("forwarder-0.example.com"));

    let grep = &root.children[2];
    assert_eq!(
        grep.child("regexp").unwrap().value("pattern"),
        Some("/^(warn|error|fatal)$/")
    );
    assert_eq!(
        grep.child("exclude").unwrap().value("pattern"),
        Some("/healthcheck/")
    );

    let stores: Vec<&Element> = root.children[3].children_named("store").collect();
    assert_eq!(stores.len(), 2);
    assert_eq!(
        stores[0].value("path"),
        Some("/data/archive/${tag}/%Y/%m/%d/app")
    );
    let archive_buffer = stores[0].child("buffer").unwrap();
    assert_eq!(archive_buffer.arg, "tag,time");
    assert_eq!(archive_buffer.value("timekey"), Some("1h"));
    assert_eq!(
        stores[1].child("format").unwrap().value("@type"),
        Some("json")
    );

    let error_label = &root.children[4];
    assert_eq!(error_label.children[0].arg, "**");
    assert_eq!(
        error_label.children[0].value("path"),
        Some("/var/log/fluentd/error")
    );
    let metrics = &root.children[7];
    assert!(metrics.span.file.ends_with("conf.d/metrics.conf"));
    assert_eq!(metrics.span.line, 7);
    assert_eq!(
        metrics.child("labels").unwrap().value("hostname"),
        Some("${hostname}")
    );
}

#[test]
fn aggregator_config_reads_without_errors() {
    let root = load("aggregator/fluent.conf");
    let errors = Errors::new();
    let d = directives(&root, &errors);
    assert_eq!(
        (d.sources.len(), d.filters.len(), d.matches.len()),
        (3, 1, 1)
    );
    let labels: Vec<(&str, usize)> = d
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.matches.len()))
        .collect();
    assert_eq!(labels, [("@ERROR", 1), ("@FLUENT_LOG", 1)]);
    let forward = &d.sources[0];
    let security = forward.child("security").unwrap();
    assert!(security.bool_or("user_auth", false));
    assert!(!security.bool_or("allow_anonymous_source", true));
    let clients = security.children("client");
    assert_eq!(
        clients[0].array("users"),
        Some(vec!["forwarder".to_string(), "ops".to_string()])
    );
    assert_eq!(
        forward.size_or("chunk_size_limit", ByteSize(0)),
        ByteSize::mib(64)
    );
    let copy = &d.matches[0];
    let kafka = &copy.children("store")[1];
    assert_eq!(
        kafka.array("brokers"),
        Some(vec!["kafka-0:9092".to_string(), "kafka-1:9092".to_string()])
    );
    let archive = &copy.children("store")[0];
    let buffer = archive.child("buffer").unwrap();
    assert_eq!(
        buffer.duration_or("timekey", Duration::ZERO),
        Duration::from_secs(3600)
    );
    assert_eq!(
        buffer.duration_or("timekey_wait", Duration::ZERO),
        Duration::from_secs(600)
    );
    assert_eq!(
        buffer.size_or("chunk_limit_size", ByteSize(0)),
        ByteSize::mib(256)
    );
    drop(d);
    assert!(errors.is_empty());
}
