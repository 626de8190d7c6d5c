//! Scenarios 3 and 6: tail → forwarder → aggregator → file output.
//!
//! The line writer appends JSON lines to a file (as fast as it can, or `--rate`) while the
//! forwarder tails it and forwards with `require_ack_response` to the aggregator, which writes
//! JSON-lines archives. Both tiers buffer in memory or in files (`--buffer`). The clock runs
//! from the first line written until every line is in the archives; the archives are counted.
//!
//! Scenario 3 runs tuned buffers (8 MB chunks, two flush threads, `overflow_action block`,
//! 200 ms flushes). Scenario 6, "operator defaults", runs what an operator writes after reading
//! Fluentd's docs: `@type`, `flush_mode interval`, `flush_interval 1s` and nothing else, with
//! 200-byte lines (1 GB by default).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::config;
use super::{BufferKind, Ctx, Error, Watch, row};
use crate::archive::ArchiveCounter;
use crate::ferryproc::{Ferry, Ready, free_port};
use crate::lines::{self, LinesConfig, LinesProgress, LinesReport, Rotate};
use crate::procstat::Sampler;
use crate::report::{LimitKind, Row};

/// Default size of scenario 3, GB of lines.
pub const S3_GB: f64 = 2.0;
/// Default size of scenario 6, GB of lines.
pub const S6_GB: f64 = 1.0;
/// Line size of scenario 6.
pub const S6_LINE: usize = 200;

/// How the buffers of both tiers are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settings {
    /// Scenario 3: tuned for throughput.
    Tuned,
    /// Scenario 6: Fluentd's defaults.
    Operator,
}

/// Scenario 3 with the buffer kind of `ctx.opts.buffer` (default memory).
pub async fn run(ctx: &Ctx) -> Result<Row, Error> {
    run_with(ctx, Settings::Tuned).await
}

