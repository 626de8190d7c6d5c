//! Operating a running ferry: metrics scraped by a real Prometheus, the monitor API, the state
//! dump, signals, `ferry status`, and the packaging manifests.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{AckedSender, Ferry, free_port, seqs_of, signal};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

fn http_get(port: u16, path: &str) -> (u16, String) {
    ferry::http::client::get(&format!("127.0.0.1:{port}"), path).unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn ops_config(port: u16, admin: u16, buffer: &Path, flush: &str) -> String {
    format!(
        "<system>\n  dump_dir {dir}/dumps\n</system>\n\
         <source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <source>\n  @type prometheus_output_monitor\n  interval 5\n</source>\n\
         <match **>\n  @type stdout\n  @id archive\n  <format>\n    @type json\n  </format>\n  <buffer tag>\n    @type file\n    path {dir}/buf\n    flush_interval {flush}\n  </buffer>\n</match>\n",
        dir = buffer.display()
    )
}

#[test]
fn metrics_and_monitor_api_show_the_buffer_with_fluentd_names() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(&ops_config(port, admin, dir.path(), "1h"), port);
    let mut sender = AckedSender::connect(port).unwrap();
    sender.send("ops.metrics", 0..500, 100).unwrap();
    let (status, text) = http_get(admin, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "fluentd_output_status_buffer_total_bytes",
        "fluentd_output_status_buffer_stage_byte_size",
        "fluentd_output_status_buffer_queue_byte_size",
        "fluentd_output_status_buffer_available_space_ratio",
        "fluentd_output_status_retry_count",
        "fluentd_output_status_num_errors",
        "fluentd_output_status_emit_count",
        "fluentd_output_status_emit_records",
        "fluentd_output_status_write_count",
        "fluentd_output_status_rollback_count",
        "fluentd_output_status_slow_flush_count",
        "fluentd_output_status_flush_time_count",
        "ferry_router_unmatched_records_total",
        "ferry_tasks",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing from /metrics:\n{text}"
        );
    }
    assert!(
        text.contains(
            "fluentd_output_status_emit_records{plugin_id=\"archive\",type=\"stdout\"} 500"
        ),
        "{text}"
    );
    let staged = text
        .lines()
        .find(|l| {
            l.starts_with("fluentd_output_status_buffer_stage_byte_size{plugin_id=\"archive\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(
        staged > 50_000.0,
        "500 events of ~120 bytes are staged, got {staged}"
    );

    let (status, plugins) = http_get(admin, "/api/plugins.json");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&plugins).unwrap();
    let out = doc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin_id"] == "archive")
        .unwrap();
    assert_eq!(out["plugin_category"], "output");
    assert_eq!(out["output_plugin"], true);
    assert_eq!(out["emit_records"], 500);
    assert_eq!(out["buffer_stage_length"], 1);
    assert_eq!(http_get(admin, "/api/health").0, 200);
    assert_eq!(http_get(admin, "/nope").0, 404);
    drop(ferry);
}

#[test]
fn a_real_prometheus_scrapes_ferry_under_load_and_answers_queries() {
    let Some(prometheus) = common::program("FERRY_TEST_PROMETHEUS", "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (port, admin, prom_port) = (free_port(), free_port(), free_port());
    let ferry = Ferry::start(&ops_config(port, admin, dir.path(), "1s"), port);
    let prom_dir = dir.path().join("prom");
    std::fs::create_dir_all(&prom_dir).unwrap();
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ferry\n    static_configs:\n      - targets: ['127.0.0.1:{admin}']\n"
        ),
    )
    .unwrap();
    let child = Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            prom_dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            prom_dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _prom = common::KillOnDrop(child);
    // Load while Prometheus scrapes.
    let loader = thread::spawn(move || {
        let mut sender = AckedSender::connect(port).unwrap();
        for i in 0..200u64 {
            sender
                .send("ops.load", i * 100..(i + 1) * 100, 200)
                .unwrap();
            thread::sleep(Duration::from_millis(20));
        }
    });
    let query =
        "/api/v1/query?query=fluentd_output_status_emit_records%7Bplugin_id%3D%22archive%22%7D";
    let mut last = String::new();
    wait_for(
        "Prometheus to hold ferry's emit_records",
        Duration::from_secs(60),
        || {
            if let Ok((200, body)) =
                ferry::http::client::get(&format!("127.0.0.1:{prom_port}"), query)
            {
                last = body;
                let v: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .is_some_and(|n| n > 0.0)
            } else {
                false
            }
        },
    );
    loader.join().unwrap();
    for metric in [
        "fluentd_output_status_buffer_total_bytes",
        "fluentd_output_status_buffer_available_space_ratio",
    ] {
        let (status, body) = ferry::http::client::get(
            &format!("127.0.0.1:{prom_port}"),
            &format!("/api/v1/query?query={metric}"),
        )
        .unwrap();
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["data"]["result"][0]["metric"]["plugin_id"], "archive",
            "{metric}: {body}"
        );
    }
    drop(ferry);
}

