//! ferry's no-loss promise on defaults and across planned stops, between real processes,
//! counting every event:
//!
//! - a forward output with no `<buffer>` section gets a file buffer under the root directory,
//!   so a forwarder killed with SIGKILL while its aggregator is down loses no acknowledged
//!   event;
//! - a memory buffer that cannot flush at SIGTERM (aggregator down) is written under the root
//!   directory and sent by the next start, also when the configuration changed in between.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod drill_support;
mod forward_support;

use common::{Ferry, free_port, signal};
use drill_support::{Printed, Stream, tally};
use forward_support::wait_until;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// An aggregator that prints every event as a JSON line, unbuffered.
fn aggregator(port: u16) -> Ferry {
    let conf = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
    );
    Ferry::start(&conf, port)
}

/// A forwarder on `root`, started from `conf`; waits until its forward input listens.
fn forwarder(conf: &str, root: &Path, port: u16) -> Ferry {
    let root = root.display().to_string();
    let f = Ferry::start_logged(conf, &[("FERRY_ROOT_DIR", root.as_str())]);
    wait_until(Duration::from_secs(20), "the forwarder listens", || {
        ferry_bench::ferryproc::listening(port)
    });
    f
}

/// Streams to the forwarder until `n` events are acknowledged; returns the stream.
fn stream_until(port: u16, n: usize) -> Stream {
    let stream = Stream::start(
        SocketAddr::from(([127, 0, 0, 1], port)),
        50,
        100,
        Duration::from_millis(2),
        Duration::from_secs(10),
    );
    wait_until(
        Duration::from_secs(60),
        "the forwarder acknowledges events",
        || stream.acked_count() >= n,
    );
    stream
}

/// Waits until the aggregator printed every acknowledged event; fails with what is missing.
fn all_arrive(agg: &Ferry, acked: &[u64]) -> u64 {
    let mut printed = Printed::default();
    wait_until(
        Duration::from_secs(60),
        "every acknowledged event at the aggregator",
        || {
            printed.take(agg);
            tally(acked, &[&printed.seqs]).0.is_empty()
        },
    );
    thread_settle();
    printed.take(agg);
    let (missing, dups) = tally(acked, &[&printed.seqs]);
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost",
        missing.len()
    );
    dups
}

/// Lets late duplicates show up before they are counted.
fn thread_settle() {
    std::thread::sleep(Duration::from_millis(500));
}

fn journals(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
            .count()
    })
}

#[test]
fn on_defaults_a_forwarder_killed_with_sigkill_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fwd-root");
    let (pa, pf) = (free_port(), free_port());
    // No <buffer> section, no root_dir: everything an operator would leave untouched.
    let conf = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {pf}\n</source>\n\
         <match **>\n  @type forward\n  @id to_aggregator\n  require_ack_response true\n\
         <server>\n    host 127.0.0.1\n    port {pa}\n  </server>\n</match>\n"
    );
    // The aggregator is down: everything the forwarder acknowledges sits in its buffer.
    let fwd = forwarder(&conf, &root, pf);
    let stream = stream_until(pf, 2000);
    signal(fwd.child.id(), "KILL");
    let acked = stream.finish();
    drop(fwd);
    let buffer = root.join("buffer/to_aggregator");
    assert!(
        journals(&buffer) > 0,
        "the default buffer is a file buffer in {}",
        buffer.display()
    );
    let agg = aggregator(pa);
    let _fwd = forwarder(&conf, &root, pf);
    let dups = all_arrive(&agg, &acked);
    eprintln!(
        "{} events acknowledged before SIGKILL, all delivered after the restart ({dups} duplicates)",
        acked.len()
    );
    assert_eq!(
        dups, 0,
        "nothing was sent before the kill, so nothing is sent twice"
    );
}

/// A forwarder whose forward output has an explicit memory buffer.
fn memory_forwarder_config(pf: u16, pa: u16, extra: &str, flush_interval: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {pf}\n</source>\n{extra}\
         <match drill.**>\n  @type forward\n  @id to_aggregator\n  require_ack_response true\n\
         <server>\n    host 127.0.0.1\n    port {pa}\n  </server>\n\
         <buffer tag>\n    @type memory\n    flush_interval {flush_interval}\n    retry_wait 200ms\n    retry_max_interval 1s\n    retry_forever true\n  </buffer>\n</match>\n"
    )
}

