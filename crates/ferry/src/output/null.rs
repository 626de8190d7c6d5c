//! `@type null`: accepts and discards every event (counted). With a `<buffer>` and
//! `never_flush true` (Fluentd's knob for load tests), chunks are never taken from the buffer:
//! it fills, and its overflow action applies.

use ferry_config::Section;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NullConfig {
    pub never_flush: bool,
}

impl NullConfig {
    pub fn from_section(section: &Section<'_>) -> Self {
        Self {
            never_flush: section.bool_or("never_flush", false),
        }
    }
}

#[derive(Debug)]
pub struct Null {
    pub id: String,
    pub records: AtomicU64,
    pub never_flush: bool,
}

impl Null {
    pub fn new(id: String, config: &NullConfig) -> Self {
        Self {
            id,
            records: AtomicU64::new(0),
            never_flush: config.never_flush,
        }
    }

    pub fn take(&self, records: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use crate::output::{Output, Sink};
    use crate::task::Tasks;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    async fn run(never_flush: &str) -> (u64, u64) {
        let text = format!(
            "<match **>\n  @type null\n  {never_flush}\n  <buffer>\n    @type memory\n    flush_interval 0s\n  </buffer>\n</match>\n"
        );
        let root = ferry_config::parse_str(&text, "n.conf").unwrap();
        let options = crate::pipeline::LoadOptions {
            root_dir: Some(tempfile::tempdir().unwrap().keep()),
        };
        let config = crate::pipeline::build_with(&root, &options).unwrap();
        let (id, oc) = config.routes.outputs()[0];
        let output = Arc::new(Output::build(id.to_string(), oc).await.unwrap());
        let tasks = Tasks::new();
        output.start(&tasks);
        let mut entries = bytes::BytesMut::new();
        let record = ferry_proto::msgpack::Value::Map(Vec::new()).to_bytes();
        for _ in 0..5 {
            ferry_proto::encode::write_entry(
                &mut entries,
                ferry_proto::time::EventTime::now(),
                false,
                &record,
            );
        }
        let batch = crate::event::Batch::new("t", entries.freeze(), 5);
        output.emit(&batch).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let held = output
            .buffered
            .as_ref()
            .unwrap()
            .buffer
            .stats()
            .total_records;
        let taken = match &*output.sink {
            Sink::Null(n) => n.records.load(Ordering::Relaxed),
            _ => unreachable!(),
        };
        tasks.shutdown(Duration::from_secs(1)).await;
        (held, taken)
    }

    #[tokio::test]
    async fn never_flush_keeps_every_chunk_in_the_buffer() {
        assert_eq!(run("never_flush true").await, (5, 0));
        assert_eq!(run("").await, (0, 5));
    }
}
