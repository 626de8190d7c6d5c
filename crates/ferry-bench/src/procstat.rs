//! Per-process figures from `/proc`: CPU time (`/proc/PID/stat`), resident and peak resident
//! memory (`/proc/PID/status`), and a sampler that records them every 250 ms.
//!
//! `/proc/PID/stat`: fields after the command name, which may hold spaces and parentheses, start
//! after the last `)`; counted from there, utime and stime are the 12th and 13th (fields 14 and
//! 15 of proc(5)), in clock ticks. `/proc/PID/status`: `VmRSS:` and `VmHWM:` lines in kB.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How often the sampler reads.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Why a `/proc` file could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Format { path: String, what: &'static str },
}

impl ProcError {
    /// True when the process is gone (its files no longer exist).
    pub fn is_gone(&self) -> bool {
        matches!(self, ProcError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when that fails, the Linux value).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime (clock ticks) from the text of `/proc/PID/stat`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The kB value of `key` (such as `VmHWM:`) from the text of `/proc/PID/status`.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProcReading {
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

fn read_file(path: &Path) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Read CPU ticks, RSS and peak RSS of `pid`.
pub fn read(pid: u32) -> Result<ProcReading, ProcError> {
    let stat_path = format!("/proc/{pid}/stat");
    let status_path = format!("/proc/{pid}/status");
    let stat = read_file(Path::new(&stat_path))?;
    let status = read_file(Path::new(&status_path))?;
    let cpu_ticks = parse_stat_cpu_ticks(&stat).ok_or(ProcError::Format {
        path: stat_path,
        what: "no utime/stime fields",
    })?;
    let field = |key, what| {
        parse_status_kib(&status, key).ok_or(ProcError::Format {
            path: status_path.clone(),
            what,
        })
    };
    Ok(ProcReading {
        cpu_ticks,
        rss_kib: field("VmRSS:", "no VmRSS line")?,
        peak_rss_kib: field("VmHWM:", "no VmHWM line")?,
    })
}

/// utime + stime of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64, ProcError> {
    Ok(read(pid)?.cpu_ticks as f64 / clock_ticks())
}

/// One sample of every watched process plus the scenario's progress counter.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub t: f64,
    /// The scenario's progress counters (bytes moved so far at each point it watches).
    pub progress: Vec<u64>,
    /// One reading per watched process (the last good one when a process is gone).
    pub procs: Vec<ProcReading>,
}

/// Something the sampler reads: a name and a pid that may change (a restarted process).
pub type PidSource = Arc<std::sync::atomic::AtomicU32>;

/// Progress counters read at each sample.
pub type Progress = Arc<dyn Fn() -> Vec<u64> + Send + Sync>;

/// Samples processes and a progress counter every [`SAMPLE_EVERY`] on its own thread.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Sample>>>,
}

impl Sampler {
    /// Start sampling `pids` (0 = not running) and `progress`.
    pub fn start(pids: Vec<PidSource>, progress: Progress) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = vec![ProcReading::default(); pids.len()];
            let mut out = Vec::new();
            loop {
                for (i, pid) in pids.iter().enumerate() {
                    let pid = pid.load(Ordering::Relaxed);
                    if pid != 0
                        && let Ok(r) = read(pid)
                    {
                        last[i] = r;
                    }
                }
                out.push(Sample {
                    t: started.elapsed().as_secs_f64(),
                    progress: progress(),
                    procs: last.clone(),
                });
                if flag.load(Ordering::Relaxed) {
                    return out;
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop and return the samples (a last one is taken now).
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_a_strange_command_name() {
        let stat = "4242 (fe rry) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 6 0 \
                    100 200000000 3000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(175));
        assert_eq!(parse_stat_cpu_ticks("12 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn status_values_are_read_in_kib() {
        let status =
            "Name:\tferry\nVmPeak:\t  900000 kB\nVmHWM:\t   52340 kB\nVmRSS:\t   41000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(52_340));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(41_000));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_a_peak_at_least_its_rss() {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let r = read(std::process::id()).unwrap();
        assert!(r.cpu_ticks > 0);
        assert!(r.rss_kib > 0);
        assert!(r.peak_rss_kib >= r.rss_kib);
        let err = read(u32::MAX).unwrap_err();
        assert!(err.is_gone());
    }

    #[test]
    fn the_sampler_records_progress_and_readings_over_time() {
        let pid = Arc::new(std::sync::atomic::AtomicU32::new(std::process::id()));
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = Arc::clone(&counter);
        let sampler = Sampler::start(vec![pid], Arc::new(move || vec![c.load(Ordering::Relaxed)]));
        std::thread::sleep(Duration::from_millis(300));
        counter.store(1000, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
        let samples = sampler.finish();
        assert!(samples.len() >= 3, "{} samples", samples.len());
        assert_eq!(samples[0].progress, vec![0]);
        assert_eq!(samples.last().unwrap().progress, vec![1000]);
        assert!(samples.windows(2).all(|w| w[1].t > w[0].t));
        assert!(samples[0].procs[0].rss_kib > 0);
    }
}
