//! Scenario 8: crash drill.
//!
//! Scenario 6's pipeline ("operator defaults": tail → forwarder → forward output with
//! `require_ack_response` → aggregator → file output, `flush_mode interval`, `flush_interval 1s`,
//! default chunk sizes, 200-byte lines) with file buffers at both tiers, while ferry-bench
//! SIGKILLs the processes and restarts each at once on the same configuration and directories,
//! so that the file buffers and the tail's position file are recovered.
//!
//! Variants:
//! - `--buffer file` (default): three SIGKILLs of the forwarder and three of the aggregator,
//!   interleaved (forwarder first).
//! - `--buffer memory`: a memory buffer at the aggregator (the forwarder keeps its file buffer);
//!   only the forwarder is killed, three times, since a SIGKILL loses what a memory buffer holds.
//! - `--aggregator fluentd`: the aggregator is Fluentd (`FLUENTD_CMD`, run with
//!   `--no-supervisor`: one process, so a SIGKILL of its pid kills all of it) with a forward
//!   input and a file output of JSON lines behind a file buffer, Fluentd's defaults otherwise.
//!   Both tiers are killed, as with ferry (only the forwarder with `--buffer memory`).
//!
//! The line writer writes [`S8_RATE`] lines a second (`--rate` changes it): a steady stream, as
//! a busy host writes, so that the pipeline is sending when each kill is due (written as fast
//! as possible, the lines are all read in a second and the later kills find every line
//! archived already). A kill is due
//! by the pipeline's progress, and then waits for a chunk in flight:
//! - kill `k` of `n` is due once `(k-1)/(n+2)` of the lines are in the archives: the first at
//!   once, the last with `3/(n+2)` still to come. The clock cannot place the kills: the writer
//!   is done long before the pipeline, and an aggregator kill stalls the forwarder for ten
//!   seconds or more (detach, `recover_wait`, retry wait), after which its backlog goes through
//!   in a few large chunks; hence the room left after the last kill;
//! - once due, the kill waits for a chunk in flight: the forwarder has been sending one for half
//!   as long as its earlier chunks took (50 ms before one went through). With `keepalive false`
//!   (the default) the forward output opens a connection per flush and closes it once the chunk
//!   is acknowledged, so an open connection to the aggregator (in `/proc/net/tcp`, polled every
//!   10 ms; a heartbeat's connect and close is seen at one poll at most) is a chunk in flight.
//!   Kills at random moments mostly fall between two flushes, while the tail reads, and cost
//!   nothing: the figures would tell more about luck than about recovery;
//! - after the first kill, the next one also waits until a chunk went through or the archives
//!   grew since the restart: the pipeline moves again, and a kill does not fall on the very
//!   re-send the previous one caused.
//!
//! The clock runs from the first line written until every line is in the archives (at most
//! [`DRAIN_TIMEOUT`] after the writer's end or the last restart); then the archives are counted:
//! lost must be 0, duplicates are the re-sends after the kills.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::config;
use super::{AggregatorKind, BufferKind, Ctx, Error, Watch, row};
use crate::archive::ArchiveCounter;
use crate::ferryproc::{Ferry, Ready, connections_to, free_port};
use crate::lines::{self, LinesConfig, LinesProgress, LinesReport, Rotate};
use crate::procstat::Sampler;
use crate::report::Row;

/// Default size, GB of lines.
pub const S8_GB: f64 = 1.0;
/// Line size (scenario 6's).
pub const S8_LINE: usize = 200;
/// Lines written per second unless `--rate` says otherwise (20 MB/s: 1 GB in 50 s).
pub const S8_RATE: f64 = 100_000.0;
/// SIGKILLs of each tier that is killed.
pub const KILLS_PER_TIER: usize = 3;
/// How long the archives may take to hold every line after the writer's end or the last
/// restart, whichever is later.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the forwarder's connections are looked at.
const TICK: Duration = Duration::from_millis(10);
/// How often the archives and the position file are read, in ticks.
const POLL_TICKS: u32 = 10;

/// A tier of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Forwarder,
    Aggregator,
}

impl Tier {
    fn index(self) -> usize {
        match self {
            Tier::Forwarder => 0,
            Tier::Aggregator => 1,
        }
    }

