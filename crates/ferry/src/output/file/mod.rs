//! `@type file`: archive events into files, one per time slice (Fluentd's out_file).
//!
//! Always buffered. Without a `<buffer>` section the buffer is a file buffer with chunk key
//! `time` and `timekey 1h` (ferry's default: hourly files; Fluentd's out_file slices by day),
//! under `<system> root_dir`/buffer/ID, or else `.ferry-buffer/ID` in the directory of `path`.
//! Each flushed chunk is formatted ([`crate::format`], `out_file` by default) and
//! written by [`writer`]: a new, atomically published file per chunk (`append false`, the
//! default), or appended to one file per slice (`append true`).
//!
//! File names follow Fluentd's rules for `path` ([`Self::template`](FileConfig)):
//!
//! | `path` | file (hourly slices, `append false`; `append true` drops `_N`) |
//! |---|---|
//! | `/logs/app` | `/logs/app.2026112115_0.log` |
//! | `/logs/app.*.txt` | `/logs/app.2026112115_0.txt` |
//! | `/logs/%Y/%m/%d/app.%H` | `/logs/2026/11/21/app.15_0.log` (all of `%Y%m%d%H` must appear) |
//! | `/logs/${tag}/app` | `/logs/web.access/app.2026112115_0.log` |
//!
//! plus `.gz` with `compress gzip`. `add_path_suffix false` drops `.log`; `path_suffix` changes
//! it. ferry adds `max_file_size` (rotation by size: the next file gets the next number) and
//! `compression_level` (gzip level 1-9, default 6). `symlink_path` (only when set) is a symlink
//! to the last file written (Fluentd links the buffer chunk being filled). `recompress` is
//! accepted and has no effect: ferry's chunks hold events, not formatted text, so the output
//! is always compressed from the formatted text.
//!
//! Chunks carry events without their tags, so when the format writes the tag (out_file's
//! default, `stdout`, `<inject> tag_key`) `tag` is added to the chunk keys: each tag's events
//! then go to their own chunks (and, with `append false`, their own files).

pub mod writer;

use super::SinkError;
use super::buffer_section::{BufferDefaults, BufferSetup, DefaultBuffer};
use super::segment::SegmentReader;
use crate::format::{FormatConfig, FormatKind};
use crate::output::placeholders::{IndexStyle, Template};
use crate::output::progress::Code;
use crate::root_dir::RootDir;
use ferry_buffer::Chunk;
use ferry_config::Section;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use writer::{ChunkNotes, FileWriter, GroupItem, WriterConfig};

/// ferry's default time slice for the file output.
pub const DEFAULT_TIMEKEY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    pub template: Template,
    pub format: FormatConfig,
    pub writer: WriterConfig,
}

/// `timekey` → the strftime slice Fluentd puts in file names.
fn slice_format(timekey: Duration) -> &'static str {
    match timekey.as_secs() {
        0..60 => "%Y%m%d%H%M%S",
        60..3600 => "%Y%m%d%H%M",
        3600..86400 => "%Y%m%d%H",
        _ => "%Y%m%d",
    }
}

/// The directory part of `path` before any placeholder or wildcard.
fn static_dir(path: &str) -> PathBuf {
    let cut = path.find(['%', '$', '*']).unwrap_or(path.len());
    let head = &path[..cut];
    match head.rfind('/') {
        Some(0) => PathBuf::from("/"),
        Some(i) => PathBuf::from(&head[..i]),
        None => PathBuf::from("."),
    }
}

