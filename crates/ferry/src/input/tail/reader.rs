//! Reading one file: large positional reads into a reusable buffer, lines split with `memchr`.
//!
//! Memory per file is bounded: the buffer starts at [`MIN_BUFFER`], grows while reads fill it
//! (up to [`MAX_READ`] plus `max_line_size`), and is released when the file is idle at its end.
//! A line longer than `max_line_size` is never held whole: once the bytes without a newline
//! exceed the limit they are dropped, and the rest of the line is skipped up to its newline.
//!
//! Offsets: [`FileReader::safe_offset`] is where a restart must resume so that no line is lost
//! or cut: the start of the first byte not yet handed out as part of a whole line (a partial
//! last line, or the start of a line being skipped).

use memchr::memchr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The buffer's first size.
pub const MIN_BUFFER: usize = 64 * 1024;
/// The largest single read.
pub const MAX_READ: usize = 1024 * 1024;

/// What the reader hands to its consumer.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A whole line without its `\n` (nor a `\r` before it), from `start` to `end` (past `\n`).
    Line {
        bytes: &'a [u8],
        start: u64,
        end: u64,
    },
    /// A line longer than `max_line_size` was skipped: `len` bytes up to `end`.
    TooLong { start: u64, end: u64, len: u64 },
}

/// What one [`FileReader::read_lines`] call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadSummary {
    pub lines: usize,
    pub bytes_read: u64,
    /// Bytes of the lines handed out (with their newlines): what limits a step.
    pub consumed: u64,
    /// The file has no more bytes now.
    pub eof: bool,
}

#[derive(Debug)]
pub struct FileReader {
    file: File,
    /// File offset of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
    /// `buf[start..end]` is read but not yet handed out; `scan` is where the newline search
    /// resumes.
    start: usize,
    scan: usize,
    end: usize,
    /// Set while dropping the bytes of an over-long line: where that line started.
    skipping_from: Option<u64>,
    max_line: usize,
}

impl FileReader {
    /// A reader of `file` resuming at `offset`.
    pub fn new(file: File, offset: u64, max_line: usize) -> Self {
        Self {
            file,
            base: offset,
            buf: Vec::new(),
            start: 0,
            scan: 0,
            end: 0,
            skipping_from: None,
            max_line: max_line.max(1),
        }
    }

    /// The longest line this reader hands out.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// The next byte the reader will read from the file.
    pub fn read_offset(&self) -> u64 {
        self.base + self.end as u64
    }

    /// See the module docs.
    pub fn safe_offset(&self) -> u64 {
        self.skipping_from.unwrap_or(self.base + self.start as u64)
    }

