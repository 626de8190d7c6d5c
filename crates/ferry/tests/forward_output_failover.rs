//! The forward output between real processes: a forwarder ferry and aggregator ferries, each
//! with a file buffer; events are counted on the aggregators' stdout. Aggregators are killed,
//! stopped, missing and replaced while events flow; every event must arrive.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod forward_support;

use common::{AckedSender, Ferry, free_port, seqs_of, signal};
use forward_support::{
    aggregator_config, forwarder_config, forwarder_config_with, server, wait_until,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Everything a process printed so far: stdout `seq`s and stderr lines.
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

    fn count(&self, needle: &str) -> usize {
        self.log.iter().filter(|l| l.contains(needle)).count()
    }
}

/// Sends `batches` batches of 50 events (tags `app.0` .. `app.3`) from `first`, pausing
/// between them; stops early when `stop` is set. Returns the next sequence number.
fn stream(
    port: u16,
    first: u64,
    batches: u64,
    pause: Duration,
    stop: Arc<AtomicBool>,
    next: Arc<AtomicU64>,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut sender = AckedSender::connect(port).unwrap();
        let mut seq = first;
        for i in 0..batches {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            sender
                .send(&format!("app.{}", i % 4), seq..seq + 50, 100)
                .unwrap();
            seq += 50;
            next.store(seq, Ordering::SeqCst);
            thread::sleep(pause);
        }
        seq
    })
}

fn send_all(port: u16, range: std::ops::Range<u64>) {
    let mut sender = AckedSender::connect(port).unwrap();
    let mut seq = range.start;
    while seq < range.end {
        let end = (seq + 50).min(range.end);
        sender
            .send(&format!("app.{}", seq % 3), seq..end, 100)
            .unwrap();
        seq = end;
    }
}

fn missing(expected: std::ops::Range<u64>, sets: &[&Seen]) -> Vec<u64> {
    let have: BTreeSet<u64> = sets.iter().flat_map(|s| s.seqs.iter().copied()).collect();
    expected.filter(|s| !have.contains(s)).collect()
}

fn aggregator(port: u16, dir: &Path, name: &str) -> Ferry {
    Ferry::start(&aggregator_config(port, &dir.join(name)), port)
}

#[test]
fn every_event_arrives_when_one_of_two_aggregators_is_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pf) = (free_port(), free_port(), free_port());
    let a = aggregator(pa, dir.path(), "a");
    let b = aggregator(pb, dir.path(), "b");
    let params = "  require_ack_response true\n  ack_response_timeout 5s\n  heartbeat_interval 200ms\n  recover_wait 1s\n  hard_timeout 3s\n";
    let servers = server("agg-a", pa, "") + &server("agg-b", pb, "");
    let fwd = Ferry::start(
        &forwarder_config(pf, &dir.path().join("f"), params, &servers),
        pf,
    );
    let next = Arc::new(AtomicU64::new(0));
    let sender = stream(pf, 0, 80, Duration::from_millis(25), Arc::default(), next);
    let (mut sa, mut sb, mut sf) = (Seen::default(), Seen::default(), Seen::default());
    wait_until(
        Duration::from_secs(20),
        "agg-a takes part of the stream",
        || !sa.take(&a).seqs.is_empty(),
    );
    signal(a.child.id(), "KILL");
    let sent = sender.join().unwrap();
    assert_eq!(sent, 4000);
    thread::sleep(Duration::from_millis(300));
    sa.take(&a);
    drop(a);
    // What agg-a acknowledged but had not printed is in its file buffer: a restart prints it.
    let a2 = aggregator(pa, dir.path(), "a");
    let mut sa2 = Seen::default();
    wait_until(Duration::from_secs(60), "every event arrives", || {
        sb.take(&b);
        sa2.take(&a2);
        sf.take(&fwd);
        missing(0..sent, &[&sa, &sb, &sa2]).is_empty()
    });
    let total = sa.seqs.len() + sb.seqs.len() + sa2.seqs.len();
    eprintln!(
        "sent {sent}; agg-a printed {} before SIGKILL and {} after restart, agg-b {}; {} duplicates",
        sa.seqs.len(),
        sa2.seqs.len(),
        sb.seqs.len(),
        total as u64 - sent
    );
    assert!(
        sf.logged("detached forwarding server 'agg-a' host=\"127.0.0.1\""),
        "{:#?}",
        sf.log
    );
    assert!(!sb.seqs.is_empty());
}