#[test]
fn sighup_with_a_broken_file_keeps_running_and_a_good_one_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(&ops_config(port, admin, dir.path(), "1s"), port);
    let conf = ferry.config_path();
    std::fs::write(
        &conf,
        "<source>\n  @type forward\n  prot 1\n</source>\n<matc **>\n</matc>\n",
    )
    .unwrap();
    signal(ferry.child.id(), "HUP");
    let mut log = Vec::new();
    wait_for("the reload to be refused", Duration::from_secs(10), || {
        log.extend(ferry.stderr_so_far());
        log.iter()
            .any(|l| l.contains("config reload refused (2 errors)"))
    });
    assert!(
        log.iter()
            .any(|l| l.contains("ferry.conf:3: unknown parameter 'prot'")),
        "{log:#?}"
    );
    // Still serving.
    AckedSender::connect(port)
        .unwrap()
        .send("ops.after", 0..10, 10)
        .unwrap();
    wait_for(
        "events after the refused reload",
        Duration::from_secs(10),
        || ferry.stdout.try_iter().count() > 0,
    );
    // A good file with another buffer directory is taken.
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(&conf, ops_config(port, admin, dir2.path(), "1s")).unwrap();
    signal(ferry.child.id(), "HUP");
    assert_reloaded_into(&ferry, port, dir2.path(), &mut log);
}

/// Waits for "configuration reloaded", then checks that the reloaded input takes events and
/// the new configuration's buffer directory (under `dir`) is used.
fn assert_reloaded_into(ferry: &Ferry, port: u16, dir: &std::path::Path, log: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.iter().any(|l| l.contains("configuration reloaded")) {
        assert!(Instant::now() < deadline, "no reload within 20 s: {log:#?}");
        thread::sleep(Duration::from_millis(100));
        log.extend(ferry.stderr_so_far());
    }
    wait_for(
        "the reloaded input to listen",
        Duration::from_secs(10),
        || ferry_bench::ferryproc::listening(port),
    );
    AckedSender::connect(port)
        .unwrap()
        .send("ops.reloaded", 100..110, 10)
        .unwrap();
    wait_for(
        "the new buffer directory to be used",
        Duration::from_secs(10),
        || dir.join("buf").exists(),
    );
}

#[test]
fn sigusr2_reloads_as_sighup_does_and_ferry_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let mut ferry = Ferry::start(&ops_config(port, admin, dir.path(), "1s"), port);
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(
        ferry.config_path(),
        ops_config(port, admin, dir2.path(), "1s"),
    )
    .unwrap();
    signal(ferry.child.id(), "USR2");
    let mut log = Vec::new();
    assert_reloaded_into(&ferry, port, dir2.path(), &mut log);
    assert!(
        log.iter()
            .any(|l| l.contains("received SIGUSR2, reloading configuration")),
        "{log:#?}"
    );
    assert!(ferry.child.try_wait().unwrap().is_none(), "ferry stopped");
}

