//! The forward output as a client, in-process against fake aggregators whose behaviour each
//! test controls: DNS that hangs, heartbeat faults, kept-alive heartbeats, request pieces and
//! their ack ids, lost and wrong acks, gzip and integer times.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod forward_support;

use ferry::output::forward::dns::{BoxFuture, Resolve};
use ferry::output::forward::{Forward, ForwardError};
use ferry::task::Tasks;
use forward_support::*;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn conf(params: &str, servers: &str) -> String {
    format!("<match **>\n  @type forward\n{params}{servers}</match>\n")
}

#[derive(Debug, Default)]
struct HangingResolver {
    calls: AtomicUsize,
}

impl Resolve for HangingResolver {
    fn lookup(&self, _host: String, _port: u16) -> BoxFuture<std::io::Result<Vec<SocketAddr>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_that_never_answers_does_not_stop_delivery_to_a_server_given_by_address() {
    let agg = FakeAggregator::start(AckPolicy::Ack).await;
    let servers = format!(
        "  <server>\n    name stuck\n    host never-answers.invalid\n  </server>\n{}",
        server("direct", agg.port, "")
    );
    let params = "  require_ack_response true\n  resolve_timeout 300ms\n  heartbeat_interval 100ms\n  phi_threshold 2\n";
    let resolver = Arc::new(HangingResolver::default());
    let fwd = Forward::with_resolver(
        "dns",
        forward_config(&conf(params, &servers)),
        resolver.clone(),
    );
    let tasks = Tasks::new();
    fwd.start(&tasks);
    let buffer = memory_buffer_with("dns", 20, 50, 20);
    let started = Instant::now();
    for chunk in take_all(&buffer) {
        let sent = tokio::time::timeout(Duration::from_secs(5), fwd.write_chunk(&chunk)).await;
        sent.expect("write_chunk is bounded by resolve_timeout")
            .unwrap();
        buffer.ack(chunk).unwrap();
    }
    let mut seqs = agg.state.seqs();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..1000).collect::<Vec<_>>());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        resolver.calls.load(Ordering::SeqCst),
        1,
        "one lookup in flight per server, however many connects wait on it"
    );
    assert!(fwd.metrics().dns_failures.load(Ordering::Relaxed) >= 1);
    tasks.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_timer_survives_panics_and_errors_and_the_server_recovers() {
    let agg = FakeAggregator::start(AckPolicy::Ack).await;
    let params =
        "  heartbeat_interval 50ms\n  phi_threshold 1\n  recover_wait 200ms\n  hard_timeout 1s\n";
    let fwd = Forward::new(
        "hb",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    fwd.inject_heartbeat_fault(Some(Arc::new(move |_node| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        match n {
            n if n < 40 && n % 2 == 0 => panic!("injected heartbeat panic {n}"),
            n if n < 40 => Err(format!("injected heartbeat error {n}")),
            _ => Ok(()),
        }
    })));
    let tasks = Tasks::new();
    fwd.start(&tasks);
    let m = fwd.metrics();
    eventually(
        Duration::from_secs(10),
        "the faulty server is detached",
        || m.detach_count.load(Ordering::Relaxed) >= 1,
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the faults end and the server recovers",
        || fwd.nodes()[0].is_available() && m.recover_count.load(Ordering::Relaxed) >= 1,
    )
    .await;
    assert!(calls.load(Ordering::SeqCst) > 40, "the timer kept ticking");
    assert!(m.heartbeat_errors.load(Ordering::Relaxed) >= 40);
    assert_eq!(m.healthy_nodes_count.load(Ordering::Relaxed), 1);
    tasks.shutdown(Duration::from_secs(2)).await;
}