#[test]
fn a_stopped_aggregator_is_detached_by_phi_and_recovered_after_recover_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pf) = (free_port(), free_port(), free_port());
    let a = aggregator(pa, dir.path(), "a");
    let b = aggregator(pb, dir.path(), "b");
    // UDP heartbeats are answered by the aggregator process itself, so a stopped process
    // stops answering; a long ack timeout leaves the detection to phi.
    let params = "  require_ack_response true\n  ack_response_timeout 30s\n  heartbeat_type udp\n  heartbeat_interval 200ms\n  phi_threshold 2\n  recover_wait 1s\n  hard_timeout 20s\n";
    let servers = server("agg-a", pa, "") + &server("agg-b", pb, "");
    let conf = forwarder_config_with(
        pf,
        &dir.path().join("f"),
        params,
        &servers,
        "    retry_wait 200ms\n    retry_max_interval 1s\n    retry_forever true\n    flush_thread_count 4\n",
        "",
    );
    let fwd = Ferry::start(&conf, pf);
    let (stop, next) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sender = stream(
        pf,
        0,
        100_000,
        Duration::from_millis(40),
        Arc::clone(&stop),
        Arc::clone(&next),
    );
    let (mut sa, mut sb, mut sf) = (Seen::default(), Seen::default(), Seen::default());
    wait_until(
        Duration::from_secs(20),
        "both aggregators take events",
        || !sa.take(&a).seqs.is_empty() && !sb.take(&b).seqs.is_empty(),
    );
    thread::sleep(Duration::from_millis(500));
    signal(a.child.id(), "STOP");
    let stopped = Instant::now();
    let detached = format!("detached forwarding server 'agg-a' host=\"127.0.0.1\" port={pa} phi=");
    wait_until(Duration::from_secs(20), "agg-a is detached by phi", || {
        sf.take(&fwd).logged(&detached)
    });
    let line = sf
        .log
        .iter()
        .find(|l| l.contains(&detached))
        .unwrap()
        .clone();
    assert!(line.contains("phi_threshold=2"), "{line}");
    eprintln!(
        "detached {:.1} s after SIGSTOP: {line}",
        stopped.elapsed().as_secs_f64()
    );
    // Traffic moves to agg-b.
    let mark = next.load(Ordering::SeqCst);
    wait_until(Duration::from_secs(20), "agg-b takes the stream", || {
        sb.take(&b).seqs.iter().any(|&s| s >= mark)
    });
    signal(a.child.id(), "CONT");
    let recovered = format!("recovered forwarding server 'agg-a' host=\"127.0.0.1\" port={pa}");
    wait_until(Duration::from_secs(20), "agg-a recovers", || {
        sf.take(&fwd).logged(&recovered)
    });
    let mark = next.load(Ordering::SeqCst);
    wait_until(Duration::from_secs(20), "traffic returns to agg-a", || {
        sa.take(&a).seqs.iter().any(|&s| s >= mark)
    });
    stop.store(true, Ordering::SeqCst);
    let sent = sender.join().unwrap();
    wait_until(Duration::from_secs(60), "every event arrives", || {
        sa.take(&a);
        sb.take(&b);
        missing(0..sent, &[&sa, &sb]).is_empty()
    });
    eprintln!(
        "sent {sent}; agg-a {} agg-b {}",
        sa.seqs.len(),
        sb.seqs.len()
    );
}

