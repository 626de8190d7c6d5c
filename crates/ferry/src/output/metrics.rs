//! What every output exports: its counters, its buffer, and what its sink knows (names in
//! [`crate::metrics::names`]).

use super::Output;
use super::sink::Sink;
use crate::metrics::names::*;
use crate::metrics::{Collector, Exposition, PluginInfo};
use serde_json::json;
use std::sync::atomic::Ordering;

impl Collector for Output {
    fn collect(&self, out: &mut Exposition) {
        let labels: [(&str, &str); 2] = [("plugin_id", &self.id), ("type", self.type_name())];
        let m = &self.metrics;
        let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        out.counter(OUTPUT_EMIT_COUNT, &labels, c(&m.emit_count));
        out.counter(OUTPUT_EMIT_RECORDS, &labels, c(&m.emit_records));
        out.counter(OUTPUT_WRITE_COUNT, &labels, c(&m.write_count));
        out.counter(
            OUTPUT_WRITE_SECONDARY_COUNT,
            &labels,
            c(&m.write_secondary_count),
        );
        out.counter(OUTPUT_ROLLBACK_COUNT, &labels, c(&m.rollback_count));
        out.counter(OUTPUT_NUM_ERRORS, &labels, c(&m.num_errors));
        out.counter(OUTPUT_RETRY_COUNT, &labels, c(&m.retry_count));
        out.counter(OUTPUT_SLOW_FLUSH_COUNT, &labels, c(&m.slow_flush_count));
        out.counter(OUTPUT_FLUSH_TIME_COUNT, &labels, c(&m.flush_time_ms));
        out.counter(FERRY_OUTPUT_EMIT_REFUSED, &labels, c(&m.emit_refused));
        match &*self.sink {
            Sink::Forward(f) => f.export(&self.id, out),
            Sink::Kafka(k) => k.metrics().export(&self.id, out),
            Sink::Http(h) => h.metrics().export(&self.id, out),
            Sink::Scribe(s) => s.metrics().export(&self.id, out),
            Sink::File(f) => {
                out.counter(
                    FERRY_FILE_CHUNKS_ALREADY_WRITTEN,
                    &labels,
                    c(&f.chunks_already_written),
                );
                out.counter(
                    FERRY_FILE_PARTS_ALREADY_WRITTEN,
                    &labels,
                    c(&f.parts_already_written),
                );
                out.counter(FERRY_FILE_APPENDS_UNDONE, &labels, c(&f.appends_undone));
                out.counter(FERRY_FILE_BYTES_UNDONE, &labels, c(&f.bytes_undone));
                out.counter(FERRY_FILE_SYNCS, &labels, f.syncs());
            }
            _ => {}
        }
        let Some(buffered) = &self.buffered else {
            return;
        };
        let s = buffered.buffer.stats();
        out.gauge(OUTPUT_BUFFER_TOTAL_BYTES, &labels, s.total_bytes as f64);
        out.gauge(OUTPUT_BUFFER_STAGE_LENGTH, &labels, s.stage_length as f64);
        out.gauge(
            OUTPUT_BUFFER_STAGE_BYTE_SIZE,
            &labels,
            s.stage_byte_size as f64,
        );
        out.gauge(OUTPUT_BUFFER_QUEUE_LENGTH, &labels, s.queue_length as f64);
        out.gauge(
            OUTPUT_BUFFER_QUEUE_BYTE_SIZE,
            &labels,
            s.queue_byte_size as f64,
        );
        out.gauge(
            OUTPUT_BUFFER_AVAILABLE_SPACE_RATIO,
            &labels,
            s.available_space_ratio,
        );
        if let Some(t) = s.newest_timekey {
            out.gauge(OUTPUT_BUFFER_NEWEST_TIMEKEY, &labels, t as f64);
        }
        if let Some(t) = s.oldest_timekey {
            out.gauge(OUTPUT_BUFFER_OLDEST_TIMEKEY, &labels, t as f64);
        }
        out.gauge(STATUS_BUFFER_QUEUE_LENGTH, &labels, s.queue_length as f64);
        out.gauge(STATUS_BUFFER_TOTAL_BYTES, &labels, s.total_bytes as f64);
        out.counter(STATUS_RETRY_COUNT, &labels, c(&m.retry_count));
        out.gauge(FERRY_BUFFER_RECORDS, &labels, s.total_records as f64);
        out.gauge(FERRY_BUFFER_IN_FLIGHT, &labels, s.in_flight_length as f64);
        out.counter(FERRY_QUARANTINED_CHUNKS, &labels, s.quarantined_chunks);
        out.counter(FERRY_DROPPED_CHUNKS, &labels, s.dropped_chunks);
        out.counter(FERRY_BUFFER_DISK_ERRORS, &labels, s.disk_errors);
        out.counter(FERRY_BUFFER_APPEND_ERRORS, &labels, s.append_errors);
        out.counter(FERRY_BUFFER_TORN_TAILS, &labels, s.torn_tails);
        let (id, t) = (self.id.as_str(), self.type_name());
        out.dropped(id, t, dropped::DROP_OLDEST_CHUNK, s.dropped_records);
        out.dropped(id, t, dropped::QUARANTINED, s.quarantined_records);
        out.dropped(id, t, dropped::LOST_AT_STOP, c(&m.lost_at_stop));
    }

