//! The end-to-end scenarios: ferry processes started from generated configurations, fed by the
//! load generator or the line writer, counted at the end of the pipeline, measured from /proc.
//!
//! | n | pipeline | module |
//! |---|---|---|
//! | 1 | forward → memory buffer → null, with acks | [`forward`] |
//! | 2 | forward → file buffer → file output | [`forward`] |
//! | 3 | tail → forwarder → aggregator → file output (memory or file buffers) | [`tail`] |
//! | 4 | backlog replay from the forwarder's file buffer | [`replay`] |
//! | 5 | failover between two aggregators (SIGKILL, then SIGSTOP) | [`failover`] |
//! | 6 | scenario 3 with Fluentd's default buffer settings ("operator defaults") | [`tail`] |
//! | 7 | scenario 1 with 1, 2 and 4 connections, with the cores ferry and the generator used | [`scaling`] |
//! | 8 | crash drill: scenario 6 with file buffers, tiers SIGKILLed and restarted | [`crash`] |

pub mod config;
pub mod crash;
pub mod failover;
pub mod forward;
pub mod replay;
pub mod scaling;
pub mod tail;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::{Duration, Instant};

use crate::conn::Target;
use crate::ferryproc::Ferry;
use crate::limits::Limits;
use crate::procstat::{self, ProcReading, Sample};
use crate::report::{ProcFigures, Row};
use crate::sender::{SendConfig, SendProgress};

/// Options shared by every scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct ScenarioOpts {
    /// The ferry binary (default: `ferry` next to this executable).
    #[arg(long)]
    pub ferry: Option<PathBuf>,
    /// Data to move, in GB (each scenario has its own default).
    #[arg(long)]
    pub gb: Option<f64>,
    /// Approximate record size in bytes.
    #[arg(long, default_value_t = 256)]
    pub record_size: usize,
    /// Events per Forward request.
    #[arg(long, default_value_t = 1000)]
    pub batch: u32,
    /// Load generator connections.
    #[arg(long, default_value_t = 4)]
    pub connections: u32,
    /// A filter in front of the null output of scenario 1 (and 7).
    #[arg(long, value_enum)]
    pub filter: Option<FilterKind>,
    /// Buffer type of both tiers in scenarios 3 and 6 (default memory); of the aggregator in
    /// scenario 8 (default file; memory: only the forwarder is killed).
    #[arg(long, value_enum)]
    pub buffer: Option<BufferKind>,
    /// The aggregator of scenario 8: ferry, or Fluentd (`FLUENTD_CMD`, as
    /// `../shared/peers/setup.sh` prints it).
    #[arg(long, value_enum, default_value_t = AggregatorKind::Ferry)]
    pub aggregator: AggregatorKind,
    /// Rate: lines/s of the writer in scenarios 3, 6 and 8 (default: as fast as possible), new
    /// events/s during the replay of scenario 4, offered events/s in scenario 5.
    #[arg(long)]
    pub rate: Option<f64>,
    /// `max_request_size` of the forwarder's forward output in scenarios 6 and 8 (e.g. `1m`;
    /// default: ferry's).
    #[arg(long)]
    pub max_request_size: Option<String>,
    /// Seconds of load in scenario 5 (split around the failure).
    #[arg(long)]
    pub secs: Option<f64>,
    /// Working directory (buffers, archives, logs); default: a temporary directory removed
    /// at the end.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where PNG plots go.
    #[arg(long, default_value = "target/bench-plots")]
    pub plots: PathBuf,
    /// Write the raw results (rows, samples, limits) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Seconds of the loopback measurement.
    #[arg(long, default_value_t = 3.0)]
    pub limit_secs: f64,
    /// MB written by the disk measurement.
    #[arg(long, default_value_t = 512)]
    pub limit_disk_mb: u64,
}

/// A filter put in front of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FilterKind {
    /// `grep` with one `<regexp>` on the record's last key that every record matches.
    Grep,
}

/// Buffer type of a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BufferKind {
    Memory,
    File,
}

impl BufferKind {
    pub fn name(self) -> &'static str {
        match self {
            BufferKind::Memory => "memory",
            BufferKind::File => "file",
        }
    }
}

/// What runs the aggregator tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AggregatorKind {
    Ferry,
    Fluentd,
}