#[test]
fn with_every_aggregator_down_chunks_back_off_and_all_arrive_once_they_are_up() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pf) = (free_port(), free_port(), free_port());
    let params = "  require_ack_response true\n  heartbeat_interval 200ms\n  recover_wait 600ms\n";
    let servers = server("agg-a", pa, "") + &server("agg-b", pb, "");
    // At debug, every retry shows (at warn, a repeated failure is logged once).
    let fwd = Ferry::start(
        &format!(
            "<system>\n  log_level debug\n</system>\n{}",
            forwarder_config(pf, &dir.path().join("f"), params, &servers)
        ),
        pf,
    );
    send_all(pf, 0..1000);
    let mut sf = Seen::default();
    wait_until(
        Duration::from_secs(20),
        "flushes fail and are retried",
        || {
            sf.take(&fwd)
                .count("temporarily failed to flush the buffer")
                >= 3
        },
    );
    thread::sleep(Duration::from_secs(3));
    sf.take(&fwd);
    let failures = sf.count("temporarily failed to flush the buffer");
    // 3 chunks, retries 200 ms doubling to at most 1 s: a few dozen lines, not a hot loop.
    assert!(failures < 60, "{failures} failed flushes in about 4 s");
    assert!(
        sf.logged("error_class=Fluent::Plugin::ForwardOutput::NoNodesAvailable error=\"no nodes are available\"")
            || sf.logged("error_class=Errno::ECONNREFUSED"),
        "{:#?}",
        sf.log
    );
    let a = aggregator(pa, dir.path(), "a");
    let b = aggregator(pb, dir.path(), "b");
    let (mut sa, mut sb) = (Seen::default(), Seen::default());
    wait_until(Duration::from_secs(60), "every event arrives", || {
        sa.take(&a);
        sb.take(&b);
        missing(0..1000, &[&sa, &sb]).is_empty()
    });
    wait_until(Duration::from_secs(10), "the retry is reported", || {
        sf.take(&fwd).logged("retry succeeded. chunk_id=")
    });
}

#[test]
fn a_standby_aggregator_takes_over_while_the_regular_one_is_down_and_gives_back() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, ps, pf) = (free_port(), free_port(), free_port());
    let a = aggregator(pa, dir.path(), "a");
    let s = aggregator(ps, dir.path(), "s");
    let params = "  require_ack_response true\n  heartbeat_interval 200ms\n  recover_wait 1s\n";
    let servers = server("agg-a", pa, "") + &server("agg-s", ps, "    standby true\n");
    let fwd = Ferry::start(
        &forwarder_config(pf, &dir.path().join("f"), params, &servers),
        pf,
    );
    let (mut sa, mut ss, mut sf) = (Seen::default(), Seen::default(), Seen::default());

    send_all(pf, 0..500);
    wait_until(Duration::from_secs(20), "phase 1 reaches agg-a", || {
        missing(0..500, &[sa.take(&a)]).is_empty()
    });
    assert!(
        ss.take(&s).seqs.is_empty(),
        "the standby is idle while agg-a is up"
    );

    signal(a.child.id(), "KILL");
    thread::sleep(Duration::from_millis(300));
    sa.take(&a);
    drop(a);
    send_all(pf, 500..1000);
    wait_until(
        Duration::from_secs(30),
        "phase 2 reaches the standby",
        || {
            ss.take(&s);
            missing(500..1000, &[&ss]).is_empty()
        },
    );

    let a = aggregator(pa, dir.path(), "a");
    let recovered = format!("recovered forwarding server 'agg-a' host=\"127.0.0.1\" port={pa}");
    wait_until(Duration::from_secs(20), "agg-a recovers", || {
        sf.take(&fwd).logged(&recovered)
    });
    let mut sa2 = Seen::default();
    send_all(pf, 1000..1500);
    wait_until(
        Duration::from_secs(30),
        "phase 3 reaches agg-a again",
        || missing(1000..1500, &[sa2.take(&a)]).is_empty(),
    );
    thread::sleep(Duration::from_millis(500));
    let late: Vec<u64> = ss
        .take(&s)
        .seqs
        .iter()
        .copied()
        .filter(|&x| x >= 1000)
        .collect();
    assert!(late.is_empty(), "the standby gave the load back: {late:?}");
    assert!(sf.logged("detached forwarding server 'agg-a'"));
}

