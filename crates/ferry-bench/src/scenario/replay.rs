//! Scenario 4: backlog replay.
//!
//! The forwarder (forward input → file buffer → forward output with acks) takes a backlog while
//! its aggregator is down. Then the aggregator starts (ferry-bench's counting receiver, so the
//! forwarder alone is measured and every event is counted) while a second load generator keeps
//! sending new events at `--rate`. Measured: the replay rate (backlog bytes over the time from
//! the aggregator's start until the whole backlog arrived), the forwarder's CPU and peak RSS,
//! and the ack latency the new events see during the replay.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::config;
use super::{Ctx, Error, Watch, never, row, wait_for};
use crate::ferryproc::{Ferry, Ready, free_port};
use crate::procstat::Sampler;
use crate::receiver::{Receiver, ReceiverConfig, ReceiverState};
use crate::report::{LimitKind, Row};
use crate::sender::{self, SendProgress};

/// Default backlog, GB.
pub const S4_GB: f64 = 0.5;
/// Default rate of new events during the replay.
pub const S4_RATE: f64 = 5000.0;
/// Stream numbers of the new events start here.
const LIVE_STREAMS: u32 = 1000;

/// Scenario 4.
pub async fn run(ctx: &Ctx) -> Result<Row, Error> {
    let gb = ctx.opts.gb.unwrap_or(S4_GB);
    let rate = ctx.opts.rate.unwrap_or(S4_RATE);
    let dir = ctx.dir("s4")?;
    let (fwd_port, agg_port) = (free_port()?, free_port()?);
    let forwarder = format!(
        "{}{}",
        config::forward_source(fwd_port),
        config::forward_output(
            &[("aggregator", agg_port)],
            Some(&dir.join("forwarder-buffer")),
            "  heartbeat_interval 500ms\n  recover_wait 1s\n"
        )
    );
    let fwd = Ferry::start(
        &ctx.bin,
        &dir,
        "forwarder",
        &forwarder,
        Ready::Port(fwd_port),
    )?;
    eprintln!("scenario 4: loading a backlog of {gb} GB while the aggregator is down");
    // Sampled from the start: what the forwarder acked (backlog, then new events) and what
    // arrived at the aggregator once it runs.
    let ingest = Arc::new(SendProgress::default());
    let aggregator: Arc<OnceLock<Arc<ReceiverState>>> = Arc::new(OnceLock::new());
    let (i, a) = (Arc::clone(&ingest), Arc::clone(&aggregator));
    let sampler = Sampler::start(
        vec![Arc::clone(&fwd.pid)],
        Arc::new(move || {
            vec![
                i.acked_bytes.load(Ordering::Relaxed),
                a.get().map_or(0, |s| s.entry_bytes.load(Ordering::Relaxed)),
            ]
        }),
    );
    let backlog = sender::run(
        ctx.send_config(fwd_port, Some(ctx.events_for(gb))),
        Arc::clone(&ingest),
        never(),
    )
    .await?;
    eprintln!(
        "scenario 4: backlog of {} events in {:.1} s ({:.0} MB/s); starting the aggregator",
        backlog.events,
        backlog.secs,
        backlog.mb_per_sec()
    );
    let watch = Watch::start(&[&fwd]);
    let mut live_cfg = ctx.send_config(fwd_port, None);
    live_cfg.connections = 1;
    live_cfg.batch = 100;
    live_cfg.rate = Some(rate);
    live_cfg.stream_base = LIVE_STREAMS;
    let stop = Arc::new(AtomicBool::new(false));
    let live = tokio::spawn(sender::run(
        live_cfg,
        Arc::clone(&ingest),
        Arc::clone(&stop),
    ));
    let mut receiver = Receiver::start(ReceiverConfig {
        bind: format!("127.0.0.1:{agg_port}"),
        shared_key: None,
        self_hostname: "ferry-bench-aggregator".into(),
    })
    .await?;
    let started = Instant::now();
    let state = Arc::clone(&receiver.state);
    let _ = aggregator.set(Arc::clone(&state));
    let backlog_streams: Vec<u32> = backlog.per_stream.keys().copied().collect();
    let replayed = wait_for(Duration::from_secs(900), Duration::from_millis(50), || {
        state.distinct_of(backlog_streams.iter().copied()) >= backlog.events
    })
    .await;
    let replay_secs = started.elapsed().as_secs_f64();
    let mut r = row(
        "4 backlog replay (file buffer)",
        format!("ferry-bench scenario 4 --gb {gb} --rate {rate}"),
    );
    r.procs = watch.figures(backlog.entry_bytes, ctx.ticks);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let live = live.await??;
    let mut expected: BTreeMap<u32, u64> = backlog.per_stream.clone();
    expected.extend(live.per_stream.iter().map(|(k, v)| (*k, *v)));
    let total: u64 = expected.values().sum();
    let drained = wait_for(Duration::from_secs(60), Duration::from_millis(50), || {
        state.snapshot().distinct() >= total
    })
    .await;
    r.samples = sampler.finish();
    r.sample_procs = watch.names();
    r.sample_progress = vec![
        "into the forwarder (acked) MB/s".into(),
        "replayed to the aggregator MB/s".into(),
    ];
    let seq = state.snapshot().report(Some(&expected));
    receiver.stop();
    let during: Vec<_> = live
        .acks
        .iter()
        .copied()
        .filter(|a| a.sent_at <= replay_secs)
        .collect();
    let q = |p| 1e3 * sender::latency_quantile(&during, p).unwrap_or(0.0);
    r.events = backlog.events;
    r.bytes = backlog.entry_bytes;
    r.secs = replay_secs;
    r.lost = Some(seq.lost);
    r.duplicated = Some(seq.duplicated);
    r.limit = LimitKind::Loopback;
    r.notes.push(format!(
        "backlog {:.0} MB taken at {:.0} MB/s; new events at {rate:.0}/s during replay: ack p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests){}{}",
        backlog.entry_bytes as f64 / 1e6,
        backlog.mb_per_sec(),
        q(0.5),
        q(0.99),
        q(1.0),
        during.len(),
        if replayed { "" } else { "; REPLAY TIMED OUT" },
        if drained { "" } else { "; DRAIN TIMED OUT" },
    ));
    r.finish(&ctx.limits);
    drop(fwd);
    ctx.cleanup(&dir);
    Ok(r)
}
