//! `<service_discovery>` between real processes: a forwarder ferry whose servers come from a
//! YAML file or from DNS SRV records served by a real dnsmasq, and aggregator ferries with
//! file buffers whose stdout is counted by sequence number. The list changes while a client
//! streams with acks; every event must arrive, once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod forward_support;

use common::{AckedSender, Ferry, free_port, seqs_of};
use forward_support::{aggregator_config, forward_config, forwarder_config, wait_until};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// What a process printed so far: stdout `seq`s and stderr lines.
#[derive(Default)]
struct Seen {
    seqs: Vec<u64>,
    log: Vec<String>,
}

impl Seen {
    fn take(&mut self, f: &Ferry) -> &mut Self {
        self.seqs
            .extend(seqs_of(&f.stdout.try_iter().collect::<Vec<_>>()));
        self.log.extend(f.stderr.try_iter());
        self
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.iter().any(|l| l.contains(needle))
    }
}

/// Streams batches of 20 events with acks until `stop` is set; returns the next sequence
/// number (every event below it was acknowledged by the forwarder).
fn stream(port: u16, stop: Arc<AtomicBool>, next: Arc<AtomicU64>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut sender = AckedSender::connect(port).unwrap();
        let mut seq = 0;
        while !stop.load(Ordering::SeqCst) {
            sender
                .send(&format!("app.{}", seq % 3), seq..seq + 20, 100)
                .unwrap();
            seq += 20;
            next.store(seq, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(20));
        }
        seq
    })
}

/// Every sequence number below `sent` arrived exactly once, over all aggregators.
fn assert_each_once(sent: u64, sets: &[&Seen]) {
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    for s in sets {
        for q in &s.seqs {
            *count.entry(*q).or_default() += 1;
        }
    }
    let lost: Vec<u64> = (0..sent).filter(|q| !count.contains_key(q)).collect();
    let twice: Vec<u64> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(q, _)| *q)
        .collect();
    assert!(lost.is_empty(), "{} lost: {lost:?}", lost.len());
    assert!(twice.is_empty(), "{} duplicated: {twice:?}", twice.len());
}

fn aggregator(port: u16, dir: &Path, name: &str) -> Ferry {
    Ferry::start(&aggregator_config(port, &dir.join(name)), port)
}

fn http_get(port: u16, path: &str) -> String {
    ferry::http::client::get(&format!("127.0.0.1:{port}"), path)
        .unwrap()
        .1
}

/// The value of a metric sample of the forwarder (0 when absent).
fn metric(admin: u16, name: &str) -> f64 {
    http_get(admin, "/metrics")
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The names of the servers the monitor API (and so `ferry status`) lists.
fn listed_servers(admin: u16) -> Vec<String> {
    let plugins: serde_json::Value =
        serde_json::from_str(&http_get(admin, "/api/plugins.json")).unwrap();
    plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["servers"].as_array())
        .flatten()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// A forwarder: forward input on `port`, the monitor API on `admin`, a forward output whose
/// servers come from `discovery`.
fn forwarder(port: u16, admin: u16, dir: &Path, discovery: &str) -> Ferry {
    let params = "  require_ack_response true\n  ack_response_timeout 5s\n  heartbeat_interval 200ms\n  recover_wait 1s\n  hard_timeout 3s\n";
    let config = format!(
        "<source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n{}",
        forwarder_config(port, &dir.join("f"), params, discovery)
    );
    Ferry::start(&config, port)
}

/// Writes `text` to `path` as a careful operator does: elsewhere, then renamed over it.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn sd_yaml(name: &str, port: u16) -> String {
    format!("- host: 127.0.0.1\n  port: {port}\n  name: {name}\n  weight: 60\n")
}

