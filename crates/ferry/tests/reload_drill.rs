//! Hot reloads under load, between real processes, counting every event: a client streams
//! numbered events with acks into a forwarder, which forwards them with acks to an aggregator
//! that prints them. Both tiers are reloaded 20 times each (SIGHUP and SIGUSR2 in turn) while
//! the client streams; each reload switches between two files that differ in a filter, an
//! output parameter and a `<match>` that is added or removed. Nothing acknowledged is lost, no
//! send fails (no refused connection, no missing ack), and the client's ack latency across the
//! reloads is printed. The drill runs with memory buffers at both tiers, then with file
//! buffers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod drill_support;
mod forward_support;

use common::{Ferry, free_port, signal};
use drill_support::{Printed, Stream, tally};
use forward_support::wait_until;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const RELOADS_EACH: usize = 20;

/// The `<buffer>` lines of one kind.
fn buffer(kind: &str, dir: &Path, flush: &str) -> String {
    let place = match kind {
        "file" => format!("    @type file\n    path {}\n", dir.display()),
        _ => "    @type memory\n".to_string(),
    };
    format!(
        "  <buffer tag>\n{place}    flush_mode interval\n    flush_interval {flush}\n    retry_wait 200ms\n    retry_max_interval 1s\n    retry_forever true\n  </buffer>\n"
    )
}

/// Variant `b` changes an input parameter, adds a filter and a `<match>`, and changes an
/// output parameter.
fn variant(b: bool) -> (String, &'static str, &'static str) {
    if b {
        (
            "<filter drill.**>\n  @type record_transformer\n  <record>\n    variant b\n  </record>\n</filter>\n\
             <match other.**>\n  @type null\n</match>\n"
                .to_string(),
            "300ms",
            "  chunk_size_warn_limit 64m\n",
        )
    } else {
        (String::new(), "200ms", "")
    }
}

fn aggregator_config(port: u16, admin: u16, kind: &str, dir: &Path, b: bool) -> String {
    let (extra, flush, input) = variant(b);
    format!(
        "<source>\n  @type monitor_agent\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n{input}</source>\n{extra}\
         <match drill.**>\n  @type stdout\n  @id print\n  <format>\n    @type json\n  </format>\n{}</match>\n",
        buffer(kind, &dir.join("agg-buffer"), flush)
    )
}

fn forwarder_config(port: u16, to: u16, kind: &str, dir: &Path, b: bool) -> String {
    let (extra, flush, input) = variant(b);
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n{input}</source>\n{extra}\
         <match drill.**>\n  @type forward\n  @id to_aggregator\n  require_ack_response true\n  ack_response_timeout 5s\n\
         <server>\n    host 127.0.0.1\n    port {to}\n  </server>\n{}</match>\n",
        buffer(kind, &dir.join("fwd-buffer"), flush)
    )
}

/// Stderr lines of a ferry read so far, kept for the checks at the end.
struct Log {
    lines: Vec<String>,
}

impl Log {
    fn read(&mut self, rx: &Receiver<String>) {
        self.lines.extend(rx.try_iter());
    }

    fn count(&self, needle: &str) -> usize {
        self.lines.iter().filter(|l| l.contains(needle)).count()
    }
}

/// Rewrites `f`'s configuration, signals it, and waits for its `n`-th "configuration
/// reloaded".
fn reload(f: &Ferry, log: &mut Log, text: &str, sig: &str, n: usize) -> Duration {
    std::fs::write(f.config_path(), text).unwrap();
    let started = Instant::now();
    signal(f.child.id(), sig);
    wait_until(Duration::from_secs(30), "the reload finishes", || {
        log.read(&f.stderr);
        assert_eq!(log.count("config reload refused"), 0, "{:#?}", log.lines);
        assert_eq!(log.count("did not start"), 0, "{:#?}", log.lines);
        log.count("configuration reloaded") >= n
    });
    started.elapsed()
}