#[test]
fn sigterm_loses_nothing_that_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let conf = ops_config(port, admin, dir.path(), "1h");
    let mut ferry = Ferry::start(&conf, port);
    let mut sender = AckedSender::connect(port).unwrap();
    for i in 0..20u64 {
        sender.send("ops.term", i * 100..(i + 1) * 100, 50).unwrap();
    }
    signal(ferry.child.id(), "TERM");
    let status = ferry.child.wait().unwrap();
    assert!(status.success(), "ferry exits cleanly on SIGTERM: {status}");
    let mut delivered = seqs_of(&ferry.stdout.try_iter().collect::<Vec<_>>());
    // The file buffer kept what was not flushed; the next start delivers it.
    let ferry = Ferry::start(
        &conf.replace("flush_interval 1h", "flush_interval 1s"),
        port,
    );
    wait_for("every acknowledged event", Duration::from_secs(30), || {
        delivered.extend(seqs_of(&ferry.stdout.try_iter().collect::<Vec<_>>()));
        delivered.iter().copied().collect::<BTreeSet<_>>().len() == 2000
    });
}

#[test]
fn sigusr1_flushes_staged_chunks_now() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(&ops_config(port, admin, dir.path(), "1h"), port);
    AckedSender::connect(port)
        .unwrap()
        .send("ops.usr1", 0..100, 10)
        .unwrap();
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        ferry.stdout.try_iter().count(),
        0,
        "nothing flushes before its interval"
    );
    signal(ferry.child.id(), "USR1");
    let lines = ferry.stdout_lines(100, Duration::from_secs(10));
    assert_eq!(seqs_of(&lines).len(), 100);
}

#[test]
fn sigcont_writes_a_dump_that_names_every_running_task() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(&ops_config(port, admin, dir.path(), "1h"), port);
    let _idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    thread::sleep(Duration::from_millis(300));
    signal(ferry.child.id(), "CONT");
    let file = dir
        .path()
        .join("dumps")
        .join(format!("ferry-dump-{}.json", ferry.child.id()));
    wait_for("the dump file", Duration::from_secs(10), || file.exists());
    let dump: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let tasks = dump["tasks"].as_array().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for expected in [
        "accept",
        "heartbeat udp",
        "conn 127.0.0.1:",
        "output archive flusher 0",
    ] {
        assert!(
            names.iter().any(|n| n.contains(expected)),
            "no task like '{expected}' in {names:#?}"
        );
    }
    for t in tasks {
        assert!(t["state"].as_str().is_some_and(|s| !s.is_empty()), "{t}");
        assert!(t["since"].as_str().is_some_and(|s| s.contains('T')), "{t}");
    }
    // The same dump over HTTP.
    let (status, body) = http_get(admin, "/api/dump");
    assert_eq!(status, 200);
    let over_http: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(over_http["pid"], ferry.child.id());
}

#[test]
fn ferry_status_shows_buffer_flow_of_a_running_ferry() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let conf = ops_config(port, admin, dir.path(), "1h")
        .replace("@type prometheus\n", "@type monitor_agent\n");
    let ferry = Ferry::start(&conf, port);
    AckedSender::connect(port)
        .unwrap()
        .send("ops.status", 0..1000, 100)
        .unwrap();
    let text = common::ferry_status(admin, "0.5");
    assert!(
        text.contains("archive") && text.contains("stdout"),
        "{text}"
    );
    assert!(
        text.contains("KiB"),
        "the staged events are shown as held: {text}"
    );
    drop(ferry);
}