impl AggregatorKind {
    pub fn name(self) -> &'static str {
        match self {
            AggregatorKind::Ferry => "ferry",
            AggregatorKind::Fluentd => "fluentd",
        }
    }
}

/// Everything a scenario needs.
pub struct Ctx {
    pub bin: PathBuf,
    pub root: PathBuf,
    pub plots: PathBuf,
    pub opts: ScenarioOpts,
    pub limits: Limits,
    pub ticks: f64,
    _tmp: Option<tempfile::TempDir>,
}

/// A scenario failure.
pub type Error = anyhow::Error;

impl Ctx {
    /// Resolve the binary and the directories, and measure the limits.
    pub fn new(opts: ScenarioOpts) -> Result<Ctx, Error> {
        let bin = opts
            .ferry
            .clone()
            .unwrap_or_else(crate::ferryproc::default_binary);
        let (root, tmp) = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new().prefix("ferry-bench-").tempdir()?;
                (t.path().to_owned(), Some(t))
            }
        };
        std::fs::create_dir_all(&opts.plots)?;
        eprintln!(
            "measuring the machine's limits (loopback {} s, disk {} MB)",
            opts.limit_secs, opts.limit_disk_mb
        );
        let limits = crate::limits::measure(
            &root,
            Duration::from_secs_f64(opts.limit_secs),
            opts.limit_disk_mb * 1_000_000,
        )?;
        eprintln!(
            "limits: loopback {:.0} MB/s, disk {:.0} MB/s",
            limits.loopback_mb_s, limits.disk_mb_s
        );
        Ok(Ctx {
            bin,
            root,
            plots: opts.plots.clone(),
            opts,
            limits,
            ticks: procstat::clock_ticks(),
            _tmp: tmp,
        })
    }

    /// A fresh working directory for one run.
    pub fn dir(&self, name: &str) -> Result<PathBuf, Error> {
        let d = self.root.join(name);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// Remove a run's working directory unless the user chose the directory (to look at it).
    pub fn cleanup(&self, dir: &Path) {
        if self.opts.dir.is_none() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Events of about `gb` GB of records.
    pub fn events_for(&self, gb: f64) -> u64 {
        ((gb * 1e9) / (self.opts.record_size as f64 + 11.0)).max(1.0) as u64
    }

    /// A load-generator configuration towards `port`.
    pub fn send_config(&self, port: u16, events: Option<u64>) -> SendConfig {
        SendConfig {
            target: Target {
                to: format!("127.0.0.1:{port}"),
                tls_ca: None,
                shared_key: None,
                self_hostname: "ferry-bench".into(),
            },
            tag: "bench.load".into(),
            connections: self.opts.connections,
            batch: self.opts.batch,
            record_size: self.opts.record_size,
            acks: true,
            inflight: 4,
            rate: None,
            events,
            duration: None,
            stream_base: 0,
        }
    }
}

/// Readings of a set of processes taken at the start of a measurement.
pub struct Watch {
    names: Vec<String>,
    pids: Vec<Arc<AtomicU32>>,
    before: Vec<ProcReading>,
    /// CPU ticks and peak RSS of earlier lives of a restarted process.
    retired: Vec<ProcReading>,
    started: Instant,
}

impl Watch {
    pub fn start(procs: &[&Ferry]) -> Watch {
        Watch {
            names: procs.iter().map(|p| p.name.clone()).collect(),
            pids: procs.iter().map(|p| Arc::clone(&p.pid)).collect(),
            before: procs
                .iter()
                .map(|p| procstat::read(p.id()).unwrap_or_default())
                .collect(),
            retired: vec![ProcReading::default(); procs.len()],
            started: Instant::now(),
        }
    }

    /// Process `i` is about to be killed and restarted: keep what it used so far, and count
    /// the next process from 0.
    pub fn retire(&mut self, i: usize) {
        let (Some(pid), Some(before), Some(retired)) = (
            self.pids.get(i),
            self.before.get_mut(i),
            self.retired.get_mut(i),
        ) else {
            return;
        };
        let pid = pid.load(std::sync::atomic::Ordering::Relaxed);
        if let Ok(now) = procstat::read(pid) {
            retired.cpu_ticks += now.cpu_ticks.saturating_sub(before.cpu_ticks);
            retired.peak_rss_kib = retired.peak_rss_kib.max(now.peak_rss_kib);
        }
        *before = ProcReading::default();
    }

    pub fn pids(&self) -> Vec<Arc<AtomicU32>> {
        self.pids.clone()
    }

    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// CPU and peak RSS of each process since the start (all its lives), for `bytes` moved.
    /// Reads now: call before the processes are stopped.
    pub fn figures(&self, bytes: u64, ticks: f64) -> Vec<ProcFigures> {
        self.names
            .iter()
            .zip(&self.pids)
            .zip(self.before.iter().zip(&self.retired))
            .map(|((name, pid), (before, retired))| {
                let pid = pid.load(std::sync::atomic::Ordering::Relaxed);
                let now = procstat::read(pid).unwrap_or(*before);
                let after = ProcReading {
                    cpu_ticks: now.cpu_ticks + retired.cpu_ticks,
                    rss_kib: now.rss_kib,
                    peak_rss_kib: now.peak_rss_kib.max(retired.peak_rss_kib),
                };
                ProcFigures::from_readings(name, *before, after, bytes, ticks)
            })
            .collect()
    }
}

/// A row with the common fields filled.
pub fn row(scenario: &str, command: String) -> Row {
    Row {
        scenario: scenario.to_owned(),
        events: 0,
        bytes: 0,
        secs: 0.0,
        events_per_s: 0.0,
        mb_per_s: 0.0,
        procs: vec![],
        lost: None,
        duplicated: None,
        limit: crate::report::LimitKind::Loopback,
        fraction_of_limit: 0.0,
        notes: vec![],
        load_average: crate::report::load_average(),
        command,
        samples: vec![],
        sample_procs: vec![],
        sample_progress: vec![],
    }
}

/// Throughput (MB/s between samples) and RSS (MiB per process) series from samples.
pub fn series(
    samples: &[Sample],
    progress: &[String],
    names: &[String],
) -> (Vec<crate::plot::Series>, Vec<crate::plot::Series>) {
    let rate: Vec<crate::plot::Series> = progress
        .iter()
        .enumerate()
        .map(|(i, n)| crate::plot::Series {
            name: n.clone(),
            points: samples
                .windows(2)
                .map(|w| {
                    let dt = (w[1].t - w[0].t).max(1e-6);
                    let at = |s: &Sample| s.progress.get(i).copied().unwrap_or(0);
                    (
                        w[1].t,
                        at(&w[1]).saturating_sub(at(&w[0])) as f64 / 1e6 / dt,
                    )
                })
                .collect(),
        })
        .collect();
    let rss = names
        .iter()
        .enumerate()
        .map(|(i, n)| crate::plot::Series {
            name: format!("{n} RSS"),
            points: samples
                .iter()
                .filter_map(|s| s.procs.get(i).map(|p| (s.t, p.rss_kib as f64 / 1024.0)))
                .collect(),
        })
        .collect();
    (rate, rss)
}

/// Write the throughput and RSS plots of a row as `PREFIX-throughput.png`, `PREFIX-rss.png`.
pub fn plot_row(ctx: &Ctx, prefix: &str, title: &str, row: &Row) -> Vec<PathBuf> {
    let (rate, rss) = series(&row.samples, &row.sample_progress, &row.sample_procs);
    let mut out = Vec::new();
    for (kind, y, s) in [("throughput", "MB/s", rate), ("rss", "RSS MiB", rss)] {
        let path = ctx.plots.join(format!("{prefix}-{kind}.png"));
        match crate::plot::line_chart(&path, &format!("{title}: {kind}"), y, &s) {
            Ok(()) => out.push(path),
            Err(e) => eprintln!("plot {}: {e}", path.display()),
        }
    }
    out
}

/// Wait until `done()` or `timeout`, checking every `every`; true when done.
pub async fn wait_for(timeout: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// A stop flag nobody raises.
pub fn never() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// Progress counter for samplers: acked bytes of a sender.
pub fn acked_bytes(p: &Arc<SendProgress>) -> procstat::Progress {
    let p = Arc::clone(p);
    Arc::new(move || vec![p.acked_bytes.load(std::sync::atomic::Ordering::Relaxed)])
}

/// The path shown in a reproduce command.
pub fn shown(p: &Path) -> String {
    p.display().to_string()
}
