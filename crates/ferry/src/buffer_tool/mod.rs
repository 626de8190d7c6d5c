//! `ferry buffer ls|verify|salvage DIR`: offline tools over a file buffer directory, for
//! operators. The reading is [`ferry_buffer::inspect`]'s (read only, refuses a directory in
//! use); this module chooses what to print and the exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done: `ls` listed, `verify` found nothing wrong, `salvage` recovered what was intact |
//! | 1 | `verify`: a torn tail or damage in a live chunk; `salvage`: nothing could be recovered |
//! | 2 | could not run: a directory in use by a running ferry, a missing directory, bad arguments, a file that cannot be read or written |
//!
//! Files: `mod` (the commands, `ls`), `verify`, `salvage` (including the JSON lines writer,
//! built on [`crate::format::json`]).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use ferry_buffer::inspect::{
    Check, ChunkReport, ChunkState, Exclusion, InspectError, Inspector, Location,
};
use serde_json::{Value, json};

use crate::output::buffered::BUFFER_FILE_NAME;
use crate::status::{bytes, duration};

mod salvage;
mod verify;

/// `verify` found a torn tail or damage; `salvage` recovered nothing.
const FOUND_DAMAGE: u8 = 1;
/// The command could not do its job.
const CANNOT_RUN: u8 = 2;

/// The buffer directory a command reads.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The buffer directory: the `path` of a `<buffer> @type file` section.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The file name prefix of the buffer's chunks (`NAME.<id>.payload`).
    #[arg(long, value_name = "NAME", default_value = BUFFER_FILE_NAME)]
    pub name: String,
}

/// `ferry buffer ...`: read a file buffer directory while no ferry runs on it.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BufferCommand {
    /// List every chunk, live and quarantined: state, chunk keys, size, records, age and failed
    /// flushes (reads journals only).
    Ls {
        #[command(flatten)]
        target: Target,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check every checksum of every chunk (journal header and records, each append's crc32c
    /// over the payload) and print each problem with its file and byte offset. Exit 0 when
    /// clean, 1 on a torn tail or damage, 2 when it could not run.
    Verify {
        #[command(flatten)]
        target: Target,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Recover the intact appends of a quarantined or damaged chunk: into a buffer directory,
    /// as a new chunk with the same keys that ferry sends at its next start, or as JSON lines
    /// `{"tag":..,"time":..,"record":{..}}`.
    Salvage {
        #[command(flatten)]
        target: Target,
        /// The chunk: its 32-hex-digit id (`<id>-<n>` for a chunk quarantined more than once)
        /// or the path of one of its files.
        #[arg(value_name = "CHUNK_ID_OR_FILE")]
        chunk: String,
        /// Write the intact appends into this buffer directory (it may be DIR itself).
        #[arg(
            long,
            value_name = "BUFFER_DIR",
            required_unless_present = "json_lines",
            conflicts_with = "json_lines"
        )]
        into: Option<PathBuf>,
        /// Write the intact events to this new file as JSON lines (`-`: standard output).
        #[arg(long, value_name = "OUT")]
        json_lines: Option<PathBuf>,
    },
}

