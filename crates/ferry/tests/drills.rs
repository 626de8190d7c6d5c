//! Failure drills between real processes, counting every event:
//!
//! - SIGKILL of the aggregator and of the forwarder, again and again, during a stream with
//!   acks: nothing acknowledged is lost, duplicates stay within one chunk per kill;
//! - the buffer's filesystem fills up (a small tmpfs): no ack while it is full, the refusal is
//!   logged once for the episode, nothing is lost, and events are accepted again when space
//!   returns;
//! - a network partition between forwarder and aggregator (network namespaces, a veth pair,
//!   nftables DROP): the silent server is detached, traffic fails over, nothing is lost, and
//!   traffic fails back once the partition heals;
//! - 10,000 idle connections plus slowloris peers: a good client's ack latency is unchanged.
//!
//! Corrupt and torn buffer files at start are drilled in `buffer_durability.rs`.
//!
//! Sized for CI; `FERRY_DRILLS_LONG=1` runs longer variants (more kills, longer streams).
//! The tmpfs and network-namespace drills need root; under `scripts/test` (FERRY_TEST_DEPS=1)
//! a missing capability fails the drill, elsewhere it is skipped with a note.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod drill_support;
mod forward_support;

use common::{AckedSender, Ferry, ferry_bin, free_port, signal};
use drill_support::{Printed, Stream, tally};
use forward_support::{aggregator_config, forwarder_config_with, server, wait_until};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

fn long() -> bool {
    std::env::var_os("FERRY_DRILLS_LONG").is_some()
}

/// Whether a drill that needs `what` must fail (under scripts/test) rather than be skipped.
fn required(what: &str) -> bool {
    if std::env::var("FERRY_TEST_DEPS").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: {what} is not available here (scripts/test makes it a failure)");
    false
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

const CHUNK_RECORDS: u64 = 500;

fn aggregator(port: u16, dir: &Path) -> Ferry {
    let conf = aggregator_config(port, dir).replace(
        "chunk_limit_size 256k\n",
        &format!("chunk_limit_size 256k\n    chunk_limit_records {CHUNK_RECORDS}\n"),
    );
    Ferry::start(&conf, port)
}

const FORWARD_PARAMS: &str = "  require_ack_response true\n  ack_response_timeout 3s\n  heartbeat_interval 200ms\n  recover_wait 500ms\n  hard_timeout 2s\n";

fn forwarder_buffer_params() -> String {
    format!(
        "    retry_wait 200ms\n    retry_max_interval 1s\n    retry_forever true\n    chunk_limit_records {CHUNK_RECORDS}\n"
    )
}

#[test]
fn sigkills_of_the_aggregator_and_the_forwarder_lose_no_acknowledged_event() {
    let kills_each = if long() { 100 } else { 20 };
    let dir = tempfile::tempdir().unwrap();
    let (pa, pf) = (free_port(), free_port());
    let agg_dir = dir.path().join("agg");
    let fwd_conf = forwarder_config_with(
        pf,
        &dir.path().join("fwd"),
        FORWARD_PARAMS,
        &server("agg", pa, ""),
        &forwarder_buffer_params(),
        "",
    );
    let mut agg = aggregator(pa, &agg_dir);
    let mut fwd = Ferry::start(&fwd_conf, pf);
    let addr = SocketAddr::from(([127, 0, 0, 1], pf));
    let stream = Stream::start(
        addr,
        50,
        100,
        Duration::from_millis(5),
        Duration::from_secs(10),
    );
    let mut printed = Printed::default();
    let started = Instant::now();
    for round in 0..kills_each {
        // The aggregator: killed mid-stream, restarted on the same port and buffer.
        let before = stream.acked_count();
        wait_until(Duration::from_secs(30), "events flow before a kill", || {
            printed.take(&agg);
            stream.acked_count() >= before + 1000
        });
        signal(agg.child.id(), "KILL");
        printed.drain(&agg);
        drop(agg);
        agg = aggregator(pa, &agg_dir);
        let mark = printed.seqs.len();
        wait_until(
            Duration::from_secs(30),
            &format!("the restarted aggregator prints new events (round {round})"),
            || {
                printed.take(&agg);
                printed.seqs.len() > mark
            },
        );
        // The forwarder: killed while the sender waits for acks, restarted on its buffer.
        let before = stream.acked_count();
        wait_until(Duration::from_secs(30), "the forwarder acks", || {
            printed.take(&agg);
            stream.acked_count() >= before + 1000
        });
        signal(fwd.child.id(), "KILL");
        drop(fwd);
        fwd = Ferry::start(&fwd_conf, pf);
    }
    let before = stream.acked_count();
    wait_until(Duration::from_secs(30), "the stream resumes", || {
        stream.acked_count() >= before + 300
    });
    let failures = stream.failures();
    let acked = stream.finish();
    wait_until(
        Duration::from_secs(120),
        "every acknowledged event at the aggregator",
        || {
            printed.take(&agg);
            tally(&acked, &[&printed.seqs]).0.is_empty()
        },
    );
    let (missing, dups) = tally(&acked, &[&printed.seqs]);
    let kills = 2 * kills_each as u64;
    eprintln!(
        "{kills} SIGKILLs in {:?}: {} events acknowledged, {} printed, {} lost, {dups} duplicated ({:.1} per kill; bound {CHUNK_RECORDS} per kill); {failures} sends re-sent",
        started.elapsed(),
        acked.len(),
        printed.seqs.len(),
        missing.len(),
        dups as f64 / kills as f64,
    );
    assert!(missing.is_empty());
    assert!(
        dups <= kills * CHUNK_RECORDS,
        "{dups} duplicates after {kills} kills: more than one chunk ({CHUNK_RECORDS} events) per kill"
    );
    assert!(
        failures >= kills_each as u64,
        "the forwarder kills interrupted the sender"
    );
}

/// A tmpfs mounted for the duration of a test.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                &path.display().to_string(),
            ],
        )?;
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", &self.0.display().to_string()]);
    }
}