#[test]
fn packaging_manifests_parse_with_the_expected_kinds() {
    let root = common::workspace_root().join("deploy");
    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let docs = |p: &str| -> Vec<serde_yaml::Value> {
        serde_yaml::Deserializer::from_str(&read(p))
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect()
    };
    let forwarder = docs("kubernetes/forwarder-daemonset.yaml");
    let kinds: Vec<&str> = forwarder
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"DaemonSet") && kinds.contains(&"ConfigMap"),
        "{kinds:?}"
    );
    let ds = forwarder.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let pod = &ds["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    let container = &pod["spec"]["containers"][0];
    assert!(container["image"].as_str().unwrap().contains("ferry"));
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"], true,
        "the node agent writes only to its hostPath"
    );
    let volumes = pod["spec"]["volumes"].as_sequence().unwrap();
    let state = volumes.iter().find(|v| v["name"] == "state").unwrap();
    assert_eq!(state["hostPath"]["path"], "/var/lib/ferry");
    let conf = forwarder.iter().find(|d| d["kind"] == "ConfigMap").unwrap()["data"]["ferry.conf"]
        .as_str()
        .unwrap()
        .to_string();
    for needed in [
        "pos_file /var/lib/ferry/",
        "path /var/lib/ferry/buffer",
        "@type cri",
        "@type concat",
        "@type kubernetes_metadata",
    ] {
        assert!(
            conf.contains(needed),
            "the forwarder's configuration has {needed}"
        );
    }

    let aggregator = docs("kubernetes/aggregator-statefulset.yaml");
    let sts = aggregator
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("a StatefulSet");
    assert!(aggregator.iter().any(|d| d["kind"] == "Service"));
    let claims = sts["spec"]["volumeClaimTemplates"].as_sequence().unwrap();
    assert_eq!(
        claims[0]["metadata"]["name"], "buffer",
        "the buffer lives on a persistent volume"
    );
    let mounts = sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        .as_sequence()
        .unwrap();
    assert!(mounts.iter().any(|m| m["name"] == "buffer"));

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("grafana/ferry-buffers.json")).unwrap();
    let exprs: String = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.contains("fluentd_output_status_buffer_total_bytes"));
    assert!(read("systemd/ferry.service").contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(read("docker/Dockerfile").contains("FROM scratch"));
    // The configurations shipped in the manifests are valid ferry configurations.
    for (file, key) in [
        ("kubernetes/forwarder-daemonset.yaml", "ferry.conf"),
        ("kubernetes/aggregator-statefulset.yaml", "ferry.conf"),
    ] {
        let cm = docs(file)
            .into_iter()
            .find(|d| d["kind"] == "ConfigMap")
            .unwrap();
        let conf = cm["data"][key].as_str().unwrap().to_string();
        let (ok, _, stderr) = common::dry_run(&conf);
        assert!(ok, "{file}: {stderr}");
    }
}

