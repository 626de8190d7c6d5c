//! The `ferry-bench` command.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferry_bench::conn::Target;
use ferry_bench::lines::{self, LinesConfig, LinesProgress, Rotate};
use ferry_bench::receiver::{Receiver, ReceiverConfig};
use ferry_bench::report::{self, Row};
use ferry_bench::scenario::{
    self, Ctx, ScenarioOpts, crash, failover, forward, replay, scaling, tail,
};
use ferry_bench::sender::{self, SendConfig, SendProgress};

#[derive(Parser)]
#[command(
    name = "ferry-bench",
    version,
    about = "Load generator, counting receiver and end-to-end scenarios for ferry"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send sequence-numbered records with the Forward protocol.
    Send {
        /// HOST:PORT of the Forward server.
        #[arg(long)]
        to: String,
        #[arg(long, default_value_t = 4)]
        connections: u32,
        /// Events per request.
        #[arg(long, default_value_t = 1000)]
        batch: u32,
        /// Approximate record size in bytes.
        #[arg(long, default_value_t = 256)]
        record_size: usize,
        /// Ask for acks and wait for them (`--acks false` to send without).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        acks: bool,
        /// Requests waiting for an ack per connection.
        #[arg(long, default_value_t = 4)]
        inflight: u32,
        /// Shared key of the handshake.
        #[arg(long)]
        shared_key: Option<String>,
        #[arg(long, default_value = "ferry-bench")]
        self_hostname: String,
        /// Use TLS, verifying the server against this CA (PEM).
        #[arg(long)]
        tls_ca: Option<PathBuf>,
        /// Events per second over all connections (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
        /// Total events.
        #[arg(long)]
        events: Option<u64>,
        /// Seconds to send.
        #[arg(long)]
        duration: Option<f64>,
        #[arg(long, default_value = "bench.load")]
        tag: String,
        /// Stream number of the first connection.
        #[arg(long, default_value_t = 0)]
        stream_base: u32,
    },
    /// Append sequence-numbered JSON lines to a file, with rotation.
    WriteLines {
        #[arg(long)]
        path: PathBuf,
        /// Lines per second (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 256)]
        line_size: usize,
        #[arg(long, value_enum, default_value_t = Rotate::None)]
        rotate: Rotate,
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        rotate_every: u64,
        #[arg(long)]
        lines: Option<u64>,
        #[arg(long)]
        duration: Option<f64>,
        #[arg(long, default_value_t = 0)]
        stream: u32,
    },
    /// Run a counting Forward server; prints the counts every second and at Ctrl-C.
    Receive {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        #[arg(long)]
        shared_key: Option<String>,
        #[arg(long, default_value = "ferry-bench")]
        self_hostname: String,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
    },
    /// Count the records in file-output archives (JSON lines, .gz too) under a directory.
    CountArchives { dir: PathBuf },
    /// Measure loopback TCP and disk write speed.
    Limits {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        #[arg(long, default_value_t = 512)]
        disk_mb: u64,
    },
    /// Run a scenario (1-8) or `all`, printing a table row per run.
    Scenario {
        /// 1 to 8, or all.
        which: String,
        #[command(flatten)]
        opts: ScenarioOpts,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(cli.command))
}