#[test]
fn a_full_buffer_filesystem_refuses_without_ack_loses_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let _tmpfs = match Tmpfs::mount(&spool, "2m") {
        Ok(t) => t,
        Err(e) => {
            assert!(!required(&format!("a tmpfs mount ({e})")), "{e}");
            return;
        }
    };
    let (pa, pf) = (free_port(), free_port());
    let fwd_conf = forwarder_config_with(
        pf,
        &spool.join("buf"),
        FORWARD_PARAMS,
        &server("agg", pa, ""),
        "    retry_wait 200ms\n    retry_max_interval 1s\n    retry_forever true\n    chunk_limit_size 256k\n    total_limit_size 1g\n",
        "",
    )
    .replace("    chunk_limit_size 64k\n", "");
    let fwd = Ferry::start(&fwd_conf, pf);
    // Nothing drains yet (the aggregator is not running): about 1 KB per event fills 2 MB.
    let addr = SocketAddr::from(([127, 0, 0, 1], pf));
    let stream = Stream::start(
        addr,
        20,
        1000,
        Duration::from_millis(2),
        Duration::from_secs(2),
    );
    wait_until(
        Duration::from_secs(60),
        "sends refused by a full disk",
        || stream.failures() >= 3,
    );
    let acked_while_full = stream.acked_count();
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        stream.acked_count(),
        acked_while_full,
        "nothing is acknowledged while the buffer cannot store it"
    );
    let mut log = Vec::new();
    fwd.wait_stderr("events are refused", Duration::from_secs(10), &mut log);

    // Space returns as the aggregator takes the buffered chunks.
    let agg = aggregator(pa, &dir.path().join("agg"));
    wait_until(Duration::from_secs(60), "events accepted again", || {
        stream.acked_count() >= acked_while_full + 500
    });
    // The episode ends once events have been accepted for a while after the last refusal.
    fwd.wait_stderr("accepting events again", Duration::from_secs(60), &mut log);
    let failures = stream.failures();
    let acked = stream.finish();
    let mut printed = Printed::default();
    wait_until(
        Duration::from_secs(60),
        "every acknowledged event arrives",
        || {
            printed.take(&agg);
            tally(&acked, &[&printed.seqs]).0.is_empty()
        },
    );
    log.extend(fwd.stderr_so_far());
    let refused = log
        .iter()
        .filter(|l| l.contains("events are refused"))
        .count();
    let resumed = log
        .iter()
        .filter(|l| l.contains("accepting events again"))
        .count();
    let (missing, dups) = tally(&acked, &[&printed.seqs]);
    eprintln!(
        "{} events acknowledged ({acked_while_full} before the disk filled), {failures} sends refused, {} lost, {dups} duplicated; refusal logged {refused}x, recovery {resumed}x",
        acked.len(),
        missing.len()
    );
    assert!(missing.is_empty());
    assert_eq!(refused, 1, "one log line for the episode: {log:#?}");
    assert_eq!(resumed, 1, "one log line when it ends: {log:#?}");
}