impl FileConfig {
    /// Reads a `<match> @type file` section and its buffer.
    pub fn from_section(
        section: &Section<'_>,
        id: &str,
        root: &RootDir,
        has_secondary: bool,
    ) -> Option<(Self, BufferSetup)> {
        let path = section.required_str("path");
        let fallback = static_dir(path.as_deref().unwrap_or(""));
        let buffer = section.child("buffer");
        let mut setup = BufferSetup::from_section_with(
            buffer.as_ref(),
            BufferDefaults {
                keys: "time",
                timekey: Some(DEFAULT_TIMEKEY),
            },
            DefaultBuffer::BesideFiles {
                fallback_dir: &fallback,
            },
            id,
            root,
            has_secondary,
        );
        if let Some(b) = buffer {
            b.finish();
        }
        let format = FormatConfig::from_section(section, FormatKind::OutFile);
        let gzip = match section.enum_or("compress", &["text", "gz", "gzip"], "text") {
            "text" => None,
            _ => Some(section.u64_or("compression_level", 6)),
        };
        if let Some(level) = gzip
            && !(1..=9).contains(&level)
        {
            section.error(
                Some("compression_level"),
                "compression_level must be 1 to 9",
            );
        }
        let append = section.bool_or("append", false);
        let _ = section.opt_bool("recompress");
        section.no_effect(
            "recompress",
            "a gzip buffer's chunks are written to gzip files as they are, never compressed twice",
        );
        let suffix = if section.bool_or("add_path_suffix", true) {
            section.str_or("path_suffix", ".log")
        } else {
            String::new()
        };
        let max_file_size = section.opt_size("max_file_size").map(|s| s.0);
        if max_file_size == Some(0) {
            section.error(Some("max_file_size"), "max_file_size must be positive");
        }
        let symlink_path = section.str("symlink_path").map(PathBuf::from);
        let o = &format.options;
        let writes_tag = match format.kind {
            FormatKind::OutFile => o.output_tag,
            FormatKind::Stdout => true,
            _ => false,
        } || format.inject.tag_key.is_some();
        if writes_tag {
            setup.keys.tag = true;
        }
        let line_based = match format.kind {
            FormatKind::OutFile | FormatKind::Stdout => true,
            FormatKind::Msgpack => false,
            _ => o.add_newline,
        };
        let timekey = setup.config.timekey.filter(|_| setup.keys.time);
        let source = template_source(&path?, timekey, gzip.is_some(), &suffix)
            .map_err(|e| section.error(Some("path"), e))
            .ok()?;
        let template = Template::parse(&source, IndexStyle::Underscore, setup.timekey_zone.clone())
            .and_then(|t| t.check(&setup.keys).map(|()| t))
            .map_err(|e| section.error(Some("path"), e))
            .ok()?;
        let config = Self {
            template,
            format,
            writer: WriterConfig {
                append,
                gzip: gzip.map(|l| l.clamp(1, 9) as u32),
                max_file_size,
                symlink_path,
                line_based,
            },
        };
        Some((config, setup))
    }
}

/// Fluentd's `generate_path_template`, with NUL marking the file number.
fn template_source(
    path: &str,
    timekey: Option<Duration>,
    gzip: bool,
    suffix: &str,
) -> Result<String, String> {
    let gz = if gzip { ".gz" } else { "" };
    let slice = timekey.map(slice_format).unwrap_or("");
    if path.contains('*') {
        if timekey.is_none() {
            return Err("a path with '*' needs 'time' as a buffer chunk key".into());
        }
        let with_index = path.replacen('*', &format!("{slice}\u{0}"), 1);
        return Ok(format!("{}{gz}", with_index.replace('*', slice)));
    }
    if timekey.is_none() {
        return Ok(format!("{path}\u{0}{suffix}{gz}"));
    }
    let parts: Vec<&str> = (0..slice.len() / 2)
        .filter_map(|i| slice.get(2 * i..2 * i + 2))
        .collect();
    if parts.iter().any(|p| path.contains(p)) {
        if let Some(missing) = parts.iter().find(|p| !path.contains(*p)) {
            return Err(format!(
                "insufficient timestamp placeholders in path: {missing} is missing for this timekey"
            ));
        }
        return Ok(format!("{path}\u{0}{suffix}{gz}"));
    }
    Ok(format!("{path}.{slice}\u{0}{suffix}{gz}"))
}

/// A running file output.
#[derive(Debug)]
pub struct FileOut {
    pub id: String,
    config: Arc<FileConfig>,
    writer: Arc<FileWriter>,
    pub files_written: AtomicU64,
    pub broken_entries: AtomicU64,
    /// Chunks a crash interrupted after they were written whole (before the buffer deleted
    /// them): not written again.
    pub chunks_already_written: AtomicU64,
    /// Parts (`append false`, `max_file_size`) published before a failure or crash: not
    /// written again.
    pub parts_already_written: AtomicU64,
    /// Appends a crash interrupted, cut back at start, and the bytes cut.
    pub appends_undone: AtomicU64,
    pub bytes_undone: AtomicU64,
}

impl FileOut {
    pub fn new(id: String, config: FileConfig) -> Self {
        let writer = Arc::new(FileWriter::new(config.writer.clone()));
        Self {
            id,
            config: Arc::new(config),
            writer,
            files_written: AtomicU64::new(0),
            broken_entries: AtomicU64::new(0),
            chunks_already_written: AtomicU64::new(0),
            parts_already_written: AtomicU64::new(0),
            appends_undone: AtomicU64::new(0),
            bytes_undone: AtomicU64::new(0),
        }
    }

