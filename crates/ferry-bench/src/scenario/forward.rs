//! Scenarios 1 and 2: the load generator into one ferry process.
//!
//! 1. forward input → memory buffer → null. Every request asks for an ack; the figure is the
//!    acknowledged bytes per second. Nothing comes out of a null output to count, so loss is
//!    what was not acknowledged (the generator fails on a missing ack).
//! 2. forward input → file buffer → file output (JSON lines). The clock stops when every event
//!    is in the archives, which are then counted.

use std::sync::Arc;
use std::time::Duration;

use super::config;
use super::{Ctx, Error, Watch, acked_bytes, never, row};
use crate::archive::ArchiveCounter;
use crate::ferryproc::{Ferry, Ready, free_port};
use crate::procstat::Sampler;
use crate::report::{LimitKind, Row};
use crate::sender::{self, SendProgress};

/// Default size of scenario 1, GB.
pub const S1_GB: f64 = 10.0;
/// Default size of scenario 2, GB.
pub const S2_GB: f64 = 3.0;

/// Scenario 1.
pub async fn null(ctx: &Ctx) -> Result<Row, Error> {
    let gb = ctx.opts.gb.unwrap_or(S1_GB);
    let dir = ctx.dir("s1")?;
    let port = free_port()?;
    let filter = match ctx.opts.filter {
        Some(super::FilterKind::Grep) => config::grep_filter(),
        None => String::new(),
    };
    let conf = format!(
        "{}{filter}{}",
        config::forward_source(port),
        config::null_output()
    );
    let ferry = Ferry::start(&ctx.bin, &dir, "ferry", &conf, Ready::Port(port))?;
    let watch = Watch::start(&[&ferry]);
    let progress = Arc::new(SendProgress::default());
    let sampler = Sampler::start(watch.pids(), acked_bytes(&progress));
    let report = sender::run(
        ctx.send_config(port, Some(ctx.events_for(gb))),
        Arc::clone(&progress),
        never(),
    )
    .await?;
    let (title, flag) = match ctx.opts.filter {
        Some(super::FilterKind::Grep) => ("1 forward → grep → memory → null", " --filter grep"),
        None => ("1 forward → memory → null", ""),
    };
    let mut r = row(title, format!("ferry-bench scenario 1 --gb {gb}{flag}"));
    r.procs = watch.figures(report.entry_bytes, ctx.ticks);
    r.samples = sampler.finish();
    r.sample_procs = watch.names();
    r.sample_progress = vec!["acked MB/s".into()];
    r.events = report.events;
    r.bytes = report.entry_bytes;
    r.secs = report.secs;
    r.lost = Some(
        report.events
            - progress
                .acked_events
                .load(std::sync::atomic::Ordering::Relaxed),
    );
    r.limit = LimitKind::Loopback;
    r.notes.push(format!(
        "{} conns, {} events/request, acks; ack p50 {:.1} ms, p99 {:.1} ms",
        ctx.opts.connections,
        ctx.opts.batch,
        1e3 * sender::latency_quantile(&report.acks, 0.5).unwrap_or(0.0),
        1e3 * sender::latency_quantile(&report.acks, 0.99).unwrap_or(0.0)
    ));
    r.finish(&ctx.limits);
    drop(ferry);
    ctx.cleanup(&dir);
    Ok(r)
}

/// Scenario 2.
pub async fn file(ctx: &Ctx) -> Result<Row, Error> {
    let gb = ctx.opts.gb.unwrap_or(S2_GB);
    let dir = ctx.dir("s2")?;
    let port = free_port()?;
    let out = dir.join("archive");
    let conf = format!(
        "{}{}",
        config::forward_source(port),
        config::file_output(&out, Some(&dir.join("buffer")))
    );
    let ferry = Ferry::start(&ctx.bin, &dir, "ferry", &conf, Ready::Port(port))?;
    let watch = Watch::start(&[&ferry]);
    let progress = Arc::new(SendProgress::default());
    let out_dir = out.clone();
    let sampler = Sampler::start(
        watch.pids(),
        Arc::new(move || vec![crate::archive::dir_bytes(&out_dir)]),
    );
    let report = sender::run(
        ctx.send_config(port, Some(ctx.events_for(gb))),
        Arc::clone(&progress),
        never(),
    )
    .await?;
    let mut counter = ArchiveCounter::new(&out);
    let done = tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        while std::time::Instant::now() < deadline {
            if counter.poll().is_ok() && counter.seq.distinct() >= report.events {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    let secs = watch.elapsed();
    let mut r = row(
        "2 forward → file buffer → file",
        format!("ferry-bench scenario 2 --gb {gb}"),
    );
    r.procs = watch.figures(report.entry_bytes, ctx.ticks);
    r.samples = sampler.finish();
    r.sample_procs = watch.names();
    r.sample_progress = vec!["archive MB/s".into()];
    let seq = counter.seq.report(Some(&report.per_stream));
    r.events = report.events;
    r.bytes = report.entry_bytes;
    r.secs = secs;
    r.lost = Some(seq.lost);
    r.duplicated = Some(seq.duplicated);
    r.limit = LimitKind::Disk;
    r.notes.push(format!(
        "clock stops when all events are in the archives ({:.0} MB of JSON){}",
        counter.file_bytes as f64 / 1e6,
        if done {
            ""
        } else {
            "; TIMED OUT waiting for the archives"
        }
    ));
    r.finish(&ctx.limits);
    drop(ferry);
    ctx.cleanup(&dir);
    Ok(r)
}