/// A network namespace joined to the host by a veth pair: host side `10.77.N.1`, namespace
/// side `10.77.N.2`. Deleted (with its veth pair) on drop.
struct NetNs {
    name: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
}

impl NetNs {
    fn create() -> Result<Self, String> {
        let pid = std::process::id();
        let name = format!("ferry{pid}");
        let n = (pid % 250) as u8 + 1;
        let (host_ip, ns_ip) = (Ipv4Addr::new(10, 77, n, 1), Ipv4Addr::new(10, 77, n, 2));
        let (h, p) = (format!("fy{pid}h"), format!("fy{pid}n"));
        run("ip", &["netns", "add", &name])?;
        let ns = Self {
            name,
            host_ip,
            ns_ip,
        };
        run(
            "ip",
            &["link", "add", &h, "type", "veth", "peer", "name", &p],
        )?;
        run("ip", &["link", "set", &p, "netns", &ns.name])?;
        run("ip", &["addr", "add", &format!("{host_ip}/30"), "dev", &h])?;
        run("ip", &["link", "set", &h, "up"])?;
        ns.exec("ip", &["addr", "add", &format!("{ns_ip}/30"), "dev", &p])?;
        ns.exec("ip", &["link", "set", &p, "up"])?;
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn exec(&self, cmd: &str, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, cmd];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Drops everything the namespace sends to `port` on the host (TCP and UDP).
    fn partition(&self, port: u16) -> Result<(), String> {
        self.exec("nft", &["add", "table", "inet", "drill"])?;
        self.exec(
            "nft",
            &[
                "add",
                "chain",
                "inet",
                "drill",
                "out",
                "{ type filter hook output priority 0 ; }",
            ],
        )?;
        for proto in ["tcp", "udp"] {
            self.exec(
                "nft",
                &[
                    "add",
                    "rule",
                    "inet",
                    "drill",
                    "out",
                    "ip",
                    "daddr",
                    &self.host_ip.to_string(),
                    proto,
                    "dport",
                    &port.to_string(),
                    "drop",
                ],
            )?;
        }
        Ok(())
    }

    fn heal(&self) -> Result<(), String> {
        self.exec("nft", &["delete", "table", "inet", "drill"])
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

fn reachable(ip: Ipv4Addr, port: u16) -> impl Fn(&Path) -> bool {
    move |_| {
        TcpStream::connect_timeout(
            &SocketAddr::new(IpAddr::V4(ip), port),
            Duration::from_millis(200),
        )
        .is_ok()
    }
}

#[test]
fn a_network_partition_detaches_the_silent_aggregator_fails_over_loses_nothing_and_fails_back() {
    let ns = match NetNs::create() {
        Ok(ns) => ns,
        Err(e) => {
            assert!(!required(&format!("network namespaces ({e})")), "{e}");
            return;
        }
    };
    if let Err(e) = ns.partition(1).and_then(|()| ns.heal()) {
        assert!(!required(&format!("nftables in a namespace ({e})")), "{e}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pf) = (free_port(), free_port(), free_port());
    let host = ns.host_ip.to_string();
    let start_agg = |port: u16, name: &str| {
        let conf = aggregator_config(port, &dir.path().join(name))
            .replace("bind 127.0.0.1", &format!("bind {host}"));
        Ferry::start_cmd(
            Command::new(ferry_bin()),
            &conf,
            reachable(ns.host_ip, port),
        )
    };
    let a = start_agg(pa, "a");
    let b = start_agg(pb, "b");
    let servers = server("agg-a", pa, "").replace("127.0.0.1", &host)
        + &server("agg-b", pb, "").replace("127.0.0.1", &host);
    let fwd_conf = forwarder_config_with(
        pf,
        &dir.path().join("fwd"),
        FORWARD_PARAMS,
        &servers,
        &forwarder_buffer_params(),
        "",
    )
    .replace("bind 127.0.0.1", "bind 0.0.0.0");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.name, ferry_bin()]);
    let fwd = Ferry::start_cmd(cmd, &fwd_conf, reachable(ns.ns_ip, pf));
    let stream = Stream::start(
        SocketAddr::new(IpAddr::V4(ns.ns_ip), pf),
        50,
        100,
        Duration::from_millis(10),
        Duration::from_secs(10),
    );
    let (mut pa_seen, mut pb_seen) = (Printed::default(), Printed::default());
    wait_until(
        Duration::from_secs(30),
        "both aggregators take traffic",
        || {
            pa_seen.take(&a);
            pb_seen.take(&b);
            !pa_seen.seqs.is_empty() && !pb_seen.seqs.is_empty()
        },
    );

    ns.partition(pa).unwrap();
    let cut = Instant::now();
    let mut log = Vec::new();
    let detached = fwd.wait_stderr(
        "detached forwarding server 'agg-a'",
        Duration::from_secs(30),
        &mut log,
    );
    let detach_after = cut.elapsed();
    let b_mark = pb_seen.seqs.len();
    wait_until(
        Duration::from_secs(30),
        "agg-b takes the whole stream",
        || {
            pa_seen.take(&a);
            pb_seen.take(&b);
            pb_seen.seqs.len() >= b_mark + 1000
        },
    );

    ns.heal().unwrap();
    let healed = Instant::now();
    fwd.wait_stderr(
        "recovered forwarding server 'agg-a'",
        Duration::from_secs(30),
        &mut log,
    );
    let a_mark = pa_seen.seqs.len();
    wait_until(
        Duration::from_secs(30),
        "traffic fails back to agg-a",
        || {
            pa_seen.take(&a);
            pb_seen.take(&b);
            pa_seen.seqs.len() >= a_mark + 200
        },
    );
    let failback_after = healed.elapsed();

    let acked = stream.finish();
    wait_until(
        Duration::from_secs(60),
        "every acknowledged event arrives",
        || {
            pa_seen.take(&a);
            pb_seen.take(&b);
            tally(&acked, &[&pa_seen.seqs, &pb_seen.seqs]).0.is_empty()
        },
    );
    let (missing, dups) = tally(&acked, &[&pa_seen.seqs, &pb_seen.seqs]);
    eprintln!(
        "partition: detached after {detach_after:?} ({detached}); failback {failback_after:?} after healing; {} acknowledged, {} lost, {dups} duplicated",
        acked.len(),
        missing.len()
    );
    assert!(missing.is_empty());
    assert!(
        dups <= 2 * CHUNK_RECORDS,
        "{dups} duplicates: more than the chunks in flight to agg-a when it fell silent"
    );
}

/// The soft open-file limit of this process.
fn open_file_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Ack latencies of `n` one-event requests on one connection, sorted.
fn ack_latencies(port: u16, n: usize) -> Vec<Duration> {
    let mut s = AckedSender::connect(port).unwrap();
    let mut v: Vec<Duration> = (0..n as u64)
        .map(|i| {
            let t = Instant::now();
            s.send("drill.good", i..i + 1, 50).unwrap();
            let d = t.elapsed();
            thread::sleep(Duration::from_millis(2));
            d
        })
        .collect();
    v.sort();
    v
}

fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn ten_thousand_idle_connections_and_slowloris_peers_leave_a_good_clients_acks_unchanged() {
    let idle_count: usize = if long() { 15_000 } else { 10_000 };
    let limit = open_file_limit();
    assert!(
        limit >= idle_count as u64 + 500,
        "this drill holds {idle_count} connections: raise the open file limit (ulimit -n {limit})"
    );
    let port = free_port();
    let ferry = Ferry::start(
        &format!(
            "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n  max_connections {}\n</source>\n<match **>\n  @type null\n</match>\n",
            idle_count + 100
        ),
        port,
    );
    ack_latencies(port, 50); // warm-up
    let alone = ack_latencies(port, 400);
    let rss_before = rss_kib(ferry.child.id());

    let mut idle = Vec::with_capacity(idle_count);
    for _ in 0..idle_count {
        idle.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let slow: Vec<_> = (0..8)
        .map(|c| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                use std::io::Write;
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                // A plausible PackedForward header, then one byte every 20 ms.
                let mut bytes = vec![0x93u8, 0xa4];
                bytes.extend_from_slice(format!("s{c:03}").as_bytes());
                bytes.extend(std::iter::repeat_n(0x92u8, 10_000));
                let mut sent = 0;
                for b in bytes {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if s.write_all(&[b]).is_err() {
                        break;
                    }
                    sent += 1;
                    thread::sleep(Duration::from_millis(20));
                }
                sent
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let loaded = ack_latencies(port, 400);
    let rss_loaded = rss_kib(ferry.child.id());
    stop.store(true, Ordering::Relaxed);
    let slow_bytes: Vec<u64> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    // The idle connections are still open and served: a request on the first one is acked.
    let mut first = AckedSender::from_stream(idle.swap_remove(0)).unwrap();
    first.send("drill.idle", 0..1, 10).unwrap();
    let (p50a, p99a, p50l, p99l) = (
        pct(&alone, 0.5),
        pct(&alone, 0.99),
        pct(&loaded, 0.5),
        pct(&loaded, 0.99),
    );
    eprintln!(
        "good client's ack latency alone p50 {p50a:?} p99 {p99a:?}; with {idle_count} idle connections and 8 slowloris peers p50 {p50l:?} p99 {p99l:?}; ferry RSS {} MiB -> {} MiB; slowloris bytes {slow_bytes:?}",
        rss_before / 1024,
        rss_loaded / 1024
    );
    assert!(slow_bytes.iter().all(|b| *b > 5), "the slowloris peers ran");
    // An idle connection holds a task, a socket and a 1 KiB read buffer: about 5 KiB.
    let per_conn = (rss_loaded.saturating_sub(rss_before)) * 1024 / idle_count as u64;
    assert!(
        per_conn < 12 * 1024,
        "{per_conn} bytes of RSS per idle connection"
    );
    assert!(
        p50l <= (p50a * 2).max(p50a + Duration::from_millis(5)),
        "median ack latency {p50l:?} with idle and slow peers, {p50a:?} alone"
    );
    assert!(
        p99l <= (p99a * 3).max(p99a + Duration::from_millis(20)),
        "p99 ack latency {p99l:?} with idle and slow peers, {p99a:?} alone"
    );
    drop(idle);
}