/// Why a command could not run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error("{} is in use by a running ferry (lock {lock} held); stop it first", dir.display())]
    InUse { dir: PathBuf, lock: String },
    #[error("cannot open the buffer in {}: {source}", dir.display())]
    Open {
        dir: PathBuf,
        #[source]
        source: ferry_buffer::OpenError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

/// Runs a `ferry buffer` command; its output goes to stdout, errors to stderr.
pub fn run(cmd: &BufferCommand) -> ExitCode {
    let (what, result) = match cmd {
        BufferCommand::Ls { target, json } => ("ls", ls(target, *json)),
        BufferCommand::Verify { target, json } => ("verify", verify::run(target, *json)),
        BufferCommand::Salvage {
            target,
            chunk,
            into,
            json_lines,
        } => {
            let result = match (into, json_lines) {
                (Some(dir), _) => salvage::run(target, chunk, &salvage::Sink::Into(dir.clone())),
                (None, Some(out)) => {
                    salvage::run(target, chunk, &salvage::Sink::JsonLines(out.clone()))
                }
                (None, None) => Err(ToolError::Refused(
                    "say where the events go: --into BUFFER_DIR or --json-lines OUT".into(),
                )),
            };
            ("salvage", result)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ferry buffer {what}: {e}");
            ExitCode::from(CANNOT_RUN)
        }
    }
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print(text: &str) -> Result<(), ToolError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(ToolError::Io {
            path: PathBuf::from("<stdout>"),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn open(target: &Target, exclusion: Exclusion) -> Result<Inspector, ToolError> {
    Ok(Inspector::open(&target.dir, &target.name, exclusion)?)
}

/// `tag=app.log timekey=1700000000 host=web1`, or `-` for a chunk with no keys (or an unreadable
/// header).
fn keys_text(r: &ChunkReport) -> String {
    let Some(h) = &r.header else {
        return "-".into();
    };
    let mut parts = Vec::new();
    if let Some(tag) = &h.key.tag {
        parts.push(format!("tag={tag}"));
    }
    if let Some(t) = h.key.timekey {
        parts.push(format!("timekey={t}"));
    }
    for (k, v) in &h.key.variables {
        parts.push(format!("{k}={v}"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

/// The id as `ferry buffer salvage` takes it: `<id>`, or `<id>-<n>` for a repeat quarantine.
fn id_text(r: &ChunkReport) -> String {
    match r.files.n {
        0 => r.files.id.to_hex(),
        n => format!("{}-{n}", r.files.id.to_hex()),
    }
}

fn payload_len(r: &ChunkReport) -> u64 {
    r.files.payload.as_ref().map_or(0, |p| p.len)
}

fn seconds_since(t: SystemTime, now: SystemTime) -> f64 {
    now.duration_since(t).map_or(0.0, |d| d.as_secs_f64())
}

fn unix_seconds(t: SystemTime) -> f64 {
    ferry_buffer::format::nanos(t) as f64 / 1e9
}

/// A short note for the end of an `ls` line: the reason of a quarantined chunk, the first
/// problem of a live one.
fn note(r: &ChunkReport) -> String {
    let text = match (&r.reason, r.problems.first()) {
        (Some(reason), _) if r.files.location == Location::Quarantine => reason.clone(),
        (_, Some(p)) => format!("{}: {}", p.severity.as_str(), p.kind),
        _ => return String::new(),
    };
    let line = text.lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(100).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

/// A chunk as JSON (for `ls --json` and `verify --json`).
fn chunk_json(r: &ChunkReport, now: SystemTime) -> Value {
    let key = r.header.as_ref().map(|h| &h.key);
    let problems: Vec<Value> = r
        .problems
        .iter()
        .map(|p| {
            json!({
                "path": p.path,
                "offset": p.offset,
                "severity": p.severity.as_str(),
                "problem": p.kind.to_string(),
            })
        })
        .collect();
    json!({
        "id": id_text(r),
        "state": r.state().as_str(),
        "location": r.files.location.as_str(),
        "tag": key.and_then(|k| k.tag.clone()),
        "timekey": key.and_then(|k| k.timekey),
        "variables": key.map(|k| k.variables.iter().map(|(a, b)| (a.clone(), Value::from(b.clone()))).collect::<serde_json::Map<_, _>>()),
        "gzip": r.header.as_ref().map(|h| h.gzip),
        "payload_bytes": payload_len(r),
        "committed_bytes": r.bytes,
        "appends": r.appends,
        "records": r.records,
        "created": r.header.as_ref().map(|h| unix_seconds(h.created)),
        "age_seconds": r.header.as_ref().map(|h| seconds_since(h.created, now)),
        "sealed_at": r.sealed.map(unix_seconds),
        "retry_steps": r.retry.map(|(s, _)| s),
        "failed_flushes": r.retry.map(|(s, _)| u64::from(s) + 1),
        "first_failure": r.retry.map(|(_, t)| unix_seconds(t)),
        "reason": r.reason,
        "payload": r.files.payload.as_ref().map(|p| &p.path),
        "journal": r.files.journal.as_ref().map(|j| &j.path),
        "problems": problems,
        "problems_not_listed": r.problems_not_listed,
    })
}

/// Examines every chunk of the directory.
fn examine_all(
    inspector: &Inspector,
    check: Check,
) -> Result<(Vec<ChunkReport>, Vec<PathBuf>), ToolError> {
    let inventory = inspector.chunks()?;
    let reports = inventory
        .chunks
        .iter()
        .map(|files| inspector.examine(files, check))
        .collect();
    Ok((reports, inventory.unknown))
}

/// `ferry buffer ls DIR`.
fn ls(target: &Target, as_json: bool) -> Result<u8, ToolError> {
    let inspector = open(target, Exclusion::TakeLock)?;
    let (reports, unknown) = examine_all(&inspector, Check::Journal)?;
    drop(inspector);
    let now = SystemTime::now();
    let count = |s: ChunkState| reports.iter().filter(|r| r.state() == s).count();
    let total_bytes: u64 = reports.iter().map(payload_len).sum();
    let total_records: u64 = reports.iter().map(|r| r.records).sum();
    if as_json {
        let doc = json!({
            "dir": target.dir,
            "name": target.name,
            "chunks": reports.iter().map(|r| chunk_json(r, now)).collect::<Vec<_>>(),
            "unknown_files": unknown,
            "totals": {
                "chunks": reports.len(),
                "staged": count(ChunkState::Staged),
                "queued": count(ChunkState::Queued),
                "quarantined": count(ChunkState::Quarantined),
                "damaged": count(ChunkState::Damaged),
                "payload_bytes": total_bytes,
                "records": total_records,
            },
        });
        print(&format!("{doc:#}\n"))?;
        return Ok(0);
    }
    let mut out = format!(
        "{:<34} {:<11} {:<28} {:>10} {:>9} {:>7} {:>6}  NOTE\n",
        "ID", "STATE", "KEYS", "SIZE", "RECORDS", "AGE", "FAILED"
    );
    for r in &reports {
        let age = r
            .header
            .as_ref()
            .map_or("-".into(), |h| duration(seconds_since(h.created, now)));
        let failed = r
            .retry
            .map_or("-".into(), |(s, _)| (u64::from(s) + 1).to_string());
        let line = format!(
            "{:<34} {:<11} {:<28} {:>10} {:>9} {:>7} {:>6}  {}",
            id_text(r),
            r.state().as_str(),
            keys_text(r),
            bytes(payload_len(r) as f64),
            r.records,
            age,
            failed,
            note(r),
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for path in &unknown {
        out.push_str(&format!(
            "note: {} is not a chunk file (left alone)\n",
            path.display()
        ));
    }
    out.push_str(&format!(
        "{} chunks ({} staged, {} queued, {} quarantined, {} damaged), {}, {} records in {}\n",
        reports.len(),
        count(ChunkState::Staged),
        count(ChunkState::Queued),
        count(ChunkState::Quarantined),
        count(ChunkState::Damaged),
        bytes(total_bytes as f64),
        total_records,
        target.dir.display(),
    ));
    if reports.is_empty() {
        out.push_str(&format!(
            "no chunk files of buffer '{}' here (another buffer name? see --name)\n",
            target.name
        ));
    }
    print(&out)?;
    Ok(0)
}
