//! `<secondary>`: where a buffered output's chunks go once retries pass
//! `retry_secondary_threshold` of the retry budget, or when they can never be delivered.
//!
//! - `@type secondary_file` (Fluentd's): the chunk's payload, msgpack entries exactly as
//!   buffered, written to `directory/basename` (`${chunk_id}` and `${tag}` are replaced). Without
//!   `append`, each chunk gets a new file `basename.N` (the first N not taken), as Fluentd does;
//!   with `append`, every chunk is appended to `basename`. `compress gzip` writes gzip (`.gz`).
//! - `@type file`: one line per event, `time<TAB>tag<TAB>{json}` (out_file's default format,
//!   times in UTC) or JSON lines with `<format> @type json`, to `path.<chunk id>.log`
//!   (`path.log` with `append`).
//!
//! A chunk counts as taken only after its file is written and fsynced (file and directory), so
//! a crash right after cannot lose it.

use super::SinkError;
use super::format::{FormatConfig, FormatKind, write_rfc3339};
use ferry_buffer::{Chunk, ChunkReader};
use ferry_config::Section;
use flate2::write::GzEncoder;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a secondary file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondaryLayout {
    /// `secondary_file`: the msgpack entries.
    Raw {
        directory: PathBuf,
        basename: String,
    },
    /// `file`: formatted lines; `None` is out_file's default format.
    Lines {
        path: PathBuf,
        format: Option<FormatConfig>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryConfig {
    pub layout: SecondaryLayout,
    pub append: bool,
    pub gzip: bool,
}

/// Secondary types this build provides.
pub const SECONDARY_TYPES: &[&str] = &["secondary_file", "file"];

impl SecondaryConfig {
    /// Reads a `<secondary>` section; the caller finishes it.
    pub fn from_section(s: &Section<'_>) -> Option<Self> {
        let kind = crate::plugin::plugin_type(s, "secondary", SECONDARY_TYPES, &[])?;
        let append = s.bool_or("append", false);
        let gzip = s.enum_or("compress", &["text", "gzip"], "text") == "gzip";
        let layout = match kind {
            "secondary_file" => SecondaryLayout::Raw {
                directory: PathBuf::from(s.required_str("directory")?),
                basename: s.str_or("basename", "dump.bin"),
            },
            _ => {
                let has_format = s.element().children.iter().any(|c| c.name == "format");
                let format = FormatConfig::from_section(s, FormatKind::Json);
                SecondaryLayout::Lines {
                    path: PathBuf::from(s.required_str("path")?),
                    format: has_format.then_some(format),
                }
            }
        };
        Some(Self {
            layout,
            append,
            gzip,
        })
    }
}

#[derive(Debug)]
pub struct SecondaryFile {
    pub id: String,
    config: SecondaryConfig,
    /// Chunks written.
    pub chunks: AtomicU64,
    lock: tokio::sync::Mutex<()>,
}

fn io_err(path: &Path, e: io::Error) -> SinkError {
    SinkError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl SecondaryFile {
    pub fn new(id: String, config: SecondaryConfig) -> Self {
        Self {
            id,
            config,
            chunks: AtomicU64::new(0),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self.config.layout {
            SecondaryLayout::Raw { .. } => "secondary_file",
            SecondaryLayout::Lines { .. } => "file",
        }
    }

    /// Writes one chunk to its file and syncs it.
    pub async fn write_chunk(&self, chunk: &Chunk) -> Result<PathBuf, SinkError> {
        let _one_at_a_time = self.lock.lock().await;
        let tag = chunk.key().tag.clone().unwrap_or_default();
        let hex = super::buffered::hex(&chunk.unique_id());
        let suffix = if self.config.gzip { ".gz" } else { "" };
        let path = match &self.config.layout {
            SecondaryLayout::Raw {
                directory,
                basename,
            } => {
                let base = basename
                    .replace("${chunk_id}", &hex)
                    .replace("${tag}", &tag);
                let stem = directory.join(base);
                self.pick_path(&stem, suffix)
            }
            SecondaryLayout::Lines { path, .. } => {
                let stem = if self.config.append {
                    format!("{}.log{suffix}", path.display())
                } else {
                    format!("{}.{hex}.log{suffix}", path.display())
                };
                PathBuf::from(stem)
            }
        };
        let body = match &self.config.layout {
            SecondaryLayout::Raw { .. } => Body::Payload {
                reader: chunk.reader().map_err(SinkError::ReadChunk)?,
                gzip: chunk.compressed(),
            },
            SecondaryLayout::Lines { format, .. } => Body::Lines {
                reader: chunk.reader().map_err(SinkError::ReadChunk)?,
                gzip: chunk.compressed(),
                segments: chunk.segments().iter().map(|s| s.len).collect(),
                tag: tag.clone(),
                format: format.clone(),
            },
        };
        let (gzip_out, append) = (self.config.gzip, self.config.append);
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_file(&target, append, gzip_out, body))
            .await
            .map_err(|e| SinkError::Io(io::Error::other(e)))?
            .map_err(|e| io_err(&path, e))?;
        self.chunks.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "output {}: chunk {hex} ({} records) written to the secondary file {}",
            self.id,
            chunk.records(),
            path.display()
        );
        Ok(path)
    }

    /// `stem` with append, else the first free `stem.N`.
    fn pick_path(&self, stem: &Path, suffix: &str) -> PathBuf {
        if self.config.append {
            return PathBuf::from(format!("{}{suffix}", stem.display()));
        }
        (0u64..)
            .map(|i| PathBuf::from(format!("{}.{i}{suffix}", stem.display())))
            .find(|p| !p.exists())
            .unwrap_or_else(|| stem.to_path_buf())
    }
}

/// Where a secondary file's bytes go: plain, or through a gzip encoder.
enum Out {
    Plain(File),
    Gzip(GzEncoder<File>),
}

impl Out {
    /// The file itself, for bytes that are gzip already.
    fn raw(&mut self) -> &mut File {
        match self {
            Out::Plain(f) => f,
            Out::Gzip(g) => g.get_mut(),
        }
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Out::Plain(f) => f.write_all(buf)?,
            Out::Gzip(g) => g.write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Plain(f) => f.flush(),
            Out::Gzip(g) => g.flush(),
        }
    }
}

/// What goes into a secondary file.
enum Body {
    /// The chunk's payload; `gzip`: it is stored as gzip members.
    Payload { reader: ChunkReader, gzip: bool },
    /// The chunk's events formatted, one segment in memory at a time.
    Lines {
        reader: ChunkReader,
        gzip: bool,
        segments: Vec<u64>,
        tag: String,
        format: Option<FormatConfig>,
    },
}

fn write_file(path: &Path, append: bool, gzip: bool, body: Body) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .create_new(!append)
        .open(path)?;
    let mut out = if gzip {
        Out::Gzip(GzEncoder::new(file, flate2::Compression::default()))
    } else {
        Out::Plain(file)
    };
    match body {
        Body::Lines {
            mut reader,
            gzip,
            segments,
            tag,
            format,
        } => {
            for len in segments {
                let mut raw = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
                reader.read_exact(&mut raw)?;
                let stream = if gzip {
                    let mut plain = Vec::new();
                    io::copy(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut plain)?;
                    plain
                } else {
                    raw
                };
                let mut text = String::new();
                format_lines(&stream, &tag, format.as_ref(), &mut text);
                out.write_all(text.as_bytes())?;
            }
        }
        Body::Payload { reader, gzip: true } if gzip => {
            io::copy(&mut { reader }, out.raw())?;
        }
        Body::Payload { reader, gzip: true } => {
            io::copy(&mut flate2::read::MultiGzDecoder::new(reader), &mut out)?;
        }
        Body::Payload { mut reader, .. } => {
            io::copy(&mut reader, &mut out)?;
        }
    }
    let file = match out {
        Out::Plain(f) => f,
        Out::Gzip(g) => g.finish()?,
    };
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// One line per event of `stream`.
fn format_lines(stream: &[u8], tag: &str, format: Option<&FormatConfig>, text: &mut String) {
    if let Some(format) = format {
        format.write_lines(tag, stream, text);
        return;
    }
    // out_file's default: time<TAB>tag<TAB>json
    for entry in ferry_proto::entries::iter(stream).flatten() {
        let Ok((record, _)) = ferry_proto::msgpack::Value::decode(entry.record) else {
            continue;
        };
        write_rfc3339(entry.time, text);
        text.push('\t');
        text.push_str(tag);
        text.push('\t');
        record.write_json(text);
        text.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use ferry_buffer::{Buffer, BufferConfig, ChunkKey};
    use ferry_proto::time::EventTime;

    fn chunk_with(records: u64, gzip: bool) -> (Buffer, Chunk, Vec<u8>) {
        let mut config = BufferConfig::memory();
        if gzip {
            config.compress = ferry_buffer::Compress::Gzip;
        }
        let (buffer, _) = Buffer::open(config, "t").unwrap();
        let mut stream = BytesMut::new();
        for i in 0..records {
            let rec = ferry_proto::msgpack::Value::Map(vec![(
                ferry_proto::msgpack::Value::Str("n".into()),
                ferry_proto::msgpack::Value::UInt(i),
            )]);
            ferry_proto::encode::write_entry(
                &mut stream,
                EventTime::new(1_700_000_000, 0),
                false,
                &rec.to_bytes(),
            );
        }
        buffer
            .append(&ChunkKey::tag("app.web"), &stream, records)
            .unwrap();
        buffer.flush_all();
        let chunk = buffer.take(std::time::SystemTime::now()).unwrap();
        (buffer, chunk, stream.to_vec())
    }

    fn config(layout: SecondaryLayout, append: bool) -> SecondaryConfig {
        SecondaryConfig {
            layout,
            append,
            gzip: false,
        }
    }

    #[tokio::test]
    async fn secondary_file_writes_the_entries_as_buffered_to_a_new_file_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let layout = SecondaryLayout::Raw {
            directory: dir.path().to_path_buf(),
            basename: "dump.${tag}".into(),
        };
        let s = SecondaryFile::new("o".into(), config(layout, false));
        let (_b, chunk, stream) = chunk_with(5, false);
        let first = s.write_chunk(&chunk).await.unwrap();
        let second = s.write_chunk(&chunk).await.unwrap();
        assert_eq!(first, dir.path().join("dump.app.web.0"));
        assert_eq!(second, dir.path().join("dump.app.web.1"));
        assert_eq!(std::fs::read(first).unwrap(), stream);
    }

    #[tokio::test]
    async fn a_gzip_chunk_is_written_as_plain_entries_unless_compress_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let layout = SecondaryLayout::Raw {
            directory: dir.path().to_path_buf(),
            basename: "dump.bin".into(),
        };
        let (_b, chunk, stream) = chunk_with(5, true);
        assert!(chunk.compressed());
        let plain = SecondaryFile::new("o".into(), config(layout.clone(), false));
        let p = plain.write_chunk(&chunk).await.unwrap();
        assert_eq!(std::fs::read(p).unwrap(), stream);
        let gz = SecondaryFile::new(
            "o".into(),
            SecondaryConfig {
                layout,
                append: true,
                gzip: true,
            },
        );
        let p = gz.write_chunk(&chunk).await.unwrap();
        assert_eq!(p, dir.path().join("dump.bin.gz"));
        let bytes = std::fs::read(p).unwrap();
        let back = ferry_proto::compress::decompress(
            ferry_proto::options::Compression::Gzip,
            &bytes,
            1 << 20,
        )
        .unwrap();
        assert_eq!(back, stream);
    }

    #[tokio::test]
    async fn file_writes_one_line_per_event_in_out_files_format() {
        let dir = tempfile::tempdir().unwrap();
        let layout = SecondaryLayout::Lines {
            path: dir.path().join("failed"),
            format: None,
        };
        let s = SecondaryFile::new("o".into(), config(layout, true));
        let (_b, chunk, _) = chunk_with(3, false);
        let p = s.write_chunk(&chunk).await.unwrap();
        assert_eq!(p, dir.path().join("failed.log"));
        let text = std::fs::read_to_string(p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1],
            "2023-11-14T22:13:20.000000000+00:00\tapp.web\t{\"n\":1}"
        );
    }
}