#[test]
fn a_server_list_file_edited_while_a_client_streams_moves_the_load_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pf, admin) = (free_port(), free_port(), free_port(), free_port());
    let a = aggregator(pa, dir.path(), "a");
    let b = aggregator(pb, dir.path(), "b");
    let list = dir.path().join("sd.yaml");
    std::fs::write(&list, sd_yaml("agg-a", pa)).unwrap();
    let discovery = format!(
        "  <service_discovery>\n    @type file\n    path {}\n  </service_discovery>\n",
        list.display()
    );
    let fwd = forwarder(pf, admin, dir.path(), &discovery);
    let (stop, next) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sender = stream(pf, Arc::clone(&stop), next);
    let (mut sa, mut sb, mut sf) = (Seen::default(), Seen::default(), Seen::default());
    wait_until(Duration::from_secs(20), "agg-a takes the stream", || {
        sa.take(&a).seqs.len() > 200
    });
    assert!(sb.take(&b).seqs.is_empty(), "agg-b is not listed yet");

    // A broken file: the last good list stays, and says why.
    replace(&list, "- host: 127.0.0.1\n  port: [\n");
    wait_until(Duration::from_secs(10), "the bad file is logged", || {
        sf.take(&fwd)
            .logged(&format!("sd_file: path={}: YAML", list.display()))
    });
    assert!(
        sf.logged("keeping the last good list (1 servers)"),
        "{:#?}",
        sf.log
    );
    assert_eq!(
        metric(admin, "ferry_forward_output_discovery_errors_total"),
        1.0
    );
    let before = sa.take(&a).seqs.len();
    wait_until(
        Duration::from_secs(10),
        "agg-a still takes the stream",
        || sa.take(&a).seqs.len() > before + 200,
    );
    assert_eq!(listed_servers(admin), ["agg-a"]);

    // agg-b replaces agg-a.
    replace(&list, &sd_yaml("agg-b", pb));
    let switched = Instant::now();
    wait_until(Duration::from_secs(10), "agg-b takes the stream", || {
        !sb.take(&b).seqs.is_empty()
    });
    let moved_after = switched.elapsed();
    assert!(
        moved_after < Duration::from_secs(3),
        "the load moved {moved_after:?} after the file changed (checked every second)"
    );
    sf.take(&fwd);
    assert!(
        sf.logged("adding forwarding server 'agg-b' host=\"127.0.0.1\"")
            && sf.logged("removing forwarding server 'agg-a' host=\"127.0.0.1\""),
        "{:#?}",
        sf.log
    );
    assert!(
        sf.logged("a good list again after 1 failures"),
        "{:#?}",
        sf.log
    );
    // agg-a drains: what was on its way finishes; nothing new goes there.
    thread::sleep(Duration::from_secs(1));
    let drained = sa.take(&a).seqs.len();
    let on_b = sb.take(&b).seqs.len();
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sa.take(&a).seqs.len(),
        drained,
        "agg-a got events after it left"
    );
    assert!(sb.take(&b).seqs.len() > on_b, "agg-b takes the stream");
    assert_eq!(listed_servers(admin), ["agg-b"]);
    assert_eq!(
        metric(admin, "ferry_forward_output_server_changes_total"),
        2.0
    );

    stop.store(true, Ordering::SeqCst);
    let sent = sender.join().unwrap();
    wait_until(Duration::from_secs(30), "every event arrives", || {
        sa.take(&a);
        sb.take(&b);
        let mut have: Vec<u64> = sa.seqs.iter().chain(&sb.seqs).copied().collect();
        have.sort_unstable();
        have.dedup();
        have.len() as u64 >= sent
    });
    eprintln!(
        "sent {sent}: agg-a {}, agg-b {}; moved {moved_after:?} after the edit",
        sa.seqs.len(),
        sb.seqs.len()
    );
    assert_each_once(sent, &[&sa, &sb]);
}

/// A dnsmasq serving `records` on 127.0.0.1:`port`, killed when dropped.
struct Dnsmasq {
    child: Child,
}

impl Dnsmasq {
    fn start(program: &Path, dir: &Path, port: u16, records: &str) -> Self {
        let conf = dir.join("dnsmasq.conf");
        std::fs::write(&conf, records).unwrap();
        let child = Command::new(program)
            .arg("--no-daemon")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg(format!("--conf-file={}", conf.display()))
            .arg(format!("--port={port}"))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg("--user=root")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut me = Self { child };
        // Ready when it answers over TCP.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("dnsmasq exited with {status}");
            }
            assert!(Instant::now() < deadline, "dnsmasq did not start");
            thread::sleep(Duration::from_millis(20));
        }
        me.child.try_wait().unwrap();
        me
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dnsmasq (scripts/test-deps.sh installs it): missing, the tests fail under
/// `FERRY_TEST_DEPS=1` and are skipped otherwise.
fn dnsmasq() -> Option<PathBuf> {
    common::program("FERRY_TEST_DNSMASQ", "dnsmasq")
}

