//! The node agent's drill: a node of containers written as the kubelet and the runtimes write
//! them (`kubelet_support`: CRI and Docker json-file, lines split at 16 KiB, interleaved
//! streams, rename rotation with gzip of older files, restarts with new container ids) is
//! tailed by a ferry forwarder (cri/docker parsing, the route's concat filter with the built-in
//! stack-trace rules, kubernetes_metadata) that forwards with acks to an aggregator, while the
//! forwarder is SIGKILLed and restarted. Every message must arrive whole, once or counted as a
//! duplicate, with its container's metadata.
//!
//! - `two_hundred_containers_...`: a ferry aggregator, 200 containers, 5 SIGKILLs;
//! - `..._into_fluentd` / `..._into_fluent_bit`: the real peers as aggregators (`../shared/peers`),
//!   a smaller node, one SIGKILL.
//!
//! `FERRY_DRILL_LOG=<file>` writes the forwarder's log there; when lines were lost, the node
//! (its files, the positions and the buffer) is then kept and its directory printed.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod interop_support;
mod kubelet_support;

use common::{Ferry, free_port, signal};
use interop_support::{PeerKind, PeerProc, parse_fluentbit_line, parse_fluentd_line, peers};
use kubelet_support::{Container, Format, agent_sources, check, message, stack_traces};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the writer wrote: each message by its key, and the container it came from.
#[derive(Default)]
struct Written {
    /// (container, stream, seq) → (text, container id, restart).
    messages: HashMap<(usize, String, u64), (String, String)>,
    /// Stack traces by their text (they carry no `seq=` header).
    traces: HashMap<String, (usize, String, u64)>,
    bytes: u64,
    big: u64,
    rotations: u64,
    restarts: u64,
}

/// How a node is written.
#[derive(Clone, Copy)]
struct Plan {
    containers: usize,
    per_container: u64,
    /// Messages between two rotations of a container's log.
    rotate_every: u64,
    /// Every `big_every`-th message is long (16 KiB to 1 MB, split into parts).
    big_every: u64,
    /// Every `trace_every`-th message is a stack trace.
    trace_every: u64,
    /// Messages per second over the whole node.
    rate: u64,
}

const BIG: [usize; 5] = [20_000, 70_000, 250_000, 600_000, 1_000_000];

