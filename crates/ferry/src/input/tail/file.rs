//! One followed file: its identity, reader and decoder, and one read step.
//!
//! A read step runs on a blocking thread (the reader and decoder move there and back): it
//! checks the open file for truncation, reads up to the limits, and builds the entries. The
//! caller emits them and, once committed, advances [`Tailed::committed`].
//!
//! Truncation (copytruncate, or a file rewritten in place) is checked two ways at every step:
//! the size is below what was read, or the file no longer starts with the bytes it started with
//! (the fingerprint changed: truncated and refilled to or past the old offset between two
//! checks). Either way the lines not read yet are taken from the rotated copy when there is one
//! ([`super::copytruncate`]), then reading starts over at 0; lines held from before the
//! truncation are emitted first.

use super::decode::{Built, LineDecoder};
use super::identity::{FileId, Fingerprint};
use super::metrics::FileGauge;
use super::reader::{FileReader, LineEvent, ReadSummary};
use ferry_proto::time::EventTime;
use inotify::WatchDescriptor;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether the path still leads to this file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// The file the path names now.
    Current,
    /// Renamed away, deleted, or no longer matched: read to the end, then closed once
    /// `rotate_wait` has passed since `since`.
    Rotated { since: Instant },
}

/// Per-file read throttle (`read_bytes_limit_per_second`).
#[derive(Debug)]
pub struct Throttle {
    window: Instant,
    bytes: u64,
    pub counted: bool,
}

impl Throttle {
    fn new() -> Self {
        Self {
            window: Instant::now(),
            bytes: 0,
            counted: false,
        }
    }

    /// Bytes this file may still read in the current second.
    pub fn allowance(&mut self, limit: Option<u64>) -> u64 {
        let Some(limit) = limit else {
            return u64::MAX;
        };
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.bytes = 0;
            self.counted = false;
        }
        limit.saturating_sub(self.bytes)
    }

    pub fn spend(&mut self, n: u64) {
        self.bytes += n;
    }
}

#[derive(Debug)]
pub struct Tailed {
    pub path: PathBuf,
    pub path_str: String,
    pub id: FileId,
    pub fp: Fingerprint,
    /// `None` only while a read step holds them.
    pub reader: Option<FileReader>,
    pub decoder: Option<LineDecoder>,
    pub state: FileState,
    /// Everything before this offset is committed (or deliberately skipped).
    pub committed: u64,
    /// Lines from this offset on were handed to the next file of the path, unfinished
    /// ([`super::decode::LineDecoder::take_held`]); the position stays here until that file
    /// emitted them at `.1` of its own.
    pub handed: Option<(u64, u64)>,
    pub gauge: Arc<FileGauge>,
    pub wd: Option<WatchDescriptor>,
    pub throttle: Throttle,
    /// When the last line arrived (for `multiline_flush_interval`).
    pub last_line: Instant,
    /// The last read reached the end of the file.
    pub at_eof: bool,
    pub mtime: std::time::SystemTime,
    /// When ferry began following it: files rotated from its path later than this were
    /// written after it.
    pub opened: std::time::SystemTime,
    /// The file's size at the last read step.
    pub last_size: u64,
    /// Lines and bytes read from this file (for the mean line length).
    pub lines_read: u64,
    pub bytes_read: u64,
}

/// What one read step produced.
#[derive(Debug, Default)]
pub struct Step {
    pub built: Built,
    /// Where a restart must resume once `built` is committed.
    pub safe: u64,
    pub eof: bool,
    pub bytes_read: u64,
    /// Bytes of the lines handed out.
    pub consumed: u64,
    pub lines: usize,
    pub skipped_long: Vec<(u64, u64)>,
    /// The file was truncated: (size seen, offset read so far).
    pub truncated: Option<(u64, u64)>,
    /// The rotated copy the lines not read before a truncation were taken from, and how many.
    pub from_copy: Option<(PathBuf, usize)>,
    /// Lines a truncation removed that this input saw and could not read (estimated).
    pub rotation_lost: u64,
    /// The file's size at this step.
    pub size: u64,
    /// The file's link count (0: deleted).
    pub nlink: u64,
    /// The file's fingerprint after this step.
    pub fp: Fingerprint,
}