    fn short(self) -> &'static str {
        match self {
            Tier::Forwarder => "fwd",
            Tier::Aggregator => "agg",
        }
    }
}

/// One run's choices: what runs the aggregator, and its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub aggregator: AggregatorKind,
    pub buffer: BufferKind,
}

impl Variant {
    /// From the options: `--aggregator` and `--buffer` (default file).
    pub fn of(ctx: &Ctx) -> Variant {
        Variant {
            aggregator: ctx.opts.aggregator,
            buffer: ctx.opts.buffer.unwrap_or(BufferKind::File),
        }
    }

    /// A name for directories and plots: `file`, `memory`, `fluentd-file`, `fluentd-memory`.
    pub fn name(self) -> String {
        match self.aggregator {
            AggregatorKind::Ferry => self.buffer.name().to_owned(),
            AggregatorKind::Fluentd => format!("fluentd-{}", self.buffer.name()),
        }
    }

    /// The kills, in order: interleaved, forwarder first; the aggregator only when it buffers
    /// in files.
    pub fn schedule(self) -> Vec<Tier> {
        let mut plan = Vec::new();
        for _ in 0..KILLS_PER_TIER {
            plan.push(Tier::Forwarder);
            if self.buffer == BufferKind::File {
                plan.push(Tier::Aggregator);
            }
        }
        plan
    }
}

/// The variant's name (see [`Variant::name`]).
pub fn variant(ctx: &Ctx) -> String {
    Variant::of(ctx).name()
}

/// When the kills are due: kill `k` of `n` once `(k-1)/(n+2)` of the lines are in the archives
/// (the first at once).
#[derive(Debug, Clone)]
pub struct Schedule {
    plan: Vec<Tier>,
    done: usize,
}

impl Schedule {
    pub fn new(plan: Vec<Tier>) -> Schedule {
        Schedule { plan, done: 0 }
    }

    /// The tier whose kill is due with `archived` (0 to 1) of the lines in the archives, if
    /// one is.
    pub fn due(&self, archived: f64) -> Option<Tier> {
        let tier = *self.plan.get(self.done)?;
        let point = self.done as f64 / (self.plan.len() + 2) as f64;
        (archived >= point).then_some(tier)
    }

    /// The kill due was made.
    pub fn killed(&mut self) {
        self.done += 1;
    }

    /// Kills made.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Kills planned.
    pub fn planned(&self) -> usize {
        self.plan.len()
    }
}

/// The forwarder's chunks in flight, seen as its connections to the aggregator's port.
#[derive(Debug, Default)]
pub struct Flights {
    /// Open connections (by local port): when each was first and last seen.
    open: HashMap<u16, (f64, f64)>,
    /// How long each connection seen at two polls or more was open, seconds.
    took: Vec<f64>,
    /// Such connections closed since the last [`Flights::reset`]: chunks sent through.
    through: usize,
}

impl Flights {
    /// The connections open at `t` seconds (local ports).
    pub fn observe(&mut self, t: f64, open: &HashSet<u16>) {
        let (took, through) = (&mut self.took, &mut self.through);
        self.open.retain(|port, (first, last)| {
            if open.contains(port) {
                *last = t;
                return true;
            }
            if *last > *first {
                took.push(*last - *first);
                *through += 1;
            }
            false
        });
        for port in open {
            self.open.entry(*port).or_insert((t, t));
        }
    }

    /// How long a chunk has to be in flight before a kill: half the median time earlier chunks
    /// took, at least 10 ms (so that a connection seen at one poll only, a heartbeat's, never
    /// counts); 50 ms before any chunk was seen through.
    pub fn midway(&self) -> f64 {
        let mut took = self.took.clone();
        took.sort_by(f64::total_cmp);
        took.get(took.len() / 2)
            .map_or(0.05, |m| (m / 2.0).max(0.01))
    }

    /// How long the oldest chunk in flight at `t` has been, once that is
    /// [`Flights::midway`] or more.
    pub fn midway_at(&self, t: f64) -> Option<f64> {
        let wait = self.midway();
        self.open
            .values()
            .map(|(first, _)| t - first)
            .filter(|d| *d >= wait)
            .reduce(f64::max)
    }