/// SIGTERM with the aggregator down and a memory buffer, then a start on `second_conf` with the
/// aggregator up: every acknowledged event arrives.
fn sigterm_drill(first_conf: &str, second_conf: &str, pa: u16, pf: u16) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fwd-root");
    let mut fwd = forwarder(first_conf, &root, pf);
    assert!(
        fwd.stderr_so_far()
            .iter()
            .any(|l| l.contains("to_aggregator has a memory buffer") && l.contains("crashes")),
        "ferry warns at start that a memory buffer's acks are not crash-safe"
    );
    let stream = stream_until(pf, 2000);
    signal(fwd.child.id(), "TERM");
    let status = fwd.child.wait().unwrap();
    let acked = stream.finish();
    assert!(status.success(), "ferry stops cleanly on SIGTERM: {status}");
    let logs: Vec<String> = fwd.stderr.try_iter().collect();
    assert!(
        logs.iter().any(|l| l.contains("were written to")),
        "ferry says where the memory buffer went:\n{}",
        logs.join("\n")
    );
    assert!(
        !logs.iter().any(|l| l.contains("are lost")),
        "nothing is lost at a planned stop:\n{}",
        logs.join("\n")
    );
    drop(fwd);
    assert!(journals(&root.join("spill/to_aggregator")) > 0);
    let agg = aggregator(pa);
    let fwd = forwarder(second_conf, &root, pf);
    let dups = all_arrive(&agg, &acked);
    let logs = fwd.stderr_so_far();
    assert!(
        logs.iter().any(|l| l.contains("took back")),
        "ferry says it took the spilled events back:\n{}",
        logs.join("\n")
    );
    wait_until(
        Duration::from_secs(10),
        "the spill directory is removed",
        || !root.join("spill/to_aggregator").exists(),
    );
    eprintln!(
        "{} events acknowledged before SIGTERM, all delivered after the restart ({dups} duplicates)",
        acked.len()
    );
    assert_eq!(dups, 0);
}

#[test]
fn a_memory_buffer_that_cannot_flush_at_sigterm_is_delivered_after_the_restart() {
    let (pa, pf) = (free_port(), free_port());
    let conf = memory_forwarder_config(pf, pa, "", "1s");
    sigterm_drill(&conf, &conf, pa, pf);
}

#[test]
fn a_spilled_memory_buffer_is_delivered_by_a_changed_configuration_with_the_same_id() {
    let (pa, pf) = (free_port(), free_port());
    let first = memory_forwarder_config(pf, pa, "", "1s");
    // Another filter, another output, other buffer parameters: the output keeps its @id.
    let extra = "<filter other.**>\n  @type record_transformer\n  <record>\n    hop fwd\n  </record>\n</filter>\n\
                 <match other.**>\n  @type null\n</match>\n";
    let second = memory_forwarder_config(pf, pa, extra, "2s");
    sigterm_drill(&first, &second, pa, pf);
}

#[test]
fn a_buffer_directory_no_output_reads_any_more_is_said_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fwd-root");
    let (pa, pf) = (free_port(), free_port());
    let conf = |id: &str| {
        format!(
            "<source>\n  @type forward\n  bind 127.0.0.1\n  port {pf}\n</source>\n\
             <match **>\n  @type forward\n  @id {id}\n  <server>\n    host 127.0.0.1\n    port {pa}\n  </server>\n</match>\n"
        )
    };
    let mut fwd = forwarder(&conf("first"), &root, pf);
    let stream = stream_until(pf, 200);
    signal(fwd.child.id(), "TERM");
    assert!(fwd.child.wait().unwrap().success());
    drop(stream.finish());
    drop(fwd);
    let renamed = forwarder(&conf("second"), &root, pf);
    let logs = renamed.stderr_so_far();
    let old = root.join("buffer/first");
    assert!(
        logs.iter().any(|l| l.contains(&old.display().to_string())
            && l.contains("no output of this configuration reads")),
        "{logs:#?}"
    );
}
