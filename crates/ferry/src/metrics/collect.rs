//! What each part of the pipeline exports: inputs, outputs (with their buffers and what their
//! sink knows: forward servers, Kafka topics) and the router.

use super::names::*;
use super::{Collector, Exposition, PluginInfo};
use crate::input::InputHandle;
use crate::input::forward::{ForwardInputMetrics, HandshakeFailure};
use crate::input::tail::TailMetrics;
use crate::output::Output;
use crate::output::forward::Forward;
use crate::output::kafka::Kafka;
use crate::output::sink::Sink;
use crate::router::Router;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// A started input, as the metrics endpoint and monitor API see it.
#[derive(Debug)]
pub struct InputCollector {
    pub id: String,
    pub handle: InputHandle,
}

impl Collector for InputCollector {
    fn collect(&self, out: &mut Exposition) {
        match &self.handle {
            InputHandle::Forward(m) => collect_forward_input(&self.id, m, out),
            InputHandle::Tail(m) => collect_tail(&self.id, m, out),
        }
    }

    fn plugin_info(&self) -> Option<PluginInfo> {
        let (type_name, records, size) = match &self.handle {
            InputHandle::Forward(m) => ("forward", load(&m.emit_records), load(&m.emit_size)),
            InputHandle::Tail(m) => ("tail", load(&m.emit_records), load(&m.bytes_read)),
        };
        Some(PluginInfo {
            plugin_id: self.id.clone(),
            category: "input",
            type_name,
            output_plugin: false,
            fields: vec![("emit_records", json!(records)), ("emit_size", json!(size))],
        })
    }
}

fn collect_forward_input(id: &str, m: &ForwardInputMetrics, out: &mut Exposition) {
    let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "forward")];
    out.counter(INPUT_EMIT_RECORDS, &labels, load(&m.emit_records));
    out.counter(INPUT_EMIT_SIZE, &labels, load(&m.emit_size));
    out.counter(INPUT_NUM_RECORDS, &labels, load(&m.emit_records));
    out.gauge(
        FERRY_FORWARD_CONNECTIONS,
        &labels,
        load(&m.connections_active) as f64,
    );
    out.counter(FERRY_FORWARD_REQUESTS, &labels, load(&m.requests));
    out.counter(FERRY_FORWARD_ACKS, &labels, load(&m.acks));
    out.counter(FERRY_FORWARD_HEARTBEATS, &labels, load(&m.heartbeats));
    out.counter(
        FERRY_FORWARD_INVALID_EVENTS,
        &labels,
        load(&m.invalid_events),
    );
    let refused = [
        ("chunk_size_limit", load(&m.oversize_requests)),
        ("broken_request", load(&m.broken_requests)),
        ("commit_failed", load(&m.commit_failures)),
        ("idle_timeout", load(&m.idle_closes)),
        ("max_connections_wait", load(&m.connection_limit_waits)),
        ("fd_exhausted", load(&m.fd_exhaustion_episodes)),
    ];
    for (reason, n) in refused {
        let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "forward"), ("reason", reason)];
        out.counter(FERRY_FORWARD_REFUSED, &l, n);
    }
    for reason in HandshakeFailure::ALL {
        let l: [(&str, &str); 3] = [
            ("plugin_id", id),
            ("type", "forward"),
            ("reason", reason.as_str()),
        ];
        out.counter(
            FERRY_FORWARD_HANDSHAKE_FAILURES,
            &l,
            m.handshake_failures(reason),
        );
    }
}

fn collect_tail(id: &str, m: &TailMetrics, out: &mut Exposition) {
    let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "tail")];
    out.counter(INPUT_EMIT_RECORDS, &labels, load(&m.emit_records));
    out.counter(INPUT_NUM_RECORDS, &labels, load(&m.emit_records));
    out.counter(TAIL_FILES_OPENED, &labels, load(&m.files_opened));
    out.counter(TAIL_FILES_CLOSED, &labels, load(&m.files_closed));
    out.counter(TAIL_FILES_ROTATED, &labels, load(&m.files_rotated));
    out.counter(TAIL_FILES_THROTTLED, &labels, load(&m.files_throttled));
    out.gauge(
        TAIL_FILES_TRACKED,
        &labels,
        m.files_tracked.load(Ordering::Relaxed) as f64,
    );
    out.counter(
        FERRY_TAIL_INOTIFY_FALLBACKS,
        &labels,
        load(&m.polling_fallbacks),
    );
    out.counter(FERRY_TAIL_LONG_LINES, &labels, load(&m.long_lines_skipped));
    out.counter(
        FERRY_TAIL_UNMATCHED_LINES,
        &labels,
        load(&m.unmatched_lines),
    );
    out.counter(FERRY_TAIL_EMIT_RETRIES, &labels, load(&m.emit_retries));
    out.counter(
        FERRY_TAIL_RECORDS_DROPPED,
        &labels,
        load(&m.records_dropped),
    );
    out.counter(FERRY_TAIL_BYTES_READ, &labels, load(&m.bytes_read));
    for (path, position, inode) in m.file_positions() {
        let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "tail"), ("path", &path)];
        out.gauge(TAIL_FILE_POSITION, &l, position as f64);
        out.gauge(TAIL_FILE_INODE, &l, inode as f64);
    }
}