async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Send {
            to,
            connections,
            batch,
            record_size,
            acks,
            inflight,
            shared_key,
            self_hostname,
            tls_ca,
            rate,
            events,
            duration,
            tag,
            stream_base,
        } => {
            let cfg = SendConfig {
                target: Target {
                    to,
                    tls_ca,
                    shared_key,
                    self_hostname,
                },
                tag,
                connections,
                batch,
                record_size,
                acks,
                inflight,
                rate,
                events,
                duration: duration.map(Duration::from_secs_f64),
                stream_base,
            };
            if cfg.events.is_none() && cfg.duration.is_none() {
                anyhow::bail!("give --events or --duration");
            }
            let r = sender::run(
                cfg,
                Arc::new(SendProgress::default()),
                Arc::new(AtomicBool::new(false)),
            )
            .await?;
            println!(
                "sent {} events in {} requests, {:.1} MB in {:.2} s: {:.0} events/s, {:.1} MB/s; ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                r.events,
                r.requests,
                r.entry_bytes as f64 / 1e6,
                r.secs,
                r.events_per_sec(),
                r.mb_per_sec(),
                1e3 * sender::latency_quantile(&r.acks, 0.5).unwrap_or(0.0),
                1e3 * sender::latency_quantile(&r.acks, 0.99).unwrap_or(0.0),
                1e3 * sender::latency_quantile(&r.acks, 1.0).unwrap_or(0.0),
            );
            for (stream, n) in &r.per_stream {
                println!("stream {stream}: seq 0..{n}");
            }
        }
        Cmd::WriteLines {
            path,
            rate,
            line_size,
            rotate,
            rotate_every,
            lines: count,
            duration,
            stream,
        } => {
            let cfg = LinesConfig {
                path,
                rate,
                line_size,
                rotate,
                rotate_every,
                lines: count,
                duration: duration.map(Duration::from_secs_f64),
                stream,
            };
            if cfg.lines.is_none() && cfg.duration.is_none() {
                anyhow::bail!("give --lines or --duration");
            }
            let r = tokio::task::spawn_blocking(move || {
                lines::run(&cfg, &LinesProgress::default(), &AtomicBool::new(false))
            })
            .await??;
            println!(
                "wrote {} lines ({:.1} MB) in {:.2} s, {} rotations; stream {stream}: seq 0..{}",
                r.lines,
                r.bytes as f64 / 1e6,
                r.secs,
                r.rotations,
                r.lines
            );
        }
        Cmd::Receive {
            port,
            bind,
            shared_key,
            self_hostname,
            duration,
        } => {
            let rx = Receiver::start(ReceiverConfig {
                bind: format!("{bind}:{port}"),
                shared_key,
                self_hostname,
            })
            .await?;
            eprintln!("receiving on {bind}:{}", rx.port);
            let stop = async {
                match duration {
                    Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::pin!(stop);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tick.tick() => {
                        eprintln!(
                            "events {} requests {} connections {}",
                            rx.state.events.load(Ordering::Relaxed),
                            rx.state.requests.load(Ordering::Relaxed),
                            rx.state.connections.load(Ordering::Relaxed)
                        );
                    }
                }
            }
            let r = rx.state.snapshot().report(None);
            println!(
                "received {} records, {} distinct, {} duplicated, {} lost (gaps), {} unnumbered",
                r.received,
                r.distinct,
                r.duplicated,
                r.lost,
                rx.state.unnumbered.load(Ordering::Relaxed)
            );
        }
        Cmd::CountArchives { dir } => {
            let mut c = ferry_bench::archive::ArchiveCounter::new(&dir);
            c.poll()?;
            let r = c.seq.report(None);
            println!(
                "{} lines: {} records, {} distinct, {} duplicated, {} lost (gaps), {} unnumbered",
                c.lines, r.received, r.distinct, r.duplicated, r.lost, c.unnumbered
            );
        }
        Cmd::Limits { dir, secs, disk_mb } => {
            let l = ferry_bench::limits::measure(
                &dir,
                Duration::from_secs_f64(secs),
                disk_mb * 1_000_000,
            )?;
            println!(
                "loopback TCP {:.0} MB/s, disk sequential write {:.0} MB/s direct, {:.0} MB/s through the page cache",
                l.loopback_mb_s, l.disk_mb_s, l.disk_cached_mb_s
            );
        }
        Cmd::Scenario { which, opts } => scenarios(&which, opts).await?,
    }
    Ok(())
}

async fn scenarios(which: &str, opts: ScenarioOpts) -> anyhow::Result<()> {
    let all = which == "all";
    let wanted: Vec<u32> = if all {
        vec![1, 2, 3, 4, 5, 6, 7, 8]
    } else {
        vec![which.parse().context("scenario: 1 to 8 or all")?]
    };
    if wanted.iter().any(|n| !(1..=8).contains(n)) {
        anyhow::bail!("scenario: 1 to 8 or all");
    }
    if all && opts.gb.is_some() {
        anyhow::bail!("--gb applies to one scenario; run them one by one to change sizes");
    }
    let json = opts.json.clone();
    let mut ctx = Ctx::new(opts)?;
    let mut rows: Vec<Row> = Vec::new();
    for n in wanted {
        eprintln!("scenario {n}: load average {}", report::load_average());
        match n {
            1 => rows.push(forward::null(&ctx).await?),
            2 => rows.push(forward::file(&ctx).await?),
            3 | 6 => {
                let chosen = ctx.opts.buffer;
                let kinds = if all {
                    vec![scenario::BufferKind::Memory, scenario::BufferKind::File]
                } else {
                    vec![chosen.unwrap_or(scenario::BufferKind::Memory)]
                };
                let settings = if n == 3 {
                    tail::Settings::Tuned
                } else {
                    tail::Settings::Operator
                };
                for k in kinds {
                    ctx.opts.buffer = Some(k);
                    let r = tail::run_with(&ctx, settings).await?;
                    scenario::plot_row(&ctx, &format!("s{n}-{}", k.name()), &r.scenario, &r);
                    rows.push(r);
                }
                ctx.opts.buffer = chosen;
            }
            4 => {
                let r = replay::run(&ctx).await?;
                scenario::plot_row(&ctx, "s4", &r.scenario, &r);
                rows.push(r);
            }
            5 => rows.extend(failover::run_both(&ctx).await?),
            7 => rows.extend(scaling::run(&mut ctx).await?),
            8 => {
                let r = crash::run(&ctx).await?;
                let prefix = format!("s8-{}", crash::variant(&ctx));
                scenario::plot_row(&ctx, &prefix, &r.scenario, &r);
                rows.push(r);
            }
            _ => anyhow::bail!("scenario: 1 to 8 or all"),
        }
        if let Some(last) = rows.last() {
            eprintln!(
                "{}",
                report::markdown(std::slice::from_ref(last), &ctx.limits)
                    .lines()
                    .nth(2)
                    .unwrap_or_default()
            );
        }
    }
    println!();
    println!("load average at the end: {}", report::load_average());
    print!("{}", report::markdown(&rows, &ctx.limits));
    if let Some(path) = json {
        let doc = serde_json::json!({ "limits": ctx.limits, "rows": rows });
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
