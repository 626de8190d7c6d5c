//! `@type secondary_file`: where a buffered output puts the chunks its destination never took
//! (`<secondary>`), as Fluentd's out_secondary_file.
//!
//! A chunk's events are written as they are in the buffer, a msgpack stream of
//! `[time, record]` entries (what Fluentd writes; `fluent-cat --format msgpack` reads it back),
//! to `directory`/`basename` (default `dump.bin`): with `append false` (the default) a new
//! file per chunk, `dump.bin.0`, `dump.bin.1`, ...; with `append true` one file. `compress
//! gzip` writes gzip and adds `.gz`. `directory` and `basename` take the same placeholders as
//! the file output's `path` (time, `${tag}`, `${tag[N]}`, `${KEY}`, `${chunk_id}`), limited to
//! the primary output's chunk keys. Files appear atomically as the file output's do
//! ([`super::file::writer`]).

use super::SinkError;
use super::buffer_section::BufferSetup;
use super::file::writer::{FileWriter, WriterConfig};
use super::placeholders::{IndexStyle, Template};
use super::segment::SegmentReader;
use ferry_buffer::Chunk;
use ferry_config::Section;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct SecondaryFileConfig {
    pub template: Template,
    pub writer: WriterConfig,
}

impl SecondaryFileConfig {
    /// Reads a `<secondary> @type secondary_file` section of an output whose chunks are keyed
    /// and sliced by `primary` (its time slices are written in the primary's `timekey_zone`).
    pub fn from_section(s: &Section<'_>, primary: &BufferSetup) -> Option<Self> {
        let keys = &primary.keys;
        let directory = s.required_str("directory");
        let basename = s.str_or("basename", "dump.bin");
        if basename.contains('/') {
            s.error(Some("basename"), "basename must not contain '/'");
        }
        let append = s.bool_or("append", false);
        let gzip = s.enum_or("compress", &["text", "gzip"], "text") == "gzip";
        let source = format!(
            "{}/{basename}\u{0}{}",
            directory?.trim_end_matches('/'),
            if gzip { ".gz" } else { "" }
        );
        let template = Template::parse(&source, IndexStyle::Dot, primary.timekey_zone.clone())
            .and_then(|t| t.check(keys).map(|()| t))
            .map_err(|e| s.error(None, format!("secondary_file: {e}")))
            .ok()?;
        Some(Self {
            template,
            writer: WriterConfig {
                append,
                gzip: gzip.then_some(6),
                max_file_size: None,
                symlink_path: None,
                line_based: false,
            },
        })
    }
}

#[derive(Debug)]
pub struct SecondaryFile {
    pub id: String,
    template: Template,
    writer: Arc<FileWriter>,
}

impl SecondaryFile {
    pub fn new(id: String, config: SecondaryFileConfig) -> Self {
        Self {
            id,
            template: config.template,
            writer: Arc::new(FileWriter::new(config.writer)),
        }
    }

    pub async fn write_chunk(&self, chunk: &Chunk) -> Result<(), SinkError> {
        let chunk_id = chunk.id().to_hex();
        let rendered = self.template.render(chunk.key(), &chunk_id);
        let mut reader = SegmentReader::new(chunk)?;
        let writer = Arc::clone(&self.writer);
        let id = chunk_id.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut next = |buf: &mut Vec<u8>| -> Result<bool, SinkError> {
                match reader.next_blocking()? {
                    Some(stream) => {
                        buf.extend_from_slice(&stream);
                        Ok(true)
                    }
                    None => Ok(false),
                }
            };
            // No progress notes: the chunk's notes are its primary output's.
            writer.write(&rendered, &id, &mut next)
        })
        .await
        .map_err(|e| SinkError::Io(std::io::Error::other(e)))??;
        if let Some(path) = written.last() {
            tracing::warn!(
                "output {}: chunk {chunk_id} written to the secondary file {}",
                self.id,
                path.display()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::buffer_section::BufferDefaults;
    use ferry_buffer::{Buffer, BufferConfig, ChunkKey};

    /// Two chunks of tag `app`, one event each.
    fn chunks() -> Vec<Chunk> {
        let (buffer, _) = Buffer::open(BufferConfig::memory(), "m").unwrap();
        for n in 0..2u64 {
            let mut entries = bytes::BytesMut::new();
            let record = ferry_proto::msgpack::Value::Map(vec![(
                crate::record::str_value("n"),
                ferry_proto::msgpack::Value::UInt(n),
            )]);
            ferry_proto::encode::write_entry(
                &mut entries,
                ferry_proto::time::EventTime::new(1, 0),
                false,
                &record.to_bytes(),
            );
            buffer.append(&ChunkKey::tag("app"), &entries, 1).unwrap();
            buffer.flush_all();
        }
        std::iter::from_fn(|| buffer.take(std::time::SystemTime::now())).collect()
    }

    /// The files written for two chunks with `params`, each with its size.
    async fn written(params: &str) -> Vec<(String, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "<secondary>\ndirectory {}\n{params}\n</secondary>\n",
            dir.path().display()
        );
        let defaults = BufferDefaults {
            keys: "tag",
            timekey: None,
        };
        let root = crate::root_dir::RootDir::resolve(None, None);
        let primary = BufferSetup::from_section(None, defaults, "o", &root, false);
        let config =
            crate::plugin::read_section(&text, |s| SecondaryFileConfig::from_section(s, &primary))
                .unwrap()
                .unwrap();
        let out = SecondaryFile::new("o".into(), config);
        for chunk in chunks() {
            out.write_chunk(&chunk).await.unwrap();
        }
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let bytes = std::fs::read(e.path()).unwrap();
                (e.file_name().to_string_lossy().into_owned(), bytes)
            })
            .collect();
        files.sort();
        files
    }

    #[tokio::test]
    async fn append_and_compress_choose_the_files_written() {
        let names = |files: &[(String, Vec<u8>)]| -> Vec<String> {
            files.iter().map(|(n, _)| n.clone()).collect()
        };
        let separate = written("").await;
        assert_eq!(names(&separate), ["dump.bin.0", "dump.bin.1"]);
        let appended = written("append true").await;
        assert_eq!(names(&appended), ["dump.bin"]);
        assert_eq!(
            appended[0].1.len(),
            separate[0].1.len() + separate[1].1.len()
        );
        let gzip = written("compress gzip\nbasename out").await;
        assert_eq!(names(&gzip), ["out.0.gz", "out.1.gz"]);
        assert!(gzip.iter().all(|(_, b)| b.starts_with(&[0x1f, 0x8b])));
    }
}