/// Accepts connections on `port` and reads everything, never answering.
struct Silent {
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Silent {
    fn start(port: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, bytes) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (st, by) = (Arc::clone(&stop), Arc::clone(&bytes));
        let thread = thread::spawn(move || {
            let conns = Arc::new(Mutex::new(Vec::new()));
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                        let (st, by) = (Arc::clone(&st), Arc::clone(&by));
                        conns.lock().unwrap().push(thread::spawn(move || {
                            let mut buf = [0u8; 65536];
                            while !st.load(Ordering::SeqCst) {
                                match std::io::Read::read(&mut c, &mut buf) {
                                    Ok(0) => break,
                                    Ok(n) => {
                                        by.fetch_add(n as u64, Ordering::SeqCst);
                                    }
                                    Err(_) => {}
                                }
                            }
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
            for t in conns.lock().unwrap().drain(..) {
                let _ = t.join();
            }
        });
        Self {
            stop,
            bytes,
            thread: Some(thread),
        }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn an_aggregator_that_never_acks_causes_a_resend_and_a_real_one_then_gets_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pf) = (free_port(), free_port());
    let silent = Silent::start(pa);
    let params = "  require_ack_response true\n  ack_response_timeout 1s\n  heartbeat_interval 200ms\n  recover_wait 600ms\n";
    let fwd = Ferry::start(
        &forwarder_config(pf, &dir.path().join("f"), params, &server("agg", pa, "")),
        pf,
    );
    send_all(pf, 0..300);
    let mut sf = Seen::default();
    wait_until(Duration::from_secs(20), "the lost ack is noticed", || {
        sf.take(&fwd)
            .logged("no response from node. regard it as unavailable. host=\"127.0.0.1\"")
            && sf.logged("rolled back to the queue without counting a retry")
    });
    assert!(
        silent.bytes.load(Ordering::SeqCst) > 0,
        "the silent server got a request"
    );
    drop(silent);
    let a = aggregator(pa, dir.path(), "a");
    let mut sa = Seen::default();
    wait_until(
        Duration::from_secs(30),
        "every event arrives at the real aggregator",
        || missing(0..300, &[sa.take(&a)]).is_empty(),
    );
}

#[test]
fn chunks_that_exhaust_their_retries_go_to_the_secondary_file_as_msgpack_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pf) = (free_port(), free_port());
    let out = dir.path().join("secondary");
    let secondary = format!(
        "  <secondary>\n    @type secondary_file\n    directory {}\n    basename dump.${{tag}}\n  </secondary>\n",
        out.display()
    );
    let conf = forwarder_config_with(
        pf,
        &dir.path().join("f"),
        "  heartbeat_interval 200ms\n",
        &server("gone", pa, ""),
        "    retry_max_times 3\n    retry_wait 100ms\n",
        &secondary,
    );
    let fwd = Ferry::start(&conf, pf);
    send_all(pf, 0..120);
    let mut sf = Seen::default();
    wait_until(
        Duration::from_secs(30),
        "the chunks reach the secondary",
        || {
            sf.take(&fwd);
            // Finished files only: a file being written is a hidden temporary until renamed.
            let files: Vec<_> = std::fs::read_dir(&out)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                        .collect()
                })
                .unwrap_or_default();
            let seqs: BTreeSet<u64> = files
                .iter()
                .flat_map(|p| forward_support::seqs_in(&std::fs::read(p).unwrap()))
                .collect();
            seqs.len() == 120
        },
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("dump.app.")),
        "{names:?}"
    );
    assert!(sf.logged("written to the secondary file"), "{:#?}", sf.log);
}