/// SRV records `_fluentd._tcp.example.test` for `servers` (name, port, priority, weight),
/// each target a name of its own for 127.0.0.1.
fn records(servers: &[(&str, u16, u16, u16)]) -> String {
    let mut out = String::new();
    for (name, port, priority, weight) in servers {
        out.push_str(&format!(
            "host-record={name}.example.test,127.0.0.1\nsrv-host=_fluentd._tcp.example.test,{name}.example.test,{port},{priority},{weight}\n"
        ));
    }
    out
}

fn srv_discovery(dns: u16, extra: &str) -> String {
    format!(
        "  <service_discovery>\n    @type srv\n    service fluentd\n    proto tcp\n    hostname example.test\n    dns_server_host 127.0.0.1:{dns}\n    interval 1\n{extra}  </service_discovery>\n"
    )
}

#[test]
fn srv_records_changed_on_the_name_server_move_the_load_within_one_interval_and_lose_nothing() {
    let Some(program) = dnsmasq() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pf, admin, dns) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let a = aggregator(pa, dir.path(), "a");
    let b = aggregator(pb, dir.path(), "b");
    let mut server = Dnsmasq::start(
        &program,
        dir.path(),
        dns,
        &records(&[("agg-a", pa, 10, 60)]),
    );
    let fwd = forwarder(pf, admin, dir.path(), &srv_discovery(dns, ""));
    let (stop, next) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sender = stream(pf, Arc::clone(&stop), next);
    let (mut sa, mut sb, mut sf) = (Seen::default(), Seen::default(), Seen::default());
    wait_until(Duration::from_secs(20), "agg-a takes the stream", || {
        sa.take(&a).seqs.len() > 200
    });
    assert_eq!(listed_servers(admin), ["agg-a.example.test"]);

    // The name server goes away: the last list stays and events keep flowing to agg-a.
    drop(server);
    wait_until(
        Duration::from_secs(10),
        "the failed lookup is logged",
        || sf.take(&fwd).logged("sd_srv: _fluentd._tcp.example.test"),
    );
    assert!(
        sf.logged("keeping the last good list (1 servers)"),
        "{:#?}",
        sf.log
    );
    let before = sa.take(&a).seqs.len();
    wait_until(
        Duration::from_secs(10),
        "agg-a still takes the stream",
        || sa.take(&a).seqs.len() > before + 100,
    );
    assert!(metric(admin, "ferry_forward_output_discovery_errors_total") >= 1.0);

    // New records: agg-b, ahead by priority, replaces agg-a.
    server = Dnsmasq::start(&program, dir.path(), dns, &records(&[("agg-b", pb, 5, 30)]));
    let switched = Instant::now();
    wait_until(Duration::from_secs(10), "agg-b takes the stream", || {
        !sb.take(&b).seqs.is_empty()
    });
    let moved_after = switched.elapsed();
    assert!(
        moved_after < Duration::from_millis(2500),
        "the load moved {moved_after:?} after the records changed (interval 1)"
    );
    thread::sleep(Duration::from_secs(1));
    let drained = sa.take(&a).seqs.len();
    let on_b = sb.take(&b).seqs.len();
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sa.take(&a).seqs.len(),
        drained,
        "agg-a got events after it left"
    );
    assert!(sb.take(&b).seqs.len() > on_b, "agg-b takes the stream");
    assert_eq!(listed_servers(admin), ["agg-b.example.test"]);
    sf.take(&fwd);
    assert!(
        sf.logged("adding forwarding server 'agg-b.example.test' host=\"127.0.0.1\"")
            && sf.logged("removing forwarding server 'agg-a.example.test'"),
        "{:#?}",
        sf.log
    );

    stop.store(true, Ordering::SeqCst);
    let sent = sender.join().unwrap();
    wait_until(Duration::from_secs(30), "every event arrives", || {
        sa.take(&a);
        sb.take(&b);
        let mut have: Vec<u64> = sa.seqs.iter().chain(&sb.seqs).copied().collect();
        have.sort_unstable();
        have.dedup();
        have.len() as u64 >= sent
    });
    eprintln!(
        "sent {sent}: agg-a {}, agg-b {}; moved {moved_after:?} after the records changed",
        sa.seqs.len(),
        sb.seqs.len()
    );
    assert_each_once(sent, &[&sa, &sb]);
    drop(server);
}