/// Writes `plan` into the node at `root`, as fast as `plan.rate`; returns what it wrote.
fn write_node(root: &Path, plan: Plan, written: &Arc<Mutex<Written>>) {
    let mut containers: Vec<Container> = (0..plan.containers)
        .map(|n| Container::new(root, n, format_of(n)))
        .collect();
    let started = Instant::now();
    let mut sent = 0u64;
    let mut big_n = 0usize;
    for round in 0..plan.per_container {
        for (n, c) in containers.iter_mut().enumerate() {
            let seq = round;
            let stream = if (seq + n as u64) % 3 == 0 {
                "stderr"
            } else {
                "stdout"
            };
            let id = c.id.clone();
            if seq % plan.trace_every == plan.trace_every - 1 {
                let traces = stack_traces(&format!("t{n}x{seq}"));
                let (_, trace) = &traces[(seq / plan.trace_every) as usize % 3];
                for line in trace.lines() {
                    c.write(stream, line);
                }
                let mut w = written.lock().unwrap();
                w.bytes += trace.len() as u64;
                w.traces.insert(trace.clone(), (n, stream.to_string(), seq));
                w.messages
                    .insert((n, stream.to_string(), seq), (trace.clone(), id));
            } else if seq % plan.big_every == plan.big_every / 2 {
                // A long message whose parts interleave with the other stream's short ones.
                let len = BIG[big_n % BIG.len()];
                big_n += 1;
                let m = message(n, stream, seq, len);
                let other = if stream == "stdout" {
                    "stderr"
                } else {
                    "stdout"
                };
                let parts = c.lines(stream, &m);
                let mut w = written.lock().unwrap();
                for (i, part) in parts.iter().enumerate() {
                    c.put(part);
                    if i % 4 == 1 {
                        let short_seq = 1_000_000 + seq * 1000 + i as u64;
                        let s = message(n, other, short_seq, 100);
                        c.write(other, &s);
                        w.bytes += s.len() as u64;
                        w.messages
                            .insert((n, other.to_string(), short_seq), (s, id.clone()));
                    }
                }
                w.bytes += m.len() as u64;
                w.big += 1;
                w.messages.insert((n, stream.to_string(), seq), (m, id));
            } else {
                let m = message(n, stream, seq, 100 + (seq as usize * 37 + n * 11) % 200);
                c.write(stream, &m);
                let mut w = written.lock().unwrap();
                w.bytes += m.len() as u64;
                w.messages.insert((n, stream.to_string(), seq), (m, id));
            }
            if seq > 0 && seq % plan.rotate_every == 0 {
                c.rotate();
                written.lock().unwrap().rotations += 1;
            }
            // Restarts fall between rotations.
            let third = plan.per_container / 3 + plan.rotate_every / 4;
            if seq == third || seq == 2 * third {
                c.restart();
                written.lock().unwrap().restarts += 1;
            }
            c.collect_garbage(Duration::from_secs(10));
            sent += 1;
            let due = started + Duration::from_secs_f64(sent as f64 / plan.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
        }
    }
}

/// The forwarder: both runtimes' tails, the concat filters, metadata, forward with acks and a
/// file buffer.
fn forwarder_config(root: &Path, state: &Path, port: u16) -> String {
    format!(
        "{}<filter kubernetes.**>\n  @type kubernetes_metadata\n</filter>\n\
         <match kubernetes.**>\n  @type forward\n  require_ack_response true\n  <server>\n    host 127.0.0.1\n    port {port}\n  </server>\n  \
         <buffer>\n    @type file\n    path {}/buffer\n    chunk_limit_size 8m\n    flush_interval 1s\n  </buffer>\n</match>\n",
        agent_sources(root, state),
        state.display()
    )
}

/// One event as the aggregator printed it.
struct Got {
    text: String,
    stream: String,
    namespace: String,
    pod: String,
    container: String,
    container_id: String,
    pod_id: Option<String>,
}

fn got_of(record: &serde_json::Value) -> Option<Got> {
    let text = record["message"].as_str().or(record["log"].as_str())?;
    let k = &record["kubernetes"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    Some(Got {
        text: text.strip_suffix('\n').unwrap_or(text).to_string(),
        stream: s(&record["stream"]),
        namespace: s(&k["namespace_name"]),
        pod: s(&k["pod_name"]),
        container: s(&k["container_name"]),
        container_id: s(&record["docker"]["container_id"]),
        pod_id: k["pod_id"].as_str().map(str::to_string),
    })
}

/// The counts of a drill.
#[derive(Debug, Default)]
struct Tally {
    written: usize,
    received: usize,
    lost: usize,
    duplicated: usize,
    /// Events that are no message written (cut, joined wrongly, mixed).
    broken: usize,
    wrong_metadata: usize,
    without_pod_id: usize,
}

/// The runtime of container `n` ([`write_node`] alternates them).
fn format_of(n: usize) -> Format {
    if n % 2 == 0 {
        Format::Cri
    } else {
        Format::Docker
    }
}

fn tally(written: &Written, got: &[Got]) -> (Tally, Vec<String>) {
    let mut t = Tally {
        written: written.messages.len(),
        received: got.len(),
        ..Tally::default()
    };
    let mut seen: HashMap<&(usize, String, u64), u32> = HashMap::new();
    let mut problems = Vec::new();
    for g in got {
        let key = match check(&g.text) {
            Some(k) => written.messages.get_key_value(&k).map(|(k, _)| k),
            None => written
                .traces
                .get(&g.text)
                .and_then(|k| written.messages.get_key_value(k).map(|(k, _)| k)),
        };
        let Some(key) = key else {
            t.broken += 1;
            if problems.len() < 5 {
                problems.push(format!(
                    "not a message written ({} bytes): {:?}",
                    g.text.len(),
                    &g.text[..g.text.len().min(150)]
                ));
            }
            continue;
        };
        let (text, id) = &written.messages[key];
        if *text != g.text {
            t.broken += 1;
            continue;
        }
        *seen.entry(key).or_default() += 1;
        let c = Container::names(key.0, format_of(key.0));
        let right = g.stream == key.1
            && g.namespace == c.namespace
            && g.pod == c.pod
            && g.container == c.name
            && g.container_id == *id
            && g.pod_id.as_ref().is_none_or(|u| *u == c.uid);
        if !right {
            t.wrong_metadata += 1;
            if problems.len() < 10 {
                problems.push(format!(
                    "metadata of {key:?}: stream {} ns {} pod {} container {} id {} pod_id {:?}; want {} {} {} {} {id} {}",
                    g.stream, g.namespace, g.pod, g.container, g.container_id, g.pod_id,
                    key.1, c.namespace, c.pod, c.name, c.uid
                ));
            }
        }
        t.without_pod_id += usize::from(g.pod_id.is_none());
    }
    t.lost = written.messages.len() - seen.len();
    t.duplicated = seen.values().map(|n| (n - 1) as usize).sum();
    if t.lost > 0 {
        let mut missing: Vec<_> = written
            .messages
            .keys()
            .filter(|k| !seen.contains_key(k))
            .collect();
        missing.sort();
        problems.push(format!(
            "lost, for example: {:?}",
            missing.iter().take(5).collect::<Vec<_>>()
        ));
        // Where the losses fall: per container and stream, the numbers lost.
        let mut by_container: std::collections::BTreeMap<(usize, &str), Vec<u64>> =
            std::collections::BTreeMap::new();
        for (n, stream, seq) in missing {
            by_container.entry((*n, stream)).or_default().push(*seq);
        }
        problems.push(format!(
            "lost in {} containers' streams: {by_container:?}",
            by_container.len()
        ));
    }
    (t, problems)
}

/// Where an aggregator's events are read from.
enum Aggregator {
    Ferry(Ferry, Vec<String>),
    Peer(PeerProc),
}

impl Aggregator {
    fn events(&mut self) -> Vec<Got> {
        match self {
            Aggregator::Ferry(f, seen) => {
                seen.extend(f.stdout.try_iter());
                seen.iter()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| got_of(&v))
                    .collect()
            }
            Aggregator::Peer(p) => {
                let lines: Vec<String> = match p.kind {
                    PeerKind::Fluentd => p.log_lines(),
                    PeerKind::FluentBit => std::fs::read_to_string(p.dir.path().join("out.log"))
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_owned)
                        .collect(),
                };
                lines
                    .iter()
                    .filter_map(|l| match p.kind {
                        PeerKind::Fluentd => parse_fluentd_line(l),
                        PeerKind::FluentBit => parse_fluentbit_line(l),
                    })
                    .filter(|r| r.tag.starts_with("kubernetes."))
                    .filter_map(|r| got_of(&r.record))
                    .collect()
            }
        }
    }
}

