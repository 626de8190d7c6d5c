//! `<source> @type sample` (Fluentd's `dummy`): generates events, for trying a pipeline out and
//! for load tests.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `tag` | required | the events' tag |
//! | `sample` (or `dummy`) | `[{"message":"sample"}]` | a JSON object, or an array of objects used in turn |
//! | `rate` | 1 | emits per second, spread over ten slots of 100 ms as Fluentd spreads them |
//! | `size` | 1 | events per emit |
//! | `auto_increment_key` | none | a key set to 0, 1, 2, ... in each event |
//!
//! Events an output refuses are offered again until taken: the generator slows down to what
//! the pipeline takes, and nothing it generated is dropped.

use crate::event::Batch;
use crate::input::Start;
use crate::metrics::names::*;
use crate::metrics::{Exposition, load};
use crate::output::EmitError;
use crate::router::Routing;
use crate::task::TaskHandle;
use bytes::BytesMut;
use ferry_config::Section;
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A parsed `<source> @type sample`.
#[derive(Debug, Clone)]
pub struct SampleConfig {
    pub tag: String,
    pub label: Option<String>,
    /// The records used in turn (maps).
    pub records: Vec<Value>,
    pub rate: u64,
    pub size: u64,
    pub auto_increment_key: Option<String>,
}

impl SampleConfig {
    pub fn from_section(s: &Section<'_>) -> Self {
        let tag = s.required_str("tag").unwrap_or_default();
        let text = s
            .str("sample")
            .or_else(|| s.str("dummy"))
            .unwrap_or_else(|| r#"[{"message":"sample"}]"#.to_string());
        let key = if s.has("sample") { "sample" } else { "dummy" };
        let records = match crate::parse::json::to_value(text.as_bytes()) {
            Ok(Value::Array(items)) if !items.is_empty() => items,
            Ok(v @ Value::Map(_)) => vec![v],
            Ok(_) => {
                s.error(
                    Some(key),
                    format!("{key} must be a JSON object or a non-empty array of objects"),
                );
                Vec::new()
            }
            Err(e) => {
                s.error(Some(key), format!("{key} is not JSON: {e}"));
                Vec::new()
            }
        };
        if records.iter().any(|r| !matches!(r, Value::Map(_))) {
            s.error(
                Some(key),
                format!("every record of {key} must be a JSON object"),
            );
        }
        let rate = s.u64_or("rate", 1);
        let size = s.u64_or("size", 1);
        for (name, v) in [("rate", rate), ("size", size)] {
            if v == 0 {
                s.error(Some(name), format!("{name} must be at least 1"));
            }
        }
        let _ = s.opt_bool("suspend");
        s.no_effect_unless(
            "suspend",
            false,
            "auto_increment_key starts again at 0 at every start",
        );
        Self {
            tag,
            label: s.label().map(str::to_string),
            records,
            rate: rate.max(1),
            size: size.max(1),
            auto_increment_key: s.str("auto_increment_key"),
        }
    }
}

/// Counters of one sample input.
#[derive(Debug, Default)]
pub struct SampleMetrics {
    pub emit_records: AtomicU64,
    pub emit_retries: AtomicU64,
}

impl SampleMetrics {
    pub fn export(&self, id: &str, out: &mut Exposition) {
        let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "sample")];
        out.counter(INPUT_EMIT_RECORDS, &labels, load(&self.emit_records));
        out.counter(INPUT_NUM_RECORDS, &labels, load(&self.emit_records));
    }
}

struct Generator {
    config: SampleConfig,
    routing: Arc<Routing>,
    metrics: Arc<SampleMetrics>,
    next: usize,
    counter: u64,
}

impl Generator {
    /// `n` events as one batch.
    fn batch(&mut self, n: u64) -> Batch {
        let mut entries = BytesMut::new();
        let now = EventTime::now();
        for _ in 0..n {
            let mut record = self.config.records[self.next % self.config.records.len()].clone();
            self.next = self.next.wrapping_add(1);
            if let (Some(key), Value::Map(pairs)) = (&self.config.auto_increment_key, &mut record) {
                pairs.retain(|(k, _)| !matches!(k, Value::Str(s) if s[..] == *key.as_bytes()));
                let name = bytes::Bytes::copy_from_slice(key.as_bytes());
                pairs.push((Value::Str(name), Value::UInt(self.counter)));
                self.counter += 1;
            }
            ferry_proto::encode::write_entry(&mut entries, now, false, &record.to_bytes());
        }
        Batch::new(self.config.tag.as_str(), entries.freeze(), n)
    }

    /// Emits `emits` × `size` events; a refusal is retried (the generator waits).
    async fn emit(&mut self, emits: u64, h: &TaskHandle) -> Result<(), ()> {
        if emits == 0 {
            return Ok(());
        }
        let batch = self.batch(emits * self.config.size);
        loop {
            match self
                .routing
                .emit(self.config.label.as_deref(), &batch)
                .await
            {
                Ok(_) => {
                    self.metrics
                        .emit_records
                        .fetch_add(batch.records, Ordering::Relaxed);
                    return Ok(());
                }
                Err(EmitError::ShuttingDown) => return Err(()),
                Err(e) => {
                    self.metrics.emit_retries.fetch_add(1, Ordering::Relaxed);
                    if !e.is_retryable() {
                        tracing::error!(
                            "sample input: {e}; the generated events are dropped (they can never be taken)"
                        );
                        return Ok(());
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        () = h.cancelled() => return Err(()),
                    }
                }
            }
        }
    }

    async fn run(mut self, h: TaskHandle) {
        // Fluentd's pacing: `rate` emits a second, in ten slots of 100 ms and the remainder.
        let per_slot = self.config.rate / 10;
        let residual = self.config.rate % 10;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut slot = 0u32;
        loop {
            h.set("waiting for the next slot");
            tokio::select! {
                _ = tick.tick() => {}
                () = h.cancelled() => return,
            }
            h.set("emitting");
            let n = per_slot + if slot == 9 { residual } else { 0 };
            if self.emit(n, &h).await.is_err() {
                return;
            }
            slot = (slot + 1) % 10;
        }
    }
}

/// Spawns the generator.
pub fn start(id: &str, config: SampleConfig, start: Start<'_>) -> Arc<SampleMetrics> {
    let metrics = match start.previous {
        Some(crate::input::InputHandle::Sample(m)) => Arc::clone(m),
        _ => Arc::default(),
    };
    let generator = Generator {
        config,
        routing: Arc::clone(start.routing),
        metrics: Arc::clone(&metrics),
        next: 0,
        counter: 0,
    };
    start
        .tasks
        .work
        .spawn(format!("sample input {id}"), move |h| generator.run(h));
    metrics
}