/// What a read step does besides reading.
#[derive(Debug, Clone, Default)]
pub struct StepMode {
    /// Emit the multiline event held (flush interval passed).
    pub flush_multiline: bool,
    /// The file is being closed: hand out its partial last line and held lines.
    pub finish: bool,
    /// The first concat filter of the file's route, run by the decoder.
    pub concat: Option<std::sync::Arc<crate::filter::concat::ConcatRule>>,
}

impl Tailed {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        path: PathBuf,
        id: FileId,
        fp: Fingerprint,
        reader: FileReader,
        decoder: LineDecoder,
        start: u64,
        gauge: Arc<FileGauge>,
        mtime: std::time::SystemTime,
    ) -> Self {
        Self {
            path_str: path.to_string_lossy().into_owned(),
            path,
            id,
            fp,
            reader: Some(reader),
            decoder: Some(decoder),
            state: FileState::Current,
            committed: start,
            handed: None,
            gauge,
            wd: None,
            throttle: Throttle::new(),
            last_line: Instant::now(),
            at_eof: false,
            mtime,
            opened: std::time::SystemTime::now(),
            last_size: 0,
            lines_read: 0,
            bytes_read: 0,
        }
    }

    pub fn is_rotated(&self) -> bool {
        matches!(self.state, FileState::Rotated { .. })
    }

    /// Rotated, read to the end, no lines handed to the next file unfinished, and
    /// `rotate_wait` has passed.
    pub fn can_close(&self, rotate_wait: Duration) -> bool {
        match self.state {
            FileState::Rotated { since } => {
                self.at_eof && self.handed.is_none() && since.elapsed() >= rotate_wait
            }
            FileState::Current => false,
        }
    }

    pub fn has_pending_multiline(&self) -> bool {
        self.decoder
            .as_ref()
            .is_some_and(|d| d.pending_start().is_some())
    }

    /// Read steps on a blocking thread: one, then more while each ended on `max_lines` with
    /// more to read and nothing else to report (up to `steps` of them and `max_bytes` in all),
    /// so a busy file is read in one trip to the blocking pool per few batches. Each step is
    /// its own batch of at most `max_lines` lines, emitted and committed in turn. At least one
    /// step unless the read failed; `None` if the thread could not run (shutdown).
    pub async fn step(
        &mut self,
        max_lines: usize,
        max_bytes: u64,
        steps: usize,
        mode: StepMode,
    ) -> Option<io::Result<Vec<Step>>> {
        let mut reader = self.reader.take()?;
        let mut decoder = self.decoder.take()?;
        let fp = self.fp;
        let seen = Seen {
            path: self.path.clone(),
            size: self.last_size,
            mean_line: (self.lines_read > 0).then(|| self.bytes_read / self.lines_read),
        };
        let joined = tokio::task::spawn_blocking(move || {
            let r = run_steps(
                &mut reader,
                &mut decoder,
                fp,
                &seen,
                (max_lines, max_bytes, steps),
                mode,
            );
            (reader, decoder, r)
        })
        .await
        .ok()?;
        let (reader, decoder, result) = joined;
        self.reader = Some(reader);
        self.decoder = Some(decoder);
        let steps = match result {
            Ok(ok) => ok,
            Err(e) => return Some(Err(e)),
        };
        for step in &steps {
            self.fp = step.fp;
            self.at_eof = step.eof;
            self.last_size = step.size;
            self.lines_read += step.lines as u64;
            self.bytes_read += step.consumed;
            if step.lines > 0 {
                self.last_line = Instant::now();
            }
        }
        Some(Ok(steps))
    }
}

/// Reads lines from the reader's offset into the step.
fn read(
    reader: &mut FileReader,
    decoder: &mut LineDecoder,
    step: &mut Step,
    max_lines: usize,
    max_bytes: u64,
    now: EventTime,
) -> io::Result<ReadSummary> {
    reader.read_lines(max_lines, max_bytes, &mut |event| match event {
        LineEvent::Line { bytes, start, .. } => decoder.line(bytes, start, now, &mut step.built),
        LineEvent::TooLong { start, len, .. } => step.skipped_long.push((start, len)),
    })
}