/// The drills run one at a time: each is sized for the machine alone.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs a drill: the node written by `plan` while the forwarder is SIGKILLed `kills` times.
fn drill(plan: Plan, kills: usize, mut agg: Aggregator, port: u16, what: &str) -> Tally {
    let node = tempfile::Builder::new().prefix("k8s").tempdir().unwrap();
    let root = node.path().to_path_buf();
    let state = root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let config = forwarder_config(&root, &state, port);
    let written = Arc::new(Mutex::new(Written::default()));
    let mut forwarder = Ferry::start_logged(&config, &[]);
    let writer = {
        let (root, written) = (root.clone(), Arc::clone(&written));
        thread::spawn(move || write_node(&root, plan, &written))
    };
    let total_secs = (plan.containers as u64 * plan.per_container) as f64 / plan.rate as f64;
    let mut logs = Vec::new();
    for k in 0..kills {
        thread::sleep(Duration::from_secs_f64(total_secs / (kills + 1) as f64));
        signal(forwarder.child.id(), "KILL");
        let _ = forwarder.child.wait();
        // Every line it wrote before it died: the pipe is read to its end.
        let until = Instant::now() + Duration::from_secs(5);
        while let Some(wait) = until.checked_duration_since(Instant::now()) {
            match forwarder.stderr.recv_timeout(wait) {
                Ok(line) => logs.push(line),
                Err(_) => break,
            }
        }
        thread::sleep(Duration::from_millis(200));
        logs.push(format!("==== SIGKILL {k}"));
        drop(forwarder);
        thread::sleep(Duration::from_millis(300 + 200 * k as u64));
        forwarder = Ferry::start_logged(&config, &[]);
    }
    writer.join().unwrap();
    let w = written.lock().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let (t, problems) = loop {
        let got = agg.events();
        let (t, problems) = tally(&w, &got);
        if t.lost == 0 || Instant::now() > deadline {
            // Let late duplicates and timeouts arrive before the final count.
            thread::sleep(Duration::from_secs(3));
            break tally(&w, &agg.events());
        }
        drop((t, problems));
        thread::sleep(Duration::from_millis(500));
    };
    logs.extend(forwarder.stderr.try_iter());
    let gz = glob_count(&root.join("var/log/pods/*/*/*.gz"));
    // How the forwarder found files again after its restarts.
    let count = |needle: &str| logs.iter().filter(|l| l.contains(needle)).count();
    let renamed = count("was rotated while ferry was stopped; finishing")
        + count("was rotated before ferry looked again");
    let unpacked = count("was rotated and compressed while ferry was stopped");
    let unseen = count("was rotated before ferry saw it");
    eprintln!(
        "{what}: {} containers, {} messages ({} long, up to 1 MB; {:.1} MB), {} rotations ({gz} files gzipped), {} restarts, {kills} SIGKILLs of the forwarder; files found again: {renamed} renamed while the forwarder was down, {unpacked} read from their .gz, {unseen} rotated before it saw them; {} events received: {t:?}",
        plan.containers,
        t.written,
        w.big,
        w.bytes as f64 / 1e6,
        w.rotations,
        w.restarts,
        t.received
    );
    assert!(
        w.rotations > 0 && gz > 0 && w.restarts > 0,
        "the node rotated, gzipped and restarted"
    );
    let lost_container = problems
        .iter()
        .find_map(|p| p.strip_prefix("lost, for example: [("))
        .and_then(|p| p.split(',').next())
        .map(|n| format!("_c{n}-"));
    let warnings: Vec<&String> = logs
        .iter()
        .filter(|l| {
            l.contains("[warn]")
                || l.contains("[error]")
                || lost_container
                    .as_ref()
                    .is_some_and(|c| l.contains(c.as_str()))
        })
        .take(60)
        .collect();
    if let Ok(path) = std::env::var("FERRY_DRILL_LOG") {
        std::fs::write(path, logs.join("\n")).unwrap();
        if t.lost > 0 {
            // The node's files, positions and buffer, to see where the lines stopped.
            eprintln!("the node is kept at {}", node.keep().display());
        }
    }
    assert!(
        t.lost == 0 && t.broken == 0 && t.wrong_metadata == 0,
        "{what}: {t:?}\n{}\nforwarder's warnings:\n{warnings:#?}",
        problems.join("\n")
    );
    assert!(
        w.rotations > 0 && gz > 0 && w.restarts > 0,
        "the node rotated, gzipped and restarted"
    );
    // Duplicates come only from chunks in flight at a kill.
    assert!(
        t.duplicated <= t.written / 5,
        "{what}: {} duplicates of {}",
        t.duplicated,
        t.written
    );
    t
}

