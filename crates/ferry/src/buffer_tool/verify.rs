//! `ferry buffer verify DIR`: every checksum of every chunk, like fsck. Problems of live
//! chunks decide the exit code; those of quarantined chunks are listed for information (ferry
//! set them aside already).

use std::fmt::Write as _;
use std::time::SystemTime;

use ferry_buffer::inspect::{Check, ChunkReport, Exclusion, Location, Severity};
use serde_json::json;

use super::{
    CANNOT_RUN, FOUND_DAMAGE, Target, ToolError, bytes, chunk_json, examine_all, id_text, open,
    print,
};

/// Counts of one group of chunks (live or quarantined).
#[derive(Default)]
struct Tally {
    chunks: usize,
    bytes: u64,
    with_problems: usize,
    by_severity: [u64; 4],
}

impl Tally {
    fn add(&mut self, r: &ChunkReport) {
        self.chunks += 1;
        self.bytes += r.files.payload.as_ref().map_or(0, |p| p.len);
        if !r.problems.is_empty() {
            self.with_problems += 1;
        }
        for p in &r.problems {
            self.by_severity[rank(p.severity)] += 1;
        }
    }

    fn count(&self, s: Severity) -> u64 {
        self.by_severity[rank(s)]
    }

    fn problems_text(&self) -> String {
        let parts: Vec<String> = [
            Severity::Damage,
            Severity::TornTail,
            Severity::Unreadable,
            Severity::Leftover,
        ]
        .into_iter()
        .filter(|s| self.count(*s) > 0)
        .map(|s| format!("{} {}", self.count(s), s.as_str()))
        .collect();
        if parts.is_empty() {
            "no problem".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Severities are in order, from 0.
fn rank(s: Severity) -> usize {
    s as usize
}

/// What ferry does at its next start about a problem of this severity.
fn consequence(s: Severity) -> &'static str {
    match s {
        Severity::Leftover => "ferry deletes these files at its next start; nothing is lost",
        Severity::TornTail => {
            "ferry truncates the torn tail at its next start: those bytes were never acknowledged"
        }
        Severity::Damage => {
            "ferry quarantines the chunk; `ferry buffer salvage` recovers its intact appends"
        }
        Severity::Unreadable => "the check is incomplete: fix the file's permissions or the disk",
    }
}

pub(super) fn run(target: &Target, as_json: bool) -> Result<u8, ToolError> {
    let inspector = open(target, Exclusion::TakeLock)?;
    let (reports, unknown) = examine_all(&inspector, Check::Payload)?;
    drop(inspector);
    let mut live = Tally::default();
    let mut quarantined = Tally::default();
    for r in &reports {
        match r.files.location {
            Location::Live => live.add(r),
            Location::Quarantine => quarantined.add(r),
        }
    }
    let code = if live.count(Severity::Damage) + live.count(Severity::TornTail) > 0 {
        FOUND_DAMAGE
    } else if live.count(Severity::Unreadable) + quarantined.count(Severity::Unreadable) > 0 {
        CANNOT_RUN
    } else {
        0
    };
    if as_json {
        let now = SystemTime::now();
        let doc = json!({
            "dir": target.dir,
            "name": target.name,
            "clean": code == 0,
            "chunks": reports.iter().map(|r| chunk_json(r, now)).collect::<Vec<_>>(),
            "unknown_files": unknown,
        });
        print(&format!("{doc:#}\n"))?;
        return Ok(code);
    }
    let mut out = String::new();
    let mut seen = Vec::new();
    for r in &reports {
        let quarantine = r.files.location == Location::Quarantine;
        for p in &r.problems {
            let at = p.offset.map_or(String::new(), |o| format!(" offset {o}:"));
            let note = if quarantine { " (quarantined)" } else { "" };
            let _ = writeln!(
                out,
                "{}:{at} {}{note}: {}",
                p.path.display(),
                p.severity.as_str(),
                p.kind
            );
            if !quarantine && !seen.contains(&p.severity) {
                seen.push(p.severity);
            }
        }
        if r.problems_not_listed > 0 {
            let _ = writeln!(
                out,
                "chunk {}: {} more problems not listed",
                id_text(r),
                r.problems_not_listed
            );
        }
    }
    for path in &unknown {
        let _ = writeln!(
            out,
            "note: {} is not a chunk file (left alone)",
            path.display()
        );
    }
    let _ = writeln!(
        out,
        "{}: {} live chunks ({}): {} in {} chunks; {} quarantined chunks ({}): {}",
        target.dir.display(),
        live.chunks,
        bytes(live.bytes as f64),
        live.problems_text(),
        live.with_problems,
        quarantined.chunks,
        bytes(quarantined.bytes as f64),
        quarantined.problems_text(),
    );
    seen.sort();
    for s in seen.into_iter().rev() {
        let _ = writeln!(out, "{}: {}", s.as_str(), consequence(s));
    }
    if reports.is_empty() {
        let _ = writeln!(
            out,
            "no chunk files of buffer '{}' here (another buffer name? see --name)",
            target.name
        );
    }
    print(&out)?;
    Ok(code)
}