    /// Chunks sent through since the last reset.
    pub fn through(&self) -> usize {
        self.through
    }

    /// Forget the open connections (their process was killed) and the chunks sent through.
    pub fn reset(&mut self) {
        self.open.clear();
        self.through = 0;
    }
}

/// One kill and restart.
#[derive(Debug, Clone, Copy)]
struct Kill {
    tier: Tier,
    /// Seconds into the run.
    at: f64,
    /// Share of the lines in the archives then.
    archived: f64,
    /// Seconds the chunk in flight had been sent for.
    in_flight: f64,
    /// Seconds from the kill until the restarted process was ready.
    restart_secs: f64,
}

/// The command that runs Fluentd: `FLUENTD_CMD`, with `--no-supervisor` added when missing (a
/// supervisor's worker would outlive a SIGKILL of the supervisor and hold the port).
fn fluentd_command() -> Result<String, Error> {
    let cmd = std::env::var("FLUENTD_CMD").unwrap_or_default();
    if cmd.trim().is_empty() {
        anyhow::bail!(
            "--aggregator fluentd needs FLUENTD_CMD: eval \"$(../shared/peers/setup.sh)\" sets it"
        );
    }
    Ok(if cmd.split_whitespace().any(|w| w == "--no-supervisor") {
        cmd
    } else {
        format!("{cmd} --no-supervisor")
    })
}

/// Fluentd's aggregator: a forward input, a file output of JSON lines under `out` behind a
/// `<buffer>` with the type, `flush_mode interval`, `flush_interval 1s` (and, for a file buffer,
/// its path, which Fluentd requires), Fluentd's defaults otherwise. `root` is Fluentd's
/// `root_dir`, where it moves broken chunks (default: /tmp/fluent).
pub fn fluentd_aggregator(
    port: u16,
    out: &Path,
    buffer_path: Option<&Path>,
    root: &Path,
) -> String {
    let buffer = match buffer_path {
        Some(p) => format!("    @type file\n    path {}\n", p.display()),
        None => "    @type memory\n".to_owned(),
    };
    format!(
        "<system>\n  root_dir {}\n</system>\n{}<match bench.**>\n  @type file\n  path {}/bench\n  <format>\n    @type json\n  </format>\n  <buffer>\n{buffer}    flush_mode interval\n    flush_interval 1s\n  </buffer>\n</match>\n",
        root.display(),
        config::forward_source(port),
        out.display()
    )
}

/// What the drill loop ends with.
struct Drill {
    written: LinesReport,
    kills: Vec<Kill>,
    done: bool,
}