/// Scenario 3 or 6 with the buffer kind of `ctx.opts.buffer` (default memory).
pub async fn run_with(ctx: &Ctx, settings: Settings) -> Result<Row, Error> {
    let kind = ctx.opts.buffer.unwrap_or(BufferKind::Memory);
    let (n, default_gb) = match settings {
        Settings::Tuned => (3, S3_GB),
        Settings::Operator => (6, S6_GB),
    };
    let gb = ctx.opts.gb.unwrap_or(default_gb);
    let dir = ctx.dir(&format!("s{n}-{}", kind.name()))?;
    let buffers = |who: &str| match kind {
        BufferKind::Memory => None,
        BufferKind::File => Some(dir.join(format!("{who}-buffer"))),
    };
    let agg_port = free_port()?;
    let out = dir.join("archive");
    let file = kind == BufferKind::File;
    let aggregator = match settings {
        Settings::Tuned => config::file_output(&out, buffers("aggregator").as_deref()),
        Settings::Operator => config::operator_file_output(&out, file),
    };
    let aggregator = format!("{}{aggregator}", config::forward_source(agg_port));
    let log_file = dir.join("app.log");
    let forwarder = match settings {
        Settings::Tuned => config::forward_output(
            &[("aggregator", agg_port)],
            buffers("forwarder").as_deref(),
            "  heartbeat_interval 1s\n",
        ),
        Settings::Operator => {
            config::operator_forward_output(agg_port, file, ctx.opts.max_request_size.as_deref())
        }
    };
    let forwarder = format!(
        "{}{forwarder}",
        config::tail_source(&log_file, &dir.join("tail.pos"))
    );
    let agg = Ferry::start(
        &ctx.bin,
        &dir,
        "aggregator",
        &aggregator,
        Ready::Port(agg_port),
    )?;
    let fwd = Ferry::start(&ctx.bin, &dir, "forwarder", &forwarder, Ready::Started)?;
    let watch = Watch::start(&[&fwd, &agg]);
    let out_dir = out.clone();
    let writing = Arc::new(LinesProgress::default());
    let w = Arc::clone(&writing);
    let sampler = Sampler::start(
        watch.pids(),
        Arc::new(move || {
            vec![
                w.bytes.load(std::sync::atomic::Ordering::Relaxed),
                crate::archive::dir_bytes(&out_dir),
            ]
        }),
    );
    let line_size = match settings {
        Settings::Tuned => ctx.opts.record_size,
        Settings::Operator => S6_LINE,
    };
    let cfg = LinesConfig {
        path: log_file,
        rate: ctx.opts.rate,
        line_size,
        rotate: Rotate::None,
        rotate_every: u64::MAX,
        lines: Some(((gb * 1e9) / line_size as f64).max(1.0) as u64),
        duration: None,
        stream: 0,
    };
    let started = Instant::now();
    let writer = std::thread::spawn(move || lines::run(&cfg, &writing, &AtomicBool::new(false)));
    let mut counter = ArchiveCounter::new(&out);
    let written = tokio::task::block_in_place(|| writer.join())
        .map_err(|_| anyhow::anyhow!("the line writer panicked"))??;
    let done = tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            if counter.poll().is_ok() && counter.seq.distinct() >= written.lines {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    let secs = started.elapsed().as_secs_f64();
    let title = match settings {
        Settings::Tuned => format!("3 tail → fwd → agg → file ({} buffers)", kind.name()),
        Settings::Operator => format!("6 operator defaults, {} buffers", kind.name()),
    };
    let mut r = row(
        &title,
        format!(
            "ferry-bench scenario {n} --buffer {} --gb {gb}",
            kind.name()
        ),
    );
    fill_lines_row(&mut r, ctx, &watch, sampler, &written, &counter, secs);
    r.notes.push(format!(
        "lines of {line_size} B written in {:.1} s; clock stops when all are in the archives{}",
        written.secs,
        if done { "" } else { "; TIMED OUT" }
    ));
    if let Some((steady, last)) = steady_rate(&r.samples, 1) {
        r.notes.push(format!(
            "archives grew at {steady:.0} MB/s between 10 % and 90 %; the last 1 % took {last:.1} s (partial chunks waiting for flush_interval)"
        ));
    }
    r.finish(&ctx.limits);
    drop(fwd);
    drop(agg);
    ctx.cleanup(&dir);
    Ok(r)
}

/// Fills what every row of a tail → archive pipeline reports: the processes' figures and
/// samples, and the lines written, lost and duplicated, counted in the archives.
pub fn fill_lines_row(
    r: &mut Row,
    ctx: &Ctx,
    watch: &Watch,
    sampler: Sampler,
    written: &LinesReport,
    counter: &ArchiveCounter,
    secs: f64,
) {
    r.procs = watch.figures(written.bytes, ctx.ticks);
    r.samples = sampler.finish();
    r.sample_procs = watch.names();
    r.sample_progress = vec!["lines written MB/s".into(), "archive MB/s".into()];
    let expected = [(0u32, written.lines)].into_iter().collect();
    let seq = counter.seq.report(Some(&expected));
    r.events = written.lines;
    r.bytes = written.bytes;
    r.secs = secs;
    r.lost = Some(seq.lost);
    r.duplicated = Some(seq.duplicated);
    r.limit = LimitKind::Disk;
}

/// The rate of progress counter `i` between 10 % and 90 % of its final value (MB/s), and the
/// seconds from 99 % to the end: the steady state, apart from the wait for the last chunks.
pub fn steady_rate(samples: &[crate::procstat::Sample], i: usize) -> Option<(f64, f64)> {
    let total = *samples.last()?.progress.get(i)? as f64;
    let at = |fraction: f64| {
        samples
            .iter()
            .find(|s| {
                s.progress
                    .get(i)
                    .is_some_and(|&v| v as f64 >= fraction * total)
            })
            .map(|s| s.t)
    };
    let (t10, t90, t99) = (at(0.1)?, at(0.9)?, at(0.99)?);
    let end = samples.last()?.t;
    (t90 > t10).then(|| (0.8 * total / 1e6 / (t90 - t10), end - t99))
}