fn collect_forward_output(id: &str, f: &Forward, out: &mut Exposition) {
    let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "forward")];
    let m = f.metrics();
    out.gauge(
        OUTPUT_HEALTHY_NODES,
        &labels,
        load(&m.healthy_nodes_count) as f64,
    );
    out.gauge(
        OUTPUT_REGISTERED_NODES,
        &labels,
        load(&m.registered_nodes_count) as f64,
    );
    out.counter(
        FERRY_FORWARD_DUPLICATES,
        &labels,
        load(&m.duplicates_resent),
    );
    out.counter(FERRY_FORWARD_OUTPUT_ACKS_LOST, &labels, load(&m.acks_lost));
    out.counter(
        FERRY_FORWARD_OUTPUT_DETACHES,
        &labels,
        load(&m.detach_count),
    );
    out.counter(
        FERRY_FORWARD_OUTPUT_RECOVERS,
        &labels,
        load(&m.recover_count),
    );
    out.counter(
        FERRY_FORWARD_OUTPUT_DNS_FAILURES,
        &labels,
        load(&m.dns_failures),
    );
    out.counter(
        FERRY_FORWARD_OUTPUT_HEARTBEAT_ERRORS,
        &labels,
        load(&m.heartbeat_errors),
    );
    for node in f.nodes() {
        let address = format!("{}:{}", node.server.host, node.server.port);
        let l: [(&str, &str); 4] = [
            ("plugin_id", id),
            ("type", "forward"),
            ("server", &node.server.name),
            ("address", &address),
        ];
        let n = &node.metrics;
        out.gauge(
            FERRY_FORWARD_SERVER_UP,
            &l,
            if n.is_healthy() { 1.0 } else { 0.0 },
        );
        out.gauge(FERRY_FORWARD_SERVER_PHI, &l, n.phi());
        out.gauge(
            FERRY_FORWARD_SERVER_RTT,
            &l,
            load(&n.heartbeat_rtt_us) as f64 / 1e6,
        );
        out.gauge(FERRY_FORWARD_ACKS_PENDING, &l, load(&n.acks_pending) as f64);
        out.counter(FERRY_FORWARD_OUTPUT_REQUESTS, &l, load(&n.requests_sent));
        out.counter(FERRY_FORWARD_OUTPUT_BYTES, &l, load(&n.bytes_sent));
        out.counter(FERRY_FORWARD_OUTPUT_ERRORS, &l, load(&n.errors));
    }
}

/// The forward output's servers as the monitor API lists them (and `ferry status` prints them).
fn forward_servers(f: &Forward) -> serde_json::Value {
    let threshold = f.config().phi_threshold;
    let servers = f
        .nodes()
        .iter()
        .map(|node| {
            let n = &node.metrics;
            let rtt_us = load(&n.heartbeat_rtt_us);
            json!({
                "name": node.server.name,
                "host": node.server.host,
                "port": node.server.port,
                "standby": node.server.standby,
                "weight": node.server.weight,
                "state": if n.is_healthy() { "healthy" } else { "detached" },
                "phi": if n.phi().is_finite() { n.phi() } else { 0.0 },
                "phi_threshold": threshold,
                "rtt_ms": if rtt_us > 0 { Some(rtt_us as f64 / 1000.0) } else { None },
                "acks_pending": load(&n.acks_pending),
                "requests_sent": load(&n.requests_sent),
                "last_error": node.last_detach(),
            })
        })
        .collect::<Vec<_>>();
    serde_json::Value::Array(servers)
}

fn collect_kafka(id: &str, k: &Kafka, out: &mut Exposition) {
    let labels: [(&str, &str); 2] = [("plugin_id", id), ("type", "kafka2")];
    let m = k.metrics();
    out.counter(FERRY_KAFKA_QUEUE_FULL, &labels, load(&m.queue_full_waits));
    out.counter(
        FERRY_KAFKA_PRODUCER_RESTARTS,
        &labels,
        load(&m.producer_restarts),
    );
    for t in m.snapshot() {
        let l: [(&str, &str); 3] = [("plugin_id", id), ("type", "kafka2"), ("topic", &t.topic)];
        out.counter(FERRY_KAFKA_PRODUCED, &l, t.produced);
        out.gauge(FERRY_KAFKA_IN_FLIGHT, &l, t.in_flight as f64);
        out.counter(FERRY_KAFKA_RETRIES, &l, t.retries);
        for p in &t.partitions {
            let partition = p.partition.to_string();
            let l: [(&str, &str); 4] = [
                ("plugin_id", id),
                ("type", "kafka2"),
                ("topic", &t.topic),
                ("partition", &partition),
            ];
            out.counter(FERRY_KAFKA_DELIVERED, &l, p.delivered);
            out.counter(FERRY_KAFKA_DELIVERED_BYTES, &l, p.delivered_bytes);
            out.counter(FERRY_KAFKA_ERRORS, &l, p.errors);
        }
    }
}

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
            Sink::Forward(f) => collect_forward_output(&self.id, f, out),
            Sink::Kafka(k) => collect_kafka(&self.id, k, out),
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
        let dropped: [(&str, &str); 3] = [
            ("plugin_id", &self.id),
            ("type", self.type_name()),
            ("reason", "drop_oldest_chunk"),
        ];
        out.counter(FERRY_DROPPED_RECORDS, &dropped, s.dropped_records);
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
        if let Sink::Forward(f) = &*self.sink {
            fields.push(("servers", forward_servers(f)));
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

impl Collector for Router {
    fn collect(&self, out: &mut Exposition) {
        out.counter(FERRY_ROUTER_UNMATCHED, &[], self.unmatched_records());
    }
}