    /// Bytes read but not yet handed out (a partial last line).
    pub fn partial(&self) -> &[u8] {
        if self.skipping_from.is_some() {
            return &[];
        }
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Starts over at `offset` (truncation), dropping buffered bytes.
    pub fn reset(&mut self, offset: u64) {
        self.base = offset;
        self.start = 0;
        self.scan = 0;
        self.end = 0;
        self.skipping_from = None;
    }

    /// Hands the partial last line out as a line (a file that will not grow any more) and
    /// returns its span.
    pub fn take_partial(&mut self) -> Option<(Vec<u8>, u64, u64)> {
        let bytes = self.partial().to_vec();
        if bytes.is_empty() {
            return None;
        }
        let start = self.safe_offset();
        let end = self.read_offset();
        self.base = end;
        self.start = 0;
        self.scan = 0;
        self.end = 0;
        Some((bytes, start, end))
    }

    /// Frees the buffer when nothing is pending in it.
    pub fn release_buffer(&mut self) {
        if self.start == self.end && self.skipping_from.is_none() {
            self.base += self.end as u64;
            self.start = 0;
            self.scan = 0;
            self.end = 0;
            self.buf = Vec::new();
        }
    }

    /// Reads and hands out lines until `max_lines` lines or `max_bytes` bytes of lines, or
    /// the end of the file.
    pub fn read_lines(
        &mut self,
        max_lines: usize,
        max_bytes: u64,
        f: &mut dyn FnMut(LineEvent<'_>),
    ) -> io::Result<ReadSummary> {
        let mut summary = ReadSummary::default();
        loop {
            if let Some(i) = memchr(b'\n', self.buf.get(self.scan..self.end).unwrap_or_default()) {
                let nl = self.scan + i;
                let end = self.base + nl as u64 + 1;
                let start = self.base + self.start as u64;
                match self.skipping_from.take() {
                    Some(from) => f(LineEvent::TooLong {
                        start: from,
                        end,
                        len: end - from - 1,
                    }),
                    None if nl - self.start > self.max_line => f(LineEvent::TooLong {
                        start,
                        end,
                        len: (nl - self.start) as u64,
                    }),
                    None => {
                        let mut line = &self.buf[self.start..nl];
                        if let [rest @ .., b'\r'] = line {
                            line = rest;
                        }
                        f(LineEvent::Line {
                            bytes: line,
                            start,
                            end,
                        });
                    }
                }
                summary.consumed += (nl + 1 - self.start) as u64;
                self.start = nl + 1;
                self.scan = self.start;
                summary.lines += 1;
                if summary.lines >= max_lines || summary.consumed >= max_bytes {
                    return Ok(summary);
                }
                continue;
            }
            self.scan = self.end;
            if self.end - self.start > self.max_line {
                // Over-long: drop what is buffered, keep skipping to the newline.
                if self.skipping_from.is_none() {
                    self.skipping_from = Some(self.base + self.start as u64);
                }
                self.base += self.end as u64;
                self.start = 0;
                self.scan = 0;
                self.end = 0;
            }
            let n = self.fill()?;
            if n == 0 {
                summary.eof = true;
                return Ok(summary);
            }
            summary.bytes_read += n as u64;
        }
    }

    /// One read into the buffer's free space (compacting or growing it first).
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 && (self.start == self.end || self.end == self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.scan -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let cap = MAX_READ + self.max_line + 1;
            let want = (self.buf.len() * 2).clamp(MIN_BUFFER, cap.max(MIN_BUFFER));
            if want <= self.buf.len() {
                // Full with no newline and not over the limit cannot happen: the limit check
                // above drops the bytes first.
                return Err(io::Error::other("line buffer is full"));
            }
            self.buf.resize(want, 0);
        }
        let offset = self.base + self.end as u64;
        loop {
            match self.file.read_at(&mut self.buf[self.end..], offset) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn reader_over(
        content: &[u8],
        offset: u64,
        max_line: usize,
    ) -> (tempfile::TempDir, FileReader) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, content).unwrap();
        let r = FileReader::new(File::open(&path).unwrap(), offset, max_line);
        (dir, r)
    }

    fn collect(r: &mut FileReader, max_lines: usize) -> (Vec<String>, ReadSummary) {
        let mut lines = Vec::new();
        let s = r
            .read_lines(max_lines, u64::MAX, &mut |e| match e {
                LineEvent::Line { bytes, .. } => lines.push(String::from_utf8_lossy(bytes).into()),
                LineEvent::TooLong { len, .. } => lines.push(format!("<skipped {len}>")),
            })
            .unwrap();
        (lines, s)
    }

    #[test]
    fn lines_are_split_and_the_partial_last_line_is_held() {
        let (_d, mut r) = reader_over(b"a\nbb\r\nccc", 0, 100);
        let (lines, s) = collect(&mut r, 100);
        assert_eq!(lines, vec!["a", "bb"]);
        assert!(s.eof);
        assert_eq!(r.safe_offset(), 6);
        assert_eq!(r.partial(), b"ccc");
        assert_eq!(r.take_partial(), Some((b"ccc".to_vec(), 6, 9)));
        assert_eq!(r.safe_offset(), 9);
    }

    #[test]
    fn the_line_limit_stops_reading_and_offsets_follow_lines() {
        let (_d, mut r) = reader_over(b"1\n2\n3\n4\n", 2, 100);
        let (lines, s) = collect(&mut r, 2);
        assert_eq!(lines, vec!["2", "3"]);
        assert!(!s.eof);
        assert_eq!(r.safe_offset(), 6);
        let (lines, _) = collect(&mut r, 10);
        assert_eq!(lines, vec!["4"]);
        assert_eq!(r.safe_offset(), 8);
    }

    #[test]
    fn a_line_growing_across_reads_is_assembled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = File::create(&path).unwrap();
        w.write_all(b"hel").unwrap();
        let mut r = FileReader::new(File::open(&path).unwrap(), 0, 100);
        assert!(collect(&mut r, 10).0.is_empty());
        w.write_all(b"lo\nwor").unwrap();
        assert_eq!(collect(&mut r, 10).0, vec!["hello"]);
        w.write_all(b"ld\n").unwrap();
        assert_eq!(collect(&mut r, 10).0, vec!["world"]);
    }

    #[test]
    fn over_long_lines_are_skipped_without_holding_them() {
        let mut content = b"short\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 3 * MAX_READ));
        content.extend_from_slice(b"\nafter\n");
        let (_d, mut r) = reader_over(&content, 0, 1000);
        let (lines, _) = collect(&mut r, 100);
        assert_eq!(
            lines,
            vec![
                "short".to_string(),
                format!("<skipped {}>", 3 * MAX_READ),
                "after".into()
            ]
        );
        assert!(
            r.buf.len() <= MAX_READ + 1001 + MIN_BUFFER,
            "buffer stayed bounded"
        );
    }

    #[test]
    fn a_whole_over_long_line_already_in_the_buffer_is_skipped() {
        let mut content = vec![b'y'; 2000];
        content.extend_from_slice(b"\nok\n");
        let (_d, mut r) = reader_over(&content, 0, 1024);
        let (lines, _) = collect(&mut r, 100);
        assert_eq!(lines, vec!["<skipped 2000>".to_string(), "ok".into()]);
    }

    #[test]
    fn safe_offset_stays_at_the_start_of_a_line_being_skipped() {
        let mut content = b"ok\n".to_vec();
        content.extend(std::iter::repeat_n(b'y', 5000));
        let (_d, mut r) = reader_over(&content, 0, 100);
        let (lines, _) = collect(&mut r, 100);
        assert_eq!(lines, vec!["ok"]);
        assert_eq!(r.safe_offset(), 3, "a restart re-skips the whole line");
        assert!(r.partial().is_empty());
    }

    #[test]
    fn long_lines_under_the_limit_grow_the_buffer() {
        let line = vec![b'z'; 3 * MIN_BUFFER];
        let mut content = line.clone();
        content.push(b'\n');
        let (_d, mut r) = reader_over(&content, 0, 4 * MIN_BUFFER);
        let (lines, _) = collect(&mut r, 10);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), line.len());
        r.release_buffer();
        assert!(r.buf.is_empty());
        assert_eq!(r.read_offset(), content.len() as u64);
    }
}