#[tokio::test]
async fn srv_targets_are_resolved_through_the_same_name_server_unless_dns_lookup_is_false() {
    let Some(program) = dnsmasq() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dns = free_port();
    let _server = Dnsmasq::start(
        &program,
        dir.path(),
        dns,
        &records(&[("agg-b", 24300, 20, 7), ("agg-a", 24301, 10, 0)]),
    );
    let hosts = |extra: &str| {
        let text = format!(
            "<match **>\n  @type forward\n  ignore_network_errors_at_startup true\n{}</match>\n",
            srv_discovery(dns, extra)
        );
        let fwd = ferry::output::forward::Forward::new("fwd", forward_config(&text));
        async move {
            fwd.prepare().await.unwrap();
            fwd.nodes()
                .iter()
                .map(|n| {
                    (
                        n.server.name.clone(),
                        n.server.host.clone(),
                        n.server.port,
                        n.server.weight,
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    // Ordered by priority; weight 0 counts as the smallest share.
    assert_eq!(
        hosts("").await,
        [
            (
                "agg-a.example.test".to_string(),
                "127.0.0.1".to_string(),
                24301,
                1
            ),
            (
                "agg-b.example.test".to_string(),
                "127.0.0.1".to_string(),
                24300,
                7
            ),
        ]
    );
    let by_name = hosts("    dns_lookup false\n").await;
    assert_eq!(by_name[0].1, "agg-a.example.test");
    assert_eq!(by_name[1].1, "agg-b.example.test");
}

#[test]
fn fluentds_service_discovery_example_passes_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let example = dir.path().join("example");
    std::fs::create_dir(&example).unwrap();
    // Fluentd 1.16.11's example/out_forward_sd.conf and example/sd.yaml, as shipped.
    std::fs::write(
        example.join("out_forward_sd.conf"),
        "<source>\n  @type sample\n  tag test\n</source>\n\n<match test>\n  @type forward\n\n  <service_discovery>\n    @type file\n    path \"#{Dir.pwd}/example/sd.yaml\"\n  </service_discovery>\n\n  <buffer>\n    flush_interval 1\n  </buffer>\n</match>\n",
    )
    .unwrap();
    std::fs::write(
        example.join("sd.yaml"),
        "- 'host': 127.0.0.1\n  'port': 24224\n  'weight': 1\n  'name': server1\n- 'host': 127.0.0.1\n  'port': 24225\n  'weight': 1\n  'name': server2\n",
    )
    .unwrap();
    let out = Command::new(common::ferry_bin())
        .args(["--dry-run", "-c", "example/out_forward_sd.conf"])
        .current_dir(dir.path())
        .env("FERRY_ROOT_DIR", dir.path().join("root"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("is valid"), "{text}");
    // Elsewhere the file is not there: Fluentd's error, at the line of `path`.
    let out = Command::new(common::ferry_bin())
        .args(["--dry-run", "-c", "out_forward_sd.conf"])
        .current_dir(&example)
        .env("FERRY_ROOT_DIR", dir.path().join("root"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("out_forward_sd.conf:11: sd_file: path=")
            && text.contains("example/sd.yaml not found"),
        "{text}"
    );
}

#[test]
fn servers_and_service_discovery_go_together_and_a_static_discovery_adds_its_services() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("sd.json");
    std::fs::write(
        &list,
        r#"[{"host": "127.0.0.1", "port": 24302, "name": "from-file"}]"#,
    )
    .unwrap();
    let text = format!(
        "<match **>\n  @type forward\n  <server>\n    name plain\n    host 127.0.0.1\n    port 24300\n  </server>\n\
         <service_discovery>\n    @type static\n    <service>\n      name listed\n      host 127.0.0.1\n      port 24301\n      weight 20\n      standby true\n    </service>\n  </service_discovery>\n\
         <service_discovery>\n    @type file\n    path {}\n  </service_discovery>\n</match>\n",
        list.display()
    );
    let fwd = ferry::output::forward::Forward::new("fwd", forward_config(&text));
    let servers: Vec<(String, u16, u32, bool)> = fwd
        .nodes()
        .iter()
        .map(|n| {
            (
                n.server.name.clone(),
                n.server.port,
                n.server.weight,
                n.server.standby,
            )
        })
        .collect();
    assert_eq!(
        servers,
        [
            ("plain".to_string(), 24300, 60, false),
            ("listed".to_string(), 24301, 20, true),
            ("from-file".to_string(), 24302, 60, false),
        ]
    );
    assert_eq!(
        fwd.source_of(fwd.nodes()[2].source),
        format!("sd_file: path={}", list.display())
    );
}