/// Scenario 8 with the variant of the options.
pub async fn run(ctx: &Ctx) -> Result<Row, Error> {
    let variant = Variant::of(ctx);
    let gb = ctx.opts.gb.unwrap_or(S8_GB);
    let dir = ctx.dir(&format!("s8-{}", variant.name()))?;
    let agg_port = free_port()?;
    let out = dir.join("archive");
    let agg_file = variant.buffer == BufferKind::File;
    let log_file = dir.join("app.log");
    let forwarder = format!(
        "{}{}",
        config::tail_source(&log_file, &dir.join("tail.pos")),
        config::operator_forward_output(agg_port, true, ctx.opts.max_request_size.as_deref())
    );
    let agg = match variant.aggregator {
        AggregatorKind::Ferry => Ferry::start(
            &ctx.bin,
            &dir,
            "aggregator",
            &format!(
                "{}{}",
                config::forward_source(agg_port),
                config::operator_file_output(&out, agg_file)
            ),
            Ready::Port(agg_port),
        )?,
        AggregatorKind::Fluentd => {
            let buffer = dir.join("fluentd-buffer");
            Ferry::start_command(
                &fluentd_command()?,
                &dir,
                "fluentd",
                &fluentd_aggregator(
                    agg_port,
                    &out,
                    agg_file.then_some(buffer.as_path()),
                    &dir.join("fluentd.root"),
                ),
                Ready::Port(agg_port),
            )?
        }
    };
    let fwd = Ferry::start(&ctx.bin, &dir, "forwarder", &forwarder, Ready::Started)?;
    let mut procs = [fwd, agg];
    let mut watch = Watch::start(&[&procs[0], &procs[1]]);
    let out_dir = out.clone();
    let writing = Arc::new(LinesProgress::default());
    let w = Arc::clone(&writing);
    let sampler = Sampler::start(
        watch.pids(),
        Arc::new(move || {
            vec![
                w.bytes.load(Ordering::Relaxed),
                crate::archive::dir_bytes(&out_dir),
            ]
        }),
    );
    let total = ((gb * 1e9) / S8_LINE as f64).max(1.0) as u64;
    let cfg = LinesConfig {
        path: log_file,
        rate: Some(ctx.opts.rate.unwrap_or(S8_RATE)),
        line_size: S8_LINE,
        rotate: Rotate::None,
        rotate_every: u64::MAX,
        lines: Some(total),
        duration: None,
        stream: 0,
    };
    let mut schedule = Schedule::new(variant.schedule());
    let mut counter = match variant.aggregator {
        AggregatorKind::Ferry => ArchiveCounter::new(&out),
        // Fluentd writes each archive in place.
        AggregatorKind::Fluentd => ArchiveCounter::following(&out),
    };
    let started = Instant::now();
    let writer = std::thread::spawn(move || lines::run(&cfg, &writing, &AtomicBool::new(false)));
    let drill = tokio::task::block_in_place(|| -> Result<Drill, Error> {
        let mut writer = Some(writer);
        let mut written: Option<LinesReport> = None;
        let mut kills: Vec<Kill> = Vec::new();
        let mut deadline: Option<Instant> = None;
        let mut flights = Flights::default();
        let mut archived = 0;
        // Distinct lines archived when the last restarted process was ready.
        let mut at_restart: Option<u64> = None;
        let mut tick = 0u64;
        loop {
            let t = started.elapsed().as_secs_f64();
            if tick % u64::from(POLL_TICKS) == 0 {
                let _ = counter.poll();
                archived = counter.seq.distinct();
                if writer.as_ref().is_some_and(|w| w.is_finished())
                    && let Some(w) = writer.take()
                {
                    let report = w
                        .join()
                        .map_err(|_| anyhow::anyhow!("the line writer panicked"))??;
                    written = Some(report);
                    deadline = Some(later(deadline, Instant::now() + DRAIN_TIMEOUT));
                }
                if let Some(w) = &written {
                    let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
                    if archived >= w.lines || timed_out {
                        return Ok(Drill {
                            written: *w,
                            kills,
                            done: !timed_out,
                        });
                    }
                }
            }
            flights.observe(t, &connections_to(agg_port).unwrap_or_default());
            // After a kill, the pipeline must have moved again: a chunk sent through, or lines
            // archived, since the restart.
            let moved = schedule.done() == 0
                || flights.through() > 0
                || at_restart.is_some_and(|a| archived > a);
            if let Some(tier) = schedule.due(archived as f64 / total as f64)
                && moved
                && let Some(in_flight) = flights.midway_at(t)
            {
                let i = tier.index();
                watch.retire(i);
                let killed = Instant::now();
                procs[i].kill();
                eprintln!(
                    "scenario 8: SIGKILL {} ({} of {}) at {t:.1} s, a chunk {:.0} ms in flight, {:.0} % of the lines archived",
                    procs[i].name,
                    kills.len() + 1,
                    schedule.planned(),
                    1e3 * in_flight,
                    100.0 * archived as f64 / total as f64
                );
                procs[i].restart()?;
                kills.push(Kill {
                    tier,
                    at: t,
                    archived: archived as f64 / total as f64,
                    in_flight,
                    restart_secs: killed.elapsed().as_secs_f64(),
                });
                schedule.killed();
                flights.reset();
                let _ = counter.poll();
                archived = counter.seq.distinct();
                at_restart = Some(archived);
                if written.is_some() {
                    deadline = Some(later(deadline, Instant::now() + DRAIN_TIMEOUT));
                }
            }
            std::thread::sleep(TICK);
            tick += 1;
        }
    })?;
    let secs = started.elapsed().as_secs_f64();
    let written = drill.written;
    let title = match variant.aggregator {
        AggregatorKind::Ferry if agg_file => "8 crash drill, file buffers".to_owned(),
        AggregatorKind::Ferry => "8 crash drill, memory buffer at the aggregator".to_owned(),
        AggregatorKind::Fluentd => format!(
            "8 crash drill, Fluentd aggregator ({} buffer)",
            variant.buffer.name()
        ),
    };
    let mut command = format!(
        "ferry-bench scenario 8 --buffer {} --gb {gb}",
        variant.buffer.name()
    );
    if variant.aggregator == AggregatorKind::Fluentd {
        command.push_str(" --aggregator fluentd");
    }
    if let Some(rate) = ctx.opts.rate {
        command.push_str(&format!(" --rate {rate}"));
    }
    if let Some(max) = &ctx.opts.max_request_size {
        command.push_str(&format!(" --max-request-size {max}"));
    }
    let mut r = row(&title, command);
    super::tail::fill_lines_row(&mut r, ctx, &watch, sampler, &written, &counter, secs);
    let duplicated = r.duplicated.unwrap_or(0);
    r.notes
        .push(kill_note(&drill.kills, schedule.planned(), duplicated));
    r.notes.push(format!(
        "lines of {S8_LINE} B written in {:.1} s; clock stops when all are in the archives{}",
        written.secs,
        if drill.done {
            String::new()
        } else {
            format!(
                "; TIMED OUT with {} of {} lines archived",
                counter.seq.distinct(),
                written.lines
            )
        }
    ));
    if counter.unnumbered > 0 {
        r.notes
            .push(format!("{} unnumbered archive lines", counter.unnumbered));
    }
    r.finish(&ctx.limits);
    drop(procs);
    ctx.cleanup(&dir);
    Ok(r)
}

