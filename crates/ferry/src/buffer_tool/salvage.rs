//! `ferry buffer salvage DIR CHUNK (--into BUFFER_DIR | --json-lines OUT)`: the intact appends
//! of a quarantined or damaged chunk (journal record and crc32c check) go into a buffer
//! directory as a new chunk with the same keys, written by [`ferry_buffer::Buffer`] itself, or
//! out as JSON lines written by [`crate::format::json`]. Entries are checked as the
//! forward input checks them ([`ferry_proto::entries`]); an invalid one is counted, not copied.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use ferry_buffer::inspect::{
    Check, ChunkReport, ChunkState, Exclusion, IntactAppend, MAX_DECODED_APPEND, SalvageError,
    SalvageReport, same_dir,
};
use ferry_buffer::{AppendError, Buffer, BufferConfig, ChunkId, ChunkKey, OpenError};
use ferry_proto::entries;

use super::{FOUND_DAMAGE, Target, ToolError, id_text, keys_text, open, print};
use crate::format::json;

/// Where salvaged events go.
#[derive(Debug, Clone)]
pub(super) enum Sink {
    /// A buffer directory (a new chunk, sent by the next ferry that opens it).
    Into(PathBuf),
    /// A new JSON lines file, or `-` for standard output.
    JsonLines(PathBuf),
}

/// Appends into the target buffer, keeping the source's append boundaries.
struct IntoBuffer {
    dir: PathBuf,
    buffer: Buffer,
    key: ChunkKey,
    chunks: Vec<ChunkId>,
    events: u64,
}

impl IntoBuffer {
    /// Appends the valid entries of one intact append; returns how many.
    fn append(&mut self, stream: &[u8]) -> Result<u64, AppendError> {
        let mut kept = Vec::new();
        let mut valid = 0u64;
        let mut all = true;
        for entry in entries::iter(stream) {
            match entry {
                Ok(e) => {
                    kept.extend_from_slice(e.raw);
                    valid += 1;
                }
                Err(_) => all = false,
            }
        }
        if valid == 0 {
            return Ok(0);
        }
        let bytes = if all { stream } else { &kept[..] };
        let outcome = self.buffer.append(&self.key, bytes, valid)?;
        if let Some(id) = outcome.chunk.filter(|id| !self.chunks.contains(id)) {
            self.chunks.push(id);
        }
        self.events += valid;
        Ok(valid)
    }
}

/// Writes `{"tag":..,"time":..,"record":{..}}` lines to a file created at the first event
/// (so that a salvage that recovers nothing leaves no file behind).
struct JsonLines {
    path: PathBuf,
    out: Option<BufWriter<Box<dyn Write>>>,
    tag: Vec<u8>,
    line: Vec<u8>,
    events: u64,
}

impl JsonLines {
    fn new(path: &Path, tag: Option<&str>) -> Result<Self, ToolError> {
        if path != Path::new("-") && path.exists() {
            return Err(exists(path));
        }
        let mut json_tag = Vec::new();
        match tag {
            Some(t) => json::write_str(t.as_bytes(), &mut json_tag),
            None => json_tag.extend_from_slice(b"null"),
        }
        Ok(JsonLines {
            path: path.to_path_buf(),
            out: None,
            tag: json_tag,
            line: Vec::new(),
            events: 0,
        })
    }

    /// Writes the valid events of one intact append; returns how many.
    fn write(&mut self, stream: &[u8]) -> Result<u64, ToolError> {
        let mut written = 0;
        for entry in entries::iter(stream).flatten() {
            let line = &mut self.line;
            line.clear();
            line.extend_from_slice(b"{\"tag\":");
            line.extend_from_slice(&self.tag);
            line.extend_from_slice(b",\"time\":");
            if entry.int_time {
                json::write_int(entry.time.sec, line);
            } else {
                json::write_event_time(entry.time, line);
            }
            line.extend_from_slice(b",\"record\":");
            if json::write_record(entry.record, &[], line).is_err() {
                continue;
            }
            line.extend_from_slice(b"}\n");
            let out = match &mut self.out {
                Some(out) => out,
                None => self.out.insert(open_out(&self.path)?),
            };
            out.write_all(line).map_err(io_err(&self.path))?;
            written += 1;
        }
        self.events += written;
        Ok(written)
    }
}

