//! Counters and gauges of a forward output (atomics only; exported by the metrics endpoint
//! under Fluentd's names where Fluentd has them: `fluentd_output_healthy_nodes_count`,
//! `fluentd_output_registered_nodes_count`).

use super::Forward;
use crate::metrics::names::*;
use crate::metrics::{Exposition, load};
use serde_json::json;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// The output as a whole.
#[derive(Debug, Default)]
pub struct ForwardMetrics {
    /// `fluentd_output_healthy_nodes_count`: servers taking load now.
    pub healthy_nodes_count: AtomicU64,
    /// `fluentd_output_registered_nodes_count`.
    pub registered_nodes_count: AtomicU64,
    /// Requests written, and their bytes (header and options included).
    pub requests_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub records_sent: AtomicU64,
    /// Acks received that matched their request.
    pub acks_received: AtomicU64,
    /// Requests written whose ack never came (timeout or connection lost).
    pub acks_lost: AtomicU64,
    /// Acks that named another chunk, and replies that were not acks.
    pub acks_mismatched: AtomicU64,
    /// Requests sent again after their ack was lost: the events may arrive twice.
    pub duplicates_resent: AtomicU64,
    pub duplicate_records_resent: AtomicU64,
    /// Requests a crash interrupted (written by an earlier run, never acknowledged) that were
    /// sent again after the restart, and their records: the most events the restart can have
    /// duplicated downstream.
    pub resent_after_restart: AtomicU64,
    pub records_resent_after_restart: AtomicU64,
    /// Chunks cut into several requests by `max_request_size`.
    pub chunks_split: AtomicU64,
    /// Single entries larger than `max_request_size`, sent alone.
    pub oversize_entries: AtomicU64,
    pub connections_opened: AtomicU64,
    pub connections_reused: AtomicU64,
    pub connect_failures: AtomicU64,
    pub tls_failures: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub dns_failures: AtomicU64,
    pub no_nodes_available: AtomicU64,
    pub detach_count: AtomicU64,
    pub recover_count: AtomicU64,
    /// Heartbeat ticks or probes that failed unexpectedly (the timer keeps running).
    pub heartbeat_errors: AtomicU64,
    /// Chunks rolled back without counting a retry.
    pub rollbacks: AtomicU64,
    /// Server lists a `<service_discovery>` could not use (the last good list stayed).
    pub discovery_errors: AtomicU64,
    /// Servers that joined or left the set through service discovery.
    pub discovery_changes: AtomicU64,
}

/// Server state as exported (`0` healthy, `1` detached).
pub const STATE_HEALTHY: u8 = 0;
pub const STATE_DETACHED: u8 = 1;

/// One `<server>`.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    pub state: AtomicU8,
    /// phi at the last heartbeat tick, as `f64` bits.
    pub phi_bits: AtomicU64,
    /// Round trip of the last successful heartbeat, microseconds.
    pub heartbeat_rtt_us: AtomicU64,
    pub heartbeats_ok: AtomicU64,
    pub heartbeats_failed: AtomicU64,
    /// Requests written to this server whose ack has not come yet.
    pub acks_pending: AtomicU64,
    pub requests_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub errors: AtomicU64,
}

impl NodeMetrics {
    pub fn phi(&self) -> f64 {
        f64::from_bits(self.phi_bits.load(Ordering::Relaxed))
    }

    pub fn set_phi(&self, phi: f64) {
        self.phi_bits.store(phi.to_bits(), Ordering::Relaxed);
    }

    pub fn is_healthy(&self) -> bool {
        self.state.load(Ordering::Relaxed) == STATE_HEALTHY
    }
}

pub fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Forward {
    /// Writes this output's server samples (`id` is its plugin id).
    pub fn export(&self, id: &str, out: &mut Exposition) {
        let f = self;
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
        out.counter(
            FERRY_FORWARD_RESENT_AFTER_RESTART,
            &labels,
            load(&m.resent_after_restart),
        );
        out.counter(
            FERRY_FORWARD_RECORDS_RESENT_AFTER_RESTART,
            &labels,
            load(&m.records_resent_after_restart),
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
        out.counter(
            FERRY_FORWARD_OUTPUT_DISCOVERY_ERRORS,
            &labels,
            load(&m.discovery_errors),
        );
        out.counter(
            FERRY_FORWARD_OUTPUT_SERVER_CHANGES,
            &labels,
            load(&m.discovery_changes),
        );
        for node in f.nodes().iter() {
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
}

impl Forward {
    /// Where servers of source `source` come from: `server` (a `<server>` or a static
    /// discovery), or the discovery (`sd_file: path=...`, `sd_srv: _x._tcp.example`).
    pub fn source_of(&self, source: usize) -> String {
        match source.checked_sub(1) {
            None => "server".to_string(),
            Some(k) => self
                .config()
                .discovery
                .get(k)
                .map_or_else(|| "server".to_string(), |d| d.describe()),
        }
    }

    /// The servers as the monitor API lists them (and `ferry status` prints them).
    pub fn servers_info(&self) -> serde_json::Value {
        let f = self;
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
                    "source": f.source_of(node.source),
                })
            })
            .collect::<Vec<_>>();
        serde_json::Value::Array(servers)
    }
}