/// After a truncation: reads the lines of the old content from `resume` on out of its rotated
/// copy, when there is one, and counts what this input saw of the file that neither it nor the
/// copy has. Returns whether a copy was read (the held partial line is in it).
fn from_copy(
    reader: &FileReader,
    decoder: &mut LineDecoder,
    fp: &Fingerprint,
    seen: &Seen,
    resume: u64,
    step: &mut Step,
    now: EventTime,
) -> io::Result<bool> {
    let copy = if fp.len > 0 {
        super::copytruncate::find(&seen.path, fp, resume)?
    } else {
        None
    };
    let mut copy_len = None;
    if let Some((path, file)) = copy {
        copy_len = Some(file.metadata()?.len());
        let mut from = FileReader::new(file, resume, reader.max_line());
        let got = read(&mut from, decoder, step, usize::MAX, u64::MAX, now)?;
        // A line the copy cuts short was finished in the file after the copy: gone.
        if !from.partial().is_empty() {
            step.rotation_lost += 1;
        }
        step.from_copy = Some((path, got.lines));
    }
    step.rotation_lost +=
        super::copytruncate::seen_lost_lines(seen.size, resume, copy_len, seen.mean_line);
    Ok(copy_len.is_some())
}

/// What the input knew of the file before this step.
struct Seen {
    path: PathBuf,
    /// Its size at the previous step.
    size: u64,
    mean_line: Option<u64>,
}

/// [`run_step`] once, then again while the last step read a whole batch of plain lines (see
/// [`Tailed::step`]); a read error after the first step ends the run (the next trip reports
/// it).
fn run_steps(
    reader: &mut FileReader,
    decoder: &mut LineDecoder,
    mut fp: Fingerprint,
    seen: &Seen,
    (max_lines, max_bytes, steps): (usize, u64, usize),
    mode: StepMode,
) -> io::Result<Vec<Step>> {
    let mut out: Vec<Step> = Vec::new();
    let mut budget = max_bytes;
    let later = StepMode {
        flush_multiline: false,
        ..mode.clone()
    };
    loop {
        let this = if out.is_empty() {
            mode.clone()
        } else {
            later.clone()
        };
        let result = run_step(reader, decoder, fp, seen, max_lines, budget, this);
        let (mut step, next_fp) = match result {
            Ok(ok) => ok,
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        };
        fp = next_fp;
        step.fp = fp;
        budget = budget.saturating_sub(step.consumed);
        let plain = step.lines >= max_lines
            && !step.eof
            && step.truncated.is_none()
            && step.skipped_long.is_empty()
            && step.built.timeout_records == 0;
        out.push(step);
        if !plain || mode.finish || out.len() >= steps || budget == 0 {
            break;
        }
    }
    Ok(out)
}

