//! Scenario 5: failover between two aggregators.
//!
//! ```text
//! load generator → forwarder ─┬─► aggregator a → counting receiver a
//!   (--rate)     file buffer  └─► aggregator b → counting receiver b
//! ```
//!
//! Every tier buffers in files and forwards with acks. A third of the way into the load,
//! aggregator a is SIGKILLed (then, in a second run, SIGSTOPped). Measured: when the forwarder
//! logged a's detach, and when aggregator b alone carried the whole offered rate (its receiver's
//! rate over 500 ms at 90 % of it). After the load, a is restarted (or continued) so its buffer
//! drains; then the receivers' counts are merged and compared with what was sent: lost must be
//! 0, duplicates are the re-sends of chunks whose ack was lost with a.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::config;
use super::{Ctx, Error, Watch, row, wait_for};
use crate::ferryproc::{Ferry, Ready, free_port};
use crate::procstat::Sampler;
use crate::receiver::{Receiver, ReceiverConfig};
use crate::report::{LimitKind, Row};
use crate::sender::{self, SendProgress};

/// Default offered rate, events/s.
pub const S5_RATE: f64 = 20_000.0;
/// Default seconds of load.
pub const S5_SECS: f64 = 18.0;

/// How aggregator a fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Kill,
    Stop,
}

/// Both runs: SIGKILL, then SIGSTOP.
pub async fn run_both(ctx: &Ctx) -> Result<Vec<Row>, Error> {
    Ok(vec![
        run(ctx, Failure::Kill).await?,
        run(ctx, Failure::Stop).await?,
    ])
}

async fn receiver() -> Result<Receiver, Error> {
    Ok(Receiver::start(ReceiverConfig {
        bind: "127.0.0.1:0".into(),
        shared_key: None,
        self_hostname: "ferry-bench-end".into(),
    })
    .await?)
}