/// Where the salvaged events are being written.
enum Writer {
    Buffer(IntoBuffer),
    Lines(JsonLines),
}

impl Writer {
    /// Writes the valid events of one intact append; returns how many.
    fn write(&mut self, stream: &[u8]) -> Result<u64, ToolError> {
        match self {
            Writer::Buffer(b) => b
                .append(stream)
                .map_err(|e| ToolError::Refused(format!("appending to the buffer: {e}"))),
            Writer::Lines(l) => l.write(stream),
        }
    }

    /// Seals the new chunk (the next ferry queues it at once) or flushes the file.
    fn finish(&mut self) -> Result<(), ToolError> {
        match self {
            Writer::Buffer(b) => {
                b.buffer.flush_all();
                b.buffer.close();
                Ok(())
            }
            Writer::Lines(l) => match &mut l.out {
                Some(out) => out.flush().map_err(io_err(&l.path)),
                None => Ok(()),
            },
        }
    }
}

fn exists(path: &Path) -> ToolError {
    ToolError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists already: name a new file",
        ),
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ToolError + '_ {
    move |source| ToolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens the target as ferry does at start (same recovery), with room for any append.
fn open_target(dir: &Path, name: &str, notes: &mut String) -> Result<Buffer, ToolError> {
    let mut config = BufferConfig::file(dir);
    config.chunk_limit_size = config.chunk_limit_size.max(MAX_DECODED_APPEND);
    config.total_limit_size = u64::MAX / 2;
    let (buffer, report) = Buffer::open(config, name).map_err(|e| match e {
        OpenError::Locked { .. } => ToolError::InUse {
            dir: dir.to_path_buf(),
            lock: format!("{name}.lock"),
        },
        source => ToolError::Open {
            dir: dir.to_path_buf(),
            source,
        },
    })?;
    if !report.is_clean() {
        let _ = writeln!(
            notes,
            "note: {} was opened as ferry opens it: {} torn tails truncated, {} chunks quarantined",
            dir.display(),
            report.torn_tails.len(),
            report.quarantined.len()
        );
    }
    Ok(buffer)
}

fn open_out(path: &Path) -> Result<BufWriter<Box<dyn Write>>, ToolError> {
    let out: Box<dyn Write> = if path == Path::new("-") {
        Box::new(io::stdout())
    } else {
        let file = File::create_new(path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                exists(path)
            } else {
                io_err(path)(e)
            }
        })?;
        Box::new(file)
    };
    Ok(BufWriter::new(out))
}

/// Refuses what would do harm or cannot work.
fn check_source(r: &ChunkReport, sink: &Sink) -> Result<(), ToolError> {
    let Sink::Into(_) = sink else {
        return Ok(());
    };
    if matches!(r.state(), ChunkState::Staged | ChunkState::Queued) {
        return Err(ToolError::Refused(format!(
            "chunk {} is live and not damaged: ferry sends it as it is (after cutting any torn \
             tail); salvaging it into a buffer would send its events twice (--json-lines copies \
             them out)",
            id_text(r)
        )));
    }
    if r.header.is_none() {
        return Err(ToolError::Refused(format!(
            "chunk {}: its journal header is unreadable, so its chunk keys (tag) are unknown; \
             use --json-lines",
            id_text(r)
        )));
    }
    Ok(())
}