fn later(a: Option<Instant>, b: Instant) -> Instant {
    a.map_or(b, |a| a.max(b))
}

/// The kills of each tier, when they came, how long their chunk had been in flight, the
/// restarts' time to ready, and the duplicates per kill.
fn kill_note(kills: &[Kill], planned: usize, duplicated: u64) -> String {
    let count = |t: Tier| kills.iter().filter(|k| k.tier == t).count();
    let mut note = format!(
        "SIGKILL and restart: forwarder {}, aggregator {}",
        count(Tier::Forwarder),
        count(Tier::Aggregator),
    );
    let range = |f: fn(&Kill) -> f64| {
        kills.iter().fold((f64::MAX, f64::MIN), |(lo, hi), k| {
            (lo.min(f(k)), hi.max(f(k)))
        })
    };
    if !kills.is_empty() {
        let at: Vec<String> = kills
            .iter()
            .map(|k| format!("{} {:.1}", k.tier.short(), k.at))
            .collect();
        let (lo, hi) = range(|k| k.archived);
        let (fl_lo, fl_hi) = range(|k| k.in_flight);
        let (up_lo, up_hi) = range(|k| k.restart_secs);
        note.push_str(&format!(
            " (at {} s, {:.0} to {:.0} % of the lines archived, a chunk in flight for {:.0} to {:.0} ms; back up {up_lo:.1} to {up_hi:.1} s after the kill)",
            at.join(", "),
            100.0 * lo,
            100.0 * hi,
            1e3 * fl_lo,
            1e3 * fl_hi,
        ));
    }
    if kills.len() < planned {
        note.push_str(&format!(
            "; only {} of {planned} kills: every line was archived first (a larger --gb makes room for them)",
            kills.len()
        ));
    }
    if !kills.is_empty() {
        note.push_str(&format!(
            "; {:.0} duplicates per kill",
            duplicated as f64 / kills.len() as f64
        ));
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_are_interleaved_forwarder_first() {
        use Tier::{Aggregator as A, Forwarder as F};
        let file = Variant {
            aggregator: AggregatorKind::Ferry,
            buffer: BufferKind::File,
        };
        assert_eq!(file.schedule(), vec![F, A, F, A, F, A]);
        assert_eq!(file.name(), "file");
        let memory = Variant {
            buffer: BufferKind::Memory,
            ..file
        };
        assert_eq!(memory.schedule(), vec![F, F, F]);
        let fluentd = Variant {
            aggregator: AggregatorKind::Fluentd,
            ..file
        };
        assert_eq!(fluentd.name(), "fluentd-file");
        assert_eq!(fluentd.schedule().len(), 6);
    }

    #[test]
    fn kills_are_due_at_shares_of_the_lines_archived() {
        use Tier::{Aggregator as A, Forwarder as F};
        let mut s = Schedule::new(vec![F, A, F]);
        assert_eq!(s.due(0.0), Some(F), "the first kill at once");
        s.killed();
        assert_eq!(s.due(0.19), None, "a fifth is not archived yet");
        assert_eq!(s.due(0.2), Some(A));
        s.killed();
        assert_eq!(s.due(0.39), None);
        assert_eq!(s.due(0.4), Some(F));
        s.killed();
        assert_eq!(s.due(1.0), None, "all done");
        assert_eq!((s.done(), s.planned()), (3, 3));
    }

    #[test]
    fn a_chunk_counts_in_flight_once_open_for_half_the_usual_time() {
        let ports = |p: &[u16]| p.iter().copied().collect::<HashSet<u16>>();
        let mut f = Flights::default();
        assert!((f.midway() - 0.05).abs() < 1e-9);
        // Three chunks took 0.2, 0.4 and 0.3 s (seen at two polls each).
        for (open, close) in [(0.0, 0.2), (1.0, 1.4), (2.0, 2.3)] {
            f.observe(open, &ports(&[100]));
            f.observe(close, &ports(&[100]));
            f.observe(close + 0.01, &ports(&[]));
        }
        // A heartbeat's connection, seen at one poll, is no chunk.
        f.observe(2.5, &ports(&[7]));
        f.observe(2.51, &ports(&[]));
        assert_eq!(f.through(), 3);
        assert!((f.midway() - 0.15).abs() < 1e-9, "{}", f.midway());
        f.observe(3.0, &ports(&[101]));
        assert_eq!(f.midway_at(3.1), None);
        assert!(f.midway_at(3.2).is_some_and(|d| (d - 0.2).abs() < 1e-9));
        f.reset();
        assert_eq!(f.midway_at(3.3), None);
        assert_eq!(f.through(), 0);
    }

    #[test]
    fn the_note_counts_kills_per_tier_and_duplicates_per_kill() {
        let k = |tier, at, archived| Kill {
            tier,
            at,
            archived,
            in_flight: 0.1,
            restart_secs: 0.5,
        };
        let note = kill_note(
            &[
                k(Tier::Forwarder, 1.5, 0.14),
                k(Tier::Aggregator, 3.0, 0.29),
            ],
            6,
            1000,
        );
        assert!(note.contains("forwarder 1, aggregator 1"), "{note}");
        assert!(note.contains("at fwd 1.5, agg 3.0 s, 14 to 29 %"), "{note}");
        assert!(note.contains("in flight for 100 to 100 ms"), "{note}");
        assert!(note.contains("only 2 of 6 kills"), "{note}");
        assert!(note.contains("500 duplicates per kill"), "{note}");
        let none = kill_note(&[], 3, 0);
        assert!(
            none.starts_with("SIGKILL and restart: forwarder 0, aggregator 0; only 0 of 3"),
            "{none}"
        );
    }

    #[test]
    fn fluentd_gets_a_file_buffer_with_its_path_and_json_lines() {
        let conf = fluentd_aggregator(
            24224,
            Path::new("/w/archive"),
            Some(Path::new("/w/fluentd-buffer")),
            Path::new("/w/fluentd.root"),
        );
        assert!(
            conf.starts_with("<system>\n  root_dir /w/fluentd.root\n</system>\n"),
            "{conf}"
        );
        assert!(conf.contains("port 24224"), "{conf}");
        assert!(conf.contains("path /w/archive/bench\n"), "{conf}");
        assert!(
            conf.contains(
                "@type file\n    path /w/fluentd-buffer\n    flush_mode interval\n    flush_interval 1s\n"
            ),
            "{conf}"
        );
        assert!(conf.contains("<format>\n    @type json\n"), "{conf}");
        let memory = fluentd_aggregator(1, Path::new("/w"), None, Path::new("/r"));
        assert!(memory.contains("@type memory"), "{memory}");
    }
}