    /// Before the first flush after a start: cuts back the appends a crash interrupted (see
    /// `writer::append`), for every chunk of `buffer`.
    pub async fn undo_interrupted(&self, buffer: &ferry_buffer::Buffer) -> Result<(), SinkError> {
        if !self.config.writer.append {
            return Ok(());
        }
        let noted = buffer.noted_chunks();
        if noted.is_empty() {
            return Ok(());
        }
        let config = Arc::clone(&self.config);
        let writer = Arc::clone(&self.writer);
        let (undone, cut) = tokio::task::spawn_blocking(move || {
            let (mut undone, mut cut) = (0, 0);
            for c in noted {
                let rendered = config.template.render(&c.key, &c.id.to_hex());
                let notes = ChunkNotes::new(c.notebook, &c.notes);
                if let Some((u, b)) = writer.undo_interrupted(&rendered, &c.notes, &notes)? {
                    undone += u;
                    cut += b;
                }
            }
            Ok::<_, std::io::Error>((undone, cut))
        })
        .await
        .map_err(|e| SinkError::Io(std::io::Error::other(e)))?
        .map_err(SinkError::Io)?;
        self.appends_undone.fetch_add(undone, Ordering::Relaxed);
        self.bytes_undone.fetch_add(cut, Ordering::Relaxed);
        Ok(())
    }

    /// Formats and writes one chunk on a blocking thread, one segment at a time.
    pub async fn write_chunk(&self, chunk: &Chunk) -> Result<(), SinkError> {
        self.write_chunks(std::slice::from_ref(chunk))
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    /// Formats and writes chunks in one pass on a blocking thread, made durable together with
    /// one sync per file ([`FileWriter::write_group`]); each chunk's outcome, in order.
    pub async fn write_chunks(&self, chunks: &[Chunk]) -> Vec<Result<(), SinkError>> {
        let mut results: Vec<Option<Result<(), SinkError>>> = Vec::new();
        // Each chunk to write: its place, id, paths and notes; and its tag and reader.
        let mut jobs = Vec::new();
        let mut sources = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let chunk_id = chunk.id().to_hex();
            let earlier = chunk.notes();
            if earlier.iter().any(|n| Code::WriteDone.is(n)) {
                self.chunks_already_written.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "output {}: chunk {chunk_id} was written whole before a crash; not written again",
                    self.id
                );
                results.push(Some(Ok(())));
                continue;
            }
            let notes = ChunkNotes::new(chunk.notebook(), &earlier);
            if notes.published > 0 {
                self.parts_already_written
                    .fetch_add(u64::from(notes.published), Ordering::Relaxed);
            }
            match SegmentReader::new(chunk) {
                Ok(reader) => {
                    let rendered = self.config.template.render(chunk.key(), &chunk_id);
                    let tag = chunk.key().tag.clone().unwrap_or_default();
                    jobs.push((i, chunk_id, rendered, notes));
                    sources.push((tag, reader));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !jobs.is_empty() {
            let config = Arc::clone(&self.config);
            let writer = Arc::clone(&self.writer);
            let done = tokio::task::spawn_blocking(move || {
                let broken = std::cell::Cell::new(0);
                let mut nexts: Vec<_> = sources
                    .iter_mut()
                    .map(|(tag, reader)| {
                        let (config, tag, broken) = (&config, &*tag, &broken);
                        move |buf: &mut Vec<u8>| -> Result<bool, SinkError> {
                            match reader.next_blocking()? {
                                Some(stream) => {
                                    let n = config.format.write_stream(tag, &stream, buf);
                                    broken.set(broken.get() + n);
                                    Ok(true)
                                }
                                None => Ok(false),
                            }
                        }
                    })
                    .collect();
                let items = jobs
                    .iter()
                    .zip(nexts.iter_mut())
                    .map(|((_, id, rendered, notes), next)| GroupItem {
                        rendered,
                        chunk_id: id,
                        next,
                        notes,
                    })
                    .collect();
                let written = writer.write_group(items);
                let places: Vec<usize> = jobs.iter().map(|j| j.0).collect();
                (places, written, broken.get())
            })
            .await;
            match done {
                Ok((places, written, broken)) => {
                    if broken > 0 {
                        self.broken_entries.fetch_add(broken, Ordering::Relaxed);
                        tracing::error!(
                            "output {}: {broken} entries could not be formatted",
                            self.id
                        );
                    }
                    for (i, w) in places.into_iter().zip(written) {
                        if let Ok(files) = &w {
                            self.files_written
                                .fetch_add(files.len() as u64, Ordering::Relaxed);
                        }
                        results[i] = Some(w.map(|_| ()));
                    }
                }
                Err(e) => {
                    for r in results.iter_mut().filter(|r| r.is_none()) {
                        *r = Some(Err(SinkError::Io(std::io::Error::other(e.to_string()))));
                    }
                }
            }
        }
        results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }

    /// Files and directories synced so far.
    pub fn syncs(&self) -> u64 {
        self.writer.syncs()
    }

    pub fn config(&self) -> &FileConfig {
        &self.config
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