/// The value of the first sample of `/metrics` text whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_two_tier_setup_shows_tail_forward_servers_and_inputs_in_metrics_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let (agg_port, agg_admin, fwd_admin, dead) =
        (free_port(), free_port(), free_port(), free_port());
    // The aggregator: forward in, null out.
    let aggregator = Ferry::start(
        &format!(
            "<source>\n  @type forward\n  @id front\n  bind 127.0.0.1\n  port {agg_port}\n</source>\n\
             <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {agg_admin}\n</source>\n\
             <match **>\n  @type null\n  @id sink\n</match>\n"
        ),
        agg_port,
    );
    // The forwarder: tails a file and forwards to the aggregator and to a server that is down.
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let forwarder = Ferry::start_logged(
        &format!(
            "<source>\n  @type tail\n  @id applog\n  path {log}\n  pos_file {dir}/app.pos\n  tag app.log\n  read_from_head true\n  <parse>\n    @type none\n  </parse>\n</source>\n\
             <source>\n  @type monitor_agent\n  bind 127.0.0.1\n  port {fwd_admin}\n</source>\n\
             <match app.**>\n  @type forward\n  @id to_aggregators\n  heartbeat_interval 200ms\n  recover_wait 1s\n  require_ack_response true\n  keepalive true\n\
               <server>\n    name live\n    host 127.0.0.1\n    port {agg_port}\n  </server>\n\
               <server>\n    name down\n    host 127.0.0.1\n    port {dead}\n  </server>\n\
               <buffer tag>\n    @type file\n    path {dir}/fwd-buf\n    flush_interval 200ms\n  </buffer>\n</match>\n",
            log = log.display(),
            dir = dir.path().display(),
        ),
        &[],
    );
    let lines: String = (0..300).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&log, lines).unwrap();

    // Every line reaches the aggregator, counted by its forward input.
    let mut agg_text = String::new();
    wait_for(
        "300 events at the aggregator",
        Duration::from_secs(30),
        || {
            agg_text = http_get(agg_admin, "/metrics").1;
            sample(
                &agg_text,
                "fluentd_input_status_emit_records{plugin_id=\"front\",type=\"forward\"}",
            ) == Some(300.0)
        },
    );
    assert!(
        sample(
            &agg_text,
            "ferry_forward_input_acks_total{plugin_id=\"front\""
        )
        .unwrap()
            >= 1.0,
        "{agg_text}"
    );
    // The forwarder's kept-alive connection (a heartbeat may hold a second one for a moment).
    let conns = sample(
        &agg_text,
        "ferry_forward_input_connections{plugin_id=\"front\"",
    )
    .unwrap();
    assert!((1.0..=2.0).contains(&conns), "{agg_text}");

    // The forwarder shows its tail position, and one of its two servers healthy.
    let mut fwd_text = String::new();
    wait_for("the down server detached", Duration::from_secs(30), || {
        fwd_text = http_get(fwd_admin, "/metrics").1;
        sample(
            &fwd_text,
            "fluentd_output_healthy_nodes_count{plugin_id=\"to_aggregators\"",
        ) == Some(1.0)
    });
    let size = std::fs::metadata(&log).unwrap().len() as f64;
    let pos_prefix = format!(
        "fluentd_tail_file_position{{plugin_id=\"applog\",type=\"tail\",path=\"{}\"}}",
        log.display()
    );
    wait_for(
        "the tail position at the end of the file",
        Duration::from_secs(10),
        || {
            fwd_text = http_get(fwd_admin, "/metrics").1;
            sample(&fwd_text, &pos_prefix) == Some(size)
        },
    );
    for (prefix, want) in [
        (
            "fluentd_output_registered_nodes_count{plugin_id=\"to_aggregators\"",
            2.0,
        ),
        (
            "ferry_forward_server_available{plugin_id=\"to_aggregators\",type=\"forward\",server=\"live\"",
            1.0,
        ),
        (
            "ferry_forward_server_available{plugin_id=\"to_aggregators\",type=\"forward\",server=\"down\"",
            0.0,
        ),
        ("fluentd_input_files_opened_total{plugin_id=\"applog\"", 1.0),
        (
            "fluentd_input_status_emit_records{plugin_id=\"applog\",type=\"tail\"}",
            300.0,
        ),
    ] {
        assert_eq!(
            sample(&fwd_text, prefix),
            Some(want),
            "{prefix}:\n{fwd_text}"
        );
    }

    // `ferry status` against the forwarder lists both servers and their state.
    let text = common::ferry_status(fwd_admin, "0.3");
    let server_line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("server {name} ")))
            .unwrap_or_else(|| panic!("no line for server {name}:\n{text}"))
            .to_string()
    };
    assert!(server_line("live").contains("healthy"), "{text}");
    let down = server_line("down");
    assert!(down.contains("detached"), "{text}");
    assert!(
        down.contains("Connection refused") || down.contains("refused"),
        "the reason is shown: {text}"
    );
    drop(forwarder);
    drop(aggregator);
}

#[test]
fn a_head_request_gets_the_head_of_what_get_answers_and_no_body() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let _ferry = Ferry::start(&ops_config(port, admin, dir.path(), "1h"), port);
    let (_, body) = http_get(admin, "/metrics");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
    s.write_all(b"HEAD /metrics HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.ends_with("\r\n\r\n"),
        "no body after the head: {reply}"
    );
    let length: usize = reply
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no content-length: {reply}"))
        .trim()
        .parse()
        .unwrap();
    // The length GET's body has (the metrics move between the two requests, a little).
    assert!(
        length > body.len() / 2 && length > 0,
        "{length} vs {}",
        body.len()
    );
}