fn drill(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pf, admin) = (free_port(), free_port(), free_port());
    let agg = Ferry::start(&aggregator_config(pa, admin, kind, dir.path(), false), pa);
    let fwd = Ferry::start(&forwarder_config(pf, pa, kind, dir.path(), false), pf);
    let (mut agg_log, mut fwd_log) = (Log { lines: Vec::new() }, Log { lines: Vec::new() });
    let stream = Stream::start(
        SocketAddr::from(([127, 0, 0, 1], pf)),
        50,
        100,
        Duration::from_millis(2),
        Duration::from_secs(10),
    );
    // A second client connects anew for every batch: each of its sends goes through the
    // accept loop that the reloads hand from input to input.
    let fresh = Stream::start_reconnecting(
        SocketAddr::from(([127, 0, 0, 1], pf)),
        20,
        Duration::from_millis(5),
        Duration::from_secs(10),
        1 << 40,
    );
    let mut printed = Printed::default();
    wait_until(Duration::from_secs(30), "events flow", || {
        printed.take(&agg);
        printed.seqs.len() >= 500
    });
    let mut took = Vec::new();
    let started = Instant::now();
    for n in 1..=RELOADS_EACH {
        let b = n % 2 == 1;
        let sig = if n % 2 == 0 { "HUP" } else { "USR2" };
        took.push(reload(
            &fwd,
            &mut fwd_log,
            &forwarder_config(pf, pa, kind, dir.path(), b),
            sig,
            n,
        ));
        printed.take(&agg);
        std::thread::sleep(Duration::from_millis(100));
        took.push(reload(
            &agg,
            &mut agg_log,
            &aggregator_config(pa, admin, kind, dir.path(), b),
            sig,
            n,
        ));
        printed.take(&agg);
        std::thread::sleep(Duration::from_millis(100));
    }
    let reloading = started.elapsed();
    let (p50, p99) = stream.latency_p50_p99();
    let failures = stream.failures() + fresh.failures();
    let connections = fresh.acked_count() / 20;
    let mut acked = stream.finish();
    acked.extend(fresh.finish());
    wait_until(
        Duration::from_secs(60),
        "every acknowledged event at the aggregator",
        || {
            printed.take(&agg);
            tally(&acked, &[&printed.seqs]).0.is_empty()
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    printed.take(&agg);
    fwd_log.read(&fwd.stderr);
    agg_log.read(&agg.stderr);
    let (missing, dups) = tally(&acked, &[&printed.seqs]);
    took.sort();
    eprintln!(
        "{kind} buffers: {} reloads at each tier in {reloading:?} (reload p50 {:?}, max {:?}); {} events acknowledged, {} lost, {dups} duplicated; client ack latency across the reloads p50 {p50:?} p99 {p99:?}; {connections} connections opened during the drill; {failures} failed sends",
        RELOADS_EACH,
        took[took.len() / 2],
        took[took.len() - 1],
        acked.len(),
        missing.len(),
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost",
        missing.len()
    );
    assert_eq!(
        failures, 0,
        "a send failed: a refused connection or a missing ack"
    );
    for (who, log) in [("forwarder", &fwd_log), ("aggregator", &agg_log)] {
        for bad in [
            "refused",
            "and are lost",
            "did not stop",
            "[error]",
            "[warn]: task",
        ] {
            assert_eq!(
                log.count(bad),
                0,
                "the {who} logged '{bad}':\n{}",
                log.lines.join("\n")
            );
        }
    }
    // The output was replaced at every reload, its counters continued: they count every event
    // it took since the start.
    let (_, metrics) = ferry::http::client::get(&format!("127.0.0.1:{admin}"), "/metrics").unwrap();
    let emitted: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("fluentd_output_status_emit_records{")
                && l.contains("plugin_id=\"print\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap();
    assert!(
        emitted >= acked.len() as f64,
        "the aggregator's output counted {emitted} events across the reloads, {} were acknowledged",
        acked.len()
    );
    // Every reload replaced the forward input (its parameters changed), each successor on the
    // same socket.
    assert_eq!(
        fwd_log.count("listening port"),
        1 + RELOADS_EACH,
        "{:#?}",
        fwd_log.lines
    );
}

#[test]
fn twenty_reloads_at_each_tier_with_memory_buffers_lose_nothing_and_refuse_no_connection() {
    drill("memory");
}

#[test]
fn twenty_reloads_at_each_tier_with_file_buffers_lose_nothing_and_refuse_no_connection() {
    drill("file");
}

#[test]
fn fluentds_rpc_endpoint_flushes_reloads_refuses_a_broken_file_and_stops() {
    let (port, rpc) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let conf = |filter: &str| {
        format!(
            "<system>\n  rpc_endpoint 127.0.0.1:{rpc}\n</system>\n\
             <source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n{filter}\
             <match **>\n  @type stdout\n  @id print\n  <format>\n    @type json\n  </format>\n\
             {}</match>\n",
            buffer("file", &dir.path().join("buf"), "1h")
        )
    };
    let mut ferry = Ferry::start(&conf(""), port);
    let call = |path: &str| -> serde_json::Value {
        let (status, body) = ferry::http::client::get(&format!("127.0.0.1:{rpc}"), path).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let mut sender = common::AckedSender::connect(port).unwrap();
    sender.send("rpc.a", 0..10, 10).unwrap();
    // Staged for an hour, unless flushed now.
    assert_eq!(
        call("/api/plugins.flushBuffers"),
        serde_json::json!({"ok": true})
    );
    let lines = ferry.stdout_lines(10, Duration::from_secs(10));
    assert_eq!(common::seqs_of(&lines), (0..10).collect::<Vec<_>>());
    // A broken file is refused, with why, and ferry keeps running.
    std::fs::write(
        ferry.config_path(),
        "<match **>\n  @type nosuch\n</match>\n",
    )
    .unwrap();
    let refused = call("/api/config.reload");
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("nosuch"),
        "{refused}"
    );
    // A good one is applied: the new filter marks the next events.
    let filter = "<filter rpc.**>\n  @type record_transformer\n  <record>\n    via rpc\n  </record>\n</filter>\n";
    std::fs::write(ferry.config_path(), conf(filter)).unwrap();
    assert_eq!(call("/api/config.reload"), serde_json::json!({"ok": true}));
    sender.send("rpc.b", 10..20, 10).unwrap();
    assert_eq!(
        call("/api/plugins.flushBuffers"),
        serde_json::json!({"ok": true})
    );
    let lines = ferry.stdout_lines(10, Duration::from_secs(10));
    assert!(
        lines.iter().all(|l| l.contains("\"via\":\"rpc\"")),
        "{lines:#?}"
    );
    // killWorkers is a planned stop.
    assert_eq!(
        call("/api/processes.killWorkers"),
        serde_json::json!({"ok": true})
    );
    let status = ferry.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// A forwarder whose `to_aggregator` output has `buffer` (the aggregator on `pa`), plus `extra`.
fn one_output(pf: u16, pa: u16, id: &str, buffer: &str, extra: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {pf}\n</source>\n{extra}\
         <match drill.**>\n  @type forward\n  @id {id}\n  require_ack_response true\n\
         <server>\n    host 127.0.0.1\n    port {pa}\n  </server>\n{buffer}</match>\n"
    )
}

/// Streams until `n` events are acknowledged (the aggregator is down: they wait in a buffer).
fn acked_while_down(pf: u16, n: usize) -> Vec<u64> {
    let stream = Stream::start(
        SocketAddr::from(([127, 0, 0, 1], pf)),
        50,
        100,
        Duration::from_millis(2),
        Duration::from_secs(10),
    );
    wait_until(Duration::from_secs(60), "acks", || {
        stream.acked_count() >= n
    });
    stream.finish()
}

fn aggregator(pa: u16) -> Ferry {
    Ferry::start(
        &format!(
            "<source>\n  @type forward\n  bind 127.0.0.1\n  port {pa}\n</source>\n\
             <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
        ),
        pa,
    )
}

fn all_arrive(agg: &Ferry, acked: &[u64]) {
    let mut printed = Printed::default();
    wait_until(Duration::from_secs(60), "every acknowledged event", || {
        printed.take(agg);
        tally(acked, &[&printed.seqs]).0.is_empty()
    });
}

#[test]
fn a_reload_that_changes_a_memory_buffer_into_a_file_buffer_moves_every_chunk_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pf) = (free_port(), free_port());
    let memory = "  <buffer tag>\n    @type memory\n    flush_interval 1s\n    retry_wait 200ms\n    retry_max_interval 1s\n  </buffer>\n";
    let file = format!(
        "  <buffer tag>\n    @type file\n    path {}\n    flush_interval 1s\n    retry_wait 200ms\n    retry_max_interval 1s\n  </buffer>\n",
        dir.path().join("fwd-buffer").display()
    );
    let fwd = Ferry::start(&one_output(pf, pa, "to_aggregator", memory, ""), pf);
    let acked = acked_while_down(pf, 1000);
    let mut log = Log { lines: Vec::new() };
    reload(
        &fwd,
        &mut log,
        &one_output(pf, pa, "to_aggregator", &file, ""),
        "HUP",
        1,
    );
    wait_until(Duration::from_secs(20), "the chunks are moved", || {
        log.read(&fwd.stderr);
        log.count("took over") > 0
    });
    assert!(
        std::fs::read_dir(dir.path().join("fwd-buffer"))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".journal")),
        "the events are in the file buffer now"
    );
    let agg = aggregator(pa);
    all_arrive(&agg, &acked);
}

#[test]
fn a_reload_that_removes_a_buffered_output_lets_it_deliver_what_it_holds() {
    let (pa, pf) = (free_port(), free_port());
    let memory = "  <buffer tag>\n    @type memory\n    flush_interval 1s\n    retry_wait 200ms\n    retry_max_interval 1s\n  </buffer>\n";
    let fwd = Ferry::start(&one_output(pf, pa, "old_route", memory, ""), pf);
    let acked = acked_while_down(pf, 1000);
    // The new file sends drill.** elsewhere: the old output leaves the routes but keeps what it
    // holds until its destination takes it.
    let replaced = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {pf}\n</source>\n\
         <match drill.**>\n  @type null\n  @id new_route\n</match>\n"
    );
    let mut log = Log { lines: Vec::new() };
    reload(&fwd, &mut log, &replaced, "HUP", 1);
    let agg = aggregator(pa);
    all_arrive(&agg, &acked);
    wait_until(
        Duration::from_secs(20),
        "the old output stops once empty",
        || {
            log.read(&fwd.stderr);
            log.count("output old_route: delivered what it held and stopped") == 1
        },
    );
}