fn glob_count(pattern: &Path) -> usize {
    glob::glob(&pattern.to_string_lossy())
        .map(|paths| paths.count())
        .unwrap_or(0)
}

fn ferry_aggregator() -> (Aggregator, u16) {
    let port = free_port();
    let config = format!(
        "<source>\n  @type forward\n  port {port}\n</source>\n<match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
    );
    (
        Aggregator::Ferry(Ferry::start(&config, port), Vec::new()),
        port,
    )
}

#[test]
fn two_hundred_containers_lose_no_line_through_rotations_restarts_and_five_sigkills() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (agg, port) = ferry_aggregator();
    let plan = Plan {
        containers: 200,
        per_container: 120,
        rotate_every: 20,
        big_every: 120,
        trace_every: 25,
        rate: 800,
    };
    let t = drill(plan, 5, agg, port, "ferry aggregator");
    assert!(t.written >= 24_000);
}

fn peer_drill(kind: PeerKind) {
    let Some(peers) = peers() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let config = match kind {
        PeerKind::Fluentd => format!(
            "<source>\n  @type forward\n  port {port}\n  bind 127.0.0.1\n</source>\n<match **>\n  @type stdout\n</match>\n"
        ),
        PeerKind::FluentBit => format!(
            "[SERVICE]\n    Flush 1\n[INPUT]\n    Name forward\n    Listen 127.0.0.1\n    Port {port}\n    Buffer_Max_Size 4M\n[OUTPUT]\n    Name file\n    Match *\n    Path {{dir}}\n    File out.log\n"
        ),
    };
    let agg = Aggregator::Peer(PeerProc::start(&peers, kind, &config, port));
    let plan = Plan {
        containers: 20,
        per_container: 60,
        rotate_every: 10,
        big_every: 30,
        trace_every: 15,
        rate: 300,
    };
    drill(plan, 1, agg, port, kind.name());
}

#[test]
fn a_node_of_container_logs_arrives_whole_through_a_fluentd_aggregator() {
    peer_drill(PeerKind::Fluentd);
}

#[test]
fn a_node_of_container_logs_arrives_whole_through_a_fluent_bit_aggregator() {
    peer_drill(PeerKind::FluentBit);
}