/// One run.
pub async fn run(ctx: &Ctx, failure: Failure) -> Result<Row, Error> {
    let rate = ctx.opts.rate.unwrap_or(S5_RATE);
    let secs = ctx.opts.secs.unwrap_or(S5_SECS);
    let sig = match failure {
        Failure::Kill => "SIGKILL",
        Failure::Stop => "SIGSTOP",
    };
    let dir = ctx.dir(&format!("s5-{}", sig.to_lowercase()))?;
    let (ra, rb) = (receiver().await?, receiver().await?);
    let (pa, pb, pf) = (free_port()?, free_port()?, free_port()?);
    let aggregator = |port: u16, end: u16, name: &str| {
        format!(
            "{}{}",
            config::forward_source(port),
            config::forward_output(
                &[("end", end)],
                Some(&dir.join(format!("{name}-buffer"))),
                "  heartbeat_interval 1s\n"
            )
        )
    };
    let mut agg_a = Ferry::start(
        &ctx.bin,
        &dir,
        "agg-a",
        &aggregator(pa, ra.port, "agg-a"),
        Ready::Port(pa),
    )?;
    let agg_b = Ferry::start(
        &ctx.bin,
        &dir,
        "agg-b",
        &aggregator(pb, rb.port, "agg-b"),
        Ready::Port(pb),
    )?;
    let forwarder = format!(
        "{}{}",
        config::forward_source(pf),
        config::forward_output(
            &[("agg-a", pa), ("agg-b", pb)],
            Some(&dir.join("forwarder-buffer")),
            "  ack_response_timeout 5s\n  heartbeat_type udp\n  heartbeat_interval 200ms\n  phi_threshold 2\n  recover_wait 1s\n  hard_timeout 3s\n"
        )
    );
    let fwd = Ferry::start(&ctx.bin, &dir, "fwd", &forwarder, Ready::Port(pf))?;
    let mut watch = Watch::start(&[&fwd, &agg_a, &agg_b]);
    let (sa, sb) = (Arc::clone(&ra.state), Arc::clone(&rb.state));
    let sampler = Sampler::start(
        watch.pids(),
        Arc::new(move || {
            vec![
                sa.entry_bytes.load(Ordering::Relaxed),
                sb.entry_bytes.load(Ordering::Relaxed),
            ]
        }),
    );
    let mut cfg = ctx.send_config(pf, None);
    cfg.connections = 2;
    cfg.batch = 200;
    cfg.rate = Some(rate);
    cfg.duration = Some(Duration::from_secs_f64(secs));
    let load = tokio::spawn(sender::run(
        cfg,
        Arc::new(SendProgress::default()),
        Arc::new(AtomicBool::new(false)),
    ));
    tokio::time::sleep(Duration::from_secs_f64(secs / 3.0)).await;
    let failed_at = Instant::now();
    match failure {
        Failure::Kill => {
            watch.retire(1);
            agg_a.kill();
        }
        Failure::Stop => agg_a.signal("STOP")?,
    }
    eprintln!("scenario 5: {sig} agg-a");
    // Watch for the detach line and for b carrying the whole rate.
    let detach = "detached forwarding server 'agg-a'";
    let (mut detached_after, mut full_after) = (None, None);
    let mut window: VecDeque<(Instant, u64)> = VecDeque::new();
    let deadline = failed_at + Duration::from_secs_f64(secs);
    while Instant::now() < deadline && (detached_after.is_none() || full_after.is_none()) {
        let now = Instant::now();
        if detached_after.is_none() && fwd.log_text().contains(detach) {
            detached_after = Some(now.duration_since(failed_at).as_secs_f64());
        }
        window.push_back((now, rb.state.events.load(Ordering::Relaxed)));
        while window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_millis(500))
        {
            window.pop_front();
        }
        if full_after.is_none()
            && let (Some((t0, e0)), Some((t1, e1))) = (window.front(), window.back())
        {
            let dt = t1.duration_since(*t0).as_secs_f64();
            if dt >= 0.4 && (e1 - e0) as f64 / dt >= 0.9 * rate {
                full_after = Some(t1.duration_since(failed_at).as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = load.await??;
    match failure {
        Failure::Kill => agg_a.restart()?,
        Failure::Stop => agg_a.signal("CONT")?,
    }
    let (sa, sb) = (Arc::clone(&ra.state), Arc::clone(&rb.state));
    let merged = move || {
        let mut c = sa.snapshot();
        c.merge(&sb.snapshot());
        c
    };
    let total = sent.events;
    let drained = wait_for(Duration::from_secs(120), Duration::from_millis(100), || {
        merged().distinct() >= total
    })
    .await;
    let mut r = row(
        &format!("5 failover ({sig} one of two aggregators)"),
        format!("ferry-bench scenario 5 --rate {rate} --secs {secs}"),
    );
    r.procs = watch.figures(sent.entry_bytes, ctx.ticks);
    r.samples = sampler.finish();
    r.sample_procs = watch.names();
    r.sample_progress = vec!["via agg-a MB/s".into(), "via agg-b MB/s".into()];
    let seq = merged().report(Some(&sent.per_stream));
    r.events = sent.events;
    r.bytes = sent.entry_bytes;
    r.secs = sent.secs;
    r.lost = Some(seq.lost);
    r.duplicated = Some(seq.duplicated);
    r.limit = LimitKind::Disk;
    let show = |v: Option<f64>| v.map_or_else(|| "never".to_owned(), |s| format!("{s:.2} s"));
    r.notes.push(format!(
        "offered {rate:.0} events/s; after {sig}: detach logged {}, agg-b at ≥90 % of the rate {}{}",
        show(detached_after),
        show(full_after),
        if drained { "" } else { "; DRAIN TIMED OUT" }
    ));
    r.finish(&ctx.limits);
    drop(fwd);
    drop(agg_a);
    drop(agg_b);
    ctx.cleanup(&dir);
    Ok(r)
}