pub(super) fn run(target: &Target, chunk: &str, sink: &Sink) -> Result<u8, ToolError> {
    let mut notes = String::new();
    // Into its own directory: the buffer is opened first and holds the lock (and its recovery
    // may move the chunk to quarantine before it is looked up).
    let same = matches!(sink, Sink::Into(dir) if same_dir(dir, &target.dir));
    let mut buffer = match sink {
        Sink::Into(dir) if same => Some(open_target(dir, &target.name, &mut notes)?),
        _ => None,
    };
    let exclusion = if same {
        Exclusion::HeldByCaller
    } else {
        Exclusion::TakeLock
    };
    let inspector = open(target, exclusion)?;
    let files = inspector.find(chunk)?;
    let examined = inspector.examine(&files, Check::Payload);
    check_source(&examined, sink)?;
    let key = examined.header.as_ref().map(|h| h.key.clone());
    let mut writer = match sink {
        Sink::Into(dir) => {
            let buffer = match buffer.take() {
                Some(b) => b,
                None => open_target(dir, &target.name, &mut notes)?,
            };
            Writer::Buffer(IntoBuffer {
                dir: dir.clone(),
                buffer,
                key: key.unwrap_or_default(),
                chunks: Vec::new(),
                events: 0,
            })
        }
        Sink::JsonLines(path) => Writer::Lines(JsonLines::new(
            path,
            key.as_ref().and_then(|k| k.tag.as_deref()),
        )?),
    };
    let mut undecodable = 0u64;
    let result = inspector.salvage(&files, |append: IntactAppend<'_>| {
        let done = writer.write(append.entries)?;
        undecodable += append.records.saturating_sub(done);
        Ok::<(), ToolError>(())
    });
    writer.finish()?;
    let report = match result {
        Ok(report) => report,
        Err(SalvageError::Unverifiable(why)) => {
            notes.push_str(&format!(
                "chunk {}: nothing salvaged: {why}\n",
                id_text(&examined)
            ));
            emit(&notes, sink)?;
            return Ok(FOUND_DAMAGE);
        }
        Err(SalvageError::Io { path, source }) => return Err(ToolError::Io { path, source }),
        Err(SalvageError::Sink(e)) => return Err(e),
    };
    let text = describe(&examined, &report, undecodable, &writer);
    notes.push_str(&text);
    emit(&notes, sink)?;
    let nothing = report.intact_appends == 0 && !report.skipped.is_empty();
    Ok(if nothing { FOUND_DAMAGE } else { 0 })
}

/// The report for people: what was recovered, what was skipped and why.
fn describe(r: &ChunkReport, report: &SalvageReport, undecodable: u64, writer: &Writer) -> String {
    let mut out = String::new();
    let file = r
        .files
        .payload
        .as_ref()
        .or(r.files.journal.as_ref())
        .map_or(String::new(), |f| f.path.display().to_string());
    let _ = writeln!(
        out,
        "chunk {} ({}, {}) {file}",
        id_text(r),
        keys_text(r),
        r.state().as_str()
    );
    let _ = writeln!(
        out,
        "  appends: {} recovered ({} records), {} skipped ({} records)",
        report.intact_appends,
        report.intact_records,
        report.skipped_appends,
        report.skipped_records
    );
    for s in &report.skipped {
        let what = match (s.index, s.offset) {
            (Some(i), Some(o)) => format!("append {i} at payload offset {o}"),
            (Some(i), None) => format!("append {i}"),
            _ => "journal".to_string(),
        };
        let records = s
            .records
            .map_or(String::new(), |n| format!(" ({n} records)"));
        let _ = writeln!(out, "  skipped {what}{records}: {}", s.reason);
    }
    if report.skipped_not_listed > 0 {
        let _ = writeln!(
            out,
            "  ({} more skipped, not listed)",
            report.skipped_not_listed
        );
    }
    if undecodable > 0 {
        let _ = writeln!(
            out,
            "  {undecodable} records of intact appends were not valid events and were left out"
        );
    }
    match writer {
        Writer::Buffer(b) => {
            let ids: Vec<String> = b.chunks.iter().map(ChunkId::to_hex).collect();
            let _ = writeln!(
                out,
                "wrote {} events into {} as chunk {}: ferry sends them at its next start",
                b.events,
                b.dir.display(),
                if ids.is_empty() {
                    "-".into()
                } else {
                    ids.join(", ")
                }
            );
            let _ = writeln!(
                out,
                "the source chunk is left as it is: once the events are delivered, move it out of \
                 the buffer directory so that it is not salvaged twice"
            );
        }
        Writer::Lines(l) if l.out.is_none() => {
            let _ = writeln!(out, "no event to write: {} not created", l.path.display());
        }
        Writer::Lines(l) => {
            let _ = writeln!(out, "wrote {} events to {}", l.events, l.path.display());
        }
    }
    out
}

/// The report goes to stdout, or to stderr when the events do.
fn emit(text: &str, sink: &Sink) -> Result<(), ToolError> {
    if matches!(sink, Sink::JsonLines(p) if p == Path::new("-")) {
        // Nothing better to do if stderr is closed too.
        let _ = io::stderr().write_all(text.as_bytes());
        Ok(())
    } else {
        print(text)
    }
}