async fn accepts_during(keepalive: bool, run: Duration) -> (usize, usize) {
    let agg = FakeAggregator::start(AckPolicy::Ack).await;
    let params = format!("  heartbeat_interval 50ms\n  keepalive {keepalive}\n");
    let fwd = Forward::new(
        "ka",
        forward_config(&conf(&params, &server("a", agg.port, ""))),
    );
    let tasks = Tasks::new();
    fwd.start(&tasks);
    tokio::time::sleep(run).await;
    tasks.shutdown(Duration::from_secs(2)).await;
    assert!(fwd.nodes()[0].is_available());
    (
        agg.state.accepts.load(Ordering::SeqCst),
        agg.state.nils.load(Ordering::SeqCst),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_heartbeats_reuse_one_connection_instead_of_connecting_every_interval() {
    let (accepts, nils) = accepts_during(true, Duration::from_millis(1500)).await;
    assert!(accepts <= 2, "keepalive: {accepts} connections in 1.5 s");
    assert!(nils >= 10, "each heartbeat writes a nil request: {nils}");
    let (accepts, nils) = accepts_during(false, Duration::from_millis(1500)).await;
    assert!(
        accepts >= 10,
        "without keepalive each heartbeat connects: {accepts}"
    );
    assert_eq!(nils, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_larger_than_max_request_size_goes_in_pieces_with_distinct_ack_ids() {
    let agg = FakeAggregator::start(AckPolicy::Ack).await;
    let params = "  require_ack_response true\n  max_request_size 16k\n  heartbeat_type none\n";
    let fwd = Forward::new(
        "split",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    // Chunk 0: 20 appends of ~4 KiB in 8 KiB segments (cut on append boundaries); chunk 1:
    // one 100 KiB append (cut on entry boundaries).
    let segmented = memory_buffer("seg", 1, 20, 40, 80, |c| c.segment_target_size = 8 * 1024);
    let one_append = memory_buffer("big", 1, 1, 1000, 80, |_| {});
    for buffer in [&segmented, &one_append] {
        let chunk = take_all(buffer).pop().unwrap();
        let records = chunk.records();
        let before = agg.state.requests().len();
        fwd.write_chunk(&chunk).await.unwrap();
        let requests = agg.state.requests()[before..].to_vec();
        assert!(requests.len() >= 6, "{} requests", requests.len());
        let mut ids = HashSet::new();
        for r in &requests {
            assert!(
                r.frame_len <= 16 * 1024 + 200,
                "request of {} bytes",
                r.frame_len
            );
            assert!(ids.insert(r.chunk.clone().unwrap()), "ack ids are distinct");
        }
        let first = ferry_proto::options::ChunkId::from_unique_id(&chunk.unique_id());
        assert_eq!(requests[0].chunk.as_deref(), Some(&first.bytes[..]));
        assert_eq!(requests.iter().map(|r| r.records).sum::<u64>(), records);
        buffer.ack(chunk).unwrap();
    }
    let seqs = agg.state.seqs();
    assert_eq!(seqs.len(), 800 + 1000);
    assert!(fwd.metrics().chunks_split.load(Ordering::Relaxed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_of_a_chunk_are_written_ahead_of_their_acks_on_one_connection() {
    // The aggregator acks nothing until two requests (the pipeline's depth) arrived on the
    // connection: a client that waited for each ack before the next request would time out.
    let agg = FakeAggregator::start(AckPolicy::AfterRequests(2)).await;
    let params = "  require_ack_response true\n  ack_response_timeout 2s\n  max_request_size 16k\n  heartbeat_type none\n";
    let fwd = Forward::new(
        "pipelined",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    let segmented = memory_buffer("pipe", 1, 20, 40, 80, |c| c.segment_target_size = 8 * 1024);
    let chunk = take_all(&segmented).pop().unwrap();
    let records = chunk.records();
    fwd.write_chunk(&chunk).await.unwrap();
    let requests = agg.state.requests();
    assert!(requests.len() >= 6, "{} requests", requests.len());
    assert_eq!(requests.iter().map(|r| r.records).sum::<u64>(), records);
    assert_eq!(
        agg.state.accepts.load(Ordering::SeqCst),
        1,
        "every request of the chunk went on one connection"
    );
    let m = fwd.metrics();
    assert_eq!(
        m.acks_received.load(Ordering::Relaxed),
        requests.len() as u64
    );
    assert_eq!(m.duplicates_resent.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_lost_ack_only_the_unacknowledged_pieces_are_sent_again_with_the_same_ids() {
    let agg = FakeAggregator::start(AckPolicy::Ack).await;
    *agg.state.fail_from.lock().unwrap() = Some(3);
    let params = "  require_ack_response true\n  ack_response_timeout 300ms\n  max_request_size 16k\n  heartbeat_type none\n";
    let fwd = Forward::new(
        "resume",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    let buffer = memory_buffer("resume", 1, 1, 1000, 80, |_| {});
    let chunk = take_all(&buffer).pop().unwrap();
    let err = fwd.write_chunk(&chunk).await.unwrap_err();
    assert!(
        err.rolls_back(),
        "a lost ack rolls back without a retry: {err}"
    );
    assert!(matches!(err, ForwardError::RolledBack(ref e) if e.ack_lost()));
    let first_try = agg.state.requests();
    assert_eq!(first_try.len(), 4);
    *agg.state.fail_from.lock().unwrap() = None;
    fwd.write_chunk(&chunk).await.unwrap();
    let all = agg.state.requests();
    let resent = &all[4];
    assert_eq!(
        resent.chunk, first_try[3].chunk,
        "the re-sent piece keeps its ack id"
    );
    let ids: Vec<_> = all.iter().map(|r| r.chunk.clone().unwrap()).collect();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len() - 1,
        "only the unacknowledged piece went twice"
    );
    let m = fwd.metrics();
    assert_eq!(m.duplicates_resent.load(Ordering::Relaxed), 1);
    assert_eq!(m.acks_lost.load(Ordering::Relaxed), 1);
    let mut seqs = agg.state.seqs();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_only_the_requests_without_an_ack_are_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let agg = FakeAggregator::start(AckPolicy::Ack).await;
    *agg.state.fail_from.lock().unwrap() = Some(5);
    let params = "  require_ack_response true\n  ack_response_timeout 300ms\n  max_request_size 16k\n  heartbeat_type none\n";
    let file_buffer = |c: &mut ferry_buffer::BufferConfig| {
        let mut f = ferry_buffer::BufferConfig::file(dir.path());
        f.flush_mode = c.flush_mode;
        f.flush_interval = c.flush_interval;
        f.chunk_limit_size = c.chunk_limit_size;
        f.segment_target_size = 8 * 1024;
        *c = f;
    };
    let buffer = memory_buffer("crash", 1, 20, 40, 80, file_buffer);
    let chunk = take_all(&buffer).pop().unwrap();
    let records = chunk.records();
    let fwd = Forward::new(
        "before",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    fwd.write_chunk(&chunk)
        .await
        .expect_err("the server stops acking at the sixth request");
    // The forwarder dies here: the chunk is neither acked nor rolled back on disk.
    drop((chunk, fwd, buffer));
    let before = agg.state.requests();
    let acked: HashSet<Vec<u8>> = before[..5]
        .iter()
        .map(|r| r.chunk.clone().unwrap())
        .collect();
    assert_eq!(acked.len(), 5);

    let mut config = ferry_buffer::BufferConfig::file(dir.path());
    config.segment_target_size = 8 * 1024;
    let (buffer, report) = ferry_buffer::Buffer::open(config, "test").unwrap();
    assert_eq!(report.recovered.len(), 1);
    let chunk = take_all(&buffer).pop().unwrap();
    *agg.state.fail_from.lock().unwrap() = None;
    let fwd = Forward::new(
        "after",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    fwd.write_chunk(&chunk).await.unwrap();
    buffer.ack(chunk).unwrap();
    let after = &agg.state.requests()[before.len()..];
    assert!(!after.is_empty());
    for r in after {
        assert!(
            !acked.contains(r.chunk.as_ref().unwrap()),
            "an acknowledged request was sent again after the restart"
        );
    }
    let sent_again: u64 = after.iter().map(|r| r.records).sum();
    let acked_records: u64 = before[..5].iter().map(|r| r.records).sum();
    assert_eq!(sent_again, records - acked_records, "exactly the rest went");
    let mut seqs = agg.state.seqs();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len() as u64, records, "nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ack_detaches_the_server_and_the_request_goes_to_the_next_one_at_once() {
    let silent = FakeAggregator::start(AckPolicy::Never).await;
    let good = FakeAggregator::start(AckPolicy::Ack).await;
    let servers = format!(
        "{}{}",
        server("silent", silent.port, "    weight 60\n"),
        server("good", good.port, "    weight 1\n")
    );
    let params = "  require_ack_response true\n  ack_response_timeout 500ms\n";
    let fwd = Forward::new("lost", forward_config(&conf(params, &servers)));
    let buffer = memory_buffer_with("lost", 3, 100, 10);
    for chunk in take_all(&buffer) {
        fwd.write_chunk(&chunk).await.unwrap();
        buffer.ack(chunk).unwrap();
    }
    assert!(
        !silent.state.requests().is_empty(),
        "the silent server got a request"
    );
    assert!(!fwd.nodes()[0].is_available(), "and was detached");
    let mut seqs = good.state.seqs();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..300).collect::<Vec<_>>());
    let m = fwd.metrics();
    assert_eq!(m.acks_lost.load(Ordering::Relaxed), 1);
    assert_eq!(m.duplicates_resent.load(Ordering::Relaxed), 1);
    assert_eq!(m.detach_count.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ack_is_counted_and_retried_with_backoff_and_its_connection_dropped() {
    let agg = FakeAggregator::start(AckPolicy::Wrong).await;
    let params = "  require_ack_response true\n  keepalive true\n  heartbeat_type none\n";
    let fwd = Forward::new(
        "wrong",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    let buffer = memory_buffer_with("wrong", 1, 10, 10);
    let chunk = take_all(&buffer).pop().unwrap();
    let err = fwd.write_chunk(&chunk).await.unwrap_err();
    assert!(matches!(err, ForwardError::AckMismatch { .. }), "{err}");
    assert!(
        err.is_retryable() && !err.rolls_back(),
        "backoff, not an immediate re-send"
    );
    assert_eq!(fwd.metrics().acks_mismatched.load(Ordering::Relaxed), 1);
    assert_eq!(
        fwd.nodes()[0].idle_count(),
        0,
        "the out-of-step connection is not reused"
    );
    agg.state.set_policy(AckPolicy::Ack);
    fwd.write_chunk(&chunk).await.unwrap();
    assert_eq!(agg.state.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_chunks_go_as_compressed_packed_forward_and_time_as_integer_rewrites_times() {
    let agg = FakeAggregator::start(AckPolicy::Ack).await;
    let params = "  require_ack_response true\n  compress gzip\n  heartbeat_type none\n";
    let fwd = Forward::new(
        "gz",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    let buffer = memory_buffer("gz", 1, 4, 50, 30, |c| {
        c.compress = ferry_buffer::Compress::Gzip;
    });
    let chunk = take_all(&buffer).pop().unwrap();
    assert!(chunk.compressed());
    fwd.write_chunk(&chunk).await.unwrap();
    let r = &agg.state.requests()[0];
    assert!(r.gzip, "compressed: gzip");
    assert_eq!(seqs_in(&r.entries), (0..200).collect::<Vec<_>>());

    let params = "  time_as_integer true\n  heartbeat_type none\n";
    let fwd = Forward::new(
        "int",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    let buffer = memory_buffer("int", 1, 2, 50, 30, |_| {});
    let chunk = take_all(&buffer).pop().unwrap();
    fwd.write_chunk(&chunk).await.unwrap();
    // Without acks, Ok means written: the fake may not have read it yet.
    eventually(Duration::from_secs(5), "the request arrives", || {
        agg.state.requests().len() == 2
    })
    .await;
    let r = &agg.state.requests()[1];
    let times: Vec<_> = ferry_proto::entries::iter(&r.entries)
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(times.len(), 100);
    assert!(times.iter().all(|e| e.int_time && e.time.nsec == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_detaches_at_once_and_no_healthy_server_is_no_nodes_available() {
    // Nobody listens there: a port from outside the ephemeral range, handed out once.
    let port = ferry_bench::ferryproc::free_port().unwrap();
    let params = "  heartbeat_interval 10s\n";
    let fwd = Forward::new(
        "refused",
        forward_config(&conf(params, &server("gone", port, ""))),
    );
    let buffer = memory_buffer_with("refused", 1, 10, 10);
    let chunk = take_all(&buffer).pop().unwrap();
    let err = fwd.write_chunk(&chunk).await.unwrap_err();
    assert_eq!(err.class(), "Errno::ECONNREFUSED");
    assert!(
        !fwd.nodes()[0].is_available(),
        "detached without waiting for phi"
    );
    let err = fwd.write_chunk(&chunk).await.unwrap_err();
    assert!(matches!(err, ForwardError::NoNodesAvailable), "{err}");
    assert_eq!(err.to_string(), "no nodes are available");
    assert!(err.is_retryable());
}

/// The kernel's timer of this machine's established IPv4 connection to port `remote`, as
/// /proc/net/tcp shows it: 2 while TCP keepalive runs, 0 with no timer.
fn timer_of_connection_to(remote: u16) -> Option<u8> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = u16::from_str_radix(f[2].rsplit(':').next()?, 16).ok()?;
        (port == remote && f[3] == "01")
            .then(|| u8::from_str_radix(&f[5][..2], 16).ok())
            .flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_keepalive_packet_turns_on_tcp_keepalive_for_kept_connections() {
    for (extra, timer) in [("  send_keepalive_packet true\n", 2), ("", 0)] {
        let agg = FakeAggregator::start(AckPolicy::Ack).await;
        let params = format!(
            "  require_ack_response true\n  keepalive true\n  heartbeat_type none\n{extra}"
        );
        let fwd = Forward::new(
            "kp",
            forward_config(&conf(&params, &server("a", agg.port, ""))),
        );
        for chunk in take_all(&memory_buffer_with("kp", 1, 10, 10)) {
            fwd.write_chunk(&chunk).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(timer_of_connection_to(agg.port), Some(timer), "{extra:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_timeout_closes_a_kept_connection_idle_that_long() {
    for (extra, accepts) in [("  keepalive_timeout 300ms\n", 2), ("", 1)] {
        let agg = FakeAggregator::start(AckPolicy::Ack).await;
        let params = format!(
            "  require_ack_response true\n  keepalive true\n  heartbeat_type none\n{extra}"
        );
        let fwd = Forward::new(
            "kt",
            forward_config(&conf(&params, &server("a", agg.port, ""))),
        );
        let chunks = take_all(&memory_buffer_with("kt", 2, 10, 10));
        fwd.write_chunk(&chunks[0]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        fwd.write_chunk(&chunks[1]).await.unwrap();
        assert_eq!(
            agg.state.accepts.load(Ordering::SeqCst),
            accepts,
            "{extra:?}"
        );
    }
}

/// A resolver that gives every name the same addresses.
#[derive(Debug)]
struct FixedResolver(Vec<SocketAddr>);

impl Resolve for FixedResolver {
    fn lookup(&self, _host: String, _port: u16) -> BoxFuture<std::io::Result<Vec<SocketAddr>>> {
        let addrs = self.0.clone();
        Box::pin(async move { Ok(addrs) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_round_robin_spreads_requests_over_every_address_of_a_server() {
    for (param, spread) in [("  dns_round_robin true\n", true), ("", false)] {
        let a = FakeAggregator::start(AckPolicy::Ack).await;
        let b = FakeAggregator::start(AckPolicy::Ack).await;
        let addrs = vec![
            SocketAddr::from(([127, 0, 0, 1], a.port)),
            SocketAddr::from(([127, 0, 0, 1], b.port)),
        ];
        let servers = "  <server>\n    name both\n    host aggregators.test\n  </server>\n";
        let params = format!("  require_ack_response true\n  heartbeat_type none\n{param}");
        let fwd = Forward::with_resolver(
            "rr",
            forward_config(&conf(&params, servers)),
            Arc::new(FixedResolver(addrs)),
        );
        for chunk in take_all(&memory_buffer_with("rr", 4, 10, 10)) {
            fwd.write_chunk(&chunk).await.unwrap();
        }
        let (na, nb) = (a.state.requests().len(), b.state.requests().len());
        assert_eq!(na + nb, 4);
        if spread {
            assert!(na > 0 && nb > 0, "{na} and {nb}");
        } else {
            assert_eq!((na, nb), (4, 0), "the first address only");
        }
    }
}

/// A listening socket whose accept queue is full, so a new connection's SYN gets no answer;
/// with the connections that fill it.
fn unanswered_listener() -> (socket2::Socket, Vec<std::net::TcpStream>, u16) {
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let port = listener.local_addr().unwrap().as_socket().unwrap().port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut queued = Vec::new();
    while let Ok(c) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        queued.push(c);
        assert!(queued.len() < 10, "the accept queue never filled");
    }
    (listener, queued, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_bounds_a_connect_that_gets_no_answer() {
    let (_listener, _queued, port) = unanswered_listener();
    let fwd = |extra: &str| {
        let params = format!("  heartbeat_type none\n  send_timeout 10s\n{extra}");
        Forward::new(
            "ct",
            forward_config(&conf(&params, &server("silent", port, ""))),
        )
    };
    let chunk = take_all(&memory_buffer_with("ct", 1, 10, 10))
        .pop()
        .unwrap();
    let started = Instant::now();
    let sent = tokio::time::timeout(
        Duration::from_secs(5),
        fwd("  connect_timeout 300ms\n").write_chunk(&chunk),
    )
    .await
    .expect("the connect gives up after connect_timeout");
    assert!(sent.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let waited = tokio::time::timeout(Duration::from_secs(2), fwd("").write_chunk(&chunk)).await;
    assert!(
        waited.is_err(),
        "without it the connect waits up to send_timeout (10 s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_timeout_bounds_a_write_the_server_does_not_read() {
    // A server that accepts and never reads: writes stop once the socket buffers are full.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let fwd = |extra: &str| {
        let params = format!("  heartbeat_type none\n  max_request_size 64m\n{extra}");
        Forward::new(
            "st",
            forward_config(&conf(&params, &server("stuck", port, ""))),
        )
    };
    // One 40 MB request (`max_request_size 64m`; each request of a connection without
    // keepalive goes on its own connection): more than the kernel buffers of a loopback
    // connection hold.
    let chunk = take_all(&memory_buffer_with("st", 1, 40_000, 1_000))
        .pop()
        .unwrap();
    let started = Instant::now();
    let sent = tokio::time::timeout(
        Duration::from_secs(10),
        fwd("  send_timeout 500ms\n").write_chunk(&chunk),
    )
    .await
    .expect("the write gives up after send_timeout");
    let err = sent.unwrap_err();
    assert!(err.to_string().contains("send_timeout"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let waited = tokio::time::timeout(Duration::from_secs(2), fwd("").write_chunk(&chunk)).await;
    assert!(waited.is_err(), "the default send_timeout is 60 s");
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_connection_at_startup_fails_start_unless_network_errors_are_ignored() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let prepared = |params: &str| {
        let params = format!("  heartbeat_type none\n{params}");
        let fwd = Forward::new(
            "v",
            forward_config(&conf(&params, &server("down", port, ""))),
        );
        async move { fwd.prepare().await }
    };
    assert!(
        prepared("").await.is_ok(),
        "by default only server names are resolved at start"
    );
    let err = prepared("  verify_connection_at_startup true\n")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("'down'"), "{err}");
    assert!(
        prepared("  verify_connection_at_startup true\n  ignore_network_errors_at_startup true\n")
            .await
            .is_ok()
    );
}

/// Hands the chunks of a buffer to [`Forward::stream`] as the flusher does, and keeps the
/// delivered ones.
struct TestFeed {
    buffer: Arc<ferry_buffer::Buffer>,
    done: Vec<ferry_buffer::Chunk>,
    /// Two looks in three find nothing ready (a quiet forwarder).
    gaps: bool,
    looks: usize,
}

impl TestFeed {
    fn new(buffer: &Arc<ferry_buffer::Buffer>) -> Self {
        Self {
            buffer: Arc::clone(buffer),
            done: Vec::new(),
            gaps: false,
            looks: 0,
        }
    }
}

impl ferry::output::feed::ChunkFeed for TestFeed {
    fn next(&mut self) -> ferry::output::feed::NextChunk {
        self.looks += 1;
        if self.gaps && self.looks % 3 != 0 {
            return Box::pin(async { None });
        }
        let chunk = self.buffer.take(std::time::SystemTime::now());
        Box::pin(async move { chunk })
    }

    fn ready(&self) -> ferry::output::feed::Ready {
        Box::pin(std::future::pending())
    }

    fn done(&mut self, chunk: ferry_buffer::Chunk) {
        self.done.push(chunk);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_chunks_are_in_flight_on_one_connection_and_each_is_settled_by_its_own_acks() {
    // Twelve one-request chunks (twelve tags); the aggregator acks nothing until five
    // requests arrived on the connection, so a sender that waited for a chunk's ack before
    // the next chunk would time out.
    let agg = FakeAggregator::start(AckPolicy::AfterRequests(5)).await;
    let params = "  require_ack_response true\n  ack_response_timeout 2s\n  heartbeat_type none\n";
    let fwd = Forward::new(
        "streamed",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    assert!(fwd.streams());
    let buffer = Arc::new(memory_buffer_with("many", 12, 30, 40));
    let first = buffer.take(std::time::SystemTime::now()).unwrap();
    let mut feed = TestFeed::new(&buffer);
    let left = fwd.stream(first, &mut feed).await;
    assert!(left.is_empty(), "{} chunks not delivered", left.len());
    assert_eq!(feed.done.len(), 12);
    assert_eq!(
        agg.state.accepts.load(Ordering::SeqCst),
        1,
        "one connection"
    );
    let requests = agg.state.requests();
    assert_eq!(requests.len(), 12);
    let tags: Vec<_> = requests.iter().map(|r| r.tag.clone()).collect();
    let in_order: Vec<_> = (0..12).map(|c| format!("many.{c}")).collect();
    assert_eq!(
        tags, in_order,
        "chunks are written in the order they were taken"
    );
    let mut seqs = agg.state.seqs();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..360).collect::<Vec<_>>());
    for chunk in feed.done.drain(..) {
        buffer.ack(chunk).unwrap();
    }
    assert_eq!(buffer.stats().total_records, 0);
    assert_eq!(fwd.metrics().acks_received.load(Ordering::Relaxed), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_of_a_stream_whose_acks_are_lost_are_given_back_and_none_is_reported_done() {
    // Requests from the fourth on are read and never acknowledged: the first three chunks are
    // delivered; every other chunk taken comes back, to be written again one by one.
    let agg = FakeAggregator::start(AckPolicy::Ack).await;
    *agg.state.fail_from.lock().unwrap() = Some(3);
    let params =
        "  require_ack_response true\n  ack_response_timeout 300ms\n  heartbeat_type none\n";
    let fwd = Forward::new(
        "lost",
        forward_config(&conf(params, &server("a", agg.port, ""))),
    );
    let buffer = Arc::new(memory_buffer_with("lost", 8, 10, 40));
    let first = buffer.take(std::time::SystemTime::now()).unwrap();
    let mut feed = TestFeed::new(&buffer);
    let left = fwd.stream(first, &mut feed).await;
    let done: Vec<_> = feed
        .done
        .iter()
        .map(|c| c.key().tag.clone().unwrap())
        .collect();
    assert_eq!(done, ["lost.0", "lost.1", "lost.2"]);
    assert!(!left.is_empty());
    let left_tags: Vec<_> = left
        .iter()
        .map(|(c, _)| c.key().tag.clone().unwrap())
        .collect();
    let rolled_back = left.iter().filter(|(_, e)| e.is_some()).count();
    assert!(
        rolled_back >= 1,
        "the chunks whose acks were lost are rolled back, as a chunk sent alone is"
    );
    for (_, e) in &left {
        if let Some(e) = e {
            assert!(e.rolls_back(), "{e}");
        }
    }
    let written: Vec<_> = agg.state.requests().iter().map(|r| r.tag.clone()).collect();
    for tag in &written[3..] {
        assert!(
            left_tags.contains(tag),
            "{tag} was written, not acked, and not given back"
        );
    }
    assert_eq!(fwd.metrics().acks_lost.load(Ordering::Relaxed), 1);
    // Given back and written again (the aggregator acks again): every event arrives.
    *agg.state.fail_from.lock().unwrap() = None;
    for (chunk, _) in left {
        fwd.write_chunk(&chunk).await.unwrap();
        buffer.ack(chunk).unwrap();
    }
    while let Some(chunk) = buffer.take(std::time::SystemTime::now()) {
        fwd.write_chunk(&chunk).await.unwrap();
        buffer.ack(chunk).unwrap();
    }
    let mut seqs = agg.state.seqs();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (0..80).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flush_thread_keeps_the_chunks_of_many_tags_in_flight_and_delivers_every_event() {
    // A ferry forwarder with the default single flush thread and sixteen tags' chunks sealed
    // at once (SIGUSR1); the aggregator acks nothing until four requests arrived.
    let agg = FakeAggregator::start(AckPolicy::AfterRequests(4)).await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let conf = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type forward\n  require_ack_response true\n  ack_response_timeout 3s\n  heartbeat_type none\n{}\
         <buffer tag>\n    @type file\n    path {}\n    flush_mode interval\n    flush_interval 1h\n  </buffer>\n</match>\n",
        server("a", agg.port, ""),
        dir.path().join("buffer").display()
    );
    let fwd = common::Ferry::start(&conf, port);
    tokio::task::spawn_blocking(move || {
        let mut sender = common::AckedSender::connect(port).unwrap();
        for t in 0..16u64 {
            sender
                .send(&format!("app.{t}"), t * 50..t * 50 + 50, 40)
                .unwrap();
        }
    })
    .await
    .unwrap();
    common::signal(fwd.child.id(), "USR1");
    eventually(
        Duration::from_secs(20),
        "every event at the aggregator",
        || agg.state.seqs().len() >= 800,
    )
    .await;
    let mut seqs = agg.state.seqs();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..800).collect::<Vec<_>>(), "each event once");
    assert_eq!(
        agg.state.accepts.load(Ordering::SeqCst),
        1,
        "one connection"
    );
    assert_eq!(agg.state.requests().len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_chunks_keep_the_servers_weights_however_often_none_is_ready() {
    // Weights 60 and 20: the rotation is a shuffled array of 24 turns (each server at least 6
    // times), so of 48 chunks 36 and 12 when each chunk takes one turn, also when the stream
    // often finds nothing ready (a look that finds no chunk draws no turn).
    let (a, b) = (
        FakeAggregator::start(AckPolicy::Ack).await,
        FakeAggregator::start(AckPolicy::Ack).await,
    );
    let params = "  require_ack_response true\n  ack_response_timeout 2s\n  heartbeat_type none\n";
    let servers = server("a", a.port, "    weight 60\n") + &server("b", b.port, "    weight 20\n");
    let fwd = Forward::new("weights", forward_config(&conf(params, &servers)));
    let buffer = Arc::new(memory_buffer_with("w", 48, 5, 20));
    let mut feed = TestFeed::new(&buffer);
    feed.gaps = true;
    while let Some(first) = buffer.take(std::time::SystemTime::now()) {
        for (chunk, _) in fwd.stream(first, &mut feed).await {
            fwd.write_chunk(&chunk).await.unwrap();
            buffer.ack(chunk).unwrap();
        }
        for chunk in feed.done.drain(..) {
            buffer.ack(chunk).unwrap();
        }
    }
    assert_eq!(a.state.requests().len() + b.state.requests().len(), 48);
    assert_eq!(
        (a.state.requests().len(), b.state.requests().len()),
        (36, 12),
        "chunks by weight"
    );
}
