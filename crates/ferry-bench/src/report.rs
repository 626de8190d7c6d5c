//! One result row per scenario run, the markdown table and the JSON file.

use serde::Serialize;

use crate::limits::Limits;
use crate::procstat::{ProcReading, Sample};

/// CPU and memory of one ferry process over a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ProcFigures {
    pub name: String,
    pub cpu_secs: f64,
    pub cpu_s_per_gb: f64,
    pub peak_rss_mib: f64,
}

impl ProcFigures {
    /// From readings before and after, for `bytes` moved.
    pub fn from_readings(
        name: &str,
        before: ProcReading,
        after: ProcReading,
        bytes: u64,
        ticks_per_s: f64,
    ) -> Self {
        let cpu_secs = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / ticks_per_s;
        ProcFigures {
            name: name.to_owned(),
            cpu_secs,
            cpu_s_per_gb: cpu_secs / (bytes as f64 / 1e9).max(1e-12),
            peak_rss_mib: after.peak_rss_kib.max(before.peak_rss_kib) as f64 / 1024.0,
        }
    }
}

/// Which limit a scenario's MB/s is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKind {
    Loopback,
    Disk,
}

/// The result of one scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub events: u64,
    pub bytes: u64,
    pub secs: f64,
    pub events_per_s: f64,
    pub mb_per_s: f64,
    pub procs: Vec<ProcFigures>,
    /// `None` where the pipeline ends in a null output (loss is then what was not acked).
    pub lost: Option<u64>,
    pub duplicated: Option<u64>,
    pub limit: LimitKind,
    pub fraction_of_limit: f64,
    pub notes: Vec<String>,
    pub load_average: String,
    pub command: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
    pub sample_procs: Vec<String>,
    /// Names of the progress counters of the samples.
    pub sample_progress: Vec<String>,
}

impl Row {
    /// Fill in the rates and the fraction of the limit.
    pub fn finish(&mut self, limits: &Limits) {
        self.events_per_s = self.events as f64 / self.secs.max(1e-9);
        self.mb_per_s = self.bytes as f64 / 1e6 / self.secs.max(1e-9);
        let limit = match self.limit {
            LimitKind::Loopback => limits.loopback_mb_s,
            LimitKind::Disk => limits.disk_mb_s,
        };
        self.fraction_of_limit = if limit > 0.0 {
            self.mb_per_s / limit
        } else {
            0.0
        };
    }
}

/// The 1, 5 and 15 minute load averages.
/// The median of a bench's runs (the middle one; NaN when there are none).
pub fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs.get(runs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A bench's numeric knob from the environment (`FERRY_BENCH_*`), or its default.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

/// The markdown table of `rows` and a line with the limits.
pub fn markdown(rows: &[Row], limits: &Limits) -> String {
    let mut out = String::from(
        "| scenario | events/s | MB/s | CPU s/GB | peak RSS MiB | lost | dup | of limit | notes |\n|---|---:|---:|---|---|---:|---:|---:|---|\n",
    );
    for r in rows {
        let cpu: Vec<String> = r
            .procs
            .iter()
            .map(|p| format!("{} {:.2}", p.name, p.cpu_s_per_gb))
            .collect();
        let rss: Vec<String> = r
            .procs
            .iter()
            .map(|p| format!("{} {:.0}", p.name, p.peak_rss_mib))
            .collect();
        out.push_str(&format!(
            "| {} | {:.0} | {:.1} | {} | {} | {} | {} | {:.0} % {} | {} |\n",
            r.scenario,
            r.events_per_s,
            r.mb_per_s,
            cpu.join(", "),
            rss.join(", "),
            opt(r.lost),
            opt(r.duplicated),
            100.0 * r.fraction_of_limit,
            match r.limit {
                LimitKind::Loopback => "loopback",
                LimitKind::Disk => "disk",
            },
            r.notes.join("; "),
        ));
    }
    out.push_str(&format!(
        "\nLimits measured in the same run: loopback TCP {:.0} MB/s, disk sequential write {:.0} MB/s direct ({:.0} MB/s through the page cache).\n",
        limits.loopback_mb_s, limits.disk_mb_s, limits.disk_cached_mb_s
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_compute_rates_and_the_table_shows_them() {
        let before = ProcReading {
            cpu_ticks: 100,
            rss_kib: 10,
            peak_rss_kib: 2048,
        };
        let after = ProcReading {
            cpu_ticks: 350,
            rss_kib: 10,
            peak_rss_kib: 4096,
        };
        let p = ProcFigures::from_readings("fwd", before, after, 500_000_000, 100.0);
        assert!((p.cpu_secs - 2.5).abs() < 1e-9);
        assert!((p.cpu_s_per_gb - 5.0).abs() < 1e-9);
        assert!((p.peak_rss_mib - 4.0).abs() < 1e-9);
        let mut row = Row {
            scenario: "1".into(),
            events: 1_000_000,
            bytes: 250_000_000,
            secs: 2.0,
            events_per_s: 0.0,
            mb_per_s: 0.0,
            procs: vec![p],
            lost: Some(0),
            duplicated: None,
            limit: LimitKind::Loopback,
            fraction_of_limit: 0.0,
            notes: vec![],
            load_average: String::new(),
            command: String::new(),
            samples: vec![],
            sample_procs: vec![],
            sample_progress: vec![],
        };
        row.finish(&Limits {
            loopback_mb_s: 1250.0,
            disk_mb_s: 100.0,
            disk_cached_mb_s: 100.0,
        });
        assert!((row.events_per_s - 500_000.0).abs() < 1e-6);
        assert!((row.mb_per_s - 125.0).abs() < 1e-9);
        assert!((row.fraction_of_limit - 0.1).abs() < 1e-9);
        let table = markdown(
            &[row],
            &Limits {
                loopback_mb_s: 1250.0,
                disk_mb_s: 100.0,
                disk_cached_mb_s: 100.0,
            },
        );
        assert!(
            table.contains("| 1 | 500000 | 125.0 | fwd 5.00 | fwd 4 | 0 | n/a | 10 % loopback |"),
            "{table}"
        );
    }
}