fn run_step(
    reader: &mut FileReader,
    decoder: &mut LineDecoder,
    mut fp: Fingerprint,
    seen: &Seen,
    max_lines: usize,
    max_bytes: u64,
    mode: StepMode,
) -> io::Result<(Step, Fingerprint)> {
    let now = EventTime::now();
    let mut step = Step::default();
    decoder.use_concat(mode.concat.as_ref(), now, &mut step.built);
    decoder.begin(now);
    // One allocation per batch in the common case (1000 lines of up to ~230 bytes).
    step.built
        .entries
        .reserve(max_bytes.min(256 * 1024) as usize);
    let meta = reader.file().metadata()?;
    step.nlink = meta.nlink();
    let size = meta.len();
    let read_to = reader.read_offset();
    // The fingerprint is checked at every step, not only when the size changed: a file
    // truncated and refilled to exactly the size it had would otherwise be read on from the
    // old offset (one short read of the head per step).
    let rewritten = fp.len > 0 && !fp.matches(reader.file())?;
    step.size = size;
    if size < read_to || rewritten {
        step.truncated = Some((size, read_to));
        // A partial last line continues in the copy: reading resumes at its start there.
        let resume = if reader.partial().is_empty() {
            read_to
        } else {
            reader.safe_offset()
        };
        let found = from_copy(reader, decoder, &fp, seen, resume, &mut step, now)?;
        if !found && let Some((bytes, start, _)) = reader.take_partial() {
            decoder.line(&bytes, start, now, &mut step.built);
        }
        decoder.flush(now, &mut step.built);
        reader.reset(0);
        fp = Fingerprint::default();
    }
    let carried = decoder.pending_start().is_some();
    let resume_before = if reader.partial().is_empty() {
        reader.read_offset()
    } else {
        reader.safe_offset()
    };
    let mark = (
        step.built.entries.len(),
        step.built.records,
        step.built.unmatched,
    );
    let skipped_mark = step.skipped_long.len();
    let mut summary = read(reader, decoder, &mut step, max_lines, max_bytes, now)?;
    // The head is checked again after reading: a file truncated and refilled while this step
    // read it was read from the old offset. Those lines are dropped and the file is read from 0.
    // (With multiline lines held from an earlier step, the next step sees the change instead.)
    if summary.bytes_read > 0 && !carried && fp.len > 0 && !fp.matches(reader.file())? {
        step.built.entries.truncate(mark.0);
        step.built.records = mark.1;
        step.built.unmatched = mark.2;
        step.skipped_long.truncate(skipped_mark);
        decoder.clear_pending();
        step.truncated = Some((size, read_to));
        // What was read this step came from the new content; the old one's rest is in the
        // copy, from where this step started.
        from_copy(reader, decoder, &fp, seen, resume_before, &mut step, now)?;
        reader.reset(0);
        fp = Fingerprint::default();
        summary = read(reader, decoder, &mut step, max_lines, max_bytes, now)?;
    }
    step.eof = summary.eof;
    step.lines = summary.lines;
    step.bytes_read = summary.bytes_read;
    step.consumed = summary.consumed;
    if mode.finish && summary.eof {
        if let Some((bytes, start, _)) = reader.take_partial() {
            decoder.line(&bytes, start, now, &mut step.built);
        }
        decoder.flush(now, &mut step.built);
    } else {
        if mode.flush_multiline {
            decoder.flush_multiline(now, &mut step.built);
        }
        decoder.expire(Some(decoder.partial_timeout()), now, &mut step.built);
        decoder.expire_concat(false, now, &mut step.built);
    }
    step.built.joined_by_input = decoder.joins_messages();
    step.safe = decoder
        .pending_start()
        .unwrap_or_else(|| reader.safe_offset());
    if !fp.is_complete() && reader.read_offset() > u64::from(fp.len) {
        fp = Fingerprint::read(reader.file())?;
    }
    if summary.eof {
        reader.release_buffer();
    }
    Ok((step, fp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{ParseSetup, Parser};
    use std::io::Write;

    /// One trip over a file of `lines` lines of 10 bytes from its start: each step's lines and
    /// whether it reached the end.
    fn trip(lines: usize, max_lines: usize, max_bytes: u64, steps: usize) -> Vec<(usize, bool)> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        for i in 0..lines {
            writeln!(file, "line {i:04}").unwrap();
        }
        let mut reader = FileReader::new(file.reopen().unwrap(), 0, 1 << 20);
        let setup = ParseSetup::plain(Parser::None {
            key: "message".into(),
        });
        let mut decoder = LineDecoder::new(setup, None, true, 1 << 20, Duration::from_secs(5));
        let seen = Seen {
            path: file.path().to_path_buf(),
            size: 0,
            mean_line: None,
        };
        let fp = Fingerprint::default();
        let mode = StepMode::default();
        run_steps(
            &mut reader,
            &mut decoder,
            fp,
            &seen,
            (max_lines, max_bytes, steps),
            mode,
        )
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(
                s.built.records as usize, s.lines,
                "each step is its own batch"
            );
            (s.lines, s.eof)
        })
        .collect()
    }

    #[test]
    fn a_trip_reads_whole_batches_while_there_are_more_each_its_own_batch() {
        // Until the end of the file, at most `steps` batches.
        let all = trip(3500, 1000, 4 << 20, 8);
        assert_eq!(
            all.iter().map(|s| s.0).collect::<Vec<_>>(),
            [1000, 1000, 1000, 500]
        );
        assert!(all[3].1, "the last step reached the end");
        assert_eq!(trip(3500, 1000, 4 << 20, 2), [(1000, false), (1000, false)]);
        // A batch that ends short of `read_lines_limit` ends the trip.
        assert_eq!(trip(700, 1000, 4 << 20, 8), [(700, true)]);
        // The bytes of a trip are bounded: 25,000 bytes are 2,500 lines of 10 bytes.
        let bounded = trip(3500, 1000, 25_000, 8);
        assert_eq!(
            bounded.iter().map(|s| s.0).sum::<usize>(),
            2500,
            "{bounded:?}"
        );
    }
}