    fn plugin_info(&self) -> Option<PluginInfo> {
        let m = &self.metrics;
        let c = |a: &std::sync::atomic::AtomicU64| json!(a.load(Ordering::Relaxed));
        let mut fields = vec![
            ("retry_count", c(&m.retry_count)),
            ("emit_records", c(&m.emit_records)),
            ("emit_count", c(&m.emit_count)),
            ("write_count", c(&m.write_count)),
            ("rollback_count", c(&m.rollback_count)),
            ("slow_flush_count", c(&m.slow_flush_count)),
            ("flush_time_count", c(&m.flush_time_ms)),
            ("num_errors", c(&m.num_errors)),
        ];
        if let Some(b) = &self.buffered {
            let s = b.buffer.stats();
            fields.extend([
                ("buffer_queue_length", json!(s.queue_length)),
                ("buffer_total_queued_size", json!(s.total_bytes)),
                ("buffer_stage_length", json!(s.stage_length)),
                ("buffer_stage_byte_size", json!(s.stage_byte_size)),
                ("buffer_queue_byte_size", json!(s.queue_byte_size)),
                (
                    "buffer_available_buffer_space_ratios",
                    json!(s.available_space_ratio),
                ),
                (
                    "buffer_timekeys",
                    json!(s.newest_timekey.into_iter().collect::<Vec<_>>()),
                ),
                ("drop_oldest_chunk_count", json!(s.dropped_chunks)),
                ("ferry_buffer_records", json!(s.total_records)),
            ]);
        }
        match &*self.sink {
            Sink::Forward(f) => {
                let fm = f.metrics();
                fields.push(("servers", f.servers_info()));
                fields.push(("resent_after_restart", c(&fm.resent_after_restart)));
                fields.push((
                    "resent_after_restart_records",
                    c(&fm.records_resent_after_restart),
                ));
            }
            Sink::File(f) => {
                fields.push(("chunks_already_written", c(&f.chunks_already_written)));
                fields.push(("parts_already_written", c(&f.parts_already_written)));
                fields.push(("partial_writes_undone", c(&f.appends_undone)));
                fields.push(("partial_write_bytes_undone", c(&f.bytes_undone)));
                fields.push(("syncs", serde_json::json!(f.syncs())));
            }
            Sink::Http(h) => fields.extend(h.metrics().info(h.endpoint())),
            Sink::Scribe(s) => {
                let sm = s.metrics();
                fields.push(("servers", serde_json::json!(s.servers())));
                fields.push(("log_calls_ok", c(&sm.calls_ok)));
                fields.push(("log_calls_try_later", c(&sm.calls_try_later)));
                fields.push(("log_calls_failed", c(&sm.calls_failed)));
                fields.push(("messages_sent", c(&sm.messages)));
            }
            _ => {}
        }
        Some(PluginInfo {
            plugin_id: self.id.clone(),
            category: "output",
            type_name: self.type_name(),
            output_plugin: true,
            fields,
        })
    }
}
